//! Reads arbitrary bytes as a version 3 or 4 archive the way a backup
//! set's restore does: one file at a known offset (every zip local header
//! signature found is tried), with the golden vector's test key; and the
//! check without a key. Nothing may panic or read without bound. Seeded
//! with the encrypted golden vector (`fuzz/seeds/files_at`).
#![no_main]

use std::io::Read;

use libfuzzer_sys::fuzz_target;

const KEY: &str = include_str!("../../crates/xtar/tests/golden/v4-sealed.key");

fuzz_target!(|data: &[u8]| {
    let Ok(root) = tempfile::tempdir() else { return };
    let archive = root.path().join("in.xtar");
    if std::fs::write(&archive, data).is_err() {
        return;
    }
    let _ = xtar::check_without_key(&archive);
    let Ok(key) = keys::RecoveryKey::parse(KEY) else { return };
    let keys: xtar::Keys = std::sync::Arc::new(vec![key]);
    let Ok(f) = std::fs::File::open(&archive) else { return };
    let Ok(files) = xtar::FilesAt::open(&f, &archive, &keys, &xtar::Silent) else { return };
    let offsets = data.windows(4).enumerate().filter(|(_, w)| *w == b"PK\x03\x04").map(|(i, _)| i as u64).take(64);
    for at in offsets {
        if let Ok((_, size, mut r)) = files.file(&f, at) {
            let mut sink = Vec::new();
            let _ = r.by_ref().take(size.min(1 << 24)).read_to_end(&mut sink);
        }
    }
});
