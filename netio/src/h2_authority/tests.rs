//! Tests of the `:authority` rewriter: examples, regressions, and property tests that split
//! arbitrary streams into arbitrary reads, and that have the real `h2` server decode
//! generated header blocks.

use std::task::Waker;

use http::{HeaderMap, HeaderName, HeaderValue};
use proptest::collection::vec;
use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::hpack::{self, Encoder, Literal, Name};
use super::*;

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

fn rewrite(flags: u8, payload: &[u8]) -> Option<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    rewrite_block(flags, payload, &mut out).map(|f| (f, out))
}

async fn run(input: Vec<u8>) -> Vec<u8> {
    let mut w = H2AuthorityRewrite::new(&input[..]);
    let mut out = Vec::new();
    w.read_to_end(&mut out).await.unwrap();
    out
}

#[tokio::test]
async fn authority_literals_are_replaced_and_the_rest_is_untouched() {
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
    let input = [PREFACE.to_vec(), settings.clone(), headers, data.clone()].concat();
    let out = run(input).await;

    let mut want_block = vec![0x83];
    want_block.extend(literal(0x41, REPLACEMENT));
    want_block.extend(literal(0x04, b"/etcdserverpb.KV/Range"));
    want_block.extend([0x40, 2, b't', b'e', 2, b'v', b'1', 0xbe]);
    let want = [
        PREFACE.to_vec(),
        settings,
        frame(TYPE_HEADERS, FLAG_END_HEADERS, 1, &want_block),
        data,
    ]
    .concat();
    assert_eq!(out, want);
}

#[tokio::test]
async fn padding_and_priority_are_handled_and_valid_authorities_pass() {
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
    let out = run([PREFACE.to_vec(), f].concat()).await;
    let mut want_payload = vec![0, 0, 0, 0, 16];
    want_payload.extend(literal(0x01, REPLACEMENT));
    let want = [
        PREFACE.to_vec(),
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
    let input = [PREFACE.to_vec(), bad].concat();
    assert_eq!(run(input.clone()).await, input);
}

#[tokio::test]
async fn frames_split_across_reads_are_reassembled() {
    let block = literal(0x41, b"http://127.0.0.1:1");
    let input = [
        PREFACE.to_vec(),
        frame(TYPE_HEADERS, FLAG_END_HEADERS, 1, &block),
        frame(0, 1, 1, &[9; 40000]),
    ]
    .concat();
    let (mut a, b) = tokio::io::duplex(7);
    let writer = tokio::spawn(async move {
        a.write_all(&input).await.unwrap();
    });
    let mut w = H2AuthorityRewrite::new(b);
    let mut out = Vec::new();
    w.read_to_end(&mut out).await.unwrap();
    writer.await.unwrap();
    assert_eq!(&out[24 + 9..24 + 9 + 3], &[0x41, 1, b'x']);
    assert_eq!(out.len(), 24 + 9 + 3 + 9 + 40000);
}

/// Found by `a_stream_split_anyhow_comes_out_as_the_reference`: the first version dropped the
/// frame header of a HEADERS frame that the end of the stream cut short.
#[tokio::test]
async fn a_headers_frame_cut_short_by_the_end_of_the_stream_passes_whole() {
    let mut input = PREFACE.to_vec();
    input.extend([0, 0, 5, TYPE_HEADERS, FLAG_END_HEADERS, 0, 0, 0, 1, 0x41, 3]);
    assert_eq!(run(input.clone()).await, input);
}

/// Found by `a_block_changes_exactly_in_its_authority_values`: an empty `:authority` became
/// `x`, one byte longer, so the server's dynamic table counted one byte more for the entry
/// than the client's and could evict an entry the client still refers to.
#[test]
fn an_empty_authority_is_left_alone() {
    // Literal with incremental indexing, name :authority, empty value, raw and Huffman.
    assert_eq!(rewrite(FLAG_END_HEADERS, &[0x41, 0x00]), None);
    assert_eq!(rewrite(FLAG_END_HEADERS, &[0x41, 0x80]), None);
    let Some((_, p)) = rewrite(FLAG_END_HEADERS, &[0x41, 0x00, 0x01, 0x02, b'a', b'b']) else {
        panic!("a non-empty authority is rewritten");
    };
    assert_eq!(p, [0x41, 0x00, 0x01, 0x01, b'x']);
}

/// What the empty-`:authority` rewrite did to h2: a client table filled to the byte, then an
/// empty `:authority` added to it (h2 refuses that request), then a request that refers to the
/// oldest entry. Had the server stored `x` there, it would have evicted that entry and ended
/// the connection on the third request.
#[test]
fn an_empty_authority_keeps_the_hpack_tables_in_step() {
    let mut enc = Encoder::new();
    let mut bytes = [PREFACE.to_vec(), frame(4, 0, 0, &[])].concat();
    let big = vec![b'v'; 4096 - 42 - (3 + 32)];
    let mut blocks = vec![Vec::new(), Vec::new(), Vec::new()];
    for b in &mut blocks {
        enc.indexed(b, 2); // GET
        enc.indexed(b, 6); // http
        enc.indexed(b, 4); // /
    }
    enc.literal(
        &mut blocks[0],
        Literal::Incremental,
        Name::New { huffman: false },
        b"x-a",
        &big,
        false,
    );
    enc.literal(
        &mut blocks[1],
        Literal::Incremental,
        Name::Index(1),
        b":authority",
        b"",
        false,
    );
    enc.indexed(&mut blocks[2], 63); // x-a: the oldest entry, still in the client's table
    for (i, b) in blocks.iter().enumerate() {
        bytes.extend(frame(
            TYPE_HEADERS,
            FLAG_END_HEADERS | 1,
            2 * i as u32 + 1,
            b,
        ));
    }
    let (seen, err) = h2_requests(bytes, vec![1 << 20], true);
    assert_eq!(seen.len(), 2, "{err:?}");
    for s in &seen {
        assert_eq!(s.headers.get("x-a").unwrap().as_bytes(), &big[..]);
    }
}

/// An HTTP/1.1 request (the health and metrics endpoints) is not HTTP/2: every byte passes,
/// even bytes that would be rewritten after an HTTP/2 preface.
#[tokio::test]
async fn a_connection_without_the_http2_preface_passes_untouched() {
    let headers = frame(
        TYPE_HEADERS,
        FLAG_END_HEADERS,
        1,
        &literal(0x41, b"http://127.0.0.1:2379"),
    );
    let http1 = b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec();
    let input = [http1, headers.clone()].concat();
    assert_eq!(run(input.clone()).await, input);

    // The preface with its last byte changed: still not HTTP/2.
    let mut almost = PREFACE.to_vec();
    almost[PREFACE_LEN - 1] = b'!';
    let input = [almost, headers.clone()].concat();
    assert_eq!(run(input.clone()).await, input);

    // The same bytes after the real preface are rewritten.
    let input = [PREFACE.to_vec(), headers.clone()].concat();
    assert_ne!(run(input.clone()).await, input);

    // Read one byte at a time, through the raw path.
    let input = b"GET /metrics HTTP/1.1\r\n\r\n".to_vec();
    let mut w = H2AuthorityRewrite::new(Script {
        data: input.clone(),
        pos: 0,
        sizes: vec![1, 3],
        pendings: vec![false, true, false],
        polls: 0,
    });
    assert_eq!(read_all(&mut w, &[(1, 0), (5, 2)], 100), input);
}

#[test]
fn a_full_buffer_reads_nothing() {
    let input = [PREFACE.to_vec(), frame(0, 0, 1, b"data")].concat();
    let mut w = H2AuthorityRewrite::new(&input[..]);
    let mut cx = Context::from_waker(Waker::noop());
    let mut none: [u8; 0] = [];
    let mut rb = ReadBuf::new(&mut none);
    assert!(matches!(
        Pin::new(&mut w).poll_read(&mut cx, &mut rb),
        Poll::Ready(Ok(()))
    ));
    assert_eq!(read_all(&mut w, &[(100, 0)], 10), input);
}

/// Without the wrapper h2 refuses the request that etcdctl 3.4 sends; with it h2 takes it.
#[test]
fn h2_takes_a_whole_url_authority_only_through_the_wrapper() {
    let mut enc = Encoder::new();
    let mut block = Vec::new();
    enc.indexed(&mut block, 3); // POST
    enc.indexed(&mut block, 6); // http
    enc.literal(
        &mut block,
        Literal::Without,
        Name::Index(4),
        b":path",
        b"/a",
        false,
    );
    let authority = b"http://127.0.0.1:2379";
    enc.literal(
        &mut block,
        Literal::Incremental,
        Name::Index(1),
        b":authority",
        authority,
        true,
    );
    let input = [
        PREFACE.to_vec(),
        frame(4, 0, 0, &[]),
        frame(TYPE_HEADERS, FLAG_END_HEADERS | 1, 1, &block),
    ]
    .concat();
    let (plain, _) = h2_requests(input.clone(), vec![1 << 20], false);
    assert!(plain.is_empty(), "h2 took {plain:?}");
    let (wrapped, err) = h2_requests(input, vec![1 << 20], true);
    assert_eq!(wrapped.len(), 1, "{err:?}");
    assert_eq!(wrapped[0].authority.as_deref(), Some("x"));
}

// ===== Streams split into reads =====

/// What the wrapper must make of a whole stream, whatever reads it arrives in.
fn reference(input: &[u8]) -> Vec<u8> {
    let mut at = input.len().min(PREFACE_LEN);
    if input[..at] != PREFACE[..at] {
        return input.to_vec(); // not HTTP/2
    }
    let mut out = input[..at].to_vec();
    while input.len() - at >= FRAME_HEADER {
        let h = &input[at..at + FRAME_HEADER];
        let end = at + FRAME_HEADER + frame_len(h);
        if h[3] == TYPE_HEADERS && h[4] & FLAG_END_HEADERS != 0 {
            if end > input.len() {
                break;
            }
            if let Some((flags, p)) = rewrite(h[4], &input[at + FRAME_HEADER..end]) {
                let n = p.len();
                out.extend_from_slice(&[(n >> 16) as u8, (n >> 8) as u8, n as u8, h[3], flags]);
                out.extend_from_slice(&h[5..]);
                out.extend_from_slice(&p);
                at = end;
                continue;
            }
        }
        let end = end.min(input.len());
        out.extend_from_slice(&input[at..end]);
        at = end;
    }
    out.extend_from_slice(&input[at..]);
    out
}

/// A client that sends `data` in reads of the given sizes (in turn), answering `Pending` to
/// the polls `pendings` says (in turn).
struct Script {
    data: Vec<u8>,
    pos: usize,
    sizes: Vec<usize>,
    pendings: Vec<bool>,
    polls: usize,
}

impl AsyncRead for Script {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        this.polls += 1;
        if this.pendings[this.polls % this.pendings.len()] {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let size = this.sizes[this.polls % this.sizes.len()];
        let n = size.min(buf.remaining()).min(this.data.len() - this.pos);
        buf.put_slice(&this.data[this.pos..this.pos + n]);
        this.pos += n;
        Poll::Ready(Ok(()))
    }
}

/// Reads `w` to its end with buffers of `(capacity, bytes already in it)`, in turn. `Pending`
/// may come at most `patience` times in a row (a frame collected byte by byte is one long
/// run of them).
fn read_all<R: AsyncRead + Unpin>(w: &mut R, bufs: &[(usize, usize)], patience: usize) -> Vec<u8> {
    let mut cx = Context::from_waker(Waker::noop());
    let mut out = Vec::new();
    let mut idle = 0;
    for call in 0.. {
        let (cap, pre) = bufs[call % bufs.len()];
        let mut storage = vec![0xee; pre + cap];
        let mut rb = ReadBuf::new(&mut storage);
        rb.put_slice(&vec![0xab; pre]);
        match Pin::new(&mut *w).poll_read(&mut cx, &mut rb) {
            Poll::Pending => {
                assert_eq!(rb.filled().len(), pre, "bytes given with Pending");
                idle += 1;
                assert!(idle < patience, "no progress");
            }
            Poll::Ready(Err(e)) => panic!("read failed: {e}"),
            Poll::Ready(Ok(())) => {
                idle = 0;
                assert!(
                    rb.filled()[..pre].iter().all(|b| *b == 0xab),
                    "overwrote the caller's bytes"
                );
                let got = &rb.filled()[pre..];
                if got.is_empty() {
                    return out;
                }
                out.extend_from_slice(got);
            }
        }
    }
    unreachable!()
}

/// An HPACK representation, well formed but with any numbers and bytes.
#[derive(Clone, Debug)]
enum Tok {
    Indexed(usize),
    SizeUpdate(usize),
    Literal {
        first: u8,
        name_index: usize,
        name: (Vec<u8>, bool),
        value: (Vec<u8>, bool),
    },
}

impl Tok {
    fn rewritten(&self) -> bool {
        matches!(self, Tok::Literal { name_index: 1, value, .. } if !value.0.is_empty())
    }

    /// Its bytes; `replaced`: with the value the wrapper gives it.
    fn encode(&self, out: &mut Vec<u8>, replaced: bool) {
        let string = |out: &mut Vec<u8>, (bytes, h): &(Vec<u8>, bool)| {
            hpack::int(out, if *h { 0x80 } else { 0 }, 7, bytes.len());
            out.extend_from_slice(bytes);
        };
        match self {
            Tok::Indexed(i) => hpack::int(out, 0x80, 7, *i),
            Tok::SizeUpdate(s) => hpack::int(out, 0x20, 5, *s),
            Tok::Literal {
                first,
                name_index,
                name,
                value,
            } => {
                hpack::int(out, *first, if *first == 0x40 { 6 } else { 4 }, *name_index);
                if *name_index == 0 {
                    string(out, name);
                }
                if replaced && self.rewritten() {
                    string(out, &(REPLACEMENT.to_vec(), false));
                } else {
                    string(out, value);
                }
            }
        }
    }
}

fn number() -> impl Strategy<Value = usize> {
    prop_oneof![3 => 0usize..80, 1 => any::<u32>().prop_map(|v| v as usize)]
}

fn tok() -> impl Strategy<Value = Tok> {
    prop_oneof![
        1 => number().prop_map(Tok::Indexed),
        1 => number().prop_map(Tok::SizeUpdate),
        4 => (
            prop_oneof![Just(0x40u8), Just(0x00), Just(0x10)],
            prop_oneof![3 => Just(1usize), 1 => Just(0usize), 1 => number()],
            (vec(any::<u8>(), 0..12), any::<bool>()),
            (vec(any::<u8>(), 0..150), any::<bool>()),
        )
            .prop_map(|(first, name_index, name, value)| Tok::Literal {
                first,
                name_index,
                name,
                value,
            }),
    ]
}

/// A HEADERS payload of `toks` with optional padding and priority, and the flags it needs.
#[derive(Clone, Debug)]
struct Block {
    toks: Vec<Tok>,
    pad: Option<Vec<u8>>,
    priority: Option<[u8; 5]>,
    other_flags: u8,
}

impl Block {
    fn flags(&self) -> u8 {
        let mut f = FLAG_END_HEADERS | (self.other_flags & !(FLAG_PADDED | FLAG_PRIORITY));
        if self.pad.is_some() {
            f |= FLAG_PADDED;
        }
        if self.priority.is_some() {
            f |= FLAG_PRIORITY;
        }
        f
    }

    /// The payload, or (`replaced`) what the wrapper must make of it.
    fn payload(&self, replaced: bool) -> Vec<u8> {
        let mut p = Vec::new();
        if let (Some(pad), false) = (&self.pad, replaced) {
            p.push(pad.len() as u8);
        }
        if let Some(prio) = self.priority {
            p.extend_from_slice(&prio);
        }
        for t in &self.toks {
            t.encode(&mut p, replaced);
        }
        if let (Some(pad), false) = (&self.pad, replaced) {
            p.extend_from_slice(pad);
        }
        p
    }
}

fn block() -> impl Strategy<Value = Block> {
    (
        vec(tok(), 0..10),
        proptest::option::of(vec(any::<u8>(), 0..20)),
        proptest::option::of(any::<[u8; 5]>()),
        any::<u8>(),
    )
        .prop_map(|(toks, pad, priority, other_flags)| Block {
            toks,
            pad,
            priority,
            other_flags,
        })
}

/// Pieces of a client stream: HEADERS frames with `:authority` literals, any frames, frames
/// whose length lies, long DATA frames, garbage.
fn piece() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => (block(), any::<u32>())
            .prop_map(|(b, stream)| frame(TYPE_HEADERS, b.flags(), stream, &b.payload(false))),
        2 => (any::<u8>(), any::<u8>(), any::<u32>(), vec(any::<u8>(), 0..300))
            .prop_map(|(kind, flags, stream, p)| frame(kind, flags, stream, &p)),
        1 => (0usize..400, prop_oneof![Just(TYPE_HEADERS), any::<u8>()], any::<u8>(), vec(any::<u8>(), 0..300))
            .prop_map(|(len, kind, flags, p)| {
                let mut f = frame(kind, flags, 1, &p);
                f[..3].copy_from_slice(&[0, (len >> 8) as u8, len as u8]);
                f
            }),
        1 => (0usize..40_000).prop_map(|n| frame(0, 0, 1, &vec![7; n])),
        1 => vec(any::<u8>(), 0..20),
    ]
}

fn stream() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => vec(any::<u8>(), 0..3000),
        4 => (any::<bool>(), vec(piece(), 0..12), any::<proptest::sample::Index>(), any::<bool>())
            .prop_map(|(preface, pieces, cut, truncate)| {
                let mut s = if preface { PREFACE.to_vec() } else { vec![0x55; PREFACE_LEN] };
                for p in pieces {
                    s.extend(p);
                }
                if truncate {
                    s.truncate(cut.index(s.len() + 1));
                }
                s
            }),
        // Not HTTP/2, or not quite: an HTTP/1.1 request, or the preface with one byte changed,
        // followed by what would be rewritten after a real preface.
        2 => (not_preface(), vec(piece(), 0..6))
            .prop_map(|(start, pieces)| {
                let mut s = start;
                for p in pieces {
                    s.extend(p);
                }
                s
            }),
    ]
}

/// A connection start that is not the HTTP/2 preface.
fn not_preface() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:2379\r\n\r\n".to_vec()),
        Just(b"POST /v3/kv/range HTTP/1.1\r\n\r\n".to_vec()),
        (0..PREFACE_LEN, 1u8..=255).prop_map(|(at, flip)| {
            let mut p = PREFACE.to_vec();
            p[at] ^= flip;
            p
        }),
    ]
}

fn read_sizes() -> impl Strategy<Value = Vec<usize>> {
    vec(prop_oneof![1usize..16, 16usize..600, Just(1 << 16)], 1..8)
}

fn pendings() -> impl Strategy<Value = Vec<bool>> {
    vec(proptest::bool::weighted(0.2), 0..5).prop_map(|mut v| {
        v.push(false);
        v
    })
}

fn buffers() -> impl Strategy<Value = Vec<(usize, usize)>> {
    vec(
        (
            prop_oneof![1usize..16, 16usize..500, Just(8192), Just(16384)],
            0usize..4,
        ),
        1..6,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Any well-formed block: the wrapper changes exactly the values of the non-empty
    /// `:authority` literals (and drops the padding of a block it changes).
    #[test]
    fn a_block_changes_exactly_in_its_authority_values(b in block()) {
        let payload = b.payload(false);
        match rewrite(b.flags(), &payload) {
            Some((flags, p)) => {
                prop_assert!(b.toks.iter().any(Tok::rewritten));
                prop_assert_eq!(flags, b.flags() & !FLAG_PADDED);
                prop_assert_eq!(p, b.payload(true));
            }
            None => prop_assert!(!b.toks.iter().any(Tok::rewritten)),
        }
    }

    /// Garbage, alone or after a well-formed block: no panic, and nothing longer.
    #[test]
    fn a_garbage_block_never_panics(
        flags in any::<u8>(),
        b in block(),
        garbage in vec(any::<u8>(), 0..300),
    ) {
        for payload in [garbage.clone(), [b.payload(false), garbage].concat()] {
            if let Some((f, p)) = rewrite(flags, &payload) {
                prop_assert_eq!(f, flags & !FLAG_PADDED);
                prop_assert!(p.len() <= payload.len());
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Whatever reads the client's bytes arrive in, whatever buffers the server reads with,
    /// the server gets the whole stream, rewritten as if it had arrived at once.
    #[test]
    fn a_stream_split_anyhow_comes_out_as_the_reference(
        input in stream(),
        sizes in read_sizes(),
        pendings in pendings(),
        bufs in buffers(),
    ) {
        let want = reference(&input);
        let patience = 2 * input.len() + 10;
        let mut w = H2AuthorityRewrite::new(Script {
            data: input,
            pos: 0,
            sizes,
            pendings,
            polls: 0,
        });
        let got = read_all(&mut w, &bufs, patience);
        prop_assert!(got == want, "{} bytes out, {} expected", got.len(), want.len());
    }
}

// ===== h2 decodes what the wrapper passes on =====

/// How one field is encoded.
#[derive(Clone, Debug)]
struct How {
    /// 0: indexed if an entry matches (else a literal with incremental indexing), 1: with
    /// incremental indexing, 2: without indexing, 3: never indexed.
    kind: u8,
    /// 0: a static name index where there is one, 1: a dynamic one where there is one, 2: a
    /// new name.
    name_by: u8,
    name_huffman: bool,
    value_huffman: bool,
}

fn how() -> impl Strategy<Value = How> {
    (0..4u8, 0..3u8, any::<bool>(), any::<bool>()).prop_map(
        |(kind, name_by, name_huffman, value_huffman)| How {
            kind,
            name_by,
            name_huffman,
            value_huffman,
        },
    )
}

#[derive(Clone, Debug)]
struct Request {
    size_updates: Vec<usize>,
    /// `:method`, `:scheme`, `:path` and `:authority`, in the order sent.
    pseudo: Vec<(&'static str, Vec<u8>, How)>,
    fields: Vec<(Vec<u8>, Vec<u8>, How)>,
    pad: Option<u8>,
    weight: Option<u8>,
    ping: bool,
}

/// What h2 hands the server for a request.
#[derive(Clone, Debug, PartialEq)]
struct Seen {
    method: String,
    scheme: Option<String>,
    authority: Option<String>,
    path: String,
    headers: HeaderMap,
}

const FORBIDDEN: &[&str] = &[
    "connection",
    "host",
    "keep-alive",
    "proxy-connection",
    "te",
    "transfer-encoding",
    "upgrade",
];

fn field_name() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::sample::select(vec![
            "accept",
            "accept-encoding",
            "content-type",
            "cookie",
            "grpc-timeout",
            "user-agent",
            "x-a",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        "[a-z][a-z0-9-]{0,10}"
            .prop_filter("not a connection header", |s| !FORBIDDEN
                .contains(&s.as_str()))
            .prop_map(String::into_bytes),
    ]
}

fn field_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        2 => vec(prop_oneof![Just(b'\t'), 0x20u8..0x7f, 0x80u8..=0xff], 0..30),
        // Values that repeat, so that later requests refer to them in the dynamic table.
        1 => proptest::sample::select(vec!["", "gzip", "application/grpc", "1S"])
            .prop_map(|v| v.as_bytes().to_vec()),
    ]
}

fn request() -> impl Strategy<Value = Request> {
    let authority = prop_oneof![
        1 => vec(any::<u8>(), 1..40),
        1 => "http://[0-9.]{1,15}:[0-9]{1,5}".prop_map(String::into_bytes),
        2 => Just(b"http://127.0.0.1:2379".to_vec()),
    ];
    (
        prop_oneof![3 => Just(vec![]), 1 => vec(prop_oneof![0usize..200, 200usize..=4096], 1..=2)],
        proptest::sample::select(vec!["GET", "POST", "PUT", "DELETE", "PATCH"]),
        proptest::sample::select(vec!["http", "https"]),
        "/[a-zA-Z0-9._~/-]{0,30}",
        proptest::option::weighted(0.9, authority),
        vec(how(), 4),
        Just(vec![0usize, 1, 2, 3]).prop_shuffle(),
        vec((field_name(), field_value(), how()), 0..6),
        (
            proptest::option::of(any::<u8>()),
            proptest::option::of(any::<u8>()),
            proptest::bool::weighted(0.2),
        ),
    )
        .prop_map(
            |(
                size_updates,
                method,
                scheme,
                path,
                authority,
                hows,
                order,
                fields,
                (pad, weight, ping),
            )| {
                let all = [
                    (":method", Some(method.as_bytes().to_vec())),
                    (":scheme", Some(scheme.as_bytes().to_vec())),
                    (":path", Some(path.into_bytes())),
                    (":authority", authority),
                ];
                let pseudo = order
                    .iter()
                    .filter_map(|&i| {
                        let (name, value) = &all[i];
                        value.clone().map(|v| (*name, v, hows[i].clone()))
                    })
                    .collect();
                Request {
                    size_updates,
                    pseudo,
                    fields,
                    pad,
                    weight,
                    ping,
                }
            },
        )
}

fn encode_field(enc: &mut Encoder, out: &mut Vec<u8>, name: &[u8], value: &[u8], how: &How) {
    if how.kind == 0 {
        if let Some(&i) = enc.indexes(|n, v| n == name && v == value).first() {
            enc.indexed(out, i);
            return;
        }
    }
    let kind = match how.kind {
        0 | 1 => Literal::Incremental,
        2 => Literal::Without,
        _ => Literal::Never,
    };
    let names = enc.indexes(|n, _| n == name);
    let name_ref = if name == b":authority" {
        Name::Index(1) // the one form the wrapper rewrites (see the module docs)
    } else {
        match how.name_by {
            0 => names.first(),
            1 => names.last(),
            _ => None,
        }
        .map_or(
            Name::New {
                huffman: how.name_huffman,
            },
            |&i| Name::Index(i),
        )
    };
    enc.literal(out, kind, name_ref, name, value, how.value_huffman);
}

/// The client's bytes for `requests`, and what the server must see of each.
fn connection(requests: &[Request]) -> (Vec<u8>, Vec<Seen>) {
    let mut enc = Encoder::new();
    let mut bytes = [PREFACE.to_vec(), frame(4, 0, 0, &[])].concat();
    let mut seen = Vec::new();
    for (i, r) in requests.iter().enumerate() {
        let stream = 2 * i as u32 + 1;
        let mut block = Vec::new();
        for &s in &r.size_updates {
            enc.size_update(&mut block, s);
        }
        for (name, value, how) in &r.pseudo {
            encode_field(&mut enc, &mut block, name.as_bytes(), value, how);
        }
        let mut headers = HeaderMap::new();
        for (name, value, how) in &r.fields {
            encode_field(&mut enc, &mut block, name, value, how);
            headers.append(
                HeaderName::from_bytes(name).unwrap(),
                HeaderValue::from_bytes(value).unwrap(),
            );
        }
        let mut flags = FLAG_END_HEADERS | 0x1; // END_STREAM
        let mut payload = Vec::new();
        if let Some(pad) = r.pad {
            flags |= FLAG_PADDED;
            payload.push(pad);
        }
        if let Some(weight) = r.weight {
            flags |= FLAG_PRIORITY;
            payload.extend([0, 0, 0, 0, weight]);
        }
        payload.extend(block);
        payload.resize(payload.len() + usize::from(r.pad.unwrap_or(0)), 0);
        if r.ping {
            bytes.extend(frame(6, 0, 0, &[i as u8; 8]));
        }
        bytes.extend(frame(TYPE_HEADERS, flags, stream, &payload));

        let pseudo = |name: &str| {
            r.pseudo
                .iter()
                .find(|(n, _, _)| *n == name)
                .map(|(_, v, _)| String::from_utf8_lossy(v).into_owned())
        };
        let authority = pseudo(":authority").map(|_| "x".to_string());
        seen.push(Seen {
            method: pseudo(":method").unwrap(),
            // h2 keeps the scheme only with an authority.
            scheme: authority.as_ref().and(pseudo(":scheme")),
            authority,
            path: pseudo(":path").unwrap(),
            headers,
        });
    }
    (bytes, seen)
}

/// Reads of the given sizes, in turn, from a stream that writes through.
struct Choppy<S> {
    inner: S,
    sizes: Vec<usize>,
    reads: usize,
}

impl<S: AsyncRead + Unpin> AsyncRead for Choppy<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let size = this.sizes[this.reads % this.sizes.len()].min(buf.remaining());
        let mut tmp = vec![0; size];
        let mut rb = ReadBuf::new(&mut tmp);
        std::task::ready!(Pin::new(&mut this.inner).poll_read(cx, &mut rb))?;
        this.reads += 1;
        buf.put_slice(rb.filled());
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Choppy<S> {
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
}

/// Runs an h2 server on `input` (through the wrapper if `wrap`) and returns the requests it
/// accepted, and the error that ended the connection, if one did.
///
/// The client sends a PING after `input` and waits for its acknowledgement before it tells the
/// server to stop: by then h2 has read every request before the PING. (Closing the connection
/// instead would make h2 drop the requests it has not handed over yet.)
fn h2_requests(input: Vec<u8>, sizes: Vec<usize>, wrap: bool) -> (Vec<Seen>, Option<String>) {
    const SYNC: &[u8; 8] = b"syncsync";
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async move {
        let (mut client, server) = tokio::io::duplex(1 << 20);
        let (done_tx, done) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            client.write_all(&input).await.unwrap();
            client.write_all(&frame(6, 0, 0, SYNC)).await.unwrap();
            let mut head = [0u8; FRAME_HEADER];
            while client.read_exact(&mut head).await.is_ok() {
                let mut payload = vec![0; frame_len(&head)];
                if client.read_exact(&mut payload).await.is_err() {
                    break;
                }
                if head[3] == 6 && head[4] & 1 != 0 && payload == SYNC {
                    let _ = done_tx.send(());
                    break;
                }
            }
            // Keep the connection open until the server is done with it.
            let mut sink = Vec::new();
            let _ = client.read_to_end(&mut sink).await;
        });
        let io = Choppy {
            inner: server,
            sizes,
            reads: 0,
        };
        async fn serve<T: AsyncRead + AsyncWrite + Unpin>(
            io: T,
            mut done: tokio::sync::oneshot::Receiver<()>,
        ) -> (Vec<Seen>, Option<String>) {
            let mut conn = match h2::server::handshake(io).await {
                Ok(c) => c,
                Err(e) => return (Vec::new(), Some(e.to_string())),
            };
            let mut seen = Vec::new();
            loop {
                tokio::select! {
                    biased;
                    next = conn.accept() => match next {
                        Some(Ok((req, _respond))) => seen.push(Seen {
                            method: req.method().to_string(),
                            scheme: req.uri().scheme_str().map(str::to_string),
                            authority: req.uri().authority().map(|a| a.to_string()),
                            path: req.uri().path_and_query().map_or(String::new(), |p| p.to_string()),
                            headers: req.headers().clone(),
                        }),
                        Some(Err(e)) => return (seen, Some(e.to_string())),
                        None => return (seen, Some("connection closed".into())),
                    },
                    _ = &mut done => return (seen, None),
                }
            }
        }
        if wrap {
            serve(H2AuthorityRewrite::new(io), done).await
        } else {
            serve(io, done).await
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// Requests of every HPACK form (indexed fields and names, static and dynamic, Huffman
    /// or raw strings, table size updates, padding, priority), whose `:authority` literals
    /// are anything at all: h2 decodes each to the headers sent, with `:authority` = `x`.
    #[test]
    fn h2_decodes_the_headers_sent_with_authority_x(
        requests in vec(request(), 1..8),
        sizes in read_sizes(),
    ) {
        let (input, want) = connection(&requests);
        let (seen, err) = h2_requests(input, sizes, true);
        prop_assert!(seen == want, "h2 saw {:?}\nexpected {:?}\nerror {:?}", seen, want, err);
    }
}
