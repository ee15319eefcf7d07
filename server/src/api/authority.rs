//! A connection wrapper that makes every literal HTTP/2 `:authority` value valid before the h2
//! server parses it.
//!
//! etcdctl 3.4 sends the whole endpoint URL (`http://host:port`) as `:authority` when it dials
//! one endpoint directly (`endpoint status`). grpc-go servers accept that; the `h2` crate resets
//! the stream as malformed. Concord never looks at `:authority`, so the wrapper replaces the value
//! of every literal header field whose name is HPACK static entry 1 (`:authority`) with
//! [`REPLACEMENT`], leaving every other byte as it was.
//!
//! HPACK state stays consistent: an entry the client adds to its dynamic table is added on the
//! server side with the replacement value, which is never longer, so the server evicts no entry
//! the client can still refer to, and an index means the same entry on both sides.
//!
//! Only client-to-server HEADERS frames that carry a whole header block (END_HEADERS) are
//! rewritten; anything unexpected is passed through untouched.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The value every literal `:authority` gets (the shortest valid authority).
pub const REPLACEMENT: &[u8] = b"x";

const PREFACE_LEN: usize = 24;
const FRAME_HEADER: usize = 9;
const TYPE_HEADERS: u8 = 0x1;
const FLAG_END_HEADERS: u8 = 0x4;
const FLAG_PADDED: u8 = 0x8;
const FLAG_PRIORITY: u8 = 0x20;

enum State {
    /// Bytes of the connection preface still to pass.
    Preface(usize),
    /// Waiting for a whole frame header.
    Header,
    /// Passing this many payload bytes through unchanged.
    Passing(usize),
    /// Collecting a HEADERS frame: its header, and its payload length.
    Collecting([u8; FRAME_HEADER], usize),
}

/// Wraps the client side of a connection.
pub struct AuthorityRewrite<S> {
    inner: S,
    state: State,
    /// Bytes read from the client, not yet processed.
    input: Vec<u8>,
    /// Processed bytes, ready for the server.
    output: Vec<u8>,
    out_pos: usize,
}

impl<S> AuthorityRewrite<S> {
    pub fn new(inner: S) -> Self {
        AuthorityRewrite {
            inner,
            state: State::Preface(PREFACE_LEN),
            input: Vec::new(),
            output: Vec::new(),
            out_pos: 0,
        }
    }

    /// Moves whatever can be processed from `input` to `output`.
    fn process(&mut self) {
        let mut at = 0;
        loop {
            let avail = self.input.len() - at;
            match self.state {
                State::Preface(left) | State::Passing(left) => {
                    let n = left.min(avail);
                    self.output.extend_from_slice(&self.input[at..at + n]);
                    at += n;
                    let rest = left - n;
                    self.state = match (&self.state, rest) {
                        (_, 0) => State::Header,
                        (State::Preface(_), r) => State::Preface(r),
                        (_, r) => State::Passing(r),
                    };
                    if rest > 0 {
                        break;
                    }
                }
                State::Header => {
                    if avail < FRAME_HEADER {
                        break;
                    }
                    let mut h = [0u8; FRAME_HEADER];
                    h.copy_from_slice(&self.input[at..at + FRAME_HEADER]);
                    at += FRAME_HEADER;
                    let len =
                        (usize::from(h[0]) << 16) | (usize::from(h[1]) << 8) | usize::from(h[2]);
                    if h[3] == TYPE_HEADERS && h[4] & FLAG_END_HEADERS != 0 {
                        self.state = State::Collecting(h, len);
                    } else {
                        self.output.extend_from_slice(&h);
                        self.state = if len == 0 {
                            State::Header
                        } else {
                            State::Passing(len)
                        };
                    }
                }
                State::Collecting(h, len) => {
                    if avail < len {
                        break;
                    }
                    let payload = &self.input[at..at + len];
                    match rewrite_headers(h[4], payload) {
                        Some((flags, new_payload)) => {
                            let n = new_payload.len();
                            self.output.extend_from_slice(&[
                                (n >> 16) as u8,
                                (n >> 8) as u8,
                                n as u8,
                            ]);
                            self.output.push(h[3]);
                            self.output.push(flags);
                            self.output.extend_from_slice(&h[5..]);
                            self.output.extend_from_slice(&new_payload);
                        }
                        None => {
                            self.output.extend_from_slice(&h);
                            self.output.extend_from_slice(payload);
                        }
                    }
                    at += len;
                    self.state = State::Header;
                }
            }
        }
        self.input.drain(..at);
    }
}

/// Reads an HPACK integer with an `n`-bit prefix at `*at`.
fn read_int(b: &[u8], at: &mut usize, n: u8) -> Option<usize> {
    let mask = (1u16 << n) as usize - 1;
    let mut v = usize::from(*b.get(*at)?) & mask;
    *at += 1;
    if v < mask {
        return Some(v);
    }
    let mut shift = 0;
    loop {
        let byte = *b.get(*at)?;
        *at += 1;
        v = v.checked_add(usize::from(byte & 0x7f).checked_shl(shift)?)?;
        if byte & 0x80 == 0 {
            return Some(v);
        }
        shift += 7;
        if shift > 28 {
            return None;
        }
    }
}

/// Skips an HPACK string literal at `*at`.
fn skip_string(b: &[u8], at: &mut usize) -> Option<()> {
    let len = read_int(b, at, 7)?;
    let end = at.checked_add(len)?;
    if end > b.len() {
        return None;
    }
    *at = end;
    Some(())
}

/// Rewrites a HEADERS payload; None means "pass it unchanged" (nothing to do, or not parsable).
fn rewrite_headers(flags: u8, payload: &[u8]) -> Option<(u8, Vec<u8>)> {
    let mut start = 0;
    let mut end = payload.len();
    if flags & FLAG_PADDED != 0 {
        let pad = usize::from(*payload.first()?);
        start = 1;
        end = end.checked_sub(pad)?;
    }
    let mut out = Vec::with_capacity(payload.len());
    if flags & FLAG_PRIORITY != 0 {
        out.extend_from_slice(payload.get(start..start + 5)?);
        start += 5;
    }
    let block = payload.get(start..end)?;
    let mut changed = false;
    let mut at = 0;
    while at < block.len() {
        let first = block[at];
        let from = at;
        // Literal representations and the prefix bits of their name index.
        let prefix = if first & 0x80 != 0 {
            read_int(block, &mut at, 7)?; // indexed field
            out.extend_from_slice(&block[from..at]);
            continue;
        } else if first & 0x40 != 0 {
            6 // literal with incremental indexing
        } else if first & 0x20 != 0 {
            read_int(block, &mut at, 5)?; // dynamic table size update
            out.extend_from_slice(&block[from..at]);
            continue;
        } else {
            4 // literal without indexing / never indexed
        };
        let name_index = read_int(block, &mut at, prefix)?;
        if name_index == 0 {
            skip_string(block, &mut at)?;
        }
        let name_end = at;
        skip_string(block, &mut at)?;
        out.extend_from_slice(&block[from..name_end]);
        if name_index == 1 {
            out.push(REPLACEMENT.len() as u8); // not Huffman-coded, length < 127
            out.extend_from_slice(REPLACEMENT);
            changed = true;
        } else {
            out.extend_from_slice(&block[name_end..at]);
        }
    }
    changed.then_some((flags & !FLAG_PADDED, out))
}

impl<S: AsyncRead + Unpin> AsyncRead for AuthorityRewrite<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.out_pos < this.output.len() {
                let n = (this.output.len() - this.out_pos).min(buf.remaining());
                buf.put_slice(&this.output[this.out_pos..this.out_pos + n]);
                this.out_pos += n;
                if this.out_pos == this.output.len() {
                    this.output.clear();
                    this.out_pos = 0;
                }
                return Poll::Ready(Ok(()));
            }
            let mut chunk = [0u8; 16 * 1024];
            let mut rb = ReadBuf::new(&mut chunk);
            match Pin::new(&mut this.inner).poll_read(cx, &mut rb) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {
                    if rb.filled().is_empty() {
                        // End of stream: hand over anything still held back, unchanged.
                        if this.input.is_empty() {
                            return Poll::Ready(Ok(()));
                        }
                        let rest = std::mem::take(&mut this.input);
                        this.output.extend_from_slice(&rest);
                        continue;
                    }
                    this.input.extend_from_slice(rb.filled());
                    this.process();
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for AuthorityRewrite<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl<S> AuthorityRewrite<S> {
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let n = payload.len();
        let mut f = vec![(n >> 16) as u8, (n >> 8) as u8, n as u8, kind, flags];
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    fn literal(first: u8, value: &[u8]) -> Vec<u8> {
        let mut v = vec![first, value.len() as u8];
        v.extend_from_slice(value);
        v
    }

    async fn run(input: Vec<u8>) -> Vec<u8> {
        let mut w = AuthorityRewrite::new(&input[..]);
        let mut out = Vec::new();
        w.read_to_end(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn authority_literals_are_replaced_and_the_rest_is_untouched() {
        let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        let settings = frame(0x4, 0, 0, &[0, 3, 0, 0, 0, 100]);
        // :method POST (indexed 3), :authority literal with incremental indexing (0x41),
        // :path literal without indexing (name index 4 -> 0x04), a new-name literal, and a
        // dynamic-table index (0xbe).
        let mut block = vec![0x83];
        block.extend(literal(0x41, b"http://127.0.0.1:2379"));
        block.extend(literal(0x04, b"/etcdserverpb.KV/Range"));
        block.extend([0x40, 2, b't', b'e']);
        block.extend([2, b'v', b'1']);
        block.push(0xbe);
        let headers = frame(TYPE_HEADERS, FLAG_END_HEADERS, 1, &block);
        let data = frame(0x0, 0x1, 1, &[0, 0, 0, 0, 2, 1, 2]);
        let input = [preface.clone(), settings.clone(), headers, data.clone()].concat();
        let out = run(input).await;

        let mut want_block = vec![0x83];
        want_block.extend(literal(0x41, REPLACEMENT));
        want_block.extend(literal(0x04, b"/etcdserverpb.KV/Range"));
        want_block.extend([0x40, 2, b't', b'e', 2, b'v', b'1', 0xbe]);
        let want = [
            preface,
            settings,
            frame(TYPE_HEADERS, FLAG_END_HEADERS, 1, &want_block),
            data,
        ]
        .concat();
        assert_eq!(out, want);
    }

    #[tokio::test]
    async fn padding_and_priority_are_handled_and_valid_authorities_pass() {
        let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        let mut payload = vec![3]; // pad length
        payload.extend([0, 0, 0, 0, 16]); // priority
        payload.extend(literal(0x01, b"http://h:1")); // without indexing, name :authority
        payload.extend([0, 0, 0]); // padding
        let f = frame(
            TYPE_HEADERS,
            FLAG_END_HEADERS | FLAG_PADDED | FLAG_PRIORITY,
            3,
            &payload,
        );
        let out = run([preface.clone(), f].concat()).await;
        let mut want_payload = vec![0, 0, 0, 0, 16];
        want_payload.extend(literal(0x01, REPLACEMENT));
        let want = [
            preface.clone(),
            frame(
                TYPE_HEADERS,
                FLAG_END_HEADERS | FLAG_PRIORITY,
                3,
                &want_payload,
            ),
        ]
        .concat();
        assert_eq!(out, want);

        // Garbage in a header block passes unchanged.
        let bad = frame(TYPE_HEADERS, FLAG_END_HEADERS, 5, &[0x41, 0x7f]);
        let input = [preface, bad].concat();
        assert_eq!(run(input.clone()).await, input);
    }

    #[tokio::test]
    async fn frames_split_across_reads_are_reassembled() {
        let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        let block = literal(0x41, b"http://127.0.0.1:1");
        let input = [
            preface,
            frame(TYPE_HEADERS, FLAG_END_HEADERS, 1, &block),
            frame(0, 1, 1, &[9; 40000]),
        ]
        .concat();
        let (mut a, b) = tokio::io::duplex(7);
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            a.write_all(&input).await.unwrap();
        });
        let mut w = AuthorityRewrite::new(b);
        let mut out = Vec::new();
        w.read_to_end(&mut out).await.unwrap();
        writer.await.unwrap();
        assert_eq!(&out[24 + 9..24 + 9 + 3], &[0x41, 1, b'x']);
        assert_eq!(out.len(), 24 + 9 + 3 + 9 + 40000);
    }
}
