//! Reads, lists and verifies arbitrary bytes as an archive: no panic, no
//! hang, no memory blow-up, whatever the headers claim.
#![no_main]

use std::io::Read;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(root) = tempfile::tempdir() else { return };
    let archive = root.path().join("in.xtar");
    if std::fs::write(&archive, data).is_err() {
        return;
    }
    if let Ok(mut s) = xtar::read::Scanner::open(&archive) {
        // The flat reader: every item, and the data of every file member.
        for _ in 0..100_000 {
            match s.next(&xtar::Silent) {
                Ok(Some(xtar::read::Item::File { .. })) => {
                    let _ = std::io::copy(&mut s.data().take(1 << 24), &mut std::io::sink());
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
    }
    let _ = xtar::list(&archive, &xtar::Silent, |_| {});
    let _ = xtar::archive_manifest(&archive, &xtar::Silent);
    let _ = xtar::verify(&archive, &xtar::ExtractOptions { jobs: 1, ..Default::default() }, &xtar::Silent);
});
