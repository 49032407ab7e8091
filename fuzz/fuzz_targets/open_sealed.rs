//! Reads arbitrary bytes as an encrypted archive (format version 4) with
//! the golden vector's test key: verify, extract and salvage must not
//! panic, and must write nothing outside the destination. Seeded with the
//! golden vector (`fuzz/seeds/open_sealed`), so that mutations reach the
//! age header, the sealed metadata and the sealed pack entries.
#![no_main]

use libfuzzer_sys::fuzz_target;

const KEY: &str = include_str!("../../crates/xtar/tests/golden/v4-sealed.key");

fuzz_target!(|data: &[u8]| {
    let Ok(root) = tempfile::tempdir() else { return };
    let archive = root.path().join("in.xtar");
    let dest = root.path().join("dest");
    if std::fs::write(&archive, data).is_err() {
        return;
    }
    let Ok(key) = keys::RecoveryKey::parse(KEY) else { return };
    let keys: xtar::Keys = std::sync::Arc::new(vec![key]);
    let eopts = xtar::ExtractOptions { jobs: 1, keys: keys.clone(), ..Default::default() };
    let _ = xtar::verify(&archive, &eopts, &xtar::Silent);
    let _ = xtar::extract(&archive, &dest, &eopts, &xtar::Silent);
    let _ = std::fs::remove_dir_all(&dest);
    let sopts = xtar::SalvageOptions { keep_damaged: true, jobs: 1, keys, ..Default::default() };
    let _ = xtar::salvage(&archive, &dest, &sopts, &xtar::Silent);
    let mut names: Vec<_> =
        std::fs::read_dir(root.path()).expect("scratch dir").map(|e| e.expect("entry").file_name()).collect();
    names.sort();
    assert!(names.iter().all(|n| n == "in.xtar" || n == "dest"), "wrote outside the destination: {names:?}");
});
