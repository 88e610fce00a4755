//! HTTPS without a proxy (`--tls-cert`, `--tls-key`): a poem acceptor that wraps each accepted
//! connection in TLS, with the certificate read again on SIGHUP.
//!
//! Not poem's own `rustls` listener: it builds rustls on aws-lc-rs, a second cryptography
//! library of several megabytes (and a C build for each Raspberry Pi target), where the binary
//! already carries rustls on *ring* for outbound mail and webhooks. This is the same small
//! acceptor over tokio-rustls with the provider we have.

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};

use poem::http::uri::Scheme;
use poem::listener::Acceptor;
use poem::web::{LocalAddr, RemoteAddr};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::ServerConfig;

/// The certificate chain and key files, PEM.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The certificate, followed by its intermediates.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

impl TlsFiles {
    /// Reads and checks both files into a server configuration (TLS 1.2 and 1.3, HTTP/1.1).
    pub fn load(&self) -> Result<Arc<ServerConfig>, String> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
        };
        let (cert_pem, key_pem) = (read(&self.cert)?, read(&self.key)?);
        let chain = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("{}: not a PEM certificate: {e}", self.cert.display()))?;
        if chain.is_empty() {
            return Err(format!("{}: no certificate in it", self.cert.display()));
        }
        let key = PrivateKeyDer::from_pem_slice(&key_pem)
            .map_err(|e| format!("{}: not a PEM private key: {e}", self.key.display()))?;
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS set-up failed: {e}"))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| {
                format!(
                    "{} and {} do not make a usable certificate: {e}",
                    self.cert.display(),
                    self.key.display()
                )
            })?;
        // The server speaks HTTP/1.1 only (its parse errors are answered in the envelope).
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// The configuration new connections get; replaced whole on reload, so a connection's
/// handshake always sees one certificate and its key.
#[derive(Clone)]
pub struct Current(Arc<RwLock<Arc<ServerConfig>>>);

impl Current {
    /// Loads the files once; a server does not start on files that do not load.
    pub fn load(files: &TlsFiles) -> Result<Self, String> {
        Ok(Self(Arc::new(RwLock::new(files.load()?))))
    }

    /// Reads the files again; on failure the certificate in use stays, and the error is said.
    pub fn reload(&self, files: &TlsFiles) -> Result<(), String> {
        let fresh = files.load()?;
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(())
    }

    fn get(&self) -> Arc<ServerConfig> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Accepts TCP connections from `A` and serves them TLS.
pub struct TlsAcceptor<A> {
    inner: A,
    current: Current,
}

impl<A> TlsAcceptor<A> {
    /// `inner`'s connections, each with the configuration current when it arrives.
    pub fn new(inner: A, current: Current) -> Self {
        Self { inner, current }
    }
}

impl<A: Acceptor> Acceptor for TlsAcceptor<A>
where
    A::Io: Unpin,
{
    type Io = TlsIo<A::Io>;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.inner.local_addr()
    }

    fn accept(
        &mut self,
    ) -> impl Future<Output = io::Result<(Self::Io, LocalAddr, RemoteAddr, Scheme)>> + Send {
        let current = self.current.clone();
        let accept = self.inner.accept();
        async move {
            let (io, local, remote, _) = accept.await?;
            // The handshake happens on the connection's own task, at its first read: a slow
            // or silent client never holds up the accept loop.
            let handshake = tokio_rustls::TlsAcceptor::from(current.get()).accept(io);
            Ok((
                TlsIo::Handshaking(Box::new(handshake)),
                local,
                remote,
                Scheme::HTTPS,
            ))
        }
    }
}

/// A connection in TLS: its handshake first, then the stream.
pub enum TlsIo<S> {
    /// The handshake under way.
    Handshaking(Box<tokio_rustls::Accept<S>>),
    /// Ready for HTTP.
    Ready(Box<tokio_rustls::server::TlsStream<S>>),
    /// The handshake failed; the connection is done.
    Failed,
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsIo<S> {
    /// The stream once the handshake is through.
    fn ready(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<&mut tokio_rustls::server::TlsStream<S>>> {
        if let Self::Handshaking(handshake) = self {
            match Pin::new(handshake.as_mut()).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(stream)) => *self = Self::Ready(Box::new(stream)),
                Poll::Ready(Err(e)) => {
                    *self = Self::Failed;
                    return Poll::Ready(Err(e));
                }
            }
        }
        match self {
            Self::Ready(stream) => Poll::Ready(Ok(stream)),
            _ => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the TLS handshake failed",
            ))),
        }
    }
}

/// Runs `$op` on the ready stream, after the handshake.
macro_rules! on_stream {
    ($this:ident, $cx:ident, |$s:ident| $op:expr) => {
        match $this.get_mut().ready($cx) {
            Poll::Ready(Ok($s)) => $op,
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    };
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for TlsIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        on_stream!(self, cx, |s| Pin::new(s).poll_read(cx, buf))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TlsIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        on_stream!(self, cx, |s| Pin::new(s).poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        on_stream!(self, cx, |s| Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        on_stream!(self, cx, |s| Pin::new(s).poll_shutdown(cx))
    }
}
