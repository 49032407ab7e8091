//! Parses arbitrary bytes as a snapshot record, as they come and sealed
//! with a valid `#end` checksum line (so that the fuzzer reaches the line
//! parser); a parsed record must encode back to text that parses to the
//! same record, and name only safe member paths.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sha2::Digest;

fn check(text: &[u8]) {
    if let Ok(r) = repo::Record::parse(text, "20261123T101500.123456Z", false) {
        let again = repo::Record::parse(&r.to_text(), "x", false).expect("re-encoded record parses");
        assert_eq!(again, r);
        for l in &r.lines {
            if let Some(m) = l.member_name() {
                assert!(xtar::format::check_member_path(m).is_ok() || m == l.entry.path.as_slice());
            }
        }
        let _ = repo::record::apply_deltas(r.lines.clone(), vec![r.clone()]);
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    let mut sealed = data.to_vec();
    if !sealed.is_empty() && !sealed.ends_with(b"\n") {
        sealed.push(b'\n');
    }
    let sum: String = sha2::Sha256::digest(&sealed).iter().map(|b| format!("{b:02x}")).collect();
    sealed.extend_from_slice(format!("#end {sum}\n").as_bytes());
    check(&sealed);
});
