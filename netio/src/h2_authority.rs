//! A connection wrapper that makes every literal HTTP/2 `:authority` value valid before the h2
//! server parses it.
//!
//! etcdctl 3.4 sends the whole endpoint URL (`http://host:port`) as `:authority` when it dials
//! one endpoint directly (`endpoint status`). grpc-go servers accept that; the `h2` crate resets
//! the stream as malformed. Concord never looks at `:authority`, so the wrapper replaces the
//! value of every literal header field whose name is HPACK static entry 1 (`:authority`) with
//! [`REPLACEMENT`], leaving every other byte as it was.
//!
//! HPACK state stays consistent: an entry the client adds to its dynamic table is added on the
//! server side with the replacement value, which is never longer (an empty value, the one
//! value shorter than the replacement, is left alone), so the server evicts no entry the client
//! can still refer to, and an index means the same entry on both sides.
//!
//! Only client-to-server HEADERS frames that carry a whole header block (END_HEADERS) are
//! rewritten; anything unexpected is passed through untouched. A connection that does not open
//! with the 24-byte HTTP/2 client preface (an HTTP/1.1 request: `/health`, `/metrics`) is not
//! HTTP/2: from the first byte that differs from the preface on, every byte passes unchanged
//! and unscanned. Not rewritten either: a literal
//! that names `:authority` through a dynamic-table index or as a new name (no known client
//! encodes it so: grpc-go and h2 use the static name).
//!
//! **Cost.** Bytes are read straight into the caller's buffer and scanned there: frame headers
//! are looked at, payloads skipped, and a rewritten header block is written back in place (it
//! only shrinks), so passing data through costs no copy. Bytes are held back only when a read
//! ends inside a frame header or a HEADERS frame; they go in front of the next read.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The value every literal `:authority` gets (the shortest valid authority).
pub(crate) const REPLACEMENT: &[u8] = b"x";

/// The HTTP/2 client connection preface (RFC 9113, section 3.4).
const PREFACE: &[u8; PREFACE_LEN] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const PREFACE_LEN: usize = 24;
const FRAME_HEADER: usize = 9;
const TYPE_HEADERS: u8 = 0x1;
const FLAG_END_HEADERS: u8 = 0x4;
const FLAG_PADDED: u8 = 0x8;
const FLAG_PRIORITY: u8 = 0x20;

/// Held-back bytes up to this many are copied in front of the next read in the caller's
/// buffer (so the bytes after them are scanned in place); a longer held-back frame is
/// collected on the side instead, so that a frame dripping in byte by byte costs no more than
/// this much copying per read.
const INLINE_HELD: usize = 4096;

#[derive(Clone, Copy, Debug)]
enum State {
    /// Bytes of the connection preface still to check and pass.
    Preface(usize),
    /// Not HTTP/2 (the stream differs from the preface): everything passes unchanged.
    Raw,
    /// At a frame boundary.
    Header,
    /// Passing this many payload bytes through unchanged.
    Passing(usize),
}

/// Wraps the client side of an HTTP/2 connection and rewrites the `:authority` literals the
/// client sends (see the module docs). Writes pass straight through.
pub struct H2AuthorityRewrite<S> {
    inner: S,
    /// Where the next unscanned byte falls; always `Header` while `held` is not empty.
    state: State,
    /// Bytes read but not yet scanned: the start of a frame header or of a HEADERS frame that
    /// a read cut off. They start at a frame boundary.
    held: Vec<u8>,
    /// Scanned bytes that did not fit in the caller's buffer.
    out: Vec<u8>,
    out_pos: usize,
    /// Reused for rewriting one header block.
    scratch: Vec<u8>,
}

impl<S> H2AuthorityRewrite<S> {
    pub fn new(inner: S) -> Self {
        H2AuthorityRewrite {
            inner,
            state: State::Preface(PREFACE_LEN),
            held: Vec::new(),
            out: Vec::new(),
            out_pos: 0,
            scratch: Vec::new(),
        }
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Scans `data`, which follows everything scanned before, in place: rewrites every whole
    /// HEADERS frame in it and moves what follows each rewritten frame down. Returns `(n,
    /// used)`: `data[..n]` is ready for the server, and `data[used..]` (a frame header or a
    /// HEADERS frame cut off by the end of `data`) must be scanned again with more bytes.
    fn scan(&mut self, data: &mut [u8]) -> (usize, usize) {
        scan(&mut self.state, &mut self.scratch, data)
    }

    /// Bytes still missing from the frame header, or the HEADERS frame, at the start of `held`
    /// before it can be scanned.
    fn held_missing(&self) -> usize {
        let Some(h) = self.held.get(..FRAME_HEADER) else {
            return FRAME_HEADER - self.held.len();
        };
        if h[3] != TYPE_HEADERS || h[4] & FLAG_END_HEADERS == 0 {
            return 0;
        }
        (FRAME_HEADER + frame_len(h)).saturating_sub(self.held.len())
    }
}

fn frame_len(h: &[u8]) -> usize {
    (usize::from(h[0]) << 16) | (usize::from(h[1]) << 8) | usize::from(h[2])
}

/// See [`H2AuthorityRewrite::scan`].
fn scan(state: &mut State, scratch: &mut Vec<u8>, data: &mut [u8]) -> (usize, usize) {
    // Bytes before `w` are final; `r` is the next byte to look at. `w < r` only after a block
    // was rewritten shorter; from then on what passes is moved down.
    let (mut r, mut w) = (0, 0);
    loop {
        let avail = data.len() - r;
        match *state {
            State::Raw => {
                if w != r {
                    data.copy_within(r.., w);
                }
                w += avail;
                r += avail;
                break;
            }
            State::Preface(left) => {
                // Check the bytes against the preface; at the first difference the connection
                // is not HTTP/2 and the rest passes raw. Nothing was rewritten yet, so w == r.
                let n = left.min(avail);
                let at = PREFACE_LEN - left;
                if data[r..r + n] != PREFACE[at..at + n] {
                    *state = State::Raw;
                    continue;
                }
                r += n;
                w += n;
                *state = if left == n {
                    State::Header
                } else {
                    State::Preface(left - n)
                };
                if left > n {
                    break;
                }
            }
            State::Passing(left) => {
                let n = left.min(avail);
                if w != r {
                    data.copy_within(r..r + n, w);
                }
                r += n;
                w += n;
                let rest = left - n;
                *state = match rest {
                    0 => State::Header,
                    rest => State::Passing(rest),
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
                h.copy_from_slice(&data[r..r + FRAME_HEADER]);
                let len = frame_len(&h);
                if h[3] != TYPE_HEADERS || h[4] & FLAG_END_HEADERS == 0 {
                    if w != r {
                        data.copy_within(r..r + FRAME_HEADER, w);
                    }
                    r += FRAME_HEADER;
                    w += FRAME_HEADER;
                    if len > 0 {
                        *state = State::Passing(len);
                    }
                    continue;
                }
                if avail - FRAME_HEADER < len {
                    break; // the whole HEADERS frame is needed
                }
                let payload = r + FRAME_HEADER..r + FRAME_HEADER + len;
                match rewrite_block(h[4], &data[payload.clone()], scratch) {
                    Some(flags) => {
                        let n = scratch.len();
                        data[w..w + 3].copy_from_slice(&[(n >> 16) as u8, (n >> 8) as u8, n as u8]);
                        data[w + 3] = h[3];
                        data[w + 4] = flags;
                        data[w + 5..w + FRAME_HEADER].copy_from_slice(&h[5..]);
                        w += FRAME_HEADER;
                        data[w..w + n].copy_from_slice(scratch);
                        w += n;
                    }
                    None => {
                        if w != r {
                            data.copy_within(r..payload.end, w);
                        }
                        w += FRAME_HEADER + len;
                    }
                }
                r = payload.end;
            }
        }
    }
    (w, r)
}

/// Reads an HPACK integer with an `n`-bit prefix at `*at`.
#[inline]
fn read_int(b: &[u8], at: &mut usize, n: u8) -> Option<usize> {
    let mask = (1usize << n) - 1;
    let v = usize::from(*b.get(*at)?) & mask;
    *at += 1;
    if v < mask {
        return Some(v);
    }
    read_int_rest(b, at, v)
}

/// The continuation bytes of an integer whose prefix was `v` (all ones).
#[inline(never)]
fn read_int_rest(b: &[u8], at: &mut usize, mut v: usize) -> Option<usize> {
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

/// Skips an HPACK string literal at `*at`; returns its encoded length.
#[inline]
fn skip_string(b: &[u8], at: &mut usize) -> Option<usize> {
    let len = read_int(b, at, 7)?;
    let end = at.checked_add(len)?;
    if end > b.len() {
        return None;
    }
    *at = end;
    Some(len)
}

/// Parses the HPACK representation at `*at` and moves past it. Returns whether it is a
/// literal to rewrite: one whose name is static entry 1 (`:authority`) and whose value is not
/// empty (an empty value stays: the replacement would be longer, and would take more room in
/// the server's dynamic table than the client counts for the entry). Then the value's string
/// literal starts at the returned offset. None: not parsable.
#[inline]
fn representation(block: &[u8], at: &mut usize) -> Option<Option<usize>> {
    let first = *block.get(*at)?;
    // Literal representations and the prefix bits of their name index.
    let prefix = if first & 0x80 != 0 {
        read_int(block, at, 7)?; // indexed field
        return Some(None);
    } else if first & 0x40 != 0 {
        6 // literal with incremental indexing
    } else if first & 0x20 != 0 {
        read_int(block, at, 5)?; // dynamic table size update
        return Some(None);
    } else {
        4 // literal without indexing / never indexed
    };
    let name_index = read_int(block, at, prefix)?;
    if name_index == 0 {
        skip_string(block, at)?;
    }
    let value = *at;
    let value_len = skip_string(block, at)?;
    Some((name_index == 1 && value_len > 0).then_some(value))
}

/// Rewrites the payload of a HEADERS frame with `flags` into `out` and returns the new flags,
/// or returns None: pass it unchanged (nothing to rewrite, or not parsable). The new payload is
/// never longer than the old one.
pub(crate) fn rewrite_block(flags: u8, payload: &[u8], out: &mut Vec<u8>) -> Option<u8> {
    let mut start = 0;
    let mut end = payload.len();
    if flags & FLAG_PADDED != 0 {
        let pad = usize::from(*payload.first()?);
        start = 1;
        end = end.checked_sub(pad)?;
    }
    let priority = start;
    if flags & FLAG_PRIORITY != 0 {
        start += 5;
    }
    let block = payload.get(start..end)?;
    // Most blocks have nothing to rewrite (a client's tables are warm after its first
    // request): look before copying.
    let mut at = 0;
    let mut any = false;
    while at < block.len() {
        any |= representation(block, &mut at)?.is_some();
    }
    if !any {
        return None;
    }
    out.clear();
    out.extend_from_slice(&payload[priority..start]);
    at = 0;
    while at < block.len() {
        let from = at;
        match representation(block, &mut at)? {
            Some(value) => {
                out.extend_from_slice(&block[from..value]);
                out.push(REPLACEMENT.len() as u8); // not Huffman-coded, length < 127
                out.extend_from_slice(REPLACEMENT);
            }
            None => out.extend_from_slice(&block[from..at]),
        }
    }
    // Never longer: a non-empty value took at least two bytes, and padding is dropped.
    (out.len() <= payload.len()).then_some(flags & !FLAG_PADDED)
}

impl<S: AsyncRead + Unpin> AsyncRead for H2AuthorityRewrite<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.out_pos < this.out.len() {
                let n = (this.out.len() - this.out_pos).min(buf.remaining());
                buf.put_slice(&this.out[this.out_pos..this.out_pos + n]);
                this.out_pos += n;
                if this.out_pos == this.out.len() {
                    this.out.clear();
                    this.out_pos = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            if matches!(this.state, State::Raw) && this.held.is_empty() {
                // Not HTTP/2: straight through.
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            }
            let start = buf.filled().len();
            if this.held.len() < INLINE_HELD.min(buf.remaining()) {
                // Held-back bytes, then a read, in the caller's buffer; scanned there.
                buf.put_slice(&this.held);
                let before = buf.filled().len();
                match Pin::new(&mut this.inner).poll_read(cx, buf) {
                    Poll::Ready(Ok(())) => {}
                    other => {
                        buf.set_filled(start);
                        return other;
                    }
                }
                let end = buf.filled().len();
                this.held.clear();
                if end == before {
                    // End of stream: anything held back goes out unchanged.
                    return Poll::Ready(Ok(()));
                }
                let (n, used) = this.scan(&mut buf.filled_mut()[start..end]);
                this.held
                    .extend_from_slice(&buf.filled()[start + used..end]);
                buf.set_filled(start + n);
                if n > 0 {
                    return Poll::Ready(Ok(()));
                }
                continue;
            }
            // A long held-back frame (or a small buffer): collect the frame on the side.
            match Pin::new(&mut this.inner).poll_read(cx, buf) {
                Poll::Ready(Ok(())) => {}
                other => {
                    buf.set_filled(start);
                    return other;
                }
            }
            let end = buf.filled().len();
            if end == start {
                // End of stream: anything held back goes out unchanged.
                this.out = std::mem::take(&mut this.held);
                continue;
            }
            this.held.extend_from_slice(&buf.filled()[start..end]);
            buf.set_filled(start);
            if this.held_missing() > 0 {
                continue;
            }
            let mut data = std::mem::take(&mut this.held);
            let (n, used) = this.scan(&mut data);
            this.held.extend_from_slice(&data[used..]);
            data.truncate(n);
            this.out = data;
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for H2AuthorityRewrite<S> {
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

#[cfg(test)]
mod hpack;
#[cfg(test)]
mod tests;
