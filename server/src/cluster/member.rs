//! Member records and the membership table the apply thread keeps in the store's meta, so that it
//! moves with snapshots and is exact at every applied index.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One member as etcd's `Member` message describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    pub id: u64,
    /// Empty until the member has started and published its attributes.
    pub name: String,
    pub peer_urls: Vec<String>,
    /// Empty until the member has started and published its attributes.
    pub client_urls: Vec<String>,
    pub is_learner: bool,
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

/// Meta key prefix of member records.
pub const MEMBER_PREFIX: &str = "member/";
/// Meta key prefix of removed member ids (a removed id can never come back, as in etcd).
pub const REMOVED_PREFIX: &str = "removed/";

pub fn member_key(id: u64) -> String {
    format!("{MEMBER_PREFIX}{id:016x}")
}

pub fn removed_key(id: u64) -> String {
    format!("{REMOVED_PREFIX}{id:016x}")
}

impl MemberRecord {
    pub fn encode(&self) -> Vec<u8> {
        bincode::serialize(self).expect("a member record always encodes")
    }

    pub fn decode(bytes: &[u8]) -> Result<MemberRecord, String> {
        bincode::deserialize(bytes).map_err(|e| format!("bad member record: {e}"))
    }
}

/// The members of the cluster, by id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Members {
    pub by_id: BTreeMap<u64, MemberRecord>,
    pub removed: Vec<u64>,
}

impl Members {
    pub fn get(&self, id: u64) -> Option<&MemberRecord> {
        self.by_id.get(&id)
    }

    pub fn list(&self) -> Vec<MemberRecord> {
        self.by_id.values().cloned().collect()
    }

    pub fn is_removed(&self, id: u64) -> bool {
        self.removed.contains(&id)
    }

    /// The member (other than `except`) that already uses one of `urls`, if any.
    pub fn peer_url_owner(&self, urls: &[String], except: u64) -> Option<u64> {
        self.by_id
            .values()
            .find(|m| m.id != except && m.peer_urls.iter().any(|u| urls.contains(u)))
            .map(|m| m.id)
    }

    /// Voting members.
    pub fn voters(&self) -> Vec<u64> {
        self.by_id
            .values()
            .filter(|m| !m.is_learner)
            .map(|m| m.id)
            .collect()
    }

    pub fn learners(&self) -> Vec<u64> {
        self.by_id
            .values()
            .filter(|m| m.is_learner)
            .map(|m| m.id)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_urls_have_one_owner() {
        let a = MemberRecord {
            id: 1,
            name: "a".into(),
            peer_urls: vec!["http://127.0.0.1:1".into()],
            client_urls: vec![],
            is_learner: false,
        };
        assert_eq!(MemberRecord::decode(&a.encode()).unwrap(), a);
        assert!(MemberRecord::decode(&[1, 2, 3]).is_err());
        let mut m = Members::default();
        m.by_id.insert(1, a.clone());
        m.by_id.insert(
            2,
            MemberRecord {
                id: 2,
                is_learner: true,
                ..Default::default()
            },
        );
        assert_eq!(m.peer_url_owner(&a.peer_urls, 0), Some(1));
        assert_eq!(m.peer_url_owner(&a.peer_urls, 1), None);
        assert_eq!(m.voters(), vec![1]);
        assert_eq!(m.learners(), vec![2]);
        assert!(member_key(0xab).ends_with("00000000000000ab"));
    }
}
