//! The record format is a promise: this record must keep producing, and
//! parsing from, exactly the bytes in `golden/record-v2.txt`, and the
//! version 1 record in `golden/record-v1.txt` must keep parsing. Set
//! `XTAR_BLESS=1` to rewrite the version 2 file after a deliberate format
//! change (which also bumps the record version and updates the spec).

use manifest::{Entry, Kind, Timestamp};
use repo::{Line, Location, Record, Stat, Stats, Status};

fn record() -> Record {
    let file = |p: &[u8], size: u64, sha: u8, loc: Location| Line {
        entry: Entry {
            path: p.to_vec(),
            kind: Kind::File,
            mode: 0o640,
            mtime: Timestamp::new(1_763_900_000, 123_456_789),
            size,
            sha256: Some([sha; 32]),
            target: None,
        },
        loc: Some(loc),
        stat: Some(Stat { ctime: Timestamp::new(1_763_900_001, 5), ino: 1234 }),
    };
    let at = |archive: &str, member: Option<&[u8]>, offset| Location {
        archive: archive.into(),
        member: member.map(<[u8]>::to_vec),
        offset,
    };
    Record {
        name: "20261123T101500.123456Z".into(),
        status: Status::Complete,
        parent: Some("20261122T090000.000001Z".into()),
        base: None,
        host: Vec::new(),
        removed: Vec::new(),
        root: b"/home/user/my docs".to_vec(),
        stats: Stats { files: 3, bytes: 13, added: 1, changed: 1, removed: 2, stored: 1, stored_bytes: 5 },
        lines: vec![
            Line { entry: Entry::dir(Vec::new(), 0o755, Timestamp::new(1_763_900_000, 0)), loc: None, stat: None },
            file(b"a.txt", 5, 0xaa, at("20261123T101500.123456Z", None, 1536)),
            Line { entry: Entry::dir(b"d".to_vec(), 0o700, Timestamp::new(-1, 999_999_999)), loc: None, stat: None },
            file(b"d/moved \xff.bin", 8, 0xbb, at("20261122T090000.000001Z", Some(b"old/place.bin"), 2_147_483_648)),
            Line {
                entry: Entry {
                    path: b"d/second".to_vec(),
                    kind: Kind::HardLink,
                    mode: 0o640,
                    mtime: Timestamp::new(1_763_900_000, 123_456_789),
                    size: 8,
                    sha256: None,
                    target: Some(b"d/moved \xff.bin".to_vec()),
                },
                loc: None,
                stat: None,
            },
            Line {
                entry: Entry {
                    path: b"link".to_vec(),
                    kind: Kind::Symlink,
                    mode: 0o777,
                    mtime: Timestamp::new(0, 0),
                    size: 0,
                    sha256: None,
                    target: Some(b"a.txt".to_vec()),
                },
                loc: None,
                stat: None,
            },
        ],
    }
}

/// A version 2 record listing what changed since its base: lines, and
/// paths that are gone.
fn delta() -> Record {
    let mut r = record();
    r.base = r.parent.clone();
    r.host = b"backup host".to_vec();
    r.removed = vec![b"b gone.txt".to_vec(), b"d/old".to_vec(), b"z".to_vec()];
    r
}

#[test]
fn the_record_format_is_stable() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/record-v2.txt");
    let text = delta().to_text();
    if std::env::var_os("XTAR_BLESS").is_some() {
        std::fs::write(&path, &text).expect("bless");
    }
    let golden = std::fs::read(&path).expect("golden vector");
    assert_eq!(String::from_utf8_lossy(&text), String::from_utf8_lossy(&golden));
    assert_eq!(Record::parse(&golden, "20261123T101500.123456Z", false).expect("parses"), delta());
}

#[test]
fn version_1_records_still_read() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/record-v1.txt");
    let golden = std::fs::read(&path).expect("golden vector");
    assert_eq!(Record::parse(&golden, "20261123T101500.123456Z", false).expect("parses"), record());
}
