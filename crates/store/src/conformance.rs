//! The behaviour every [`Store`] must have, as one function that tests run
//! against each implementation (a local directory, Garage, `rclone serve
//! s3`). It works under a fresh prefix and removes what it wrote.

use crate::{Error, Object, Store};

/// Runs every check under `prefix` (which must be empty), naming the first
/// that fails.
pub fn run(store: &dyn Store, prefix: &str) -> Result<(), String> {
    let n = |s: &str| format!("{prefix}/{s}");
    let fail = |what: &str, detail: String| format!("{}: {what}: {detail}", store.describe());
    let ok = |r: crate::Result<()>, what: &str| r.map_err(|e| fail(what, e.to_string()));

    if !store.list(prefix).map_err(|e| fail("list an empty prefix", e.to_string()))?.is_empty() {
        return Err(fail("list", "the prefix is not empty".into()));
    }
    // Absent objects.
    match store.read(&n("absent")) {
        Err(Error::NotFound { .. }) => {}
        other => return Err(fail("read of an absent object", format!("{other:?}"))),
    }
    if store.size(&n("absent")).map_err(|e| fail("size of an absent object", e.to_string()))?.is_some() {
        return Err(fail("size of an absent object", "some".into()));
    }
    ok(store.delete(&n("absent")), "delete of an absent object")?;

    // Whole objects, of several sizes (empty, small, over 8 MiB: a
    // multipart upload on some stores), read whole and by ranges.
    let big: Vec<u8> = (0..9 * 1024 * 1024 + 7).map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let objects: [(&str, Vec<u8>); 4] =
        [("empty", Vec::new()), ("small.txt", b"hello\n".to_vec()), ("deep/in/side.bin", vec![7; 4097]), ("big", big)];
    for (name, data) in &objects {
        ok(store.put(&n(name), data), &format!("put {name}"))?;
    }
    for (name, data) in &objects {
        let got = store.read(&n(name)).map_err(|e| fail(&format!("read {name}"), e.to_string()))?;
        if got != *data {
            return Err(fail(&format!("read {name}"), format!("{} bytes back, {} put", got.len(), data.len())));
        }
        let size = store.size(&n(name)).map_err(|e| fail("size", e.to_string()))?;
        if size != Some(data.len() as u64) {
            return Err(fail(&format!("size {name}"), format!("{size:?}")));
        }
        for (off, len) in [(0u64, 1u64), (1, 5), (4096, 1), (5_000_000, 100_000), (0, u64::MAX / 2)] {
            let want: &[u8] =
                data.get(off as usize..(off.saturating_add(len) as usize).min(data.len())).unwrap_or_default();
            let got = store.read_range(&n(name), off, len).map_err(|e| fail("read_range", e.to_string()))?;
            if got != want {
                return Err(fail(&format!("read_range {name} {off}+{len}"), format!("{} bytes", got.len())));
            }
        }
    }
    // Streamed: the same bytes through put_from (a multipart upload on S3)
    // and back through ObjectReader; a reader that gives fewer bytes than
    // promised publishes nothing.
    let (_, big) = &objects[3];
    ok(store.put_from(&n("streamed"), &mut &big[..], big.len() as u64), "put_from")?;
    let mut back = Vec::new();
    std::io::Read::read_to_end(&mut crate::ObjectReader::new(store, &n("streamed"), big.len() as u64), &mut back)
        .map_err(|e| fail("ObjectReader", e.to_string()))?;
    if back != *big {
        return Err(fail("put_from then ObjectReader", format!("{} bytes back, {} put", back.len(), big.len())));
    }
    // A copy from the store to itself: the reader reads from a store while
    // the upload runs (one bucket to another).
    let mut from = crate::ObjectReader::new(store, &n("streamed"), big.len() as u64);
    ok(store.put_from(&n("copied"), &mut from, big.len() as u64), "put_from of an ObjectReader")?;
    if store.read(&n("copied")).map_err(|e| fail("read copied", e.to_string()))? != *big {
        return Err(fail("put_from of an ObjectReader", "other bytes back".into()));
    }
    ok(store.delete(&n("copied")), "delete copied")?;
    ok(store.delete(&n("streamed")), "delete streamed")?;
    if store.put_from(&n("short"), &mut &big[..1000], 5000).is_ok() {
        return Err(fail("put_from of a short reader", "accepted".into()));
    }
    if store.size(&n("short")).map_err(|e| fail("size", e.to_string()))?.is_some() {
        return Err(fail("put_from of a short reader", "an object was published".into()));
    }
    // Listing: exactly what was put, sorted, with sizes; by prefix.
    let listed = store.list(prefix).map_err(|e| fail("list", e.to_string()))?;
    let mut want: Vec<Object> =
        objects.iter().map(|(name, data)| Object { name: n(name), size: data.len() as u64 }).collect();
    want.sort();
    if listed != want {
        return Err(fail("list", format!("{listed:?}, expected {want:?}")));
    }
    let deep = store.list(&n("deep/")).map_err(|e| fail("list a sub-prefix", e.to_string()))?;
    if deep.len() != 1 || deep[0].name != n("deep/in/side.bin") {
        return Err(fail("list a sub-prefix", format!("{deep:?}")));
    }
    // Replacing an object replaces it whole.
    ok(store.put(&n("small.txt"), b"replaced, longer than before\n"), "put over an object")?;
    if store.read(&n("small.txt")).map_err(|e| fail("read", e.to_string()))? != b"replaced, longer than before\n" {
        return Err(fail("put over an object", "old content read back".into()));
    }
    // Replacing across sizes: a large object by a small one, and back
    // (on a WebDAV share, parts by a file and a file by parts).
    ok(store.put(&n("big"), b"small now\n"), "put a small object over a large one")?;
    if store.read(&n("big")).map_err(|e| fail("read", e.to_string()))? != b"small now\n"
        || store.size(&n("big")).map_err(|e| fail("size", e.to_string()))? != Some(10)
    {
        return Err(fail("put a small object over a large one", "the large one read back".into()));
    }
    ok(store.put_from(&n("big"), &mut &big[..], big.len() as u64), "put_from a large object over a small one")?;
    if store.read_range(&n("big"), 8 << 20, 1 << 20).map_err(|e| fail("read_range", e.to_string()))?
        != big[8 << 20..(9 << 20)]
    {
        return Err(fail("put_from a large object over a small one", "other bytes back".into()));
    }
    // A new object where one is: refused, the old one kept; where none
    // is: made.
    match store.put_from_new(&n("small.txt"), &mut &b"not this"[..], 8) {
        Err(Error::Exists { .. }) => {}
        other => return Err(fail("put_from_new over an object", format!("{other:?}"))),
    }
    match store.put_from_new(&n("big"), &mut &big[..], big.len() as u64) {
        Err(Error::Exists { .. }) => {}
        other => return Err(fail("put_from_new over a large object", format!("{other:?}"))),
    }
    if store.read(&n("small.txt")).map_err(|e| fail("read", e.to_string()))? != b"replaced, longer than before\n" {
        return Err(fail("put_from_new over an object", "it was replaced".into()));
    }
    ok(store.put_from_new(&n("new/one"), &mut &b"new"[..], 3), "put_from_new of a new object")?;
    ok(store.put_from_new(&n("new/big"), &mut &big[..], big.len() as u64), "put_from_new of a new large object")?;
    if store.read(&n("new/one")).map_err(|e| fail("read", e.to_string()))? != b"new"
        || store.size(&n("new/big")).map_err(|e| fail("size", e.to_string()))? != Some(big.len() as u64)
    {
        return Err(fail("put_from_new of a new object", "other bytes back".into()));
    }
    ok(store.delete(&n("new/one")), "delete")?;
    ok(store.delete(&n("new/big")), "delete")?;
    // Odd names: spaces, percent signs, plus, ampersand, equals, quotes,
    // brackets, non-ASCII letters; each put, read, listed, deleted.
    let odd = ["odd/with space.txt", "odd/100%+1&2=3[4].bin", "odd/'quoted\"", "odd/ünïcødé/ファイル"];
    for (i, name) in odd.iter().enumerate() {
        ok(store.put(&n(name), format!("odd {i}\n").as_bytes()), &format!("put `{name}`"))?;
    }
    let listed = store.list(&n("odd/")).map_err(|e| fail("list odd names", e.to_string()))?;
    let mut want: Vec<String> = odd.iter().map(|o| n(o)).collect();
    want.sort();
    if listed.iter().map(|o| o.name.clone()).collect::<Vec<_>>() != want {
        return Err(fail("list odd names", format!("{listed:?}, expected {want:?}")));
    }
    for (i, name) in odd.iter().enumerate() {
        let got = store.read(&n(name)).map_err(|e| fail(&format!("read `{name}`"), e.to_string()))?;
        if got != format!("odd {i}\n").as_bytes() {
            return Err(fail(&format!("read `{name}`"), "other bytes back".into()));
        }
        ok(store.delete(&n(name)), &format!("delete `{name}`"))?;
    }
    // Names that are not plain relative paths are refused.
    for bad in ["", "/abs", "a/../b", "a//b", "./a", "a?b", "a#b", "a\\b", "a\nb", "a\u{7f}b"] {
        if !matches!(store.put(bad, b"x"), Err(Error::BadName { .. })) {
            return Err(fail("a bad name", format!("`{bad}` accepted")));
        }
    }
    // Deleting: gone from reads and lists.
    for (name, _) in &objects {
        ok(store.delete(&n(name)), &format!("delete {name}"))?;
    }
    let left = store.list(prefix).map_err(|e| fail("list", e.to_string()))?;
    if !left.is_empty() {
        return Err(fail("list after deleting everything", format!("{left:?}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    #[test]
    fn a_local_directory_conforms() {
        let t = tempfile::tempdir().unwrap();
        let store = crate::Local::new(t.path().join("store"));
        crate::conformance::run(&store, "run1").unwrap();
        // Temporaries of writes under way are not listed.
        std::fs::create_dir_all(t.path().join("store/run2")).unwrap();
        std::fs::write(t.path().join("store/run2/.x.snapshot.abc123.partial"), b"half").unwrap();
        assert!(crate::Store::list(&store, "run2").unwrap().is_empty());
    }

    #[test]
    fn settings_come_from_variables_then_the_aws_files() {
        let creds = "[default]\naws_access_key_id = DEFKEY\naws_secret_access_key = defsecret\n\n[work]\n\
                     aws_access_key_id=WORKKEY\naws_secret_access_key=worksecret\n";
        let config =
            "[default]\nregion = eu-west-3\n[profile work]\nregion = garage\nendpoint_url = http://127.0.0.1:3900\n";
        let none = |_: &str| None;
        let c = crate::S3Config::from_sources("b", "p", &none, Some(creds), Some(config)).unwrap();
        assert_eq!((c.access_key_id.as_str(), c.region.as_str(), c.endpoint.as_deref()), ("DEFKEY", "eu-west-3", None));
        let work = |k: &str| (k == "AWS_PROFILE").then(|| "work".to_string());
        let c = crate::S3Config::from_sources("b", "p", &work, Some(creds), Some(config)).unwrap();
        assert_eq!(
            (c.access_key_id.as_str(), c.region.as_str(), c.endpoint.as_deref()),
            ("WORKKEY", "garage", Some("http://127.0.0.1:3900"))
        );
        // A variable wins over the files.
        let var = |k: &str| match k {
            "AWS_ACCESS_KEY_ID" => Some("VARKEY".to_string()),
            "AWS_REGION" => Some("var-region".to_string()),
            _ => None,
        };
        let c = crate::S3Config::from_sources("b", "p", &var, Some(creds), Some(config)).unwrap();
        assert_eq!((c.access_key_id.as_str(), c.region.as_str()), ("VARKEY", "var-region"));
        // Nothing anywhere: the variable is named.
        match crate::S3Config::from_sources("b", "p", &none, None, None) {
            Err(e @ crate::Error::MissingSetting { .. }) => assert!(e.to_string().contains("AWS_ACCESS_KEY_ID"), "{e}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn urls_never_carry_credentials() {
        for bad in ["s3://key:secret@bucket/p", "s3:///p", "ftp://user:secret@host/x"] {
            match crate::open(bad) {
                Err(e @ crate::Error::BadUrl { .. }) => assert!(!e.to_string().contains("secret"), "{e}"),
                other => panic!("{bad}: {:?}", other.map(|s| s.describe())),
            }
        }
    }
}
