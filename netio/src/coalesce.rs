//! A connection wrapper that gathers the messages of many HTTP/2 streams into one socket write.
//!
//! h2 flushes after every poll of a connection, and tokio runs a connection task as soon as a
//! request task wakes it, so without help every unary response (or, on a client, every
//! request) leaves in its own `writev` (about one per put under load; docs/PERFORMANCE.md has
//! the figures). This wrapper keeps what h2 writes in a buffer and, on the
//! first flush that finds data, wakes its own task and returns `Pending` once: the connection
//! task goes to the back of the run queue, the other ready stream tasks add their frames
//! meanwhile, and the next flush writes them all in one call. Nothing is ever held past the second flush, and an idle runtime re-polls at once, so
//! the delay is one turn of the scheduler.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Above this many buffered bytes writes go to the socket before more are accepted.
const MAX_BUFFERED: usize = 256 * 1024;
/// A write at least this large with nothing buffered goes straight to the socket (no copy).
const DIRECT_WRITE: usize = 64 * 1024;

pub struct Coalesce<S> {
    inner: S,
    buf: Vec<u8>,
    /// Bytes of `buf` already written.
    written: usize,
    /// A flush was put off once since the last write reached the socket.
    deferred: bool,
}

impl<S> Coalesce<S> {
    pub fn new(inner: S) -> Self {
        Coalesce {
            inner,
            buf: Vec::new(),
            written: 0,
            deferred: false,
        }
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: AsyncWrite + Unpin> Coalesce<S> {
    /// Writes out everything buffered.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.buf.len() {
            match Pin::new(&mut self.inner).poll_write(cx, &self.buf[self.written..]) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => self.written += n,
            }
        }
        self.buf.clear();
        self.written = 0;
        self.deferred = false;
        Poll::Ready(Ok(()))
    }

    fn pending(&self) -> usize {
        self.buf.len() - self.written
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Coalesce<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Coalesce<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[io::IoSlice::new(data)])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if this.pending() + total > MAX_BUFFERED {
            if let Err(e) = std::task::ready!(this.poll_drain(cx)) {
                return Poll::Ready(Err(e));
            }
        }
        if this.pending() == 0 && total >= DIRECT_WRITE {
            return Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        }
        for b in bufs {
            this.buf.extend_from_slice(b);
        }
        Poll::Ready(Ok(total))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.pending() > 0 && !this.deferred {
            this.deferred = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        if let Err(e) = std::task::ready!(this.poll_drain(cx)) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Err(e) = std::task::ready!(this.poll_drain(cx)) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn writes_arrive_whole_and_in_order_after_flush() {
        let (a, mut b) = tokio::io::duplex(1 << 20);
        let mut w = Coalesce::new(a);
        let big = vec![7u8; DIRECT_WRITE + 1];
        w.write_all(b"one").await.unwrap();
        w.write_all(b"two").await.unwrap();
        w.flush().await.unwrap();
        w.write_all(&big).await.unwrap();
        w.write_all(b"three").await.unwrap();
        w.shutdown().await.unwrap();
        let mut got = Vec::new();
        b.read_to_end(&mut got).await.unwrap();
        let mut want = b"onetwo".to_vec();
        want.extend_from_slice(&big);
        want.extend_from_slice(b"three");
        assert_eq!(got, want);
    }

    #[tokio::test]
    async fn nothing_is_sent_before_a_flush_and_everything_after_it() {
        let (a, mut b) = tokio::io::duplex(1 << 20);
        let mut w = Coalesce::new(a);
        w.write_all(b"held").await.unwrap();
        let mut one = [0u8; 4];
        let early =
            tokio::time::timeout(std::time::Duration::from_millis(50), b.read_exact(&mut one))
                .await;
        assert!(early.is_err(), "bytes left before any flush");
        w.flush().await.unwrap();
        b.read_exact(&mut one).await.unwrap();
        assert_eq!(&one, b"held");
    }

    #[tokio::test]
    async fn a_slow_reader_gets_everything_through_a_small_pipe() {
        let (a, mut b) = tokio::io::duplex(1024);
        let mut w = Coalesce::new(a);
        let data: Vec<u8> = (0..MAX_BUFFERED * 3).map(|i| i as u8).collect();
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            b.read_to_end(&mut got).await.unwrap();
            got
        });
        for chunk in data.chunks(1000) {
            w.write_all(chunk).await.unwrap();
        }
        w.shutdown().await.unwrap();
        drop(w);
        assert_eq!(reader.await.unwrap(), data);
    }
}
