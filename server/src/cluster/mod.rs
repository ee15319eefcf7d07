//! Cluster membership: member records, the bootstrap of a new cluster, and the rules (etcd's) for
//! applying membership changes. The apply thread owns a `Membership` and persists every change in
//! the store's meta in the same write batch as the applied index.

pub mod discovery;
pub mod ids;
mod member;

use raft::eraftpb::{ConfChange, ConfChangeType, ConfState};
use serde::{Deserialize, Serialize};

pub use member::{
    member_key, removed_key, MemberRecord, Members, PeerUrls, Publish, MEMBER_PREFIX,
    REMOVED_PREFIX,
};

use crate::error::ServerError;

/// Meta key of the Raft configuration at the applied index.
pub const CONF_STATE_KEY: &str = "conf_state";

/// Most learners at a time, as etcd allows.
pub const MAX_LEARNERS: usize = 1;

/// A meta change to write with the apply batch (None deletes).
pub type MetaWrite = (String, Option<Vec<u8>>);

/// Raft's voters and learners, in a form that serializes without raft's protobuf stack.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Voters {
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
}

impl Voters {
    pub fn to_conf_state(&self) -> ConfState {
        ConfState {
            voters: self.voters.clone(),
            learners: self.learners.clone(),
            ..Default::default()
        }
    }

    fn encode(&self) -> Vec<u8> {
        bincode::serialize(self).expect("encodes")
    }
}

/// The membership at the applied index.
#[derive(Clone, Debug, Default)]
pub struct Membership {
    pub members: Members,
    pub voters: Voters,
}

impl Membership {
    /// Reads the membership from meta entries (`member/`, `removed/` and `conf_state`).
    pub fn from_meta(
        members: Vec<(String, Vec<u8>)>,
        removed: Vec<(String, Vec<u8>)>,
        conf_state: Option<Vec<u8>>,
    ) -> Result<Membership, String> {
        let mut m = Membership::default();
        for (_, bytes) in members {
            let rec = MemberRecord::decode(&bytes)?;
            m.members.by_id.insert(rec.id, rec);
        }
        for (key, _) in removed {
            let id = key
                .strip_prefix(REMOVED_PREFIX)
                .and_then(|h| u64::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad removed member key {key:?}"))?;
            m.members.removed.push(id);
        }
        if let Some(bytes) = conf_state {
            m.voters =
                bincode::deserialize(&bytes).map_err(|e| format!("bad conf state in meta: {e}"))?;
        }
        Ok(m)
    }

    /// The meta writes that record the members and voters as they are now.
    #[cfg(test)]
    pub fn initial_meta(&self) -> Vec<MetaWrite> {
        let mut out: Vec<MetaWrite> = self
            .members
            .by_id
            .values()
            .map(|r| (member_key(r.id), Some(r.encode())))
            .collect();
        out.push((CONF_STATE_KEY.to_string(), Some(self.voters.encode())));
        out
    }

    /// Checks a conf change against the membership as etcd does, and applies it. Returns the
    /// meta writes to persist, or the error the proposer gets (the change is then not applied,
    /// on any member, since every member decides the same from the same state).
    pub fn apply_conf_change(
        &mut self,
        cc: &ConfChange,
        record: MemberRecord,
    ) -> Result<Vec<MetaWrite>, ServerError> {
        let id = cc.node_id;
        if self.members.is_removed(id) {
            return Err(ServerError::MemberNotFound);
        }
        let existing = self.members.get(id).cloned();
        let mut writes = Vec::new();
        match cc.get_change_type() {
            ConfChangeType::AddNode | ConfChangeType::AddLearnerNode => {
                let learner = cc.get_change_type() == ConfChangeType::AddLearnerNode;
                match existing {
                    // The bootstrap entries re-add the initial members a new cluster starts with.
                    Some(cur)
                        if !cur.is_learner && !learner && cur.peer_urls == record.peer_urls => {}
                    Some(cur) if cur.is_learner && !learner => {
                        // Promotion.
                        let rec = MemberRecord {
                            is_learner: false,
                            ..cur
                        };
                        writes.push((member_key(id), Some(rec.encode())));
                        self.members.by_id.insert(id, rec);
                    }
                    Some(cur) if !cur.is_learner && !learner => {
                        return Err(ServerError::MemberExists)
                    }
                    Some(_) if learner => return Err(ServerError::MemberExists),
                    Some(_) => return Err(ServerError::MemberNotLearner),
                    None => {
                        if self.members.peer_url_owner(&record.peer_urls, id).is_some() {
                            return Err(ServerError::PeerUrlExists);
                        }
                        if learner && self.members.learners().len() >= MAX_LEARNERS {
                            return Err(ServerError::TooManyLearners);
                        }
                        let rec = MemberRecord {
                            id,
                            is_learner: learner,
                            ..record
                        };
                        writes.push((member_key(id), Some(rec.encode())));
                        self.members.by_id.insert(id, rec);
                    }
                }
            }
            ConfChangeType::RemoveNode => {
                if existing.is_none() {
                    return Err(ServerError::MemberNotFound);
                }
                self.members.by_id.remove(&id);
                self.members.removed.push(id);
                writes.push((member_key(id), None));
                writes.push((removed_key(id), Some(Vec::new())));
            }
        }
        self.voters = Voters {
            voters: self.members.voters(),
            learners: self.members.learners(),
        };
        writes.push((CONF_STATE_KEY.to_string(), Some(self.voters.encode())));
        Ok(writes)
    }

    /// A member's name and client URLs, published when it starts.
    pub fn apply_publish(&mut self, p: &Publish) -> Vec<MetaWrite> {
        match self.members.by_id.get_mut(&p.id) {
            Some(rec) => {
                rec.name = p.name.clone();
                rec.client_urls = p.client_urls.clone();
                vec![(member_key(p.id), Some(rec.encode()))]
            }
            // Removed meanwhile: nothing to record.
            None => Vec::new(),
        }
    }

    /// `MemberUpdate`: new peer URLs.
    pub fn apply_peer_urls(&mut self, p: &PeerUrls) -> Result<Vec<MetaWrite>, ServerError> {
        if self.members.peer_url_owner(&p.peer_urls, p.id).is_some() {
            return Err(ServerError::PeerUrlExists);
        }
        match self.members.by_id.get_mut(&p.id) {
            Some(rec) => {
                rec.peer_urls = p.peer_urls.clone();
                Ok(vec![(member_key(p.id), Some(rec.encode()))])
            }
            None => Err(ServerError::MemberNotFound),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cc(ty: ConfChangeType, id: u64) -> ConfChange {
        let mut c = ConfChange::default();
        c.set_change_type(ty);
        c.node_id = id;
        c
    }

    fn rec(id: u64, url: &str) -> MemberRecord {
        MemberRecord {
            id,
            peer_urls: vec![url.to_string()],
            ..Default::default()
        }
    }

    #[test]
    fn etcd_rules_for_membership_changes() {
        let mut m = Membership::default();
        m.apply_conf_change(&cc(ConfChangeType::AddNode, 1), rec(1, "u1"))
            .unwrap();
        // Re-adding a bootstrap member is a no-op.
        m.apply_conf_change(&cc(ConfChangeType::AddNode, 1), rec(1, "u1"))
            .unwrap();
        assert!(matches!(
            m.apply_conf_change(&cc(ConfChangeType::AddNode, 2), rec(2, "u1")),
            Err(ServerError::PeerUrlExists)
        ));
        m.apply_conf_change(&cc(ConfChangeType::AddLearnerNode, 2), rec(2, "u2"))
            .unwrap();
        assert_eq!(m.voters.learners, vec![2]);
        assert!(matches!(
            m.apply_conf_change(&cc(ConfChangeType::AddLearnerNode, 3), rec(3, "u3")),
            Err(ServerError::TooManyLearners)
        ));
        // Promote.
        m.apply_conf_change(&cc(ConfChangeType::AddNode, 2), MemberRecord::default())
            .unwrap();
        assert_eq!(m.voters.voters, vec![1, 2]);
        assert!(m.voters.learners.is_empty());
        assert!(matches!(
            m.apply_conf_change(&cc(ConfChangeType::AddLearnerNode, 2), rec(2, "u2")),
            Err(ServerError::MemberExists)
        ));
        let w = m
            .apply_conf_change(&cc(ConfChangeType::RemoveNode, 2), MemberRecord::default())
            .unwrap();
        assert!(w.iter().any(|(k, v)| k == &member_key(2) && v.is_none()));
        assert!(matches!(
            m.apply_conf_change(&cc(ConfChangeType::RemoveNode, 2), MemberRecord::default()),
            Err(ServerError::MemberNotFound)
        ));
        assert!(matches!(
            m.apply_conf_change(&cc(ConfChangeType::AddNode, 2), rec(2, "u9")),
            Err(ServerError::MemberNotFound)
        ));
        // Round trip through meta.
        let meta = m.initial_meta();
        let members: Vec<_> = meta
            .iter()
            .filter(|(k, _)| k.starts_with(MEMBER_PREFIX))
            .map(|(k, v)| (k.clone(), v.clone().unwrap()))
            .collect();
        let cs = meta
            .iter()
            .find(|(k, _)| k == CONF_STATE_KEY)
            .and_then(|(_, v)| v.clone());
        let back = Membership::from_meta(members, vec![(removed_key(2), vec![])], cs).unwrap();
        assert_eq!(back.members, m.members);
        assert_eq!(back.voters, m.voters);
    }

    /// The conf state in the store's meta as today's Concord writes it (issue 11 §1.11).
    #[test]
    fn the_conf_state_written_today_still_decodes() {
        let written = [
            &2u64.to_le_bytes()[..],
            &1u64.to_le_bytes()[..],
            &2u64.to_le_bytes()[..],
            &1u64.to_le_bytes()[..],
            &3u64.to_le_bytes()[..],
        ]
        .concat();
        let v = Voters {
            voters: vec![1, 2],
            learners: vec![3],
        };
        assert_eq!(v.encode(), written);
        let back = Membership::from_meta(Vec::new(), Vec::new(), Some(written)).unwrap();
        assert_eq!(back.voters, v);
        assert_eq!(member_key(0xab), "member/00000000000000ab");
        assert_eq!(removed_key(0xab), "removed/00000000000000ab");
    }
}
