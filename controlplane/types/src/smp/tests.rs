//! Tests for the strategic merge patch module.
//!
//! The kubectl patches below were captured from kubectl 1.32 re-applies; the
//! generic vectors (`mergingList`, `mergingIntList`, ...) restate cases of
//! upstream's `patch_test.go` as facts about the expected results.

use super::*;
use serde_json::json;

fn ok(kind: &str, live: Value, patch: Value) -> Value {
    match apply(kind, &live, &patch) {
        Ok(v) => v,
        Err(e) => panic!("unexpected error: {e} ({e:?})"),
    }
}

fn err(kind: &str, live: Value, patch: Value) -> SmpError {
    match apply(kind, &live, &patch) {
        Ok(v) => panic!("expected an error, got {v}"),
        Err(e) => e,
    }
}

/// Shape used by upstream's generic test vectors.
const TEST_ITEM: &[Field] = &[
    merge_list("mergingList", "name", Ty::Opaque),
    merge_list("mergeItemPtr", "name", Ty::Opaque),
    primitive_merge_list("mergingIntList"),
];

fn generic(live: Value, patch: Value) -> Result<Value> {
    let (Value::Object(l), Value::Object(p)) = (live, patch) else {
        panic!("test inputs must be objects");
    };
    merge_map(l, p, Ty::Struct(TEST_ITEM)).map(Value::Object)
}

fn generic_ok(live: Value, patch: Value) -> Value {
    match generic(live, patch) {
        Ok(v) => v,
        Err(e) => panic!("unexpected error: {e}"),
    }
}

fn live_deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "default",
            "uid": "0c1d",
            "resourceVersion": "41",
            "generation": 2,
            "annotations": {
                "deployment.kubernetes.io/revision": "1",
                "kubectl.kubernetes.io/last-applied-configuration": "{\"old\":true}\n"
            },
            "labels": {"app": "web"}
        },
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}
            },
            "template": {
                "metadata": {"creationTimestamp": null, "labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "image": "nginx:1.25",
                            "env": [
                                {"name": "LEVEL", "value": "info"},
                                {"name": "MODE", "value": "prod"}
                            ],
                            "ports": [{"containerPort": 80, "protocol": "TCP"}],
                            "imagePullPolicy": "IfNotPresent",
                            "resources": {}
                        },
                        {
                            "name": "sidecar",
                            "image": "busybox:1.36",
                            "args": ["sleep", "3600"]
                        }
                    ],
                    "volumes": [{"name": "data", "emptyDir": {}}],
                    "restartPolicy": "Always",
                    "dnsPolicy": "ClusterFirst"
                }
            }
        },
        "status": {
            "replicas": 2,
            "conditions": [{"type": "Available", "status": "True"}]
        }
    })
}

fn containers(obj: &Value) -> &Value {
    &obj["spec"]["template"]["spec"]["containers"]
}

// ---------------------------------------------------------------------------
// Captured kubectl patches
// ---------------------------------------------------------------------------

#[test]
fn kubectl_reapply_deployment() {
    let patch = json!({"metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{}\n"},"labels":{"tier":"front"}},
     "spec":{"replicas":3,"template":{"spec":{
       "$setElementOrder/containers":[{"name":"web"},{"name":"sidecar"}],
       "containers":[
         {"$setElementOrder/env":[{"name":"DEBUG"},{"name":"MODE"}],
          "$setElementOrder/ports":[{"containerPort":80},{"containerPort":443}],
          "env":[{"name":"DEBUG","value":"1"},{"$patch":"delete","name":"LEVEL"}],
          "image":"nginx:1.27","name":"web",
          "ports":[{"containerPort":443,"name":"https"}]},
         {"args":null,"name":"sidecar"}]}}}});
    let got = ok("Deployment", live_deployment(), patch);

    let mut want = live_deployment();
    want["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] =
        json!("{}\n");
    want["metadata"]["labels"]["tier"] = json!("front");
    want["spec"]["replicas"] = json!(3);
    want["spec"]["template"]["spec"]["containers"] = json!([
        {
            "name": "web",
            "image": "nginx:1.27",
            "env": [{"name": "DEBUG", "value": "1"}, {"name": "MODE", "value": "prod"}],
            "ports": [
                {"containerPort": 80, "protocol": "TCP"},
                {"containerPort": 443, "name": "https"}
            ],
            "imagePullPolicy": "IfNotPresent",
            "resources": {}
        },
        {"name": "sidecar", "image": "busybox:1.36"}
    ]);
    assert_eq!(got, want);
}

#[test]
fn service_ports_set_element_order() {
    let live = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {
            "type": "ClusterIP",
            "clusterIP": "10.96.0.10",
            "ports": [
                {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 80},
                {"name": "metrics", "port": 9090, "protocol": "TCP", "targetPort": 9090}
            ]
        }
    });
    let patch = json!({"spec":{"$setElementOrder/ports":[{"port":80}],"ports":[{"port":80,"targetPort":8080}]}});
    let got = ok("Service", live, patch);
    assert_eq!(
        got["spec"]["ports"],
        json!([
            {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080},
            {"name": "metrics", "port": 9090, "protocol": "TCP", "targetPort": 9090}
        ])
    );
    assert_eq!(got["spec"]["clusterIP"], json!("10.96.0.10"));
}

#[test]
fn retain_keys_strategy_and_volume_and_container_delete() {
    let patch = json!({"spec":{"strategy":{"$retainKeys":["type"],"type":"Recreate"}, "template":{"spec":{"$setElementOrder/containers":[{"name":"web"}],"$setElementOrder/volumes":[{"name":"data"}],"containers":[{"$patch":"delete","name":"sidecar"}],"volumes":[{"$retainKeys":["configMap","name"],"configMap":{"name":"cfg"},"emptyDir":null,"name":"data"}]}}}});
    let got = ok("Deployment", live_deployment(), patch);
    assert_eq!(got["spec"]["strategy"], json!({"type": "Recreate"}));
    let names: Vec<&Value> = containers(&got)
        .as_array()
        .map(|a| a.iter().map(|c| &c["name"]).collect())
        .unwrap_or_default();
    assert_eq!(names, vec![&json!("web")]);
    assert_eq!(containers(&got)[0]["image"], json!("nginx:1.25"));
    assert_eq!(
        got["spec"]["template"]["spec"]["volumes"],
        json!([{"name": "data", "configMap": {"name": "cfg"}}])
    );
}

#[test]
fn finalizers_delete_and_set_order() {
    let patch = json!({"metadata":{"$deleteFromPrimitiveList/finalizers":["example.com/keep"],"$setElementOrder/finalizers":["example.com/other"],"finalizers":["example.com/other"]}});
    let live = json!({"metadata": {"name": "cm", "finalizers": ["example.com/keep"]}});
    let got = ok("ConfigMap", live, patch.clone());
    assert_eq!(got["metadata"]["finalizers"], json!(["example.com/other"]));

    // A server-only finalizer stays, after the patch items.
    let live =
        json!({"metadata": {"finalizers": ["example.com/keep", "kubernetes.io/pvc-protection"]}});
    let got = ok("ConfigMap", live, patch);
    assert_eq!(
        got["metadata"]["finalizers"],
        json!(["example.com/other", "kubernetes.io/pvc-protection"])
    );
}

#[test]
fn kubectl_set_image() {
    let patch = json!({"spec":{"template":{"spec":{"$setElementOrder/containers":[{"name":"web"},{"name":"sidecar"}],"containers":[{"image":"nginx:1.26","name":"web"}]}}}});
    let got = ok("Deployment", live_deployment(), patch);
    let mut want = live_deployment();
    want["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.26");
    assert_eq!(got, want);
}

#[test]
fn node_cordon_and_uncordon() {
    let live =
        json!({"kind": "Node", "metadata": {"name": "n1"}, "spec": {"podCIDR": "10.244.0.0/24"}});
    let cordoned = ok("Node", live.clone(), json!({"spec":{"unschedulable":true}}));
    assert_eq!(
        cordoned["spec"],
        json!({"podCIDR": "10.244.0.0/24", "unschedulable": true})
    );
    let uncordoned = ok("Node", cordoned, json!({"spec":{"unschedulable":null}}));
    assert_eq!(uncordoned, live);
}

#[test]
fn rollout_restart_annotation() {
    let patch = json!({"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":"2025-01-30T10:00:00Z"}}}}});
    let got = ok("Deployment", live_deployment(), patch);
    assert_eq!(
        got["spec"]["template"]["metadata"],
        json!({
            "creationTimestamp": null,
            "labels": {"app": "web"},
            "annotations": {"kubectl.kubernetes.io/restartedAt": "2025-01-30T10:00:00Z"}
        })
    );
}

#[test]
fn label_removal() {
    let live = json!({"metadata": {"labels": {"tier": "front", "app": "web"}}});
    let got = ok("Pod", live, json!({"metadata":{"labels":{"tier":null}}}));
    assert_eq!(got, json!({"metadata": {"labels": {"app": "web"}}}));
}

#[test]
fn delete_container_port_by_merge_key() {
    let mut live = live_deployment();
    live["spec"]["template"]["spec"]["containers"][0]["ports"] =
        json!([{"containerPort": 80}, {"containerPort": 443, "name": "https"}]);
    let patch = json!({"spec":{"template":{"spec":{"containers":[{"name":"web","ports":[{"$patch":"delete","containerPort":443}]}]}}}});
    let got = ok("Deployment", live, patch);
    assert_eq!(containers(&got)[0]["ports"], json!([{"containerPort": 80}]));
    assert_eq!(containers(&got)[1]["name"], json!("sidecar"));
}

#[test]
fn cron_job_pod_template_path() {
    let live = json!({"spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": {
        "containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}}}}}});
    let patch = json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {
        "containers": [{"name": "b", "image": "z"}]}}}}}});
    let got = ok("CronJob", live, patch);
    assert_eq!(
        got["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"],
        json!([{"name": "a", "image": "x"}, {"name": "b", "image": "z"}])
    );
}

#[test]
fn pod_and_node_status_merge_keys() {
    let live = json!({"status": {"conditions": [
        {"type": "Ready", "status": "False"}, {"type": "Initialized", "status": "True"}],
        "podIPs": [{"ip": "10.0.0.1"}]}});
    let patch = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}],
        "podIPs": [{"ip": "fd00::1"}]}});
    let got = ok("Pod", live, patch);
    assert_eq!(
        got["status"]["conditions"],
        json!([{"type": "Ready", "status": "True"}, {"type": "Initialized", "status": "True"}])
    );
    // New element, no $setElementOrder: upstream puts patch items first.
    assert_eq!(
        got["status"]["podIPs"],
        json!([{"ip": "fd00::1"}, {"ip": "10.0.0.1"}])
    );

    let node = json!({"spec": {"podCIDRs": ["10.0.0.0/24"]}, "status": {"addresses": [
        {"type": "InternalIP", "address": "10.1.1.1"}, {"type": "Hostname", "address": "n1"}]}});
    let got = ok(
        "Node",
        node,
        json!({"spec": {"podCIDRs": ["fd00::/64"]}, "status": {"addresses": [{"type": "Hostname", "address": "n2"}]}}),
    );
    assert_eq!(got["spec"]["podCIDRs"], json!(["fd00::/64", "10.0.0.0/24"]));
    assert_eq!(
        got["status"]["addresses"],
        json!([{"type": "InternalIP", "address": "10.1.1.1"}, {"type": "Hostname", "address": "n2"}])
    );
}

#[test]
fn atomic_lists_replace() {
    let live = json!({"spec": {"tolerations": [{"key": "a"}, {"key": "b"}], "containers": [
        {"name": "c", "args": ["1", "2"], "command": ["sh"]}]}});
    let patch = json!({"spec": {"tolerations": [{"key": "c"}], "containers": [{"name": "c", "args": ["3"]}]}});
    let got = ok("Pod", live, patch);
    assert_eq!(got["spec"]["tolerations"], json!([{"key": "c"}]));
    assert_eq!(
        got["spec"]["containers"],
        json!([{"name": "c", "args": ["3"], "command": ["sh"]}])
    );
}

#[test]
fn unknown_kind_lists_are_atomic_maps_merge() {
    assert!(!is_known_kind("Widget"));
    assert!(
        is_known_kind("Deployment") && is_known_kind("Lease") && is_known_kind("EndpointSlice")
    );
    let live = json!({"metadata": {"finalizers": ["a"], "labels": {"x": "1"}},
        "spec": {"items": [{"name": "a", "v": 1}], "m": {"k": 1, "j": 2}}});
    let patch = json!({"metadata": {"finalizers": ["b"], "labels": {"y": "2"}},
        "spec": {"items": [{"name": "a", "w": 2}], "m": {"j": null}}});
    let got = ok("Widget", live, patch);
    assert_eq!(
        got,
        json!({"metadata": {"finalizers": ["b"], "labels": {"x": "1", "y": "2"}},
            "spec": {"items": [{"name": "a", "w": 2}], "m": {"k": 1}}})
    );
}

// ---------------------------------------------------------------------------
// Directives
// ---------------------------------------------------------------------------

#[test]
fn map_replace_and_delete_directives() {
    let live =
        json!({"spec": {"selector": {"matchLabels": {"a": "1"}, "matchExpressions": []}, "x": 1}});
    let got = ok(
        "Deployment",
        live.clone(),
        json!({"spec": {"selector": {"$patch": "replace", "matchLabels": {"b": "2"}, "gone": null}}}),
    );
    assert_eq!(got["spec"]["selector"], json!({"matchLabels": {"b": "2"}}));
    let got = ok(
        "Deployment",
        live.clone(),
        json!({"spec": {"selector": {"$patch": "delete"}}}),
    );
    assert_eq!(got["spec"], json!({"selector": {}, "x": 1}));
    // Root-level directives.
    assert_eq!(
        ok("Pod", live.clone(), json!({"$patch": "delete"})),
        json!({})
    );
    assert_eq!(
        ok(
            "Pod",
            live.clone(),
            json!({"$patch": "replace", "kind": "Pod"})
        ),
        json!({"kind": "Pod"})
    );
    // A directive map for a key the live object lacks is dropped entirely.
    assert_eq!(
        ok(
            "Pod",
            live,
            json!({"status": {"$patch": "replace", "phase": "Running"}})
        )
        .get("status"),
        None
    );
}

#[test]
fn null_patch_and_unmatched_nulls() {
    let live = json!({"a": 1, "b": {"c": 2}});
    assert_eq!(ok("Pod", live.clone(), Value::Null), live);
    let got = ok(
        "Pod",
        live,
        json!({"z": null, "n": {"x": null, "y": 1}, "b": {"d": null}}),
    );
    assert_eq!(got, json!({"a": 1, "b": {"c": 2}, "n": {"y": 1}}));
}

#[test]
fn new_values_are_cleaned() {
    let live = json!({"spec": {}});
    let patch = json!({"spec": {"new": {"keep": 1, "drop": {"$patch": "delete"}, "n": null,
        "$setElementOrder/x": [], "list": [{"$patch": "delete", "name": "q"}, {"name": "r"}]}}});
    let got = ok("Pod", live, patch);
    assert_eq!(
        got["spec"]["new"],
        json!({"keep": 1, "list": [{"name": "r"}]})
    );
}

#[test]
fn appended_elements_lose_directive_keys_and_nulls() {
    let live = json!({"spec": {"containers": [{"name": "a"}]}});
    let patch = json!({"spec": {"containers": [{"name": "b", "args": null, "image": "x",
        "$setElementOrder/env": [{"name": "E"}], "env": [{"name": "E", "value": "1"}]}]}});
    let got = ok("Pod", live, patch);
    assert_eq!(
        got["spec"]["containers"],
        json!([{"name": "b", "image": "x", "env": [{"name": "E", "value": "1"}]}, {"name": "a"}])
    );
}

#[test]
fn list_replace_directive() {
    let live = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
    let got = ok(
        "Pod",
        live.clone(),
        json!({"spec": {"containers": [{"name": "c", "image": null}, {"$patch": "replace"}]}}),
    );
    assert_eq!(got["spec"]["containers"], json!([{"name": "c"}]));
    let got = ok(
        "Pod",
        live,
        json!({"spec": {"containers": [{"$patch": "replace"}]}}),
    );
    assert_eq!(got["spec"]["containers"], json!([]));
}

#[test]
fn empty_patch_list_is_noop_for_merge_lists() {
    let live = json!({"spec": {"containers": [{"name": "a"}]}});
    let got = ok("Pod", live.clone(), json!({"spec": {"containers": []}}));
    assert_eq!(got, live);
}

#[test]
fn delete_from_primitive_list_variants() {
    // Works on atomic primitive lists too.
    let live = json!({"spec": {"containers": [{"name": "a", "args": ["1", "2", "3"]}]}});
    let patch =
        json!({"spec": {"containers": [{"name": "a", "$deleteFromPrimitiveList/args": ["2"]}]}});
    let got = ok("Pod", live, patch);
    assert_eq!(got["spec"]["containers"][0]["args"], json!(["1", "3"]));
    // Missing list: nothing is added.
    let got = ok(
        "Pod",
        json!({"metadata": {}}),
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]}}),
    );
    assert_eq!(got, json!({"metadata": {}}));
    // A null deletion list deletes the field (upstream quirk).
    let got = ok(
        "Pod",
        json!({"metadata": {"finalizers": ["a"]}}),
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": null}}),
    );
    assert_eq!(got, json!({"metadata": {}}));
    // Adding and deleting in one patch.
    let got = ok(
        "Pod",
        json!({"metadata": {"finalizers": ["a", "b"]}}),
        json!({"metadata": {"finalizers": ["c"], "$deleteFromPrimitiveList/finalizers": ["a"]}}),
    );
    assert_eq!(got["metadata"]["finalizers"], json!(["c", "b"]));
}

#[test]
fn retain_keys_without_strategy_tag_still_applies() {
    let live = json!({"spec": {"anything": {"a": 1, "b": 2}}});
    let got = ok(
        "Pod",
        live,
        json!({"spec": {"anything": {"$retainKeys": ["a", "c"], "c": 3}}}),
    );
    assert_eq!(got["spec"]["anything"], json!({"a": 1, "c": 3}));
}

#[test]
fn owner_references_merge_by_uid() {
    let live = json!({"metadata": {"ownerReferences": [{"uid": "1", "name": "a"}, {"uid": "2", "name": "b"}]}});
    let got = ok(
        "ReplicaSet",
        live,
        json!({"metadata": {"ownerReferences": [{"uid": "2", "controller": true}, {"uid": "1", "$patch": "delete"}]}}),
    );
    assert_eq!(
        got["metadata"]["ownerReferences"],
        json!([{"uid": "2", "name": "b", "controller": true}])
    );
}

// ---------------------------------------------------------------------------
// Ordering (upstream vectors)
// ---------------------------------------------------------------------------

#[test]
fn order_vectors_from_upstream() {
    let named = |xs: &[(i64, Option<&str>)]| -> Value {
        Value::Array(
            xs.iter()
                .map(|(n, v)| match v {
                    Some(v) => json!({"name": n, "value": v}),
                    None => json!({"name": n}),
                })
                .collect(),
        )
    };
    // Add and delete an item in a list and preserve order.
    let got = generic_ok(
        json!({"mergingList": [{"name": 1, "other": "a"}, {"name": 2, "value": 2, "other": "b"}, {"name": 3, "value": 3}]}),
        json!({"$setElementOrder/mergingList": [{"name": 4}, {"name": 2}, {"name": 1}],
               "mergingList": [{"name": 4, "value": 4}, {"name": 3, "$patch": "delete"}]}),
    );
    assert_eq!(
        got,
        json!({"mergingList": [{"name": 4, "value": 4}, {"name": 2, "value": 2, "other": "b"}, {"name": 1, "other": "a"}]})
    );
    // Set element order with server-only items in the middle.
    let got = generic_ok(
        json!({"mergingList": named(&[(1, None), (2, None), (7, None), (9, None), (8, None), (3, None), (4, None)])}),
        json!({"$setElementOrder/mergingList": [{"name": 2}, {"name": 1}, {"name": 4}, {"name": 3}]}),
    );
    assert_eq!(
        got["mergingList"],
        named(&[
            (2, None),
            (1, None),
            (7, None),
            (9, None),
            (8, None),
            (4, None),
            (3, None)
        ])
    );
    // Merge lists of maps, new items placed by $setElementOrder.
    let got = generic_ok(
        json!({"mergingList": [{"name": 1, "other": "a"}, {"name": 2, "value": 2}]}),
        json!({"$setElementOrder/mergingList": [{"name": 4}, {"name": 1}, {"name": 2}, {"name": 3}],
               "mergingList": [{"name": 4, "value": 4}, {"name": 3, "value": 3}]}),
    );
    assert_eq!(
        got["mergingList"],
        json!([{"name": 4, "value": 4}, {"name": 1, "other": "a"}, {"name": 2, "value": 2}, {"name": 3, "value": 3}])
    );
    // Merge lists of scalars with a server-only item.
    let got = generic_ok(
        json!({"mergingIntList": [1, 2, 4]}),
        json!({"$setElementOrder/mergingIntList": [1, 2, 3], "mergingIntList": [3]}),
    );
    assert_eq!(got["mergingIntList"], json!([1, 2, 3, 4]));
    // Add and delete in a primitive list.
    let got = generic_ok(
        json!({"mergingIntList": [1, 2, 3, 4]}),
        json!({"$setElementOrder/mergingIntList": [1, 2, 4], "$deleteFromPrimitiveList/mergingIntList": [3]}),
    );
    assert_eq!(got["mergingIntList"], json!([1, 2, 4]));
    // Duplicates keep their relative order.
    let got = generic_ok(
        json!({"mergingList": [{"name": 1}, {"name": 2, "value": "dup1"}, {"name": 3}, {"name": 2, "value": "dup2"}, {"name": 4}]}),
        json!({"$setElementOrder/mergingList": [{"name": 2}, {"name": 1}, {"name": 4}, {"name": 3}, {"name": 2}]}),
    );
    assert_eq!(
        got["mergingList"],
        json!([{"name": 2, "value": "dup1"}, {"name": 2, "value": "dup2"}, {"name": 1}, {"name": 4}, {"name": 3}])
    );
    let got = generic_ok(
        json!({"mergingIntList": [1, 2, 3, 2, 4]}),
        json!({"$setElementOrder/mergingIntList": [2, 1, 4, 3, 2]}),
    );
    assert_eq!(got["mergingIntList"], json!([2, 2, 1, 4, 3]));
    // Delete and reorder in one list, reorder in another.
    let got = generic_ok(
        json!({"mergingList": [{"name": "a"}, {"name": "b"}], "mergeItemPtr": [{"name": "c"}, {"name": "d"}]}),
        json!({"$setElementOrder/mergingList": [{"name": "b"}], "$setElementOrder/mergeItemPtr": [{"name": "d"}, {"name": "c"}],
               "mergingList": [{"$patch": "delete", "name": "a"}]}),
    );
    assert_eq!(
        got,
        json!({"mergingList": [{"name": "b"}], "mergeItemPtr": [{"name": "d"}, {"name": "c"}]})
    );
    // Order of the patch without $setElementOrder.
    let got = generic_ok(
        json!({"mergingList": [{"name": 1}, {"name": 2, "value": "b"}, {"name": 3}]}),
        json!({"mergingList": [{"name": 3, "value": "c"}, {"name": 1, "value": "a"}]}),
    );
    assert_eq!(
        got["mergingList"],
        json!([{"name": 2, "value": "b"}, {"name": 3, "value": "c"}, {"name": 1, "value": "a"}])
    );
    let got = generic_ok(
        json!({"mergingIntList": [1, 2, 3]}),
        json!({"mergingIntList": [3, 1, 2]}),
    );
    assert_eq!(got["mergingIntList"], json!([3, 1, 2]));
    let got = generic_ok(
        json!({"mergingIntList": [1, 2]}),
        json!({"mergingIntList": [2, 3]}),
    );
    assert_eq!(got["mergingIntList"], json!([1, 2, 3]));
    // $setElementOrder naming an item absent from the list.
    let got = generic_ok(
        json!({"mergingList": [{"name": 1}, {"name": 3}]}),
        json!({"$setElementOrder/mergingList": [{"name": 3}, {"name": 2}, {"name": 1}],
               "mergingList": [{"name": 3, "value": 3}, {"name": 1, "value": 1}]}),
    );
    assert_eq!(
        got["mergingList"],
        json!([{"name": 3, "value": 3}, {"name": 1, "value": 1}])
    );
    let got = generic_ok(
        json!({"mergingIntList": [1, 3]}),
        json!({"$setElementOrder/mergingIntList": [3, 2, 1]}),
    );
    assert_eq!(got["mergingIntList"], json!([3, 1]));
    // Deleting all duplicates.
    let got = generic_ok(
        json!({"mergingList": [{"name": 1}, {"name": 1}, {"name": 2, "value": "a"}, {"name": 3}, {"name": 3}]}),
        json!({"mergingList": [{"name": 1, "$patch": "delete"}, {"name": 3, "$patch": "delete"}]}),
    );
    assert_eq!(got["mergingList"], json!([{"name": 2, "value": "a"}]));
}

#[test]
fn set_order_reads_live_list_through_upstream_aliasing() {
    // Upstream deletes "b" in place, then appends "d" into the freed slot of
    // the live slice, so "d" counts as coming after the server-only "x".
    let live = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}, {"name": "x"}]}});
    let patch = json!({"spec": {"$setElementOrder/containers": [{"name": "a"}, {"name": "d"}],
        "containers": [{"$patch": "delete", "name": "b"}, {"name": "d"}]}});
    let got = ok("Pod", live, patch);
    assert_eq!(
        got["spec"]["containers"],
        json!([{"name": "a"}, {"name": "x"}, {"name": "d"}])
    );
    // Without a deletion nothing is overwritten: the new item is taken first.
    let live = json!({"spec": {"containers": [{"name": "a"}, {"name": "x"}]}});
    let patch = json!({"spec": {"$setElementOrder/containers": [{"name": "a"}, {"name": "d"}],
        "containers": [{"name": "d"}]}});
    let got = ok("Pod", live, patch);
    assert_eq!(
        got["spec"]["containers"],
        json!([{"name": "a"}, {"name": "d"}, {"name": "x"}])
    );
}

#[test]
fn go_stable_sort_matches_std_for_consistent_orders() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for n in 0..130 {
        let mut data: Vec<(u64, usize)> = (0..n).map(|i| (rng.next() % 7, i)).collect();
        let mut want = data.clone();
        want.sort_by_key(|x| x.0);
        go_stable_sort(&mut data, |a, b| a.0 < b.0);
        assert_eq!(data, want, "n = {n}");
    }
}

#[test]
fn go_stable_sort_with_upstream_comparator() {
    // Insertion sort as Go runs it: "not found" entries always compare less.
    let mut data = vec![Some(1), None, Some(0)];
    go_stable_sort(&mut data, |a: &Option<usize>, b| match (a, b) {
        (Some(i), Some(j)) => i < j,
        _ => true,
    });
    assert_eq!(data, vec![Some(0), None, Some(1)]);
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

#[test]
fn error_patch_not_object() {
    let e = err("Pod", json!({}), json!([1]));
    assert_eq!(
        e.to_string(),
        "json: cannot unmarshal array into Go value of type map[string]interface {}"
    );
    assert_eq!(e.http_status(), 400);
    assert!(matches!(
        err("Pod", json!({}), json!("x")),
        SmpError::PatchNotObject { found: "string" }
    ));
    assert!(matches!(
        err("Pod", json!([]), json!({})),
        SmpError::LiveNotObject { .. }
    ));
}

#[test]
fn error_missing_merge_key() {
    let live = json!({"spec": {"containers": [{"name": "a"}]}});
    let e = err(
        "Pod",
        live.clone(),
        json!({"spec": {"containers": [{"image": "nginx"}]}}),
    );
    assert_eq!(
        e.to_string(),
        "map: map[image:nginx] does not contain declared merge key: name"
    );
    assert_eq!(e.http_status(), 500);
    let e = err(
        "Pod",
        live.clone(),
        json!({"spec": {"containers": [{"$patch": "delete"}]}}),
    );
    assert_eq!(
        e.to_string(),
        "map: map[$patch:delete] does not contain declared merge key: name"
    );
    let e = err(
        "DaemonSet",
        json!({"spec": {"template": {"spec": {"volumes": [{"name": "v"}]}}}}),
        json!({"spec": {"template": {"spec": {"volumes": [{"hostPath": {"path": "/var/lib/kubelet/pods"}}]}}}}),
    );
    assert_eq!(
        e.to_string(),
        "map: map[hostPath:map[path:/var/lib/kubelet/pods]] does not contain declared merge key: name"
    );
    let e = err(
        "Service",
        json!({"spec": {"ports": [{"port": 80}]}}),
        json!({"spec": {"ports": [{"targetPort": 441}]}}),
    );
    assert_eq!(
        e.to_string(),
        "map: map[targetPort:441] does not contain declared merge key: port"
    );
    // A $setElementOrder entry without the key.
    let e = err(
        "Pod",
        live,
        json!({"spec": {"$setElementOrder/containers": [{"image": "x"}], "containers": [{"name": "a"}]}}),
    );
    assert_eq!(
        e.to_string(),
        "map: map[image:x] does not contain declared merge key: name"
    );
}

#[test]
fn error_unknown_patch_types() {
    let live = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"containers": [{"name": "x"}]}});
    let e = err(
        "Pod",
        live.clone(),
        json!({"metadata": {"labels": {"$patch": "bogus"}}}),
    );
    assert_eq!(
        e.to_string(),
        "unknown patch type: bogus in map: map[$patch:bogus]"
    );
    let e = err(
        "Pod",
        live.clone(),
        json!({"metadata": {"$patch": "merge", "x": 1.5}}),
    );
    assert_eq!(
        e.to_string(),
        "unknown patch type: merge in map: map[$patch:merge x:1.5]"
    );
    let e = err(
        "Pod",
        live.clone(),
        json!({"spec": {"containers": [{"$patch": 7, "name": "x"}]}}),
    );
    assert_eq!(
        e.to_string(),
        "unknown patch type: %!s(int64=7) in map: map[$patch:7 name:x]"
    );
    let e = err(
        "Pod",
        live,
        json!({"spec": {"containers": [{"$patch": "merge"}]}}),
    );
    assert_eq!(e, SmpError::MergeDirectiveInList);
    assert_eq!(
        e.to_string(),
        "merging lists cannot yet be specified in the patch"
    );
}

#[test]
fn error_retain_keys() {
    let live = json!({"spec": {"strategy": {"type": "RollingUpdate"}}});
    let e = err(
        "Deployment",
        live.clone(),
        json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}}),
    );
    assert_eq!(e, SmpError::BadPatchFormatForRetainKeys);
    assert_eq!(e.to_string(), "invalid patch format of retainKeys");
    assert_eq!(e.http_status(), 400);
    let e = err(
        "Deployment",
        live.clone(),
        json!({"spec": {"strategy": {"$retainKeys": "type"}}}),
    );
    assert_eq!(e, SmpError::BadPatchFormatForRetainKeys);
    let e = err(
        "Deployment",
        live,
        json!({"spec": {"strategy": {"$retainKeys": [{"a": 1}]}}}),
    );
    assert!(matches!(e, SmpError::UpstreamPanic { .. }));
    assert_eq!(
        e.to_string(),
        "This request caused apiserver to panic. Look in the logs for details."
    );
}

#[test]
fn error_set_element_order() {
    let e = generic(
        json!({"mergingList": [{"name": 1}, {"name": 3}, {"name": 2}]}),
        json!({"$setElementOrder/mergingList": [{"name": 1}, {"name": 2}, {"name": 3}],
               "mergingList": [{"name": 3, "value": 3}, {"name": 1, "value": 1}]}),
    )
    .err();
    assert_eq!(
        e.map(|e| e.to_string()).unwrap_or_default(),
        "The order in patch list:\n[map[name:3 value:3] map[name:1 value:1]]\n doesn't match $setElementOrder list:\n[map[name:1] map[name:2] map[name:3]]\n"
    );
    let e = generic(
        json!({"mergingIntList": [1, 3, 2]}),
        json!({"$setElementOrder/mergingIntList": [1, 2, 3], "mergingIntList": [3, 1]}),
    )
    .err();
    assert!(matches!(e, Some(SmpError::SetElementOrderMismatch { .. })));

    let live = json!({"spec": {"containers": [{"name": "a"}]}});
    let e = err(
        "Pod",
        live.clone(),
        json!({"spec": {"$setElementOrder/containers": "a"}}),
    );
    assert_eq!(
        e.to_string(),
        "expected a []interface {}, but received a string"
    );
    let e = err(
        "Pod",
        live.clone(),
        json!({"spec": {"$setElementOrderX/containers": []}}),
    );
    assert_eq!(e, SmpError::BadPatchFormatForSetElementOrderList);
    assert_eq!(e.http_status(), 400);
    let e = err(
        "Pod",
        live.clone(),
        json!({"spec": {"$setElementOrder/containers": ["a"]}}),
    );
    assert_eq!(e, SmpError::NotAMap { index: 0 });
    assert_eq!(e.to_string(), "value for key 0 is not a map");
    let e = err(
        "Pod",
        live,
        json!({"spec": {"$setElementOrder/containers": ["a"], "containers": [{"name": "a"}]}}),
    );
    assert_eq!(
        e.to_string(),
        "expected a map[string]interface {}, but received a string"
    );
    let e = err(
        "Pod",
        json!({"spec": {"containers": "oops"}}),
        json!({"spec": {"$setElementOrder/containers": [{"name": "a"}]}}),
    );
    assert_eq!(
        e.to_string(),
        "expected a []interface {}, but received a string"
    );
    let e = err(
        "Pod",
        json!({"metadata": {"finalizers": []}}),
        json!({"metadata": {"$setElementOrder/finalizers": []}}),
    );
    assert_eq!(e, SmpError::NoElements);
    // $setElementOrder over an atomic list of maps: upstream hashes maps.
    let e = err(
        "Pod",
        json!({"spec": {"tolerations": [{"key": "a"}]}}),
        json!({"spec": {"$setElementOrder/tolerations": [{"key": "a"}], "tolerations": [{"key": "a"}]}}),
    );
    assert!(matches!(e, SmpError::UpstreamPanic { ref detail } if detail.contains("uncomparable")));
    let e = err(
        "Pod",
        json!({"spec": {"tolerations": [{"key": "a"}]}}),
        json!({"spec": {"$setElementOrder/tolerations": [{"key": "a"}]}}),
    );
    assert!(matches!(e, SmpError::UpstreamPanic { ref detail } if detail.contains("unhashable")));
    assert_eq!(e.http_status(), 500);
}

#[test]
fn error_delete_from_primitive_list() {
    let e = err(
        "Pod",
        json!({"metadata": {"finalizers": ["a"]}}),
        json!({"metadata": {"$deleteFromPrimitiveListfinalizers": ["a"]}}),
    );
    assert_eq!(e, SmpError::BadPatchFormatForPrimitiveList);
    assert_eq!(e.to_string(), "invalid patch format of primitive list");
    assert_eq!(e.http_status(), 400);
    let e = err(
        "Pod",
        json!({"spec": {"tolerations": [{"key": "a"}]}}),
        json!({"spec": {"$deleteFromPrimitiveList/tolerations": [{"key": "a"}]}}),
    );
    assert_eq!(
        e.to_string(),
        "cannot merge lists without merge key for struct"
    );
}

#[test]
fn error_list_element_types() {
    let e = err(
        "Node",
        json!({"spec": {"podCIDRs": ["10.0.0.0/24"]}}),
        json!({"spec": {"podCIDRs": [1]}}),
    );
    assert_eq!(
        e.to_string(),
        "list element types are not identical: [[10.0.0.0/24] [1]]"
    );
    let e = err(
        "Node",
        json!({"spec": {"podCIDRs": []}}),
        json!({"spec": {"podCIDRs": [["x"]]}}),
    );
    assert_eq!(e, SmpError::NoListOfLists);
    assert_eq!(e.http_status(), 422);
    let e = err(
        "Node",
        json!({"spec": {"podCIDRs": [null]}}),
        json!({"spec": {"podCIDRs": ["a"]}}),
    );
    assert!(matches!(e, SmpError::UpstreamPanic { .. }));
    // Integers and floats are different Go types: 80.0 does not match 80.
    let got = ok(
        "Pod",
        json!({"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80}]}]}}),
        json!({"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80.0, "name": "h"}]}]}}),
    );
    assert_eq!(
        got["spec"]["containers"][0]["ports"],
        json!([{"containerPort": 80.0, "name": "h"}, {"containerPort": 80}])
    );
}

#[test]
fn error_too_deep() {
    let mut deep = json!(1);
    for _ in 0..(MAX_DEPTH + 5) {
        deep = json!({ "a": deep });
    }
    let e = err("Pod", json!({}), deep.clone());
    assert_eq!(e, SmpError::TooDeep { limit: MAX_DEPTH });
    assert_eq!(e.http_status(), 400);
    let e = err("Pod", deep, json!({}));
    assert_eq!(e, SmpError::TooDeep { limit: MAX_DEPTH });

    // Just under the limit is fine.
    let mut patch = json!(1);
    let mut live = json!(0);
    for _ in 0..(MAX_DEPTH - 2) {
        patch = json!({ "a": patch });
        live = json!({ "a": live });
    }
    assert!(apply("Pod", &live, &patch).is_ok());
}

#[test]
fn go_formatting_of_numbers() {
    let f = |v: f64| go_number(&serde_json::Number::from_f64(v).unwrap_or_else(|| 0.into()));
    assert_eq!(f(1.5), "1.5");
    assert_eq!(f(80.0), "80");
    assert_eq!(f(123456.0), "123456");
    assert_eq!(f(1e6), "1e+06");
    assert_eq!(f(0.0001), "0.0001");
    assert_eq!(f(0.00001), "1e-05");
    assert_eq!(f(-2.5e-7), "-2.5e-07");
    assert_eq!(go_number(&(-3i64).into()), "-3");
}

// ---------------------------------------------------------------------------
// Robustness
// ---------------------------------------------------------------------------

/// xorshift64*: tiny deterministic generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

const KEYS: &[&str] = &[
    "metadata",
    "spec",
    "status",
    "template",
    "containers",
    "initContainers",
    "env",
    "ports",
    "volumes",
    "finalizers",
    "labels",
    "name",
    "containerPort",
    "port",
    "type",
    "conditions",
    "args",
    "image",
    "value",
    "uid",
    "ownerReferences",
    "podCIDRs",
    "tolerations",
    "strategy",
    "jobTemplate",
    "$patch",
    "$retainKeys",
    "$setElementOrder/containers",
    "$setElementOrder/env",
    "$setElementOrder/finalizers",
    "$setElementOrder/ports",
    "$deleteFromPrimitiveList/finalizers",
    "$deleteFromPrimitiveList/args",
    "$setElementOrder",
    "$deleteFromPrimitiveList",
];
const STRINGS: &[&str] = &["delete", "replace", "merge", "web", "a", "b", "", "x/y"];

fn random_value(rng: &mut Rng, depth: u32) -> Value {
    let choice = if depth == 0 {
        rng.next() % 6
    } else {
        rng.next() % 9
    };
    match choice {
        0 => Value::Null,
        1 => Value::Bool(rng.next().is_multiple_of(2)),
        2 => json!(rng.next() % 5),
        3 => json!((rng.next() % 7) as f64 / 2.0),
        4 | 5 => json!(rng.pick(STRINGS)),
        6 | 7 => {
            let n = rng.next() % 4;
            let mut map = JsonMap::new();
            for _ in 0..n {
                map.insert(rng.pick(KEYS).to_string(), random_value(rng, depth - 1));
            }
            Value::Object(map)
        }
        _ => {
            let n = rng.next() % 4;
            Value::Array((0..n).map(|_| random_value(rng, depth - 1)).collect())
        }
    }
}

#[test]
fn random_inputs_never_panic() {
    let kinds = ["Pod", "Deployment", "Node", "CronJob", "Service", "Widget"];
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut successes = 0usize;
    for i in 0..20_000 {
        let kind = kinds[i % kinds.len()];
        let live = match i % 3 {
            0 => live_deployment(),
            _ => random_value(&mut rng, 5),
        };
        let patch = random_value(&mut rng, 5);
        if apply(kind, &live, &patch).is_ok() {
            successes += 1;
        }
        // Also mutate a realistic patch.
        let mut patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "web"}]}}}});
        patch["spec"]["template"]["spec"]["containers"][0][rng.pick(KEYS)] =
            random_value(&mut rng, 3);
        patch["spec"]["template"]["spec"][rng.pick(KEYS)] = random_value(&mut rng, 3);
        let _ = apply(kind, &live_deployment(), &patch);
    }
    assert!(successes > 0);
}
