//! What Concord puts in Raft log entries.
//!
//! A normal entry's data is `[proposer u64 LE][request id u64 LE][kind u8][body]`; an empty one is
//! the no-op a new leader appends. A conf-change entry carries raft-rs's encoded `ConfChange` as
//! its data (raft-rs writes that) and `[proposer][request id][member record]` as its context.
//!
//! The proposer and request id let the member that proposed an entry find its waiting caller
//! without decoding the rest; other members ignore them.

use concord_mvcc::Command;
use serde::{Deserialize, Serialize};

use crate::cluster::MemberRecord;

const TAG_LEN: usize = 16;
const KIND_KV: u8 = 0;
const KIND_PUBLISH: u8 = 1;
const KIND_PEER_URLS: u8 = 2;

/// Who proposed an entry, and which of its requests it answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tag {
    pub proposer: u64,
    pub request: u64,
}

/// A member announcing its name and client URLs once it serves (etcd's "publish").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Publish {
    pub id: u64,
    pub name: String,
    pub client_urls: Vec<String>,
}

/// `MemberUpdate`: new peer URLs for a member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerUrls {
    pub id: u64,
    pub peer_urls: Vec<String>,
}

/// The body of a normal entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    Kv(Command),
    Publish(Publish),
    PeerUrls(PeerUrls),
}

/// Why an entry could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("undecodable log entry: {0}")]
pub struct DecodeError(String);

fn tag_bytes(tag: Tag) -> Vec<u8> {
    let mut out = Vec::with_capacity(TAG_LEN + 64);
    out.extend_from_slice(&tag.proposer.to_le_bytes());
    out.extend_from_slice(&tag.request.to_le_bytes());
    out
}

/// Builds a normal entry's data.
pub fn encode(tag: Tag, body: &Body) -> Vec<u8> {
    let mut out = tag_bytes(tag);
    match body {
        Body::Kv(cmd) => {
            out.push(KIND_KV);
            out.extend_from_slice(&cmd.encode());
        }
        Body::Publish(p) => {
            out.push(KIND_PUBLISH);
            out.extend_from_slice(&bincode::serialize(p).expect("encodes"));
        }
        Body::PeerUrls(p) => {
            out.push(KIND_PEER_URLS);
            out.extend_from_slice(&bincode::serialize(p).expect("encodes"));
        }
    }
    out
}

/// The tag of a normal entry's data or of a conf change's context; None when too short (such as
/// the empty entry a new leader appends).
pub fn tag(data: &[u8]) -> Option<Tag> {
    let proposer = u64::from_le_bytes(data.get(..8)?.try_into().ok()?);
    let request = u64::from_le_bytes(data.get(8..TAG_LEN)?.try_into().ok()?);
    Some(Tag { proposer, request })
}

/// The body of a normal entry; None for an empty entry.
pub fn body(data: &[u8]) -> Option<Result<Body, DecodeError>> {
    if data.is_empty() {
        return None;
    }
    let Some((&kind, rest)) = data.get(TAG_LEN..).and_then(|d| d.split_first()) else {
        return Some(Err(DecodeError("entry shorter than its header".into())));
    };
    let err = |e: &dyn std::fmt::Display| DecodeError(e.to_string());
    Some(match kind {
        KIND_KV => Command::decode(rest).map(Body::Kv).map_err(|e| err(&e)),
        KIND_PUBLISH => bincode::deserialize(rest)
            .map(Body::Publish)
            .map_err(|e| err(&e)),
        KIND_PEER_URLS => bincode::deserialize(rest)
            .map(Body::PeerUrls)
            .map_err(|e| err(&e)),
        other => Err(DecodeError(format!("unknown entry kind {other}"))),
    })
}

/// Builds a conf change's context: the tag and the member it adds, promotes or removes.
pub fn encode_context(tag: Tag, member: &MemberRecord) -> Vec<u8> {
    let mut out = tag_bytes(tag);
    out.extend_from_slice(&member.encode());
    out
}

/// The member record of a conf change's context.
pub fn context_member(ctx: &[u8]) -> Result<MemberRecord, DecodeError> {
    let rest = ctx
        .get(TAG_LEN..)
        .ok_or_else(|| DecodeError("conf change context shorter than its header".into()))?;
    MemberRecord::decode(rest).map_err(DecodeError)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_short_payloads() {
        let t = Tag {
            proposer: 9,
            request: 42,
        };
        let cmd = Body::Kv(Command::Compact { revision: 7 });
        let data = encode(t, &cmd);
        assert_eq!(tag(&data), Some(t));
        assert_eq!(body(&data).unwrap().unwrap(), cmd);
        let p = Body::Publish(Publish {
            id: 1,
            name: "n".into(),
            client_urls: vec!["http://a:1".into()],
        });
        assert_eq!(body(&encode(t, &p)).unwrap().unwrap(), p);
        assert!(body(&[]).is_none());
        assert!(tag(&[1, 2]).is_none());
        assert!(body(&[1, 2]).unwrap().is_err());
        let mut bad = encode(t, &cmd);
        bad[TAG_LEN] = 99;
        assert!(body(&bad).unwrap().is_err());
        let m = MemberRecord {
            id: 5,
            ..Default::default()
        };
        let ctx = encode_context(t, &m);
        assert_eq!(tag(&ctx), Some(t));
        assert_eq!(context_member(&ctx).unwrap(), m);
    }
}
