//! Record framing and the binary layout of what records carry.
//!
//! A record is `[len: u32 LE][crc: u32 LE][type: u8][payload]`: `len` counts the type byte and
//! the payload, `crc` is crc32 of the same bytes. Payloads use fixed little-endian layouts.

use raft::eraftpb::{ConfState, Entry, EntryType, HardState};

/// Bytes before the type byte.
pub const HEADER: usize = 8;
/// No record is larger than this; a bigger length means damage.
pub const MAX_RECORD: usize = 512 * 1024 * 1024;

pub const TYPE_MARKER: u8 = 1;
pub const TYPE_ENTRY: u8 = 2;
pub const TYPE_HARD_STATE: u8 = 3;

/// Where a segment starts: the entry just before its first one, and the membership then.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Marker {
    pub index: u64,
    pub term: u64,
    pub conf_state: ConfState,
}

/// One decoded record.
#[derive(Debug)]
pub enum Record {
    Marker(Marker),
    Entry(Entry),
    HardState(HardState),
}

/// Appends one framed record to `buf`.
pub fn frame(buf: &mut Vec<u8>, kind: u8, payload: &[u8]) {
    let len = (1 + payload.len()) as u32;
    let mut h = crc32fast::Hasher::new();
    h.update(&[kind]);
    h.update(payload);
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&h.finalize().to_le_bytes());
    buf.push(kind);
    buf.extend_from_slice(payload);
}

/// What is found at an offset of a segment.
pub enum Parsed {
    /// A whole, checksummed record and its total size on disk.
    Record {
        kind: u8,
        payload_at: usize,
        payload_len: usize,
        size: usize,
    },
    /// Zero length: the end of the written data.
    End,
    /// Not a valid record, with the reason.
    Bad(&'static str),
}

/// Parses the record at `at` in `data`.
pub fn parse(data: &[u8], at: usize) -> Parsed {
    let Some(header) = data.get(at..at + HEADER) else {
        return if data[at.min(data.len())..].iter().all(|b| *b == 0) {
            Parsed::End
        } else {
            Parsed::Bad("record header cut short")
        };
    };
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len == 0 && crc == 0 {
        return Parsed::End;
    }
    if len == 0 || len > MAX_RECORD {
        return Parsed::Bad("impossible record length");
    }
    let Some(body) = data.get(at + HEADER..at + HEADER + len) else {
        return Parsed::Bad("record cut short");
    };
    if crc32fast::hash(body) != crc {
        return Parsed::Bad("checksum mismatch");
    }
    let kind = body[0];
    if !(TYPE_MARKER..=TYPE_HARD_STATE).contains(&kind) {
        return Parsed::Bad("unknown record type");
    }
    Parsed::Record {
        kind,
        payload_at: at + HEADER + 1,
        payload_len: len - 1,
        size: HEADER + len,
    }
}

struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let s = self.data.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Option<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Some(u64::from_le_bytes(a))
    }
    fn bytes(&mut self) -> Option<Vec<u8>> {
        let n = self.u32()? as usize;
        self.take(n).map(<[u8]>::to_vec)
    }
    fn ids(&mut self) -> Option<Vec<u64>> {
        let n = self.u32()? as usize;
        (0..n).map(|_| self.u64()).collect()
    }
    fn done(&self) -> bool {
        self.at == self.data.len()
    }
}

fn put_bytes(buf: &mut Vec<u8>, b: &[u8]) {
    buf.extend_from_slice(&(b.len() as u32).to_le_bytes());
    buf.extend_from_slice(b);
}

fn put_ids(buf: &mut Vec<u8>, ids: &[u64]) {
    buf.extend_from_slice(&(ids.len() as u32).to_le_bytes());
    for id in ids {
        buf.extend_from_slice(&id.to_le_bytes());
    }
}

pub fn encode_entry(e: &Entry) -> Vec<u8> {
    let mut b = Vec::with_capacity(25 + e.data.len() + e.context.len());
    b.push(match e.get_entry_type() {
        EntryType::EntryNormal => 0,
        EntryType::EntryConfChange => 1,
        EntryType::EntryConfChangeV2 => 2,
    });
    b.extend_from_slice(&e.term.to_le_bytes());
    b.extend_from_slice(&e.index.to_le_bytes());
    put_bytes(&mut b, &e.data);
    put_bytes(&mut b, &e.context);
    b
}

pub fn encode_hard_state(hs: &HardState) -> Vec<u8> {
    let mut b = Vec::with_capacity(24);
    b.extend_from_slice(&hs.term.to_le_bytes());
    b.extend_from_slice(&hs.vote.to_le_bytes());
    b.extend_from_slice(&hs.commit.to_le_bytes());
    b
}

pub fn encode_marker(m: &Marker) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&m.index.to_le_bytes());
    b.extend_from_slice(&m.term.to_le_bytes());
    let cs = &m.conf_state;
    put_ids(&mut b, &cs.voters);
    put_ids(&mut b, &cs.learners);
    put_ids(&mut b, &cs.voters_outgoing);
    put_ids(&mut b, &cs.learners_next);
    b.push(cs.auto_leave as u8);
    b
}

/// Decodes a checksummed payload; None if its layout is wrong.
pub fn decode(kind: u8, payload: &[u8]) -> Option<Record> {
    let mut r = Reader {
        data: payload,
        at: 0,
    };
    let rec = match kind {
        TYPE_ENTRY => {
            let mut e = Entry::default();
            e.set_entry_type(match r.u8()? {
                0 => EntryType::EntryNormal,
                1 => EntryType::EntryConfChange,
                2 => EntryType::EntryConfChangeV2,
                _ => return None,
            });
            e.term = r.u64()?;
            e.index = r.u64()?;
            e.set_data(r.bytes()?.into());
            e.set_context(r.bytes()?.into());
            Record::Entry(e)
        }
        TYPE_HARD_STATE => {
            let (term, vote, commit) = (r.u64()?, r.u64()?, r.u64()?);
            Record::HardState(HardState {
                term,
                vote,
                commit,
                ..Default::default()
            })
        }
        TYPE_MARKER => {
            let index = r.u64()?;
            let term = r.u64()?;
            let cs = ConfState {
                voters: r.ids()?,
                learners: r.ids()?,
                voters_outgoing: r.ids()?,
                learners_next: r.ids()?,
                auto_leave: r.u8()? != 0,
                ..Default::default()
            };
            Record::Marker(Marker {
                index,
                term,
                conf_state: cs,
            })
        }
        _ => return None,
    };
    r.done().then_some(rec)
}
