//! A bound on what a multipart upload may send before its file's data. The multipart parser
//! buffers a part's headers whole until it finds their end, so a client sending one endless
//! header line (or many fields) could make the server hold any amount of memory. Every upload
//! route reads its small fields and the file part's headers through this guard: past
//! [`MAX_BEFORE_FILE`] bytes before the file's data starts, the body ends in an error and the
//! request is refused. The file's data itself is not counted (its own limits apply).

use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Request};
use futures_util::StreamExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Bytes of a multipart body allowed before the file part's data: the form's small fields
/// (a CSRF token, a webhook URL of at most 4 KiB) and every part's headers fit many times over.
pub const MAX_BEFORE_FILE: u64 = 1 << 20;

/// Opened once the file part is found; reports whether the bound was hit.
#[derive(Clone, Default)]
pub struct Gate {
    open: Arc<AtomicBool>,
    exceeded: Arc<AtomicBool>,
}

impl Gate {
    /// The file's data starts: bytes from here on are not counted.
    pub fn open(&self) {
        self.open.store(true, Ordering::Relaxed);
    }

    /// The parser's error text, or the bound's when the bound is why the parser failed.
    pub fn explain(&self, parser_message: String) -> String {
        if self.exceeded.load(Ordering::Relaxed) {
            format!(
                "the form sends more than {} KiB before the file's data (fields and part headers)",
                MAX_BEFORE_FILE >> 10
            )
        } else {
            parser_message
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("multipart fields and part headers before the file exceed the limit")]
struct TooMuchBeforeFile;

/// The request's multipart body behind the guard.
pub async fn guarded(
    req: Request,
) -> Result<(Multipart, Gate), axum::extract::multipart::MultipartRejection> {
    let gate = Gate::default();
    let (open, exceeded) = (gate.open.clone(), gate.exceeded.clone());
    let (parts, body) = req.into_parts();
    let mut before_file = 0u64;
    let stream = body.into_data_stream().map(move |chunk| {
        let chunk = chunk.map_err(std::io::Error::other)?;
        if !open.load(Ordering::Relaxed) {
            before_file = before_file.saturating_add(chunk.len() as u64);
            if before_file > MAX_BEFORE_FILE {
                exceeded.store(true, Ordering::Relaxed);
                return Err(std::io::Error::other(TooMuchBeforeFile));
            }
        }
        Ok(chunk)
    });
    let req = Request::from_parts(parts, Body::from_stream(stream));
    let mp = Multipart::from_request(req, &()).await?;
    Ok((mp, gate))
}
