//! Requests the HTTP parser refuses before any of our code runs, answered in the envelope.
//!
//! hyper answers a request it cannot parse (a control character in a header, a broken request
//! line, an unknown HTTP version, an over-long URI or header block) by itself, with an empty
//! `400`/`414`/`431` and no hook to change it: no envelope, no `X-Request-Id` (issue 18). This
//! wrapper around each connection recognises that one canned answer as it is written, and
//! writes the envelope in its place, naming what was wrong from the bytes the client sent.
//! Everything else passes through untouched.

use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use poem::http::StatusCode;
use poem::listener::Acceptor;
use poem::web::{LocalAddr, RemoteAddr};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::error::{ApiError, ErrorCode};
use crate::ids::new_id;

/// How much of what a client sent since the last answer is kept, to name the fault: a request
/// line and headers fit, and hyper refuses larger heads with 431 anyway.
const KEPT: usize = 8 * 1024;

/// The canned answer's mark: hyper's parse errors, and nothing of ours, close the connection
/// with an empty body.
const CANNED: &[u8] = b"\r\nconnection: close\r\ncontent-length: 0\r\n";

/// An acceptor whose connections answer parse errors in the envelope.
pub struct EnvelopeAcceptor<A>(pub A);

impl<A: Acceptor> Acceptor for EnvelopeAcceptor<A> {
    type Io = EnvelopeIo<A::Io>;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.0.local_addr()
    }

    fn accept(
        &mut self,
    ) -> impl Future<Output = io::Result<(Self::Io, LocalAddr, RemoteAddr, poem::http::uri::Scheme)>>
           + Send {
        let accept = self.0.accept();
        async move {
            let (io, local, remote, scheme) = accept.await?;
            Ok((EnvelopeIo::new(io), local, remote, scheme))
        }
    }
}

/// A connection that writes the envelope in place of hyper's canned parse-error answer.
pub struct EnvelopeIo<T> {
    inner: T,
    /// The start of what the client sent since the last answer began.
    sent: Vec<u8>,
    /// An answer was written since the client last sent something: the next bytes start anew.
    answered: bool,
    /// The envelope being written in place of the canned answer, and how much of it is out.
    replacement: Option<(Vec<u8>, usize)>,
}

impl<T> EnvelopeIo<T> {
    fn new(inner: T) -> Self {
        Self {
            inner,
            sent: Vec::new(),
            answered: false,
            replacement: None,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for EnvelopeIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        let this = &mut *self;
        if this.answered {
            this.sent.clear();
            this.answered = false;
        }
        let room = KEPT.saturating_sub(this.sent.len());
        let new = &buf.filled()[before..];
        this.sent.extend_from_slice(&new[..new.len().min(room)]);
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> EnvelopeIo<T> {
    /// Writes the rest of the replacement; ready once all of it is out.
    fn poll_replacement(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, done)) = &mut self.replacement {
            if *done == bytes.len() {
                self.replacement = None;
                break;
            }
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &bytes[*done..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *done += n;
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for EnvelopeIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.replacement.is_none() {
            match canned_status(buf) {
                Some(status) => {
                    this.replacement = Some((envelope_for(status, &this.sent), 0));
                }
                None => {
                    this.answered = true;
                    return Pin::new(&mut this.inner).poll_write(cx, buf);
                }
            }
        }
        ready!(this.poll_replacement(cx))?;
        this.answered = true;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let mut nonempty = bufs.iter().filter(|b| !b.is_empty());
        let only = match (nonempty.next(), nonempty.next()) {
            (Some(first), None) => Some(first),
            _ => None,
        };
        if self.replacement.is_some() || only.is_some_and(|b| canned_status(b).is_some()) {
            let only: &[u8] = only.map_or(&[], |b| b);
            return self.poll_write(cx, only);
        }
        self.answered = true;
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_replacement(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_replacement(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The status of hyper's canned parse-error answer, when `buf` is exactly one.
fn canned_status(buf: &[u8]) -> Option<StatusCode> {
    let head = buf.strip_prefix(b"HTTP/1.1 ")?;
    if !buf.ends_with(b"\r\n\r\n") || !buf.windows(CANNED.len()).any(|w| w == CANNED) {
        return None;
    }
    let code = std::str::from_utf8(head.get(..3)?).ok()?.parse().ok()?;
    StatusCode::from_u16(code)
        .ok()
        .filter(|s| s.is_client_error() || s.is_server_error())
}

/// The whole envelope answer for a request the parser refused with `status`.
fn envelope_for(status: StatusCode, sent: &[u8]) -> Vec<u8> {
    let err = diagnose(status, sent);
    let request_id = new_id("req");
    tracing::info!(
        target: "clozup::http",
        status = status.as_u16(),
        request_id = %request_id,
        "request refused by the HTTP parser: {}",
        err.message
    );
    let body = err.body(request_id.clone());
    let mut out = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json; charset=utf-8\r\n\
         x-request-id: {request_id}\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error"),
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(&body);
    out
}

/// What was wrong, as precisely as the bytes the client sent tell.
fn diagnose(status: StatusCode, sent: &[u8]) -> ApiError {
    let bad = |message: String| ApiError::new(status, ErrorCode::BadRequest, message);
    match status {
        StatusCode::URI_TOO_LONG => return bad("the request URI is too long".into()),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => {
            return bad("the request's headers are larger than the server accepts".into())
        }
        _ => {}
    }
    let head_end = sent
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(sent.len());
    let mut lines = sent[..head_end]
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let request_line = lines.next().unwrap_or_default();
    let parts: Vec<&[u8]> = request_line.split(|&b| b == b' ').collect();
    let printable = |s: &[u8]| s.iter().all(|b| b.is_ascii_graphic());
    if parts.len() != 3 || !parts.iter().all(|p| !p.is_empty() && printable(p)) {
        return bad("the request line is malformed: expected `METHOD /path HTTP/1.1`".into());
    }
    if parts[2] != b"HTTP/1.1" && parts[2] != b"HTTP/1.0" {
        return bad(format!(
            "{} is not supported: send HTTP/1.1",
            String::from_utf8_lossy(parts[2])
        ));
    }
    let mut lengths = Vec::new();
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return bad(format!(
                "the header line `{}` has no colon",
                String::from_utf8_lossy(line).escape_debug()
            ));
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        let name_text: String = name
            .iter()
            .filter(|b| b.is_ascii_graphic())
            .map(|&b| b as char)
            .collect();
        if let Some(&c) = name.iter().find(|&&b| !is_token_char(b)) {
            return bad(format!(
                "the header name `{name_text}` holds the character 0x{c:02x}, which HTTP does not \
                 allow in a name"
            ))
            .detail(name_text, format!("holds the character 0x{c:02x}"));
        }
        if name.is_empty() {
            return bad("a header line has no name before its colon".into());
        }
        if let Some(&c) = value
            .iter()
            .find(|&&b| (b < 0x20 && b != b'\t') || b == 0x7f)
        {
            let name = name_text.to_ascii_lowercase();
            return bad(format!(
                "the {name} header holds a control character (0x{c:02x}), which HTTP does not allow"
            ))
            .detail(name, format!("holds the control character 0x{c:02x}"));
        }
        if name.eq_ignore_ascii_case(b"content-length") {
            lengths.push(value.trim_ascii().to_vec());
        }
    }
    if lengths.windows(2).any(|w| w[0] != w[1]) {
        return bad("the request has conflicting Content-Length headers".into())
            .detail("content-length", "is given twice with different values");
    }
    bad("the request is not valid HTTP/1.1".into())
}

/// Whether `b` may appear in a header name (RFC 9110 §5.6.2 `tchar`).
fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hypers_canned_answer_is_replaced() {
        let canned = b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\ndate: Wed, 02 Dec 2026 07:29:39 GMT\r\n\r\n";
        assert_eq!(canned_status(canned), Some(StatusCode::BAD_REQUEST));
        let ours =
            b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-length: 120\r\n\r\n";
        assert_eq!(canned_status(ours), None);
        assert_eq!(
            canned_status(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"),
            None
        );
        assert_eq!(canned_status(b"{\"data\": \"HTTP/1.1 400\"}"), None);
    }

    #[test]
    fn the_fault_is_named_from_what_was_sent() {
        let e = diagnose(
            StatusCode::BAD_REQUEST,
            b"GET /api/v1/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer clz_x\x0b\r\n\r\n",
        );
        assert_eq!(
            e.message,
            "the authorization header holds a control character (0x0b), which HTTP does not allow"
        );
        assert_eq!(e.details[0].field, "authorization");
        let e = diagnose(StatusCode::BAD_REQUEST, b"GE T / HTTP/1.1\r\n\r\n");
        assert!(e.message.contains("request line"), "{}", e.message);
        let e = diagnose(StatusCode::BAD_REQUEST, b"GET / HTTP/2.5\r\n\r\n");
        assert_eq!(e.message, "HTTP/2.5 is not supported: send HTTP/1.1");
        let e = diagnose(
            StatusCode::BAD_REQUEST,
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\ncontent-length: 6\r\n\r\nhello",
        );
        assert!(e.message.contains("Content-Length"), "{}", e.message);
        let e = diagnose(StatusCode::BAD_REQUEST, b"GET / HTTP/1.1\r\nX Y: z\r\n\r\n");
        assert_eq!(
            e.message,
            "the header name `XY` holds the character 0x20, which HTTP does not allow in a name"
        );
        assert_eq!(
            diagnose(StatusCode::URI_TOO_LONG, b"").status,
            StatusCode::URI_TOO_LONG
        );
    }
}
