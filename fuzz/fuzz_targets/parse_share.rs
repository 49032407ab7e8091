//! Parses arbitrary text as share lines and key files: never a panic; a
//! share that parses prints back to a line that parses to the same share;
//! whatever combines is checked against its set.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = keys::RecoveryKey::parse(text);
    if let Ok(shares) = keys::Share::parse_all(text) {
        for s in &shares {
            assert_eq!(&keys::Share::parse(&s.to_line()).expect("re-printed share parses"), s);
        }
        let _ = keys::combine(&shares);
    }
});
