//! What Concord puts in Raft log entries.
//!
//! A normal entry's data is `[proposer u64 LE][request id u64 LE][kind u8][body]`; an empty one is
//! the no-op a new leader appends. A conf-change entry carries raft-rs's encoded `ConfChange` as
//! its data (raft-rs writes that) and `[proposer][request id][member record]` as its context.
//!
//! The proposer and request id let the member that proposed an entry find its waiting caller
//! without decoding the rest; other members ignore them.

use concord_mvcc::{Applied, Command};
use tokio::sync::oneshot;

use crate::cluster::MemberRecord;
pub use crate::cluster::{PeerUrls, Publish};
use crate::error::ServerError;

const TAG_LEN: usize = 16;
const KIND_KV: u8 = 0;
const KIND_PUBLISH: u8 = 1;
const KIND_PEER_URLS: u8 = 2;
const KIND_KV_IN_TERM: u8 = 3;

/// What an applied proposal produced.
#[derive(Debug)]
pub enum Outcome {
    /// A KV command's result.
    Kv(Applied),
    /// A membership change: the members after it.
    Members(Vec<MemberRecord>),
}

/// Where the outcome of a proposal goes once it is applied.
pub type ProposeDone = oneshot::Sender<Result<Outcome, ServerError>>;

/// Who proposed an entry, and which of its requests it answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tag {
    pub proposer: u64,
    pub request: u64,
}

/// The body of a normal entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    Kv(Command),
    /// A KV command applied only if its entry was appended in `term` (its body is
    /// `[term u64 LE][command]`): what a leader does on its own authority (expiring a lease)
    /// must not be applied once another leader holds the log.
    KvInTerm {
        term: u64,
        command: Command,
    },
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
        Body::KvInTerm { term, command } => {
            out.push(KIND_KV_IN_TERM);
            out.extend_from_slice(&term.to_le_bytes());
            out.extend_from_slice(&command.encode());
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
        KIND_KV_IN_TERM => match rest.split_first_chunk::<8>() {
            Some((term, cmd)) => Command::decode(cmd)
                .map(|command| Body::KvInTerm {
                    term: u64::from_le_bytes(*term),
                    command,
                })
                .map_err(|e| err(&e)),
            None => Err(DecodeError("fenced entry shorter than its term".into())),
        },
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
        let fenced = Body::KvInTerm {
            term: 7,
            command: Command::LeaseRevoke { id: 3 },
        };
        assert_eq!(body(&encode(t, &fenced)).unwrap().unwrap(), fenced);
        let mut short = encode(t, &fenced);
        short.truncate(TAG_LEN + 5);
        assert!(body(&short).unwrap().is_err());
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

    fn strings(items: &[&str]) -> Vec<u8> {
        let mut v = (items.len() as u64).to_le_bytes().to_vec();
        for s in items {
            v.extend_from_slice(&(s.len() as u64).to_le_bytes());
            v.extend_from_slice(s.as_bytes());
        }
        v
    }

    /// The entries and meta values as today's Concord writes them, byte for byte (issue 11
    /// §1.11): the kind byte is the body's format tag, so a new layout takes a new kind and
    /// these bytes must still decode.
    #[test]
    fn entries_and_member_records_written_today_still_decode() {
        let header = [&7u64.to_le_bytes()[..], &9u64.to_le_bytes()[..]].concat();
        let t = Tag {
            proposer: 7,
            request: 9,
        };
        // KV: the command's own encoding (pinned in concord-mvcc's format tests).
        let compact = [&3u32.to_le_bytes()[..], &42i64.to_le_bytes()[..]].concat();
        let kv = [&header[..], &[KIND_KV], &compact[..]].concat();
        let body_kv = Body::Kv(Command::Compact { revision: 42 });
        assert_eq!(body(&kv).unwrap().unwrap(), body_kv);
        assert_eq!(encode(t, &body_kv), kv);
        assert_eq!(tag(&kv), Some(t));

        let fenced = [
            &header[..],
            &[KIND_KV_IN_TERM],
            &5u64.to_le_bytes()[..],
            &compact[..],
        ]
        .concat();
        let body_fenced = Body::KvInTerm {
            term: 5,
            command: Command::Compact { revision: 42 },
        };
        assert_eq!(body(&fenced).unwrap().unwrap(), body_fenced);
        assert_eq!(encode(t, &body_fenced), fenced);

        let publish = [
            &header[..],
            &[KIND_PUBLISH],
            &0xabu64.to_le_bytes()[..],
            &strings(&["m0"])[8..],
            &strings(&["http://a:1"])[..],
        ]
        .concat();
        let body_publish = Body::Publish(Publish {
            id: 0xab,
            name: "m0".into(),
            client_urls: vec!["http://a:1".into()],
        });
        assert_eq!(body(&publish).unwrap().unwrap(), body_publish);
        assert_eq!(encode(t, &body_publish), publish);

        let peer_urls = [
            &header[..],
            &[KIND_PEER_URLS],
            &0xabu64.to_le_bytes()[..],
            &strings(&["http://a:2", "http://b:2"])[..],
        ]
        .concat();
        let body_peer_urls = Body::PeerUrls(PeerUrls {
            id: 0xab,
            peer_urls: vec!["http://a:2".into(), "http://b:2".into()],
        });
        assert_eq!(body(&peer_urls).unwrap().unwrap(), body_peer_urls);
        assert_eq!(encode(t, &body_peer_urls), peer_urls);

        // A member record, in a conf change's context and in the store's meta.
        let record = [
            &0xcdu64.to_le_bytes()[..],
            &strings(&["m1"])[8..],
            &strings(&["http://c:3"])[..],
            &strings(&[])[..],
            &[1],
        ]
        .concat();
        let m = MemberRecord {
            id: 0xcd,
            name: "m1".into(),
            peer_urls: vec!["http://c:3".into()],
            client_urls: Vec::new(),
            is_learner: true,
        };
        assert_eq!(MemberRecord::decode(&record).unwrap(), m);
        assert_eq!(m.encode(), record);
        let ctx = [&header[..], &record[..]].concat();
        assert_eq!(context_member(&ctx).unwrap(), m);
        assert_eq!(encode_context(t, &m), ctx);
    }
}
