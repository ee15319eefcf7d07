//! An unmodified kubectl (the pinned one: `scripts/install-deps.sh --test`) against the real
//! `concord-apiserver` on a real `concord` member. Only API-server behaviour is tested: there
//! are no controllers (a Deployment gets no ReplicaSet, no pods, no status).
//!
//! Expected outputs are what kubectl prints against kube-apiserver; each test starts its own
//! member and apiserver, so they run in parallel.

use std::time::Duration;

use concord_tests::ApiServer;
use serde_json::{json, Value};

const WEB: &str = r#"apiVersion: apps/v1
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
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: demo
  labels:
    app: web
spec:
  selector:
    app: web
  ports:
  - port: 80
    targetPort: 80
"#;

/// The Deployment of [`WEB`] alone.
fn web_deployment() -> &'static str {
    WEB.split("---\n").next().expect("first document")
}

/// [`WEB`] with image nginx:1.27, 3 replicas and an extra label on the Deployment.
fn web_v2() -> String {
    WEB.replace("image: nginx:1.25", "image: nginx:1.27")
        .replace("replicas: 2", "replicas: 3")
        .replacen(
            "    app: web\nspec:\n  replicas",
            "    app: web\n    tier: frontend\nspec:\n  replicas",
            1,
        )
}

/// A harness with namespace `demo` created.
fn start_with_demo() -> ApiServer {
    let k = ApiServer::start();
    assert_eq!(
        k.kubectl_ok(&["create", "namespace", "demo"]),
        "namespace/demo created\n"
    );
    k
}

/// A table kubectl printed: its header and rows, split on whitespace.
struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    text: String,
}

fn table(text: &str) -> Table {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let split = |l: &str| l.split_whitespace().map(str::to_string).collect::<Vec<_>>();
    let header = lines.next().map(split).unwrap_or_default();
    let rows = lines.map(split).collect();
    Table {
        header,
        rows,
        text: text.to_string(),
    }
}

impl Table {
    fn assert_header(&self, expected: &[&str]) {
        assert_eq!(self.header, expected, "table header:\n{}", self.text);
    }

    /// The row whose column `col` is `value`.
    fn row_by(&self, col: usize, value: &str) -> &[String] {
        self.rows
            .iter()
            .find(|r| r.get(col).is_some_and(|v| v == value))
            .unwrap_or_else(|| panic!("no row with {value:?} in column {col}:\n{}", self.text))
    }

    /// The row named `name` (first column).
    fn row(&self, name: &str) -> &[String] {
        self.row_by(0, name)
    }

    fn names(&self, col: usize) -> Vec<&str> {
        self.rows.iter().map(|r| r[col].as_str()).collect()
    }
}

/// Whether `s` looks like kubectl's AGE column (`0s`, `12s`, `2m3s`, `5m`).
fn is_age(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_digit())
        && s.ends_with(['s', 'm', 'h', 'd', 'y'])
        && s.chars().all(|c| c.is_ascii_alphanumeric())
}

fn assert_row(t: &Table, name: &str, expected: &[&str]) {
    let row = t.row(name);
    assert_eq!(row.len(), expected.len(), "row {name}:\n{}", t.text);
    for (i, (got, want)) in row.iter().zip(expected).enumerate() {
        if *want == "<any>" {
            continue;
        }
        if *want == "<age>" {
            assert!(
                is_age(got),
                "column {i} of row {name} is no age:\n{}",
                t.text
            );
        } else {
            assert_eq!(got, want, "column {i} of row {name}:\n{}", t.text);
        }
    }
}

fn parse_json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

fn jsonpath(k: &ApiServer, what: &[&str], path: &str) -> String {
    let arg = format!("jsonpath={path}");
    let mut args = vec!["get"];
    args.extend_from_slice(what);
    args.extend_from_slice(&["-o", &arg]);
    k.kubectl_ok(&args)
}

fn assert_contains(haystack: &str, needle: &str) {
    assert!(
        haystack.contains(needle),
        "expected {needle:?} in:\n{haystack}"
    );
}

#[test]
fn namespaces_configmaps_and_secrets() {
    let k = ApiServer::start();

    // The four namespaces kube-apiserver creates, Active.
    let t = table(&k.kubectl_ok(&["get", "namespaces"]));
    t.assert_header(&["NAME", "STATUS", "AGE"]);
    let mut names = t.names(0);
    names.sort();
    assert_eq!(
        names,
        ["default", "kube-node-lease", "kube-public", "kube-system"],
        "{}",
        t.text
    );

    // `create namespace` sends protobuf.
    assert_eq!(
        k.kubectl_ok(&["create", "namespace", "demo"]),
        "namespace/demo created\n"
    );
    assert!(
        k.store_has("/registry/namespaces/demo"),
        "{:?}",
        k.store_keys("/registry/")
    );
    let t = table(&k.kubectl_ok(&["get", "ns"]));
    t.assert_header(&["NAME", "STATUS", "AGE"]);
    for ns in [
        "default",
        "demo",
        "kube-node-lease",
        "kube-public",
        "kube-system",
    ] {
        assert_row(&t, ns, &[ns, "Active", "<age>"]);
    }
    assert_eq!(t.rows.len(), 5, "{}", t.text);

    let before = k.store_snapshot();
    let err = k.kubectl_err(&["create", "namespace", "demo"]);
    assert_eq!(
        err.trim(),
        r#"Error from server (AlreadyExists): namespaces "demo" already exists"#
    );
    assert_eq!(
        k.store_snapshot(),
        before,
        "a refused create wrote to the store"
    );

    // ConfigMaps.
    assert_eq!(
        k.kubectl_ok(&[
            "create",
            "configmap",
            "cm1",
            "--from-literal=a=1",
            "-n",
            "demo"
        ]),
        "configmap/cm1 created\n"
    );
    let t = table(&k.kubectl_ok(&["get", "cm", "-n", "demo"]));
    t.assert_header(&["NAME", "DATA", "AGE"]);
    assert_eq!(t.rows.len(), 1, "{}", t.text);
    assert_row(&t, "cm1", &["cm1", "1", "<age>"]);

    let cm = parse_json(&k.kubectl_ok(&["get", "cm", "cm1", "-n", "demo", "-o", "json"]));
    assert_eq!(cm["apiVersion"], "v1", "{cm:#}");
    assert_eq!(cm["kind"], "ConfigMap", "{cm:#}");
    assert_eq!(cm["metadata"]["name"], "cm1", "{cm:#}");
    assert_eq!(cm["metadata"]["namespace"], "demo", "{cm:#}");
    assert_eq!(cm["data"], json!({"a": "1"}), "{cm:#}");
    assert!(
        cm["metadata"]["uid"]
            .as_str()
            .is_some_and(|u| u.len() == 36),
        "{cm:#}"
    );
    assert!(cm["metadata"]["creationTimestamp"].is_string(), "{cm:#}");
    let rev = k
        .mod_revision("/registry/configmaps/demo/cm1")
        .unwrap_or_else(|| {
            panic!(
                "no key /registry/configmaps/demo/cm1: {:?}",
                k.store_keys("/registry/")
            )
        });
    assert_eq!(
        cm["metadata"]["resourceVersion"],
        rev.to_string(),
        "resourceVersion is the key's mod revision: {cm:#}"
    );

    let yaml = k.kubectl_ok(&["get", "cm", "cm1", "-n", "demo", "-o", "yaml"]);
    for line in [
        "apiVersion: v1\n",
        "kind: ConfigMap\n",
        "data:\n  a: \"1\"\n",
        "  name: cm1\n",
        "  namespace: demo\n",
        &format!("  resourceVersion: \"{rev}\"\n"),
    ] {
        assert_contains(&yaml, line);
    }
    assert_eq!(
        k.kubectl_ok(&["get", "cm", "cm1", "-n", "demo", "-o", "name"]),
        "configmap/cm1\n"
    );

    // Across namespaces: a NAMESPACE column.
    let t = table(&k.kubectl_ok(&["get", "cm", "-A"]));
    t.assert_header(&["NAMESPACE", "NAME", "DATA", "AGE"]);
    assert_eq!(t.row_by(1, "cm1")[0], "demo", "{}", t.text);
    assert_eq!(
        k.kubectl_ok(&["get", "cm", "--all-namespaces", "-o", "name"]),
        "configmap/cm1\n"
    );

    // A server-side dry run answers as a create would, and writes nothing.
    let before = k.store_snapshot();
    assert_eq!(
        k.kubectl_ok(&[
            "create",
            "configmap",
            "dry",
            "--from-literal=a=1",
            "-n",
            "demo",
            "--dry-run=server"
        ]),
        "configmap/dry created (server dry run)\n"
    );
    assert_eq!(k.store_snapshot(), before, "a dry run wrote to the store");

    // A list in chunks: every item, through continue tokens.
    for i in 1..=4 {
        k.kubectl_ok(&[
            "create",
            "configmap",
            &format!("p{i}"),
            "--from-literal=a=1",
            "-n",
            "demo",
        ]);
    }
    let args = [
        "get",
        "cm",
        "-n",
        "demo",
        "--chunk-size=2",
        "-o",
        "name",
        "-v=6",
    ];
    let out = k.kubectl(&args);
    let stdout = k.expect_ok(&args, out.clone());
    assert_eq!(
        stdout,
        "configmap/cm1\nconfigmap/p1\nconfigmap/p2\nconfigmap/p3\nconfigmap/p4\n"
    );
    let log = String::from_utf8_lossy(&out.stderr);
    let gets: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("\"Response\"") && l.contains("/namespaces/demo/configmaps?"))
        .collect();
    assert_eq!(gets.len(), 3, "three pages of two:\n{log}");
    assert_eq!(
        gets.iter().filter(|l| l.contains("continue=")).count(),
        2,
        "{log}"
    );
    for i in 1..=4 {
        k.kubectl_ok(&["delete", "configmap", &format!("p{i}"), "-n", "demo"]);
    }

    assert_eq!(
        k.kubectl_ok(&[
            "create",
            "secret",
            "generic",
            "s1",
            "--from-literal=password=hunter2",
            "-n",
            "demo"
        ]),
        "secret/s1 created\n"
    );
    assert_eq!(
        jsonpath(&k, &["secret", "s1", "-n", "demo"], "{.data.password}"),
        "aHVudGVyMg=="
    );
    let t = table(&k.kubectl_ok(&["get", "secrets", "-n", "demo"]));
    t.assert_header(&["NAME", "TYPE", "DATA", "AGE"]);
    assert_row(&t, "s1", &["s1", "Opaque", "1", "<age>"]);

    // Delete, then delete again.
    assert_eq!(
        k.kubectl_ok(&["delete", "cm", "cm1", "-n", "demo"]),
        "configmap \"cm1\" deleted from demo namespace\n"
    );
    assert!(!k.store_has("/registry/configmaps/demo/cm1"));
    let before = k.store_snapshot();
    let err = k.kubectl_err(&["delete", "cm", "cm1", "-n", "demo"]);
    assert_eq!(
        err.trim(),
        r#"Error from server (NotFound): configmaps "cm1" not found"#
    );
    let err = k.kubectl_err(&["get", "cm", "cm1", "-n", "demo"]);
    assert_eq!(
        err.trim(),
        r#"Error from server (NotFound): configmaps "cm1" not found"#
    );
    assert_eq!(
        k.store_snapshot(),
        before,
        "a refused delete wrote to the store"
    );
}

#[test]
fn apply_deployment_and_service() {
    let k = start_with_demo();

    assert_eq!(
        k.apply_stdin(WEB, &[]),
        "deployment.apps/web created\nservice/web created\n"
    );
    assert!(
        k.store_has("/registry/deployments/demo/web"),
        "{:?}",
        k.store_keys("/registry/")
    );
    let deploy = ["deploy", "web", "-n", "demo"];
    assert_eq!(jsonpath(&k, &deploy, "{.metadata.generation}"), "1");
    assert_eq!(
        jsonpath(&k, &deploy, "{.spec.template.spec.containers[0].image}"),
        "nginx:1.25"
    );

    // Changed: configured; the Service, the same, unchanged.
    let v2 = web_v2();
    assert_eq!(
        k.apply_stdin(&v2, &[]),
        "deployment.apps/web configured\nservice/web unchanged\n"
    );
    assert_eq!(
        jsonpath(&k, &deploy, "{.spec.template.spec.containers[0].image}"),
        "nginx:1.27"
    );
    assert_eq!(jsonpath(&k, &deploy, "{.spec.replicas}"), "3");
    assert_eq!(jsonpath(&k, &deploy, "{.metadata.labels.tier}"), "frontend");
    assert_eq!(jsonpath(&k, &deploy, "{.metadata.generation}"), "2");
    let last_applied = jsonpath(
        &k,
        &deploy,
        r"{.metadata.annotations.kubectl\.kubernetes\.io/last-applied-configuration}",
    );
    assert_eq!(
        parse_json(&last_applied)["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.27",
        "{last_applied}"
    );

    // The same again: unchanged, and nothing written.
    let before = k.store_snapshot();
    assert_eq!(
        k.apply_stdin(&v2, &[]),
        "deployment.apps/web unchanged\nservice/web unchanged\n"
    );
    assert_eq!(
        k.store_snapshot(),
        before,
        "an unchanged apply wrote to the store"
    );
    assert_eq!(jsonpath(&k, &deploy, "{.metadata.generation}"), "2");

    // Tables.
    let t = table(&k.kubectl_ok(&["get", "deploy", "-n", "demo"]));
    t.assert_header(&["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]);
    assert_row(&t, "web", &["web", "0/3", "0", "0", "<age>"]);
    let t = table(&k.kubectl_ok(&["get", "deploy", "-n", "demo", "-o", "wide"]));
    t.assert_header(&[
        "NAME",
        "READY",
        "UP-TO-DATE",
        "AVAILABLE",
        "AGE",
        "CONTAINERS",
        "IMAGES",
        "SELECTOR",
    ]);
    assert_row(
        &t,
        "web",
        &[
            "web",
            "0/3",
            "0",
            "0",
            "<age>",
            "nginx",
            "nginx:1.27",
            "app=web",
        ],
    );

    let t = table(&k.kubectl_ok(&["get", "svc", "-n", "demo"]));
    t.assert_header(&[
        "NAME",
        "TYPE",
        "CLUSTER-IP",
        "EXTERNAL-IP",
        "PORT(S)",
        "AGE",
    ]);
    // CLUSTER-IP: allocation is checked in `server_side_defaults`.
    assert_row(
        &t,
        "web",
        &["web", "ClusterIP", "<any>", "<none>", "80/TCP", "<age>"],
    );
    assert_eq!(
        jsonpath(
            &k,
            &["svc", "web", "-n", "demo"],
            "{.spec.ports[0].targetPort}"
        ),
        "80"
    );

    let all = k.kubectl_ok(&["get", "all", "-n", "demo"]);
    assert!(
        all.lines()
            .any(|l| l.split_whitespace().next() == Some("service/web")),
        "no service/web in `get all`:\n{all}"
    );
    assert!(
        all.lines()
            .any(|l| l.split_whitespace().next() == Some("deployment.apps/web")),
        "no deployment.apps/web in `get all`:\n{all}"
    );

    let t = table(&k.kubectl_ok(&["get", "deploy", "-n", "demo", "--show-labels"]));
    assert_eq!(
        t.header.last().map(String::as_str),
        Some("LABELS"),
        "{}",
        t.text
    );
    assert_eq!(
        t.row("web").last().map(String::as_str),
        Some("app=web,tier=frontend"),
        "{}",
        t.text
    );

    // Label selectors.
    assert_eq!(
        k.kubectl_ok(&[
            "get",
            "deploy,svc",
            "-n",
            "demo",
            "-l",
            "app=web",
            "-o",
            "name"
        ]),
        "deployment.apps/web\nservice/web\n"
    );
    let args = ["get", "deploy", "-n", "demo", "-l", "app=other"];
    let out = k.kubectl(&args);
    let stdout = k.expect_ok(&args, out.clone());
    assert_eq!(stdout, "", "{}", k.describe(&args, &out));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "No resources found in demo namespace.\n"
    );
    assert_eq!(
        k.kubectl_ok(&[
            "get",
            "deploy",
            "-n",
            "demo",
            "-l",
            "tier=frontend",
            "-o",
            "name"
        ]),
        "deployment.apps/web\n"
    );

    // No controllers: no pods.
    let args = ["get", "pods", "-n", "demo"];
    let out = k.kubectl(&args);
    assert_eq!(k.expect_ok(&args, out.clone()), "");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "No resources found in demo namespace.\n"
    );

    // The create subcommands send protobuf.
    assert_eq!(
        k.kubectl_ok(&[
            "create",
            "deployment",
            "web2",
            "--image=nginx:1.25",
            "--replicas=2",
            "-n",
            "demo"
        ]),
        "deployment.apps/web2 created\n"
    );
    assert_eq!(
        jsonpath(
            &k,
            &["deploy", "web2", "-n", "demo"],
            "{.spec.selector.matchLabels.app}"
        ),
        "web2"
    );
    assert_eq!(
        jsonpath(&k, &["deploy", "web2", "-n", "demo"], "{.spec.replicas}"),
        "2"
    );
    assert_eq!(
        k.kubectl_ok(&[
            "create",
            "service",
            "clusterip",
            "web2",
            "--tcp=80:8080",
            "-n",
            "demo"
        ]),
        "service/web2 created\n"
    );
    assert_eq!(
        jsonpath(
            &k,
            &["svc", "web2", "-n", "demo"],
            "{.spec.ports[0].targetPort}"
        ),
        "8080"
    );
    assert_eq!(
        k.kubectl_ok(&["get", "deploy", "-n", "demo", "-o", "name"]),
        "deployment.apps/web\ndeployment.apps/web2\n"
    );
}

// What kube-apiserver fills in on create (its defaulting and PrepareForCreate), one test per
// kind so each gap shows.

/// A Service gets a cluster IP and its defaults.
#[test]
fn service_defaults_and_cluster_ip() {
    let k = start_with_demo();
    k.apply_stdin(WEB, &[]);
    let svc = parse_json(&k.kubectl_ok(&["get", "svc", "web", "-n", "demo", "-o", "json"]));
    let spec = &svc["spec"];
    let ip = spec["clusterIP"].as_str().unwrap_or_default();
    assert!(
        ip.parse::<std::net::Ipv4Addr>().is_ok(),
        "spec.clusterIP {ip:?} is no IPv4 address: {svc:#}"
    );
    assert_eq!(spec["clusterIPs"], json!([ip]), "{svc:#}");
    assert_eq!(spec["type"], "ClusterIP", "{svc:#}");
    assert_eq!(spec["sessionAffinity"], "None", "{svc:#}");
    assert_eq!(spec["ports"][0]["protocol"], "TCP", "{svc:#}");
    let t = table(&k.kubectl_ok(&["get", "svc", "-n", "demo"]));
    assert_row(
        &t,
        "web",
        &["web", "ClusterIP", ip, "<none>", "80/TCP", "<age>"],
    );
    // Concord keys every resource by its plural name (kube-apiserver uses services/specs).
    assert!(
        k.store_has("/registry/services/demo/web"),
        "{:?}",
        k.store_keys("/registry/")
    );
}

/// A Deployment gets apps/v1's defaults, its pod template core/v1's.
#[test]
fn deployment_defaults() {
    let k = start_with_demo();
    k.apply_stdin(web_deployment(), &[]);
    let d = parse_json(&k.kubectl_ok(&["get", "deploy", "web", "-n", "demo", "-o", "json"]));
    let spec = &d["spec"];
    assert_eq!(spec["revisionHistoryLimit"], 10, "{d:#}");
    assert_eq!(spec["progressDeadlineSeconds"], 600, "{d:#}");
    assert_eq!(spec["strategy"]["type"], "RollingUpdate", "{d:#}");
    assert_eq!(
        spec["strategy"]["rollingUpdate"],
        json!({"maxSurge": "25%", "maxUnavailable": "25%"}),
        "{d:#}"
    );
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Always", "{d:#}");
    assert_eq!(pod["dnsPolicy"], "ClusterFirst", "{d:#}");
    assert_eq!(pod["terminationGracePeriodSeconds"], 30, "{d:#}");
    let c = &pod["containers"][0];
    assert_eq!(c["imagePullPolicy"], "IfNotPresent", "{d:#}");
    assert_eq!(c["ports"][0]["protocol"], "TCP", "{d:#}");
    assert_eq!(c["terminationMessagePath"], "/dev/termination-log", "{d:#}");
}

/// A Secret's stringData is folded into data (base64) and dropped; its type defaults to Opaque.
#[test]
fn secret_string_data_and_type() {
    let k = start_with_demo();
    k.apply_stdin(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s2\n  namespace: demo\nstringData:\n  pw: hunter2\n",
        &[],
    );
    let s = parse_json(&k.kubectl_ok(&["get", "secret", "s2", "-n", "demo", "-o", "json"]));
    assert_eq!(s["data"], json!({"pw": "aHVudGVyMg=="}), "{s:#}");
    assert_eq!(s["type"], "Opaque", "{s:#}");
    assert!(s.get("stringData").is_none(), "{s:#}");
    let t = table(&k.kubectl_ok(&["get", "secrets", "-n", "demo"]));
    assert_row(&t, "s2", &["s2", "Opaque", "1", "<age>"]);
}

/// A Job gets a generated selector and labels; a CronJob its defaults (SUSPEND False).
#[test]
fn job_and_cronjob_defaults() {
    let k = start_with_demo();
    assert_eq!(
        k.kubectl_ok(&[
            "create",
            "job",
            "j1",
            "--image=busybox:1.36",
            "-n",
            "demo",
            "--",
            "echo",
            "hi"
        ]),
        "job.batch/j1 created\n"
    );
    let t = table(&k.kubectl_ok(&["get", "jobs", "-n", "demo"]));
    t.assert_header(&["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]);
    // No controller: no start time, so DURATION is empty.
    assert_row(&t, "j1", &["j1", "Running", "0/1", "<age>"]);
    let job = parse_json(&k.kubectl_ok(&["get", "job", "j1", "-n", "demo", "-o", "json"]));
    let uid = job["metadata"]["uid"].as_str().unwrap_or_default();
    assert_eq!(
        job["spec"]["selector"]["matchLabels"],
        json!({"batch.kubernetes.io/controller-uid": uid}),
        "{job:#}"
    );
    let labels = &job["spec"]["template"]["metadata"]["labels"];
    assert_eq!(labels["batch.kubernetes.io/controller-uid"], uid, "{job:#}");
    assert_eq!(labels["batch.kubernetes.io/job-name"], "j1", "{job:#}");
    assert_eq!(job["spec"]["backoffLimit"], 6, "{job:#}");
    assert_eq!(job["spec"]["completions"], 1, "{job:#}");
    assert_eq!(job["spec"]["parallelism"], 1, "{job:#}");

    assert_eq!(
        k.kubectl_ok(&[
            "create",
            "cronjob",
            "cj1",
            "--image=busybox:1.36",
            "--schedule=*/5 * * * *",
            "-n",
            "demo",
            "--",
            "echo",
            "hi"
        ]),
        "cronjob.batch/cj1 created\n"
    );
    let out = k.kubectl_ok(&["get", "cj", "-n", "demo"]);
    let header: Vec<&str> = out
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST", "SCHEDULE", "AGE"],
        "{out}"
    );
    let row: Vec<&str> = out
        .lines()
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        row.get(..5),
        Some(&["cj1", "*/5", "*", "*", "*"][..]),
        "{out}"
    );
    assert_eq!(
        row.get(6..10),
        Some(&["<none>", "False", "0", "<none>"][..]),
        "{out}"
    );
    let cj = parse_json(&k.kubectl_ok(&["get", "cj", "cj1", "-n", "demo", "-o", "json"]));
    assert_eq!(cj["spec"]["suspend"], false, "{cj:#}");
    assert_eq!(cj["spec"]["concurrencyPolicy"], "Allow", "{cj:#}");
    assert_eq!(cj["spec"]["successfulJobsHistoryLimit"], 3, "{cj:#}");
    assert_eq!(cj["spec"]["failedJobsHistoryLimit"], 1, "{cj:#}");
}

/// Nodes are cluster-scoped; cordon patches spec.unschedulable.
#[test]
fn nodes_cordon_uncordon() {
    let k = ApiServer::start();
    assert_eq!(
        k.apply_stdin(
            "apiVersion: v1\nkind: Node\nmetadata:\n  name: node1\n",
            &[]
        ),
        "node/node1 created\n"
    );
    let out = k.kubectl_ok(&["get", "nodes"]);
    let t = table(&out);
    t.assert_header(&["NAME", "STATUS", "ROLES", "AGE", "VERSION"]);
    // No kubelet: no Ready condition, no version.
    assert_row(&t, "node1", &["node1", "Unknown", "<none>", "<age>"]);
    assert_eq!(k.kubectl_ok(&["cordon", "node1"]), "node/node1 cordoned\n");
    assert_eq!(
        jsonpath(&k, &["node", "node1"], "{.spec.unschedulable}"),
        "true"
    );
    let t = table(&k.kubectl_ok(&["get", "nodes"]));
    assert_row(
        &t,
        "node1",
        &["node1", "Unknown,SchedulingDisabled", "<none>", "<age>"],
    );
    assert_eq!(
        k.kubectl_ok(&["uncordon", "node1"]),
        "node/node1 uncordoned\n"
    );
    assert_eq!(
        jsonpath(&k, &["node", "node1"], "{.spec.unschedulable}"),
        ""
    );
    // Concord keys every resource by its plural name (kube-apiserver uses minions).
    assert!(
        k.store_has("/registry/nodes/node1"),
        "{:?}",
        k.store_keys("/registry/")
    );
}

#[test]
fn label_annotate_patch_scale_edit() {
    let k = start_with_demo();
    k.kubectl_ok(&[
        "create",
        "configmap",
        "cm1",
        "--from-literal=color=blue",
        "-n",
        "demo",
    ]);
    k.kubectl_ok(&[
        "create",
        "configmap",
        "cm2",
        "--from-literal=x=y",
        "-n",
        "demo",
    ]);
    let cm1 = ["cm", "cm1", "-n", "demo"];

    assert_eq!(
        k.kubectl_ok(&["label", "cm", "cm1", "tier=a", "-n", "demo"]),
        "configmap/cm1 labeled\n"
    );
    assert_eq!(jsonpath(&k, &cm1, "{.metadata.labels.tier}"), "a");
    assert_eq!(
        k.kubectl_ok(&["get", "cm", "-n", "demo", "-l", "tier=a", "-o", "name"]),
        "configmap/cm1\n"
    );
    assert_eq!(
        k.kubectl_ok(&["get", "cm", "-n", "demo", "-l", "tier!=a", "-o", "name"]),
        "configmap/cm2\n"
    );
    assert_eq!(
        k.kubectl_ok(&["annotate", "cm", "cm1", "note=hello", "-n", "demo"]),
        "configmap/cm1 annotated\n"
    );
    assert_eq!(jsonpath(&k, &cm1, "{.metadata.annotations.note}"), "hello");
    assert_eq!(
        k.kubectl_ok(&["label", "cm", "cm1", "tier-", "-n", "demo"]),
        "configmap/cm1 unlabeled\n"
    );
    assert_eq!(
        k.kubectl_ok(&["get", "cm", "-n", "demo", "-l", "tier", "-o", "name"]),
        ""
    );

    // Merge and JSON patches.
    assert_eq!(
        k.kubectl_ok(&[
            "patch",
            "cm",
            "cm1",
            "-n",
            "demo",
            "--type=merge",
            "-p",
            r#"{"data":{"b":"2"}}"#
        ]),
        "configmap/cm1 patched\n"
    );
    assert_eq!(
        parse_json(&jsonpath(&k, &cm1, "{.data}")),
        json!({"color": "blue", "b": "2"})
    );
    assert_eq!(
        k.kubectl_ok(&[
            "patch",
            "cm",
            "cm1",
            "-n",
            "demo",
            "--type=json",
            "-p",
            r#"[{"op":"replace","path":"/data/color","value":"red"},{"op":"remove","path":"/data/b"}]"#
        ]),
        "configmap/cm1 patched\n"
    );
    assert_eq!(
        parse_json(&jsonpath(&k, &cm1, "{.data}")),
        json!({"color": "red"})
    );
    // A patch that changes nothing writes nothing.
    let rev = k.mod_revision("/registry/configmaps/demo/cm1");
    assert_eq!(
        k.kubectl_ok(&[
            "patch",
            "cm",
            "cm1",
            "-n",
            "demo",
            "--type=merge",
            "-p",
            r#"{"data":{"color":"red"}}"#
        ]),
        "configmap/cm1 patched (no change)\n"
    );
    assert_eq!(k.mod_revision("/registry/configmaps/demo/cm1"), rev);

    // A replace with a stale resourceVersion: Conflict, nothing written.
    let stale = k.kubectl_ok(&["get", "cm", "cm2", "-n", "demo", "-o", "yaml"]);
    k.kubectl_ok(&["label", "cm", "cm2", "x=1", "-n", "demo"]);
    let before = k.store_snapshot();
    let args = ["replace", "-f", "-"];
    let err = k.expect_err(&args, k.kubectl_stdin(&args, stale.as_bytes()));
    assert_eq!(
        err.trim(),
        "Error from server (Conflict): error when replacing \"STDIN\": Operation cannot be \
         fulfilled on configmaps \"cm2\": the object has been modified; please apply your \
         changes to the latest version and try again"
    );
    assert_eq!(
        k.store_snapshot(),
        before,
        "a conflicting replace wrote to the store"
    );

    let editor = k.dir().join("editor.sh");
    std::fs::write(
        &editor,
        "#!/bin/sh\nsed -i 's/color: red/color: green/' \"$1\"\n",
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&editor, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let args = ["edit", "cm", "cm1", "-n", "demo"];
    let mut cmd = k.kubectl_command(&args);
    cmd.env("EDITOR", &editor);
    let out = k.kubectl_with(cmd, &args, None);
    assert_eq!(k.expect_ok(&args, out), "configmap/cm1 edited\n");
    assert_eq!(
        parse_json(&jsonpath(&k, &cm1, "{.data}")),
        json!({"color": "green"})
    );

    // Strategic merge patch: containers merge by name.
    k.apply_stdin(WEB, &[]);
    let deploy = ["deploy", "web", "-n", "demo"];
    assert_eq!(
        k.kubectl_ok(&[
            "patch",
            "deploy",
            "web",
            "-n",
            "demo",
            "-p",
            r#"{"spec":{"template":{"spec":{"containers":[{"name":"nginx","image":"nginx:1.28"}]}}}}"#
        ]),
        "deployment.apps/web patched\n"
    );
    assert_eq!(
        jsonpath(&k, &deploy, "{.spec.template.spec.containers[*].name}"),
        "nginx"
    );
    assert_eq!(
        jsonpath(&k, &deploy, "{.spec.template.spec.containers[0].image}"),
        "nginx:1.28"
    );
    assert_eq!(
        jsonpath(
            &k,
            &deploy,
            "{.spec.template.spec.containers[0].ports[0].containerPort}"
        ),
        "80",
        "a strategic patch keeps the fields it does not name"
    );
    assert_eq!(
        k.kubectl_ok(&[
            "patch",
            "deploy",
            "web",
            "-n",
            "demo",
            "--type=strategic",
            "-p",
            r#"{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","image":"busybox:1.36"}]}}}}"#
        ]),
        "deployment.apps/web patched\n"
    );
    assert_eq!(
        jsonpath(&k, &deploy, "{.spec.template.spec.containers[*].name}"),
        // kube-apiserver's strategic merge puts items the live list lacks first.
        "sidecar nginx"
    );
    assert_eq!(jsonpath(&k, &deploy, "{.metadata.generation}"), "3");

    // Scale (the scale subresource).
    assert_eq!(
        k.kubectl_ok(&["scale", "deploy", "web", "--replicas=5", "-n", "demo"]),
        "deployment.apps/web scaled\n"
    );
    assert_eq!(jsonpath(&k, &deploy, "{.spec.replicas}"), "5");

    // set image (a strategic merge patch of the named container).
    assert_eq!(
        k.kubectl_ok(&[
            "set",
            "image",
            "deploy/web",
            "nginx=nginx:1.29",
            "-n",
            "demo"
        ]),
        "deployment.apps/web image updated\n"
    );
    assert_eq!(
        jsonpath(&k, &deploy, "{.spec.template.spec.containers[*].image}"),
        "busybox:1.36 nginx:1.29"
    );
}

#[test]
fn watch_shows_changes_as_rows() {
    let k = start_with_demo();
    k.kubectl_ok(&[
        "create",
        "configmap",
        "cm1",
        "--from-literal=a=1",
        "-n",
        "demo",
    ]);

    let mut w = k.kubectl_lines(&["get", "cm", "-n", "demo", "-w"]);
    let wait = Duration::from_secs(20);
    let header = w.until("the header", wait, |l| l.starts_with("NAME"));
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        ["NAME", "DATA", "AGE"]
    );
    w.until("cm1", wait, |l| l.split_whitespace().next() == Some("cm1"));

    let first_token = |l: &str, name: &str| l.split_whitespace().next() == Some(name);
    k.kubectl_ok(&[
        "create",
        "configmap",
        "cm2",
        "--from-literal=a=1",
        "-n",
        "demo",
    ]);
    let row = w.until("cm2 created", wait, |l| first_token(l, "cm2"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols.len(), 3, "{row}");
    assert_eq!(cols[1], "1", "{row}");
    assert!(is_age(cols[2]), "{row}");

    k.kubectl_ok(&["label", "cm", "cm2", "tier=b", "-n", "demo"]);
    w.until("cm2 labeled", wait, |l| first_token(l, "cm2"));

    k.kubectl_ok(&[
        "patch",
        "cm",
        "cm2",
        "-n",
        "demo",
        "--type=merge",
        "-p",
        r#"{"data":{"b":"2"}}"#,
    ]);
    let row = w.until("cm2 with 2 keys", wait, |l| first_token(l, "cm2"));
    assert_eq!(row.split_whitespace().nth(1), Some("2"), "{row}");

    assert!(
        w.is_running(),
        "the watch ended by itself; lines: {:?}\nstderr: {}",
        w.seen(),
        w.stderr()
    );
    // Exactly: header, cm1, cm2 three times; nothing else.
    assert_eq!(w.seen().len(), 5, "lines: {:#?}", w.seen());
}

#[test]
fn malformed_manifests_are_refused() {
    let k = start_with_demo();
    let before = k.store_snapshot();

    // YAML and JSON kubectl cannot parse never leave it.
    let err = k.apply_stdin_err("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [unclosed\n");
    assert_contains(&err, "error parsing STDIN");
    let err =
        k.apply_stdin_err(r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x""#);
    assert_contains(&err, "STDIN");

    // Malformed JSON that does reach the server: 400.
    let bad = k.dir().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x""#,
    )
    .unwrap();
    let bad = bad.to_str().unwrap().to_string();
    let err = k.kubectl_err(&[
        "create",
        "--raw",
        "/api/v1/namespaces/demo/configmaps",
        "-f",
        &bad,
    ]);
    assert_contains(&err, "Error from server (BadRequest)");

    // A Pod posted to the ConfigMap collection: 400 naming both kinds.
    let pod = k.dir().join("pod.json");
    std::fs::write(
        &pod,
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p1", "namespace": "demo"},
            "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]}
        })
        .to_string(),
    )
    .unwrap();
    let pod = pod.to_str().unwrap().to_string();
    let err = k.kubectl_err(&[
        "create",
        "--raw",
        "/api/v1/namespaces/demo/configmaps",
        "-f",
        &pod,
    ]);
    assert_contains(&err, "Error from server (BadRequest)");
    assert_contains(&err, "Pod");
    assert_contains(&err, "ConfigMap");

    // An unknown field: strict decoding (kubectl's default --validate=strict).
    let err = k.apply_stdin_err(&web_deployment().replacen("replicas: 2", "replicasx: 2", 1));
    assert_contains(&err, "Error from server (BadRequest)");
    assert_contains(
        &err,
        r#"strict decoding error: unknown field "spec.replicasx""#,
    );

    assert_eq!(
        k.store_snapshot(),
        before,
        "a refused request wrote to the store"
    );
}

#[test]
fn invalid_objects_are_refused() {
    let k = start_with_demo();
    let before = k.store_snapshot();

    // An invalid name (protobuf body from `create configmap`, JSON from apply).
    let err = k.kubectl_err(&[
        "create",
        "configmap",
        "Bad_Name",
        "--from-literal=a=1",
        "-n",
        "demo",
    ]);
    assert_contains(
        &err,
        r#"ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name""#,
    );
    let err = k.apply_stdin_err(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Bad_Name\n  namespace: demo\ndata:\n  a: \"1\"\n",
    );
    assert_contains(
        &err,
        r#"is invalid: metadata.name: Invalid value: "Bad_Name""#,
    );

    // A namespace that does not exist.
    let err = k.kubectl_err(&[
        "create",
        "configmap",
        "x",
        "--from-literal=a=1",
        "-n",
        "nope",
    ]);
    assert_contains(&err, r#"namespaces "nope" not found"#);
    let err = k.apply_stdin_err(&web_deployment().replace("namespace: demo", "namespace: nope"));
    assert_contains(&err, "Error from server (NotFound)");
    assert_contains(&err, r#"namespaces "nope" not found"#);

    // A resource type the server does not have.
    let err = k.kubectl_err(&["get", "widgets"]);
    assert_eq!(
        err.trim(),
        r#"error: the server doesn't have a resource type "widgets""#
    );

    assert_eq!(
        k.store_snapshot(),
        before,
        "a refused request wrote to the store"
    );
}

#[test]
fn oversized_objects_are_refused() {
    let k = start_with_demo();
    let before = k.store_snapshot();
    let cm = |name: &str, bytes: usize| {
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "demo"},
            "data": {"big": "x".repeat(bytes)}
        })
        .to_string()
    };
    let args = ["create", "-f", "-"];

    // A body over kube-apiserver's 3 MiB request limit.
    let out = k.kubectl_stdin(&args, cm("huge", 3 * 1024 * 1024 + 512 * 1024).as_bytes());
    let err = k.expect_err(&args, out);
    assert!(
        err.contains("Request entity too large") || err.to_lowercase().contains("too long"),
        "{err}"
    );
    // Under the request limit, over a ConfigMap's 1 MiB: validation (422), not the store.
    let out = k.kubectl_stdin(&args, cm("big", 1024 * 1024 + 512 * 1024).as_bytes());
    let err = k.expect_err(&args, out);
    // kubectl prints a 422 Invalid Status as "The <Kind> ... is invalid: ...".
    assert_contains(
        &err,
        r#"The ConfigMap "big" is invalid: []: Too long: must have at most 1048576 bytes"#,
    );
    // The same for a Secret written as stringData (1 MiB after conversion to data).
    let secret = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "big", "namespace": "demo"},
        "stringData": {"big": "x".repeat(1024 * 1024 + 16)}
    })
    .to_string();
    let out = k.kubectl_stdin(&args, secret.as_bytes());
    let err = k.expect_err(&args, out);
    assert_contains(&err, r#"Secret "big" is invalid"#);
    assert!(err.to_lowercase().contains("too long"), "{err}");

    assert_eq!(
        k.store_snapshot(),
        before,
        "a refused request wrote to the store"
    );
}

#[test]
fn version_and_api_resources() {
    let k = ApiServer::start();
    let out = k.kubectl_ok(&["version"]);
    assert!(out.lines().any(|l| l == "Client Version: v1.36.4"), "{out}");
    assert!(
        out.lines().any(|l| l.starts_with("Server Version: v1.36.")),
        "{out}"
    );

    let out = k.kubectl_ok(&["api-resources"]);
    let t = table(&out);
    t.assert_header(&["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]);
    for row in [
        ["deployments", "deploy", "apps/v1", "true", "Deployment"],
        ["configmaps", "cm", "v1", "true", "ConfigMap"],
        ["namespaces", "ns", "v1", "false", "Namespace"],
        ["services", "svc", "v1", "true", "Service"],
        ["replicasets", "rs", "apps/v1", "true", "ReplicaSet"],
        ["cronjobs", "cj", "batch/v1", "true", "CronJob"],
        ["nodes", "no", "v1", "false", "Node"],
    ] {
        assert!(
            t.rows.iter().any(|r| r == &row),
            "no row {row:?} in api-resources:\n{out}"
        );
    }
    for name in [
        "pods",
        "endpoints",
        "events",
        "secrets",
        "jobs",
        "endpointslices",
        "leases",
    ] {
        assert!(
            t.names(0).contains(&name),
            "no {name} in api-resources:\n{out}"
        );
    }
}
