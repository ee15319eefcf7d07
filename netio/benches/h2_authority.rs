//! What the `:authority` rewriter costs on the bytes a client sends: client traffic is read
//! from memory through it, with 8 KiB buffers as h2 reads, next to the same reads without it.
//!
//! - `unary`: per request a HEADERS frame (indexed fields and a path literal, as grpc-go and
//!   tonic clients send once their tables are warm) and a 60-byte DATA frame;
//! - `bulk`: per request a HEADERS frame and a 16 KiB DATA frame.

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use concord_netio::H2AuthorityRewrite;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use tokio::io::{AsyncRead, ReadBuf};

/// A socket that always has data: every read fills the buffer (a kernel copy).
struct Mem<'a> {
    data: &'a [u8],
    pos: usize,
}

impl AsyncRead for Mem<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = buf.remaining().min(self.data.len() - self.pos);
        buf.put_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Poll::Ready(Ok(()))
    }
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let n = payload.len();
    let mut f = vec![(n >> 16) as u8, (n >> 8) as u8, n as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn traffic(requests: u32, data: usize) -> Vec<u8> {
    let mut t = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    t.extend(frame(4, 0, 0, &[]));
    // :method POST, :scheme http, :path literal, then dynamic entries (te, content-type,
    // user-agent, grpc-timeout, :authority).
    let mut block = vec![0x83, 0x86, 0x04, 16];
    block.extend_from_slice(b"/etcdserverpb.KV");
    block.extend([0xbe, 0xbf, 0xc0, 0xc1, 0xc2]);
    let body = vec![7u8; data];
    for i in 0..requests {
        let stream = 2 * i + 1;
        t.extend(frame(1, 0x4, stream, &block));
        t.extend(frame(0, 0x1, stream, &body));
    }
    t
}

/// Reads everything with 8 KiB buffers; returns the byte count.
fn drain<R: AsyncRead + Unpin>(mut r: R) -> usize {
    let mut cx = Context::from_waker(Waker::noop());
    let mut storage = vec![MaybeUninit::<u8>::uninit(); 8192];
    let mut total = 0;
    loop {
        let mut rb = ReadBuf::uninit(&mut storage);
        match Pin::new(&mut r).poll_read(&mut cx, &mut rb) {
            Poll::Ready(Ok(())) if rb.filled().is_empty() => return total,
            Poll::Ready(Ok(())) => total += black_box(rb.filled()).len(),
            other => panic!("{other:?}"),
        }
    }
}

fn bench(c: &mut Criterion) {
    for (name, requests, data) in [("unary", 100_000, 60), ("bulk", 1_000, 16 * 1024)] {
        let t = traffic(requests, data);
        assert_eq!(drain(Mem { data: &t, pos: 0 }), t.len());
        assert_eq!(
            drain(H2AuthorityRewrite::new(Mem { data: &t, pos: 0 })),
            t.len()
        );
        let mut g = c.benchmark_group(format!("h2_authority/{name}"));
        g.throughput(Throughput::Bytes(t.len() as u64));
        g.bench_function("plain", |b| b.iter(|| drain(Mem { data: &t, pos: 0 })));
        g.bench_function("rewriter", |b| {
            b.iter(|| drain(H2AuthorityRewrite::new(Mem { data: &t, pos: 0 })))
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
