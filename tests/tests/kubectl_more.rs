//! More of kube-apiserver's behaviour through the pinned kubectl (see `kubectl.rs` for the
//! basics): describe, events, watch edge cases (single-object watches, compaction, bookmarks),
//! paging, deletion (finalizers, graceful pod deletion, collections), generateName, binding,
//! pod update rules, `kind: List` manifests, discovery, field selectors, server dry runs and
//! optimistic concurrency.
//!
//! Expected outputs are what kubectl prints against kube-apiserver (the upstream source that
//! decides each is named where it is not obvious). No controllers run: objects keep what the
//! tests write into them.

use std::time::Duration;

use concord_tests::ApiServer;
use serde_json::{json, Value};

const WEB_DEPLOYMENT: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: demo
  labels:
    app: web
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: nginx
        image: nginx:1.25
        ports:
        - containerPort: 80
"#;

/// A harness with namespace `demo` created.
fn start_with_demo() -> ApiServer {
    let k = ApiServer::start();
    assert_eq!(
        k.kubectl_ok(&["create", "namespace", "demo"]),
        "namespace/demo created\n"
    );
    k
}

fn parse_json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

fn assert_contains(haystack: &str, needle: &str) {
    assert!(
        haystack.contains(needle),
        "expected {needle:?} in:\n{haystack}"
    );
}

/// Writes `contents` to `name` in the harness's scratch dir; returns the path.
fn write_file(k: &ApiServer, name: &str, contents: &str) -> String {
    let path = k.dir().join(name);
    std::fs::write(&path, contents).expect("write manifest");
    path.to_str().expect("utf-8 path").to_string()
}

/// `kubectl create -f <file>` of `obj` (as JSON); returns stdout.
fn create_obj(k: &ApiServer, name: &str, obj: &Value) -> String {
    let path = write_file(k, name, &obj.to_string());
    k.kubectl_ok(&["create", "-f", &path])
}

/// `kubectl get <what> -o json`, parsed.
fn get_json(k: &ApiServer, what: &[&str]) -> Value {
    let mut args = vec!["get"];
    args.extend_from_slice(what);
    args.extend_from_slice(&["-o", "json"]);
    parse_json(&k.kubectl_ok(&args))
}

/// `kubectl get --raw <path>`, parsed.
fn get_raw(k: &ApiServer, path: &str) -> Value {
    parse_json(&k.kubectl_ok(&["get", "--raw", path]))
}

/// Whitespace-split rows of a table kubectl printed (header first).
fn rows(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

/// A pod in `ns`, optionally bound to `node`.
fn pod(name: &str, ns: &str, node: Option<&str>) -> Value {
    let mut p = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]}
    });
    if let Some(node) = node {
        p["spec"]["nodeName"] = json!(node);
    }
    p
}

/// A Node as a kubelet registers it: Ready, with addresses, capacity and node info.
fn node(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}},
        "spec": {},
        "status": {
            "conditions": [{
                "type": "Ready",
                "status": "True",
                "reason": "KubeletReady",
                "message": "kubelet is posting ready status",
                "lastHeartbeatTime": "2026-01-01T00:00:00Z",
                "lastTransitionTime": "2026-01-01T00:00:00Z"
            }],
            "addresses": [
                {"type": "InternalIP", "address": "10.0.0.11"},
                {"type": "Hostname", "address": name}
            ],
            "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
            "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
            "nodeInfo": {
                "machineID": "0123456789abcdef",
                "systemUUID": "4c4c4544-0000-1000-8000-000000000001",
                "bootID": "b0b0b0b0-0000-4000-8000-000000000001",
                "kernelVersion": "6.1.0-28-amd64",
                "osImage": "Debian GNU/Linux 12 (bookworm)",
                "containerRuntimeVersion": "containerd://1.7.24",
                "kubeletVersion": "v1.36.4",
                "kubeProxyVersion": "v1.36.4",
                "operatingSystem": "linux",
                "architecture": "amd64"
            }
        }
    })
}

/// The node's Lease, as a kubelet keeps it (describe node shows it).
fn node_lease(name: &str) -> Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name, "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": name, "leaseDurationSeconds": 40}
    })
}

/// The value after `key` on the first line of `text` that starts with `key` (trimmed).
fn field<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or_else(|| panic!("no line starting with {key:?} in:\n{text}"))
        .trim()
}

/// Asserts kubectl describe printed no error (describe prints partial output on errors).
fn assert_no_errors(what: &str, out: &str) {
    for line in out.lines() {
        let l = line.to_lowercase();
        assert!(
            !l.contains("error") && !l.contains("failed to") && !l.contains("not found"),
            "describe {what}: an error line {line:?} in:\n{out}"
        );
    }
}

/// Runs `describe`; asserts exit 0 and nothing on stderr; returns stdout.
fn describe(k: &ApiServer, args: &[&str]) -> String {
    let mut full = vec!["describe"];
    full.extend_from_slice(args);
    let out = k.kubectl(&full);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = k.expect_ok(&full, out);
    assert_eq!(stderr, "", "describe {args:?} wrote to stderr:\n{stdout}");
    assert_no_errors(&args.join(" "), &stdout);
    stdout
}

/// Seconds since the epoch of an RFC 3339 UTC time as kube-apiserver writes it
/// (`2026-01-02T03:04:05Z`).
fn epoch_seconds(t: &str) -> i64 {
    let n = |r: std::ops::Range<usize>| -> i64 {
        t.get(r)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("not an RFC 3339 time: {t:?}"))
    };
    assert!(
        t.ends_with('Z') && t.len() == 20,
        "not an RFC 3339 time: {t:?}"
    );
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + n(11..13) * 3600 + n(14..16) * 60 + n(17..19)
}

/// Percent-encodes a query parameter value.
fn query_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn describe_pod_deployment_and_node() {
    let k = start_with_demo();
    assert_eq!(
        create_obj(&k, "node.json", &node("n1")),
        "node/n1 created\n"
    );
    assert_eq!(
        create_obj(&k, "lease.json", &node_lease("n1")),
        "lease.coordination.k8s.io/n1 created\n"
    );
    // Node status is the kubelet's to write at registration: kept on create.
    let n = get_json(&k, &["node", "n1"]);
    assert_eq!(
        n["status"]["nodeInfo"]["kubeletVersion"], "v1.36.4",
        "{n:#}"
    );
    assert_eq!(n["status"]["conditions"][0]["type"], "Ready", "{n:#}");
    let t = rows(&k.kubectl_ok(&["get", "nodes"]));
    assert_eq!(t[0], ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]);
    assert_eq!(t[1][..3], ["n1", "Ready", "<none>"]);
    assert_eq!(t[1][4], "v1.36.4");

    assert_eq!(
        create_obj(&k, "pod.json", &pod("p", "demo", Some("n1"))),
        "pod/p created\n"
    );
    let out = describe(&k, &["pod", "p", "-n", "demo"]);
    assert_eq!(field(&out, "Name:"), "p", "{out}");
    assert_eq!(field(&out, "Namespace:"), "demo", "{out}");
    assert_eq!(field(&out, "Labels:"), "app=web", "{out}");
    assert_eq!(field(&out, "Annotations:"), "<none>", "{out}");
    assert_eq!(field(&out, "Status:"), "Pending", "{out}");
    // `Node:  <nodeName>/<hostIP>`: no kubelet, no host IP.
    assert_eq!(field(&out, "Node:"), "n1/", "{out}");
    assert_eq!(field(&out, "QoS Class:"), "BestEffort", "{out}");
    assert_contains(&out, "\nContainers:\n  c:\n");
    assert_eq!(field(&out, "    Image:"), "nginx:1.25", "{out}");
    assert_eq!(field(&out, "Events:"), "<none>", "{out}");

    let deploy = WEB_DEPLOYMENT;
    let path = write_file(&k, "web.yaml", deploy);
    assert_eq!(
        k.kubectl_ok(&["create", "-f", &path]),
        "deployment.apps/web created\n"
    );
    let out = describe(&k, &["deployment", "web", "-n", "demo"]);
    assert_eq!(field(&out, "Name:"), "web", "{out}");
    assert_eq!(field(&out, "Namespace:"), "demo", "{out}");
    assert_eq!(field(&out, "Labels:"), "app=web", "{out}");
    assert_eq!(field(&out, "Annotations:"), "<none>", "{out}");
    assert_eq!(field(&out, "Selector:"), "app=web", "{out}");
    assert_eq!(
        field(&out, "Replicas:"),
        "2 desired | 0 updated | 0 total | 0 available | 0 unavailable",
        "{out}"
    );
    assert_eq!(field(&out, "StrategyType:"), "RollingUpdate", "{out}");
    assert_eq!(
        field(&out, "RollingUpdateStrategy:"),
        "25% max unavailable, 25% max surge",
        "{out}"
    );
    assert_contains(&out, "\nPod Template:\n");
    assert_contains(&out, "  Containers:\n   nginx:\n");
    assert_eq!(field(&out, "    Image:"), "nginx:1.25", "{out}");
    // kubectl prints OldReplicaSets/NewReplicaSet only when there is one (no controller here).
    assert!(!out.contains("NewReplicaSet:"), "{out}");
    assert_eq!(field(&out, "Events:"), "<none>", "{out}");

    let out = describe(&k, &["node", "n1"]);
    assert_eq!(field(&out, "Name:"), "n1", "{out}");
    assert_eq!(field(&out, "Roles:"), "<none>", "{out}");
    assert_contains(&out, "kubernetes.io/hostname=n1");
    assert_eq!(field(&out, "Annotations:"), "<none>", "{out}");
    assert_eq!(field(&out, "Taints:"), "<none>", "{out}");
    assert_eq!(field(&out, "Unschedulable:"), "false", "{out}");
    assert_eq!(field(&out, "  HolderIdentity:"), "n1", "{out}");
    let conditions = out
        .split("\nConditions:\n")
        .nth(1)
        .unwrap_or_else(|| panic!("no Conditions section:\n{out}"));
    let ready = conditions
        .lines()
        .find(|l| l.trim_start().starts_with("Ready"))
        .unwrap_or_else(|| panic!("no Ready condition:\n{out}"));
    assert_eq!(
        ready.split_whitespace().nth(1),
        Some("True"),
        "Ready condition:\n{out}"
    );
    assert_contains(ready, "KubeletReady");
    assert_eq!(field(&out, "  InternalIP:"), "10.0.0.11", "{out}");
    assert_eq!(field(&out, "  Hostname:"), "n1", "{out}");
    assert_contains(&out, "\nCapacity:\n");
    assert_eq!(field(&out, "  cpu:"), "4", "{out}");
    assert_contains(&out, "\nSystem Info:\n");
    assert_eq!(field(&out, "  Kubelet Version:"), "v1.36.4", "{out}");
    assert_eq!(field(&out, "  Operating System:"), "linux", "{out}");
    assert_eq!(field(&out, "  Architecture:"), "amd64", "{out}");
    // The pods on the node: kubectl lists them with
    // fieldSelector=spec.nodeName=n1,status.phase!=Failed,status.phase!=Succeeded.
    assert_eq!(field(&out, "Non-terminated Pods:"), "(1 in total)", "{out}");
    assert!(
        out.lines().any(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            cols.get(..2) == Some(&["demo", "p"][..])
        }),
        "no row for demo/p under Non-terminated Pods:\n{out}"
    );
    assert_contains(&out, "\nAllocated resources:\n");
    assert_eq!(field(&out, "Events:"), "<none>", "{out}");
}

#[test]
fn events_are_listed_and_described() {
    let k = start_with_demo();
    create_obj(&k, "pod.json", &pod("p", "demo", Some("n1")));
    create_obj(&k, "other.json", &pod("q", "demo", Some("n1")));
    let p = get_json(&k, &["pod", "p", "-n", "demo"]);
    let uid = p["metadata"]["uid"].as_str().expect("uid");
    let now = p["metadata"]["creationTimestamp"]
        .as_str()
        .expect("creationTimestamp");
    let event = |name: &str, pod: &str, uid: &str, reason: &str, msg: &str| {
        json!({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": "demo"},
            "involvedObject": {
                "apiVersion": "v1", "kind": "Pod", "name": pod, "namespace": "demo", "uid": uid
            },
            "reason": reason,
            "message": msg,
            "type": "Normal",
            "source": {"component": "default-scheduler"},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1
        })
    };
    assert_eq!(
        create_obj(
            &k,
            "ev1.json",
            &event(
                "p.1",
                "p",
                uid,
                "Scheduled",
                "Successfully assigned demo/p to n1"
            )
        ),
        "event/p.1 created\n"
    );
    let q_uid = get_json(&k, &["pod", "q", "-n", "demo"])["metadata"]["uid"]
        .as_str()
        .expect("uid")
        .to_string();
    create_obj(
        &k,
        "ev2.json",
        &event(
            "q.1",
            "q",
            &q_uid,
            "Pulling",
            "Pulling image \"nginx:1.25\"",
        ),
    );
    assert!(k.store_has("/registry/events/demo/p.1"));

    let out = k.kubectl_ok(&["get", "events", "-n", "demo"]);
    let t = rows(&out);
    assert_eq!(
        t[0],
        ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
        "{out}"
    );
    let row = t
        .iter()
        .find(|r| r.get(3).map(String::as_str) == Some("pod/p"))
        .unwrap_or_else(|| panic!("no row for pod/p:\n{out}"));
    assert!(
        row[0].ends_with('s') || row[0].ends_with('m'),
        "LAST SEEN {:?}:\n{out}",
        row[0]
    );
    assert_eq!(row[1..4], ["Normal", "Scheduled", "pod/p"], "{out}");
    assert_eq!(row[4..].join(" "), "Successfully assigned demo/p to n1");
    assert_eq!(t.len(), 3, "{out}");

    // describe finds the pod's events with an involvedObject field selector: only p's.
    let out = describe(&k, &["pod", "p", "-n", "demo"]);
    let events = out
        .split("\nEvents:\n")
        .nth(1)
        .unwrap_or_else(|| panic!("no listed Events:\n{out}"));
    let t = rows(events);
    assert_eq!(t[0], ["Type", "Reason", "Age", "From", "Message"], "{out}");
    assert_eq!(t[1], ["----", "------", "----", "----", "-------"], "{out}");
    assert_eq!(t.len(), 3, "only p's event:\n{out}");
    assert_eq!(t[2][..2], ["Normal", "Scheduled"], "{out}");
    assert_eq!(
        t[2][3..].join(" "),
        "default-scheduler Successfully assigned demo/p to n1",
        "{out}"
    );

    // The selector describe sends, directly.
    let list = get_raw(
        &k,
        &format!(
            "/api/v1/namespaces/demo/events?fieldSelector={}",
            query_escape(&format!(
                "involvedObject.name=q,involvedObject.namespace=demo,involvedObject.kind=Pod,involvedObject.uid={q_uid}"
            ))
        ),
    );
    let names: Vec<&str> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["metadata"]["name"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(names, ["q.1"], "{list:#}");
}

#[test]
fn watch_single_object_compaction_and_bookmarks() {
    let k = start_with_demo();
    let wait = Duration::from_secs(20);
    for name in ["x", "y"] {
        k.kubectl_ok(&[
            "create",
            "configmap",
            name,
            "--from-literal=a=1",
            "-n",
            "demo",
        ]);
    }
    let rv_created = k
        .mod_revision("/registry/configmaps/demo/x")
        .expect("x stored");

    // (a) One object: kubectl lists it, then watches with fieldSelector=metadata.name=x.
    let mut w = k.kubectl_lines(&["get", "cm", "x", "-n", "demo", "-w"]);
    let header = w.until("the header", wait, |l| l.starts_with("NAME"));
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        ["NAME", "DATA", "AGE"]
    );
    w.until("x", wait, |l| l.split_whitespace().next() == Some("x"));
    k.kubectl_ok(&[
        "patch",
        "cm",
        "y",
        "-n",
        "demo",
        "--type=merge",
        "-p",
        r#"{"data":{"b":"2"}}"#,
    ]);
    k.kubectl_ok(&[
        "patch",
        "cm",
        "x",
        "-n",
        "demo",
        "--type=merge",
        "-p",
        r#"{"data":{"b":"2","c":"3"}}"#,
    ]);
    let row = w.until("x with 3 keys", wait, |l| {
        l.split_whitespace().next() == Some("x")
    });
    assert_eq!(row.split_whitespace().nth(1), Some("3"), "{:?}", w.seen());
    assert!(
        w.is_running(),
        "the watch ended: {:?} {}",
        w.seen(),
        w.stderr()
    );
    // Header, x, x changed: y's change is not x's.
    assert_eq!(w.seen().len(), 3, "lines: {:#?}", w.seen());
    drop(w);

    // An exact list at an old revision that is still there: the state of then.
    let old = get_raw(
        &k,
        &format!(
            "/api/v1/namespaces/demo/configmaps?resourceVersion={rv_created}&resourceVersionMatch=Exact"
        ),
    );
    assert_eq!(old["metadata"]["resourceVersion"], rv_created.to_string());
    let x = old["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|o| o["metadata"]["name"] == "x")
        .unwrap_or_else(|| panic!("no x at {rv_created}: {old:#}"));
    assert_eq!(x["data"], json!({"a": "1"}), "{old:#}");

    // (b) Compact past x's creation: a watch from it gets a 410 Expired ERROR event.
    let rev = k.store_snapshot().revision;
    k.etcdctl_ok(&["compact", &rev.to_string()]);
    let path = format!(
        "/api/v1/namespaces/demo/configmaps?watch=true&resourceVersion={rv_created}&timeoutSeconds=2"
    );
    let out = k.kubectl_ok(&["get", "--raw", &path]);
    let events: Vec<Value> = out.lines().map(parse_json).collect();
    assert_eq!(events.len(), 1, "{out}");
    let e = &events[0];
    assert_eq!(e["type"], "ERROR", "{out}");
    assert_eq!(e["object"]["kind"], "Status", "{out}");
    assert_eq!(e["object"]["status"], "Failure", "{out}");
    assert_eq!(e["object"]["code"], 410, "{out}");
    assert_eq!(e["object"]["reason"], "Expired", "{out}");

    // (c) An exact list at a compacted revision: 410 Expired.
    let err = k.kubectl_err(&[
        "get",
        "--raw",
        &format!(
            "/api/v1/namespaces/demo/configmaps?resourceVersion={rv_created}&resourceVersionMatch=Exact"
        ),
    ]);
    assert_eq!(
        err.trim(),
        "Error from server (Expired): The resourceVersion for the provided list is too old."
    );

    // (d) Bookmarks requested (kube-apiserver's reflectors always ask): a normal watch that
    // sees changes, ends at timeoutSeconds, and whose events are only of the known types.
    let path = format!(
        "/api/v1/namespaces/demo/configmaps?watch=true&allowWatchBookmarks=true&resourceVersion={rev}&timeoutSeconds=3"
    );
    let mut w = k.kubectl_lines(&["get", "--raw", &path]);
    std::thread::sleep(Duration::from_millis(500));
    k.kubectl_ok(&["label", "cm", "x", "t=1", "-n", "demo"]);
    let line = w.until("x modified", wait, |l| l.contains("\"MODIFIED\""));
    let e = parse_json(&line);
    assert_eq!(e["object"]["metadata"]["name"], "x", "{line}");
    assert_eq!(e["object"]["metadata"]["labels"]["t"], "1", "{line}");
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while w.is_running() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!w.is_running(), "the watch outlived timeoutSeconds=3");
    while w.line_within(Duration::from_millis(200)).is_some() {}
    for line in w.seen() {
        let e = parse_json(line);
        assert!(
            matches!(e["type"].as_str(), Some("ADDED" | "MODIFIED" | "BOOKMARK")),
            "{line}"
        );
        if e["type"] == "BOOKMARK" {
            assert_eq!(e["object"]["kind"], "ConfigMap", "{line}");
            assert!(
                e["object"]["metadata"]["resourceVersion"].is_string(),
                "{line}"
            );
        }
    }
    assert_eq!(w.stderr(), "", "{:?}", w.seen());
}

#[test]
fn paging_with_continue_tokens() {
    let k = start_with_demo();
    let mut want: Vec<String> = (1..=7).map(|i| format!("c{i}")).collect();
    for name in &want {
        k.kubectl_ok(&[
            "create",
            "configmap",
            name,
            "--from-literal=a=1",
            "-n",
            "demo",
        ]);
    }
    let base = "/api/v1/namespaces/demo/configmaps?limit=3";
    let mut seen = Vec::new();
    let mut path = base.to_string();
    let mut pages = Vec::new();
    loop {
        let page = get_raw(&k, &path);
        let items = page["items"].as_array().expect("items");
        seen.extend(items.iter().map(|o| {
            o["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        }));
        pages.push(page.clone());
        match page["metadata"]["continue"]
            .as_str()
            .filter(|c| !c.is_empty())
        {
            Some(c) => path = format!("{base}&continue={}", query_escape(c)),
            None => break,
        }
        assert!(pages.len() < 5, "too many pages: {pages:#?}");
    }
    assert_eq!(pages.len(), 3, "{pages:#?}");
    assert_eq!(pages[0]["kind"], "ConfigMapList");
    assert_eq!(pages[0]["items"].as_array().map(Vec::len), Some(3));
    assert_eq!(pages[0]["metadata"]["remainingItemCount"], 4, "{pages:#?}");
    assert_eq!(pages[1]["items"].as_array().map(Vec::len), Some(3));
    assert_eq!(pages[1]["metadata"]["remainingItemCount"], 1, "{pages:#?}");
    assert_eq!(pages[2]["items"].as_array().map(Vec::len), Some(1));
    assert!(
        pages[2]["metadata"].get("remainingItemCount").is_none(),
        "{pages:#?}"
    );
    // Every page is a snapshot of the first page's revision.
    for p in &pages[1..] {
        assert_eq!(
            p["metadata"]["resourceVersion"], pages[0]["metadata"]["resourceVersion"],
            "{pages:#?}"
        );
    }
    want.sort();
    assert_eq!(seen, want, "each item once, in key order");

    let err = k.kubectl_err(&["get", "--raw", &format!("{base}&continue=garbage")]);
    assert!(
        err.starts_with("Error from server (BadRequest)"),
        "a garbage continue token: {err}"
    );

    // With a selector: pages of matching items, no remainingItemCount (the store cannot
    // count what matches without reading it).
    for name in ["c2", "c4", "c6"] {
        k.kubectl_ok(&["label", "cm", name, "even=true", "-n", "demo"]);
    }
    let sel = "/api/v1/namespaces/demo/configmaps?limit=2&labelSelector=even%3Dtrue";
    let page = get_raw(&k, sel);
    let names = |p: &Value| -> Vec<String> {
        p["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|o| {
                o["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect()
    };
    assert_eq!(names(&page), ["c2", "c4"], "{page:#}");
    assert!(
        page["metadata"].get("remainingItemCount").is_none(),
        "{page:#}"
    );
    let token = page["metadata"]["continue"]
        .as_str()
        .unwrap_or_else(|| panic!("no continue: {page:#}"))
        .to_string();
    let page2 = get_raw(&k, &format!("{sel}&continue={}", query_escape(&token)));
    assert_eq!(names(&page2), ["c6"], "{page2:#}");

    // A continue token whose revision was compacted: 410 Expired.
    k.kubectl_ok(&["label", "cm", "c1", "x=1", "-n", "demo"]);
    let rev = k.store_snapshot().revision;
    k.etcdctl_ok(&["compact", &rev.to_string()]);
    let err = k.kubectl_err(&[
        "get",
        "--raw",
        &format!("{sel}&continue={}", query_escape(&token)),
    ]);
    assert!(
        err.starts_with(
            "Error from server (Expired): The provided continue parameter is too old to display a \
             consistent list result."
        ),
        "{err}"
    );
}

#[test]
fn finalizers_and_graceful_pod_deletion() {
    let k = start_with_demo();

    // A finalizer holds the object: deletionTimestamp set, the object stays.
    let cm = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "fin", "namespace": "demo", "finalizers": ["example.com/keep"]},
        "data": {"a": "1"}
    });
    assert_eq!(create_obj(&k, "fin.json", &cm), "configmap/fin created\n");
    assert_eq!(
        k.kubectl_ok(&["delete", "cm", "fin", "-n", "demo", "--wait=false"]),
        "configmap \"fin\" deleted from demo namespace\n"
    );
    assert!(k.store_has("/registry/configmaps/demo/fin"));
    let got = get_json(&k, &["cm", "fin", "-n", "demo"]);
    assert!(got["metadata"]["deletionTimestamp"].is_string(), "{got:#}");
    assert_eq!(got["metadata"]["deletionGracePeriodSeconds"], 0, "{got:#}");
    assert_eq!(
        got["metadata"]["finalizers"],
        json!(["example.com/keep"]),
        "{got:#}"
    );
    // Removing the last finalizer completes the deletion.
    assert_eq!(
        k.kubectl_ok(&[
            "patch",
            "cm",
            "fin",
            "-n",
            "demo",
            "--type=json",
            "-p",
            r#"[{"op":"remove","path":"/metadata/finalizers"}]"#
        ]),
        "configmap/fin patched\n"
    );
    assert!(
        !k.store_has("/registry/configmaps/demo/fin"),
        "{:?}",
        k.store_keys("/registry/configmaps/")
    );

    // A pod on a node: graceful deletion, its grace period the pod's (30 s by default).
    create_obj(&k, "bound.json", &pod("bound", "demo", Some("n1")));
    assert_eq!(
        k.kubectl_ok(&["delete", "pod", "bound", "-n", "demo", "--wait=false"]),
        "pod \"bound\" deleted from demo namespace\n"
    );
    assert!(k.store_has("/registry/pods/demo/bound"));
    let got = get_json(&k, &["pod", "bound", "-n", "demo"]);
    let meta = &got["metadata"];
    assert_eq!(meta["deletionGracePeriodSeconds"], 30, "{got:#}");
    // deletionTimestamp is when the grace period ends (now + 30 s).
    let deleted_at = epoch_seconds(
        meta["deletionTimestamp"]
            .as_str()
            .expect("deletionTimestamp"),
    );
    let created_at = epoch_seconds(
        meta["creationTimestamp"]
            .as_str()
            .expect("creationTimestamp"),
    );
    assert!(
        (25..=60).contains(&(deleted_at - created_at)),
        "deletionTimestamp is not ~30 s ahead: {got:#}"
    );
    let t = rows(&k.kubectl_ok(&["get", "pods", "-n", "demo"]));
    assert_eq!(t[1][..3], ["bound", "0/1", "Terminating"], "{t:?}");
    // A second delete may shorten the grace period, never lengthen it.
    k.kubectl_ok(&[
        "delete",
        "pod",
        "bound",
        "-n",
        "demo",
        "--grace-period=5",
        "--wait=false",
    ]);
    let got = get_json(&k, &["pod", "bound", "-n", "demo"]);
    assert_eq!(got["metadata"]["deletionGracePeriodSeconds"], 5, "{got:#}");
    let shorter = epoch_seconds(
        got["metadata"]["deletionTimestamp"]
            .as_str()
            .expect("deletionTimestamp"),
    );
    assert!(shorter < deleted_at, "{got:#}");
    // Forced: gone at once.
    let args = [
        "delete",
        "pod",
        "bound",
        "-n",
        "demo",
        "--grace-period=0",
        "--force",
    ];
    let out = k.kubectl(&args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        k.expect_ok(&args, out),
        "pod \"bound\" force deleted from demo namespace\n"
    );
    assert_contains(&stderr, "Warning: Immediate deletion does not wait");
    assert!(!k.store_has("/registry/pods/demo/bound"));

    // A pod that has finished: deleted at once, bound or not.
    create_obj(&k, "done.json", &pod("done", "demo", Some("n1")));
    k.kubectl_ok(&[
        "patch",
        "pod",
        "done",
        "-n",
        "demo",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"phase":"Succeeded"}}"#,
    ]);
    k.kubectl_ok(&["delete", "pod", "done", "-n", "demo", "--wait=false"]);
    assert!(
        !k.store_has("/registry/pods/demo/done"),
        "a Succeeded pod is deleted at once: {}",
        k.etcdctl_ok(&["get", "/registry/pods/demo/done", "--print-value-only"])
    );

    // A pod no node runs: deleted at once.
    create_obj(&k, "free.json", &pod("free", "demo", None));
    assert_eq!(
        k.kubectl_ok(&["delete", "pod", "free", "-n", "demo", "--wait=false"]),
        "pod \"free\" deleted from demo namespace\n"
    );
    assert!(
        !k.store_has("/registry/pods/demo/free"),
        "an unscheduled pod is deleted at once (no grace period): {}",
        k.etcdctl_ok(&["get", "/registry/pods/demo/free", "--print-value-only"])
    );
}

#[test]
fn delete_collections() {
    let k = start_with_demo();
    for (name, ns, tier) in [
        ("a1", "demo", "a"),
        ("a2", "demo", "a"),
        ("b1", "demo", "b"),
        ("d1", "default", "a"),
    ] {
        create_obj(
            &k,
            &format!("{name}.json"),
            &json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": ns, "labels": {"tier": tier}},
                "data": {"a": "1"}
            }),
        );
    }
    let keys = || k.store_keys("/registry/configmaps/");
    // deletecollection with a label selector: only the matching, only in the namespace.
    let out = k.kubectl_ok(&[
        "delete",
        "--raw",
        "/api/v1/namespaces/demo/configmaps?labelSelector=tier%3Da",
    ]);
    let resp = parse_json(&out);
    assert_eq!(resp["kind"], "ConfigMapList", "{resp:#}");
    assert_eq!(resp["items"].as_array().map(Vec::len), Some(2), "{resp:#}");
    assert_eq!(
        keys(),
        [
            "/registry/configmaps/default/d1",
            "/registry/configmaps/demo/b1"
        ]
    );
    // --all: every one in the namespace, no other namespace.
    assert_eq!(
        k.kubectl_ok(&["delete", "cm", "--all", "-n", "demo"]),
        "configmap \"b1\" deleted from demo namespace\n"
    );
    assert_eq!(keys(), ["/registry/configmaps/default/d1"]);
}

#[test]
fn generate_name() {
    let k = start_with_demo();
    let cm = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"generateName": "web-", "namespace": "demo"},
        "data": {"a": "1"}
    });
    let mut names = Vec::new();
    for _ in 0..2 {
        let out = create_obj(&k, "gen.json", &cm);
        let name = out
            .strip_prefix("configmap/")
            .and_then(|s| s.strip_suffix(" created\n"))
            .unwrap_or_else(|| panic!("{out:?}"))
            .to_string();
        let suffix = name
            .strip_prefix("web-")
            .unwrap_or_else(|| panic!("{name}"));
        // apimachinery's utilrand.String: 5 of "bcdfghjklmnpqrstvwxz2456789".
        assert_eq!(suffix.len(), 5, "{name}");
        assert!(
            suffix
                .chars()
                .all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)),
            "{name}"
        );
        assert!(k.store_has(&format!("/registry/configmaps/demo/{name}")));
        let got = get_json(&k, &["cm", &name, "-n", "demo"]);
        assert_eq!(got["metadata"]["generateName"], "web-", "{got:#}");
        names.push(name);
    }
    assert_ne!(names[0], names[1]);
    assert_eq!(k.store_keys("/registry/configmaps/demo/").len(), 2);
}

#[test]
fn binding() {
    let k = start_with_demo();
    create_obj(&k, "pod.json", &pod("p", "demo", None));
    let binding = |node: &str| {
        json!({
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": "p", "namespace": "demo"},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node}
        })
        .to_string()
    };
    let b1 = write_file(&k, "b1.json", &binding("n1"));
    let out = k.kubectl_ok(&[
        "create",
        "--raw",
        "/api/v1/namespaces/demo/pods/p/binding",
        "-f",
        &b1,
    ]);
    let status = parse_json(&out);
    assert_eq!(status["kind"], "Status", "{out}");
    assert_eq!(status["status"], "Success", "{out}");
    assert_eq!(status["code"], 201, "{out}");
    let got = get_json(&k, &["pod", "p", "-n", "demo"]);
    assert_eq!(got["spec"]["nodeName"], "n1", "{got:#}");
    // BindingREST sets the PodScheduled condition.
    let conditions = got["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        conditions
            .iter()
            .any(|c| c["type"] == "PodScheduled" && c["status"] == "True"),
        "{got:#}"
    );

    let before = k.store_snapshot();
    let b2 = write_file(&k, "b2.json", &binding("n2"));
    let err = k.kubectl_err(&[
        "create",
        "--raw",
        "/api/v1/namespaces/demo/pods/p/binding",
        "-f",
        &b2,
    ]);
    assert_eq!(
        err.trim(),
        r#"Error from server (Conflict): Operation cannot be fulfilled on pods/binding "p": pod p is already assigned to node "n1""#
    );
    assert_eq!(k.store_snapshot(), before, "a refused binding wrote");

    // A pod being deleted (held by a finalizer) cannot be bound.
    let mut held = pod("held", "demo", None);
    held["metadata"]["finalizers"] = json!(["example.com/keep"]);
    create_obj(&k, "held.json", &held);
    k.kubectl_ok(&["delete", "pod", "held", "-n", "demo", "--wait=false"]);
    assert!(k.store_has("/registry/pods/demo/held"));
    let err = k.kubectl_err(&[
        "create",
        "--raw",
        "/api/v1/namespaces/demo/pods/held/binding",
        "-f",
        &b2,
    ]);
    assert_eq!(
        err.trim(),
        r#"Error from server (Conflict): Operation cannot be fulfilled on pods/binding "held": pod held is being deleted, cannot be assigned to a host"#
    );

    // No such pod.
    let err = k.kubectl_err(&[
        "create",
        "--raw",
        "/api/v1/namespaces/demo/pods/nope/binding",
        "-f",
        &b2,
    ]);
    assert_eq!(
        err.trim(),
        r#"Error from server (NotFound): pods "nope" not found"#
    );
}

#[test]
fn pod_spec_updates_are_limited() {
    let k = start_with_demo();
    create_obj(&k, "pod.json", &pod("p", "demo", Some("n1")));
    let before = k.store_snapshot();
    // Pod spec updates: only images (and a few others) may change
    // (ValidatePodUpdate in pkg/apis/core/validation).
    let err = k.kubectl_err(&[
        "patch",
        "pod",
        "p",
        "-n",
        "demo",
        "--type=merge",
        "-p",
        r#"{"spec":{"restartPolicy":"Never"}}"#,
    ]);
    assert!(
        err.starts_with(
            "The Pod \"p\" is invalid: spec: Forbidden: pod updates may not change fields other than "
        ),
        "{err}"
    );
    assert_contains(&err, "`spec.containers[*].image`");
    let err = k.kubectl_err(&[
        "patch",
        "pod",
        "p",
        "-n",
        "demo",
        "--type=merge",
        "-p",
        r#"{"spec":{"nodeName":"n2"}}"#,
    ]);
    assert!(
        err.starts_with(
            "The Pod \"p\" is invalid: spec: Forbidden: pod updates may not change fields other than "
        ),
        "{err}"
    );
    assert_eq!(k.store_snapshot(), before, "a refused update wrote");
    assert_eq!(
        k.kubectl_ok(&[
            "patch",
            "pod",
            "p",
            "-n",
            "demo",
            "-p",
            r#"{"spec":{"containers":[{"name":"c","image":"nginx:1.26"}],"activeDeadlineSeconds":600}}"#
        ]),
        "pod/p patched\n"
    );
    assert_eq!(
        k.kubectl_ok(&["set", "image", "pod/p", "c=nginx:1.27", "-n", "demo"]),
        "pod/p image updated\n"
    );
    let got = get_json(&k, &["pod", "p", "-n", "demo"]);
    assert_eq!(
        got["spec"]["containers"][0]["image"], "nginx:1.27",
        "{got:#}"
    );
    assert_eq!(got["spec"]["restartPolicy"], "Always", "{got:#}");
}

#[test]
fn apply_list_manifest() {
    let k = start_with_demo();
    let list = r#"apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata:
    name: l1
    namespace: demo
  data:
    a: "1"
- apiVersion: v1
  kind: ConfigMap
  metadata:
    name: l2
    namespace: demo
  data:
    b: "2"
"#;
    let path = write_file(&k, "list.yaml", list);
    assert_eq!(
        k.kubectl_ok(&["apply", "-f", &path]),
        "configmap/l1 created\nconfigmap/l2 created\n"
    );
    assert!(k.store_has("/registry/configmaps/demo/l1"));
    assert!(k.store_has("/registry/configmaps/demo/l2"));
    assert_eq!(
        k.kubectl_ok(&["apply", "-f", &path]),
        "configmap/l1 unchanged\nconfigmap/l2 unchanged\n"
    );
}

#[test]
fn discovery_versions_and_scopes() {
    let k = ApiServer::start();
    let out = k.kubectl_ok(&["api-versions"]);
    let versions: Vec<&str> = out.lines().collect();
    for v in [
        "apps/v1",
        "batch/v1",
        "coordination.k8s.io/v1",
        "discovery.k8s.io/v1",
        "v1",
    ] {
        assert!(versions.contains(&v), "no {v} in api-versions:\n{out}");
    }
    let mut sorted = versions.clone();
    sorted.sort();
    assert_eq!(versions, sorted, "api-versions prints them sorted");

    let out = k.kubectl_ok(&["api-resources", "--namespaced=false", "-o", "name"]);
    let names: Vec<&str> = out.lines().collect();
    assert!(names.contains(&"namespaces"), "{out}");
    assert!(names.contains(&"nodes"), "{out}");
    assert!(!names.contains(&"configmaps"), "{out}");
    assert!(!names.contains(&"pods"), "{out}");
    let out = k.kubectl_ok(&["api-resources", "--namespaced=true", "-o", "name"]);
    let names: Vec<&str> = out.lines().collect();
    assert!(names.contains(&"pods"), "{out}");
    assert!(names.contains(&"deployments.apps"), "{out}");
    assert!(!names.contains(&"nodes"), "{out}");
}

#[test]
fn pod_field_selectors() {
    let k = start_with_demo();
    for (name, ns, node) in [
        ("p1", "demo", Some("n1")),
        ("p2", "demo", Some("n2")),
        ("p3", "demo", None),
        ("p4", "default", Some("n1")),
    ] {
        create_obj(&k, &format!("{name}.json"), &pod(name, ns, node));
    }
    // Pods start Pending (kube-apiserver's PrepareForCreate); make p1 Running.
    assert_eq!(
        k.kubectl_ok(&[
            "patch",
            "pod",
            "p1",
            "-n",
            "demo",
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"phase":"Running"}}"#
        ]),
        "pod/p1 patched\n"
    );

    let ns_names = |args: &[&str]| -> Vec<(String, String)> {
        let out = k.kubectl_ok(args);
        let t = rows(&out);
        assert_eq!(t[0][..2], ["NAMESPACE", "NAME"], "{out}");
        t[1..]
            .iter()
            .map(|r| (r[0].clone(), r[1].clone()))
            .collect()
    };
    let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
    assert_eq!(
        ns_names(&["get", "pods", "-A", "--field-selector", "spec.nodeName=n1"]),
        [pair("default", "p4"), pair("demo", "p1")]
    );
    assert_eq!(
        ns_names(&["get", "pods", "-A", "--field-selector", "spec.nodeName="]),
        [pair("demo", "p3")]
    );
    assert_eq!(
        ns_names(&[
            "get",
            "pods",
            "-A",
            "--field-selector",
            "status.phase!=Running"
        ]),
        [
            pair("default", "p4"),
            pair("demo", "p2"),
            pair("demo", "p3")
        ]
    );
    assert_eq!(
        k.kubectl_ok(&[
            "get",
            "pods",
            "-n",
            "demo",
            "--field-selector",
            "status.phase=Running,spec.nodeName=n1",
            "-o",
            "name"
        ]),
        "pod/p1\n"
    );
    assert_eq!(
        k.kubectl_ok(&[
            "get",
            "pods",
            "-n",
            "demo",
            "--field-selector",
            "metadata.name=p2",
            "-o",
            "name"
        ]),
        "pod/p2\n"
    );

    let err = k.kubectl_err(&["get", "pods", "-A", "--field-selector", "spec.foo=x"]);
    assert!(err.starts_with("Error from server (BadRequest): "), "{err}");
    assert_contains(&err, "field label not supported: spec.foo");
}

#[test]
fn server_dry_run_create_and_delete() {
    let k = start_with_demo();
    let cm = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "x", "namespace": "demo"},
        "data": {"a": "1"}
    });
    let path = write_file(&k, "x.json", &cm.to_string());
    let before = k.store_snapshot();
    assert_eq!(
        k.kubectl_ok(&["create", "-f", &path, "--dry-run=server"]),
        "configmap/x created (server dry run)\n"
    );
    assert_eq!(k.store_snapshot(), before, "a dry-run create wrote");
    let err = k.kubectl_err(&["get", "cm", "x", "-n", "demo"]);
    assert_eq!(
        err.trim(),
        r#"Error from server (NotFound): configmaps "x" not found"#
    );

    assert_eq!(
        k.kubectl_ok(&["create", "-f", &path]),
        "configmap/x created\n"
    );
    create_obj(&k, "p.json", &pod("p", "demo", Some("n1")));
    let before = k.store_snapshot();
    assert_eq!(
        k.kubectl_ok(&["delete", "cm", "x", "-n", "demo", "--dry-run=server"]),
        "configmap \"x\" deleted from demo namespace (server dry run)\n"
    );
    assert_eq!(
        k.kubectl_ok(&["delete", "pod", "p", "-n", "demo", "--dry-run=server"]),
        "pod \"p\" deleted from demo namespace (server dry run)\n"
    );
    assert_eq!(k.store_snapshot(), before, "a dry-run delete wrote");
    let got = get_json(&k, &["pod", "p", "-n", "demo"]);
    assert!(
        got["metadata"].get("deletionTimestamp").is_none(),
        "{got:#}"
    );
}

#[test]
fn replace_with_stale_resource_version() {
    let k = start_with_demo();
    let deploy = WEB_DEPLOYMENT;
    let path = write_file(&k, "web.yaml", deploy);
    k.kubectl_ok(&["create", "-f", &path]);
    let stale = k.kubectl_ok(&["get", "deploy", "web", "-n", "demo", "-o", "yaml"]);
    assert_eq!(
        k.kubectl_ok(&["scale", "deploy", "web", "--replicas=3", "-n", "demo"]),
        "deployment.apps/web scaled\n"
    );
    let stale = stale.replace("replicas: 2", "replicas: 4");
    let stale_path = write_file(&k, "stale.yaml", &stale);
    let before = k.store_snapshot();
    let err = k.kubectl_err(&["replace", "-f", &stale_path]);
    assert_eq!(
        err.trim(),
        format!(
            "Error from server (Conflict): error when replacing \"{stale_path}\": Operation \
             cannot be fulfilled on deployments.apps \"web\": the object has been modified; \
             please apply your changes to the latest version and try again"
        )
    );
    assert_eq!(k.store_snapshot(), before, "a conflicting replace wrote");

    // With the current resourceVersion it goes through.
    let fresh = k.kubectl_ok(&["get", "deploy", "web", "-n", "demo", "-o", "yaml"]);
    let fresh_path = write_file(
        &k,
        "fresh.yaml",
        &fresh.replace("replicas: 3", "replicas: 4"),
    );
    assert_eq!(
        k.kubectl_ok(&["replace", "-f", &fresh_path]),
        "deployment.apps/web replaced\n"
    );
    let got = get_json(&k, &["deploy", "web", "-n", "demo"]);
    assert_eq!(got["spec"]["replicas"], 4, "{got:#}");
}

/// Watches share one store watch per resource: a watch that starts inside its window replays
/// from it, sees only its own namespace, and a watch from before the window still works (from
/// a store watch of its own).
#[test]
fn shared_watch_replays_its_window_per_namespace() {
    let k = start_with_demo();
    k.kubectl_ok(&["create", "namespace", "other"]);
    let list_rv = |ns: &str| -> String {
        let out = k.kubectl_ok(&[
            "get",
            "--raw",
            &format!("/api/v1/namespaces/{ns}/configmaps"),
        ]);
        let v: Value = serde_json::from_str(&out).expect("a list");
        v["metadata"]["resourceVersion"]
            .as_str()
            .expect("rv")
            .to_string()
    };
    let before_hub = list_rv("demo");
    // The first watch starts the shared watch.
    k.kubectl_ok(&[
        "get",
        "--raw",
        "/api/v1/configmaps?watch=true&timeoutSeconds=1",
    ]);
    let rv = list_rv("demo");
    for (ns, name) in [("demo", "mine"), ("other", "theirs"), ("demo", "mine2")] {
        k.kubectl_ok(&["create", "configmap", name, "-n", ns, "--from-literal=a=1"]);
    }
    let watch = |ns: &str, from: &str| -> Vec<(String, String)> {
        let out = k.kubectl_ok(&[
            "get",
            "--raw",
            &format!("/api/v1/namespaces/{ns}/configmaps?watch=true&resourceVersion={from}&timeoutSeconds=2"),
        ]);
        out.lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).expect("an event");
                (
                    v["type"].as_str().unwrap_or("").to_string(),
                    v["object"]["metadata"]["name"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                )
            })
            .collect()
    };
    let added = |names: &[&str]| -> Vec<(String, String)> {
        names
            .iter()
            .map(|n| ("ADDED".to_string(), n.to_string()))
            .collect()
    };
    // Inside the window: replayed, this namespace only, in order.
    assert_eq!(watch("demo", &rv), added(&["mine", "mine2"]));
    assert_eq!(watch("other", &rv), added(&["theirs"]));
    // From before the shared watch started: the same events, from the store.
    assert_eq!(watch("demo", &before_hub), added(&["mine", "mine2"]));
}

/// Two API servers on one store serve one cluster: what one writes, the other reads and
/// watches, and optimistic concurrency holds across them.
#[test]
fn two_api_servers_serve_one_cluster() {
    let k = start_with_demo();
    let peer = k.start_peer();
    // The later --server flag wins: kubectl_at_ok points kubectl at the peer.
    assert_eq!(
        k.kubectl_at_ok(
            &peer,
            &[
                "create",
                "configmap",
                "via-peer",
                "-n",
                "demo",
                "--from-literal=a=1"
            ]
        ),
        "configmap/via-peer created\n"
    );
    let got = k.kubectl_ok(&[
        "get",
        "cm",
        "via-peer",
        "-n",
        "demo",
        "-o",
        "jsonpath={.data.a}",
    ]);
    assert_eq!(got, "1");
    // A watch on the first server sees a change made through the second.
    let rv = k.kubectl_ok(&[
        "get",
        "cm",
        "via-peer",
        "-n",
        "demo",
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ]);
    k.kubectl_at_ok(
        &peer,
        &["label", "cm", "via-peer", "-n", "demo", "seen=yes"],
    );
    let out = k.kubectl_ok(&[
        "get",
        "--raw",
        &format!(
            "/api/v1/namespaces/demo/configmaps?watch=true&resourceVersion={rv}&timeoutSeconds=2"
        ),
    ]);
    let first: Value = serde_json::from_str(out.lines().next().expect("an event")).expect("json");
    assert_eq!(first["type"], "MODIFIED", "{out}");
    assert_eq!(
        first["object"]["metadata"]["labels"]["seen"], "yes",
        "{out}"
    );
    // A stale update through one server loses to a newer write through the other.
    let stale = k.kubectl_ok(&["get", "cm", "via-peer", "-n", "demo", "-o", "json"]);
    k.kubectl_at_ok(&peer, &["label", "cm", "via-peer", "-n", "demo", "round=2"]);
    let path = k.dir().join("stale.json");
    std::fs::write(&path, stale).expect("write");
    let err = k.kubectl_err(&["replace", "-f", path.to_str().expect("utf-8 path")]);
    assert!(
        err.contains("the object has been modified; please apply your changes to the latest version and try again"),
        "{err}"
    );
}

/// Bodies in YAML, as `curl -H 'Content-Type: application/yaml' --data-binary @cm.yaml` sends
/// them (kubectl itself always sends JSON or protobuf): created as from JSON; YAML that does
/// not parse is a 400 and an unknown media type a 415, both writing nothing.
#[test]
fn yaml_request_bodies() {
    let k = start_with_demo();
    let path = "/api/v1/namespaces/demo/configmaps";
    let post = |path: &str, content_type: &str, body: &str| {
        concord_tests::apiserver::http_request(
            &k.addr,
            "POST",
            path,
            Some((content_type, body.as_bytes())),
            Duration::from_secs(10),
        )
        .expect("post")
    };
    let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-yaml\ndata:\n  mode: fast\n  count: \"3\"\n";
    let (code, body) = post(path, "application/yaml", yaml);
    assert_eq!(code, 201, "{body}");
    let got = get_json(&k, &["cm", "from-yaml", "-n", "demo"]);
    assert_eq!(got["data"], json!({"mode": "fast", "count": "3"}));

    let before = k.store_snapshot();
    let bad = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [unclosed\n";
    let (code, body) = post(path, "application/yaml", bad);
    assert_eq!(code, 400, "{body}");
    let status = parse_json(&body);
    assert_eq!(status["reason"], "BadRequest", "{body}");
    assert_contains(
        status["message"].as_str().unwrap_or(""),
        "error converting YAML to JSON: yaml: ",
    );

    // A YAML body with a field the type lacks: strict decoding, as for JSON.
    let unknown = yaml.replace("name: from-yaml", "name: other\n  colour: red");
    let (code, body) = post(
        &format!("{path}?fieldValidation=Strict"),
        "application/yaml",
        &unknown,
    );
    assert_eq!(code, 400, "{body}");
    assert_contains(
        &body,
        r#"strict decoding error: unknown field \"metadata.colour\""#,
    );

    let (code, body) = post(path, "text/plain", yaml);
    assert_eq!(code, 415, "{body}");
    let status = parse_json(&body);
    assert_eq!(status["reason"], "UnsupportedMediaType", "{body}");
    assert_eq!(
        status["message"],
        "the body of the request was in an unknown format - accepted media types include: \
         application/json, application/yaml, application/vnd.kubernetes.protobuf"
    );
    assert_eq!(
        k.store_snapshot(),
        before,
        "a refused body wrote to the store"
    );
}

/// PriorityClasses and the Priority admission plugin: the built-in classes, a user class, pods
/// that take their priority from a class (or the global default), and kube-apiserver's
/// refusals (plugin/pkg/admission/priority/admission.go, pkg/apis/scheduling/validation,
/// pkg/registry/scheduling/priorityclass/storage).
#[test]
fn priority_classes_and_pod_priority() {
    let k = start_with_demo();
    let pod_priority = |name: &str| {
        k.kubectl_ok(&[
            "get",
            "pod",
            name,
            "-n",
            "demo",
            "-o",
            "jsonpath={.spec.priority} {.spec.preemptionPolicy} {.spec.priorityClassName}",
        ])
    };
    let pod_yaml = |name: &str, extra: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: demo\nspec:\n{extra}  containers:\n  - name: c\n    image: nginx:1.25\n"
        )
    };

    // The built-in classes exist from the start, with every column shown.
    let t = rows(&k.kubectl_ok(&["get", "pc"]));
    assert_eq!(
        t[0],
        ["NAME", "VALUE", "GLOBAL-DEFAULT", "AGE", "PREEMPTIONPOLICY"]
    );
    assert_eq!(t.len(), 3, "{t:?}");
    for (row, (name, value)) in t[1..].iter().zip([
        ("system-cluster-critical", "2000000000"),
        ("system-node-critical", "2000001000"),
    ]) {
        assert_eq!(row.len(), 5, "{row:?}");
        assert_eq!(
            (&row[0][..], &row[1][..], &row[2][..], &row[4][..]),
            (name, value, "false", "PreemptLowerPriority")
        );
    }
    let node_critical = get_json(&k, &["priorityclass", "system-node-critical"]);
    assert_eq!(
        node_critical["description"],
        "Used for system critical pods that must not be moved from their current node."
    );
    assert_eq!(node_critical["metadata"]["generation"], 1);
    assert!(
        node_critical.get("globalDefault").is_none(),
        "{node_critical:#}"
    );
    assert!(k.store_has("/registry/priorityclasses/system-cluster-critical"));
    let t = rows(&k.kubectl_ok(&["api-resources", "--api-group=scheduling.k8s.io"]));
    assert!(
        t.iter().any(|r| r
            == &[
                "priorityclasses",
                "pc",
                "scheduling.k8s.io/v1",
                "false",
                "PriorityClass"
            ]),
        "{t:?}"
    );

    // A user class, and pods that name it, name a built-in one, or name none.
    let high = "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata:\n  name: high\nvalue: 1000\ndescription: for the important ones\n";
    assert_eq!(
        k.apply_stdin(high, &[]),
        "priorityclass.scheduling.k8s.io/high created\n"
    );
    assert_eq!(
        k.apply_stdin(&pod_yaml("p-high", "  priorityClassName: high\n"), &[]),
        "pod/p-high created\n"
    );
    assert_eq!(pod_priority("p-high"), "1000 PreemptLowerPriority high");
    assert_eq!(
        k.kubectl_ok(&[
            "get",
            "pod",
            "p-high",
            "-n",
            "demo",
            "-o",
            "jsonpath={.spec.priority}"
        ]),
        "1000"
    );
    k.apply_stdin(
        &pod_yaml("p-critical", "  priorityClassName: system-node-critical\n"),
        &[],
    );
    assert_eq!(
        pod_priority("p-critical"),
        "2000001000 PreemptLowerPriority system-node-critical"
    );
    k.apply_stdin(&pod_yaml("p-plain", ""), &[]);
    assert_eq!(pod_priority("p-plain"), "0 PreemptLowerPriority ");
    // kubectl create priorityclass sends protobuf; its policy reaches the pods.
    assert_eq!(
        k.kubectl_ok(&[
            "create",
            "priorityclass",
            "batch",
            "--value=-5",
            "--preemption-policy=Never"
        ]),
        "priorityclass.scheduling.k8s.io/batch created\n"
    );
    k.apply_stdin(&pod_yaml("p-batch", "  priorityClassName: batch\n"), &[]);
    assert_eq!(pod_priority("p-batch"), "-5 Never batch");

    // What admission and validation refuse, writing nothing.
    let before = k.store_snapshot();
    let err = k.apply_stdin_err(&pod_yaml("p-missing", "  priorityClassName: missing\n"));
    assert_contains(
        &err,
        r#"Error from server (Forbidden): error when creating "STDIN": pods "p-missing" is forbidden: no PriorityClass with name missing was found"#,
    );
    let err = k.apply_stdin_err(&pod_yaml(
        "p-own",
        "  priorityClassName: high\n  priority: 5\n",
    ));
    assert_contains(
        &err,
        r#"pods "p-own" is forbidden: the integer value of priority (5) must not be provided in pod spec; priority admission controller computed 1000 from the given PriorityClass name"#,
    );
    let err = k.apply_stdin_err(&pod_yaml(
        "p-policy",
        "  priorityClassName: batch\n  preemptionPolicy: PreemptLowerPriority\n",
    ));
    assert_contains(
        &err,
        r#"pods "p-policy" is forbidden: the string value of PreemptionPolicy (PreemptLowerPriority) must not be provided in pod spec; priority admission controller computed Never from the given PriorityClass name"#,
    );
    let err = k.kubectl_err(&[
        "patch",
        "pc",
        "high",
        "--type=merge",
        "-p",
        r#"{"value":2000}"#,
    ]);
    assert_contains(
        &err,
        r#"The PriorityClass "high" is invalid: value: Forbidden: may not be changed in an update."#,
    );
    let err = k.kubectl_err(&["create", "priorityclass", "system-mine", "--value=10"]);
    assert_contains(
        &err,
        r#"error: failed to create priorityclass: PriorityClass.scheduling.k8s.io "system-mine" is invalid: metadata.name: Forbidden: priority class names with 'system-' prefix are reserved for system use only. error: system-mine is not a known system priority class"#,
    );
    let err = k.kubectl_err(&["create", "priorityclass", "huge", "--value=1000000001"]);
    assert_contains(
        &err,
        r#"error: failed to create priorityclass: PriorityClass.scheduling.k8s.io "huge" is invalid: value: Forbidden: maximum allowed value of a user defined priority is 1000000000"#,
    );
    let err = k.kubectl_err(&["delete", "pc", "system-node-critical"]);
    assert_eq!(
        err.trim(),
        r#"Error from server (Forbidden): priorityclasses.scheduling.k8s.io "system-node-critical" is forbidden: this is a system priority class and cannot be deleted"#
    );
    assert_eq!(k.store_snapshot(), before, "a refused request wrote");

    // One global default: pods without a class take it (name, value and policy).
    assert_eq!(
        k.kubectl_ok(&[
            "create",
            "priorityclass",
            "everyone",
            "--value=10",
            "--global-default"
        ]),
        "priorityclass.scheduling.k8s.io/everyone created\n"
    );
    let err = k.kubectl_err(&[
        "create",
        "priorityclass",
        "another",
        "--value=20",
        "--global-default",
    ]);
    assert_contains(
        &err,
        r#"error: failed to create priorityclass: priorityclasses.scheduling.k8s.io "another" is forbidden: PriorityClass everyone is already marked as default. Only one default can exist"#,
    );
    let err = k.kubectl_err(&[
        "patch",
        "pc",
        "high",
        "--type=merge",
        "-p",
        r#"{"globalDefault":true}"#,
    ]);
    assert_contains(
        &err,
        r#"priorityclasses.scheduling.k8s.io "high" is forbidden: PriorityClass everyone is already marked as default. Only one default can exist"#,
    );
    // Saying so again of the default itself is no second default.
    k.kubectl_ok(&[
        "patch",
        "pc",
        "everyone",
        "--type=merge",
        "-p",
        r#"{"globalDefault":true,"description":"the default"}"#,
    ]);
    k.apply_stdin(&pod_yaml("p-default", ""), &[]);
    assert_eq!(
        pod_priority("p-default"),
        "10 PreemptLowerPriority everyone"
    );
    let t = rows(&k.kubectl_ok(&["get", "pc", "everyone", "--no-headers"]));
    assert_eq!(
        (&t[0][0][..], &t[0][1][..], &t[0][2][..], &t[0][4][..]),
        ("everyone", "10", "true", "PreemptLowerPriority")
    );

    // A pod's priority cannot change; sending the pod back without it keeps it.
    let err = k.kubectl_err(&[
        "patch",
        "pod",
        "p-high",
        "-n",
        "demo",
        "--type=merge",
        "-p",
        r#"{"spec":{"priority":7}}"#,
    ]);
    assert!(
        err.starts_with(
            "The Pod \"p-high\" is invalid: spec: Forbidden: pod updates may not change fields other than "
        ),
        "{err}"
    );
    let mut replaced = get_json(&k, &["pod", "p-high", "-n", "demo"]);
    let spec = replaced["spec"].as_object_mut().expect("spec");
    spec.remove("priority");
    spec.remove("preemptionPolicy");
    let path = write_file(&k, "p-high.json", &replaced.to_string());
    assert_eq!(
        k.kubectl_ok(&["replace", "-f", &path]),
        "pod/p-high replaced\n"
    );
    assert_eq!(pod_priority("p-high"), "1000 PreemptLowerPriority high");

    // A class that pods use may be deleted; they keep their priority.
    assert_eq!(
        k.kubectl_ok(&["delete", "pc", "high"]),
        "priorityclass.scheduling.k8s.io \"high\" deleted\n"
    );
    assert_eq!(pod_priority("p-high"), "1000 PreemptLowerPriority high");
    let err = k.apply_stdin_err(&pod_yaml("p-gone", "  priorityClassName: high\n"));
    assert_contains(&err, "no PriorityClass with name high was found");
}
