//! The S3 store against real S3 servers that the tests start on
//! 127.0.0.1: a one-node Garage cluster (the `garage` binary, which
//! `.ci/run` builds and caches) and `rclone serve s3` (a second
//! implementation). A missing server binary fails the test, never skips it.

use std::path::Path;

use store::testing::{garage, rclone, Server};
use store::{S3Config, Store, S3};

/// Starts a server with `start` and runs the conformance suite on it.
fn conforms(start: fn(&Path) -> (Server, S3Config)) {
    let t = tempfile::tempdir().expect("tmp");
    let (_server, config) = start(t.path());
    let s3 = S3::new(config).expect("store");
    store::conformance::run(&s3, "conformance").unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn garage_conforms() {
    conforms(garage);
}

#[test]
fn rclone_conforms() {
    conforms(rclone);
}

/// Wrong credentials: a clear error naming the store, and no secret in it.
#[test]
fn wrong_keys_give_a_clear_error_without_the_secret() {
    let t = tempfile::tempdir().expect("tmp");
    let (_server, config) = rclone(t.path());
    let endpoint = config.endpoint.clone();
    let bad = S3Config::new("test", "repo", endpoint.as_deref(), "us-east-1", "rclonekey", "not-the-secret-xyz");
    let s3 = S3::new(bad).expect("store");
    let e = s3.put("x", b"data").expect_err("refused");
    let msg = e.to_string();
    assert!(msg.starts_with("s3://test/repo: cannot write `x`"), "{msg}");
    assert!(!msg.contains("not-the-secret-xyz"), "{msg}");
    assert!(!format!("{e:?}").contains("not-the-secret-xyz"));
    assert!(!format!("{:?}", S3Config::new("b", "p", None, "r", "id", "sekrit")).contains("sekrit"));
}

/// A three-node Garage cluster with replication factor 3 conforms too.
#[test]
fn a_three_node_garage_cluster_conforms() {
    let t = tempfile::tempdir().expect("tmp");
    let (_servers, config) = store::testing::garage_cluster(t.path(), 3);
    let s3 = S3::new(config).expect("store");
    store::conformance::run(&s3, "conformance").unwrap_or_else(|e| panic!("{e}"));
}

/// A WebDAV share (WsgiDAV) conforms: objects are put under a temporary
/// name and moved into place.
#[test]
fn a_webdav_share_conforms() {
    let t = tempfile::tempdir().expect("tmp");
    let (_server, url) = store::testing::wsgidav(t.path());
    let dav = store::open(&url).expect("store");
    store::conformance::run(dav.as_ref(), "conformance").unwrap_or_else(|e| panic!("{e}"));
    // No temporary is left on the share.
    let mut left = Vec::new();
    for e in walkdir(&t.path().join("share")) {
        left.push(e);
    }
    assert!(left.iter().all(|p| !p.ends_with(".partial")), "{left:?}");
}

fn walkdir(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("readdir").flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walkdir(&p));
        } else {
            out.push(p.display().to_string());
        }
    }
    out
}

/// Apache's mod_dav (which refuses `Depth: infinity` listings by default)
/// conforms too.
#[test]
fn an_apache_webdav_share_conforms() {
    let a = store::testing::apache_webdav(20);
    let dav = store::open(&format!("{}repo", a.url)).expect("store");
    store::conformance::run(dav.as_ref(), "conformance").unwrap_or_else(|e| panic!("{e}"));
    let left = walkdir(&a.share);
    assert!(left.iter().all(|p| !p.contains(".partial")), "{left:?}");
}
