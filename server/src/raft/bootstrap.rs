//! Bootstrapping a new cluster from `--initial-cluster`, as etcd does: every initial member
//! derives the same member ids, the same cluster id and the same first log entries (one committed
//! `AddNode` conf change per member at term 1), so a member that joins later learns the initial
//! membership from the log like any other change.

use protobuf::Message as _;
use raft::eraftpb::{ConfChange, ConfChangeType, Entry, EntryType};

use crate::cluster::ids;
use crate::cluster::MemberRecord;
use crate::proposal::{self, Tag};

/// One `name=url` group of `--initial-cluster`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitialMember {
    pub name: String,
    pub peer_urls: Vec<String>,
}

/// Parses `name1=url1,name1=url2,name2=url3`: a name may repeat to give several URLs.
pub fn parse_initial_cluster(s: &str) -> Result<Vec<InitialMember>, String> {
    let mut out: Vec<InitialMember> = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, url) = part
            .split_once('=')
            .ok_or_else(|| format!("{part:?} is not name=url"))?;
        let (name, url) = (name.trim(), url.trim());
        if name.is_empty() || url.is_empty() {
            return Err(format!("{part:?} is not name=url"));
        }
        if !url.starts_with("http://") {
            return Err(format!("{url}: expected http://host:port"));
        }
        match out.iter_mut().find(|m| m.name == name) {
            Some(m) => m.peer_urls.push(url.to_string()),
            None => out.push(InitialMember {
                name: name.to_string(),
                peer_urls: vec![url.to_string()],
            }),
        }
    }
    if out.is_empty() {
        return Err("no member given".into());
    }
    for (i, a) in out.iter().enumerate() {
        for b in &out[i + 1..] {
            if let Some(u) = a.peer_urls.iter().find(|u| b.peer_urls.contains(u)) {
                return Err(format!("{u} is given for both {} and {}", a.name, b.name));
            }
        }
    }
    Ok(out)
}

/// The initial members with their ids, sorted by id.
pub fn initial_members(cluster: &[InitialMember], token: &str) -> Vec<MemberRecord> {
    let mut members: Vec<MemberRecord> = cluster
        .iter()
        .map(|m| MemberRecord {
            id: ids::member_id(&m.peer_urls, token),
            name: m.name.clone(),
            peer_urls: m.peer_urls.clone(),
            client_urls: Vec::new(),
            is_learner: false,
        })
        .collect();
    members.sort_by_key(|m| m.id);
    members
}

/// The first log entries of a new cluster: one committed `AddNode` per initial member, at term 1.
/// The records carry no name, so every member writes the very same bytes whatever it was
/// called; names and client URLs arrive when each member publishes itself.
pub fn bootstrap_entries(members: &[MemberRecord]) -> Vec<Entry> {
    members
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let record = MemberRecord {
                name: String::new(),
                client_urls: Vec::new(),
                ..m.clone()
            };
            let mut cc = ConfChange::default();
            cc.set_change_type(ConfChangeType::AddNode);
            cc.node_id = m.id;
            let mut e = Entry::default();
            e.set_entry_type(EntryType::EntryConfChange);
            e.term = 1;
            e.index = i as u64 + 1;
            e.data = cc.write_to_bytes().expect("a conf change encodes").into();
            e.context = proposal::encode_context(
                Tag {
                    proposer: 0,
                    request: 0,
                },
                &record,
            )
            .into();
            e
        })
        .collect()
}

/// The configuration the bootstrap entries describe. A new member starts Raft with it rather
/// than with an empty one, as etcd does: were the entries applied one at a time, the first
/// member would for a moment be a lone voter and could elect itself and commit on its own.
pub fn bootstrap_conf_state(entries: &[Entry]) -> raft::eraftpb::ConfState {
    let mut cs = raft::eraftpb::ConfState::default();
    for e in entries {
        if e.get_entry_type() != EntryType::EntryConfChange {
            continue;
        }
        if let Ok(cc) = ConfChange::parse_from_bytes(&e.data) {
            if cc.get_change_type() == ConfChangeType::AddNode && !cs.voters.contains(&cc.node_id) {
                cs.voters.push(cc.node_id);
            }
        }
    }
    cs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_groups_and_refuses_nonsense() {
        let c = parse_initial_cluster("a=http://h:1, b=http://h:2,a=http://h:3").unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].peer_urls, vec!["http://h:1", "http://h:3"]);
        assert!(parse_initial_cluster("a").is_err());
        assert!(parse_initial_cluster("a=").is_err());
        assert!(parse_initial_cluster("a=h:1").is_err());
        assert!(parse_initial_cluster("a=http://h:1,b=http://h:1").is_err());
        assert!(parse_initial_cluster("").is_err());
    }

    #[test]
    fn every_member_derives_the_same_log() {
        let c = parse_initial_cluster("a=http://h:1,b=http://h:2,c=http://h:3").unwrap();
        let m1 = initial_members(&c, "tok");
        let m2 = initial_members(&c, "tok");
        assert_eq!(m1, m2);
        assert_ne!(initial_members(&c, "other")[0].id, m1[0].id);
        let e = bootstrap_entries(&m1);
        assert_eq!(e.len(), 3);
        assert_eq!(e, bootstrap_entries(&m2));
        assert_eq!((e[2].index, e[2].term), (3, 1));
        let rec = proposal::context_member(&e[1].context).unwrap();
        assert_eq!(rec.id, m1[1].id);
        assert!(rec.name.is_empty());
    }

    #[test]
    fn a_new_member_starts_with_every_initial_voter() {
        let c = parse_initial_cluster("a=http://h:1,b=http://h:2,c=http://h:3").unwrap();
        let members = initial_members(&c, "tok");
        let cs = bootstrap_conf_state(&bootstrap_entries(&members));
        let ids: Vec<u64> = members.iter().map(|m| m.id).collect();
        assert_eq!(cs.voters, ids);
        assert!(cs.learners.is_empty());
        assert!(bootstrap_conf_state(&[]).voters.is_empty());
    }
}
