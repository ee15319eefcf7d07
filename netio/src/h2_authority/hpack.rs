//! A small HPACK encoder for tests (RFC 7541): every representation, raw or Huffman strings,
//! and the encoder's side of the dynamic table, so that generated header blocks can be
//! decoded by `h2` and compared with what was meant.

use std::collections::VecDeque;

/// RFC 7541 Appendix A.
pub const STATIC: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

/// RFC 7541 Appendix B: the code length of each byte. The code is canonical (codes of one
/// length are consecutive, in byte order, after the shorter ones), so the lengths define it.
const HUFFMAN_LENGTHS: [u8; 256] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28,
    28, 28, 28, 28, 28, 28, 28, 28, 6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5,
    5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, 13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, 15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6,
    6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, 20, 22, 20, 20, 22, 22, 22, 23, 22,
    23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, 22,
    21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20,
    22, 22, 22, 23, 22, 22, 23, 26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19,
    21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, 20, 24, 20, 21, 22, 21, 21, 23, 22,
    22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
];

/// `(code, length)` of every byte.
pub fn huffman_codes() -> [(u32, u8); 256] {
    let mut order: Vec<usize> = (0..256).collect();
    order.sort_by_key(|&b| (HUFFMAN_LENGTHS[b], b));
    let mut codes = [(0u32, 0u8); 256];
    let (mut code, mut len) = (0u32, HUFFMAN_LENGTHS[order[0]]);
    for (i, &b) in order.iter().enumerate() {
        if i > 0 {
            code = (code + 1) << (HUFFMAN_LENGTHS[b] - len);
            len = HUFFMAN_LENGTHS[b];
        }
        codes[b] = (code, len);
    }
    codes
}

pub fn huffman(bytes: &[u8]) -> Vec<u8> {
    let codes = huffman_codes();
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u64, 0u32);
    for &b in bytes {
        let (code, len) = codes[usize::from(b)];
        acc = (acc << len) | u64::from(code);
        bits += u32::from(len);
        while bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        // Padded with the most significant bits of EOS (all ones).
        out.push(((acc << (8 - bits)) | ((1 << (8 - bits)) - 1)) as u8);
    }
    out
}

/// An HPACK integer: `value` with an `n`-bit prefix, the other bits of the first byte `flags`.
pub fn int(out: &mut Vec<u8>, flags: u8, n: u8, value: usize) {
    let max = (1usize << n) - 1;
    if value < max {
        out.push(flags | value as u8);
        return;
    }
    out.push(flags | max as u8);
    let mut rest = value - max;
    while rest >= 0x80 {
        out.push(0x80 | (rest & 0x7f) as u8);
        rest >>= 7;
    }
    out.push(rest as u8);
}

/// An HPACK string literal.
pub fn string(out: &mut Vec<u8>, bytes: &[u8], use_huffman: bool) {
    if use_huffman {
        let coded = huffman(bytes);
        int(out, 0x80, 7, coded.len());
        out.extend_from_slice(&coded);
    } else {
        int(out, 0, 7, bytes.len());
        out.extend_from_slice(bytes);
    }
}

/// How a literal is indexed.
#[derive(Clone, Copy, Debug)]
pub enum Literal {
    Incremental,
    Without,
    Never,
}

/// How a literal names its field.
#[derive(Clone, Copy, Debug)]
pub enum Name {
    /// An index into the static or dynamic table.
    Index(usize),
    /// A new name, raw or Huffman-coded.
    New { huffman: bool },
}

pub struct Encoder {
    /// Newest first: index 62 is the front.
    table: VecDeque<(Vec<u8>, Vec<u8>)>,
    size: usize,
    max: usize,
}

impl Encoder {
    pub fn new() -> Encoder {
        Encoder {
            table: VecDeque::new(),
            size: 0,
            max: 4096,
        }
    }

    /// Emits a dynamic table size update.
    pub fn size_update(&mut self, out: &mut Vec<u8>, max: usize) {
        int(out, 0x20, 5, max);
        self.max = max;
        self.evict();
    }

    fn evict(&mut self) {
        while self.size > self.max {
            let (n, v) = self.table.pop_back().expect("size counts entries");
            self.size -= n.len() + v.len() + 32;
        }
    }

    /// The entry at an index of the static or dynamic table.
    pub fn entry(&self, index: usize) -> Option<(Vec<u8>, Vec<u8>)> {
        match index {
            1..=61 => {
                let (n, v) = STATIC[index - 1];
                Some((n.as_bytes().to_vec(), v.as_bytes().to_vec()))
            }
            _ => self.table.get(index.checked_sub(62)?).cloned(),
        }
    }

    /// The indexes of the entries that `keep` accepts, static ones first.
    pub fn indexes(&self, keep: impl Fn(&[u8], &[u8]) -> bool) -> Vec<usize> {
        let statics = STATIC
            .iter()
            .enumerate()
            .filter(|(_, (n, v))| keep(n.as_bytes(), v.as_bytes()))
            .map(|(i, _)| i + 1);
        let dynamics = self
            .table
            .iter()
            .enumerate()
            .filter(|(_, (n, v))| keep(n, v))
            .map(|(i, _)| i + 62);
        statics.chain(dynamics).collect()
    }

    pub fn indexed(&mut self, out: &mut Vec<u8>, index: usize) {
        assert!(self.entry(index).is_some(), "no entry {index}");
        int(out, 0x80, 7, index);
    }

    pub fn literal(
        &mut self,
        out: &mut Vec<u8>,
        kind: Literal,
        name: Name,
        name_bytes: &[u8],
        value: &[u8],
        value_huffman: bool,
    ) {
        let (flags, n) = match kind {
            Literal::Incremental => (0x40, 6),
            Literal::Without => (0x00, 4),
            Literal::Never => (0x10, 4),
        };
        match name {
            Name::Index(i) => {
                let (entry_name, _) = self.entry(i).expect("name index");
                assert_eq!(entry_name, name_bytes, "name index {i}");
                int(out, flags, n, i);
            }
            Name::New { huffman } => {
                int(out, flags, n, 0);
                string(out, name_bytes, huffman);
            }
        }
        string(out, value, value_huffman);
        if let Literal::Incremental = kind {
            let size = name_bytes.len() + value.len() + 32;
            if size > self.max {
                self.table.clear();
                self.size = 0;
            } else {
                self.table.push_front((name_bytes.to_vec(), value.to_vec()));
                self.size += size;
                self.evict();
            }
        }
    }
}

#[test]
fn huffman_codes_are_rfc_7541s() {
    let codes = huffman_codes();
    assert_eq!(codes[usize::from(b'0')], (0x0, 5));
    assert_eq!(codes[usize::from(b'a')], (0x3, 5));
    assert_eq!(codes[usize::from(b' ')], (0x14, 6));
    assert_eq!(codes[usize::from(b':')], (0x5c, 7));
    assert_eq!(codes[0], (0x1ff8, 13));
    assert_eq!(codes[255], (0x3ffffee, 26));
    // RFC 7541 C.4.1: "www.example.com".
    assert_eq!(
        huffman(b"www.example.com"),
        [0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff]
    );
    // RFC 7541 C.1: 1337 with a 5-bit prefix.
    let mut v = Vec::new();
    int(&mut v, 0, 5, 1337);
    assert_eq!(v, [31, 154, 10]);
}
