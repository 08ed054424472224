//! `GET /file/CAT/PATH`: a file's bytes, streamed. A task reads it a chunk at a time, each
//! read on a blocking thread only for its own duration, into a channel of a few chunks
//! that the response body drains: memory per download is bounded whatever the file's
//! size, and a slow client holds no thread, only its channel. One byte range is served as
//! 206 (`range.rs`). Only the safe-type list is inline (`mime.rs`); the rest, and any
//! `?download=1`, is an attachment.

use super::drive::FileView;
use super::error::FrontError;
use super::{mime, range};
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

/// Bytes read per store read: four of the volume's chunks. Reads after the first start
/// on a multiple of it, so a range that starts mid-chunk decrypts no chunk twice.
pub const CHUNK: usize = 1 << 20;
/// Chunks read ahead of the client. A download holds at most this many, one being read
/// and one being written: about 4 MiB, whatever the file's size.
const QUEUE: usize = 2;

/// A file ready to send.
pub struct Download {
    pub name: String,
    pub file: Arc<dyn FileView>,
    pub modified: Option<i64>,
}

/// The answer to a download: headers now, the body as the chunks are read.
pub fn respond(d: Download, headers: &HeaderMap, force_attachment: bool) -> Response {
    let size = d.file.size();
    let last_modified = d.modified.and_then(http_date);
    let asked = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    // A resumed download names the version it has: a range of another version would
    // splice two files together, so then the whole file is sent.
    let same_version = match headers.get(header::IF_RANGE) {
        None => true,
        Some(v) => last_modified
            .as_deref()
            .is_some_and(|lm| v.as_bytes() == lm.as_bytes()),
    };
    let ranged = if same_version {
        range::parse(asked, size)
    } else {
        range::Ranged::Whole
    };
    let (status, start, len) = match ranged {
        range::Ranged::Whole => (StatusCode::OK, 0, size),
        range::Ranged::Part { start, end } => (StatusCode::PARTIAL_CONTENT, start, end - start + 1),
        range::Ranged::Unsatisfiable => {
            let mut r = Response::new(Body::from("the requested range is not in the file\n"));
            *r.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
            let h = r.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime::TEXT));
            insert(h, header::CONTENT_RANGE, &format!("bytes */{size}"));
            h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            return r;
        }
    };
    let mut r = Response::new(stream(d.file, start, len));
    *r.status_mut() = status;
    let h = r.headers_mut();
    let inline = mime::safe_type(&d.name).filter(|_| !force_attachment);
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(inline.unwrap_or(mime::OPAQUE)),
    );
    insert(
        h,
        header::CONTENT_DISPOSITION,
        &mime::disposition(inline.is_none(), &d.name),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if status == StatusCode::PARTIAL_CONTENT {
        insert(
            h,
            header::CONTENT_RANGE,
            &format!("bytes {start}-{}/{size}", start + len - 1),
        );
    }
    if let Some(lm) = last_modified {
        insert(h, header::LAST_MODIFIED, &lm);
    }
    r
}

/// Only ever called with ASCII we built (numbers, percent-encoded names, dates).
fn insert(h: &mut HeaderMap, name: header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(name, v);
    }
}

/// RFC 9110's IMF-fixdate, for `Last-Modified` and `If-Range`.
fn http_date(secs: i64) -> Option<String> {
    let t = jiff::Timestamp::from_second(secs).ok()?;
    jiff::fmt::rfc2822::DateTimePrinter::new()
        .timestamp_to_rfc9110_string(&t)
        .ok()
}

/// The body of `len` bytes from `start`, read a chunk at a time.
fn stream(file: Arc<dyn FileView>, start: u64, len: u64) -> Body {
    let (tx, rx) = mpsc::channel(QUEUE);
    tokio::spawn(produce(file, start, len, tx));
    Body::from_stream(Chunks(rx))
}

type Item = Result<Bytes, std::io::Error>;

async fn produce(file: Arc<dyn FileView>, start: u64, len: u64, tx: mpsc::Sender<Item>) {
    let end = start + len;
    let mut offset = start;
    while offset < end {
        let to_boundary = CHUNK as u64 - offset % CHUNK as u64;
        let n = usize::try_from((end - offset).min(to_boundary)).unwrap_or(CHUNK);
        let f = file.clone();
        let read = tokio::task::spawn_blocking(move || f.read_at(offset, n)).await;
        let item = match read {
            Ok(Ok(b)) if b.len() == n => Ok(Bytes::from(b)),
            Ok(Ok(b)) => Err(FrontError::Internal(format!(
                "read {} bytes at {offset} where {n} were expected",
                b.len()
            ))),
            Ok(Err(e)) => Err(e),
            Err(e) => Err(super::error::joined(e)),
        };
        // A failure ends the body early: the client sees a cut download (shorter than its
        // Content-Length), never wrong bytes.
        let item = item.map_err(|e| {
            log::warn!("a download stopped at byte {offset}: {e}");
            std::io::Error::other(e.to_string())
        });
        let failed = item.is_err();
        if tx.send(item).await.is_err() || failed {
            // The client went away (or the read failed): stop reading.
            return;
        }
        offset += n as u64;
    }
}

/// The channel's receiving end as the body's stream.
struct Chunks(mpsc::Receiver<Item>);

impl futures_core::Stream for Chunks {
    type Item = Item;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Item>> {
        self.0.poll_recv(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Mem {
        bytes: Vec<u8>,
        reads: AtomicUsize,
        offsets: std::sync::Mutex<Vec<u64>>,
    }

    impl FileView for Mem {
        fn size(&self) -> u64 {
            self.bytes.len() as u64
        }
        fn read_at(&self, offset: u64, len: usize) -> Result<Vec<u8>, FrontError> {
            self.reads.fetch_add(1, Ordering::Relaxed);
            self.offsets.lock().unwrap().push(offset);
            let o = usize::try_from(offset).unwrap();
            Ok(self.bytes[o..(o + len).min(self.bytes.len())].to_vec())
        }
    }

    fn file(n: usize) -> (Arc<Mem>, Vec<u8>) {
        let bytes: Vec<u8> = (0..n).map(|i| (i * 7 % 251) as u8).collect();
        (
            Arc::new(Mem {
                bytes: bytes.clone(),
                reads: AtomicUsize::new(0),
                offsets: Default::default(),
            }),
            bytes,
        )
    }

    fn get(
        name: &str,
        f: Arc<Mem>,
        hdrs: &[(&'static str, &'static str)],
        attach: bool,
    ) -> (Response, Vec<u8>) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap();
        rt.block_on(async {
            let mut h = HeaderMap::new();
            for (k, v) in hdrs {
                h.insert(*k, HeaderValue::from_static(v));
            }
            let d = Download {
                name: name.into(),
                file: f,
                modified: Some(1_700_000_000),
            };
            let (parts, body) = respond(d, &h, attach).into_parts();
            let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
            (Response::from_parts(parts, Body::empty()), bytes.to_vec())
        })
    }

    #[test]
    fn whole_files_stream_in_chunks() {
        let (f, bytes) = file(2 * CHUNK + 5);
        let (r, body) = get("movie.mkv", f.clone(), &[], false);
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(body, bytes);
        assert_eq!(f.reads.load(Ordering::Relaxed), 3);
        let h = r.headers();
        assert_eq!(h[header::CONTENT_TYPE], "application/octet-stream");
        assert_eq!(
            h[header::CONTENT_DISPOSITION],
            "attachment; filename*=UTF-8''movie.mkv"
        );
        assert_eq!(h[header::ACCEPT_RANGES], "bytes");
        assert_eq!(
            h[header::CONTENT_LENGTH],
            (2 * CHUNK + 5).to_string().as_str()
        );
        assert_eq!(h[header::LAST_MODIFIED], "Tue, 14 Nov 2023 22:13:20 GMT");
    }

    #[test]
    fn one_range_is_206() {
        let (f, bytes) = file(CHUNK + 100);
        let (r, body) = get("a.MP4", f, &[("range", "bytes=1048570-1048579")], false);
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(body, bytes[1_048_570..1_048_580]);
        let h = r.headers();
        assert_eq!(h[header::CONTENT_RANGE], "bytes 1048570-1048579/1048676");
        assert_eq!(h[header::CONTENT_LENGTH], "10");
        assert_eq!(h[header::CONTENT_TYPE], "video/mp4");
        assert_eq!(
            h[header::CONTENT_DISPOSITION],
            "inline; filename*=UTF-8''a.MP4"
        );
        // After a first read to the next boundary, reads are aligned.
        let (f, bytes) = file(3 * CHUNK);
        let (r, body) = get("a.bin", f.clone(), &[("range", "bytes=1000-")], false);
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(body, bytes[1000..]);
        let c = CHUNK as u64;
        assert_eq!(*f.offsets.lock().unwrap(), [1000, c, 2 * c]);
        let (f, bytes) = file(1000);
        let (r, body) = get("a.bin", f, &[("range", "bytes=-10")], false);
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(body, bytes[990..]);
    }

    #[test]
    fn bad_ranges_stale_versions_and_forced_downloads() {
        let (f, _) = file(1000);
        let (r, body) = get("a.txt", f.clone(), &[("range", "bytes=1000-")], false);
        assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(r.headers()[header::CONTENT_RANGE], "bytes */1000");
        assert!(!body.is_empty() && f.reads.load(Ordering::Relaxed) == 0);
        // If-Range naming another version: the whole (current) file.
        let (r, body) = get(
            "a.txt",
            f.clone(),
            &[
                ("range", "bytes=0-9"),
                ("if-range", "Mon, 01 Jan 2024 00:00:00 GMT"),
            ],
            false,
        );
        assert_eq!((r.status(), body.len()), (StatusCode::OK, 1000));
        let (r, body) = get(
            "a.txt",
            f.clone(),
            &[
                ("range", "bytes=0-9"),
                ("if-range", "Tue, 14 Nov 2023 22:13:20 GMT"),
            ],
            false,
        );
        assert_eq!((r.status(), body.len()), (StatusCode::PARTIAL_CONTENT, 10));
        let (r, _) = get("a.txt", f.clone(), &[], false);
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "text/plain; charset=utf-8"
        );
        let (r, _) = get("a.txt", f, &[], true);
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "application/octet-stream"
        );
        assert_eq!(
            r.headers()[header::CONTENT_DISPOSITION],
            "attachment; filename*=UTF-8''a.txt"
        );
    }

    #[test]
    fn an_empty_file_is_an_empty_200() {
        let (f, _) = file(0);
        let (r, body) = get("e.txt", f.clone(), &[], false);
        assert_eq!((r.status(), body.len()), (StatusCode::OK, 0));
        assert_eq!(f.reads.load(Ordering::Relaxed), 0);
    }
}
