//! Extracts arbitrary bytes as an archive into a temporary directory and
//! checks that nothing was written outside it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(root) = tempfile::tempdir() else { return };
    let archive = root.path().join("in.xtar");
    let dest = root.path().join("dest");
    if std::fs::write(&archive, data).is_err() {
        return;
    }
    let _ = xtar::extract(&archive, &dest, &xtar::ExtractOptions { jobs: 1, ..Default::default() }, &xtar::Silent);
    let _ = xtar::list(&archive, &xtar::Silent, |_| {});
    // Only the archive and the destination may exist in the scratch root.
    let mut names: Vec<_> =
        std::fs::read_dir(root.path()).expect("scratch dir").map(|e| e.expect("entry").file_name()).collect();
    names.sort();
    assert!(names.iter().all(|n| n == "in.xtar" || n == "dest"), "wrote outside the destination: {names:?}");
});
