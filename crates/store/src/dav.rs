//! WebDAV objects of bounded request size: an object larger than the part
//! size is a collection of the object's name holding `part-000000`,
//! `part-000001`, … (each at most the part size, in order), written into a
//! temporary collection and moved into place whole (one MOVE, overwriting
//! what was there, file or collection). No single PUT is larger than a
//! part, so a server that cuts off slow request bodies (a short timeout,
//! a slow line) takes any object, and memory holds one part at a time.
//!
//! OpenDAL does the PUTs, GETs and listings; it refuses to move a
//! collection, so that one request (and the DELETE of a collection) is
//! sent here with reqwest, with the same credentials.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::{Error, Result};

/// The part size unless `PYBACKUP_WEBDAV_PART_SIZE` says otherwise.
pub const DEFAULT_PART: u64 = 8 << 20;

/// Whether `base` names a part of a parted object.
pub(crate) fn is_part(base: &str) -> bool {
    fsutil::is_part_name(base.as_bytes())
}

/// The name of part `i`.
pub(crate) fn part_name(i: usize) -> String {
    format!("part-{i:06}")
}

/// What WebDAV stores need beside the OpenDAL operator.
pub(crate) struct Dav {
    /// The largest PUT.
    pub(crate) part: u64,
    client: reqwest::Client,
    /// `http(s)://HOST[:PORT]`.
    endpoint: String,
    /// The share's directory, `/` first, no `/` last (empty for the root).
    root: String,
    auth: Option<(String, Option<String>)>,
    /// The part sizes of parted objects read lately.
    parts: Mutex<HashMap<String, Vec<u64>>>,
}

/// `s` with every byte but unreserved ones and `/` percent-encoded.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Dav {
    pub(crate) fn new(c: &crate::WebDavConfig) -> Dav {
        let root = c.root.trim_end_matches('/').to_string();
        Dav {
            part: c.part_size,
            client: reqwest::Client::new(),
            endpoint: c.endpoint.trim_end_matches('/').to_string(),
            root,
            auth: c.username.clone().map(|u| (u, c.password.clone())),
            parts: Mutex::new(HashMap::new()),
        }
    }

    /// The URL of `path` under the share's directory.
    fn url(&self, path: &str) -> String {
        format!("{}{}", self.endpoint, encode(&format!("{}/{path}", self.root)))
    }

    fn request(&self, method: &'static [u8], url: String) -> reqwest::RequestBuilder {
        let method = reqwest::Method::from_bytes(method).unwrap_or(reqwest::Method::GET);
        let rb = self.client.request(method, url);
        match &self.auth {
            Some((u, p)) => rb.basic_auth(u, p.as_ref()),
            None => rb,
        }
    }

    /// Moves `from` (a collection, or a file) to `to`, replacing what is
    /// there (file or collection) only if `overwrite`: `Ok(false)` when it
    /// was not replaced (the server answered 412). A request that fails on
    /// the way, or a server error, is sent again (three times, after 1, 2
    /// and 4 s); a source gone after such a failure means the move was
    /// done and its answer lost.
    pub(crate) async fn move_to(
        &self,
        from: &str,
        to: &str,
        collection: bool,
        overwrite: bool,
    ) -> std::result::Result<bool, String> {
        let source = if collection { format!("{}/", self.url(from)) } else { self.url(from) };
        let mut attempt = 0u32;
        loop {
            let sent = self
                .request(b"MOVE", source.clone())
                .header("Destination", self.url(to))
                .header("Overwrite", if overwrite { "T" } else { "F" })
                .send()
                .await;
            let problem = match sent {
                Ok(resp) => match resp.status().as_u16() {
                    201 | 204 => return Ok(true),
                    412 if !overwrite => return Ok(false),
                    404 if attempt > 0 => return Ok(true),
                    s if s >= 500 => format!("MOVE answered {s}"),
                    s => return Err(format!("MOVE answered {s}")),
                },
                Err(e) => e.without_url().to_string(),
            };
            if attempt == 3 {
                return Err(problem);
            }
            attempt += 1;
            tokio::time::sleep(std::time::Duration::from_secs(1 << (attempt - 1))).await;
        }
    }

    /// Deletes collection `path` and all it holds (nothing if absent),
    /// sent again as [`Dav::move_to`] is.
    pub(crate) async fn delete_collection(&self, path: &str) -> std::result::Result<(), String> {
        let mut attempt = 0u32;
        loop {
            let problem = match self.request(b"DELETE", format!("{}/", self.url(path))).send().await {
                Ok(resp) => match resp.status().as_u16() {
                    200 | 204 | 404 => return Ok(()),
                    s if s >= 500 => format!("DELETE answered {s}"),
                    s => return Err(format!("DELETE answered {s}")),
                },
                Err(e) => e.without_url().to_string(),
            };
            if attempt == 3 {
                return Err(problem);
            }
            attempt += 1;
            tokio::time::sleep(std::time::Duration::from_secs(1 << (attempt - 1))).await;
        }
    }

    pub(crate) fn cached(&self, name: &str) -> Option<Vec<u64>> {
        self.parts.lock().ok().and_then(|p| p.get(name).cloned())
    }

    pub(crate) fn remember(&self, name: &str, parts: Vec<u64>) {
        if let Ok(mut p) = self.parts.lock() {
            if p.len() > 256 {
                p.clear();
            }
            p.insert(name.to_string(), parts);
        }
    }

    pub(crate) fn forget(&self, name: &str) {
        if let Ok(mut p) = self.parts.lock() {
            p.remove(name);
        }
    }
}

/// The part size `PYBACKUP_WEBDAV_PART_SIZE` gives (`4M`, `512K`, bytes),
/// else [`DEFAULT_PART`]; at least 64 KiB.
pub(crate) fn part_size_from_env(url: &str) -> Result<u64> {
    let Ok(v) = std::env::var("PYBACKUP_WEBDAV_PART_SIZE") else { return Ok(DEFAULT_PART) };
    let bad = || Error::BadUrl {
        url: crate::redacted(url),
        reason: format!("PYBACKUP_WEBDAV_PART_SIZE=`{v}` is not a size of at least 64K (like 4M)"),
    };
    let size = fsutil::parse_size(&v).map_err(|_| bad())?;
    if size < 64 << 10 {
        return Err(bad());
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    #[test]
    fn part_names_and_urls() {
        assert!(super::is_part(&super::part_name(0)) && super::is_part("part-123456"));
        assert!(!super::is_part("part-12345") && !super::is_part("part-1234567") && !super::is_part("part-12345x"));
        assert_eq!(super::encode("Archives/a b%.xtar"), "Archives/a%20b%25.xtar");
    }
}
