//! Parses arbitrary bytes as a manifest; a parsed manifest must encode back
//! to text that parses to the same manifest.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = manifest::Manifest::parse(data) {
        let again = manifest::Manifest::parse(&m.to_text()).expect("re-encoded manifest parses");
        assert_eq!(again, m);
    }
    // Indexes use the same lines with their own rules.
    let _ = xtar::read::parse_index(data, b"a/b");
    let _ = xtar::read::parse_index(data, b"");
    // Version 3: the chains of gzip members and the tree tar, as damaged
    // as they come; what they give must be safe paths.
    let d = xtar::format::gz::decode(data);
    let (entries, _) = xtar::read::parse_entries(&d.text);
    assert!(entries.iter().all(|e| e.path.is_empty() || xtar::format::check_member_path(&e.path).is_ok()));
    let (tree, _) = xtar::format::tree::read(data);
    assert!(tree.iter().all(|e| xtar::format::check_member_path(&e.path).is_ok()));
});
