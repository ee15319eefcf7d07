//! The fixed little-endian layouts of what records carry.
//!
//! - Entry: `[entry_type u8][term u64][index u64][data_len u32][data][context_len u32][context]`
//!   (entry_type 0 normal, 1 conf change, 2 conf change v2).
//! - HardState: `[term u64][vote u64][commit u64]`.
//! - Marker: `[index u64][term u64]` then the conf state: voters, learners, voters_outgoing and
//!   learners_next, each `[count u32][id u64]...`, and `[auto_leave u8]`.
//!
//! A payload decodes only if it is consumed exactly.

use raft::eraftpb::{ConfState, Entry, EntryType, HardState};

use crate::record::Kind;
use crate::Marker;

/// One decoded record.
#[derive(Debug)]
pub(crate) enum Record {
    Marker(Marker),
    Entry(Entry),
    HardState(HardState),
}

/// Bytes of an entry's payload besides its data and context.
pub(crate) const ENTRY_FIXED: usize = 1 + 8 + 8 + 4 + 4;

pub(crate) fn encode_entry(e: &Entry) -> Vec<u8> {
    let mut b = Vec::with_capacity(ENTRY_FIXED + e.data.len() + e.context.len());
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

pub(crate) fn encode_hard_state(hs: &HardState) -> Vec<u8> {
    let mut b = Vec::with_capacity(24);
    b.extend_from_slice(&hs.term.to_le_bytes());
    b.extend_from_slice(&hs.vote.to_le_bytes());
    b.extend_from_slice(&hs.commit.to_le_bytes());
    b
}

pub(crate) fn encode_marker(m: &Marker) -> Vec<u8> {
    let cs = &m.conf_state;
    let ids =
        cs.voters.len() + cs.learners.len() + cs.voters_outgoing.len() + cs.learners_next.len();
    let mut b = Vec::with_capacity(16 + 16 + 8 * ids + 1);
    b.extend_from_slice(&m.index.to_le_bytes());
    b.extend_from_slice(&m.term.to_le_bytes());
    put_ids(&mut b, &cs.voters);
    put_ids(&mut b, &cs.learners);
    put_ids(&mut b, &cs.voters_outgoing);
    put_ids(&mut b, &cs.learners_next);
    b.push(u8::from(cs.auto_leave));
    b
}

/// Decodes a checksummed payload of `kind`; `None` if its layout is wrong.
pub(crate) fn decode(kind: Kind, payload: &[u8]) -> Option<Record> {
    let mut r = Reader { data: payload };
    let rec = match kind {
        Kind::Entry => {
            let mut e = Entry::default();
            e.set_entry_type(match r.u8()? {
                0 => EntryType::EntryNormal,
                1 => EntryType::EntryConfChange,
                2 => EntryType::EntryConfChangeV2,
                _ => return None,
            });
            e.term = r.u64()?;
            e.index = r.u64()?;
            e.data = r.bytes()?.to_vec().into();
            e.context = r.bytes()?.to_vec().into();
            Record::Entry(e)
        }
        Kind::HardState => {
            // Struct literal fields are evaluated in the order written.
            let hs = HardState {
                term: r.u64()?,
                vote: r.u64()?,
                commit: r.u64()?,
                ..Default::default()
            };
            Record::HardState(hs)
        }
        Kind::Marker => {
            let index = r.u64()?;
            let term = r.u64()?;
            let cs = ConfState {
                voters: r.ids()?,
                learners: r.ids()?,
                voters_outgoing: r.ids()?,
                learners_next: r.ids()?,
                auto_leave: match r.u8()? {
                    0 => false,
                    1 => true,
                    _ => return None,
                },
                ..Default::default()
            };
            Record::Marker(Marker {
                index,
                term,
                conf_state: cs,
            })
        }
    };
    r.data.is_empty().then_some(rec)
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

/// Reads fixed-width fields off the front of a payload; every read is bounds-checked.
struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.data.len() {
            return None;
        }
        let (head, tail) = self.data.split_at(n);
        self.data = tail;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Option<u64> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Some(u64::from_le_bytes(a))
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    fn ids(&mut self) -> Option<Vec<u64>> {
        let n = self.u32()? as usize;
        // Check the count against what is left before allocating for it.
        if n > self.data.len() / 8 {
            return None;
        }
        (0..n).map(|_| self.u64()).collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::field_reassign_with_default)]

    use super::*;

    #[test]
    fn entry_round_trip() {
        let mut e = Entry::default();
        e.set_entry_type(EntryType::EntryConfChangeV2);
        e.term = 7;
        e.index = u64::MAX - 1;
        e.data = b"payload".to_vec().into();
        e.context = b"ctx".to_vec().into();
        let p = encode_entry(&e);
        assert_eq!(p.len(), ENTRY_FIXED + 10);
        let Some(Record::Entry(back)) = decode(Kind::Entry, &p) else {
            panic!("not decoded");
        };
        assert_eq!(back, e);
        // Any truncation or extra byte is refused.
        for n in 0..p.len() {
            assert!(decode(Kind::Entry, &p[..n]).is_none());
        }
        let mut longer = p.clone();
        longer.push(0);
        assert!(decode(Kind::Entry, &longer).is_none());
    }

    #[test]
    fn marker_and_hard_state_round_trip() {
        let mut cs = ConfState::default();
        cs.voters = vec![1, 2, 3];
        cs.learners = vec![4];
        cs.voters_outgoing = vec![1, 2];
        cs.learners_next = vec![5];
        cs.auto_leave = true;
        let m = Marker {
            index: 10,
            term: 3,
            conf_state: cs,
        };
        let Some(Record::Marker(back)) = decode(Kind::Marker, &encode_marker(&m)) else {
            panic!("not decoded");
        };
        assert_eq!(back, m);

        let mut hs = HardState::default();
        hs.term = 4;
        hs.vote = 2;
        hs.commit = 9;
        let Some(Record::HardState(back)) = decode(Kind::HardState, &encode_hard_state(&hs)) else {
            panic!("not decoded");
        };
        assert_eq!(back, hs);
        // A huge id count does not allocate: it is refused.
        let mut p = encode_marker(&m);
        p[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode(Kind::Marker, &p).is_none());
    }
}
