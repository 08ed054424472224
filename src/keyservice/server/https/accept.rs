//! The first step of every accepted TCP connection, before TLS: it takes a slot under the
//! connection caps (or is closed at once), and from then on its writes may not stall.

use super::conns::{ConnCounter, ConnSlot, Refused};
use axum_server::accept::Accept;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

/// At most one warning about refused connections per this long: a flood must not turn
/// into a flood of log lines.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

/// Counts refusals between warnings.
#[derive(Default)]
struct RefusalLog {
    /// When the last warning was written, and refusals since.
    state: Mutex<(Option<Instant>, u64)>,
}

impl RefusalLog {
    fn note(&self, ip: IpAddr, why: Refused) {
        log::debug!("connection from {ip} refused: {why}");
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.1 += 1;
        let now = Instant::now();
        if s.0
            .is_none_or(|t| now.duration_since(t) >= REFUSAL_LOG_EVERY)
        {
            log::warn!(
                "{} connection(s) refused over the caps since the last such warning; \
                 latest from {ip}: {why}",
                s.1
            );
            *s = (Some(now), 0);
        }
    }
}

/// Admits connections under the caps and wraps them in [`Guarded`].
#[derive(Clone)]
pub(crate) struct GuardAcceptor {
    counter: ConnCounter,
    write_stall: Duration,
    refusals: Arc<RefusalLog>,
}

impl GuardAcceptor {
    /// `write_stall`: how long a write to the client may make no progress before the
    /// connection is dropped (a client that never reads its answers).
    pub(crate) fn new(counter: ConnCounter, write_stall: Duration) -> Self {
        GuardAcceptor {
            counter,
            write_stall,
            refusals: Arc::default(),
        }
    }

    fn admit(&self, stream: TcpStream) -> io::Result<Guarded> {
        let ip = stream.peer_addr()?.ip().to_canonical();
        let slot = self.counter.admit(ip).map_err(|why| {
            self.refusals.note(ip, why);
            io::Error::other(why)
        })?;
        // Answers are one small write each: do not hold them back for Nagle.
        let _ = stream.set_nodelay(true);
        Ok(Guarded {
            inner: stream,
            _slot: slot,
            write_stall: self.write_stall,
            stalled_since: None,
        })
    }
}

impl<S> Accept<TcpStream, S> for GuardAcceptor {
    type Stream = Guarded;
    type Service = S;
    type Future = std::future::Ready<io::Result<(Guarded, S)>>;

    /// A refused stream is dropped here, which closes it before any TLS work.
    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        std::future::ready(self.admit(stream).map(|g| (g, service)))
    }
}

/// An admitted connection: holds its slot until dropped, and fails a write that made no
/// progress for `write_stall`.
pub(crate) struct Guarded {
    inner: TcpStream,
    _slot: ConnSlot,
    write_stall: Duration,
    stalled_since: Option<Pin<Box<Sleep>>>,
}

impl Guarded {
    /// Called when a write is pending: starts the stall timer, or fails once it ran out.
    fn stalled<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let stall = self.write_stall;
        let timer = self
            .stalled_since
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(stall)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the client read nothing for {} s", stall.as_secs()),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn progress<T>(&mut self, r: Poll<io::Result<T>>, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        match r {
            Poll::Pending => self.stalled(cx),
            ready => {
                self.stalled_since = None;
                ready
            }
        }
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.progress(r, cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.progress(r, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_flush(cx);
        this.progress(r, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.progress(r, cx)
    }
}
