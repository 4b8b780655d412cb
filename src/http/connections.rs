//! The open HTTP connections: what each is doing, so the server can cap them and pick the one
//! to close.
//!
//! A connection is *busy* while a request is being answered (from the handler's start until
//! its response has been handed to hyper); otherwise it is idle between keep-alive requests
//! or still sending its request. At the cap the oldest connection that is not busy is closed:
//! a new scraper or load balancer is always admitted while idle or slow sockets pile up.

use std::collections::BTreeMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

/// One connection's state, shared by its task, its IO and the registry.
#[derive(Debug)]
pub(super) struct Connection {
    id: u64,
    /// Milliseconds since the registry's epoch of the last byte read or written.
    last_io_ms: AtomicU64,
    busy: AtomicUsize,
    epoch: Instant,
    /// Close now (evicted).
    pub evict: Notify,
}

impl Connection {
    fn touch(&self) {
        self.last_io_ms
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// Time since the last byte in either direction.
    pub fn quiet_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_io_ms.load(Ordering::Relaxed));
        self.epoch.elapsed().saturating_sub(last)
    }

    /// Whether a request is being answered.
    pub fn busy(&self) -> bool {
        self.busy.load(Ordering::Relaxed) > 0
    }

    /// Marks a request as being answered until the guard drops.
    pub fn answering(self: &Arc<Connection>) -> Answering {
        self.busy.fetch_add(1, Ordering::Relaxed);
        Answering(self.clone())
    }
}

/// A request being answered on a connection.
pub(super) struct Answering(Arc<Connection>);

impl Drop for Answering {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

/// Every open connection, oldest first.
#[derive(Debug)]
pub(super) struct Registry {
    epoch: Instant,
    next_id: AtomicU64,
    open: Mutex<BTreeMap<u64, Arc<Connection>>>,
}

impl Registry {
    pub fn new() -> Registry {
        Registry {
            epoch: Instant::now(),
            next_id: AtomicU64::new(0),
            open: Mutex::default(),
        }
    }

    fn open(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<Connection>>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a new connection; at `max` open, first closes the oldest one that is not
    /// busy (returns whether one was).
    pub fn admit(&self, max: usize) -> (Arc<Connection>, bool) {
        let connection = Arc::new(Connection {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            last_io_ms: AtomicU64::new(self.epoch.elapsed().as_millis() as u64),
            busy: AtomicUsize::new(0),
            epoch: self.epoch,
            evict: Notify::new(),
        });
        let mut open = self.open();
        let mut evicted = false;
        if open.len() >= max {
            let victim = open.values().find(|c| !c.busy()).map(|c| c.id);
            if let Some(victim) = victim.and_then(|id| open.remove(&id)) {
                victim.evict.notify_one();
                evicted = true;
            }
        }
        open.insert(connection.id, connection.clone());
        (connection, evicted)
    }

    /// Forgets a connection that ended.
    pub fn close(&self, connection: &Connection) {
        self.open().remove(&connection.id);
    }

    /// Connections open now.
    pub fn len(&self) -> usize {
        self.open().len()
    }
}

/// A socket that records when bytes last moved, for the idle and request timeouts.
pub(super) struct TrackedIo<T> {
    pub inner: T,
    pub connection: Arc<Connection>,
}

impl<T: AsyncRead + Unpin> AsyncRead for TrackedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(poll, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.connection.touch();
        }
        poll
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for TrackedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(poll, Poll::Ready(Ok(written)) if written > 0) {
            self.connection.touch();
        }
        poll
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_the_cap_the_oldest_connection_not_being_answered_goes() {
        let registry = Registry::new();
        let (first, _) = registry.admit(3);
        let (second, _) = registry.admit(3);
        let (_third, evicted) = registry.admit(3);
        assert!(!evicted);
        let _answering = first.answering();
        let (_fourth, evicted) = registry.admit(3);
        assert!(evicted, "the cap makes room");
        // The first is busy: the second, the oldest idle one, was closed.
        assert_eq!(registry.len(), 3);
        assert!(registry.open().contains_key(&first.id));
        assert!(!registry.open().contains_key(&second.id));
    }
}
