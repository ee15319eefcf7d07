//! Lock and election: etcdctl's `lock` and `elect`, mutual exclusion between two clients with
//! their own leases, and etcd's election errors.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use concord_proto::etcdserverpb as pb;
use concord_proto::v3electionpb as electionpb;
use concord_proto::v3lockpb as lockpb;
use concord_tests::{rt_multi, Concord, EtcdctlLines};
use tonic::Code;

#[test]
fn etcdctl_lock_waits_for_the_holder_and_runs_a_command() {
    let c = Concord::start();
    let mut a = EtcdctlLines::spawn(&c.endpoint(), &["lock", "mylock"], false);
    let key_a = a.take(1).remove(0);
    assert!(key_a.starts_with("mylock/"), "{key_a}");
    let mut b = EtcdctlLines::spawn(&c.endpoint(), &["lock", "mylock"], false);
    assert_eq!(
        b.line_within(Duration::from_millis(1500)),
        None,
        "b took a held lock"
    );
    // The holder's key is the lock's first key.
    let held = c.etcdctl_ok(&["get", "mylock/", "--prefix", "--keys-only"]);
    assert_eq!(held.lines().filter(|l| !l.is_empty()).count(), 2);
    a.terminate();
    let key_b = b.take(1).remove(0);
    assert!(key_b.starts_with("mylock/") && key_b != key_a, "{key_b}");
    b.terminate();
    // With a command: it runs while the lock is held, then the lock is released.
    let out = c.etcdctl_ok(&["lock", "mylock", "echo", "held"]);
    assert_eq!(out.trim(), "held");
    assert_eq!(c.etcdctl_ok(&["get", "mylock/", "--prefix"]), "");
}

#[test]
fn etcdctl_elect_campaigns_observes_and_hands_over() {
    let c = Concord::start();
    let mut alice = EtcdctlLines::spawn(&c.endpoint(), &["elect", "myelection", "alice"], false);
    let lines = alice.take(2);
    assert!(lines[0].starts_with("myelection/"), "{lines:?}");
    assert_eq!(lines[1], "alice");
    let observer = EtcdctlLines::spawn(&c.endpoint(), &["elect", "-l", "myelection"], false);
    let seen = observer.take(2);
    assert_eq!(seen, lines);
    let mut bob = EtcdctlLines::spawn(&c.endpoint(), &["elect", "myelection", "bob"], false);
    assert_eq!(
        bob.line_within(Duration::from_millis(1500)),
        None,
        "two leaders"
    );
    alice.terminate();
    let bob_lines = bob.take(2);
    assert!(bob_lines[0].starts_with("myelection/") && bob_lines[0] != lines[0]);
    assert_eq!(bob_lines[1], "bob");
    assert_eq!(observer.take(2), bob_lines);
    bob.terminate();
}

#[test]
fn two_clients_never_hold_the_lock_at_once() {
    let c = Concord::start();
    rt_multi().block_on(async {
        let holding = Arc::new(AtomicBool::new(false));
        let turns = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..2 {
            let endpoint = c.endpoint();
            let (holding, turns) = (holding.clone(), turns.clone());
            tasks.push(tokio::spawn(async move {
                let mut leases = pb::lease_client::LeaseClient::connect(endpoint.clone())
                    .await
                    .unwrap();
                let mut locks = lockpb::lock_client::LockClient::connect(endpoint)
                    .await
                    .unwrap();
                let lease = leases
                    .lease_grant(pb::LeaseGrantRequest { ttl: 30, id: 0 })
                    .await
                    .unwrap()
                    .into_inner()
                    .id;
                for _ in 0..10 {
                    let key = locks
                        .lock(lockpb::LockRequest {
                            name: b"contended".to_vec(),
                            lease,
                        })
                        .await
                        .expect("lock")
                        .into_inner()
                        .key;
                    assert!(!holding.swap(true, Ordering::SeqCst), "both hold the lock");
                    turns.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    holding.store(false, Ordering::SeqCst);
                    locks
                        .unlock(lockpb::UnlockRequest { key })
                        .await
                        .expect("unlock");
                }
            }));
        }
        for t in tasks {
            tokio::time::timeout(Duration::from_secs(60), t)
                .await
                .expect("both finish")
                .expect("no panic");
        }
        assert_eq!(turns.load(Ordering::SeqCst), 20);
    });
}

#[test]
fn election_errors_and_proclaim_follow_etcd() {
    let c = Concord::start();
    rt_multi().block_on(async {
        let endpoint = c.endpoint();
        let mut e = electionpb::election_client::ElectionClient::connect(endpoint.clone())
            .await
            .unwrap();
        let mut leases = pb::lease_client::LeaseClient::connect(endpoint)
            .await
            .unwrap();
        let r = e
            .leader(electionpb::LeaderRequest {
                name: b"nobody".to_vec(),
            })
            .await;
        let s = r.unwrap_err();
        assert_eq!(
            (s.code(), s.message()),
            (Code::FailedPrecondition, "etcdserver: election: no leader")
        );
        let lease = leases
            .lease_grant(pb::LeaseGrantRequest { ttl: 30, id: 0 })
            .await
            .unwrap()
            .into_inner()
            .id;
        let leader = e
            .campaign(electionpb::CampaignRequest {
                name: b"e".to_vec(),
                lease,
                value: b"v1".to_vec(),
            })
            .await
            .expect("campaign")
            .into_inner()
            .leader
            .expect("leader key");
        e.proclaim(electionpb::ProclaimRequest {
            leader: Some(leader.clone()),
            value: b"v2".to_vec(),
        })
        .await
        .expect("proclaim");
        let now = e
            .leader(electionpb::LeaderRequest {
                name: b"e".to_vec(),
            })
            .await
            .expect("leader")
            .into_inner()
            .kv
            .expect("kv");
        assert_eq!((now.key, now.value), (leader.key.clone(), b"v2".to_vec()));
        e.resign(electionpb::ResignRequest {
            leader: Some(leader.clone()),
        })
        .await
        .expect("resign");
        let s = e
            .proclaim(electionpb::ProclaimRequest {
                leader: Some(leader),
                value: b"v3".to_vec(),
            })
            .await
            .unwrap_err();
        assert_eq!(
            (s.code(), s.message()),
            (Code::FailedPrecondition, "etcdserver: election: not leader")
        );
    });
}

#[test]
fn client_mutex_and_election_interoperate_with_etcdctl() {
    let c = Concord::start();
    let holder = EtcdctlLines::spawn(&c.endpoint(), &["lock", "shared"], false);
    let held_by_etcdctl = holder.take(1).remove(0);
    let endpoint = c.endpoint();
    rt_multi().block_on(async move {
        use concord_client::{Client, Election, Mutex, Session};
        let client = Client::connect([endpoint.clone()]).await.expect("connect");
        let session = Session::new(&client, 10).await.expect("session");
        let mut m = Mutex::new(&session, "shared");
        // etcdctl holds it: the client waits until etcdctl lets go.
        let release = tokio::task::spawn_blocking(move || {
            std::thread::sleep(Duration::from_millis(1500));
            let mut holder = holder;
            holder.terminate();
        });
        let waited = std::time::Instant::now();
        tokio::time::timeout(Duration::from_secs(20), m.lock())
            .await
            .expect("lock in time")
            .expect("lock");
        assert!(
            waited.elapsed() >= Duration::from_millis(1400),
            "took a held lock"
        );
        release.await.unwrap();
        let key = String::from_utf8(m.key().unwrap().to_vec()).unwrap();
        assert!(key.starts_with("shared/") && key != held_by_etcdctl);
        m.unlock().await.expect("unlock");

        // Election: the client leads, etcdctl observes, a second session takes over on resign.
        let mut e = Election::new(&session, "club");
        e.campaign("first").await.expect("campaign");
        let observer = EtcdctlLines::spawn(&endpoint, &["elect", "-l", "club"], false);
        let seen = tokio::task::spawn_blocking(move || (observer.take(2), observer))
            .await
            .unwrap();
        assert_eq!(seen.0[1], "first");
        e.proclaim("second").await.expect("proclaim");
        let observer = seen.1;
        let seen = tokio::task::spawn_blocking(move || (observer.take(2), observer))
            .await
            .unwrap();
        assert_eq!(seen.0[1], "second");
        let leader = Election::leader(&client, "club").await.unwrap().unwrap();
        assert_eq!(leader.value, b"second");

        let other = Session::new(&client, 10).await.expect("session");
        let mut e2 = Election::new(&other, "club");
        {
            let campaign = e2.campaign("third");
            tokio::pin!(campaign);
            let early = tokio::time::timeout(Duration::from_millis(500), &mut campaign).await;
            assert!(early.is_err(), "two leaders");
            e.resign().await.expect("resign");
            tokio::time::timeout(Duration::from_secs(10), campaign)
                .await
                .expect("takes over")
                .expect("campaign");
        }
        assert_eq!(
            Election::leader(&client, "club")
                .await
                .unwrap()
                .unwrap()
                .value,
            b"third"
        );
        // Not the leader any more: proclaim is refused.
        let err = e.proclaim("x").await.unwrap_err();
        assert!(err.to_string().contains("not leader"), "{err}");
        let _ = seen.1;
        session.close().await.expect("close");
        other.close().await.expect("close");
    });
}

/// Revokes the waiter's lease `lease`, lets `release` free the place it waits for, and checks
/// that the waiter is told "session expired" rather than that it holds the place.
async fn expect_session_expired<T: std::fmt::Debug>(
    leases: &mut pb::lease_client::LeaseClient<tonic::transport::Channel>,
    lease: i64,
    release: impl std::future::Future<Output = ()>,
    waiter: tokio::task::JoinHandle<Result<tonic::Response<T>, tonic::Status>>,
) {
    tokio::time::sleep(Duration::from_millis(500)).await;
    leases
        .lease_revoke(pb::LeaseRevokeRequest { id: lease })
        .await
        .unwrap();
    release.await;
    let r = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("the waiter answers")
        .unwrap();
    let s = r.expect_err("a waiter without its key was told it holds the place");
    assert_eq!((s.code(), s.message()), (Code::Unknown, "session expired"));
}

/// A waiter whose lease expires while it waits must not be told it holds the lock (or leads)
/// once its predecessor lets go: its own key is gone, and someone else may hold the lock by
/// then. Issue 11 §1.8: the Lock and Campaign services, and concord-client's Mutex and Election.
#[test]
fn a_waiter_whose_lease_expired_is_not_given_the_lock() {
    let c = Concord::start();
    let endpoint = c.endpoint();
    rt_multi().block_on(async move {
        let mut leases = pb::lease_client::LeaseClient::connect(endpoint.clone())
            .await
            .unwrap();
        let grant = |mut l: pb::lease_client::LeaseClient<tonic::transport::Channel>| async move {
            l.lease_grant(pb::LeaseGrantRequest { ttl: 60, id: 0 })
                .await
                .unwrap()
                .into_inner()
                .id
        };
        let mut locks = lockpb::lock_client::LockClient::connect(endpoint.clone())
            .await
            .unwrap();
        let mut elections = electionpb::election_client::ElectionClient::connect(endpoint.clone())
            .await
            .unwrap();

        // The Lock service.
        let (a, b) = (grant(leases.clone()).await, grant(leases.clone()).await);
        let held = locks
            .lock(lockpb::LockRequest {
                name: b"expiring".to_vec(),
                lease: a,
            })
            .await
            .unwrap()
            .into_inner()
            .key;
        let mut waiter_locks = locks.clone();
        let waiter = tokio::spawn(async move {
            waiter_locks
                .lock(lockpb::LockRequest {
                    name: b"expiring".to_vec(),
                    lease: b,
                })
                .await
        });
        let release = async {
            locks
                .unlock(lockpb::UnlockRequest { key: held })
                .await
                .unwrap();
        };
        expect_session_expired(&mut leases, b, release, waiter).await;

        // The Election service.
        let (a, b) = (grant(leases.clone()).await, grant(leases.clone()).await);
        let leader = elections
            .campaign(electionpb::CampaignRequest {
                name: b"expiring-election".to_vec(),
                lease: a,
                value: b"a".to_vec(),
            })
            .await
            .unwrap()
            .into_inner()
            .leader;
        let mut waiter_elections = elections.clone();
        let waiter = tokio::spawn(async move {
            waiter_elections
                .campaign(electionpb::CampaignRequest {
                    name: b"expiring-election".to_vec(),
                    lease: b,
                    value: b"b".to_vec(),
                })
                .await
        });
        let release = async {
            elections
                .resign(electionpb::ResignRequest { leader })
                .await
                .unwrap();
        };
        expect_session_expired(&mut leases, b, release, waiter).await;

        // concord-client's Mutex and Election.
        use concord_client::{Client, Election, Error, Mutex, Session};
        let client = Client::connect([endpoint.clone()]).await.expect("connect");
        let holder = Session::new(&client, 30).await.expect("session");
        let waiting = Session::new(&client, 30).await.expect("session");
        let waiting_lease = waiting.lease();
        let mut m = Mutex::new(&holder, "client-expiring");
        m.lock().await.expect("lock");
        let mut e = Election::new(&holder, "client-expiring-election");
        e.campaign("holder").await.expect("campaign");
        let mut m2 = Mutex::new(&waiting, "client-expiring");
        let mut e2 = Election::new(&waiting, "client-expiring-election");
        let revoke_then_release = async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            client.lease_revoke(waiting_lease).await.expect("revoke");
            m.unlock().await.expect("unlock");
            e.resign().await.expect("resign");
        };
        let (lock, campaign, ()) = tokio::time::timeout(Duration::from_secs(15), async {
            tokio::join!(m2.lock(), e2.campaign("waiting"), revoke_then_release)
        })
        .await
        .expect("the waiters answer");
        assert!(matches!(lock, Err(Error::SessionExpired)), "{lock:?}");
        assert!(
            matches!(campaign, Err(Error::SessionExpired)),
            "{campaign:?}"
        );
    });
}
