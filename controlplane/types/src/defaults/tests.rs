use super::*;
use crate::quantity::Quantity;
use serde_json::json;

fn defaulted(kind: &str, mut obj: Value) -> Value {
    apply_defaults(kind, &mut obj);
    obj
}

/// The container defaults every template/pod container gets.
fn container_defaults(name: &str, image: &str, policy: &str) -> Value {
    json!({
        "name": name, "image": image, "imagePullPolicy": policy, "resources": {},
        "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
    })
}

fn template_spec_defaults(containers: Value, restart: &str) -> Value {
    json!({
        "containers": containers, "dnsPolicy": "ClusterFirst", "restartPolicy": restart,
        "schedulerName": "default-scheduler", "securityContext": {},
        "terminationGracePeriodSeconds": 30,
    })
}

#[test]
fn pod_gets_spec_container_probe_volume_and_pod_only_defaults() {
    let pod = defaulted(
        "Pod",
        json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"web","namespace":"default"},
            "spec":{"containers":[{"name":"nginx","image":"nginx","ports":[{"containerPort":80}],
                "resources":{"limits":{"cpu":"0.5","memory":"128Mi"}},
                "livenessProbe":{"httpGet":{"port":80}},
                "readinessProbe":{"grpc":{"port":9000},"periodSeconds":5},
                "lifecycle":{"preStop":{"httpGet":{"port":"http"}}},
                "env":[{"name":"POD","valueFrom":{"fieldRef":{"fieldPath":"metadata.name"}}}]}],
              "initContainers":[{"name":"init","image":"busybox:1.36"}],
              "volumes":[{"name":"cache"},{"name":"cfg","configMap":{"name":"cfg"}},
                {"name":"sec","secret":{"secretName":"s"}},{"name":"host","hostPath":{"path":"/x"}},
                {"name":"info","downwardAPI":{"items":[{"path":"n","fieldRef":{"fieldPath":"metadata.name"}}]}},
                {"name":"tok","projected":{"sources":[{"serviceAccountToken":{"path":"t"}}]}}]}}),
    );
    assert_eq!(
        pod["spec"],
        json!({
            "containers": [{
                "name": "nginx", "image": "nginx", "imagePullPolicy": "Always",
                "ports": [{"containerPort": 80, "protocol": "TCP"}],
                "resources": {"limits": {"cpu": "500m", "memory": "128Mi"},
                              "requests": {"cpu": "500m", "memory": "128Mi"}},
                "livenessProbe": {"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"},
                    "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3},
                "readinessProbe": {"grpc": {"port": 9000, "service": ""},
                    "timeoutSeconds": 1, "periodSeconds": 5, "successThreshold": 1, "failureThreshold": 3},
                "lifecycle": {"preStop": {"httpGet": {"port": "http", "path": "/", "scheme": "HTTP"}}},
                "env": [{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name", "apiVersion": "v1"}}}],
                "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
            }],
            "initContainers": [container_defaults("init", "busybox:1.36", "IfNotPresent")],
            "volumes": [
                {"name": "cache", "emptyDir": {}},
                {"name": "cfg", "configMap": {"name": "cfg", "defaultMode": 420}},
                {"name": "sec", "secret": {"secretName": "s", "defaultMode": 420}},
                {"name": "host", "hostPath": {"path": "/x", "type": ""}},
                {"name": "info", "downwardAPI": {"defaultMode": 420, "items": [
                    {"path": "n", "fieldRef": {"fieldPath": "metadata.name", "apiVersion": "v1"}}]}},
                {"name": "tok", "projected": {"defaultMode": 420, "sources": [
                    {"serviceAccountToken": {"path": "t", "expirationSeconds": 3600}}]}},
            ],
            "dnsPolicy": "ClusterFirst", "restartPolicy": "Always", "securityContext": {},
            "terminationGracePeriodSeconds": 30, "schedulerName": "default-scheduler",
            "enableServiceLinks": true,
        })
    );
    // Defaulting is idempotent.
    assert_eq!(defaulted("Pod", pod.clone()), pod);
}

#[test]
fn explicit_pod_values_are_kept() {
    let pod = defaulted(
        "Pod",
        json!({"spec":{"restartPolicy":"Never","dnsPolicy":"Default","terminationGracePeriodSeconds":0,
            "enableServiceLinks":false,"serviceAccount":"builder",
            "containers":[{"name":"c","image":"nginx","imagePullPolicy":"Never",
                "terminationMessagePolicy":"FallbackToLogsOnError","ports":[{"containerPort":53,"protocol":"UDP"}]}]}}),
    );
    let spec = &pod["spec"];
    assert_eq!(spec["restartPolicy"], "Never");
    assert_eq!(spec["dnsPolicy"], "Default");
    assert_eq!(spec["terminationGracePeriodSeconds"], 0);
    assert_eq!(spec["enableServiceLinks"], false);
    assert_eq!(spec["serviceAccountName"], "builder");
    assert_eq!(spec["serviceAccount"], "builder");
    assert_eq!(spec["containers"][0]["imagePullPolicy"], "Never");
    assert_eq!(
        spec["containers"][0]["terminationMessagePolicy"],
        "FallbackToLogsOnError"
    );
    assert_eq!(spec["containers"][0]["ports"][0]["protocol"], "UDP");
}

#[test]
fn host_network_pods_get_host_ports() {
    let pod = defaulted(
        "Pod",
        json!({"spec":{"hostNetwork":true,"containers":[{"name":"c","image":"x:1","ports":[{"containerPort":8080}]}]}}),
    );
    assert_eq!(pod["spec"]["containers"][0]["ports"][0]["hostPort"], 8080);
}

#[test]
fn image_pull_policy_follows_the_tag() {
    let digest = format!("nginx@sha256:{}", "a".repeat(64));
    for (image, want) in [
        ("nginx", "Always"),
        ("nginx:latest", "Always"),
        ("nginx:1.25", "IfNotPresent"),
        ("library/nginx:1.25-alpine", "IfNotPresent"),
        ("localhost:5000/app", "Always"),
        ("registry.example.com:5000/team/app:v1", "IfNotPresent"),
        (digest.as_str(), "IfNotPresent"),
        ("Nginx", "IfNotPresent"),
        ("", "IfNotPresent"),
    ] {
        assert_eq!(pull_policy_for(image), want, "{image}");
    }
}

#[test]
fn quantities_are_canonical_and_rounded_to_milli() {
    for (input, want) in [
        ("0.5", "500m"),
        ("1000m", "1"),
        ("1500m", "1500m"),
        ("1.5", "1500m"),
        ("1000", "1k"),
        ("100M", "100M"),
        ("1024Mi", "1Gi"),
        ("1536Mi", "1536Mi"),
        ("0.5Gi", "512Mi"),
        ("0.5Ki", "512"),
        ("100n", "1m"),
        ("0.0001", "1m"),
        ("1e3", "1e3"),
        ("1.5e3", "1500"),
        ("12e-1", "1200e-3"),
        ("128974848", "128974848"),
        ("0", "0"),
        ("-1", "-1"),
    ] {
        let got = Quantity::parse(input).map(|q| q.round_up_to_milli().canonical());
        assert_eq!(got.as_deref(), Some(want), "{input}");
    }
    for bad in ["", "abc", "1.2.3", "5Xi", "1e", "--1", "."] {
        assert!(Quantity::parse(bad).is_none(), "{bad}");
    }
    let a = Quantity::parse("1").unwrap();
    let b = Quantity::parse("1000m").unwrap();
    assert!(a.cmp_value(&b).is_eq());
    assert!(Quantity::parse("1Gi")
        .unwrap()
        .cmp_value(&Quantity::parse("1G").unwrap())
        .is_gt());
}

#[test]
fn deployment_defaults_match_kubectl_get() {
    let d = defaulted(
        "Deployment",
        json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","labels":{"app":"web"}},
            "spec":{"selector":{"matchLabels":{"app":"web"}},
              "template":{"metadata":{"labels":{"app":"web"}},
                "spec":{"containers":[{"name":"nginx","image":"nginx:1.25"}]}}}}),
    );
    assert_eq!(
        d["spec"],
        json!({
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": template_spec_defaults(json!([container_defaults("nginx", "nginx:1.25", "IfNotPresent")]), "Always"),
            },
        })
    );
    let recreate = defaulted(
        "Deployment",
        json!({"spec":{"strategy":{"type":"Recreate"},"replicas":0}}),
    );
    assert_eq!(recreate["spec"]["strategy"], json!({"type": "Recreate"}));
    assert_eq!(recreate["spec"]["replicas"], 0);
    assert_eq!(recreate["spec"]["template"]["metadata"], json!({}));
}

#[test]
fn replica_set_defaults() {
    let rs = defaulted(
        "ReplicaSet",
        json!({"spec":{"selector":{"matchLabels":{"a":"b"}},"template":{"metadata":{"labels":{"a":"b"}},
            "spec":{"containers":[{"name":"c","image":"nginx:1"}]}}}}),
    );
    assert_eq!(
        rs["spec"],
        json!({"replicas": 1, "selector": {"matchLabels": {"a": "b"}},
            "template": {"metadata": {"labels": {"a": "b"}},
                "spec": template_spec_defaults(json!([container_defaults("c", "nginx:1", "IfNotPresent")]), "Always")}})
    );
}

#[test]
fn job_defaults_and_generated_selector() {
    let mut job = defaulted(
        "Job",
        json!({"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"pi"},
            "spec":{"backoffLimit":4,"template":{"spec":{"restartPolicy":"Never",
                "containers":[{"name":"pi","image":"perl:5.34.0","command":["perl"]}]}}}}),
    );
    let mut container = container_defaults("pi", "perl:5.34.0", "IfNotPresent");
    container["command"] = json!(["perl"]);
    assert_eq!(
        job["spec"],
        json!({
            "backoffLimit": 4, "completions": 1, "parallelism": 1, "completionMode": "NonIndexed",
            "suspend": false, "podReplacementPolicy": "TerminatingOrFailed", "manualSelector": false,
            "template": {"metadata": {}, "spec": template_spec_defaults(json!([container]), "Never")},
        })
    );
    job_selector_defaults(&mut job, "8d0f-uid");
    assert_eq!(
        job["spec"]["template"]["metadata"]["labels"],
        json!({"batch.kubernetes.io/controller-uid": "8d0f-uid", "batch.kubernetes.io/job-name": "pi",
               "controller-uid": "8d0f-uid", "job-name": "pi"})
    );
    assert_eq!(
        job["spec"]["selector"],
        json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "8d0f-uid"}})
    );
    // A manual selector is left alone.
    let mut manual = json!({"spec":{"manualSelector":true,"selector":{"matchLabels":{"x":"y"}}}});
    job_selector_defaults(&mut manual, "u");
    assert_eq!(
        manual,
        json!({"spec":{"manualSelector":true,"selector":{"matchLabels":{"x":"y"}}}})
    );
}

#[test]
fn job_parallelism_backoff_and_labels() {
    let j = defaulted(
        "Job",
        json!({"spec":{"completions":5,"backoffLimitPerIndex":1,"completionMode":"Indexed",
            "podFailurePolicy":{"rules":[{"action":"Ignore","onPodConditions":[{"type":"DisruptionTarget"}]}]},
            "template":{"metadata":{"labels":{"app":"batch"}},"spec":{"containers":[]}}}}),
    );
    let spec = &j["spec"];
    assert_eq!(spec["completions"], 5);
    assert_eq!(spec["parallelism"], 1);
    assert_eq!(spec["backoffLimit"], 2147483647);
    assert_eq!(spec["podReplacementPolicy"], "Failed");
    assert_eq!(
        spec["podFailurePolicy"]["rules"][0]["onPodConditions"][0]["status"],
        "True"
    );
    assert_eq!(j["metadata"]["labels"], json!({"app": "batch"}));
    assert_eq!(spec["template"]["spec"]["restartPolicy"], "Always");
}

#[test]
fn cron_job_defaults() {
    let cj = defaulted(
        "CronJob",
        json!({"spec":{"schedule":"*/5 * * * *","jobTemplate":{"spec":{"template":{"spec":{
            "restartPolicy":"OnFailure","containers":[{"name":"c","image":"busybox"}]}}}}}}),
    );
    assert_eq!(
        cj["spec"],
        json!({
            "schedule": "*/5 * * * *", "concurrencyPolicy": "Allow", "suspend": false,
            "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 1,
            "jobTemplate": {"metadata": {}, "spec": {"template": {"metadata": {},
                "spec": template_spec_defaults(json!([container_defaults("c", "busybox", "Always")]), "OnFailure")}}},
        })
    );
}

#[test]
fn service_defaults() {
    let s = defaulted(
        "Service",
        json!({"spec":{"selector":{"app":"web"},"ports":[{"port":80},{"name":"https","port":443,"targetPort":8443}]}}),
    );
    assert_eq!(
        s["spec"],
        json!({"selector": {"app": "web"}, "type": "ClusterIP", "sessionAffinity": "None",
            "internalTrafficPolicy": "Cluster",
            "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80},
                      {"name": "https", "port": 443, "targetPort": 8443, "protocol": "TCP"}]})
    );
    let lb = defaulted(
        "Service",
        json!({"spec":{"type":"LoadBalancer","sessionAffinity":"ClientIP","ports":[{"port":80,"targetPort":"http"}]},
            "status":{"loadBalancer":{"ingress":[{"ip":"1.2.3.4"},{"hostname":"lb.example.com"}]}}}),
    );
    assert_eq!(
        lb,
        json!({"spec": {"type": "LoadBalancer", "sessionAffinity": "ClientIP",
                "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10800}},
                "ports": [{"port": 80, "targetPort": "http", "protocol": "TCP"}],
                "externalTrafficPolicy": "Cluster", "internalTrafficPolicy": "Cluster",
                "allocateLoadBalancerNodePorts": true},
            "status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4", "ipMode": "VIP"}, {"hostname": "lb.example.com"}]}}})
    );
    let ext = defaulted(
        "Service",
        json!({"spec":{"type":"ExternalName","externalName":"db.example.com","sessionAffinityConfig":{}}}),
    );
    assert_eq!(
        ext["spec"],
        json!({"type": "ExternalName", "externalName": "db.example.com", "sessionAffinity": "None"})
    );
}

#[test]
fn service_update_carries_allocated_values() {
    let old = json!({"spec":{"type":"NodePort","clusterIP":"10.96.0.10","clusterIPs":["10.96.0.10"],
        "ports":[{"name":"http","port":80,"nodePort":30080}]}});
    let mut new = json!({"spec":{"type":"NodePort","ports":[{"name":"http","port":80}]}});
    service_update_defaults(&mut new, &old);
    assert_eq!(new["spec"]["clusterIP"], "10.96.0.10");
    assert_eq!(new["spec"]["clusterIPs"], json!(["10.96.0.10"]));
    assert_eq!(new["spec"]["ports"][0]["nodePort"], 30080);
    let mut changed = json!({"spec":{"type":"NodePort","clusterIP":"10.96.0.11","clusterIPs":["10.96.0.10"],"ports":[]}});
    service_update_defaults(&mut changed, &old);
    assert_eq!(changed["spec"]["clusterIPs"], json!(["10.96.0.11"]));
}

#[test]
fn service_ip_families_on_a_single_stack_cluster() {
    let mut svc = json!({"spec":{"type":"ClusterIP","clusterIP":"10.96.0.10","clusterIPs":["10.96.0.10"],"selector":{"a":"b"}}});
    service_ip_family_defaults(&mut svc, None);
    assert_eq!(svc["spec"]["ipFamilyPolicy"], "SingleStack");
    assert_eq!(svc["spec"]["ipFamilies"], json!(["IPv4"]));
    let mut headless =
        json!({"spec":{"type":"ClusterIP","clusterIP":"None","clusterIPs":["None"]}});
    service_ip_family_defaults(&mut headless, None);
    assert_eq!(headless["spec"]["ipFamilyPolicy"], "RequireDualStack");
    assert_eq!(headless["spec"]["ipFamilies"], json!(["IPv4", "IPv6"]));
    let mut ext = json!({"spec":{"type":"ExternalName"}});
    service_ip_family_defaults(&mut ext, None);
    assert_eq!(ext, json!({"spec":{"type":"ExternalName"}}));
}

#[test]
fn secret_namespace_node_endpoints_defaults() {
    assert_eq!(
        defaulted(
            "Secret",
            json!({"metadata":{"name":"s"},"stringData":{"a":"hello","b":"x"},"data":{"c":"Zm9v"}})
        ),
        json!({"metadata":{"name":"s"},"type":"Opaque","data":{"a":"aGVsbG8=","b":"eA==","c":"Zm9v"}})
    );
    assert_eq!(
        defaulted("Secret", json!({"type":"kubernetes.io/tls"})),
        json!({"type":"kubernetes.io/tls"})
    );
    assert_eq!(
        defaulted("Namespace", json!({"metadata":{"name":"dev"}})),
        json!({"metadata":{"name":"dev","labels":{"kubernetes.io/metadata.name":"dev"}},"status":{"phase":"Active"}})
    );
    assert_eq!(
        defaulted(
            "Node",
            json!({"metadata":{"name":"n1"},"status":{"capacity":{"cpu":"4","memory":"8Gi","pods":"110"}}})
        ),
        json!({"metadata":{"name":"n1"},"status":{"capacity":{"cpu":"4","memory":"8Gi","pods":"110"},
            "allocatable":{"cpu":"4","memory":"8Gi","pods":"110"}}})
    );
    assert_eq!(
        defaulted(
            "Endpoints",
            json!({"subsets":[{"addresses":[{"ip":"10.0.0.1"}],"ports":[{"port":80},{"port":53,"protocol":"UDP"}]}]})
        ),
        json!({"subsets":[{"addresses":[{"ip":"10.0.0.1"}],"ports":[{"port":80,"protocol":"TCP"},{"port":53,"protocol":"UDP"}]}]})
    );
    assert_eq!(
        defaulted(
            "EndpointSlice",
            json!({"addressType":"IPv4","endpoints":[{"addresses":["10.0.0.1"]}],"ports":[{"port":80}]})
        ),
        json!({"addressType":"IPv4","endpoints":[{"addresses":["10.0.0.1"],"conditions":{}}],"ports":[{"port":80,"name":"","protocol":"TCP"}]})
    );
    for kind in ["ConfigMap", "Event", "Lease", "Unknown"] {
        let obj = json!({"metadata":{"name":"x"},"data":{"k":"v"},"spec":{"holderIdentity":"h"}});
        assert_eq!(defaulted(kind, obj.clone()), obj, "{kind}");
    }
}

#[test]
fn create_preparation() {
    let mut pod = defaulted(
        "Pod",
        json!({"spec":{"containers":[{"name":"c","image":"x:1","resources":{"limits":{"cpu":"1","memory":"1Gi"}}}]}}),
    );
    prepare_for_create("Pod", &mut pod);
    assert_eq!(
        pod["status"],
        json!({"phase": "Pending", "qosClass": "Guaranteed"})
    );
    let mut gated =
        json!({"spec":{"schedulingGates":[{"name":"g"}],"containers":[{"name":"c","image":"x"}]}});
    prepare_for_create("Pod", &mut gated);
    assert_eq!(
        gated["status"],
        json!({"phase": "Pending", "qosClass": "BestEffort", "conditions": [{"type": "PodScheduled", "status": "False",
            "lastProbeTime": null, "lastTransitionTime": null, "reason": "SchedulingGated",
            "message": "Scheduling is blocked due to non-empty scheduling gates"}]})
    );
    let mut headless = json!({"spec":{"clusterIP":"None"}});
    prepare_for_create("Service", &mut headless);
    assert_eq!(
        headless,
        json!({"spec":{"clusterIP":"None","clusterIPs":["None"]},"status":{"loadBalancer":{}}})
    );
    let mut ns = json!({"metadata":{"name":"dev"},"spec":{"finalizers":["example.com/x"]}});
    prepare_for_create("Namespace", &mut ns);
    assert_eq!(
        ns["spec"]["finalizers"],
        json!(["example.com/x", "kubernetes"])
    );
    assert_eq!(ns["status"], json!({"phase": "Active"}));
    for (kind, status) in [
        ("Deployment", json!({})),
        ("Job", json!({})),
        ("CronJob", json!({})),
        ("ReplicaSet", json!({"replicas": 0})),
        ("Service", json!({"loadBalancer": {}})),
    ] {
        let mut obj = json!({"spec":{},"status":{"foo":1}});
        prepare_for_create(kind, &mut obj);
        assert_eq!(obj["status"], status, "{kind}");
    }
}

#[test]
fn qos_classes() {
    let pod = |res: Value| json!({"spec":{"containers":[{"name":"c","resources":res}]}});
    assert_eq!(qos_class(&pod(json!({}))), "BestEffort");
    assert_eq!(
        qos_class(&pod(json!({"requests":{"cpu":"100m"}}))),
        "Burstable"
    );
    assert_eq!(
        qos_class(&pod(
            json!({"requests":{"cpu":"1","memory":"1Gi"},"limits":{"cpu":"1000m","memory":"1024Mi"}})
        )),
        "Guaranteed"
    );
    assert_eq!(
        qos_class(&pod(
            json!({"requests":{"cpu":"1","memory":"1Gi"},"limits":{"cpu":"2","memory":"1Gi"}})
        )),
        "Burstable"
    );
    assert_eq!(qos_class(&pod(json!({"limits":{"cpu":"0"}}))), "BestEffort");
}

#[test]
fn admission_defaults_for_pods() {
    let mut pod = json!({"spec":{"containers":[{"name":"c","image":"x"}],
        "tolerations":[{"key":"node.kubernetes.io/unreachable","operator":"Exists","effect":"NoExecute","tolerationSeconds":60}]}});
    pod_admission_defaults(&mut pod);
    assert_eq!(pod["spec"]["serviceAccountName"], "default");
    assert_eq!(pod["spec"]["serviceAccount"], "default");
    // Priority is the Priority plugin's (pod_priority_admission), which reads classes.
    assert!(pod["spec"].get("priority").is_none());
    assert_eq!(
        pod["spec"]["tolerations"],
        json!([{"key":"node.kubernetes.io/unreachable","operator":"Exists","effect":"NoExecute","tolerationSeconds":60},
               {"key":"node.kubernetes.io/not-ready","operator":"Exists","effect":"NoExecute","tolerationSeconds":300}])
    );
    let mut critical = json!({"spec":{"priorityClassName":"system-node-critical","tolerations":[{"operator":"Exists"}]}});
    pod_admission_defaults(&mut critical);
    assert_eq!(
        critical["spec"]["tolerations"],
        json!([{"operator":"Exists"}])
    );
}

#[test]
fn odd_json_never_panics() {
    let odd = [
        json!(null),
        json!(1),
        json!("pod"),
        json!([1, 2]),
        json!({"spec": "x"}),
        json!({"spec": {"containers": "x", "volumes": [1, null, "v"], "initContainers": [null]}}),
        json!({"spec": {"containers": [{"resources": "x", "ports": [1], "env": [{"valueFrom": 3}]}]}}),
        json!({"spec": {"containers": [{"resources": {"limits": "x", "requests": {"cpu": 5}}}]}}),
        json!({"spec": {"template": [], "strategy": 3, "jobTemplate": {"spec": 1}}}),
        json!({"spec": {"ports": [{"targetPort": [1]}], "type": 5}, "status": "x"}),
        json!({"metadata": "x", "stringData": {"a": 1}, "status": {"capacity": [1]}}),
        json!({"subsets": [{"ports": "x"}], "endpoints": [1], "ports": [null]}),
    ];
    let kinds = [
        "Pod",
        "PodTemplate",
        "Deployment",
        "ReplicaSet",
        "Job",
        "CronJob",
        "Service",
        "Secret",
        "Namespace",
        "Node",
        "Endpoints",
        "EndpointSlice",
        "ConfigMap",
        "Event",
        "Lease",
        "PriorityClass",
    ];
    for kind in kinds {
        for o in &odd {
            let mut v = o.clone();
            apply_defaults(kind, &mut v);
            prepare_for_create(kind, &mut v);
            pod_admission_defaults(&mut v);
            let _ = pod_priority_admission(&mut v, Some(o));
            let _ = pod_priority_admission(&mut v, None);
            pod_priority_on_update(&mut v, o);
            let _ = global_default_priority_class(std::slice::from_ref(o));
            job_selector_defaults(&mut v, "u");
            service_update_defaults(&mut v, o);
            service_ip_family_defaults(&mut v, Some(o));
            let _ = qos_class(&v);
        }
    }
}

#[test]
fn priority_class_defaults() {
    // SetDefaults_PriorityClass, and Go's encoding of value / globalDefault / description.
    let pc = defaulted(
        "PriorityClass",
        json!({"metadata":{"name":"p"},"globalDefault":false,"description":""}),
    );
    assert_eq!(
        pc,
        json!({"metadata":{"name":"p"},"value":0,"preemptionPolicy":"PreemptLowerPriority"})
    );
    let pc = defaulted(
        "PriorityClass.scheduling.k8s.io",
        json!({"value":7,"globalDefault":true,"description":"x","preemptionPolicy":"Never"}),
    );
    assert_eq!(
        pc,
        json!({"value":7,"globalDefault":true,"description":"x","preemptionPolicy":"Never"})
    );
    let mut created = json!({"metadata":{"name":"p"},"value":1});
    prepare_for_create("PriorityClass", &mut created);
    assert_eq!(created["metadata"]["generation"], 1);
}

fn class(name: &str, value: i64, policy: &str, global_default: bool) -> Value {
    let mut c = json!({"metadata":{"name":name},"value":value,"preemptionPolicy":policy});
    if global_default {
        c["globalDefault"] = json!(true);
    }
    c
}

#[test]
fn the_global_default_class_is_the_lowest_default() {
    let classes = [
        class("a", 5, "PreemptLowerPriority", false),
        class("b", 100, "PreemptLowerPriority", true),
        class("c", 50, "Never", true),
        class("d", 50, "Never", true),
    ];
    let d = global_default_priority_class(&classes).expect("a default");
    assert_eq!(d["metadata"]["name"], "c");
    assert!(global_default_priority_class(&classes[..1]).is_none());
}

#[test]
fn pods_take_their_priority_from_the_class() {
    // plugin/pkg/admission/priority/admission.go (admitPod).
    let pod = |spec: Value| json!({"metadata":{"name":"p"},"spec":spec});
    let high = class("high", 1000, "Never", false);

    let mut p = pod(json!({"priorityClassName":"high","containers":[]}));
    pod_priority_admission(&mut p, Some(&high)).expect("admitted");
    assert_eq!(p["spec"]["priority"], 1000);
    assert_eq!(p["spec"]["preemptionPolicy"], "Never");
    assert_eq!(p["spec"]["priorityClassName"], "high");

    // No class and no default: priority 0, PreemptLowerPriority, no class name.
    let mut p = pod(json!({"containers":[]}));
    pod_priority_admission(&mut p, None).expect("admitted");
    assert_eq!(p["spec"]["priority"], 0);
    assert_eq!(p["spec"]["preemptionPolicy"], "PreemptLowerPriority");
    assert!(p["spec"].get("priorityClassName").is_none());

    // No class, a global default: the pod is given the class's name too.
    let default = class("everyone", 10, "PreemptLowerPriority", true);
    let mut p = pod(json!({"containers":[]}));
    pod_priority_admission(&mut p, Some(&default)).expect("admitted");
    assert_eq!(p["spec"]["priority"], 10);
    assert_eq!(p["spec"]["priorityClassName"], "everyone");

    // A priority or policy the client set must agree with the class.
    let mut p = pod(json!({"priorityClassName":"high","priority":1000,"preemptionPolicy":"Never"}));
    pod_priority_admission(&mut p, Some(&high)).expect("agreeing values are allowed");
    let mut p = pod(json!({"priorityClassName":"high","priority":7}));
    assert_eq!(
        pod_priority_admission(&mut p, Some(&high)).unwrap_err(),
        "the integer value of priority (7) must not be provided in pod spec; priority admission controller computed 1000 from the given PriorityClass name"
    );
    let mut p = pod(json!({"priority":3}));
    assert_eq!(
        pod_priority_admission(&mut p, None).unwrap_err(),
        "the integer value of priority (3) must not be provided in pod spec; priority admission controller computed 0 from the given PriorityClass name"
    );
    let mut p = pod(json!({"priorityClassName":"high","preemptionPolicy":"PreemptLowerPriority"}));
    assert_eq!(
        pod_priority_admission(&mut p, Some(&high)).unwrap_err(),
        "the string value of PreemptionPolicy (PreemptLowerPriority) must not be provided in pod spec; priority admission controller computed Never from the given PriorityClass name"
    );
}

#[test]
fn a_pod_update_keeps_the_admitted_priority() {
    let old =
        json!({"spec":{"priority":1000,"preemptionPolicy":"Never","priorityClassName":"high"}});
    let mut new = json!({"spec":{"priorityClassName":"high"}});
    pod_priority_on_update(&mut new, &old);
    assert_eq!(new, old);
    // A value the client sent is left for validation to judge.
    let mut new = json!({"spec":{"priority":5}});
    pod_priority_on_update(&mut new, &old);
    assert_eq!(new["spec"]["priority"], 5);
    assert_eq!(new["spec"]["preemptionPolicy"], "Never");
}
