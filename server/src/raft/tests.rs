//! The Raft thread against a scripted apply thread: the test plays the apply side, so it
//! decides when each conf change is reported applied.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::time::Duration;

use concord_wal::{Marker, Wal, WalOptions};
use raft::eraftpb::{ConfChange, ConfChangeType, ConfState, EntryType, Message};

use super::raft_loop::MAX_APPLY_LAG;
use super::Transport;
use super::{spawn, RaftHandle, RaftMsg, StartOptions};
use crate::cluster::MemberRecord;
use crate::error::Fatal;
use crate::proposal::{self, Tag};
use crate::raft::bootstrap::{bootstrap_entries, initial_members, parse_initial_cluster};
use crate::state::apply::ApplyTask;

struct Nowhere;

impl Transport for Nowhere {
    fn send(&self, _msgs: Vec<Message>) {}
    fn set_peers(&self, _peers: Vec<(u64, Vec<String>)>) {}
}

/// A lone member's Raft thread on a fresh WAL; the test holds its apply channel and says how
/// far it has applied.
struct Lone {
    raft: RaftHandle,
    apply: Receiver<ApplyTask>,
    applied: tokio::sync::watch::Sender<u64>,
    id: u64,
}

fn lone_member(dir: &std::path::Path) -> Lone {
    let cluster = parse_initial_cluster("m0=http://127.0.0.1:9").expect("cluster");
    let members = initial_members(&cluster, "t");
    let id = members[0].id;
    let initial = Marker {
        index: 0,
        term: 0,
        conf_state: ConfState::default(),
    };
    let (wal, recovered) =
        Wal::open(&dir.join("wal"), WalOptions::default(), initial).expect("wal");
    let (applied, applied_rx) = tokio::sync::watch::channel(0);
    let opts = StartOptions {
        id,
        bootstrap: bootstrap_entries(&members),
        conf_state: ConfState::default(),
        data_dir: dir.to_path_buf(),
        wal,
        recovered,
        tick: Duration::from_millis(10),
        election_ticks: 10,
        applied: 0,
        log_retain: 1000,
        applied_rx,
    };
    let (tx, rx) = channel();
    let (apply_tx, apply_rx) = channel();
    let (fatal, _) = tokio::sync::mpsc::unbounded_channel();
    let raft = spawn(opts, tx, rx, apply_tx, Arc::new(Nowhere), Fatal(fatal)).expect("spawn");
    Lone {
        raft,
        apply: apply_rx,
        applied,
        id,
    }
}

fn wait_leader(l: &Lone) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while l.raft.status.lock().unwrap().leader_id != l.id {
        assert!(std::time::Instant::now() < deadline, "no leader");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn add_learner(tx: &Sender<RaftMsg>, me: u64, request: u64, learner: u64) {
    let mut cc = ConfChange::default();
    cc.set_change_type(ConfChangeType::AddLearnerNode);
    cc.node_id = learner;
    let record = MemberRecord {
        id: learner,
        peer_urls: vec![format!("http://127.0.0.1:{learner}")],
        is_learner: true,
        ..Default::default()
    };
    let (done, _) = tokio::sync::oneshot::channel();
    tx.send(RaftMsg::ProposeConfChange {
        request,
        cc,
        context: proposal::encode_context(
            Tag {
                proposer: me,
                request,
            },
            &record,
        ),
        done,
        _permit: None,
    })
    .expect("send");
}

/// The conf changes among the entries of the next task, reporting the bootstrap ones applied.
fn next_conf_changes(apply: &Receiver<ApplyTask>, wait: Duration) -> Option<Vec<ConfChange>> {
    use protobuf::Message as _;
    match apply.recv_timeout(wait).ok()? {
        ApplyTask::Entries { entries, .. } => Some(
            entries
                .iter()
                .filter(|e| e.get_entry_type() == EntryType::EntryConfChange)
                .map(|e| ConfChange::parse_from_bytes(e.get_data()).expect("conf change"))
                .collect(),
        ),
        _ => Some(Vec::new()),
    }
}

/// raft-rs allows one unapplied conf change at a time, judged by its applied index: it must
/// not hear that entries are applied before their conf changes are (issue 11 §1.2).
#[test]
fn no_entry_is_dispatched_past_a_conf_change_until_it_is_applied() {
    let dir = tempfile::tempdir().expect("tempdir");
    let l = lone_member(dir.path());
    let (raft, apply, me) = (&l.raft, &l.apply, l.id);
    // The bootstrap entry (this member joining) comes first; report it applied.
    let first = next_conf_changes(apply, Duration::from_secs(5)).expect("bootstrap entries");
    assert_eq!(first.len(), 1);
    for cc in first {
        raft.tx.send(RaftMsg::ConfChangeApplied(Some(cc))).unwrap();
    }
    wait_leader(&l);
    // Propose a first conf change and hold back its report.
    add_learner(&raft.tx, me, 1, 101);
    let mut held = Vec::new();
    while held.is_empty() {
        held = next_conf_changes(apply, Duration::from_secs(5)).expect("first conf change");
    }
    assert_eq!(held[0].node_id, 101);
    // A second conf change now may not be committed before the first reaches raft-rs.
    add_learner(&raft.tx, me, 2, 102);
    let early = next_conf_changes(apply, Duration::from_millis(500));
    assert!(
        early.is_none(),
        "entries were dispatched while a conf change was not yet applied: {early:?}"
    );
    raft.tx
        .send(RaftMsg::ConfChangeApplied(Some(held.remove(0))))
        .unwrap();
    let mut later = Vec::new();
    while later.is_empty() {
        later = next_conf_changes(apply, Duration::from_secs(5)).expect("second conf change");
    }
    assert_eq!(later[0].node_id, 102);
    raft.tx.send(RaftMsg::Stop).unwrap();
}

fn propose(
    tx: &Sender<RaftMsg>,
    me: u64,
    request: u64,
) -> tokio::sync::oneshot::Receiver<ProposeResult> {
    let (done, answer) = tokio::sync::oneshot::channel();
    let tag = Tag {
        proposer: me,
        request,
    };
    let body = proposal::Body::Kv(concord_mvcc::Command::Compact { revision: 1 });
    tx.send(RaftMsg::Propose {
        request,
        data: proposal::encode(tag, &body),
        done,
        _permit: None,
    })
    .expect("send");
    answer
}

type ProposeResult = Result<crate::raft::Outcome, crate::error::ServerError>;

/// Issue 11 §1.12: once the apply thread is more than `MAX_APPLY_LAG` committed entries behind,
/// proposals are refused with "too many requests" (as etcd does), and accepted again once it
/// catches up.
#[test]
fn proposals_are_refused_while_applying_lags_far_behind_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let l = lone_member(dir.path());
    for cc in next_conf_changes(&l.apply, Duration::from_secs(5)).expect("bootstrap") {
        l.raft
            .tx
            .send(RaftMsg::ConfChangeApplied(Some(cc)))
            .unwrap();
    }
    wait_leader(&l);
    // Nothing is reported applied: commit runs ahead of the apply thread.
    let n = MAX_APPLY_LAG + 100;
    let mut answers = Vec::new();
    for request in 1..=n {
        answers.push(propose(&l.raft.tx, l.id, request));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while l.raft.status.lock().unwrap().commit_index < n {
        assert!(
            std::time::Instant::now() < deadline,
            "entries not committed"
        );
        while l.apply.try_recv().is_ok() {}
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut refused = propose(&l.raft.tx, l.id, n + 1);
    let answer = loop {
        while l.apply.try_recv().is_ok() {}
        if let Ok(a) = refused.try_recv() {
            break a;
        }
        assert!(std::time::Instant::now() < deadline, "no answer");
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(
        matches!(answer, Err(crate::error::ServerError::TooManyRequests)),
        "{answer:?}"
    );
    // Caught up: accepted again (its callback goes to the apply thread with the entry).
    let commit = l.raft.status.lock().unwrap().commit_index;
    l.applied.send(commit).unwrap();
    let _accepted = propose(&l.raft.tx, l.id, n + 2);
    let mut handed_over = false;
    while !handed_over {
        let task = l
            .apply
            .recv_timeout(Duration::from_secs(5))
            .expect("entries");
        if let ApplyTask::Entries { callbacks, .. } = task {
            handed_over = callbacks.iter().any(Option::is_some);
        }
    }
    drop(answers);
    l.raft.tx.send(RaftMsg::Stop).unwrap();
}

mod fuzz {
    use proptest::prelude::*;
    use raft::eraftpb::{Entry, Message, MessageType};
    use raft::storage::MemStorage;
    use raft::RawNode;

    use super::super::raft_loop::check_peer_message;
    use super::super::storage::RaftStorage;

    /// A member (id 1) of three with a short log: entries 1..=5 at term 1, 3 committed; a
    /// follower unless the test makes it lead.
    fn follower() -> RawNode<RaftStorage> {
        let mem = MemStorage::new_with_conf_state((vec![1, 2, 3], vec![]));
        {
            let mut core = mem.wl();
            let entries: Vec<Entry> = (1..=5)
                .map(|index| Entry {
                    index,
                    term: 1,
                    ..Default::default()
                })
                .collect();
            core.append(&entries).unwrap();
            core.mut_hard_state().term = 1;
            core.mut_hard_state().commit = 3;
        }
        let config = raft::Config {
            id: 1,
            election_tick: 10,
            heartbeat_tick: 1,
            check_quorum: true,
            pre_vote: true,
            ..Default::default()
        };
        RawNode::new(
            &config,
            RaftStorage::new(mem),
            &super::super::logger::logger(),
        )
        .unwrap()
    }

    fn message() -> impl Strategy<Value = Message> {
        (
            0i32..19,
            prop_oneof![Just(2u64), Just(3u64), Just(9u64)],
            0u64..4,
            0u64..9,
            0u64..4,
            0u64..9,
            proptest::collection::vec((0u64..9, 0u64..4), 0..4),
            any::<bool>(),
        )
            .prop_map(
                |(ty, from, term, index, log_term, commit, entries, reject)| {
                    let mut m = Message::default();
                    let ty = <MessageType as protobuf::ProtobufEnum>::from_i32(ty);
                    m.set_msg_type(ty.unwrap_or_default());
                    m.from = from;
                    m.to = 1;
                    m.term = term;
                    m.index = index;
                    m.log_term = log_term;
                    m.commit = commit;
                    m.reject = reject;
                    m.entries = entries
                        .into_iter()
                        .map(|(index, term)| Entry {
                            index,
                            term,
                            ..Default::default()
                        })
                        .collect::<Vec<_>>()
                        .into();
                    m
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        /// Issue 11 §1.10 / §2: whatever a peer sends, what passes `check_peer_message` never
        /// makes raft-rs stop the member (a panic here would abort the process).
        #[test]
        fn checked_peer_messages_never_stop_raft(
            msgs in proptest::collection::vec(message(), 1..6),
            leads in any::<bool>(),
        ) {
            let mut node = follower();
            if leads {
                node.raft.become_candidate();
                node.raft.become_leader();
            }
            for m in msgs {
                if m.get_msg_type() == MessageType::MsgSnapshot {
                    // Snapshots come only through the verified Snapshot call.
                    continue;
                }
                if check_peer_message(&node, &m).is_ok() {
                    let _ = node.step(m);
                }
            }
        }
    }
}
