//! Bandwidth limits: at most so many bytes a second sent to, and read
//! from, remote stores, for the whole process (`--limit-upload`,
//! `--limit-download`), so that a backup leaves the home line usable.
//!
//! A limit is a pacing clock: each piece of data reserves its time on the
//! line (its size over the rate) after the pieces before it, and waits
//! until that time comes. Pieces are small (16 KiB over HTTP, one SFTP
//! request of at most 255 KiB), so the line is never filled by one burst:
//! over HTTP the request body itself is produced at the rate (TCP carries
//! it no faster), and a response body is read at the rate (TCP's window
//! slows the sender).
//!
//! Local directories are not limited.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// A rate in bytes a second, and when the line is next free.
#[derive(Debug)]
pub struct Rate {
    bytes_per_second: u64,
    next: Mutex<Option<Instant>>,
}

impl Rate {
    /// A limit of `bytes_per_second` (at least 1).
    pub fn new(bytes_per_second: u64) -> Rate {
        Rate { bytes_per_second: bytes_per_second.max(1), next: Mutex::new(None) }
    }

    /// The rate, in bytes a second.
    pub fn bytes_per_second(&self) -> u64 {
        self.bytes_per_second
    }

    /// Reserves the line for `n` bytes: how long to wait before sending
    /// them.
    pub fn reserve(&self, n: u64) -> Duration {
        let now = Instant::now();
        let Ok(mut next) = self.next.lock() else { return Duration::ZERO };
        let start = next.map_or(now, |t| t.max(now));
        *next = Some(start + Duration::from_secs_f64(n as f64 / self.bytes_per_second as f64));
        start - now
    }

    /// [`Rate::reserve`], then sleeps the thread until then.
    pub fn pace(&self, n: u64) {
        let wait = self.reserve(n);
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
    }
}

/// The limits of this process: one rate each way, shared by every store
/// (a copy from one store to another is limited both ways).
#[derive(Debug, Default)]
struct Limits {
    upload: Option<Arc<Rate>>,
    download: Option<Arc<Rate>>,
}

static LIMITS: RwLock<Limits> = RwLock::new(Limits { upload: None, download: None });

/// Sets the process's limits, in bytes a second (`None`: unlimited), for
/// the stores opened from now on (a store keeps the limits it was opened
/// with).
pub fn set_limits(upload: Option<u64>, download: Option<u64>) {
    if let Ok(mut l) = LIMITS.write() {
        *l = Limits {
            upload: upload.map(|r| Arc::new(Rate::new(r))),
            download: download.map(|r| Arc::new(Rate::new(r))),
        };
    }
}

/// The upload limit, if one is set.
pub fn upload() -> Option<Arc<Rate>> {
    LIMITS.read().ok().and_then(|l| l.upload.clone())
}

/// The download limit, if one is set.
pub fn download() -> Option<Arc<Rate>> {
    LIMITS.read().ok().and_then(|l| l.download.clone())
}

/// Waits, in a task, until `n` bytes may pass at `rate`.
pub(crate) async fn pace_async(rate: Option<Arc<Rate>>, n: u64) {
    if let Some(r) = rate {
        let wait = r.reserve(n);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// The bytes of one paced piece of an HTTP body.
const HTTP_PIECE: usize = 16 << 10;

/// An HTTP transport (reqwest, as OpenDAL's own) whose request bodies are
/// produced, and response bodies read, at the process's limits. Stores use
/// it only when a limit is set.
pub(crate) struct LimitedHttp {
    client: reqwest::Client,
    upload: Option<Arc<Rate>>,
    download: Option<Arc<Rate>>,
}

impl LimitedHttp {
    /// At the limits set now.
    pub(crate) fn new() -> LimitedHttp {
        LimitedHttp { client: reqwest::Client::new(), upload: upload(), download: download() }
    }
}

/// A transport error, which a retry may get past.
fn http_error(what: &'static str, e: impl std::error::Error + Send + Sync + 'static) -> opendal::Error {
    opendal::Error::new(opendal::ErrorKind::Unexpected, what).set_source(e).set_temporary()
}

impl opendal::HttpTransport for LimitedHttp {
    async fn fetch(&self, req: http::Request<opendal::Buffer>) -> opendal::Result<http::Response<opendal::HttpBody>> {
        use futures_util::StreamExt;
        let (parts, body) = req.into_parts();
        let uri = parts.uri.clone();
        let target = parts
            .extensions
            .get::<opendal::HttpRedirect>()
            .map(|r| r.uri().original_uri().to_string())
            .unwrap_or_else(|| uri.to_string());
        let is_head = parts.method == http::Method::HEAD;
        let mut headers = parts.headers;
        if !body.is_empty() {
            // One Content-Length (OpenDAL's may be there already; two make
            // some servers answer 400).
            headers.insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(body.len()));
        }
        let mut rb = self.client.request(parts.method, target).headers(headers).version(parts.version);
        if !body.is_empty() {
            let len = body.len();
            let bytes = body.to_bytes();
            let pieces = (0..len).step_by(HTTP_PIECE).map(move |at| bytes.slice(at..(at + HTTP_PIECE).min(len)));
            let rate = self.upload.clone();
            let stream = futures_util::stream::iter(pieces).then(move |piece| {
                let rate = rate.clone();
                async move {
                    pace_async(rate, piece.len() as u64).await;
                    Ok::<_, std::convert::Infallible>(piece)
                }
            });
            rb = rb.body(reqwest::Body::wrap_stream(stream));
        }
        let resp = rb.send().await.map_err(|e| http_error("send http request", e.without_url()))?;
        let content_length = if is_head || resp.headers().contains_key(http::header::CONTENT_ENCODING) {
            None
        } else {
            resp.content_length()
        };
        let mut out = http::Response::builder().status(resp.status()).version(resp.version()).extension(uri);
        if let Some(h) = out.headers_mut() {
            h.extend(resp.headers().iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        let rate = self.download.clone();
        let stream = resp
            .bytes_stream()
            .filter(|b| std::future::ready(b.as_ref().map_or(true, |b| !b.is_empty())))
            .then(move |chunk| {
                let rate = rate.clone();
                async move {
                    match chunk {
                        Ok(b) => {
                            pace_async(rate, b.len() as u64).await;
                            Ok(opendal::Buffer::from(b))
                        }
                        Err(e) => Err(http_error("read data from http response", e.without_url())),
                    }
                }
            });
        out.body(opendal::HttpBody::new(Box::pin(stream), content_length))
            .map_err(|e| opendal::Error::new(opendal::ErrorKind::Unexpected, "build the response").set_source(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_are_paced_at_the_rate() {
        let r = Rate::new(1000);
        assert_eq!(r.reserve(500), Duration::ZERO);
        let w = r.reserve(500);
        assert!(w > Duration::from_millis(450) && w <= Duration::from_millis(500), "{w:?}");
        let w = r.reserve(1);
        assert!(w > Duration::from_millis(950) && w <= Duration::from_millis(1000), "{w:?}");
    }
}
