use super::*;
use serde_json::json;

/// 2024-06-01T12:00:00Z
const NOW: i64 = 1_717_243_200;

/// RFC 3339 text for `NOW - secs`.
fn ago(secs: i64) -> String {
    let t = NOW - secs;
    let days = t.div_euclid(86_400);
    let rem = t.rem_euclid(86_400);
    // civil_from_days (inverse of days_from_civil).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn strs(values: &[&str]) -> Vec<Value> {
    values.iter().map(|v| json!(v)).collect()
}

fn names(kind: &str) -> Vec<&'static str> {
    columns(kind).iter().map(|c| c.name).collect()
}

fn wide(kind: &str) -> Vec<&'static str> {
    columns(kind)
        .iter()
        .filter(|c| c.priority == 1)
        .map(|c| c.name)
        .collect()
}

// ---------------------------------------------------------------------------
// HumanDuration / age
// ---------------------------------------------------------------------------

#[test]
fn human_duration_boundaries() {
    let cases: &[(i64, &str)] = &[
        (-5, "<invalid>"),
        (-2, "<invalid>"),
        (-1, "0s"),
        (0, "0s"),
        (4, "4s"),
        (59, "59s"),
        (60, "60s"),
        (119, "119s"),
        (120, "2m"),
        (121, "2m1s"),
        (599, "9m59s"),
        (600, "10m"),
        (601, "10m"),
        (12 * 60, "12m"),
        (3 * 3600 - 1, "179m"),
        (3 * 3600, "3h"),
        (3 * 3600 + 5 * 60, "3h5m"),
        (8 * 3600 - 1, "7h59m"),
        (8 * 3600, "8h"),
        (48 * 3600 - 1, "47h"),
        (48 * 3600, "2d"),
        (51 * 3600, "2d3h"),
        (8 * 86_400 - 1, "7d23h"),
        (8 * 86_400, "8d"),
        (95 * 86_400, "95d"),
        (2 * 365 * 86_400 - 1, "729d"),
        (2 * 365 * 86_400, "2y"),
        ((3 * 365 + 45) * 86_400, "3y45d"),
        (8 * 365 * 86_400 - 1, "7y364d"),
        (8 * 365 * 86_400, "8y"),
        (20 * 365 * 86_400, "20y"),
        (i64::MAX, "292471208677y"),
    ];
    for (secs, want) in cases {
        assert_eq!(human_duration(*secs), *want, "secs = {secs}");
    }
}

#[test]
fn age_parses_rfc3339_variants() {
    assert_eq!(age(None, NOW), "<unknown>");
    assert_eq!(age(Some(""), NOW), "<unknown>");
    assert_eq!(age(Some("yesterday"), NOW), "<unknown>");
    assert_eq!(age(Some("0001-01-01T00:00:00Z"), NOW), "<unknown>");
    assert_eq!(age(Some("2024-06-01T11:55:00Z"), NOW), "5m");
    assert_eq!(age(Some(&ago(5)), NOW), "5s");
    // Fractional seconds: 4.5s truncates to 4s.
    assert_eq!(age(Some("2024-06-01T11:59:55.500000Z"), NOW), "4s");
    assert_eq!(age(Some("2024-06-01T11:59:55.123456789123Z"), NOW), "4s");
    // Numeric offsets.
    assert_eq!(age(Some("2024-06-01T13:00:00+02:00"), NOW), "60m");
    assert_eq!(age(Some("2024-06-01T06:00:00-05:00"), NOW), "60m");
    // Future by one second counts as now; further is invalid.
    assert_eq!(age(Some("2024-06-01T12:00:01Z"), NOW), "0s");
    assert_eq!(age(Some("2024-06-01T12:00:10Z"), NOW), "<invalid>");
    // Calendar validation.
    assert_eq!(age(Some("2024-02-29T12:00:00Z"), NOW), "93d");
    assert_eq!(age(Some("2023-02-29T12:00:00Z"), NOW), "<unknown>");
    assert_eq!(age(Some("2024-13-01T00:00:00Z"), NOW), "<unknown>");
    assert_eq!(age(Some("2024-06-01T24:00:00Z"), NOW), "<unknown>");
    assert_eq!(age(Some("2024-06-01T11:59:60Z"), NOW), "<unknown>");
    assert_eq!(age(Some("2024-06-01 11:55:00Z"), NOW), "<unknown>");
    assert_eq!(age(Some("2024-06-01T11:55:00"), NOW), "<unknown>");
    assert_eq!(age(Some("2024-06-01T11:55:00.Z"), NOW), "<unknown>");
    assert_eq!(age(Some("2024-06-01T11:55:00Zjunk"), NOW), "<unknown>");
    assert_eq!(age(Some("2024-06-01T11:55:00+0200"), NOW), "<unknown>");
    assert_eq!(age(Some("２024-06-01T11:55:00Z"), NOW), "<unknown>");
    assert_eq!(age(Some("1970-01-01T00:00:00Z"), 0), "0s");
    assert_eq!(age(Some("1969-12-31T23:59:00Z"), 0), "60s");
    assert_eq!(age(Some(&ago(3 * 86_400 + 4 * 3600)), NOW), "3d4h");
}

// ---------------------------------------------------------------------------
// Pod
// ---------------------------------------------------------------------------

#[test]
fn pod_columns_match_upstream() {
    assert_eq!(
        names("Pod"),
        [
            "Name",
            "Ready",
            "Status",
            "Restarts",
            "Age",
            "IP",
            "Node",
            "Nominated Node",
            "Readiness Gates"
        ]
    );
    assert_eq!(
        wide("Pod"),
        ["IP", "Node", "Nominated Node", "Readiness Gates"]
    );
    let cols = columns("Pod");
    assert_eq!(cols[0].format, "name");
    assert_eq!(cols[3].type_, "string");
}

fn running_container(name: &str, ready: bool, restarts: i64) -> Value {
    json!({
        "name": name, "ready": ready, "restartCount": restarts, "started": true,
        "state": {"running": {"startedAt": ago(3600)}}
    })
}

#[test]
fn pod_running_with_restarts() {
    let mut restarted = running_container("sidecar", true, 3);
    restarted["lastState"] =
        json!({"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": ago(300)}});
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-1", "namespace": "default", "creationTimestamp": ago(2 * 86_400 + 3 * 3600)},
        "spec": {"nodeName": "node-a", "containers": [{"name": "web", "image": "nginx"}, {"name": "sidecar", "image": "envoy"}]},
        "status": {
            "phase": "Running", "podIP": "10.0.0.7", "podIPs": [{"ip": "10.0.0.7"}, {"ip": "fd00::7"}],
            "conditions": [{"type": "Ready", "status": "False"}],
            "containerStatuses": [running_container("web", false, 0), restarted]
        }
    });
    assert_eq!(
        cells("Pod", &pod, NOW),
        strs(&[
            "web-1",
            "1/2",
            "Running",
            "3 (5m ago)",
            "2d3h",
            "10.0.0.7",
            "node-a",
            "<none>",
            "<none>"
        ])
    );
}

#[test]
fn pod_pending_minimal() {
    let pod = json!({
        "metadata": {"name": "p", "creationTimestamp": ago(30)},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        "status": {"phase": "Pending"}
    });
    assert_eq!(
        cells("Pod", &pod, NOW),
        strs(&["p", "0/1", "Pending", "0", "30s", "<none>", "<none>", "<none>", "<none>"])
    );
}

#[test]
fn pod_crash_loop_back_off() {
    let pod = json!({
        "metadata": {"name": "crash", "creationTimestamp": ago(600)},
        "spec": {"containers": [{"name": "app"}]},
        "status": {
            "phase": "Running", "podIP": "10.1.2.3",
            "containerStatuses": [{
                "name": "app", "ready": false, "restartCount": 5,
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}},
                "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": ago(40)}}
            }]
        }
    });
    let row = cells("Pod", &pod, NOW);
    assert_eq!(row[1], json!("0/1"));
    assert_eq!(row[2], json!("CrashLoopBackOff"));
    assert_eq!(row[3], json!("5 (40s ago)"));
    assert_eq!(row[4], json!("10m"));
    assert_eq!(row[5], json!("10.1.2.3"));
}

#[test]
fn pod_restarts_without_last_termination_time() {
    let pod = json!({
        "metadata": {"name": "r"},
        "spec": {"containers": [{"name": "app"}]},
        "status": {"phase": "Running", "containerStatuses": [running_container("app", true, 2)]}
    });
    let row = cells("Pod", &pod, NOW);
    assert_eq!(
        row[..5],
        strs(&["r", "1/1", "Running", "2", "<unknown>"])[..]
    );
}

#[test]
fn pod_error_and_exit_codes() {
    let with_term = |term: Value| {
        json!({
            "metadata": {"name": "e"},
            "spec": {"containers": [{"name": "app"}]},
            "status": {"phase": "Failed", "containerStatuses": [{"name": "app", "state": {"terminated": term}}]}
        })
    };
    let status = |term: Value| cells("Pod", &with_term(term), NOW)[2].clone();
    assert_eq!(
        status(json!({"exitCode": 1, "reason": "Error"})),
        json!("Error")
    );
    assert_eq!(
        status(json!({"exitCode": 137, "reason": "OOMKilled"})),
        json!("OOMKilled")
    );
    assert_eq!(status(json!({"exitCode": 2})), json!("ExitCode:2"));
    assert_eq!(
        status(json!({"exitCode": 0, "signal": 9})),
        json!("Signal:9")
    );
}

#[test]
fn pod_completed() {
    let pod = json!({
        "metadata": {"name": "job-x", "creationTimestamp": ago(3600)},
        "spec": {"nodeName": "n1", "containers": [{"name": "main"}]},
        "status": {
            "phase": "Succeeded", "podIP": "10.0.0.9",
            "containerStatuses": [{"name": "main", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": ago(3000)}}}]
        }
    });
    assert_eq!(
        cells("Pod", &pod, NOW),
        strs(&[
            "job-x",
            "0/1",
            "Completed",
            "0",
            "60m",
            "10.0.0.9",
            "n1",
            "<none>",
            "<none>"
        ])
    );
}

#[test]
fn pod_completed_with_running_containers() {
    let base = |ready_cond: &str| {
        json!({
            "metadata": {"name": "m"},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
            "status": {
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": ready_cond}],
                "containerStatuses": [
                    {"name": "a", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                    {"name": "b", "ready": true, "state": {"running": {}}}
                ]
            }
        })
    };
    assert_eq!(cells("Pod", &base("True"), NOW)[2], json!("Running"));
    assert_eq!(cells("Pod", &base("False"), NOW)[2], json!("NotReady"));
    assert_eq!(cells("Pod", &base("True"), NOW)[1], json!("1/2"));

    // A failed container wins over "Completed".
    let pod = json!({
        "metadata": {"name": "m"},
        "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
        "status": {
            "phase": "Running",
            "containerStatuses": [
                {"name": "a", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                {"name": "b", "state": {"terminated": {"exitCode": 3, "reason": "Error"}}}
            ]
        }
    });
    assert_eq!(cells("Pod", &pod, NOW)[2], json!("Error"));
}

fn init_pod(init_status: Value, n_init: usize) -> Value {
    let specs: Vec<Value> = (0..n_init)
        .map(|i| json!({"name": format!("init-{i}"), "image": "busybox"}))
        .collect();
    json!({
        "metadata": {"name": "i", "creationTimestamp": ago(90)},
        "spec": {"initContainers": specs, "containers": [{"name": "app"}]},
        "status": {
            "phase": "Pending",
            "conditions": [{"type": "Initialized", "status": "False"}],
            "initContainerStatuses": init_status,
            "containerStatuses": [{"name": "app", "state": {"waiting": {"reason": "PodInitializing"}}}]
        }
    })
}

#[test]
fn pod_init_container_states() {
    let status = |statuses: Value, n: usize| cells("Pod", &init_pod(statuses, n), NOW)[2].clone();
    // First init container still running.
    assert_eq!(
        status(json!([{"name": "init-0", "state": {"running": {}}}]), 1),
        json!("Init:0/1")
    );
    // First done, second waiting with PodInitializing.
    assert_eq!(
        status(
            json!([
                {"name": "init-0", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                {"name": "init-1", "state": {"waiting": {"reason": "PodInitializing"}}}
            ]),
            2
        ),
        json!("Init:1/2")
    );
    assert_eq!(
        status(
            json!([{"name": "init-0", "restartCount": 4, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]),
            1
        ),
        json!("Init:CrashLoopBackOff")
    );
    assert_eq!(
        status(
            json!([{"name": "init-0", "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}]),
            1
        ),
        json!("Init:Error")
    );
    assert_eq!(
        status(
            json!([{"name": "init-0", "state": {"terminated": {"exitCode": 2}}}]),
            1
        ),
        json!("Init:ExitCode:2")
    );
    assert_eq!(
        status(
            json!([{"name": "init-0", "state": {"terminated": {"exitCode": 0, "signal": 15, "reason": ""}}}]),
            1
        ),
        json!("PodInitializing")
    );
    assert_eq!(
        status(
            json!([{"name": "init-0", "state": {"terminated": {"exitCode": 1, "signal": 15}}}]),
            1
        ),
        json!("Init:Signal:15")
    );
    // Restarts of init containers count while initializing.
    let row = cells(
        "Pod",
        &init_pod(
            json!([{"name": "init-0", "restartCount": 4,
                "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(125)}},
                "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]),
            1,
        ),
        NOW,
    );
    assert_eq!(
        row[..5],
        strs(&["i", "0/1", "Init:CrashLoopBackOff", "4 (2m5s ago)", "90s"])[..]
    );
}

#[test]
fn pod_sidecar_init_container_counts_as_container() {
    let pod = json!({
        "metadata": {"name": "s"},
        "spec": {
            "initContainers": [{"name": "proxy", "restartPolicy": "Always"}],
            "containers": [{"name": "app"}]
        },
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}],
            "initContainerStatuses": [{"name": "proxy", "ready": true, "started": true, "restartCount": 1,
                "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(7200)}},
                "state": {"running": {}}}],
            "containerStatuses": [running_container("app", true, 2)]
        }
    });
    let row = cells("Pod", &pod, NOW);
    assert_eq!(row[1], json!("2/2"));
    assert_eq!(row[2], json!("Running"));
    assert_eq!(row[3], json!("3 (120m ago)"));
}

#[test]
fn pod_terminating_and_node_lost() {
    let mut pod = json!({
        "metadata": {"name": "t", "deletionTimestamp": ago(5)},
        "spec": {"containers": [{"name": "app"}]},
        "status": {"phase": "Running", "containerStatuses": [running_container("app", true, 0)]}
    });
    assert_eq!(cells("Pod", &pod, NOW)[2], json!("Terminating"));
    pod["status"]["reason"] = json!("NodeLost");
    assert_eq!(cells("Pod", &pod, NOW)[2], json!("Unknown"));
    pod["status"]["reason"] = json!("");
    pod["status"]["phase"] = json!("Succeeded");
    pod["status"]["containerStatuses"] =
        json!([{"name": "app", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]);
    assert_eq!(cells("Pod", &pod, NOW)[2], json!("Completed"));
    pod["status"]["phase"] = json!("Failed");
    pod["status"]["reason"] = json!("Evicted");
    pod["status"]["containerStatuses"] = json!([]);
    assert_eq!(cells("Pod", &pod, NOW)[2], json!("Evicted"));
}

#[test]
fn pod_scheduling_gated_nominated_and_readiness_gates() {
    let pod = json!({
        "metadata": {"name": "g"},
        "spec": {
            "containers": [{"name": "app"}],
            "readinessGates": [{"conditionType": "example.com/a"}, {"conditionType": "example.com/b"}]
        },
        "status": {
            "phase": "Pending",
            "nominatedNodeName": "node-b",
            "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"},
                {"type": "example.com/a", "status": "True"},
                {"type": "example.com/b", "status": "False"}
            ]
        }
    });
    assert_eq!(
        cells("Pod", &pod, NOW),
        strs(&[
            "g",
            "0/1",
            "SchedulingGated",
            "0",
            "<unknown>",
            "<none>",
            "<none>",
            "node-b",
            "1/2"
        ])
    );
}

// ---------------------------------------------------------------------------
// Node
// ---------------------------------------------------------------------------

#[test]
fn node_ready_with_roles_and_wide_fields() {
    assert_eq!(
        names("Node"),
        [
            "Name",
            "Status",
            "Roles",
            "Age",
            "Version",
            "Internal-IP",
            "External-IP",
            "OS-Image",
            "Kernel-Version",
            "Container-Runtime"
        ]
    );
    let node = json!({
        "kind": "Node",
        "metadata": {"name": "cp-1", "creationTimestamp": ago(95 * 86_400),
            "labels": {"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/etcd": "true", "kubernetes.io/role": "master", "node-role.kubernetes.io/": "x"}},
        "spec": {"unschedulable": true},
        "status": {
            "conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}],
            "addresses": [{"type": "Hostname", "address": "cp-1"}, {"type": "InternalIP", "address": "192.168.1.10"}],
            "nodeInfo": {"kubeletVersion": "v1.36.0", "osImage": "Debian GNU/Linux 12 (bookworm)", "kernelVersion": "6.1.0-18-amd64", "containerRuntimeVersion": "containerd://1.7.13"}
        }
    });
    assert_eq!(
        cells("Node", &node, NOW),
        strs(&[
            "cp-1",
            "Ready,SchedulingDisabled",
            "control-plane,etcd,master",
            "95d",
            "v1.36.0",
            "192.168.1.10",
            "<none>",
            "Debian GNU/Linux 12 (bookworm)",
            "6.1.0-18-amd64",
            "containerd://1.7.13"
        ])
    );
}

#[test]
fn node_not_ready_and_unknown() {
    let node = json!({
        "metadata": {"name": "w-1", "creationTimestamp": ago(3600)},
        "status": {"conditions": [{"type": "Ready", "status": "Unknown"}],
            "addresses": [{"type": "ExternalIP", "address": "203.0.113.5"}]}
    });
    assert_eq!(
        cells("Node", &node, NOW),
        strs(&[
            "w-1",
            "NotReady",
            "<none>",
            "60m",
            "",
            "<none>",
            "203.0.113.5",
            "<unknown>",
            "<unknown>",
            "<unknown>"
        ])
    );
    let bare = json!({"metadata": {"name": "w-2"}});
    assert_eq!(cells("Node", &bare, NOW)[1], json!("Unknown"));
}

// ---------------------------------------------------------------------------
// Namespace, ConfigMap, Secret, Lease
// ---------------------------------------------------------------------------

#[test]
fn namespace_configmap_secret_lease() {
    assert_eq!(names("Namespace"), ["Name", "Status", "Age"]);
    let ns = json!({"metadata": {"name": "kube-system", "creationTimestamp": ago(400 * 86_400)}, "status": {"phase": "Active"}});
    assert_eq!(
        cells("Namespace", &ns, NOW),
        strs(&["kube-system", "Active", "400d"])
    );
    let ns = json!({"metadata": {"name": "old", "creationTimestamp": ago(60), "deletionTimestamp": ago(1)}, "status": {"phase": "Terminating"}});
    assert_eq!(
        cells("Namespace", &ns, NOW),
        strs(&["old", "Terminating", "60s"])
    );

    assert_eq!(names("ConfigMap"), ["Name", "Data", "Age"]);
    let cm = json!({"metadata": {"name": "kube-root-ca.crt", "creationTimestamp": ago(7200)},
        "data": {"ca.crt": "..."}, "binaryData": {"a": "AA==", "b": "AA=="}});
    assert_eq!(
        cells("ConfigMap", &cm, NOW),
        vec![json!("kube-root-ca.crt"), json!(3), json!("120m")]
    );

    assert_eq!(names("Secret"), ["Name", "Type", "Data", "Age"]);
    let secret = json!({"metadata": {"name": "tls", "creationTimestamp": ago(86_400)},
        "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}});
    assert_eq!(
        cells("Secret", &secret, NOW),
        vec![
            json!("tls"),
            json!("kubernetes.io/tls"),
            json!(2),
            json!("24h")
        ]
    );
    let secret = json!({"metadata": {"name": "empty", "creationTimestamp": ago(10)}});
    assert_eq!(
        cells("Secret", &secret, NOW),
        vec![json!("empty"), json!("Opaque"), json!(0), json!("10s")]
    );

    assert_eq!(names("Lease"), ["Name", "Holder", "Age"]);
    let lease = json!({"metadata": {"name": "kube-scheduler", "creationTimestamp": ago(3 * 86_400)},
        "spec": {"holderIdentity": "cp-1_1234", "leaseDurationSeconds": 15}});
    assert_eq!(
        cells("Lease", &lease, NOW),
        strs(&["kube-scheduler", "cp-1_1234", "3d"])
    );
    let lease = json!({"metadata": {"name": "free"}, "spec": {}});
    assert_eq!(
        cells("Lease", &lease, NOW),
        strs(&["free", "", "<unknown>"])
    );
}

// ---------------------------------------------------------------------------
// PriorityClass
// ---------------------------------------------------------------------------

#[test]
fn priority_class() {
    // printPriorityClass: every column is shown by default (PreemptionPolicy has no wide
    // priority upstream), the value is an integer and globalDefault a boolean.
    assert_eq!(
        names("PriorityClass"),
        ["Name", "Value", "Global-Default", "Age", "PreemptionPolicy"]
    );
    assert!(wide("PriorityClass").is_empty());
    let types: Vec<&str> = columns("PriorityClass").iter().map(|c| c.type_).collect();
    assert_eq!(types, ["string", "integer", "boolean", "string", "string"]);
    let pc = json!({"metadata": {"name": "system-node-critical", "creationTimestamp": ago(90)},
        "value": 2_000_001_000, "preemptionPolicy": "PreemptLowerPriority",
        "description": "Used for system critical pods that must not be moved from their current node."});
    assert_eq!(
        cells("PriorityClass", &pc, NOW),
        vec![
            json!("system-node-critical"),
            json!(2_000_001_000),
            json!(false),
            json!("90s"),
            json!("PreemptLowerPriority")
        ]
    );
    let pc = json!({"metadata": {"name": "everyone", "creationTimestamp": ago(600)},
        "value": -3, "globalDefault": true, "preemptionPolicy": "Never"});
    assert_eq!(
        cells("PriorityClass", &pc, NOW),
        vec![
            json!("everyone"),
            json!(-3),
            json!(true),
            json!("10m"),
            json!("Never")
        ]
    );
    // No policy (never after defaulting): an empty cell; no value: 0.
    let pc = json!({"metadata": {"name": "bare"}});
    assert_eq!(
        cells("PriorityClass", &pc, NOW),
        vec![
            json!("bare"),
            json!(0),
            json!(false),
            json!("<unknown>"),
            json!("")
        ]
    );
}

// ---------------------------------------------------------------------------
// Service
// ---------------------------------------------------------------------------

#[test]
fn service_cluster_ip_and_node_port() {
    assert_eq!(
        names("Service"),
        [
            "Name",
            "Type",
            "Cluster-IP",
            "External-IP",
            "Port(s)",
            "Age",
            "Selector"
        ]
    );
    assert_eq!(wide("Service"), ["Selector"]);
    let svc = json!({
        "metadata": {"name": "web", "creationTimestamp": ago(5 * 60)},
        "spec": {"type": "NodePort", "clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20"],
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080},
                      {"name": "https", "port": 443, "nodePort": 30443, "protocol": "TCP"}],
            "selector": {"app": "web", "app.kubernetes.io/part-of": "shop"}}
    });
    assert_eq!(
        cells("Service", &svc, NOW),
        strs(&[
            "web",
            "NodePort",
            "10.96.0.20",
            "<none>",
            "80/TCP,443:30443/TCP",
            "5m",
            "app.kubernetes.io/part-of=shop,app=web"
        ])
    );
    let svc = json!({
        "metadata": {"name": "kubernetes", "creationTimestamp": ago(100)},
        "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.1", "externalIPs": ["1.2.3.4", "5.6.7.8"],
            "ports": [{"port": 443, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]}
    });
    assert_eq!(
        cells("Service", &svc, NOW),
        strs(&[
            "kubernetes",
            "ClusterIP",
            "10.96.0.1",
            "1.2.3.4,5.6.7.8",
            "443/TCP,53/UDP",
            "100s",
            "<none>"
        ])
    );
}

#[test]
fn service_load_balancer_external_name_headless() {
    let mut lb = json!({
        "metadata": {"name": "lb", "creationTimestamp": ago(60)},
        "spec": {"type": "LoadBalancer", "clusterIPs": ["10.96.5.5"], "ports": [{"port": 80, "nodePort": 31000, "protocol": "TCP"}],
            "selector": {"app": "lb"}},
        "status": {"loadBalancer": {}}
    });
    assert_eq!(
        cells("Service", &lb, NOW),
        strs(&[
            "lb",
            "LoadBalancer",
            "10.96.5.5",
            "<pending>",
            "80:31000/TCP",
            "60s",
            "app=lb"
        ])
    );
    lb["status"]["loadBalancer"]["ingress"] = json!([{"ip": "198.51.100.9"}, {"hostname": "a-very-long-hostname.elb.example.com"}, {"ip": "198.51.100.1"}, {}]);
    assert_eq!(
        cells("Service", &lb, NOW)[3],
        json!("198.51.100.1,198.51.100.9,a-very-long-hostname.elb.example.com")
    );
    lb["spec"]["externalIPs"] = json!(["192.0.2.1"]);
    assert_eq!(
        cells("Service", &lb, NOW)[3],
        json!("198.51.100.1,198.51.100.9,a-very-long-hostname.elb.example.com,192.0.2.1")
    );

    let ext = json!({"metadata": {"name": "db"}, "spec": {"type": "ExternalName", "externalName": "db.example.com"}});
    assert_eq!(
        cells("Service", &ext, NOW),
        strs(&[
            "db",
            "ExternalName",
            "<none>",
            "db.example.com",
            "<none>",
            "<unknown>",
            "<none>"
        ])
    );

    let headless = json!({"metadata": {"name": "h"}, "spec": {"clusterIP": "None", "clusterIPs": ["None"], "ports": [{"port": 5432}]}});
    assert_eq!(
        cells("Service", &headless, NOW),
        strs(&[
            "h",
            "ClusterIP",
            "None",
            "<none>",
            "5432/TCP",
            "<unknown>",
            "<none>"
        ])
    );

    let odd = json!({"metadata": {"name": "o"}, "spec": {"type": "Weird"}});
    assert_eq!(cells("Service", &odd, NOW)[3], json!("<unknown>"));
}

// ---------------------------------------------------------------------------
// Endpoints, EndpointSlice
// ---------------------------------------------------------------------------

#[test]
fn endpoints_formatting_and_truncation() {
    assert_eq!(names("Endpoints"), ["Name", "Endpoints", "Age"]);
    let ep = json!({
        "metadata": {"name": "web", "creationTimestamp": ago(30)},
        "subsets": [{"addresses": [{"ip": "127.1.0.5"}, {"ip": "127.1.0.6"}], "ports": [{"port": 8080}]}]
    });
    assert_eq!(
        cells("Endpoints", &ep, NOW),
        strs(&["web", "127.1.0.5:8080,127.1.0.6:8080", "30s"])
    );

    let ep = json!({
        "metadata": {"name": "many"},
        "subsets": [
            {"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "ports": [{"name": "a", "port": 80}, {"name": "b", "port": 443}]},
            {"addresses": [{"ip": "10.0.0.3"}], "ports": [{"port": 8080}]}
        ]
    });
    assert_eq!(
        cells("Endpoints", &ep, NOW)[1],
        json!("10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 2 more...")
    );

    // Exactly three: no suffix.
    let ep = json!({"metadata": {"name": "three"}, "subsets": [{"addresses": [{"ip": "a"}, {"ip": "b"}, {"ip": "c"}], "ports": [{"port": 1}]}]});
    assert_eq!(cells("Endpoints", &ep, NOW)[1], json!("a:1,b:1,c:1"));

    // Headless without ports, and IPv6.
    let ep = json!({"metadata": {"name": "hl"}, "subsets": [{"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}, {"ip": "10.0.0.3"}, {"ip": "10.0.0.4"}]}]});
    assert_eq!(
        cells("Endpoints", &ep, NOW)[1],
        json!("10.0.0.1,10.0.0.2,10.0.0.3 + 1 more...")
    );
    let ep = json!({"metadata": {"name": "v6"}, "subsets": [{"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 443}]}]});
    assert_eq!(cells("Endpoints", &ep, NOW)[1], json!("[fd00::1]:443"));

    let ep = json!({"metadata": {"name": "none"}});
    assert_eq!(cells("Endpoints", &ep, NOW)[1], json!("<none>"));
    // Subsets with only notReadyAddresses list nothing.
    let ep = json!({"metadata": {"name": "nr"}, "subsets": [{"notReadyAddresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80}]}]});
    assert_eq!(cells("Endpoints", &ep, NOW)[1], json!(""));
}

#[test]
fn endpoint_slice_formatting() {
    assert_eq!(
        names("EndpointSlice"),
        ["Name", "AddressType", "Ports", "Endpoints", "Age"]
    );
    let slice = json!({
        "metadata": {"name": "web-abc12", "creationTimestamp": ago(45)},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}, {"name": "metrics"}, {}, {"port": 9}],
        "endpoints": [
            {"addresses": ["10.0.0.1"], "conditions": {"ready": true}},
            {"addresses": ["10.0.0.2", "10.0.0.3"]},
            {"addresses": ["10.0.0.4"]}
        ]
    });
    assert_eq!(
        cells("EndpointSlice", &slice, NOW),
        strs(&[
            "web-abc12",
            "IPv4",
            "8080,metrics,* + 1 more...",
            "10.0.0.1,10.0.0.2,10.0.0.3 + 1 more...",
            "45s"
        ])
    );
    let empty = json!({"metadata": {"name": "e"}, "addressType": "IPv6"});
    assert_eq!(
        cells("EndpointSlice", &empty, NOW),
        strs(&["e", "IPv6", "<unset>", "<unset>", "<unknown>"])
    );
}

// ---------------------------------------------------------------------------
// Event
// ---------------------------------------------------------------------------

#[test]
fn event_core_v1() {
    assert_eq!(
        names("Event"),
        [
            "Last Seen",
            "Type",
            "Reason",
            "Object",
            "Subobject",
            "Source",
            "Message",
            "First Seen",
            "Count",
            "Name"
        ]
    );
    assert_eq!(
        wide("Event"),
        ["Subobject", "Source", "First Seen", "Count", "Name"]
    );
    assert_eq!(columns("Event")[9].format, "name");
    let ev = json!({
        "kind": "Event",
        "metadata": {"name": "web-1.17d8a", "namespace": "default"},
        "involvedObject": {"kind": "Pod", "name": "web-1", "fieldPath": "spec.containers{web}"},
        "reason": "Pulled", "type": "Normal",
        "message": "  Successfully pulled image \"nginx\"\n",
        "source": {"component": "kubelet", "host": "node-a"},
        "firstTimestamp": ago(600), "lastTimestamp": ago(65), "count": 4
    });
    assert_eq!(
        cells("Event", &ev, NOW),
        vec![
            json!("65s"),
            json!("Normal"),
            json!("Pulled"),
            json!("pod/web-1"),
            json!("spec.containers{web}"),
            json!("kubelet, node-a"),
            json!("Successfully pulled image \"nginx\""),
            json!("10m"),
            json!(4),
            json!("web-1.17d8a"),
        ]
    );
}

#[test]
fn event_new_api_fields_and_series() {
    // A core/v1 event recorded through the new API: no timestamps but eventTime, no count.
    let ev = json!({
        "metadata": {"name": "n1"},
        "involvedObject": {"kind": "Node", "name": ""},
        "reason": "RegisteredNode", "type": "Normal", "message": "registered",
        "eventTime": "2024-06-01T11:58:00.123456Z",
        "reportingComponent": "node-controller", "reportingController": "node-controller", "reportingInstance": ""
    });
    assert_eq!(
        cells("Event", &ev, NOW),
        vec![
            json!("119s"),
            json!("Normal"),
            json!("RegisteredNode"),
            json!("node"),
            json!(""),
            json!("node-controller"),
            json!("registered"),
            json!("119s"),
            json!(1),
            json!("n1"),
        ]
    );

    // events.k8s.io/v1 field names with a series.
    let ev = json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": "d.1"},
        "regarding": {"kind": "Deployment", "name": "web"},
        "reason": "ScalingReplicaSet", "type": "Normal", "note": "Scaled up",
        "eventTime": ago(7200),
        "series": {"count": 7, "lastObservedTime": ago(30)},
        "reportingController": "deployment-controller", "reportingInstance": "kcm-1"
    });
    assert_eq!(
        cells("Event", &ev, NOW),
        vec![
            json!("30s"),
            json!("Normal"),
            json!("ScalingReplicaSet"),
            json!("deployment/web"),
            json!(""),
            json!("deployment-controller, kcm-1"),
            json!("Scaled up"),
            json!("120m"),
            json!(7),
            json!("d.1"),
        ]
    );

    let bare = json!({"metadata": {"name": "b"}});
    assert_eq!(
        cells("Event", &bare, NOW),
        vec![
            json!("<unknown>"),
            json!(""),
            json!(""),
            json!(""),
            json!(""),
            json!(""),
            json!(""),
            json!("<unknown>"),
            json!(1),
            json!("b"),
        ]
    );
}

// ---------------------------------------------------------------------------
// Deployment, ReplicaSet
// ---------------------------------------------------------------------------

#[test]
fn deployment_cells_and_selector() {
    assert_eq!(
        names("Deployment"),
        [
            "Name",
            "Ready",
            "Up-to-date",
            "Available",
            "Age",
            "Containers",
            "Images",
            "Selector"
        ]
    );
    let d = json!({
        "metadata": {"name": "web", "creationTimestamp": ago(12 * 60)},
        "spec": {"replicas": 3,
            "selector": {"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["b", "a"]}]},
            "template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.27"}, {"name": "log", "image": "fluent-bit"}]}}},
        "status": {"replicas": 3, "updatedReplicas": 3, "readyReplicas": 2, "availableReplicas": 2}
    });
    assert_eq!(
        cells("Deployment", &d, NOW),
        vec![
            json!("web"),
            json!("2/3"),
            json!(3),
            json!(2),
            json!("12m"),
            json!("web,log"),
            json!("nginx:1.27,fluent-bit"),
            json!("app=web,tier in (a,b)"),
        ]
    );
    // Defaults: replicas 1, empty selector prints "" (selector.String()), invalid "<invalid>".
    let d = json!({"metadata": {"name": "d"}, "spec": {"template": {"spec": {"containers": []}}}});
    assert_eq!(
        cells("Deployment", &d, NOW),
        vec![
            json!("d"),
            json!("0/1"),
            json!(0),
            json!(0),
            json!("<unknown>"),
            json!(""),
            json!(""),
            json!("")
        ]
    );
    let d = json!({"metadata": {"name": "d"}, "spec": {"selector": {"matchExpressions": [{"key": "x", "operator": "Bogus"}]}}});
    assert_eq!(cells("Deployment", &d, NOW)[7], json!("<invalid>"));
}

#[test]
fn replica_set_cells() {
    assert_eq!(
        names("ReplicaSet"),
        [
            "Name",
            "Desired",
            "Current",
            "Ready",
            "Age",
            "Containers",
            "Images",
            "Selector"
        ]
    );
    assert_eq!(columns("ReplicaSet")[1].type_, "integer");
    let rs = json!({
        "metadata": {"name": "web-7d9f8c6b5", "creationTimestamp": ago(3 * 3600 + 5 * 60)},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web", "pod-template-hash": "7d9f8c6b5"}},
            "template": {"spec": {"containers": [{"name": "web", "image": "nginx"}]}}},
        "status": {"replicas": 3, "readyReplicas": 1}
    });
    assert_eq!(
        cells("ReplicaSet", &rs, NOW),
        vec![
            json!("web-7d9f8c6b5"),
            json!(3),
            json!(3),
            json!(1),
            json!("3h5m"),
            json!("web"),
            json!("nginx"),
            json!("app=web,pod-template-hash=7d9f8c6b5"),
        ]
    );
    let rs = json!({"metadata": {"name": "zero"}, "spec": {"replicas": 0}});
    assert_eq!(
        cells("ReplicaSet", &rs, NOW),
        vec![
            json!("zero"),
            json!(0),
            json!(0),
            json!(0),
            json!("<unknown>"),
            json!(""),
            json!(""),
            json!("<none>")
        ]
    );
}

#[test]
fn label_selector_formatting() {
    let fmt = |v: Value| format_label_selector(Some(&v));
    assert_eq!(format_label_selector(None), "<none>");
    assert_eq!(fmt(json!({})), "<none>");
    assert_eq!(
        fmt(json!({"matchLabels": {}, "matchExpressions": []})),
        "<none>"
    );
    assert_eq!(fmt(json!({"matchLabels": {"app": "web"}})), "app=web");
    assert_eq!(
        fmt(json!({"matchExpressions": [
            {"key": "zone", "operator": "NotIn", "values": ["us-east-1b", "us-east-1a"]},
            {"key": "gpu", "operator": "Exists"},
            {"key": "canary", "operator": "DoesNotExist", "values": []},
            {"key": "env", "operator": "In", "values": ["prod"]}
        ], "matchLabels": {"app": "web"}})),
        "app=web,!canary,env in (prod),gpu,zone notin (us-east-1a,us-east-1b)"
    );
    assert_eq!(
        fmt(json!({"matchLabels": {"example.com/app": "x"}})),
        "example.com/app=x"
    );
    // Invalid selectors.
    assert_eq!(
        fmt(json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]})),
        "<error>"
    );
    assert_eq!(
        fmt(json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]})),
        "<error>"
    );
    assert_eq!(
        fmt(json!({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]})),
        "<error>"
    );
    assert_eq!(fmt(json!({"matchLabels": {"bad key": "x"}})), "<error>");
    assert_eq!(fmt(json!({"matchLabels": {"k": "bad value!"}})), "<error>");
    assert_eq!(
        fmt(json!({"matchLabels": {"Example.com/k": "v"}})),
        "<error>"
    );
    assert_eq!(fmt(json!({"matchLabels": {"a/b/c": "v"}})), "<error>");
    assert_eq!(fmt(json!({"matchLabels": {"k": 5}})), "<error>");
    assert_eq!(fmt(json!("app=web")), "<error>");
    assert_eq!(fmt(json!({"matchLabels": {"k": ""}})), "k=");
}

// ---------------------------------------------------------------------------
// Job, CronJob
// ---------------------------------------------------------------------------

fn job(conditions: Value, extra_spec: Value) -> Value {
    let mut j = json!({
        "metadata": {"name": "pi", "creationTimestamp": ago(600)},
        "spec": {
            "completions": 1, "parallelism": 1,
            "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "0b3c6d0e-5f0a-4c1e-9a4e-3b7c0d1e2f3a"}},
            "template": {"spec": {"containers": [{"name": "pi", "image": "perl:5.34"}]}}
        },
        "status": {"startTime": ago(590), "conditions": conditions}
    });
    if let (Some(spec), Some(extra)) = (j["spec"].as_object_mut(), extra_spec.as_object()) {
        for (k, v) in extra {
            spec.insert(k.clone(), v.clone());
        }
    }
    j
}

#[test]
fn job_status_completions_duration() {
    assert_eq!(
        names("Job"),
        [
            "Name",
            "Status",
            "Completions",
            "Duration",
            "Age",
            "Containers",
            "Images",
            "Selector"
        ]
    );
    let mut done = job(
        json!([{"type": "SuccessCriteriaMet", "status": "True"}, {"type": "Complete", "status": "True"}]),
        json!({}),
    );
    done["status"]["succeeded"] = json!(1);
    done["status"]["completionTime"] = json!(ago(520));
    assert_eq!(
        cells("Job", &done, NOW),
        strs(&[
            "pi",
            "Complete",
            "1/1",
            "70s",
            "10m",
            "pi",
            "perl:5.34",
            "batch.kubernetes.io/controller-uid=0b3c6d0e-5f0a-4c1e-9a4e-3b7c0d1e2f3a"
        ])
    );

    let running = job(json!([]), json!({"completions": 5, "parallelism": 2}));
    let row = cells("Job", &running, NOW);
    assert_eq!(row[1..4], strs(&["Running", "0/5", "9m50s"])[..]);

    let status = |conds: Value| cells("Job", &job(conds, json!({})), NOW)[1].clone();
    assert_eq!(
        status(json!([{"type": "Failed", "status": "True"}])),
        json!("Failed")
    );
    assert_eq!(
        status(json!([{"type": "Suspended", "status": "True"}])),
        json!("Suspended")
    );
    assert_eq!(
        status(json!([{"type": "Suspended", "status": "False"}])),
        json!("Running")
    );
    assert_eq!(
        status(json!([{"type": "FailureTarget", "status": "True"}])),
        json!("FailureTarget")
    );
    assert_eq!(
        status(json!([{"type": "SuccessCriteriaMet", "status": "True"}])),
        json!("SuccessCriteriaMet")
    );
    // The first condition of a type decides.
    assert_eq!(
        status(
            json!([{"type": "Complete", "status": "False"}, {"type": "Complete", "status": "True"}])
        ),
        json!("Running")
    );
    let mut deleting = job(json!([{"type": "Suspended", "status": "True"}]), json!({}));
    deleting["metadata"]["deletionTimestamp"] = json!(ago(1));
    assert_eq!(cells("Job", &deleting, NOW)[1], json!("Terminating"));

    // Work-queue job: no completions.
    let mut wq = job(json!([]), json!({"parallelism": 3}));
    if let Some(spec) = wq["spec"].as_object_mut() {
        spec.remove("completions");
    }
    if let Some(status) = wq["status"].as_object_mut() {
        status.remove("startTime");
    }
    wq["status"]["succeeded"] = json!(2);
    assert_eq!(cells("Job", &wq, NOW)[2..4], strs(&["2/1 of 3", ""])[..]);
    wq["spec"]["parallelism"] = json!(1);
    assert_eq!(cells("Job", &wq, NOW)[2], json!("2/1"));
}

#[test]
fn cron_job_cells() {
    assert_eq!(
        names("CronJob"),
        [
            "Name",
            "Schedule",
            "Timezone",
            "Suspend",
            "Active",
            "Last Schedule",
            "Age",
            "Containers",
            "Images",
            "Selector"
        ]
    );
    assert_eq!(wide("CronJob"), ["Containers", "Images", "Selector"]);
    let cj = json!({
        "metadata": {"name": "backup", "creationTimestamp": ago(30 * 86_400)},
        "spec": {"schedule": "*/5 * * * *", "timeZone": "Europe/Paris", "suspend": false,
            "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "restic"}]}}}}},
        "status": {"active": [{"kind": "Job", "name": "backup-1"}], "lastScheduleTime": ago(150)}
    });
    assert_eq!(
        cells("CronJob", &cj, NOW),
        vec![
            json!("backup"),
            json!("*/5 * * * *"),
            json!("Europe/Paris"),
            json!("False"),
            json!(1),
            json!("2m30s"),
            json!("30d"),
            json!("b"),
            json!("restic"),
            json!("<none>"),
        ]
    );
    let cj = json!({"metadata": {"name": "idle"}, "spec": {"schedule": "@daily", "suspend": true}});
    assert_eq!(
        cells("CronJob", &cj, NOW),
        vec![
            json!("idle"),
            json!("@daily"),
            json!("<none>"),
            json!("True"),
            json!(0),
            json!("<none>"),
            json!("<unknown>"),
            json!(""),
            json!(""),
            json!("<none>"),
        ]
    );
    let cj = json!({"metadata": {"name": "u"}, "spec": {}});
    assert_eq!(cells("CronJob", &cj, NOW)[3], json!("<unset>"));
}

// ---------------------------------------------------------------------------
// Fallback
// ---------------------------------------------------------------------------

#[test]
fn fallback_for_unknown_kinds() {
    let cols = columns("Widget");
    assert_eq!(cols.len(), 2);
    assert_eq!((cols[0].name, cols[0].format), ("Name", "name"));
    assert_eq!(
        (cols[1].name, cols[1].type_, cols[1].priority),
        ("Age", "date", 0)
    );
    let w = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1", "creationTimestamp": ago(7 * 86_400)}});
    assert_eq!(cells("Widget", &w, NOW), strs(&["w1", "7d"]));
    let w = json!({"metadata": {"name": "w2"}});
    assert_eq!(cells("Widget", &w, NOW), vec![json!("w2"), Value::Null]);
    let w = json!({"metadata": {"name": "w3", "creationTimestamp": "not-a-time"}});
    assert_eq!(cells("Widget", &w, NOW), strs(&["w3", "<invalid>"]));
    let w = json!({"metadata": {"name": "w4", "creationTimestamp": "0001-01-01T00:00:00Z"}});
    assert_eq!(cells("Widget", &w, NOW), strs(&["w4", "<unknown>"]));
    // Kinds are case-sensitive, as in JSON.
    assert_eq!(columns("pod").len(), 2);
}

// ---------------------------------------------------------------------------
// Shape and robustness
// ---------------------------------------------------------------------------

const KINDS: &[&str] = &[
    "Pod",
    "Node",
    "Namespace",
    "Service",
    "Endpoints",
    "EndpointSlice",
    "Event",
    "ConfigMap",
    "Secret",
    "Deployment",
    "ReplicaSet",
    "Job",
    "CronJob",
    "Lease",
    "PriorityClass",
    "SomethingElse",
];

#[test]
fn every_column_set_is_well_formed() {
    for kind in KINDS {
        let cols = columns(kind);
        assert!(!cols.is_empty(), "{kind}");
        assert_eq!(
            cols.iter().filter(|c| c.format == "name").count(),
            1,
            "{kind}"
        );
        for c in cols {
            assert!(matches!(c.priority, 0 | 1), "{kind}/{}", c.name);
            assert!(
                matches!(c.type_, "string" | "integer" | "boolean" | "date"),
                "{kind}/{}",
                c.name
            );
            assert!(!c.description.is_empty(), "{kind}/{}", c.name);
        }
        // Every non-Event table starts with its Name column.
        if *kind != "Event" {
            assert_eq!(cols[0].name, "Name", "{kind}");
        }
    }
}

#[test]
fn malformed_objects_never_panic() {
    let odd: Vec<Value> = vec![
        Value::Null,
        json!(true),
        json!(42),
        json!(-1.5),
        json!("pod"),
        json!([1, 2, 3]),
        json!({}),
        json!({"metadata": null, "spec": null, "status": null}),
        json!({"metadata": "x", "spec": [], "status": 7}),
        json!({"metadata": {"name": 5, "creationTimestamp": 12, "deletionTimestamp": {}, "labels": [1]}}),
        json!({"metadata": {"name": "n", "creationTimestamp": "2024-99-99T99:99:99Z", "labels": {"node-role.kubernetes.io/x": 1, "kubernetes.io/role": 2}}}),
        json!({
            "metadata": {"name": "n", "creationTimestamp": "9999-12-31T23:59:59.999999999Z"},
            "spec": {
                "containers": "nope", "initContainers": [null, 1, {"name": 2, "restartPolicy": true}],
                "readinessGates": [null, {"conditionType": 3}], "ports": [null, "x", {"port": "80", "nodePort": -5, "protocol": 6}],
                "selector": {"matchLabels": "x", "matchExpressions": {}}, "replicas": "3", "completions": -1, "parallelism": 1e300,
                "type": 7, "clusterIPs": [null], "externalIPs": "1.2.3.4", "unschedulable": "yes", "holderIdentity": [],
                "schedule": {}, "timeZone": 1, "suspend": "true",
                "template": {"spec": {"containers": [null, {"name": [], "image": {}}]}},
                "jobTemplate": {"spec": {"selector": [], "template": null}}
            },
            "status": {
                "phase": 3, "reason": [], "podIPs": [null, 7], "conditions": [null, "x", {"type": 1}],
                "initContainerStatuses": [null, 1, {"name": "a", "restartCount": "9", "state": {"terminated": {"exitCode": "x", "signal": 1e99}}}],
                "containerStatuses": [{"restartCount": 9_223_372_036_854_775_807u64, "lastState": {"terminated": {"finishedAt": 5}}, "state": {"waiting": "x"}}, {"restartCount": 1, "state": null}],
                "addresses": [null, {"type": "InternalIP", "address": 4}], "nodeInfo": [],
                "loadBalancer": {"ingress": [null, {"ip": 1}]}, "active": {}, "lastScheduleTime": 5,
                "startTime": "bad", "completionTime": 5, "succeeded": 1.5, "readyReplicas": 1e20
            },
            "subsets": [null, {"addresses": "x", "ports": [null]}, {"addresses": [null, {"ip": 1}], "ports": [{"port": null}]}],
            "endpoints": [null, {"addresses": [null, 1]}], "ports": [null, {"port": 1.5, "name": 2}], "addressType": [],
            "involvedObject": [], "regarding": {"kind": 1}, "series": [], "count": "4", "source": "kubelet",
            "firstTimestamp": "", "lastTimestamp": null, "eventTime": "0001-01-01T00:00:00Z", "message": 5, "note": "n",
            "data": [], "binaryData": "x", "type": {}
        }),
        json!({"spec": {"containers": [{"name": "a"}]}, "status": {"containerStatuses": [{"name": "a", "state": {"terminated": {"exitCode": 1e300}}}]}}),
        json!({"series": {"count": "x", "lastObservedTime": []}, "involvedObject": {"kind": "Pod", "name": 1}}),
    ];
    for kind in KINDS {
        let width = columns(kind).len();
        for (i, obj) in odd.iter().enumerate() {
            for now in [NOW, 0, i64::MIN, i64::MAX] {
                let row = cells(kind, obj, now);
                assert_eq!(row.len(), width, "{kind} #{i}");
                assert!(
                    row.iter()
                        .all(|c| c.is_string() || c.is_i64() || c.is_boolean() || c.is_null()),
                    "{kind} #{i}: {row:?}"
                );
            }
        }
    }
    for text in [
        "",
        "Z",
        "2024",
        "2024-06-01T12:00:00+99:99",
        "2024-06-01T12:00:00.",
        "\u{0}",
        "2024-06-01T12:00:00.1234567890123456789012345Z",
    ] {
        let _ = age(Some(text), NOW);
    }
}

#[test]
fn realistic_rows_match_column_count() {
    let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}, "status": {"phase": "Running"}});
    for kind in KINDS {
        assert_eq!(cells(kind, &pod, NOW).len(), columns(kind).len(), "{kind}");
    }
}
