//! Key and record encodings of the column families.

use crate::error::MvccError;
use crate::types::{Alarm, AlarmType, KeyValue};

/// A key's version as stored in `kv` and `history`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rec {
    pub create: i64,
    pub modr: i64,
    pub sub: i64,
    pub version: i64,
    pub lease: i64,
    pub value: Vec<u8>,
    pub tombstone: bool,
}

const REC_FORMAT: u8 = 1;
const REC_HEADER: usize = 2 + 5 * 8;

impl Rec {
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(REC_HEADER + self.value.len());
        b.push(REC_FORMAT);
        b.push(self.tombstone as u8);
        for n in [self.create, self.modr, self.sub, self.version, self.lease] {
            b.extend_from_slice(&n.to_le_bytes());
        }
        b.extend_from_slice(&self.value);
        b
    }

    pub fn decode(b: &[u8]) -> Result<Rec, MvccError> {
        Rec::decode_with(b, true)
    }

    /// Decodes a record, leaving its value empty unless `with_value`.
    pub fn decode_with(b: &[u8], with_value: bool) -> Result<Rec, MvccError> {
        if b.len() < REC_HEADER || b[0] != REC_FORMAT {
            return Err(MvccError::Corrupt("bad record".into()));
        }
        let n = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[2 + 8 * i..10 + 8 * i]);
            i64::from_le_bytes(a)
        };
        Ok(Rec {
            create: n(0),
            modr: n(1),
            sub: n(2),
            version: n(3),
            lease: n(4),
            value: if with_value {
                b[REC_HEADER..].to_vec()
            } else {
                Vec::new()
            },
            tombstone: b[1] != 0,
        })
    }

    /// Whether an encoded record is a tombstone, without decoding the rest.
    pub fn is_tombstone(b: &[u8]) -> Result<bool, MvccError> {
        if b.len() < REC_HEADER || b[0] != REC_FORMAT {
            return Err(MvccError::Corrupt("bad record".into()));
        }
        Ok(b[1] != 0)
    }

    pub fn into_kv(self, key: Vec<u8>) -> KeyValue {
        KeyValue {
            key,
            create_revision: self.create,
            mod_revision: self.modr,
            version: self.version,
            value: self.value,
            lease: self.lease,
        }
    }
}

/// The user key escaped so it sorts first in a composite key: 0x00 → 0x00 0xff, then the
/// terminator 0x00 0x01.
pub fn escaped(key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 10);
    for &b in key {
        out.push(b);
        if b == 0 {
            out.push(0xff);
        }
    }
    out
}

pub fn terminated(key: &[u8]) -> Vec<u8> {
    let mut out = escaped(key);
    out.extend_from_slice(&[0, 1]);
    out
}

/// The smallest `history` key after every version of `key`: its terminator's last byte bumped.
pub fn after_versions(key: &[u8]) -> Vec<u8> {
    let mut out = escaped(key);
    out.extend_from_slice(&[0, 2]);
    out
}

/// `history` key: escaped key, terminator, then `u64::MAX - rev` big-endian (newest first).
pub fn history_key(key: &[u8], rev: i64) -> Vec<u8> {
    let mut out = terminated(key);
    out.extend_from_slice(&(u64::MAX - rev as u64).to_be_bytes());
    out
}

/// Splits a `history` key into user key and revision.
pub fn split_history_key(hk: &[u8]) -> Result<(Vec<u8>, i64), MvccError> {
    let bad = || MvccError::Corrupt("bad history key".into());
    let mut key = Vec::with_capacity(hk.len());
    let mut i = 0;
    loop {
        let b = *hk.get(i).ok_or_else(bad)?;
        if b == 0 {
            match hk.get(i + 1) {
                Some(0xff) => key.push(0),
                Some(1) => break,
                _ => return Err(bad()),
            }
            i += 2;
        } else {
            key.push(b);
            i += 1;
        }
    }
    let rest = hk.get(i + 2..).ok_or_else(bad)?;
    let arr: [u8; 8] = rest.try_into().map_err(|_| bad())?;
    Ok((key, (u64::MAX - u64::from_be_bytes(arr)) as i64))
}

/// `revs` key: main and sub revision, big-endian.
pub fn rev_key(main: i64, sub: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(16);
    out.extend_from_slice(&(main as u64).to_be_bytes());
    out.extend_from_slice(&(sub as u64).to_be_bytes());
    out
}

pub fn rev_of(rk: &[u8]) -> Result<i64, MvccError> {
    let arr: [u8; 8] = rk
        .get(..8)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| MvccError::Corrupt("bad revs key".into()))?;
    Ok(u64::from_be_bytes(arr) as i64)
}

pub const EVENT_PUT: u8 = 0;
pub const EVENT_DELETE: u8 = 1;

pub fn rev_value(kind: u8, key: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(1 + key.len());
    v.push(kind);
    v.extend_from_slice(key);
    v
}

/// `lease` CF: `l` + id → [`LeaseRec`]; `k` + id + user key → nothing (the key is attached).
/// Prefix of the raised alarms in `meta`.
pub const ALARM_PREFIX: &[u8] = b"alarm/";

/// A raised alarm's key in `meta`: the prefix, the member id and the alarm's number (both
/// big-endian). The value is empty.
pub fn alarm_key(a: &Alarm) -> Vec<u8> {
    let mut k = ALARM_PREFIX.to_vec();
    k.extend_from_slice(&a.member.to_be_bytes());
    k.extend_from_slice(&a.alarm.number().to_be_bytes());
    k
}

/// The alarm an `alarm_key` names.
pub fn parse_alarm_key(k: &[u8]) -> Result<Alarm, MvccError> {
    let bad = || MvccError::Corrupt("bad alarm key".into());
    let rest = k.strip_prefix(ALARM_PREFIX).ok_or_else(bad)?;
    let (member, number) = rest.split_first_chunk::<8>().ok_or_else(bad)?;
    let number: [u8; 4] = number.try_into().map_err(|_| bad())?;
    Ok(Alarm {
        member: u64::from_be_bytes(*member),
        alarm: AlarmType::from_number(i32::from_be_bytes(number)).ok_or_else(bad)?,
    })
}

pub fn lease_key(id: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(9);
    out.push(b'l');
    out.extend_from_slice(&(id as u64).to_be_bytes());
    out
}

pub fn lease_keys_prefix(id: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(9);
    out.push(b'k');
    out.extend_from_slice(&(id as u64).to_be_bytes());
    out
}

pub fn lease_attach_key(id: i64, key: &[u8]) -> Vec<u8> {
    let mut out = lease_keys_prefix(id);
    out.extend_from_slice(key);
    out
}

/// The first key after every `k` + id + … key: the next id's prefix (or `l`, after every `k`).
pub fn lease_keys_end(id: i64) -> Vec<u8> {
    match (id as u64).checked_add(1) {
        Some(next) => {
            let mut out = vec![b'k'];
            out.extend_from_slice(&next.to_be_bytes());
            out
        }
        None => vec![b'l'],
    }
}

/// A lease's record: TTL and remaining TTL at the last checkpoint, little-endian.
pub fn encode_lease(ttl: i64, remaining: i64) -> Vec<u8> {
    let mut v = Vec::with_capacity(16);
    v.extend_from_slice(&ttl.to_le_bytes());
    v.extend_from_slice(&remaining.to_le_bytes());
    v
}

pub fn decode_lease(v: &[u8]) -> Result<(i64, i64), MvccError> {
    let bad = || MvccError::Corrupt("bad lease record".into());
    let ttl: [u8; 8] = v.get(..8).and_then(|s| s.try_into().ok()).ok_or_else(bad)?;
    let rem: [u8; 8] = v
        .get(8..16)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(bad)?;
    Ok((i64::from_le_bytes(ttl), i64::from_le_bytes(rem)))
}

/// The end of a key range: `range_end` as etcd reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum End {
    /// Only the key itself.
    Single,
    /// Up to this key, exclusive.
    Until(Vec<u8>),
    /// Every key from the start on.
    Unbounded,
}

pub fn end_of(range_end: &[u8]) -> End {
    match range_end {
        [] => End::Single,
        [0] => End::Unbounded,
        e => End::Until(e.to_vec()),
    }
}

/// The upper bound (exclusive) in the `kv` CF, or None for no bound.
pub fn kv_upper(key: &[u8], end: &End) -> Option<Vec<u8>> {
    match end {
        End::Single => {
            let mut k = key.to_vec();
            k.push(0);
            Some(k)
        }
        End::Until(e) => Some(e.clone()),
        End::Unbounded => None,
    }
}

/// The bounds in the `history` CF covering the same user keys.
pub fn history_bounds(key: &[u8], end: &End) -> (Vec<u8>, Option<Vec<u8>>) {
    match end {
        End::Single => (terminated(key), Some(after_versions(key))),
        End::Until(e) => (escaped(key), Some(terminated(e))),
        End::Unbounded => (escaped(key), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_keys_sort_by_user_key_then_newest_first() {
        let keys: Vec<&[u8]> = vec![b"a", b"a\0", b"a\0b", b"a\x01", b"ab", b"b", b"\xff"];
        let mut all = Vec::new();
        for k in &keys {
            for rev in [1, 5, 300] {
                all.push((history_key(k, rev), k.to_vec(), rev));
            }
        }
        let mut sorted = all.clone();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        let expect: Vec<_> = keys
            .iter()
            .flat_map(|k| [300, 5, 1].map(|r| (k.to_vec(), r)))
            .collect();
        let got: Vec<_> = sorted.iter().map(|(_, k, r)| (k.clone(), *r)).collect();
        assert_eq!(got, expect);
        for (hk, k, r) in all {
            assert_eq!(split_history_key(&hk).unwrap(), (k, r));
        }
    }

    #[test]
    fn records_round_trip_and_garbage_is_refused() {
        let r = Rec {
            create: 2,
            modr: 9,
            sub: 1,
            version: 3,
            lease: 0,
            value: b"v".to_vec(),
            tombstone: false,
        };
        assert_eq!(Rec::decode(&r.encode()).unwrap(), r);
        assert!(Rec::decode(&[1, 2, 3]).is_err());
        assert!(split_history_key(b"abc").is_err());
    }
}
