//! Record framing: `[len: u32 LE][crc: u32 LE][type: u8][payload]`.
//!
//! `len` counts the type byte and the payload; `crc` is crc32 (crc32fast) of the same bytes.
//! A header of eight zero bytes (or fewer than eight bytes left, all zero) ends the data.

use std::fmt;

/// Bytes before the type byte.
pub(crate) const HEADER: usize = 8;
/// The largest `len` a record may have; a bigger one can only be damage.
pub(crate) const MAX_LEN: usize = 512 * 1024 * 1024;

/// What a record carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Marker = 1,
    Entry = 2,
    HardState = 3,
}

impl Kind {
    fn from_u8(b: u8) -> Option<Kind> {
        match b {
            1 => Some(Kind::Marker),
            2 => Some(Kind::Entry),
            3 => Some(Kind::HardState),
            _ => None,
        }
    }
}

/// Appends one framed record to `buf`. The caller keeps `1 + payload.len()` within `MAX_LEN`.
pub(crate) fn frame(buf: &mut Vec<u8>, kind: Kind, payload: &[u8]) {
    let len = (1 + payload.len()) as u32;
    let mut h = crc32fast::Hasher::new();
    h.update(&[kind as u8]);
    h.update(payload);
    buf.reserve(HEADER + 1 + payload.len());
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&h.finalize().to_le_bytes());
    buf.push(kind as u8);
    buf.extend_from_slice(payload);
}

/// Why the bytes at an offset are not a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Damage {
    /// The header or the body runs past the end of the file.
    CutShort,
    /// The checksum does not match.
    Checksum,
    /// A zero length with a non-zero checksum.
    ZeroLength,
    /// A length above `MAX_LEN`.
    TooLong(u32),
    /// A checksummed record of a type this code does not know.
    UnknownType(u8),
}

impl Damage {
    /// Whether a crash during a write can leave this behind (a write cut short or with some of
    /// its sectors missing). Impossible lengths and checksummed unknown types cannot.
    pub(crate) fn may_be_torn(self) -> bool {
        matches!(
            self,
            Damage::CutShort | Damage::Checksum | Damage::ZeroLength
        )
    }
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Damage::CutShort => write!(f, "record cut short by the end of the file"),
            Damage::Checksum => write!(f, "checksum mismatch"),
            Damage::ZeroLength => write!(f, "zero record length with a non-zero checksum"),
            Damage::TooLong(len) => write!(f, "impossible record length {len}"),
            Damage::UnknownType(t) => write!(f, "unknown record type {t}"),
        }
    }
}

/// What is found at an offset.
#[derive(Debug)]
pub(crate) enum Parsed<'a> {
    /// A whole, checksummed record; `next` is the offset just past it.
    Record {
        kind: Kind,
        payload: &'a [u8],
        next: usize,
    },
    /// The end of the written data.
    End,
    /// Not a record.
    Bad(Damage),
}

fn u32_at(data: &[u8], at: usize) -> Option<u32> {
    let b = data.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// Parses the record at `at`.
pub(crate) fn parse(data: &[u8], at: usize) -> Parsed<'_> {
    let rest = data.get(at..).unwrap_or(&[]);
    let (Some(len), Some(crc)) = (u32_at(rest, 0), u32_at(rest, 4)) else {
        return if rest.iter().all(|b| *b == 0) {
            Parsed::End
        } else {
            Parsed::Bad(Damage::CutShort)
        };
    };
    if len == 0 {
        return if crc == 0 {
            Parsed::End
        } else {
            Parsed::Bad(Damage::ZeroLength)
        };
    }
    if len as usize > MAX_LEN {
        return Parsed::Bad(Damage::TooLong(len));
    }
    let Some(body) = rest.get(HEADER..HEADER + len as usize) else {
        return Parsed::Bad(Damage::CutShort);
    };
    if crc32fast::hash(body) != crc {
        return Parsed::Bad(Damage::Checksum);
    }
    match Kind::from_u8(body[0]) {
        Some(kind) => Parsed::Record {
            kind,
            payload: &body[1..],
            next: at + HEADER + len as usize,
        },
        None => Parsed::Bad(Damage::UnknownType(body[0])),
    }
}

/// The offset of the first whole, checksummed record of a known type that starts at or after
/// `from` and ends by `to`, if any. Used to tell a torn tail (nothing valid after the damage)
/// from damage in the middle of the log.
pub(crate) fn find_record(data: &[u8], from: usize, to: usize) -> Option<usize> {
    let to = to.min(data.len());
    (from..to.saturating_sub(HEADER)).find(|&at| {
        let (Some(len), Some(crc)) = (u32_at(data, at), u32_at(data, at + 4)) else {
            return false;
        };
        let len = len as usize;
        if len == 0 || len > MAX_LEN || at + HEADER + len > to {
            return false;
        }
        let body = &data[at + HEADER..at + HEADER + len];
        Kind::from_u8(body[0]).is_some() && crc32fast::hash(body) == crc
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_and_parse_round_trip() {
        let mut buf = Vec::new();
        frame(&mut buf, Kind::Entry, b"hello");
        frame(&mut buf, Kind::HardState, b"");
        let Parsed::Record {
            kind,
            payload,
            next,
        } = parse(&buf, 0)
        else {
            panic!("not a record");
        };
        assert_eq!((kind, payload, next), (Kind::Entry, &b"hello"[..], 14));
        assert!(matches!(
            parse(&buf, next),
            Parsed::Record {
                kind: Kind::HardState,
                next: 23,
                ..
            }
        ));
        assert!(matches!(parse(&buf, 23), Parsed::End));
        assert!(matches!(parse(&buf, 1000), Parsed::End));
        assert_eq!(find_record(&buf, 1, buf.len()), Some(14));
        assert_eq!(find_record(&buf, 15, buf.len()), None);
    }

    #[test]
    fn damage_is_classified() {
        let mut buf = Vec::new();
        frame(&mut buf, Kind::Entry, b"hello");
        assert!(matches!(
            parse(&buf[..10], 0),
            Parsed::Bad(Damage::CutShort)
        ));
        assert!(matches!(parse(&buf[..5], 0), Parsed::Bad(Damage::CutShort)));
        let mut flipped = buf.clone();
        flipped[10] ^= 1;
        assert!(matches!(parse(&flipped, 0), Parsed::Bad(Damage::Checksum)));
        let mut long = buf.clone();
        long[3] = 0x40;
        assert!(matches!(parse(&long, 0), Parsed::Bad(Damage::TooLong(_))));
        let mut zero = buf.clone();
        zero[..4].fill(0);
        assert!(matches!(parse(&zero, 0), Parsed::Bad(Damage::ZeroLength)));
        let mut unknown = Vec::new();
        frame(&mut unknown, Kind::Entry, b"x");
        unknown[8] = 9;
        let crc = crc32fast::hash(&unknown[8..]);
        unknown[4..8].copy_from_slice(&crc.to_le_bytes());
        assert!(matches!(
            parse(&unknown, 0),
            Parsed::Bad(Damage::UnknownType(9))
        ));
    }
}
