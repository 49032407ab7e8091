//! Salvages arbitrary bytes as a damaged archive into a temporary directory
//! and checks that nothing was written outside it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(root) = tempfile::tempdir() else { return };
    let archive = root.path().join("in.xtar");
    let dest = root.path().join("dest");
    if std::fs::write(&archive, data).is_err() {
        return;
    }
    let opts = xtar::SalvageOptions { keep_damaged: true, jobs: 1, ..Default::default() };
    if let Ok(report) = xtar::salvage(&archive, &dest, &opts, &xtar::Silent) {
        // A file reported intact exists in the destination.
        for f in &report.files {
            if matches!(f.state, xtar::FileState::Intact(_)) {
                let p = dest.join(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&f.path));
                assert!(p.symlink_metadata().is_ok(), "reported intact but absent: {}", p.display());
            }
        }
    }
    let mut names: Vec<_> =
        std::fs::read_dir(root.path()).expect("scratch dir").map(|e| e.expect("entry").file_name()).collect();
    names.sort();
    assert!(names.iter().all(|n| n == "in.xtar" || n == "dest"), "wrote outside the destination: {names:?}");
});
