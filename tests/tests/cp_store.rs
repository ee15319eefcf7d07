//! The control plane's object layer against a real `concord` member and the real client:
//! informers (initial sync, ordered events, selector transitions, bookmarks, relist after a
//! compaction), fenced leader election (one leader, hand-over, the Lease object, a deposed
//! leader's writes refused by the store) and the event recorder (fields, aggregation, TTL
//! lease, never blocking).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use concord_client::Client;
use concord_cp_store::informer::selector;
use concord_cp_store::{
    is_leadership_lost, ElectionConfig, EventRecorder, EventType, Informer, InformerEvent,
    InformerHandle, LeaderElector, Leadership, ObjectRef, ReadAt, RecorderConfig, Registry, Update,
    DEFAULT_PREFIX,
};
use concord_cp_types::resources::find;
use concord_cp_types::selectors::LabelSelector;
use concord_cp_types::{ApiError, Resource};
use concord_tests::{rt_multi, Concord, Proxy};
use serde_json::{json, Value};
use tokio::sync::mpsc;

fn configmaps() -> &'static Resource {
    find("", "v1", "configmaps").expect("configmaps")
}

fn leases() -> &'static Resource {
    find("coordination.k8s.io", "v1", "leases").expect("leases")
}

fn events() -> &'static Resource {
    find("", "v1", "events").expect("events")
}

async fn registry(endpoint: &str) -> Registry {
    let client = Client::connect([endpoint]).await.expect("connect");
    Registry::new(client, DEFAULT_PREFIX)
}

fn cm(ns: &str, name: &str, app: &str, data: &str) -> Value {
    let mut obj = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": app}},
        "data": {"v": data},
    });
    concord_cp_types::meta::prepare_create(configmaps(), &mut obj).expect("prepare");
    obj
}

/// Sets a config map's label and data (read, change, guaranteed update).
async fn relabel(reg: &Registry, ns: &str, name: &str, app: &str, data: &str) -> Value {
    reg.guaranteed_update(configmaps(), Some(ns), name, |mut cur| {
        cur["metadata"]["labels"]["app"] = json!(app);
        cur["data"]["v"] = json!(data);
        Ok(Update::Put(cur))
    })
    .await
    .expect("update")
    .0
}

async fn delete(reg: &Registry, ns: &str, name: &str) -> Value {
    reg.guaranteed_update(configmaps(), Some(ns), name, |_| Ok(Update::Delete))
        .await
        .expect("delete")
        .0
}

fn name_of(v: &Value) -> &str {
    v["metadata"]["name"].as_str().unwrap_or("")
}

fn rv(v: &Value) -> i64 {
    v["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

async fn next(rx: &mut mpsc::Receiver<InformerEvent>) -> InformerEvent {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("an informer event within 10 s")
        .expect("the informer is running")
}

/// A short name for an event, to compare sequences: `+a@5`, `~a@7`, `-b@8`, `synced`.
fn show(e: &InformerEvent) -> String {
    match e {
        InformerEvent::Added(o) => format!("+{}", name_of(o)),
        InformerEvent::Modified { object, prev } => {
            assert!(rv(prev) < rv(object), "{prev} then {object}");
            format!("~{}", name_of(object))
        }
        InformerEvent::Deleted(o) => format!("-{}", name_of(o)),
        InformerEvent::Synced(_) => "synced".into(),
        InformerEvent::Resynced(_) => "resynced".into(),
    }
}

async fn take(rx: &mut mpsc::Receiver<InformerEvent>, n: usize) -> Vec<InformerEvent> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(next(rx).await);
    }
    out
}

fn names(events: &[InformerEvent]) -> Vec<String> {
    events.iter().map(show).collect()
}

/// The store's objects (of `demo`) as the informer must hold them.
async fn store_state(reg: &Registry) -> Vec<Value> {
    reg.list(configmaps(), Some("demo"), ReadAt::Latest, 0, None, None)
        .await
        .expect("list")
        .items
}

fn cache_state(h: &InformerHandle) -> Vec<Value> {
    h.list().iter().map(|v| (**v).clone()).collect()
}

#[test]
fn informer_syncs_then_delivers_changes_in_order_through_its_selector() {
    // Progress notifications every 200 ms, so that bookmarks can be seen.
    let c = Concord::start_with(&["--experimental-watch-progress-notify-interval=200ms"]);
    rt_multi().block_on(async {
        let reg = registry(&c.endpoint()).await;
        for (name, app) in [("a", "web"), ("b", "web"), ("c", "db")] {
            reg.create(configmaps(), cm("demo", name, app, "0"))
                .await
                .expect("create");
        }
        reg.create(configmaps(), cm("other", "a", "web", "0"))
            .await
            .expect("create");
        let web = selector(
            Some(LabelSelector::parse("app=web").expect("selector")),
            None,
        );
        let (h, mut rx) = Informer::start(reg.clone(), configmaps(), Some("demo"), Some(web));

        // The initial list: Added for each matching object, then Synced.
        let initial = take(&mut rx, 3).await;
        assert_eq!(names(&initial), ["+a", "+b", "synced"]);
        let InformerEvent::Synced(listed) = initial[2] else {
            panic!("{initial:?}")
        };
        assert!(h.has_synced());
        assert_eq!(h.revision(), listed);
        assert_eq!(h.len(), 2);
        assert!(h.get(Some("demo"), "c").is_none(), "c does not match");
        assert_eq!(
            h.get(Some("demo"), "a").map(|v| (*v).clone()),
            reg.get(configmaps(), Some("demo"), "a").await.ok()
        );

        // Changes, each through the selector, in the store's order.
        reg.create(configmaps(), cm("demo", "d", "web", "0"))
            .await
            .expect("create d");
        relabel(&reg, "demo", "a", "web", "1").await;
        let b = delete(&reg, "demo", "b").await;
        relabel(&reg, "demo", "c", "web", "1").await; // starts to match
        let d = relabel(&reg, "demo", "d", "db", "1").await; // stops matching
        relabel(&reg, "demo", "d", "db", "2").await; // still not matching: nothing
        reg.create(configmaps(), cm("other", "z", "web", "0"))
            .await
            .expect("other namespace: nothing");
        reg.create(configmaps(), cm("demo", "e", "web", "0"))
            .await
            .expect("create e");
        let seen = take(&mut rx, 6).await;
        assert_eq!(names(&seen), ["+d", "~a", "-b", "+c", "-d", "+e"]);
        let revs: Vec<i64> = seen
            .iter()
            .map(|e| match e {
                InformerEvent::Added(o) | InformerEvent::Deleted(o) => rv(o),
                InformerEvent::Modified { object, .. } => rv(object),
                other => panic!("{other:?}"),
            })
            .collect();
        assert!(revs.windows(2).all(|w| w[0] < w[1]), "{revs:?}");
        // A delete carries the deleting revision; a selector exit the revision of the change,
        // with the last matching state.
        assert_eq!(revs[2], rv(&b));
        let InformerEvent::Deleted(d_gone) = &seen[4] else {
            panic!("{seen:?}")
        };
        assert_eq!(rv(d_gone), rv(&d));
        assert_eq!(d_gone["metadata"]["labels"]["app"], "web");
        assert!(rx.try_recv().is_err(), "no other event");

        // The cache is the store's matching objects.
        let mut want = store_state(&reg).await;
        want.retain(|o| o["metadata"]["labels"]["app"] == "web");
        assert_eq!(cache_state(&h), want);

        // Bookmarks: a write elsewhere moves the informer's revision without an event.
        let elsewhere = reg
            .create(configmaps(), cm("other", "y", "web", "0"))
            .await
            .expect("create elsewhere");
        let deadline = Instant::now() + Duration::from_secs(10);
        while h.revision() < rv(&elsewhere) {
            assert!(
                Instant::now() < deadline,
                "no bookmark reached {}",
                rv(&elsewhere)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(rx.try_recv().is_err(), "a bookmark is not an event");
    });
}

#[test]
fn informer_relists_after_a_compaction_and_converges() {
    let c = Concord::start();
    // The informer reaches the member through a proxy that can cut it off.
    let member: SocketAddr = (Ipv4Addr::LOCALHOST, c.port).into();
    let proxy = Proxy::start_on(Ipv4Addr::LOCALHOST, member);
    rt_multi().block_on(async {
        let reg = registry(&c.endpoint()).await;
        for name in ["a", "b", "c"] {
            reg.create(configmaps(), cm("demo", name, "web", "0"))
                .await
                .expect("create");
        }
        let via_proxy = registry(&format!("http://{}", proxy.addr)).await;
        let (h, mut rx) = Informer::start(via_proxy, configmaps(), Some("demo"), None);
        assert_eq!(names(&take(&mut rx, 4).await), ["+a", "+b", "+c", "synced"]);
        let before = h.revision();

        // Cut the informer off; meanwhile change things and compact the history away.
        proxy.refuse(Ipv4Addr::LOCALHOST.into());
        relabel(&reg, "demo", "a", "web", "1").await;
        delete(&reg, "demo", "b").await;
        reg.create(configmaps(), cm("demo", "d", "web", "0"))
            .await
            .expect("create d");
        reg.create(configmaps(), cm("demo", "tmp", "web", "0"))
            .await
            .expect("create tmp");
        delete(&reg, "demo", "tmp").await;
        let now = reg.current_revision().await.expect("revision");
        reg.client().compact(now, true).await.expect("compact");
        assert_eq!(
            h.revision(),
            before,
            "the informer saw nothing while cut off"
        );
        proxy.allow_all();

        // It relists and reports the difference, once per object, then Resynced.
        let resync = take(&mut rx, 4).await;
        assert_eq!(names(&resync), ["~a", "+d", "-b", "resynced"]);
        let InformerEvent::Resynced(at) = resync[3] else {
            panic!("{resync:?}")
        };
        assert!(at >= now, "relisted at {at}, compacted at {now}");
        assert_eq!(cache_state(&h), store_state(&reg).await);
        assert!(h.get(Some("demo"), "tmp").is_none());

        // And watches again from the relist.
        relabel(&reg, "demo", "c", "web", "2").await;
        assert_eq!(names(&take(&mut rx, 1).await), ["~c"]);
    });
}

fn election(identity: &str) -> ElectionConfig {
    let mut cfg = ElectionConfig::new("kube-scheduler", identity);
    cfg.lease_duration = Duration::from_secs(3);
    cfg.renew_interval = Duration::from_millis(300);
    cfg.renew_deadline = Duration::from_millis(2000);
    cfg.retry_period = Duration::from_millis(300);
    cfg
}

type Candidates = Vec<(&'static str, Option<LeaderElector>)>;

/// The candidates still running.
fn alive(electors: &Candidates) -> Vec<(&'static str, &LeaderElector)> {
    electors
        .iter()
        .filter_map(|(id, e)| e.as_ref().map(|e| (*id, e)))
        .collect()
}

/// The identities that believe they lead.
fn leaders(candidates: &[(&str, &LeaderElector)]) -> Vec<String> {
    candidates
        .iter()
        .filter(|(_, e)| e.is_leader())
        .map(|(id, _)| id.to_string())
        .collect()
}

/// Waits until exactly one of `candidates` leads; returns its identity.
async fn one_leader(candidates: &[(&str, &LeaderElector)]) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let now = leaders(candidates);
        assert!(now.len() <= 1, "two leaders at once: {now:?}");
        if let [one] = now.as_slice() {
            return one.clone();
        }
        assert!(Instant::now() < deadline, "no leader within 15 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn lease_spec(reg: &Registry) -> Value {
    reg.get(leases(), Some("kube-system"), "kube-scheduler")
        .await
        .expect("the Lease object")["spec"]
        .clone()
}

#[test]
fn election_keeps_one_leader_moves_on_and_fences_the_deposed_one() {
    let c = Concord::start();
    rt_multi().block_on(async {
        let reg = registry(&c.endpoint()).await;
        let mut electors: Candidates = Vec::new();
        for id in ["alpha", "beta", "gamma"] {
            // Each candidate with its own connection, as separate processes would be.
            let own = registry(&c.endpoint()).await;
            electors.push((
                id,
                Some(LeaderElector::start(own, election(id)).expect("start")),
            ));
        }
        // One leader, and only one, for a while.
        let first = one_leader(&alive(&electors)).await;
        for _ in 0..20 {
            assert_eq!(leaders(&alive(&electors)), vec![first.clone()]);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let idx = electors
            .iter()
            .position(|(id, _)| *id == first)
            .expect("leader");
        let leader = electors[idx].1.as_ref().expect("running");
        let Leadership::Leading(fence) = leader.leadership() else {
            panic!("not leading")
        };

        // The fence is the leader's election key, attached to its lease.
        let key = reg.client().get(fence.key.clone()).await.expect("get");
        let kv = key.kvs.first().expect("the election key exists");
        assert_eq!(kv.create_revision, fence.create_revision);
        assert_ne!(kv.lease, 0);
        assert!(fence
            .key
            .starts_with("/registry/elections/kube-system/kube-scheduler/"));

        // The Lease object shows the holder, and is renewed.
        let spec = lease_spec(&reg).await;
        assert_eq!(spec["holderIdentity"], json!(first));
        assert_eq!(spec["leaseDurationSeconds"], 3);
        assert_eq!(spec["leaseTransitions"], 0);
        let acquired = spec["acquireTime"]
            .as_str()
            .expect("acquireTime")
            .to_string();
        let renewed = spec["renewTime"].as_str().expect("renewTime").to_string();
        tokio::time::sleep(Duration::from_millis(700)).await;
        let spec = lease_spec(&reg).await;
        assert_eq!(spec["acquireTime"], json!(acquired));
        assert!(spec["renewTime"].as_str().expect("renewTime") > renewed.as_str());

        // The leader writes through its fenced registry.
        let fenced_old = leader.fenced_registry().expect("leading");
        assert_eq!(fenced_old.fence(), Some(&fence));
        let owned = fenced_old
            .create(configmaps(), cm("kube-system", "owned", "x", "0"))
            .await
            .expect("the leader's fenced create");
        let owned_rev = rv(&owned);

        // The leader stops renewing (as if it crashed or froze): another takes over once its
        // lease expires.
        let stopped = Instant::now();
        electors[idx].1 = None;
        let second = one_leader(&alive(&electors)).await;
        assert_ne!(second, first);
        assert!(
            stopped.elapsed() >= Duration::from_millis(1500),
            "took over before the TTL"
        );
        let spec = lease_spec(&reg).await;
        assert_eq!(spec["holderIdentity"], json!(second));
        assert_eq!(spec["leaseTransitions"], 1);
        assert_ne!(spec["acquireTime"], json!(acquired));

        // The deposed leader's writes are refused by the store and change nothing.
        let update = fenced_old
            .guaranteed_update(configmaps(), Some("kube-system"), "owned", |mut cur| {
                cur["data"]["v"] = json!("stale");
                Ok(Update::Put(cur))
            })
            .await;
        let err = update.expect_err("a deposed leader's update");
        assert!(is_leadership_lost(&err), "{err:?}");
        assert_eq!(err.code(), 409);
        let create = fenced_old
            .create(configmaps(), cm("kube-system", "stale", "x", "0"))
            .await
            .expect_err("a deposed leader's create");
        assert!(is_leadership_lost(&create), "{create:?}");
        let delete = fenced_old
            .guaranteed_update(configmaps(), Some("kube-system"), "owned", |_| {
                Ok(Update::Delete)
            })
            .await
            .expect_err("a deposed leader's delete");
        assert!(is_leadership_lost(&delete), "{delete:?}");
        let now = reg
            .get(configmaps(), Some("kube-system"), "owned")
            .await
            .expect("still there");
        assert_eq!(rv(&now), owned_rev);
        assert_eq!(now["data"]["v"], "0");
        assert!(matches!(
            reg.get(configmaps(), Some("kube-system"), "stale").await,
            Err(ApiError::NotFound { .. })
        ));

        // The new leader's fenced writes succeed.
        let idx2 = electors
            .iter()
            .position(|(id, _)| *id == second)
            .expect("leader");
        let fenced_new = electors[idx2]
            .1
            .as_ref()
            .and_then(LeaderElector::fenced_registry)
            .expect("leading");
        let (updated, _) = fenced_new
            .guaranteed_update(configmaps(), Some("kube-system"), "owned", |mut cur| {
                cur["data"]["v"] = json!("new");
                Ok(Update::Put(cur))
            })
            .await
            .expect("the new leader's update");
        assert_eq!(updated["data"]["v"], "new");

        // Resigning hands over at once (before the 3 s TTL could have run out), and releases
        // the Lease object to the next holder.
        let resigned = Instant::now();
        let second_elector = electors[idx2].1.take().expect("running");
        let mut watch_second = second_elector.subscribe();
        second_elector.resign().await;
        assert_eq!(*watch_second.borrow_and_update(), Leadership::Stopped);
        let third = one_leader(&alive(&electors)).await;
        assert!(third != first && third != second);
        assert!(
            resigned.elapsed() < Duration::from_millis(2500),
            "hand-over took {:?}",
            resigned.elapsed()
        );
        let spec = lease_spec(&reg).await;
        assert_eq!(spec["holderIdentity"], json!(third));
        assert_eq!(spec["leaseTransitions"], 2);
        // The second leader's fence went with its resignation.
        let stale = fenced_new
            .guaranteed_update(configmaps(), Some("kube-system"), "owned", |mut cur| {
                cur["data"]["v"] = json!("late");
                Ok(Update::Put(cur))
            })
            .await
            .expect_err("a resigned leader's update");
        assert!(is_leadership_lost(&stale), "{stale:?}");
    });
}

async fn demo_events(reg: &Registry, ns: &str) -> Vec<Value> {
    reg.list(events(), Some(ns), ReadAt::Latest, 0, None, None)
        .await
        .expect("list events")
        .items
}

#[test]
fn events_are_recorded_aggregated_and_kept_on_a_lease() {
    let c = Concord::start();
    rt_multi().block_on(async {
        let reg = registry(&c.endpoint()).await;
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "demo", "uid": "5c4e-uid",
                         "resourceVersion": "42"}});
        let recorder = EventRecorder::start(
            reg.clone(),
            RecorderConfig::new("concord-scheduler", "concord-scheduler-1"),
        );
        recorder.record_for(
            &pod,
            EventType::Normal,
            "Scheduled",
            "assigned demo/web to n1",
        );
        recorder.flush().await;
        let listed = demo_events(&reg, "demo").await;
        assert_eq!(listed.len(), 1, "{listed:?}");
        let ev = &listed[0];
        let name = ev["metadata"]["name"].as_str().expect("name");
        let (object, suffix) = name.split_once('.').expect("<object>.<hex>");
        assert_eq!(object, "web");
        assert!(
            suffix.len() == 16 && suffix.chars().all(|c| c.is_ascii_hexdigit()),
            "{name}"
        );
        assert_eq!(ev["kind"], "Event");
        assert_eq!(ev["apiVersion"], "v1");
        assert_eq!(
            ev["involvedObject"],
            json!({"kind": "Pod", "namespace": "demo", "name": "web", "uid": "5c4e-uid",
                   "apiVersion": "v1", "resourceVersion": "42"})
        );
        assert_eq!(ev["reason"], "Scheduled");
        assert_eq!(ev["message"], "assigned demo/web to n1");
        assert_eq!(ev["type"], "Normal");
        assert_eq!(ev["source"], json!({"component": "concord-scheduler"}));
        assert_eq!(ev["reportingComponent"], "concord-scheduler");
        assert_eq!(ev["reportingInstance"], "concord-scheduler-1");
        assert_eq!(ev["count"], 1);
        assert_eq!(ev["eventTime"], Value::Null);
        assert!(ev["metadata"]["uid"]
            .as_str()
            .is_some_and(|u| !u.is_empty()));
        let first = ev["firstTimestamp"].as_str().expect("firstTimestamp");
        assert!(
            concord_cp_types::meta::parse_rfc3339(first).is_some(),
            "{first}"
        );
        assert_eq!(ev["lastTimestamp"], ev["firstTimestamp"]);

        // Kept on an etcd lease of an hour (plus the reuse window).
        let key = format!("/registry/events/demo/{name}");
        let kv = reg.client().get(key.clone()).await.expect("get").kvs[0].clone();
        assert_ne!(kv.lease, 0, "the event has no lease");
        let ttl = reg
            .client()
            .lease_time_to_live(kv.lease, false)
            .await
            .expect("ttl");
        assert!((3600..=3660).contains(&ttl.granted_ttl), "{ttl:?}");
        assert!(ttl.ttl > 3500, "{ttl:?}");

        // The same event again: counted on the same object, still on a lease.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        recorder.record_for(
            &pod,
            EventType::Normal,
            "Scheduled",
            "assigned demo/web to n1",
        );
        recorder.record_for(
            &pod,
            EventType::Normal,
            "Scheduled",
            "assigned demo/web to n1",
        );
        recorder.flush().await;
        let listed = demo_events(&reg, "demo").await;
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert_eq!(listed[0]["count"], 3);
        assert_eq!(listed[0]["firstTimestamp"], ev["firstTimestamp"]);
        assert!(listed[0]["lastTimestamp"].as_str() > ev["firstTimestamp"].as_str());
        let kv = reg.client().get(key).await.expect("get").kvs[0].clone();
        assert_ne!(kv.lease, 0, "an aggregated update dropped the lease");

        // A different message, type or object is another event; cluster-scoped objects'
        // events go to `default`.
        recorder.record_for(&pod, EventType::Warning, "FailedMount", "no such volume");
        let node = json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "n1", "uid": "n1-uid", "resourceVersion": "3"}});
        recorder.record(
            &ObjectRef::from_object(&node),
            EventType::Normal,
            "NodeReady",
            "node n1 is ready",
        );
        recorder.flush().await;
        let listed = demo_events(&reg, "demo").await;
        assert_eq!(listed.len(), 2, "{listed:?}");
        assert!(listed
            .iter()
            .any(|e| e["type"] == "Warning" && e["count"] == 1));
        let defaults = demo_events(&reg, "default").await;
        assert_eq!(defaults.len(), 1, "{defaults:?}");
        assert!(defaults[0]["involvedObject"].get("namespace").is_none());
        assert_eq!(recorder.written(), 5);
        assert_eq!((recorder.dropped(), recorder.failed()), (0, 0));

        // Recording never waits for the store: a full queue drops, and counts.
        let mut small = RecorderConfig::new("flood", "flood-1");
        small.queue = 1;
        let flood = EventRecorder::start(reg.clone(), small);
        let started = Instant::now();
        for i in 0..200 {
            flood.record_for(&pod, EventType::Normal, "Flood", &format!("message {i}"));
        }
        assert!(
            started.elapsed() < Duration::from_millis(200),
            "recording blocked for {:?}",
            started.elapsed()
        );
        flood.flush().await;
        assert!(flood.dropped() > 0, "nothing was dropped");
        assert_eq!(flood.written() + flood.dropped(), 200);
        assert_eq!(flood.failed(), 0);
    });
}

#[test]
fn kubectl_shows_the_lease_holder_and_recorded_events() {
    let api = concord_tests::ApiServer::start();
    rt_multi().block_on(async {
        let reg = registry(&api.etcd.endpoint()).await;
        let elector = LeaderElector::start(reg.clone(), election("scheduler-0")).expect("start");
        tokio::time::timeout(Duration::from_secs(15), elector.leading())
            .await
            .expect("leading within 15 s")
            .expect("leading");
        let recorder = EventRecorder::start(reg.clone(), RecorderConfig::new("concord-test", "t-1"));
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "default", "uid": "u-1", "resourceVersion": "9"}});
        recorder.record_for(&pod, EventType::Warning, "BackOff", "restarting failed container");
        recorder.record_for(&pod, EventType::Warning, "BackOff", "restarting failed container");
        recorder.flush().await;

        let leases = api.kubectl_ok(&["get", "leases", "-n", "kube-system"]);
        let row: Vec<&str> = leases
            .lines()
            .nth(1)
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        assert_eq!(row.get(..2), Some(&["kube-scheduler", "scheduler-0"][..]), "{leases}");
        let lease: Value = serde_json::from_str(&api.kubectl_ok(&[
            "get", "lease", "kube-scheduler", "-n", "kube-system", "-o", "json",
        ]))
        .expect("lease json");
        assert_eq!(lease["spec"]["holderIdentity"], "scheduler-0");

        let events: Value =
            serde_json::from_str(&api.kubectl_ok(&["get", "events", "-n", "default", "-o", "json"]))
                .expect("events json");
        let items = events["items"].as_array().expect("items");
        assert_eq!(items.len(), 1, "{events}");
        assert_eq!(items[0]["count"], 2);
        assert_eq!(items[0]["reason"], "BackOff");
        let table = api.kubectl_ok(&["get", "events", "-n", "default"]);
        assert!(
            table.contains("BackOff") && table.contains("restarting failed container"),
            "{table}"
        );
        elector.resign().await;
    });
}
