//! Property tests (proptest) of the decoders and of recovery: record framing and payload
//! decoding on arbitrary bytes, random logs that must reopen as written, and random damage
//! (bit flips, cuts, overwritten runs) that must leave a prefix of what was written or a
//! `WalError::Corrupt` naming the damaged file at or before the damage: never a panic, never
//! an entry that was not written.
//!
//! The logs live in `/dev/shm` where it exists, so that their fdatasyncs cost nothing.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use raft::eraftpb::EntryType;

use super::*;
use crate::codec::{self, Record};
use crate::record::{self, Kind, Parsed, HEADER};
use crate::segment::file_name;

/// A scratch directory, in memory where there is one.
fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(d) = tempfile::tempdir_in(shm) {
            return d;
        }
    }
    tempfile::tempdir().unwrap()
}

fn u32_at(data: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(data[at..at + 4].try_into().unwrap())
}

fn kind(k: u8) -> Kind {
    match k % 3 {
        0 => Kind::Marker,
        1 => Kind::Entry,
        _ => Kind::HardState,
    }
}

fn an_entry() -> impl Strategy<Value = Entry> {
    (
        0..3u8,
        any::<u64>(),
        any::<u64>(),
        vec(any::<u8>(), 0..64),
        vec(any::<u8>(), 0..16),
    )
        .prop_map(|(t, term, index, data, context)| {
            let mut e = Entry::default();
            e.set_entry_type(match t {
                0 => EntryType::EntryNormal,
                1 => EntryType::EntryConfChange,
                _ => EntryType::EntryConfChangeV2,
            });
            e.term = term;
            e.index = index;
            e.data = data.into();
            e.context = context.into();
            e
        })
}

fn a_hard_state() -> impl Strategy<Value = HardState> {
    (any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(term, vote, commit)| {
        let mut h = HardState::default();
        h.term = term;
        h.vote = vote;
        h.commit = commit;
        h
    })
}

fn ids() -> impl Strategy<Value = Vec<u64>> {
    vec(any::<u64>(), 0..5)
}

fn a_marker() -> impl Strategy<Value = Marker> {
    (
        any::<u64>(),
        any::<u64>(),
        (ids(), ids(), ids(), ids()),
        any::<bool>(),
    )
        .prop_map(|(index, term, (v, l, vo, ln), auto_leave)| {
            let mut cs = ConfState::default();
            cs.voters = v;
            cs.learners = l;
            cs.voters_outgoing = vo;
            cs.learners_next = ln;
            cs.auto_leave = auto_leave;
            Marker {
                index,
                term,
                conf_state: cs,
            }
        })
}

/// A payload of `kind`, and the record it holds.
fn a_payload() -> impl Strategy<Value = (Kind, Vec<u8>)> {
    prop_oneof![
        an_entry().prop_map(|e| (Kind::Entry, codec::encode_entry(&e))),
        a_hard_state().prop_map(|h| (Kind::HardState, codec::encode_hard_state(&h))),
        a_marker().prop_map(|m| (Kind::Marker, codec::encode_marker(&m))),
    ]
}

fn encode(rec: &Record) -> (Kind, Vec<u8>) {
    match rec {
        Record::Entry(e) => (Kind::Entry, codec::encode_entry(e)),
        Record::HardState(h) => (Kind::HardState, codec::encode_hard_state(h)),
        Record::Marker(m) => (Kind::Marker, codec::encode_marker(m)),
    }
}

/// A change to some bytes: flip bits, cut the rest off, or overwrite a run.
#[derive(Clone, Debug)]
enum Damage {
    Flip(Vec<(Index, u8)>),
    Cut(Index),
    Overwrite(Index, Vec<u8>),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        vec((any::<Index>(), 1..=255u8), 1..4).prop_map(Damage::Flip),
        any::<Index>().prop_map(Damage::Cut),
        (any::<Index>(), vec(any::<u8>(), 1..64)).prop_map(|(i, b)| Damage::Overwrite(i, b)),
    ]
}

impl Damage {
    /// Applies the damage within the first `span` bytes of `data`; returns the first byte
    /// changed (or where the cut is).
    fn apply(&self, data: &mut Vec<u8>, span: usize) -> usize {
        let span = span.clamp(1, data.len().max(1));
        match self {
            Damage::Flip(flips) => {
                let mut first = usize::MAX;
                for (i, mask) in flips {
                    let at = i.index(span).min(data.len().saturating_sub(1));
                    if let Some(b) = data.get_mut(at) {
                        *b ^= mask;
                        first = first.min(at);
                    }
                }
                first
            }
            Damage::Cut(i) => {
                let at = i.index(span + 1).min(data.len());
                data.truncate(at);
                at
            }
            Damage::Overwrite(i, bytes) => {
                let at = i.index(span).min(data.len());
                for (k, b) in bytes.iter().enumerate() {
                    if let Some(d) = data.get_mut(at + k) {
                        *d = *b;
                    }
                }
                at
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Arbitrary bytes at an arbitrary offset: a record only if its length and checksum hold.
    #[test]
    fn parse_takes_only_checksummed_records(
        data in prop_oneof![
            vec(any::<u8>(), 0..600),
            vec(prop_oneof![3 => Just(0u8), 1 => any::<u8>()], 0..600),
        ],
        at in 0usize..700,
        from in 0usize..700,
        to in 0usize..700,
    ) {
        match record::parse(&data, at) {
            Parsed::Record { kind, payload, next } => {
                prop_assert_eq!(next, at + HEADER + 1 + payload.len());
                prop_assert!(next <= data.len());
                prop_assert_eq!(u32_at(&data, at) as usize, 1 + payload.len());
                prop_assert_eq!(u32_at(&data, at + 4), crc32fast::hash(&data[at + HEADER..next]));
                prop_assert_eq!(data[at + HEADER], kind as u8);
            }
            Parsed::End => {
                let rest = data.get(at..).unwrap_or(&[]);
                prop_assert!(rest.iter().take(HEADER).all(|b| *b == 0));
            }
            Parsed::Bad(_) => prop_assert!(at < data.len()),
        }
        if let Some(r) = record::find_record(&data, from, to) {
            prop_assert!(r >= from && r < to.min(data.len()));
            let is_record = matches!(
                record::parse(&data[..to.min(data.len())], r),
                Parsed::Record { .. }
            );
            prop_assert!(is_record);
        }
    }

    /// Framed records parse back in order; a record with a flipped bit or cut short does not.
    #[test]
    fn framed_records_parse_back_and_damage_is_seen(
        recs in vec((0..3u8, vec(any::<u8>(), 0..100)), 1..8),
        damage in proptest::option::of(damage()),
    ) {
        let mut buf = Vec::new();
        let mut offsets = Vec::new();
        for (k, p) in &recs {
            offsets.push(buf.len());
            record::frame(&mut buf, kind(*k), p);
        }
        offsets.push(buf.len());
        let original = buf.clone();
        let first = damage.as_ref().map_or(usize::MAX, |d| d.apply(&mut buf, original.len()));
        let mut at = 0;
        for (i, (k, p)) in recs.iter().enumerate() {
            let end = offsets[i + 1];
            let parsed = record::parse(&buf, at);
            if end <= first {
                let Parsed::Record { kind: got, payload, next } = parsed else {
                    return Err(TestCaseError::fail(format!("record {i} before the damage: {parsed:?}")));
                };
                prop_assert_eq!((got, payload, next), (kind(*k), &p[..], end));
                at = next;
                continue;
            }
            // The damaged record: never taken for a record (unless the damage changed nothing).
            if buf[at..end.min(buf.len())] != original[at..end] {
                match parsed {
                    Parsed::Record { .. } => {
                        return Err(TestCaseError::fail(format!("damaged record {i} parsed")))
                    }
                    Parsed::End => prop_assert!(buf[at..].iter().take(HEADER).all(|b| *b == 0)),
                    Parsed::Bad(_) => {}
                }
            }
            break;
        }
        if first >= buf.len() && buf.len() == original.len() {
            prop_assert!(matches!(record::parse(&buf, original.len()), Parsed::End));
        }
    }

    /// Any payload: a decoded record encodes back to exactly the payload, and every encoded
    /// record decodes to itself and to nothing when cut or extended.
    #[test]
    fn decoding_is_the_exact_inverse_of_encoding(
        (k, payload) in a_payload(),
        garbage in (0..3u8, vec(any::<u8>(), 0..120)),
        damage in damage(),
    ) {
        let rec = codec::decode(k, &payload);
        prop_assert!(rec.is_some(), "an encoded {:?} did not decode", k);
        prop_assert_eq!(encode(&rec.unwrap()), (k, payload.clone()));
        for n in 0..payload.len() {
            prop_assert!(codec::decode(k, &payload[..n]).is_none());
        }
        prop_assert!(codec::decode(k, &[payload.clone(), vec![0]].concat()).is_none());
        let mut damaged = payload.clone();
        damage.apply(&mut damaged, payload.len());
        let (gk, garbage) = garbage;
        for (k, p) in [(k, damaged), (kind(gk), garbage)] {
            if let Some(rec) = codec::decode(k, &p) {
                prop_assert_eq!(encode(&rec), (k, p));
            }
        }
    }
}

// ===== Whole logs =====

/// One step of a random log's life.
#[derive(Clone, Debug)]
enum Op {
    /// Entries from `back` entries before the end (a rewrite if not 0), and maybe a hard
    /// state; `data` gives each entry's type and data.
    Append {
        back: u64,
        data: Vec<(u8, Vec<u8>)>,
        commit: Option<u64>,
    },
    Compact(u64),
    SetVoters(Vec<u64>),
    Reopen,
}

fn data() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        20 => vec(any::<u8>(), 0..700),
        1 => (4000usize..6000).prop_map(|n| vec![0x5a; n]), // more than a segment
    ]
}

fn append() -> impl Strategy<Value = Op> {
    (
        prop_oneof![4 => Just(0u64), 1 => 1u64..4],
        vec((0..3u8, data()), 0..5),
        proptest::option::of(any::<u64>()),
    )
        .prop_map(|(back, data, commit)| Op::Append { back, data, commit })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => append(),
        1 => (0u64..20).prop_map(Op::Compact),
        1 => vec(1u64..10, 1..4).prop_map(Op::SetVoters),
        1 => Just(Op::Reopen),
    ]
}

/// What the log must hold.
#[derive(Default)]
struct Model {
    /// Entries 1..=n, including those compaction deleted.
    entries: Vec<Entry>,
    hard_state: HardState,
    term: u64,
}

impl Model {
    fn last(&self) -> u64 {
        self.entries.len() as u64
    }

    /// The entries of `Op::Append` for a log whose first index is `first`; applies them.
    fn append(
        &mut self,
        first: u64,
        back: u64,
        data: &[(u8, Vec<u8>)],
        commit: Option<u64>,
    ) -> (Vec<Entry>, Option<HardState>) {
        let start = (self.last() + 1).saturating_sub(back).max(first);
        if start <= self.last() {
            self.term += 1; // a new leader rewrites the tail
        }
        let batch: Vec<Entry> = data
            .iter()
            .enumerate()
            .map(|(i, (t, d))| {
                let mut e = entry(start + i as u64, self.term, "");
                e.set_entry_type(match t {
                    0 => EntryType::EntryNormal,
                    1 => EntryType::EntryConfChange,
                    _ => EntryType::EntryConfChangeV2,
                });
                e.data = d.clone().into();
                e.context = vec![*t; usize::from(*t)].into();
                e
            })
            .collect();
        if !batch.is_empty() {
            self.entries.truncate(start as usize - 1);
            self.entries.extend(batch.iter().cloned());
        }
        let hs = commit.map(|c| {
            let mut h = hs(self.term, c);
            h.vote = 1;
            h
        });
        if let Some(h) = &hs {
            self.hard_state = h.clone();
        }
        (batch, hs)
    }
}

fn opts() -> WalOptions {
    WalOptions { segment_size: 4096 }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Random appends (with rewrites of the tail and entries bigger than a segment),
    /// compactions, membership changes and reopens: every reopen gives back what was written
    /// after the first segment left.
    #[test]
    fn random_logs_reopen_as_written(ops in vec(op(), 1..25)) {
        let d = scratch();
        let (mut wal, _) = open(d.path(), opts());
        let mut model = Model::default();
        let mut voters = vec![initial().conf_state.voters];
        let mut compacted_to = 0;
        for op in ops.iter().chain([&Op::Reopen]) {
            match op {
                Op::Append { back, data, commit } => {
                    let (batch, hs) = model.append(wal.first_index(), *back, data, *commit);
                    wal.append(&batch, hs.as_ref()).unwrap();
                }
                Op::Compact(behind) => {
                    let to = model.last().saturating_sub(*behind);
                    wal.compact_to(to).unwrap();
                    compacted_to = compacted_to.max(to);
                }
                Op::SetVoters(v) => {
                    let mut cs = ConfState::default();
                    cs.voters = v.clone();
                    wal.set_conf_state(cs);
                    voters.push(v.clone());
                }
                Op::Reopen => {
                    let first = wal.first_index();
                    drop(wal);
                    let (w, rec) = open(d.path(), opts());
                    wal = w;
                    let base = rec.marker.index;
                    prop_assert_eq!(base + 1, first);
                    prop_assert!(base <= compacted_to);
                    let term = base.checked_sub(1).map_or(0, |i| model.entries[i as usize].term);
                    prop_assert_eq!(rec.marker.term, term);
                    prop_assert!(voters.contains(&rec.marker.conf_state.voters));
                    prop_assert!(rec.entries[..] == model.entries[base as usize..], "entries differ");
                    prop_assert_eq!(&rec.hard_state, &model.hard_state);
                    prop_assert!(rec.truncated_tail.is_none());
                    prop_assert_eq!(wal.last_index(), model.last());
                }
            }
        }
    }
}

/// A log written by `appends`, with each of its files' bytes and, per file, the offsets
/// where the records of `Op::Append`s (not markers nor the hard state a new segment repeats)
/// end.
struct Written {
    files: Vec<(PathBuf, Vec<u8>)>,
    ends: Vec<Vec<usize>>,
    /// The log after each record: `states[j]` holds the first `j`.
    states: Vec<(Vec<Entry>, HardState)>,
}

fn write_log(dir: &Path, appends: &[Op]) -> Written {
    let (mut wal, _) = open(dir, opts());
    let mut model = Model::default();
    let mut states = vec![(Vec::new(), HardState::default())];
    for op in appends {
        let Op::Append { back, data, commit } = op else {
            unreachable!()
        };
        let (batch, hs) = model.append(wal.first_index(), *back, data, *commit);
        wal.append(&batch, hs.as_ref()).unwrap();
        let (mut entries, mut hard_state) = states.last().cloned().unwrap();
        for e in batch {
            entries.truncate(e.index as usize - 1);
            entries.push(e);
            states.push((entries.clone(), hard_state.clone()));
        }
        if let Some(h) = hs {
            hard_state = h;
            states.push((entries, hard_state));
        }
    }
    drop(wal);
    let mut files = Vec::new();
    let mut ends = Vec::new();
    for (i, path) in segments(dir).into_iter().enumerate() {
        let bytes = fs::read(&path).unwrap();
        let mut at = 0;
        let mut file_ends = Vec::new();
        let mut n = 0;
        while let Parsed::Record { kind, next, .. } = record::parse(&bytes, at) {
            let repeat = i > 0 && n == 1 && kind == Kind::HardState;
            if n > 0 && !repeat {
                file_ends.push(next);
            }
            n += 1;
            at = next;
        }
        files.push((path, bytes));
        ends.push(file_ends);
    }
    let records: usize = ends.iter().map(Vec::len).sum();
    assert_eq!(records + 1, states.len(), "records on disk");
    Written {
        files,
        ends,
        states,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// Damage anywhere in any segment of a random log: either it opens with the log as it
    /// was after some record, no earlier than the last record before the damage (and all of
    /// it if the damage is not in the last segment), or it is refused as corrupt at or before
    /// the damage, in that file. An open that cut a torn tail cut it for good: the next open
    /// finds the same log and no tail, and appends continue it.
    #[test]
    fn a_damaged_log_keeps_a_prefix_or_is_refused(
        appends in vec(append(), 1..20),
        which in any::<Index>(),
        damage in damage(),
    ) {
        let d = scratch();
        let w = write_log(d.path(), &appends);
        let i = which.index(w.files.len());
        let last = i + 1 == w.files.len();
        let (path, original) = &w.files[i];
        let data_end = w.ends[i].last().copied().unwrap_or(0).max(50);
        let mut bytes = original.clone();
        let first = damage.apply(&mut bytes, data_end + 64);
        fs::write(path, &bytes).unwrap();
        let before: usize = w.ends[..i].iter().map(Vec::len).sum();
        let whole = before + w.ends[i].iter().filter(|&&e| e <= first).count();
        match Wal::open(d.path(), opts(), initial()) {
            Ok((wal, rec)) => {
                let got = (rec.entries.clone(), rec.hard_state.clone());
                let j = w.states.iter().rposition(|s| *s == got);
                prop_assert!(j.is_some(), "recovered a log that was never written");
                let j = j.unwrap();
                prop_assert!(j >= whole, "lost record {} before the damage at {}", j, first);
                if !last {
                    prop_assert_eq!(j, w.states.len() - 1);
                }
                if last && matches!(damage, Damage::Flip(_)) {
                    prop_assert!(rec.truncated_tail.is_some());
                }
                drop(wal);
                let (mut wal, again) = open(d.path(), opts());
                prop_assert!(again.truncated_tail.is_none());
                prop_assert!(again.entries == got.0 && again.hard_state == got.1);
                let next = entry(wal.last_index() + 1, 99, "after");
                wal.append(std::slice::from_ref(&next), None).unwrap();
                drop(wal);
                let (_, after) = open(d.path(), opts());
                prop_assert!(after.entries[..] == [got.0, vec![next]].concat()[..]);
            }
            Err(WalError::Corrupt { path: p, offset, .. }) => {
                if &p == path {
                    prop_assert!(offset as usize <= first, "refused at {} for damage at {}", offset, first);
                } else {
                    // Whole records cut off the end of an earlier segment: that segment looks
                    // complete, and the next one's marker does not continue it.
                    let later = w.files[i + 1..].iter().any(|(f, _)| *f == p);
                    prop_assert!(matches!(damage, Damage::Cut(_)) && later && offset == 0,
                        "refused {} at {} for damage {:?} in {}", p.display(), offset, damage, path.display());
                }
            }
            Err(e) => return Err(TestCaseError::fail(format!("{e}"))),
        }
    }
}

/// What a segment may hold after its marker.
#[derive(Clone, Debug)]
enum Piece {
    Entry {
        index: u64,
        term: u64,
    },
    HardState(HardState),
    Marker(Marker),
    /// A checksummed record of any type byte and payload.
    Framed(u8, Vec<u8>),
    Raw(Vec<u8>),
}

fn piece(base: u64) -> impl Strategy<Value = Piece> {
    prop_oneof![
        6 => (base.saturating_sub(1)..base + 8, 0u64..4).prop_map(|(index, term)| Piece::Entry { index, term }),
        2 => a_hard_state().prop_map(Piece::HardState),
        1 => a_marker().prop_map(Piece::Marker),
        1 => (any::<u8>(), vec(any::<u8>(), 0..40)).prop_map(|(k, p)| Piece::Framed(k, p)),
        1 => vec(any::<u8>(), 1..30).prop_map(Piece::Raw),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// A lone segment of any records and garbage after a valid marker: it opens or is
    /// refused as corrupt, and what opens is what the records before the first bad one say.
    #[test]
    fn a_segment_of_any_records_opens_as_written_or_is_refused(
        (base, pieces) in (0u64..4).prop_flat_map(|b| (Just(b), vec(piece(b), 0..10))),
        tail in prop_oneof![3 => Just(vec![]), 1 => vec(any::<u8>(), 1..20)],
        zeros in 0usize..200,
    ) {
        let d = scratch();
        let mut marker = initial();
        marker.index = base;
        let mut bytes = Vec::new();
        record::frame(&mut bytes, Kind::Marker, &codec::encode_marker(&marker));
        // The log after each well-formed record of the pieces, in order.
        let mut states = vec![(Vec::<Entry>::new(), HardState::default())];
        let mut well_formed = true;
        for (n, p) in pieces.iter().enumerate() {
            let (entries, hard_state) = states.last().cloned().unwrap();
            match p {
                Piece::Entry { index, term } => {
                    let e = entry(*index, *term, &format!("entry {n}"));
                    record::frame(&mut bytes, Kind::Entry, &codec::encode_entry(&e));
                    let last = base + entries.len() as u64;
                    well_formed &= *index > base && *index <= last + 1;
                    if well_formed {
                        let mut entries = entries;
                        entries.truncate((*index - base - 1) as usize);
                        entries.push(e);
                        states.push((entries, hard_state));
                    }
                }
                Piece::HardState(h) => {
                    record::frame(&mut bytes, Kind::HardState, &codec::encode_hard_state(h));
                    if well_formed {
                        states.push((entries, h.clone()));
                    }
                }
                Piece::Marker(m) => {
                    record::frame(&mut bytes, Kind::Marker, &codec::encode_marker(m));
                    well_formed = false;
                }
                Piece::Framed(k, p) => {
                    let mut framed = Vec::new();
                    record::frame(&mut framed, Kind::Entry, p);
                    framed[HEADER] = *k;
                    let crc = crc32fast::hash(&framed[HEADER..]);
                    framed[4..8].copy_from_slice(&crc.to_le_bytes());
                    bytes.extend(framed);
                    // Checksummed bytes of a known type that decode are a real record (a hard
                    // state of random numbers is still a hard state).
                    let kind = match k {
                        2 => Some(Kind::Entry),
                        3 => Some(Kind::HardState),
                        _ => None,
                    };
                    match kind.and_then(|kind| codec::decode(kind, p)) {
                        Some(codec::Record::HardState(h)) if well_formed => {
                            states.push((entries, h));
                        }
                        Some(codec::Record::Entry(e)) => {
                            let last = base + entries.len() as u64;
                            well_formed &= e.index > base && e.index <= last + 1;
                            if well_formed {
                                let mut entries = entries;
                                entries.truncate((e.index - base - 1) as usize);
                                entries.push(e);
                                states.push((entries, hard_state));
                            }
                        }
                        Some(codec::Record::HardState(_)) => {}
                        _ => well_formed = false,
                    }
                }
                Piece::Raw(r) => {
                    bytes.extend(r);
                    well_formed = false;
                }
            }
        }
        bytes.resize(bytes.len() + zeros, 0);
        bytes.extend(&tail);
        fs::write(d.path().join(file_name(0, base + 1)), &bytes).unwrap();
        match Wal::open(d.path(), opts(), initial()) {
            Ok((_, rec)) => {
                prop_assert_eq!(rec.marker, marker);
                let got = (rec.entries, rec.hard_state);
                prop_assert!(states.contains(&got), "recovered a log that was never written");
                if well_formed && tail.is_empty() {
                    prop_assert!(states.last() == Some(&got), "lost records");
                }
            }
            Err(WalError::Corrupt { .. }) => prop_assert!(!well_formed || !tail.is_empty()),
            Err(e) => return Err(TestCaseError::fail(format!("{e}"))),
        }
    }
}
