//! Tests for [`super::decode`].
//!
//! The `*.pb` fixtures in `src/fixtures/` are request bodies captured from a
//! real kubectl v1.36.4 by `capture/run_all.sh`; `src/fixtures/COMMANDS.txt`
//! lists the exact command of each, `*.req` its request line and headers, and
//! `*.kubectl.json` kubectl's own JSON for the same command
//! (`--dry-run=client -o json`), which is the expected decoding.

use super::*;
use k8s_pb::apimachinery::pkg::runtime::TypeMeta;
use serde_json::json;

/// (fixture name, exact kubectl command, body, kubectl's JSON for the same command).
type Fixture = (
    &'static str,
    &'static str,
    &'static [u8],
    Option<&'static str>,
);

macro_rules! fx {
    ($name:literal, $cmd:literal) => {
        (
            $name,
            $cmd,
            include_bytes!(concat!("../fixtures/", $name, ".pb")).as_slice(),
            Some(include_str!(concat!(
                "../fixtures/",
                $name,
                ".kubectl.json"
            ))),
        )
    };
    ($name:literal, $cmd:literal, nojson) => {
        (
            $name,
            $cmd,
            include_bytes!(concat!("../fixtures/", $name, ".pb")).as_slice(),
            None,
        )
    };
}

const FIXTURES: &[Fixture] = &[
    fx!("namespace", "kubectl create namespace pbns"),
    fx!("configmap", "kubectl create configmap cm1 --from-literal=k1=v1 --from-literal=k2=v2"),
    fx!("configmap_demo", "kubectl -n demo create configmap cm2 --from-literal=a=b"),
    fx!(
        "configmap_files",
        "kubectl create configmap cm3 --from-file=/tmp/file.txt --from-file=bin=/tmp/bin.dat (file.txt = 'filecontent', bin.dat = 00 01 ff)"
    ),
    fx!("secret", "kubectl create secret generic s1 --from-literal=password=hunter2"),
    fx!(
        "secret_demo_type",
        "kubectl -n demo create secret generic s2 --from-literal=user=admin --type=Opaque"
    ),
    fx!(
        "secret_docker",
        "kubectl create secret docker-registry dr1 --docker-server=r.io --docker-username=u --docker-password=p"
    ),
    fx!("deployment", "kubectl create deployment web --image=nginx:1.27 --replicas=2 --port=80"),
    fx!(
        "deployment_demo_cmd",
        "kubectl -n demo create deployment api --image=busybox:1.36 -- sleep 3600"
    ),
    fx!("service_clusterip", "kubectl create service clusterip web --tcp=80:8080"),
    fx!(
        "service_clusterip_demo",
        "kubectl -n demo create service clusterip api --tcp=8080:80 --tcp=9090"
    ),
    fx!("service_headless", "kubectl create service clusterip hl --clusterip=None"),
    fx!(
        "service_nodeport",
        "kubectl create service nodeport np1 --tcp=5678:8080 --node-port=30080"
    ),
    fx!("service_loadbalancer", "kubectl create service loadbalancer lb1 --tcp=5678:http"),
    fx!(
        "service_externalname",
        "kubectl create service externalname en1 --external-name=example.com"
    ),
    fx!("serviceaccount", "kubectl create serviceaccount sa1"),
    fx!(
        "quota",
        "kubectl create quota q1 --hard=cpu=1,memory=1G,pods=2 --scopes=BestEffort"
    ),
    fx!(
        "role",
        "kubectl create role r1 --verb=get,list --resource=pods,deployments.apps --resource-name=a"
    ),
    fx!(
        "rolebinding",
        "kubectl create rolebinding rb1 --role=r1 --user=alice --serviceaccount=demo:sa1"
    ),
    fx!(
        "clusterrole",
        "kubectl create clusterrole cr1 --verb=get --resource=nodes --non-resource-url=/healthz"
    ),
    fx!("clusterrolebinding", "kubectl create clusterrolebinding crb1 --clusterrole=cr1 --group=devs"),
    fx!("job", "kubectl create job j1 --image=busybox -- echo hi"),
    fx!(
        "cronjob",
        "kubectl create cronjob cj1 --image=busybox --schedule='*/5 * * * *' -- echo hi"
    ),
    fx!(
        "ingress",
        "kubectl create ingress ing1 --class=nginx --rule='foo.com/bar*=svc1:8080,tls=sec1' --default-backend=defsvc:http --annotation=a=b"
    ),
    fx!(
        "pdb",
        "kubectl create poddisruptionbudget pdb1 --selector=app=web --min-available=50%"
    ),
    fx!(
        "priorityclass",
        "kubectl create priorityclass pc1 --value=1000 --description=hi --preemption-policy=Never"
    ),
    fx!("token", "kubectl create token sa1 --duration=10m --audience=aud1", nojson),
    fx!("selfsubjectaccessreview", "kubectl auth can-i get pods -n demo", nojson),
    fx!("selfsubjectreview", "kubectl auth whoami", nojson),
    fx!(
        "deleteoptions_drain",
        "kubectl drain n1 --ignore-daemonsets --disable-eviction --timeout=3s (DELETE of pod p1)",
        nojson
    ),
    fx!(
        "deleteoptions_drain_grace",
        "kubectl drain n1 --ignore-daemonsets --disable-eviction --grace-period=7 --timeout=3s (DELETE of pod p1)",
        nojson
    ),
];

fn fixture(name: &str) -> &'static [u8] {
    FIXTURES
        .iter()
        .find(|f| f.0 == name)
        .map(|f| f.2)
        .unwrap_or_else(|| panic!("no fixture {name}"))
}

fn decoded(name: &str) -> Value {
    decode(fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Wraps an object's protobuf bytes in the `k8s\0` + runtime.Unknown envelope, as Go does.
fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
        }),
        raw: Some(raw),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut out = MAGIC.to_vec();
    out.extend(unknown.encode_to_vec());
    out
}

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

// ---------------------------------------------------------------------------
// Real kubectl bodies
// ---------------------------------------------------------------------------

#[test]
fn every_fixture_with_kubectl_json_decodes_to_exactly_that_json() {
    let mut compared = 0;
    for (name, cmd, body, json) in FIXTURES {
        let Some(json) = json else { continue };
        let want: Value = serde_json::from_str(json).expect("fixture JSON");
        let got = decode(body).unwrap_or_else(|e| panic!("{name} ({cmd}): {e}"));
        assert_eq!(got, want, "{name} ({cmd})");
        compared += 1;
    }
    assert_eq!(compared, 26);
}

#[test]
fn every_fixture_starts_with_magic_and_was_sent_as_protobuf() {
    for (name, _, body, _) in FIXTURES {
        assert!(body.starts_with(MAGIC), "{name}");
        assert!(decode(body).is_ok(), "{name}");
    }
}

#[test]
fn namespace_fixture() {
    assert_eq!(
        decoded("namespace"),
        json!({"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": "pbns"}, "spec": {}, "status": {}})
    );
}

#[test]
fn configmap_fixtures() {
    assert_eq!(
        decoded("configmap"),
        json!({"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "cm1"},
               "data": {"k1": "v1", "k2": "v2"}})
    );
    assert_eq!(
        decoded("configmap_demo"),
        json!({"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "cm2", "namespace": "demo"},
               "data": {"a": "b"}})
    );
    assert_eq!(
        decoded("configmap_files"),
        json!({"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "cm3"},
               "data": {"file.txt": "filecontent"}, "binaryData": {"bin": "AAH/"}})
    );
}

#[test]
fn secret_fixtures() {
    assert_eq!(
        decoded("secret"),
        json!({"kind": "Secret", "apiVersion": "v1", "metadata": {"name": "s1"},
               "data": {"password": "aHVudGVyMg=="}})
    );
    assert_eq!(
        decoded("secret_demo_type"),
        json!({"kind": "Secret", "apiVersion": "v1", "metadata": {"name": "s2", "namespace": "demo"},
               "data": {"user": "YWRtaW4="}, "type": "Opaque"})
    );
}

#[test]
fn deployment_fixtures() {
    assert_eq!(
        decoded("deployment"),
        json!({
            "kind": "Deployment", "apiVersion": "apps/v1",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{
                        "name": "nginx", "image": "nginx:1.27",
                        "ports": [{"containerPort": 80}], "resources": {}
                    }]}
                },
                "strategy": {}
            },
            "status": {}
        })
    );
    let demo = decoded("deployment_demo_cmd");
    assert_eq!(
        demo["metadata"],
        json!({"name": "api", "namespace": "demo", "labels": {"app": "api"}})
    );
    assert_eq!(demo["spec"]["replicas"], json!(1));
    assert_eq!(
        demo["spec"]["template"]["spec"]["containers"][0]["command"],
        json!(["sleep", "3600"])
    );
}

#[test]
fn service_fixtures() {
    assert_eq!(
        decoded("service_clusterip"),
        json!({
            "kind": "Service", "apiVersion": "v1",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {
                "ports": [{"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080}],
                "selector": {"app": "web"},
                "type": "ClusterIP"
            },
            "status": {"loadBalancer": {}}
        })
    );
    let demo = decoded("service_clusterip_demo");
    assert_eq!(demo["metadata"]["namespace"], json!("demo"));
    assert_eq!(
        demo["spec"]["ports"],
        json!([
            {"name": "8080-80", "protocol": "TCP", "port": 8080, "targetPort": 80},
            {"name": "9090", "protocol": "TCP", "port": 9090, "targetPort": 9090}
        ])
    );
    assert_eq!(
        decoded("service_loadbalancer")["spec"]["ports"][0]["targetPort"],
        json!("http")
    );
    assert_eq!(
        decoded("service_nodeport")["spec"]["ports"][0]["nodePort"],
        json!(30080)
    );
    assert_eq!(
        decoded("service_headless")["spec"]["clusterIP"],
        json!("None")
    );
}

#[test]
fn delete_options_fixtures() {
    assert_eq!(
        decoded("deleteoptions_drain"),
        json!({"kind": "DeleteOptions", "apiVersion": "v1"})
    );
    assert_eq!(
        decoded("deleteoptions_drain_grace"),
        json!({"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 7})
    );
}

#[test]
fn token_and_review_fixtures() {
    assert_eq!(
        decoded("token"),
        json!({
            "kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1", "metadata": {},
            "spec": {"audiences": ["aud1"], "expirationSeconds": 600, "boundObjectRef": null},
            "status": {"token": "", "expirationTimestamp": null}
        })
    );
    assert_eq!(
        decoded("selfsubjectaccessreview"),
        json!({
            "kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1", "metadata": {},
            "spec": {"resourceAttributes": {"namespace": "demo", "verb": "get", "resource": "pods"}},
            "status": {"allowed": false}
        })
    );
    assert_eq!(
        decoded("selfsubjectreview"),
        json!({"kind": "SelfSubjectReview", "apiVersion": "authentication.k8s.io/v1", "metadata": {},
               "status": {"userInfo": {}}})
    );
}

// ---------------------------------------------------------------------------
// Synthetic bodies covering the fields generators do not set
// ---------------------------------------------------------------------------

fn full_meta() -> meta::ObjectMeta {
    meta::ObjectMeta {
        name: s("web"),
        generate_name: s("web-"),
        namespace: s("prod"),
        uid: s(""),
        resource_version: s(""),
        generation: Some(0),
        creation_timestamp: Some(meta::Time {
            seconds: Some(1_700_000_000),
            nanos: Some(0),
        }),
        labels: labels(&[("app", "web"), ("tier", "fe")]),
        annotations: labels(&[("note", "")]),
        owner_references: vec![meta::OwnerReference {
            api_version: s("apps/v1"),
            kind: s("ReplicaSet"),
            name: s("web-abc"),
            uid: s("1234"),
            controller: Some(true),
            block_owner_deletion: None,
        }],
        finalizers: vec!["example.com/f".into()],
        ..Default::default()
    }
}

fn full_meta_json() -> Value {
    json!({
        "name": "web", "generateName": "web-", "namespace": "prod",
        "creationTimestamp": "2023-11-14T22:13:20Z",
        "labels": {"app": "web", "tier": "fe"},
        "annotations": {"note": ""},
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-abc",
                             "uid": "1234", "controller": true}],
        "finalizers": ["example.com/f"]
    })
}

fn ios_int(n: i32) -> IntOrString {
    IntOrString {
        r#type: Some(0),
        int_val: Some(n),
        str_val: s(""),
    }
}

fn ios_str(v: &str) -> IntOrString {
    IntOrString {
        r#type: Some(1),
        int_val: Some(0),
        str_val: s(v),
    }
}

fn qty(v: &str) -> Quantity {
    Quantity { string: s(v) }
}

fn full_container() -> core::Container {
    core::Container {
        name: s("app"),
        image: s("nginx:1.27"),
        command: vec!["/bin/sh".into(), "-c".into()],
        args: vec!["run".into()],
        working_dir: s("/srv"),
        ports: vec![core::ContainerPort {
            name: s("http"),
            host_port: Some(0),
            container_port: Some(8080),
            protocol: s("TCP"),
            host_ip: s(""),
        }],
        env_from: vec![core::EnvFromSource {
            prefix: s("CM_"),
            config_map_ref: Some(core::ConfigMapEnvSource {
                local_object_reference: Some(core::LocalObjectReference { name: s("cm") }),
                optional: Some(true),
            }),
            secret_ref: None,
        }],
        env: vec![
            core::EnvVar {
                name: s("PLAIN"),
                value: s("1"),
                value_from: None,
            },
            core::EnvVar {
                name: s("EMPTY"),
                value: s(""),
                value_from: None,
            },
            core::EnvVar {
                name: s("POD"),
                value: s(""),
                value_from: Some(core::EnvVarSource {
                    field_ref: Some(core::ObjectFieldSelector {
                        api_version: s("v1"),
                        field_path: s("metadata.name"),
                    }),
                    ..Default::default()
                }),
            },
            core::EnvVar {
                name: s("CM"),
                value: None,
                value_from: Some(core::EnvVarSource {
                    config_map_key_ref: Some(core::ConfigMapKeySelector {
                        local_object_reference: Some(core::LocalObjectReference { name: s("cfg") }),
                        key: s("k"),
                        optional: None,
                    }),
                    ..Default::default()
                }),
            },
            core::EnvVar {
                name: s("PW"),
                value: None,
                value_from: Some(core::EnvVarSource {
                    secret_key_ref: Some(core::SecretKeySelector {
                        local_object_reference: Some(core::LocalObjectReference { name: s("sec") }),
                        key: s("password"),
                        optional: Some(false),
                    }),
                    ..Default::default()
                }),
            },
            core::EnvVar {
                name: s("MEM"),
                value: None,
                value_from: Some(core::EnvVarSource {
                    resource_field_ref: Some(core::ResourceFieldSelector {
                        container_name: s("app"),
                        resource: s("limits.memory"),
                        divisor: Some(qty("1Mi")),
                    }),
                    ..Default::default()
                }),
            },
        ],
        resources: Some(core::ResourceRequirements {
            limits: [
                ("cpu".to_string(), qty("500m")),
                ("memory".to_string(), qty("128Mi")),
            ]
            .into(),
            requests: [("cpu".to_string(), qty("100m"))].into(),
            claims: vec![],
        }),
        volume_mounts: vec![core::VolumeMount {
            name: s("data"),
            read_only: Some(true),
            mount_path: s("/data"),
            sub_path: s(""),
            ..Default::default()
        }],
        liveness_probe: Some(core::Probe {
            handler: Some(core::ProbeHandler {
                http_get: Some(core::HttpGetAction {
                    path: s("/healthz"),
                    port: Some(ios_str("http")),
                    host: s(""),
                    scheme: s("HTTP"),
                    http_headers: vec![core::HttpHeader {
                        name: s("X-A"),
                        value: s("b"),
                    }],
                }),
                ..Default::default()
            }),
            initial_delay_seconds: Some(5),
            timeout_seconds: Some(1),
            period_seconds: Some(10),
            success_threshold: Some(1),
            failure_threshold: Some(3),
            termination_grace_period_seconds: None,
        }),
        readiness_probe: Some(core::Probe {
            handler: Some(core::ProbeHandler {
                tcp_socket: Some(core::TcpSocketAction {
                    port: Some(ios_int(8080)),
                    host: s(""),
                }),
                ..Default::default()
            }),
            initial_delay_seconds: Some(0),
            ..Default::default()
        }),
        startup_probe: Some(core::Probe {
            handler: Some(core::ProbeHandler {
                exec: Some(core::ExecAction {
                    command: vec!["true".into()],
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        termination_message_path: s("/dev/termination-log"),
        termination_message_policy: s("File"),
        image_pull_policy: s("IfNotPresent"),
        stdin: Some(false),
        stdin_once: Some(false),
        tty: Some(false),
        ..Default::default()
    }
}

fn full_container_json() -> Value {
    json!({
        "name": "app", "image": "nginx:1.27",
        "command": ["/bin/sh", "-c"], "args": ["run"], "workingDir": "/srv",
        "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
        "envFrom": [{"prefix": "CM_", "configMapRef": {"name": "cm", "optional": true}}],
        "env": [
            {"name": "PLAIN", "value": "1"},
            {"name": "EMPTY"},
            {"name": "POD", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}},
            {"name": "CM", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}},
            {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "password", "optional": false}}},
            {"name": "MEM", "valueFrom": {"resourceFieldRef": {"containerName": "app",
                                                               "resource": "limits.memory", "divisor": "1Mi"}}}
        ],
        "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "100m"}},
        "volumeMounts": [{"name": "data", "readOnly": true, "mountPath": "/data"}],
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": "http", "scheme": "HTTP",
                        "httpHeaders": [{"name": "X-A", "value": "b"}]},
            "initialDelaySeconds": 5, "timeoutSeconds": 1, "periodSeconds": 10,
            "successThreshold": 1, "failureThreshold": 3
        },
        "readinessProbe": {"tcpSocket": {"port": 8080}},
        "startupProbe": {"exec": {"command": ["true"]}},
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "imagePullPolicy": "IfNotPresent"
    })
}

fn full_deployment() -> apps::Deployment {
    apps::Deployment {
        metadata: Some(full_meta()),
        spec: Some(apps::DeploymentSpec {
            replicas: Some(0),
            selector: Some(meta::LabelSelector {
                match_labels: labels(&[("app", "web")]),
                match_expressions: vec![meta::LabelSelectorRequirement {
                    key: s("tier"),
                    operator: s("In"),
                    values: vec!["fe".into(), "be".into()],
                }],
            }),
            template: Some(core::PodTemplateSpec {
                metadata: Some(meta::ObjectMeta {
                    labels: labels(&[("app", "web")]),
                    creation_timestamp: Some(meta::Time::default()),
                    ..Default::default()
                }),
                spec: Some(core::PodSpec {
                    volumes: vec![
                        core::Volume {
                            name: s("data"),
                            volume_source: Some(core::VolumeSource {
                                empty_dir: Some(core::EmptyDirVolumeSource {
                                    medium: s(""),
                                    size_limit: Some(qty("1Gi")),
                                }),
                                ..Default::default()
                            }),
                        },
                        core::Volume {
                            name: s("cfg"),
                            volume_source: Some(core::VolumeSource {
                                config_map: Some(core::ConfigMapVolumeSource {
                                    local_object_reference: Some(core::LocalObjectReference {
                                        name: s("cfg"),
                                    }),
                                    items: vec![core::KeyToPath {
                                        key: s("k"),
                                        path: s("k.txt"),
                                        mode: Some(0o400),
                                    }],
                                    default_mode: Some(0o644),
                                    optional: None,
                                }),
                                ..Default::default()
                            }),
                        },
                        core::Volume {
                            name: s("sec"),
                            volume_source: Some(core::VolumeSource {
                                secret: Some(core::SecretVolumeSource {
                                    secret_name: s("sec"),
                                    optional: Some(true),
                                    ..Default::default()
                                }),
                                ..Default::default()
                            }),
                        },
                        core::Volume {
                            name: s("pvc"),
                            volume_source: Some(core::VolumeSource {
                                persistent_volume_claim: Some(
                                    core::PersistentVolumeClaimVolumeSource {
                                        claim_name: s("claim"),
                                        read_only: Some(false),
                                    },
                                ),
                                ..Default::default()
                            }),
                        },
                    ],
                    init_containers: vec![core::Container {
                        name: s("init"),
                        image: s("busybox"),
                        resources: Some(core::ResourceRequirements::default()),
                        ..Default::default()
                    }],
                    containers: vec![full_container()],
                    restart_policy: s("Always"),
                    termination_grace_period_seconds: Some(30),
                    dns_policy: s("ClusterFirst"),
                    node_selector: labels(&[("disk", "ssd")]),
                    service_account_name: s("runner"),
                    service_account: s(""),
                    node_name: s(""),
                    host_network: Some(false),
                    image_pull_secrets: vec![core::LocalObjectReference { name: s("regcred") }],
                    scheduler_name: s("default-scheduler"),
                    tolerations: vec![core::Toleration {
                        key: s("dedicated"),
                        operator: s("Equal"),
                        value: s("web"),
                        effect: s("NoSchedule"),
                        toleration_seconds: None,
                    }],
                    priority_class_name: s(""),
                    enable_service_links: Some(false),
                    ..Default::default()
                }),
            }),
            strategy: Some(apps::DeploymentStrategy {
                r#type: s("RollingUpdate"),
                rolling_update: Some(apps::RollingUpdateDeployment {
                    max_unavailable: Some(ios_str("25%")),
                    max_surge: Some(ios_int(1)),
                }),
            }),
            min_ready_seconds: Some(0),
            revision_history_limit: Some(10),
            paused: Some(false),
            progress_deadline_seconds: Some(600),
        }),
        status: Some(apps::DeploymentStatus {
            replicas: Some(0),
            ..Default::default()
        }),
    }
}

#[test]
fn full_deployment_converts_every_supported_field() {
    let body = envelope("apps/v1", "Deployment", full_deployment().encode_to_vec());
    let want = json!({
        "kind": "Deployment", "apiVersion": "apps/v1",
        "metadata": full_meta_json(),
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "web"},
                         "matchExpressions": [{"key": "tier", "operator": "In", "values": ["fe", "be"]}]},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "volumes": [
                        {"name": "data", "emptyDir": {"sizeLimit": "1Gi"}},
                        {"name": "cfg", "configMap": {"name": "cfg", "items": [{"key": "k", "path": "k.txt", "mode": 256}],
                                                      "defaultMode": 420}},
                        {"name": "sec", "secret": {"secretName": "sec", "optional": true}},
                        {"name": "pvc", "persistentVolumeClaim": {"claimName": "claim"}}
                    ],
                    "initContainers": [{"name": "init", "image": "busybox", "resources": {}}],
                    "containers": [full_container_json()],
                    "restartPolicy": "Always",
                    "terminationGracePeriodSeconds": 30,
                    "dnsPolicy": "ClusterFirst",
                    "nodeSelector": {"disk": "ssd"},
                    "serviceAccountName": "runner",
                    "imagePullSecrets": [{"name": "regcred"}],
                    "schedulerName": "default-scheduler",
                    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "web", "effect": "NoSchedule"}],
                    "enableServiceLinks": false
                }
            },
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": 1}},
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600
        },
        "status": {}
    });
    assert_eq!(decode(&body).expect("decodes"), want);
}

#[test]
fn deployment_without_selector_prints_null_like_go() {
    let d = apps::Deployment {
        spec: Some(apps::DeploymentSpec::default()),
        ..Default::default()
    };
    let got = decode(&envelope("apps/v1", "Deployment", d.encode_to_vec())).expect("decodes");
    assert_eq!(
        got,
        json!({"kind": "Deployment", "apiVersion": "apps/v1", "spec": {"selector": null}})
    );
}

#[test]
fn full_service_converts_every_supported_field() {
    let svc = core::Service {
        metadata: Some(full_meta()),
        spec: Some(core::ServiceSpec {
            ports: vec![core::ServicePort {
                name: s("https"),
                protocol: s("TCP"),
                app_protocol: s("https"),
                port: Some(443),
                target_port: Some(ios_str("https")),
                node_port: Some(30443),
            }],
            selector: labels(&[("app", "web")]),
            cluster_ip: s("10.0.0.10"),
            cluster_ips: vec!["10.0.0.10".into()],
            r#type: s("LoadBalancer"),
            external_ips: vec!["1.2.3.4".into()],
            session_affinity: s("ClientIP"),
            load_balancer_ip: s(""),
            load_balancer_source_ranges: vec!["0.0.0.0/0".into()],
            external_name: s(""),
            external_traffic_policy: s("Local"),
            health_check_node_port: Some(32000),
            publish_not_ready_addresses: Some(true),
            session_affinity_config: Some(core::SessionAffinityConfig {
                client_ip: Some(core::ClientIpConfig {
                    timeout_seconds: Some(10800),
                }),
            }),
            ip_families: vec!["IPv4".into()],
            ip_family_policy: s("SingleStack"),
            allocate_load_balancer_node_ports: Some(true),
            load_balancer_class: None,
            internal_traffic_policy: s("Cluster"),
            traffic_distribution: s("PreferClose"),
        }),
        status: Some(core::ServiceStatus {
            load_balancer: Some(core::LoadBalancerStatus::default()),
            conditions: vec![],
        }),
    };
    let got = decode(&envelope("v1", "Service", svc.encode_to_vec())).expect("decodes");
    assert_eq!(
        got,
        json!({
            "kind": "Service", "apiVersion": "v1", "metadata": full_meta_json(),
            "spec": {
                "ports": [{"name": "https", "protocol": "TCP", "appProtocol": "https", "port": 443,
                           "targetPort": "https", "nodePort": 30443}],
                "selector": {"app": "web"},
                "clusterIP": "10.0.0.10", "clusterIPs": ["10.0.0.10"], "type": "LoadBalancer",
                "externalIPs": ["1.2.3.4"], "sessionAffinity": "ClientIP",
                "loadBalancerSourceRanges": ["0.0.0.0/0"], "externalTrafficPolicy": "Local",
                "healthCheckNodePort": 32000, "publishNotReadyAddresses": true,
                "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10800}},
                "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                "allocateLoadBalancerNodePorts": true, "internalTrafficPolicy": "Cluster",
                "trafficDistribution": "PreferClose"
            },
            "status": {"loadBalancer": {}}
        })
    );
}

#[test]
fn secret_string_data_type_and_immutable() {
    let secret = core::Secret {
        metadata: Some(meta::ObjectMeta {
            name: s("tls"),
            ..Default::default()
        }),
        immutable: Some(true),
        data: [
            ("tls.key".to_string(), vec![0u8, 1, 2, 255]),
            ("empty".to_string(), vec![]),
        ]
        .into(),
        string_data: labels(&[("note", "plain text")]),
        r#type: s("kubernetes.io/tls"),
    };
    let got = decode(&envelope("v1", "Secret", secret.encode_to_vec())).expect("decodes");
    assert_eq!(
        got,
        json!({"kind": "Secret", "apiVersion": "v1", "metadata": {"name": "tls"}, "immutable": true,
               "data": {"tls.key": "AAEC/w==", "empty": ""}, "stringData": {"note": "plain text"},
               "type": "kubernetes.io/tls"})
    );
}

#[test]
fn configmap_immutable_with_binary_data() {
    let cm = core::ConfigMap {
        metadata: None,
        immutable: Some(false),
        data: labels(&[("a", "1")]),
        binary_data: [("b".to_string(), b"hi".to_vec())].into(),
    };
    let got = decode(&envelope("v1", "ConfigMap", cm.encode_to_vec())).expect("decodes");
    assert_eq!(
        got,
        json!({"kind": "ConfigMap", "apiVersion": "v1", "immutable": false,
               "data": {"a": "1"}, "binaryData": {"b": "aGk="}})
    );
}

#[test]
fn go_map_entries_with_empty_values_are_accepted() {
    // Go writes both key and value of every map entry, prost leaves empty
    // ones out when re-encoding: ConfigMap{metadata{name:"x"}, data{"k": ""}, data{"": "v"}}.
    let raw = [
        0x0a, 0x03, 0x0a, 0x01, b'x', // metadata { name: "x" }
        0x12, 0x05, 0x0a, 0x01, b'k', 0x12, 0x00, // data entry "k" => ""
        0x12, 0x05, 0x0a, 0x00, 0x12, 0x01, b'v', // data entry "" => "v"
    ];
    let got = decode(&envelope("v1", "ConfigMap", raw.to_vec())).expect("decodes");
    assert_eq!(
        got,
        json!({"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "x"}, "data": {"k": "", "": "v"}})
    );
}

#[test]
fn delete_options_all_fields() {
    let opts = meta::DeleteOptions {
        grace_period_seconds: Some(0),
        preconditions: Some(meta::Preconditions {
            uid: s("abc"),
            resource_version: s("42"),
        }),
        orphan_dependents: None,
        propagation_policy: s("Foreground"),
        dry_run: vec!["All".into()],
        ignore_store_read_error_with_cluster_breaking_potential: None,
    };
    let got = decode(&envelope(
        "meta.k8s.io/v1",
        "DeleteOptions",
        opts.encode_to_vec(),
    ))
    .expect("decodes");
    assert_eq!(
        got,
        json!({"kind": "DeleteOptions", "apiVersion": "meta.k8s.io/v1", "gracePeriodSeconds": 0,
               "preconditions": {"uid": "abc", "resourceVersion": "42"},
               "propagationPolicy": "Foreground", "dryRun": ["All"]})
    );
}

#[test]
fn namespace_with_deletion_timestamp_and_finalizers() {
    let ns = core::Namespace {
        metadata: Some(meta::ObjectMeta {
            name: s("old"),
            deletion_timestamp: Some(meta::Time {
                seconds: Some(951_782_400),
                nanos: Some(0),
            }),
            deletion_grace_period_seconds: Some(0),
            ..Default::default()
        }),
        spec: Some(core::NamespaceSpec {
            finalizers: vec!["kubernetes".into()],
        }),
        status: Some(core::NamespaceStatus {
            phase: s("Terminating"),
            conditions: vec![],
        }),
    };
    let got = decode(&envelope("v1", "Namespace", ns.encode_to_vec())).expect("decodes");
    assert_eq!(
        got,
        json!({"kind": "Namespace", "apiVersion": "v1",
               "metadata": {"name": "old", "deletionTimestamp": "2000-02-29T00:00:00Z",
                            "deletionGracePeriodSeconds": 0},
               "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Terminating"}})
    );
}

#[test]
fn rfc3339_formatting() {
    assert_eq!(rfc3339(0).as_deref(), Some("1970-01-01T00:00:00Z"));
    assert_eq!(
        rfc3339(1_700_000_000).as_deref(),
        Some("2023-11-14T22:13:20Z")
    );
    assert_eq!(
        rfc3339(951_782_400).as_deref(),
        Some("2000-02-29T00:00:00Z")
    );
    assert_eq!(rfc3339(-1).as_deref(), Some("1969-12-31T23:59:59Z"));
    assert_eq!(
        rfc3339(253_402_300_799).as_deref(),
        Some("9999-12-31T23:59:59Z")
    );
    assert_eq!(rfc3339(253_402_300_800), None);
    assert_eq!(rfc3339(i64::MAX), None);
    assert_eq!(rfc3339(i64::MIN), None);
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

#[test]
fn empty_and_bad_magic_bodies_are_rejected() {
    for body in [
        &b""[..],
        b"k8s",
        b"k8s\x01\x0a\x00",
        b"{\"kind\":\"Namespace\"}",
        b"K8S\0",
    ] {
        assert!(
            matches!(decode(body), Err(ProtobufError::MissingMagic)),
            "{body:?}"
        );
    }
    let mut json_body = fixture("namespace").to_vec();
    json_body[0] = b'{';
    assert!(matches!(
        decode(&json_body),
        Err(ProtobufError::MissingMagic)
    ));
}

#[test]
fn truncated_body_is_rejected() {
    let body = fixture("deployment");
    for cut in [5, 20, body.len() / 2, body.len() - 1] {
        let err = decode(&body[..cut]).expect_err("truncated body must fail");
        assert_eq!(err.status_code(), 400, "{cut}: {err}");
    }
    // Just the magic: an empty envelope has no kind.
    assert!(matches!(
        decode(b"k8s\0"),
        Err(ProtobufError::MissingTypeMeta)
    ));
}

#[test]
fn garbage_after_magic_is_rejected() {
    let err = decode(b"k8s\0\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff").expect_err("garbage");
    assert!(matches!(err, ProtobufError::Envelope(_)), "{err}");
    let mut garbage = MAGIC.to_vec();
    garbage.extend((0u8..200).map(|i| i.wrapping_mul(37).wrapping_add(11)));
    assert!(decode(&garbage).is_err());
    // A valid envelope whose raw bytes are not a Deployment.
    let err =
        decode(&envelope("apps/v1", "Deployment", vec![0x0a, 0x05, 0x01])).expect_err("bad raw");
    assert!(matches!(err, ProtobufError::Decode { .. }), "{err}");
}

#[test]
fn unsupported_kind_is_a_415_with_kube_apiserver_message() {
    let node = core::Node {
        metadata: Some(meta::ObjectMeta {
            name: s("n1"),
            ..Default::default()
        }),
        ..Default::default()
    };
    let err = decode(&envelope("v1", "Node", node.encode_to_vec())).expect_err("unsupported kind");
    assert!(
        matches!(&err, ProtobufError::UnsupportedKind { api_version, kind } if api_version == "v1" && kind == "Node")
    );
    assert_eq!(err.status_code(), 415);
    assert_eq!(err.status_reason(), "UnsupportedMediaType");
    assert_eq!(
        err.status_message(),
        "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml"
    );
    // A known kind under the wrong group version is unsupported too.
    let err = decode(&envelope("apps/v1beta1", "Deployment", vec![])).expect_err("old version");
    assert_eq!(err.status_code(), 415);
    assert_eq!(
        unsupported_media_type_message(&[CONTENT_TYPE]),
        "the body of the request was in an unknown format - accepted media types include: application/vnd.kubernetes.protobuf"
    );
}

#[test]
fn envelope_encoding_must_be_plain() {
    let mut unknown = Unknown::decode(&fixture("namespace")[4..]).expect("fixture envelope");
    unknown.content_encoding = s("gzip");
    let mut body = MAGIC.to_vec();
    body.extend(unknown.encode_to_vec());
    let err = decode(&body).expect_err("gzip");
    assert!(
        matches!(
            err,
            ProtobufError::EnvelopeEncoding {
                field: "contentEncoding",
                ..
            }
        ),
        "{err}"
    );

    let mut unknown = Unknown::decode(&fixture("namespace")[4..]).expect("fixture envelope");
    unknown.content_type = s("application/json");
    let mut body = MAGIC.to_vec();
    body.extend(unknown.encode_to_vec());
    assert!(matches!(
        decode(&body),
        Err(ProtobufError::EnvelopeEncoding {
            field: "contentType",
            ..
        })
    ));

    let mut unknown = Unknown::decode(&fixture("namespace")[4..]).expect("fixture envelope");
    unknown.content_type = s(CONTENT_TYPE);
    let mut body = MAGIC.to_vec();
    body.extend(unknown.encode_to_vec());
    assert!(decode(&body).is_ok());
}

#[test]
fn unsupported_known_fields_are_named() {
    let mut d = full_deployment();
    let spec = d
        .spec
        .as_mut()
        .and_then(|s| s.template.as_mut())
        .and_then(|t| t.spec.as_mut());
    let spec = spec.expect("template spec");
    spec.containers[0].security_context = Some(core::SecurityContext {
        run_as_non_root: Some(true),
        ..Default::default()
    });
    let err =
        decode(&envelope("apps/v1", "Deployment", d.encode_to_vec())).expect_err("securityContext");
    match &err {
        ProtobufError::UnsupportedField { field } => {
            assert_eq!(
                field,
                "Deployment.spec.template.spec.containers[0].securityContext"
            )
        }
        other => panic!("{other}"),
    }
    assert_eq!(err.status_code(), 400);
    assert!(err.to_string().contains("containers[0].securityContext"));

    let mut d = full_deployment();
    let spec = d
        .spec
        .as_mut()
        .and_then(|s| s.template.as_mut())
        .and_then(|t| t.spec.as_mut());
    spec.expect("template spec").affinity = Some(core::Affinity::default());
    let err = decode(&envelope("apps/v1", "Deployment", d.encode_to_vec())).expect_err("affinity");
    assert_eq!(
        err.to_string().split(' ').nth(1),
        Some("Deployment.spec.template.spec.affinity")
    );

    let mut meta = full_meta();
    meta.managed_fields = vec![meta::ManagedFieldsEntry::default()];
    let cm = core::ConfigMap {
        metadata: Some(meta),
        ..Default::default()
    };
    let err = decode(&envelope("v1", "ConfigMap", cm.encode_to_vec())).expect_err("managedFields");
    assert!(
        err.to_string().contains("ConfigMap.metadata.managedFields"),
        "{err}"
    );

    // A non-pointer field holding its zero value is not "set".
    let mut d = full_deployment();
    d.status = Some(apps::DeploymentStatus {
        conditions: vec![apps::DeploymentCondition::default()],
        ..Default::default()
    });
    let err =
        decode(&envelope("apps/v1", "Deployment", d.encode_to_vec())).expect_err("conditions");
    assert!(
        err.to_string().contains("Deployment.status.conditions"),
        "{err}"
    );
}

#[test]
fn fields_unknown_to_the_schema_are_reported_with_their_number() {
    // Field 99 appended at the top level of a real Namespace body.
    let unknown = Unknown::decode(&fixture("namespace")[4..]).expect("fixture envelope");
    let mut raw = unknown.raw.clone().expect("raw");
    raw.extend([0xca, 0x06, 0x01, b'x']); // field 105, length-delimited "x"
    let err = decode(&envelope("v1", "Namespace", raw)).expect_err("unknown field");
    match err {
        ProtobufError::UnknownField { kind, path, tag } => {
            assert_eq!(
                (kind.as_str(), path.as_str(), tag),
                ("Namespace", "105", 105)
            )
        }
        other => panic!("{other}"),
    }

    // Field 50 (varint 1) inside metadata: ConfigMap{metadata{name:"x", 50:1}}.
    let raw = vec![0x0a, 0x06, 0x0a, 0x01, b'x', 0x90, 0x03, 0x01];
    let err = decode(&envelope("v1", "ConfigMap", raw)).expect_err("nested unknown field");
    assert!(
        matches!(&err, ProtobufError::UnknownField { path, tag: 50, .. } if path == "1.50"),
        "{err}"
    );

    // The same field holding zero carries no data and is accepted.
    let raw = vec![0x0a, 0x06, 0x0a, 0x01, b'x', 0x90, 0x03, 0x00];
    assert!(decode(&envelope("v1", "ConfigMap", raw)).is_ok());
}

#[test]
fn invalid_int_or_string_type_is_rejected() {
    let pdb = policy::PodDisruptionBudget {
        spec: Some(policy::PodDisruptionBudgetSpec {
            min_available: Some(IntOrString {
                r#type: Some(7),
                int_val: Some(1),
                str_val: None,
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let err = decode(&envelope(
        "policy/v1",
        "PodDisruptionBudget",
        pdb.encode_to_vec(),
    ))
    .expect_err("bad type");
    assert!(
        err.to_string()
            .contains("PodDisruptionBudget.spec.minAvailable"),
        "{err}"
    );
}

#[test]
fn wire_walk_explains_prost_reencoding() {
    assert_eq!(wire::unexplained(b"", b""), None);
    assert_eq!(wire::unexplained(&[0x08, 0x01], &[0x08, 0x01]), None);
    assert_eq!(
        wire::unexplained(&[0x08, 0x01, 0x10, 0x02], &[0x08, 0x01]),
        Some(vec![2])
    );
    assert_eq!(
        wire::unexplained(&[0x08, 0x01, 0x10, 0x00], &[0x08, 0x01]),
        None
    );
    // Reordered repeated entries are fine.
    assert_eq!(
        wire::unexplained(
            &[0x12, 0x01, b'a', 0x12, 0x01, b'b'],
            &[0x12, 0x01, b'b', 0x12, 0x01, b'a']
        ),
        None
    );
    // Invalid wire data is unexplained at the current path.
    assert_eq!(wire::unexplained(&[0x0f], &[]), Some(vec![]));
}

// ---------------------------------------------------------------------------
// Robustness: mutated real bodies never panic
// ---------------------------------------------------------------------------

#[test]
fn mutated_fixtures_never_panic() {
    let mut runs = 0usize;
    let mut errors = 0usize;
    for (_, _, body, _) in FIXTURES {
        for i in 0..body.len() {
            for mask in [0x01u8, 0x80, 0xff] {
                let mut b = body.to_vec();
                b[i] ^= mask;
                runs += 1;
                errors += usize::from(decode(&b).is_err());
            }
            let _ = decode(&body[..i]);
            let mut dup = body[..i].to_vec();
            dup.extend_from_slice(&body[i..]);
            dup.extend_from_slice(&body[i..]);
            let _ = decode(&dup);
            runs += 2;
        }
    }
    assert!(runs > 10_000, "{runs}");
    assert!(errors > 0);
}

#[test]
fn pod_like_kubectl_run_with_go_zero_values() {
    // What Go writes for `kubectl run pod1 --image=nginx --port=80 --labels=app=p --env=A=B`:
    // non-pointer fields are present with zero values; the JSON is kubectl's own JSON body.
    let pod = core::Pod {
        metadata: Some(meta::ObjectMeta {
            name: s("pod1"),
            generate_name: s(""),
            namespace: s(""),
            generation: Some(0),
            creation_timestamp: Some(meta::Time::default()),
            labels: labels(&[("app", "p")]),
            ..Default::default()
        }),
        spec: Some(core::PodSpec {
            containers: vec![core::Container {
                name: s("pod1"),
                image: s("nginx"),
                ports: vec![core::ContainerPort {
                    name: s(""),
                    host_port: Some(0),
                    container_port: Some(80),
                    protocol: s(""),
                    host_ip: s(""),
                }],
                env: vec![core::EnvVar {
                    name: s("A"),
                    value: s("B"),
                    value_from: None,
                }],
                resources: Some(core::ResourceRequirements::default()),
                tty: Some(false),
                ..Default::default()
            }],
            restart_policy: s("Always"),
            dns_policy: s("ClusterFirst"),
            host_network: Some(false),
            ..Default::default()
        }),
        status: Some(core::PodStatus {
            phase: s(""),
            qos_class: s(""),
            observed_generation: Some(0),
            ..Default::default()
        }),
    };
    let kubectl_json: Value = serde_json::from_str(
        r#"{"kind":"Pod","apiVersion":"v1","metadata":{"name":"pod1","labels":{"app":"p"}},"spec":{"containers":[{"name":"pod1","image":"nginx","ports":[{"containerPort":80}],"env":[{"name":"A","value":"B"}],"resources":{}}],"restartPolicy":"Always","dnsPolicy":"ClusterFirst"},"status":{}}"#,
    )
    .expect("json");
    assert_eq!(
        decode(&envelope("v1", "Pod", pod.encode_to_vec())).expect("decodes"),
        kubectl_json
    );

    let running = core::Pod {
        status: Some(core::PodStatus {
            phase: s("Running"),
            ..Default::default()
        }),
        ..Default::default()
    };
    let err = decode(&envelope("v1", "Pod", running.encode_to_vec())).expect_err("status");
    assert!(err.to_string().contains("Pod.status.phase"), "{err}");
}
