use super::*;
use crate::defaults::{apply_defaults, job_selector_defaults, prepare_for_create};
use serde_json::json;

const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const NAME_PART_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const CONFIG_KEY_MSG: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";
const POD_UPDATE_MSG: &str = "spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)\n";

/// Sets the value at a JSON pointer, creating objects (and `null`-padding arrays) on the way.
fn set(v: &mut Value, pointer: &str, new: Value) {
    let mut cur = v;
    for part in pointer.split('/').skip(1) {
        if let Ok(i) = part.parse::<usize>() {
            if !cur.is_array() {
                *cur = json!([]);
            }
            let a = cur.as_array_mut().expect("array");
            while a.len() <= i {
                a.push(json!({}));
            }
            cur = &mut a[i];
        } else {
            if !cur.is_object() {
                *cur = json!({});
            }
            cur = cur
                .as_object_mut()
                .expect("object")
                .entry(part)
                .or_insert(Value::Null);
        }
    }
    *cur = new;
}

fn with(mut v: Value, pointer: &str, new: Value) -> Value {
    set(&mut v, pointer, new);
    v
}

fn without(mut v: Value, pointer: &str) -> Value {
    let (parent, key) = pointer.rsplit_once('/').expect("pointer");
    if let Some(p) = v.pointer_mut(parent).and_then(Value::as_object_mut) {
        p.remove(key);
    }
    v
}

/// Defaults, then validates on create; the rendered messages.
fn create(kind: &str, mut obj: Value) -> Vec<String> {
    apply_defaults(kind, &mut obj);
    validate(kind, &obj, None)
        .iter()
        .map(|e| e.render())
        .collect()
}

/// Defaults both, then validates the update.
fn update(kind: &str, mut obj: Value, mut old: Value) -> Vec<String> {
    apply_defaults(kind, &mut obj);
    apply_defaults(kind, &mut old);
    validate(kind, &obj, Some(&old))
        .iter()
        .map(|e| e.render())
        .collect()
}

fn pod() -> Value {
    json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"web","namespace":"default"},
        "spec":{"containers":[{"name":"nginx","image":"nginx:1.25","ports":[{"containerPort":80,"name":"http"}],
            "resources":{"requests":{"cpu":"100m","memory":"64Mi"},"limits":{"cpu":"500m","memory":"128Mi"}},
            "env":[{"name":"MODE","value":"prod"},{"name":"POD_NAME","valueFrom":{"fieldRef":{"fieldPath":"metadata.name"}}},
                   {"name":"PASS","valueFrom":{"secretKeyRef":{"name":"db","key":"password"}}}],
            "envFrom":[{"configMapRef":{"name":"web-config"}}],
            "volumeMounts":[{"name":"data","mountPath":"/data"},{"name":"cfg","mountPath":"/etc/cfg","readOnly":true}],
            "livenessProbe":{"httpGet":{"path":"/healthz","port":"http"},"initialDelaySeconds":5},
            "readinessProbe":{"tcpSocket":{"port":80}},
            "lifecycle":{"preStop":{"exec":{"command":["sleep","5"]}}}}],
          "initContainers":[{"name":"init","image":"busybox:1.36","command":["sh","-c","true"]}],
          "volumes":[{"name":"data","emptyDir":{}},{"name":"cfg","configMap":{"name":"web-config","items":[{"key":"a","path":"a.conf"}]}}],
          "nodeSelector":{"kubernetes.io/os":"linux"},
          "tolerations":[{"key":"dedicated","operator":"Equal","value":"web","effect":"NoSchedule"},
                         {"operator":"Exists","effect":"NoExecute","tolerationSeconds":30}]}})
}

#[test]
fn a_realistic_pod_is_valid() {
    assert_eq!(create("Pod", pod()), Vec::<String>::new());
    assert_eq!(
        create(
            "Pod",
            json!({"spec":{"containers":[{"name":"c","image":"nginx"}]}})
        ),
        Vec::<String>::new()
    );
}

#[test]
fn pod_containers_are_required() {
    assert_eq!(
        create("Pod", json!({"spec":{}})),
        ["spec.containers: Required value"]
    );
    assert_eq!(
        create("Pod", json!({"metadata":{"name":"x"}})),
        ["spec.containers: Required value"]
    );
}

#[test]
fn container_names_and_images() {
    assert_eq!(
        create("Pod", without(pod(), "/spec/containers/0/name")),
        ["spec.containers[0].name: Required value"]
    );
    assert_eq!(
        create(
            "Pod",
            with(pod(), "/spec/containers/0/name", json!("Nginx_1"))
        ),
        [format!(
            "spec.containers[0].name: Invalid value: \"Nginx_1\": {LABEL_MSG}"
        )]
    );
    let mut two = pod();
    let c = two["spec"]["containers"][0].clone();
    set(&mut two, "/spec/containers/1", c);
    assert_eq!(
        create("Pod", two),
        ["spec.containers[1].name: Duplicate value: \"nginx\""]
    );
    assert_eq!(
        create("Pod", without(pod(), "/spec/containers/0/image")),
        ["spec.containers[0].image: Required value"]
    );
    assert_eq!(
        create(
            "Pod",
            with(pod(), "/spec/initContainers/0/name", json!("nginx"))
        ),
        ["spec.initContainers[0].name: Duplicate value: \"nginx\""]
    );
    assert_eq!(
        create("Pod", with(pod(), "/spec/containers/0/image", json!(" nginx"))),
        ["spec.containers[0].image: Invalid value: \" nginx\": must not have leading or trailing whitespace"]
    );
}

#[test]
fn container_ports() {
    assert_eq!(
        create("Pod", with(pod(), "/spec/containers/0/ports/0/containerPort", json!(70000))),
        ["spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive"]
    );
    assert_eq!(
        create(
            "Pod",
            with(
                pod(),
                "/spec/containers/0/ports/0",
                json!({"protocol":"TCP"})
            )
        ),
        ["spec.containers[0].ports[0].containerPort: Required value"]
    );
    assert_eq!(
        create("Pod", with(pod(), "/spec/containers/0/ports/0/protocol", json!("HTTP"))),
        ["spec.containers[0].ports[0].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\""]
    );
    assert_eq!(
        create(
            "Pod",
            with(
                pod(),
                "/spec/containers/0/ports/1",
                json!({"name":"http","containerPort":81})
            )
        ),
        ["spec.containers[0].ports[1].name: Duplicate value: \"http\""]
    );
    assert_eq!(
        create("Pod", with(pod(), "/spec/containers/0/ports/0/name", json!("web_port"))),
        ["spec.containers[0].ports[0].name: Invalid value: \"web_port\": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"]
    );
    let mut hp = pod();
    set(&mut hp, "/spec/containers/0/ports/0/hostPort", json!(8080));
    set(
        &mut hp,
        "/spec/containers/0/ports/1",
        json!({"containerPort":81,"hostPort":8080}),
    );
    assert_eq!(
        create("Pod", hp),
        ["spec.containers[0].ports[1].hostPort: Duplicate value: \"TCP//8080\""]
    );
    let host_net = with(
        with(pod(), "/spec/hostNetwork", json!(true)),
        "/spec/containers/0/ports/0/hostPort",
        json!(8080),
    );
    assert_eq!(
        create("Pod", host_net),
        ["spec.containers[0].ports[0].hostPort: Invalid value: 8080: must match `containerPort` when `hostNetwork` is true"]
    );
}

#[test]
fn pod_level_enumerations() {
    assert_eq!(
        create("Pod", with(pod(), "/spec/restartPolicy", json!("Sometimes"))),
        ["spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\""]
    );
    assert_eq!(
        create("Pod", with(pod(), "/spec/dnsPolicy", json!("Cluster"))),
        ["spec.dnsPolicy: Unsupported value: \"Cluster\": supported values: \"ClusterFirstWithHostNet\", \"ClusterFirst\", \"Default\", \"None\""]
    );
    assert_eq!(
        create("Pod", with(pod(), "/spec/dnsPolicy", json!("None"))),
        ["spec.dnsConfig: Required value: must provide `dnsConfig` when `dnsPolicy` is None"]
    );
    assert_eq!(
        create("Pod", with(pod(), "/spec/containers/0/imagePullPolicy", json!("Sometimes"))),
        ["spec.containers[0].imagePullPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"IfNotPresent\", \"Never\""]
    );
    assert_eq!(
        create("Pod", with(pod(), "/spec/containers/0/terminationMessagePolicy", json!("Log"))),
        ["spec.containers[0].terminationMessagePolicy: Unsupported value: \"Log\": supported values: \"File\", \"FallbackToLogsOnError\""]
    );
    assert_eq!(
        create("Pod", with(pod(), "/spec/preemptionPolicy", json!("Always"))),
        ["spec.preemptionPolicy: Unsupported value: \"Always\": supported values: \"PreemptLowerPriority\", \"Never\""]
    );
    assert_eq!(
        create("Pod", with(pod(), "/spec/activeDeadlineSeconds", json!(0))),
        ["spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and 2147483647, inclusive"]
    );
    assert_eq!(
        create("Pod", with(pod(), "/spec/hostname", json!("web.local"))),
        ["spec.hostname: Invalid value: \"web.local\": must not contain dots"]
    );
    assert_eq!(
        create("Pod", with(pod(), "/spec/securityContext/runAsUser", json!(-1))),
        ["spec.securityContext.runAsUser: Invalid value: -1: must be between 0 and 2147483647, inclusive"]
    );
    // Upstream accepts a negative grace period (it only warns).
    assert_eq!(
        create(
            "Pod",
            with(pod(), "/spec/terminationGracePeriodSeconds", json!(-5))
        ),
        Vec::<String>::new()
    );
}

#[test]
fn resources_requests_must_not_exceed_limits() {
    assert_eq!(
        create("Pod", with(pod(), "/spec/containers/0/resources/requests/cpu", json!("1"))),
        ["spec.containers[0].resources.requests: Invalid value: \"1\": must be less than or equal to cpu limit of 500m"]
    );
    assert_eq!(
        create("Pod", with(pod(), "/spec/containers/0/resources/requests/memory", json!("0.25Gi"))),
        ["spec.containers[0].resources.requests: Invalid value: \"256Mi\": must be less than or equal to memory limit of 128Mi"]
    );
    assert_eq!(
        create("Pod", with(pod(), "/spec/containers/0/resources/requests/memory", json!("-1"))),
        ["spec.containers[0].resources.requests[memory]: Invalid value: \"-1\": must be greater than or equal to 0"]
    );
    assert_eq!(
        create("Pod", with(pod(), "/spec/containers/0/resources/limits/gpu", json!("1"))),
        [
            "spec.containers[0].resources.limits[gpu]: Invalid value: \"gpu\": must be a standard resource type or fully qualified",
            "spec.containers[0].resources.limits[gpu]: Invalid value: \"gpu\": must be a standard resource for containers",
            "spec.containers[0].resources.requests[gpu]: Invalid value: \"gpu\": must be a standard resource type or fully qualified",
            "spec.containers[0].resources.requests[gpu]: Invalid value: \"gpu\": must be a standard resource for containers",
        ]
    );
    let mut ext = pod();
    ext["spec"]["containers"][0]["resources"]["requests"]["example.com/gpu"] = json!("1");
    assert_eq!(
        create("Pod", ext.clone()),
        ["spec.containers[0].resources.limits: Required value: Limit must be set for non overcommitable resources"]
    );
    ext["spec"]["containers"][0]["resources"]["limits"]["example.com/gpu"] = json!("2");
    assert_eq!(
        create("Pod", ext),
        ["spec.containers[0].resources.requests: Invalid value: \"1\": must be equal to example.com/gpu limit of 2"]
    );
}

#[test]
fn env_and_env_from() {
    assert_eq!(
        create("Pod", with(pod(), "/spec/containers/0/env/0/name", json!("A=B"))),
        ["spec.containers[0].env[0].name: Invalid value: \"A=B\": a valid environment variable name must consist only of printable ASCII characters other than '='"]
    );
    assert_eq!(
        create(
            "Pod",
            with(pod(), "/spec/containers/0/env/0/name", json!(""))
        ),
        ["spec.containers[0].env[0].name: Required value"]
    );
    assert_eq!(
        create("Pod", with(pod(), "/spec/containers/0/env/1/valueFrom/fieldRef/fieldPath", json!("spec.restartPolicy"))),
        ["spec.containers[0].env[1].valueFrom.fieldRef.fieldPath: Unsupported value: \"spec.restartPolicy\": supported values: \"metadata.name\", \"metadata.namespace\", \"metadata.uid\", \"spec.nodeName\", \"spec.serviceAccountName\", \"status.hostIP\", \"status.hostIPs\", \"status.podIP\", \"status.podIPs\""]
    );
    assert_eq!(
        create("Pod", with(pod(), "/spec/containers/0/env/1/valueFrom/fieldRef/fieldPath", json!("spec.color"))),
        ["spec.containers[0].env[1].valueFrom.fieldRef.fieldPath: Invalid value: \"spec.color\": error converting fieldPath: field label not supported: spec.color"]
    );
    assert_eq!(
        create("Pod", with(pod(), "/spec/containers/0/env/2/valueFrom/secretKeyRef/key", json!("a b"))),
        [format!("spec.containers[0].env[2].valueFrom.secretKeyRef.key: Invalid value: \"a b\": {CONFIG_KEY_MSG}")]
    );
    assert_eq!(
        create("Pod", with(pod(), "/spec/containers/0/env/0/valueFrom", json!({}))),
        ["spec.containers[0].env[0].valueFrom: Invalid value: \"\": must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`"]
    );
    assert_eq!(
        create("Pod", with(pod(), "/spec/containers/0/env/0/valueFrom", json!({"fieldRef":{"fieldPath":"metadata.uid"}}))),
        ["spec.containers[0].env[0].valueFrom: Invalid value: \"\": may not be specified when `value` is not empty"]
    );
    assert_eq!(
        create("Pod", with(pod(), "/spec/containers/0/envFrom/0", json!({"prefix":"P_"}))),
        ["spec.containers[0].envFrom: Invalid value: \"\": must specify one of: `configMapRef` or `secretRef`"]
    );
}

#[test]
fn volumes_and_mounts() {
    assert_eq!(
        create("Pod", with(pod(), "/spec/volumes/1/name", json!("data"))),
        [
            "spec.volumes[1].name: Duplicate value: \"data\"",
            "spec.containers[0].volumeMounts[1].name: Not found: \"cfg\"",
        ]
    );
    assert_eq!(
        create(
            "Pod",
            with(pod(), "/spec/containers/0/volumeMounts/0/name", json!("x"))
        ),
        ["spec.containers[0].volumeMounts[0].name: Not found: \"x\""]
    );
    assert_eq!(
        create("Pod", with(pod(), "/spec/containers/0/volumeMounts/1/mountPath", json!("/data"))),
        ["spec.containers[0].volumeMounts[1].mountPath: Invalid value: \"/data\": must be unique"]
    );
    assert_eq!(
        create("Pod", with(pod(), "/spec/containers/0/volumeMounts/0/subPath", json!("/abs"))),
        ["spec.containers[0].volumeMounts.subPath: Invalid value: \"/abs\": must be a relative path"]
    );
    assert_eq!(
        create(
            "Pod",
            with(pod(), "/spec/volumes/0/configMap", json!({"name":"c"}))
        ),
        [
            "spec.volumes[0].configMap: Forbidden: may not specify more than 1 volume type",
            "spec.containers[0].volumeMounts[0].name: Not found: \"data\"",
        ]
    );
    assert_eq!(
        create("Pod", with(pod(), "/spec/volumes/2", json!({"name":"extra","configMap":{"name":"c","defaultMode":1000}}))),
        ["spec.volumes[2].configMap.defaultMode: Invalid value: 1000: must be a number between 0 and 0777 (octal), both inclusive"]
    );
    assert_eq!(
        create(
            "Pod",
            with(
                pod(),
                "/spec/volumes/2",
                json!({"name":"extra","secret":{"secretName":"s","items":[{"key":"a","path":"../x"}]}})
            )
        ),
        ["spec.volumes[2].secret.items[0].path: Invalid value: \"../x\": must not contain '..'"]
    );
    assert_eq!(
        create("Pod", with(pod(), "/spec/volumes/0/name", json!("Data"))),
        [
            format!("spec.volumes[0].name: Invalid value: \"Data\": {LABEL_MSG}"),
            "spec.containers[0].volumeMounts[0].name: Not found: \"data\"".to_string(),
        ]
    );
    assert_eq!(
        create("Pod", with(pod(), "/spec/volumes/2", json!({"name":"host","hostPath":{"path":"/var","type":"Dir"}}))),
        ["spec.volumes[2].hostPath.type: Unsupported value: \"Dir\": supported values: \"\", \"BlockDevice\", \"CharDevice\", \"Directory\", \"DirectoryOrCreate\", \"File\", \"FileOrCreate\", \"Socket\""]
    );
    assert_eq!(
        create(
            "Pod",
            with(
                pod(),
                "/spec/volumes/2",
                json!({"name":"claim","persistentVolumeClaim":{}})
            )
        ),
        ["spec.volumes[2].persistentVolumeClaim.claimName: Required value"]
    );
}

#[test]
fn probes_and_handlers() {
    assert_eq!(
        create(
            "Pod",
            with(
                pod(),
                "/spec/containers/0/livenessProbe/successThreshold",
                json!(2)
            )
        ),
        ["spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1"]
    );
    assert_eq!(
        create(
            "Pod",
            with(
                pod(),
                "/spec/containers/0/readinessProbe",
                json!({"periodSeconds":5})
            )
        ),
        ["spec.containers[0].readinessProbe: Required value: must specify a handler type"]
    );
    assert_eq!(
        create("Pod", with(pod(), "/spec/containers/0/readinessProbe/initialDelaySeconds", json!(-1))),
        ["spec.containers[0].readinessProbe.initialDelaySeconds: Invalid value: -1: must be greater than or equal to 0"]
    );
    assert_eq!(
        create("Pod", with(pod(), "/spec/containers/0/readinessProbe/exec", json!({"command":["true"]}))),
        ["spec.containers[0].readinessProbe.tcpSocket: Forbidden: may not specify more than 1 handler type"]
    );
    assert_eq!(
        create("Pod", with(pod(), "/spec/containers/0/livenessProbe/httpGet/port", json!(0))),
        ["spec.containers[0].livenessProbe.httpGet.port: Invalid value: 0: must be between 1 and 65535, inclusive"]
    );
    assert_eq!(
        create("Pod", with(pod(), "/spec/containers/0/livenessProbe/httpGet/scheme", json!("FTP"))),
        ["spec.containers[0].livenessProbe.httpGet.scheme: Unsupported value: \"FTP\": supported values: \"HTTP\", \"HTTPS\""]
    );
    assert_eq!(
        create("Pod", with(pod(), "/spec/containers/0/lifecycle/preStop", json!({"sleep":{"seconds":60}}))),
        ["spec.containers[0].lifecycle.preStop.sleep: Invalid value: 60: must be non-negative and less than terminationGracePeriodSeconds (30)"]
    );
    assert_eq!(
        create("Pod", with(pod(), "/spec/initContainers/0/readinessProbe", json!({"exec":{"command":["true"]}}))),
        ["spec.initContainers[0].readinessProbe: Forbidden: may not be set for init containers without restartPolicy=Always"]
    );
    assert_eq!(
        create("Pod", with(pod(), "/spec/initContainers/0/restartPolicy", json!("Never"))),
        ["spec.initContainers[0].restartPolicy: Unsupported value: \"Never\": supported values: \"Always\""]
    );
    assert_eq!(
        create(
            "Pod",
            with(pod(), "/spec/containers/0/restartPolicy", json!("Always"))
        ),
        ["spec.containers[0].restartPolicy: Forbidden: may not be set for non-init containers"]
    );
}

#[test]
fn node_selector_and_tolerations() {
    assert_eq!(
        create(
            "Pod",
            with(pod(), "/spec/nodeSelector", json!({"bad key":"x"}))
        ),
        [format!(
            "spec.nodeSelector: Invalid value: \"bad key\": {NAME_PART_MSG}"
        )]
    );
    assert_eq!(
        create("Pod", with(pod(), "/spec/tolerations/0/operator", json!("In"))),
        ["spec.tolerations[0].operator: Unsupported value: \"In\": supported values: \"Equal\", \"Exists\""]
    );
    assert_eq!(
        create("Pod", with(pod(), "/spec/tolerations/0/effect", json!("NoRun"))),
        ["spec.tolerations[0].effect: Unsupported value: \"NoRun\": supported values: \"NoSchedule\", \"PreferNoSchedule\", \"NoExecute\""]
    );
    assert_eq!(
        create("Pod", with(pod(), "/spec/tolerations/1/operator", json!("Equal"))),
        ["spec.tolerations[1].operator: Invalid value: \"Equal\": operator must be Exists when `key` is empty, which means \"match all values and all keys\""]
    );
    assert_eq!(
        create("Pod", with(pod(), "/spec/tolerations/0/tolerationSeconds", json!(5))),
        ["spec.tolerations[0].effect: Invalid value: \"NoSchedule\": effect must be 'NoExecute' when `tolerationSeconds` is set"]
    );
}

#[test]
fn pod_create_only_rules() {
    assert_eq!(
        create(
            "Pod",
            with(
                pod(),
                "/spec/ephemeralContainers/0",
                json!({"name":"debug","image":"busybox"})
            )
        ),
        ["spec.ephemeralContainers: Forbidden: cannot be set on create"]
    );
    let gated = with(
        with(pod(), "/spec/nodeName", json!("node-1")),
        "/spec/schedulingGates/0/name",
        json!("example.com/gate"),
    );
    assert_eq!(
        create("Pod", gated),
        ["spec.nodeName: Forbidden: cannot be set until all schedulingGates have been cleared"]
    );
}

#[test]
fn pod_updates() {
    let old = pod();
    assert_eq!(
        update(
            "Pod",
            with(old.clone(), "/spec/containers/0/image", json!("nginx:1.26")),
            old.clone()
        ),
        Vec::<String>::new()
    );
    assert_eq!(
        update(
            "Pod",
            with(old.clone(), "/spec/activeDeadlineSeconds", json!(600)),
            old.clone()
        ),
        Vec::<String>::new()
    );
    let errs = update(
        "Pod",
        with(
            old.clone(),
            "/spec/containers/0/ports/0/containerPort",
            json!(8080),
        ),
        old.clone(),
    );
    assert_eq!(errs.len(), 1);
    assert_eq!(
        errs[0],
        format!("{POD_UPDATE_MSG}  core.PodSpec{{\n- \tcontainers[0].ports[0].containerPort: 80,\n+ \tcontainers[0].ports[0].containerPort: 8080,\n  }}\n")
    );
    let mut added = old.clone();
    let c = json!({"name":"sidecar","image":"busybox"});
    set(&mut added, "/spec/containers/1", c);
    assert_eq!(
        update("Pod", added, old.clone()),
        ["spec.containers: Forbidden: pod updates may not add or remove containers"]
    );
    let with_deadline = with(old.clone(), "/spec/activeDeadlineSeconds", json!(100));
    assert_eq!(
        update("Pod", with(old.clone(), "/spec/activeDeadlineSeconds", json!(200)), with_deadline.clone()),
        ["spec.activeDeadlineSeconds: Invalid value: 200: must be less than or equal to previous value"]
    );
    assert_eq!(
        update("Pod", old.clone(), with_deadline),
        ["spec.activeDeadlineSeconds: Invalid value: null: must not update from a positive integer to nil value"]
    );
    let more = with(
        old.clone(),
        "/spec/tolerations/2",
        json!({"key":"k","operator":"Exists"}),
    );
    assert_eq!(update("Pod", more, old.clone()), Vec::<String>::new());
    let seconds = with(
        old.clone(),
        "/spec/tolerations/1/tolerationSeconds",
        json!(60),
    );
    assert_eq!(update("Pod", seconds, old.clone()), Vec::<String>::new());
    assert_eq!(
        update("Pod", with(old.clone(), "/spec/tolerations/0/value", json!("api")), old.clone()),
        ["spec.tolerations: Forbidden: existing toleration can not be modified except its tolerationSeconds"]
    );
    let negative = with(
        old.clone(),
        "/spec/terminationGracePeriodSeconds",
        json!(-1),
    );
    assert_eq!(
        update(
            "Pod",
            with(old.clone(), "/spec/terminationGracePeriodSeconds", json!(1)),
            negative
        ),
        Vec::<String>::new()
    );
    let errs = update(
        "Pod",
        with(
            old.clone(),
            "/spec/terminationGracePeriodSeconds",
            json!(10),
        ),
        old.clone(),
    );
    assert!(errs[0].starts_with(POD_UPDATE_MSG), "{errs:?}");
    let gated = with(old.clone(), "/spec/schedulingGates/0/name", json!("a"));
    assert_eq!(
        update("Pod", gated, old),
        ["spec.schedulingGates[0].name: Forbidden: only deletion is allowed, but found new scheduling gate 'a'"]
    );
}

fn deployment() -> Value {
    json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","labels":{"app":"web"}},
        "spec":{"replicas":3,"selector":{"matchLabels":{"app":"web"}},
          "template":{"metadata":{"labels":{"app":"web","tier":"frontend"}},
            "spec":{"containers":[{"name":"nginx","image":"nginx:1.25","ports":[{"containerPort":80}]}]}}}})
}

#[test]
fn a_realistic_deployment_is_valid() {
    assert_eq!(create("Deployment", deployment()), Vec::<String>::new());
    assert_eq!(
        create("Deployment.apps", deployment()),
        Vec::<String>::new()
    );
    assert_eq!(
        update(
            "Deployment",
            with(deployment(), "/spec/replicas", json!(5)),
            deployment()
        ),
        Vec::<String>::new()
    );
}

#[test]
fn deployment_selector_rules() {
    assert_eq!(
        create("Deployment", without(deployment(), "/spec/selector")),
        [
            "spec.selector: Required value",
            "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\", \"tier\":\"frontend\"}: `selector` does not match template `labels`",
        ]
    );
    assert_eq!(
        create("Deployment", with(deployment(), "/spec/selector/matchLabels/app", json!("api"))),
        ["spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\", \"tier\":\"frontend\"}: `selector` does not match template `labels`"]
    );
    assert_eq!(
        create("Deployment", with(deployment(), "/spec/selector", json!({}))),
        ["spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment"]
    );
    assert_eq!(
        create("Deployment", with(deployment(), "/spec/selector", json!({"matchExpressions":[{"key":"app","operator":"Has"}]}))),
        [
            "spec.selector.matchExpressions[0].operator: Invalid value: \"Has\": not a valid selector operator",
            "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement{v1.LabelSelectorRequirement{Key:\"app\", Operator:\"Has\", Values:[]string(nil)}}}: invalid label selector",
        ]
    );
    let moved = with(
        with(
            deployment(),
            "/spec/selector/matchLabels/app",
            json!("web2"),
        ),
        "/spec/template/metadata/labels/app",
        json!("web2"),
    );
    assert_eq!(
        update("Deployment", moved, deployment()),
        ["spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"web2\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"]
    );
}

#[test]
fn deployment_numbers_and_strategy() {
    assert_eq!(
        create(
            "Deployment",
            with(deployment(), "/spec/replicas", json!(-1))
        ),
        ["spec.replicas: Invalid value: -1: must be greater than or equal to 0"]
    );
    assert_eq!(
        create(
            "Deployment",
            with(deployment(), "/spec/revisionHistoryLimit", json!(-1))
        ),
        ["spec.revisionHistoryLimit: Invalid value: -1: must be greater than or equal to 0"]
    );
    assert_eq!(
        create(
            "Deployment",
            with(
                with(deployment(), "/spec/minReadySeconds", json!(10)),
                "/spec/progressDeadlineSeconds",
                json!(10)
            )
        ),
        ["spec.progressDeadlineSeconds: Invalid value: 10: must be greater than minReadySeconds"]
    );
    assert_eq!(
        create("Deployment", with(deployment(), "/spec/strategy", json!({"type":"Recreate","rollingUpdate":{"maxSurge":1}}))),
        ["spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'"]
    );
    assert_eq!(
        create("Deployment", with(deployment(), "/spec/strategy/rollingUpdate", json!({"maxSurge":0,"maxUnavailable":0}))),
        ["spec.strategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}: may not be 0 when `maxSurge` is 0"]
    );
    assert_eq!(
        create("Deployment", with(deployment(), "/spec/strategy/rollingUpdate/maxUnavailable", json!("150%"))),
        ["spec.strategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"150%\"}: must not be greater than 100%"]
    );
    assert_eq!(
        create("Deployment", with(deployment(), "/spec/strategy/rollingUpdate/maxSurge", json!("many"))),
        ["spec.strategy.rollingUpdate.maxSurge: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"many\"}: a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')"]
    );
    assert_eq!(
        create("Deployment", with(deployment(), "/spec/strategy/rollingUpdate/maxSurge", json!(-1))),
        ["spec.strategy.rollingUpdate.maxSurge: Invalid value: -1: must be greater than or equal to 0"]
    );
    assert_eq!(
        create("Deployment", with(deployment(), "/spec/strategy/type", json!("BlueGreen"))),
        ["spec.strategy: Unsupported value: apps.DeploymentStrategy{Type:\"BlueGreen\", RollingUpdate:(*apps.RollingUpdateDeployment)(nil)}: supported values: \"Recreate\", \"RollingUpdate\""]
    );
    assert_eq!(
        create("Deployment", with(deployment(), "/spec/template/spec/restartPolicy", json!("Never"))),
        ["spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\""]
    );
    assert_eq!(
        create("Deployment", with(deployment(), "/spec/template/spec/activeDeadlineSeconds", json!(10))),
        ["spec.template.spec.activeDeadlineSeconds: Forbidden: activeDeadlineSeconds in ReplicaSet is not Supported"]
    );
    assert_eq!(
        create(
            "Deployment",
            with(
                deployment(),
                "/spec/template/spec/containers/0/image",
                json!("")
            )
        ),
        ["spec.template.spec.containers[0].image: Required value"]
    );
    assert_eq!(
        create(
            "Deployment",
            with(
                deployment(),
                "/spec/template/metadata/labels/bad key",
                json!("x")
            )
        ),
        [format!(
            "spec.template.labels: Invalid value: \"bad key\": {NAME_PART_MSG}"
        )]
    );
}

#[test]
fn replica_sets() {
    let rs = without(
        with(deployment(), "/kind", json!("ReplicaSet")),
        "/spec/strategy",
    );
    assert_eq!(create("ReplicaSet", rs.clone()), Vec::<String>::new());
    assert_eq!(
        create("ReplicaSet", with(rs.clone(), "/spec/replicas", json!(-2))),
        ["spec.replicas: Invalid value: -2: must be greater than or equal to 0"]
    );
    let moved = with(
        rs.clone(),
        "/spec/selector/matchLabels/tier",
        json!("frontend"),
    );
    assert_eq!(
        update("ReplicaSet", moved, rs),
        ["spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"web\", \"tier\":\"frontend\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"]
    );
}

/// A Job as the server holds it at validation time: defaulted, with uid and generated
/// selector.
fn job() -> Value {
    let mut j = json!({"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"pi","uid":"0c5f-uid"},
        "spec":{"backoffLimit":4,"template":{"spec":{"restartPolicy":"Never",
            "containers":[{"name":"pi","image":"perl:5.34.0","command":["perl","-e","print 1"]}]}}}});
    apply_defaults("Job", &mut j);
    job_selector_defaults(&mut j, "0c5f-uid");
    j
}

#[test]
fn jobs() {
    assert_eq!(create("Job", job()), Vec::<String>::new());
    assert_eq!(
        create("Job", without(job(), "/spec/template/spec/restartPolicy")),
        ["spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\""]
    );
    assert_eq!(
        create("Job", with(job(), "/spec/template/spec/restartPolicy", json!("Sometimes"))),
        ["spec.template.spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
         "spec.template.spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"OnFailure\", \"Never\""]
    );
    for key in [
        "parallelism",
        "completions",
        "backoffLimit",
        "activeDeadlineSeconds",
    ] {
        assert_eq!(
            create("Job", with(job(), &format!("/spec/{key}"), json!(-1))),
            [format!(
                "spec.{key}: Invalid value: -1: must be greater than or equal to 0"
            )]
        );
    }
    assert_eq!(
        create("Job", with(job(), "/spec/completionMode", json!("Sometimes"))),
        ["spec.completionMode: Unsupported value: \"Sometimes\": supported values: \"NonIndexed\", \"Indexed\""]
    );
    assert_eq!(
        create("Job", with(job(), "/spec/podReplacementPolicy", json!("Never"))),
        ["spec.podReplacementPolicy: Unsupported value: \"Never\": supported values: \"Failed\", \"TerminatingOrFailed\""]
    );
    let labels = "map[string]string{\"batch.kubernetes.io/controller-uid\":\"0c5f-uid\", \"batch.kubernetes.io/job-name\":\"pi\", \"controller-uid\":\"0c5f-uid\", \"job-name\":\"pi\"}";
    assert_eq!(
        create("Job", without(job(), "/metadata/uid")),
        [
            "metadata.uid: Required value".to_string(),
            format!("spec.template.metadata.labels[controller-uid]: Invalid value: {labels}: must be ''"),
            format!("spec.template.metadata.labels[batch.kubernetes.io/controller-uid]: Invalid value: {labels}: must be ''"),
            "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"batch.kubernetes.io/controller-uid\":\"0c5f-uid\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: `selector` not auto-generated".to_string(),
        ]
    );
    assert_eq!(
        create("Job", with(job(), "/spec/template/metadata/labels/job-name", json!("other"))),
        ["spec.template.metadata.labels[job-name]: Invalid value: map[string]string{\"batch.kubernetes.io/controller-uid\":\"0c5f-uid\", \"batch.kubernetes.io/job-name\":\"pi\", \"controller-uid\":\"0c5f-uid\", \"job-name\":\"other\"}: must be 'pi'"]
    );
}

#[test]
fn job_updates() {
    assert_eq!(
        update("Job", with(job(), "/spec/suspend", json!(true)), job()),
        Vec::<String>::new()
    );
    let mut moved = with(job(), "/spec/selector/matchLabels/extra", json!("x"));
    set(
        &mut moved,
        "/spec/template/metadata/labels/extra",
        json!("x"),
    );
    assert_eq!(
        update("Job", moved, job()),
        [
            "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"batch.kubernetes.io/controller-uid\":\"0c5f-uid\", \"extra\":\"x\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: `selector` not auto-generated",
            "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"batch.kubernetes.io/controller-uid\":\"0c5f-uid\", \"extra\":\"x\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable",
            "spec.template: Invalid value: core.PodTemplateSpec{...}: field is immutable",
        ]
    );
    assert_eq!(
        update(
            "Job",
            with(
                job(),
                "/spec/template/spec/containers/0/image",
                json!("perl:5.36")
            ),
            job()
        ),
        ["spec.template: Invalid value: core.PodTemplateSpec{...}: field is immutable"]
    );
    assert_eq!(
        update("Job", with(job(), "/spec/completions", json!(3)), job()),
        ["spec.completions: Invalid value: 3: field is immutable"]
    );
    // Scheduling directives may change while the job is suspended and not started.
    let suspended = with(job(), "/spec/suspend", json!(true));
    let moved = with(
        suspended.clone(),
        "/spec/template/spec/nodeSelector",
        json!({"zone":"a"}),
    );
    assert_eq!(update("Job", moved, suspended), Vec::<String>::new());
}

fn cron_job() -> Value {
    json!({"apiVersion":"batch/v1","kind":"CronJob","metadata":{"name":"hello"},
        "spec":{"schedule":"*/5 * * * *","jobTemplate":{"spec":{"template":{"spec":{
            "restartPolicy":"OnFailure","containers":[{"name":"hello","image":"busybox:1.36","command":["date"]}]}}}}}})
}

#[test]
fn cron_jobs() {
    assert_eq!(create("CronJob", cron_job()), Vec::<String>::new());
    for ok in [
        "@hourly",
        "@every 1h30m",
        "0 0 * * MON-FRI",
        "0 12 1,15 JAN-JUN ?",
        "*/15 9-17 * * 1-5",
    ] {
        assert_eq!(
            create("CronJob", with(cron_job(), "/spec/schedule", json!(ok))),
            Vec::<String>::new(),
            "{ok}"
        );
    }
    assert_eq!(
        create("CronJob", without(cron_job(), "/spec/schedule")),
        ["spec.schedule: Required value"]
    );
    for (bad, msg) in [
        ("* * *", "expected exactly 5 fields, found 3: [* * *]"),
        ("61 * * * *", "end of range (61) above maximum (59): 61"),
        (
            "*/x * * * *",
            "failed to parse int from x: strconv.Atoi: parsing \"x\": invalid syntax",
        ),
        (
            "5-1 * * * *",
            "beginning of range (5) beyond end of range (1): 5-1",
        ),
        ("* * 0 * *", "beginning of range (0) below minimum (1): 0"),
        (
            "*/0 * * * *",
            "step of range should be a positive number: */0",
        ),
        ("@often", "unrecognized descriptor: @often"),
        (
            "@every 1x",
            "failed to parse duration @every 1x: time: unknown unit \"x\" in duration \"1x\"",
        ),
    ] {
        assert_eq!(
            create("CronJob", with(cron_job(), "/spec/schedule", json!(bad))),
            [format!(
                "spec.schedule: Invalid value: {}: {msg}",
                crate::field::go_quote(bad)
            )],
            "{bad}"
        );
    }
    assert_eq!(
        create("CronJob", with(cron_job(), "/spec/schedule", json!("TZ=UTC 0 * * * *"))),
        ["spec.schedule: Invalid value: \"TZ=UTC 0 * * * *\": cannot use TZ or CRON_TZ in schedule, use timeZone field instead"]
    );
    assert_eq!(
        create("CronJob", with(cron_job(), "/spec/concurrencyPolicy", json!("Sometimes"))),
        ["spec.concurrencyPolicy: Unsupported value: \"Sometimes\": supported values: \"Allow\", \"Forbid\", \"Replace\""]
    );
    assert_eq!(
        create("CronJob", with(cron_job(), "/spec/timeZone", json!("Local"))),
        ["spec.timeZone: Invalid value: \"Local\": timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones"]
    );
    assert_eq!(
        create("CronJob", with(cron_job(), "/spec/jobTemplate/spec/template/spec/restartPolicy", json!("Always"))),
        ["spec.jobTemplate.spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\""]
    );
    assert_eq!(
        create("CronJob", with(cron_job(), "/spec/successfulJobsHistoryLimit", json!(-1))),
        ["spec.successfulJobsHistoryLimit: Invalid value: -1: must be greater than or equal to 0"]
    );
    let long = "a".repeat(53);
    assert_eq!(
        create("CronJob", with(cron_job(), "/metadata/name", json!(long))),
        [format!(
            "metadata.name: Invalid value: \"{long}\": must be no more than 52 characters"
        )]
    );
    assert_eq!(
        update(
            "CronJob",
            with(cron_job(), "/metadata/name", json!(long)),
            cron_job()
        ),
        Vec::<String>::new()
    );
}

fn service() -> Value {
    json!({"apiVersion":"v1","kind":"Service","metadata":{"name":"web"},
        "spec":{"selector":{"app":"web"},"ports":[{"name":"http","port":80,"targetPort":"http"},{"name":"https","port":443,"targetPort":8443}]}})
}

#[test]
fn realistic_services_are_valid() {
    assert_eq!(create("Service", service()), Vec::<String>::new());
    assert_eq!(
        create("Service", with(service(), "/spec/type", json!("NodePort"))),
        Vec::<String>::new()
    );
    assert_eq!(
        create(
            "Service",
            with(service(), "/spec/type", json!("LoadBalancer"))
        ),
        Vec::<String>::new()
    );
    assert_eq!(
        create(
            "Service",
            json!({"spec":{"type":"ExternalName","externalName":"db.example.com."}})
        ),
        Vec::<String>::new()
    );
    assert_eq!(
        create(
            "Service",
            json!({"spec":{"clusterIP":"None","selector":{"app":"db"}}})
        ),
        Vec::<String>::new()
    );
    let allocated = with(
        with(service(), "/spec/clusterIP", json!("10.96.0.10")),
        "/spec/clusterIPs",
        json!(["10.96.0.10"]),
    );
    // kubectl apply of the original manifest keeps the allocated IP.
    assert_eq!(
        update("Service", service(), allocated),
        Vec::<String>::new()
    );
}

#[test]
fn service_ports() {
    assert_eq!(
        create("Service", without(service(), "/spec/ports")),
        ["spec.ports: Required value"]
    );
    assert_eq!(
        create("Service", with(service(), "/spec/ports/0/port", json!(0))),
        ["spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive"]
    );
    assert_eq!(
        create("Service", without(service(), "/spec/ports/1/name")),
        ["spec.ports[1].name: Required value"]
    );
    assert_eq!(
        create(
            "Service",
            with(service(), "/spec/ports/1/name", json!("http"))
        ),
        ["spec.ports[1].name: Duplicate value: \"http\""]
    );
    assert_eq!(
        create("Service", with(service(), "/spec/ports/0/protocol", json!("ICMP"))),
        ["spec.ports[0].protocol: Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", \"UDP\""]
    );
    assert_eq!(
        create("Service", with(service(), "/spec/ports/0/targetPort", json!("http_port"))),
        ["spec.ports[0].targetPort: Invalid value: \"http_port\": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"]
    );
    assert_eq!(
        create("Service", with(service(), "/spec/ports/0/targetPort", json!(70000))),
        ["spec.ports[0].targetPort: Invalid value: 70000: must be between 1 and 65535, inclusive"]
    );
    assert_eq!(
        create(
            "Service",
            with(service(), "/spec/ports/0/nodePort", json!(30080))
        ),
        ["spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"]
    );
    assert_eq!(
        create("Service", with(service(), "/spec/ports/1/port", json!(80))),
        ["spec.ports[1]: Duplicate value: core.ServicePort{Name:\"\", Protocol:\"TCP\", AppProtocol:(*string)(nil), Port:80, TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}, NodePort:0}"]
    );
    assert_eq!(
        create(
            "Service",
            with(service(), "/spec/ports/0/name", json!("HTTP"))
        ),
        [format!(
            "spec.ports[0].name: Invalid value: \"HTTP\": {LABEL_MSG}"
        )]
    );
}

#[test]
fn service_fields() {
    assert_eq!(
        create("Service", with(service(), "/spec/type", json!("Internal"))),
        ["spec.type: Unsupported value: \"Internal\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\""]
    );
    assert_eq!(
        create("Service", with(service(), "/spec/sessionAffinity", json!("Cookie"))),
        ["spec.sessionAffinity: Unsupported value: \"Cookie\": supported values: \"ClientIP\", \"None\""]
    );
    assert_eq!(
        create("Service", with(service(), "/spec/selector/app", json!("web app"))),
        ["spec.selector: Invalid value: \"web app\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"]
    );
    assert_eq!(
        create("Service", json!({"spec":{"type":"ExternalName"}})),
        ["spec.externalName: Required value"]
    );
    assert_eq!(
        create("Service", with(service(), "/spec/clusterIP", json!("10.96.0"))),
        ["spec.clusterIPs[0]: Invalid value: \"10.96.0\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"]
    );
    assert_eq!(
        create("Service", with(service(), "/spec/externalIPs", json!(["127.0.0.1"]))),
        ["spec.externalIPs[0]: Invalid value: \"127.0.0.1\": may not be in the loopback range (127.0.0.0/8, ::1/128)"]
    );
    assert_eq!(
        create("Service", with(service(), "/spec/externalTrafficPolicy", json!("Local"))),
        ["spec.externalTrafficPolicy: Invalid value: \"Local\": may only be set for externally-accessible services"]
    );
    assert_eq!(
        create("Service", with(service(), "/spec/loadBalancerSourceRanges", json!(["10.0.0.0/8"]))),
        ["spec.LoadBalancerSourceRanges: Forbidden: may only be used when `type` is 'LoadBalancer'"]
    );
    assert_eq!(
        create("Service", with(with(service(), "/spec/type", json!("NodePort")), "/spec/clusterIP", json!("None"))),
        ["spec.clusterIPs[0]: Invalid value: \"None\": may not be set to 'None' for NodePort services"]
    );
}

#[test]
fn service_cluster_ip_is_immutable() {
    let allocated = with(
        with(service(), "/spec/clusterIP", json!("10.96.0.10")),
        "/spec/clusterIPs",
        json!(["10.96.0.10"]),
    );
    assert_eq!(
        update(
            "Service",
            with(service(), "/spec/clusterIP", json!("10.96.0.11")),
            allocated.clone()
        ),
        ["spec.clusterIPs[0]: Invalid value: []string{\"10.96.0.11\"}: may not change once set"]
    );
    assert_eq!(
        update("Service", with(allocated.clone(), "/spec/clusterIPs", json!(["10.96.0.12"])), allocated),
        [
            "spec.clusterIPs[0]: Invalid value: []string{\"10.96.0.12\"}: may not change once set",
            "spec.clusterIPs: Invalid value: []string{\"10.96.0.12\"}: first value must match `clusterIP`",
        ]
    );
}

#[test]
fn config_maps() {
    let cm = json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cfg"},
        "data":{"app.properties":"a=1","LOG_LEVEL":"info"},"binaryData":{"logo.png":"iVBORw0KGgo="}});
    assert_eq!(create("ConfigMap", cm.clone()), Vec::<String>::new());
    assert_eq!(
        create("ConfigMap", with(cm.clone(), "/data/a b", json!("x"))),
        [format!(
            "data[a b]: Invalid value: \"a b\": {CONFIG_KEY_MSG}"
        )]
    );
    assert_eq!(
        create("ConfigMap", with(cm.clone(), "/data/..", json!("x"))),
        ["data[..]: Invalid value: \"..\": must not be '..'"]
    );
    assert_eq!(
        create("ConfigMap", with(cm.clone(), "/data/logo.png", json!("x"))),
        ["data[logo.png]: Invalid value: \"logo.png\": duplicate of key present in binaryData"]
    );
    assert_eq!(
        create(
            "ConfigMap",
            with(cm.clone(), "/data/big", json!("x".repeat(1024 * 1024)))
        ),
        ["[]: Too long: must have at most 1048576 bytes"]
    );
    let frozen = with(cm.clone(), "/immutable", json!(true));
    assert_eq!(
        update("ConfigMap", frozen.clone(), frozen.clone()),
        Vec::<String>::new()
    );
    assert_eq!(
        update(
            "ConfigMap",
            with(cm.clone(), "/data/LOG_LEVEL", json!("debug")),
            frozen.clone()
        ),
        [
            "immutable: Forbidden: field is immutable when `immutable` is set",
            "data: Forbidden: field is immutable when `immutable` is set",
        ]
    );
    assert_eq!(
        update(
            "ConfigMap",
            with(frozen.clone(), "/binaryData/x", json!("AA==")),
            frozen
        ),
        ["binaryData: Forbidden: field is immutable when `immutable` is set"]
    );
}

#[test]
fn secrets() {
    let s = json!({"apiVersion":"v1","kind":"Secret","metadata":{"name":"db"},"data":{"password":"czNjcjN0"}});
    assert_eq!(create("Secret", s.clone()), Vec::<String>::new());
    assert_eq!(
        create("Secret", with(s.clone(), "/data/a b", json!("eA=="))),
        [format!(
            "data[a b]: Invalid value: \"a b\": {CONFIG_KEY_MSG}"
        )]
    );
    let big = "QUFB".repeat(1024 * 1024 / 3 + 1);
    assert_eq!(
        create("Secret", with(s.clone(), "/data/big", json!(big))),
        ["data: Too long: must have at most 1048576 bytes"]
    );
    assert_eq!(
        create(
            "Secret",
            with(s.clone(), "/type", json!("kubernetes.io/tls"))
        ),
        [
            "data[tls.crt]: Required value",
            "data[tls.key]: Required value"
        ]
    );
    assert_eq!(
        create(
            "Secret",
            with(s.clone(), "/type", json!("kubernetes.io/dockerconfigjson"))
        ),
        ["data[.dockerconfigjson]: Required value"]
    );
    assert_eq!(
        create(
            "Secret",
            with(s.clone(), "/type", json!("kubernetes.io/basic-auth"))
        ),
        Vec::<String>::new(),
        "a password alone is enough"
    );
    assert_eq!(
        create(
            "Secret",
            with(
                with(s.clone(), "/type", json!("kubernetes.io/basic-auth")),
                "/data",
                json!({})
            )
        ),
        [
            "data[username]: Required value",
            "data[password]: Required value"
        ]
    );
    assert_eq!(
        create(
            "Secret",
            with(
                s.clone(),
                "/type",
                json!("kubernetes.io/service-account-token")
            )
        ),
        ["metadata.annotations[kubernetes.io/service-account.name]: Required value"]
    );
    assert_eq!(
        update(
            "Secret",
            with(s.clone(), "/type", json!("example.com/custom")),
            s.clone()
        ),
        ["type: Invalid value: \"example.com/custom\": field is immutable"]
    );
    let frozen = with(s.clone(), "/immutable", json!(true));
    assert_eq!(
        update(
            "Secret",
            with(frozen.clone(), "/data/password", json!("eA==")),
            frozen
        ),
        ["data: Forbidden: field is immutable when `immutable` is set"]
    );
}

#[test]
fn namespaces_and_nodes() {
    let mut ns = json!({"metadata":{"name":"dev"}});
    apply_defaults("Namespace", &mut ns);
    prepare_for_create("Namespace", &mut ns);
    assert_eq!(validate("Namespace", &ns, None), Vec::new());
    assert_eq!(
        create("Namespace", json!({"spec":{"finalizers":["foo"]}})),
        ["spec.finalizers: Invalid value: \"foo\": name is neither a standard finalizer name nor is it fully qualified"]
    );
    let node = json!({"metadata":{"name":"n1"},"spec":{"podCIDRs":["10.244.0.0/24"],"taints":[{"key":"dedicated","value":"gpu","effect":"NoSchedule"}]},
        "status":{"capacity":{"cpu":"4","memory":"8Gi"}}});
    assert_eq!(create("Node", node.clone()), Vec::<String>::new());
    assert_eq!(
        create("Node", with(node.clone(), "/spec/taints/0/effect", json!("NoRun"))),
        ["metadata.taints[0].effect: Unsupported value: \"NoRun\": supported values: \"NoSchedule\", \"PreferNoSchedule\", \"NoExecute\""]
    );
    assert_eq!(
        create("Node", without(node.clone(), "/spec/taints/0/effect")),
        ["metadata.taints[0].effect: Required value"]
    );
    assert_eq!(
        create("Node", with(node.clone(), "/spec/taints/1", json!({"key":"dedicated","value":"x","effect":"NoSchedule"}))),
        ["metadata.taints[1]: Duplicate value: core.Taint{Key:\"dedicated\", Value:\"x\", Effect:\"NoSchedule\", TimeAdded:(*v1.Time)(nil)}: taints must be unique by key and effect pair"]
    );
    assert_eq!(
        create("Node", with(node.clone(), "/spec/podCIDRs/0", json!("10.244.0.0"))),
        ["spec.podCIDRs[0]: Invalid value: \"10.244.0.0\": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"]
    );
    assert_eq!(
        create(
            "Node",
            with(node.clone(), "/status/capacity/cpu", json!("-1"))
        ),
        [
            "status.capacity.cpu: Invalid value: \"-1\": must be greater than or equal to 0",
            "status.allocatable.cpu: Invalid value: \"-1\": must be greater than or equal to 0",
        ]
    );
    assert_eq!(
        update("Node", with(node.clone(), "/spec/podCIDRs/0", json!("10.244.1.0/24")), node.clone()),
        ["spec.podCIDRs: Forbidden: node updates may not change podCIDR except from \"\" to valid"]
    );
    assert_eq!(
        update(
            "Node",
            with(node.clone(), "/spec/unschedulable", json!(true)),
            node
        ),
        Vec::<String>::new()
    );
}

#[test]
fn endpoints_and_slices() {
    let ep = json!({"subsets":[{"addresses":[{"ip":"10.244.0.5","nodeName":"n1"}],"ports":[{"name":"http","port":80},{"name":"https","port":443}]}]});
    assert_eq!(create("Endpoints", ep.clone()), Vec::<String>::new());
    assert_eq!(
        create("Endpoints", with(ep.clone(), "/subsets/0/addresses/0/ip", json!("::1"))),
        ["subsets[0].addresses[0].ip: Invalid value: \"::1\": may not be in the loopback range (127.0.0.0/8, ::1/128)"]
    );
    // Concord's pods have loopback addresses: IPv4 loopback endpoints are allowed.
    assert_eq!(
        create(
            "Endpoints",
            with(ep.clone(), "/subsets/0/addresses/0/ip", json!("127.1.0.5"))
        ),
        Vec::<String>::new()
    );
    assert_eq!(
        create("Endpoints", without(ep.clone(), "/subsets/0/ports/1/name")),
        ["subsets[0].ports[1].name: Required value"]
    );
    assert_eq!(
        create("Endpoints", without(ep.clone(), "/subsets/0/addresses")),
        ["subsets[0]: Required value: must specify `addresses` or `notReadyAddresses`"]
    );
    let slice = json!({"addressType":"IPv4","endpoints":[{"addresses":["10.244.0.5"],"conditions":{"ready":true}}],"ports":[{"name":"http","port":80}]});
    assert_eq!(create("EndpointSlice", slice.clone()), Vec::<String>::new());
    assert_eq!(
        create("EndpointSlice", without(slice.clone(), "/addressType")),
        ["addressType: Required value"]
    );
    assert_eq!(
        create("EndpointSlice", with(slice.clone(), "/addressType", json!("IPv5"))),
        ["addressType: Unsupported value: \"IPv5\": supported values: \"FQDN\", \"IPv4\", \"IPv6\""]
    );
    assert_eq!(
        create(
            "EndpointSlice",
            with(slice.clone(), "/endpoints/0/addresses/0", json!("fd00::1"))
        ),
        ["endpoints[0].addresses[0]: Invalid value: \"fd00::1\": must be a valid IPv4 address"]
    );
    assert_eq!(
        create(
            "EndpointSlice",
            with(slice.clone(), "/endpoints/0/addresses", json!([]))
        ),
        ["endpoints[0].addresses: Required value: must contain at least 1 address"]
    );
    assert_eq!(
        create(
            "EndpointSlice",
            with(slice.clone(), "/ports/1", json!({"name":"http","port":81}))
        ),
        ["ports[1].name: Duplicate value: \"http\""]
    );
    assert_eq!(
        update("EndpointSlice", with(slice.clone(), "/addressType", json!("IPv6")), slice.clone()),
        [
            "endpoints[0].addresses[0]: Invalid value: \"10.244.0.5\": must be a valid IPv6 address",
            "addressType: Invalid value: \"IPv6\": field is immutable",
        ]
    );
    let fqdn = json!({"addressType":"FQDN","endpoints":[{"addresses":["db"]}]});
    assert_eq!(
        create("EndpointSlice", fqdn),
        ["endpoints[0].addresses[0]: Invalid value: \"db\": should be a domain with at least two segments separated by dots"]
    );
}

#[test]
fn events_and_leases() {
    let ev = json!({"metadata":{"name":"web.1","namespace":"default"},
        "involvedObject":{"kind":"Pod","name":"web","namespace":"default"},"reason":"Started","message":"ok","type":"Normal"});
    assert_eq!(create("Event", ev.clone()), Vec::<String>::new());
    assert_eq!(
        create(
            "Event",
            with(ev.clone(), "/involvedObject/namespace", json!("other"))
        ),
        ["involvedObject.namespace: Invalid value: \"other\": does not match event.namespace"]
    );
    assert_eq!(
        create(
            "Event",
            with(
                ev.clone(),
                "/eventTime",
                json!("2026-01-01T00:00:00.000000Z")
            )
        ),
        [
            "reportingComponent: Required value".to_string(),
            "reportingComponent: Invalid value: \"\": name part must be non-empty".to_string(),
            format!("reportingComponent: Invalid value: \"\": {NAME_PART_MSG}"),
            "reportingInstance: Required value".to_string(),
            "action: Required value".to_string(),
        ]
    );
    let lease =
        json!({"spec":{"holderIdentity":"node-1","leaseDurationSeconds":40,"leaseTransitions":0}});
    assert_eq!(create("Lease", lease.clone()), Vec::<String>::new());
    assert_eq!(
        create(
            "Lease",
            with(lease.clone(), "/spec/leaseDurationSeconds", json!(0))
        ),
        ["spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0"]
    );
    assert_eq!(
        create(
            "Lease",
            with(lease.clone(), "/spec/leaseTransitions", json!(-1))
        ),
        ["spec.leaseTransitions: Invalid value: -1: must be greater than or equal to 0"]
    );
    assert_eq!(
        create(
            "Lease",
            with(lease.clone(), "/spec/preferredHolder", json!("node-2"))
        ),
        ["spec.preferredHolder: Forbidden: may only be specified if `strategy` is defined"]
    );
    assert_eq!(
        create("Lease", with(lease, "/spec/strategy", json!("Newest"))),
        ["spec.strategy: Unsupported value: \"Newest\": supported values: \"OldestEmulationVersion\""]
    );
}

#[test]
fn pod_templates_and_reasons() {
    let pt = json!({"template":{"metadata":{"labels":{"a":"b"}},"spec":{"containers":[{"name":"c","image":"x"}]}}});
    assert_eq!(create("PodTemplate", pt.clone()), Vec::<String>::new());
    assert_eq!(
        create(
            "PodTemplate",
            with(pt, "/template/spec/containers", json!([]))
        ),
        ["template.spec.containers: Required value"]
    );
    let errs = validate("Service", &json!({"spec":{"ports":[{"port":0}]}}), None);
    let reasons: Vec<&str> = errs.iter().map(|e| e.reason).collect();
    assert!(
        reasons.contains(&"FieldValueInvalid") && reasons.contains(&"FieldValueRequired"),
        "{reasons:?}"
    );
    let nf = validate(
        "Pod",
        &with(pod(), "/spec/containers/0/volumeMounts/0/name", json!("x")),
        None,
    );
    assert!(nf.iter().any(|e| e.reason == "FieldValueNotFound"));
}

#[test]
fn repeated_errors_are_reported_once() {
    let mut j = job();
    set(&mut j, "/spec/parallelism", json!(-1));
    let errs = update("Job", j.clone(), job());
    assert_eq!(
        errs.iter()
            .filter(|e| e.starts_with("spec.parallelism"))
            .count(),
        1,
        "{errs:?}"
    );
}

#[test]
fn odd_json_never_panics() {
    let odd = [
        json!(null),
        json!(1),
        json!("x"),
        json!([1]),
        json!({}),
        json!({"spec": "x", "data": [1], "binaryData": "x"}),
        json!({"spec": {"containers": [1, null, {"ports": "x", "env": [1], "resources": {"limits": [1], "requests": {"cpu": 1}}}]}}),
        json!({"spec": {"containers": [{"livenessProbe": {"httpGet": {"port": [1]}}, "volumeMounts": [{"name": 1}]}], "volumes": [{"name": {}}]}}),
        json!({"spec": {"selector": [], "template": "x", "strategy": {"type": 1, "rollingUpdate": {"maxSurge": {}}}}}),
        json!({"spec": {"selector": {"matchExpressions": [{"operator": 5}], "matchLabels": {"a": 1}}}}),
        json!({"spec": {"ports": [{"targetPort": {}, "port": "x"}], "clusterIPs": [1], "type": "LoadBalancer"}}),
        json!({"spec": {"schedule": 5, "jobTemplate": [], "timeZone": ""}}),
        json!({"spec": {"schedule": "TZ=", "taints": [1], "podCIDRs": [null]}, "status": {"capacity": {"cpu": {}}}}),
        json!({"subsets": [{"addresses": [1]}], "endpoints": [{"addresses": "x"}], "ports": [{"name": 1}]}),
        json!({"data": {"k": 1}, "immutable": "yes", "type": 3}),
        json!({"spec": {"containers": [{"resources": {"requests": {"cpu": "1e400", "memory": "99999999999999999999999999999999999Ei"}, "limits": {"cpu": "1e-400", "memory": "1Ei"}}}]}}),
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
        "Nope",
    ];
    for kind in kinds {
        for o in &odd {
            let _ = validate(kind, o, None);
            for old in &odd {
                let _ = validate(kind, o, Some(old));
            }
            let mut d = o.clone();
            apply_defaults(kind, &mut d);
            let _ = validate(kind, &d, Some(o));
        }
    }
    for s in [
        "",
        " ",
        "@",
        "@every ",
        "TZ=UTC",
        "CRON_TZ=x *",
        "a-b-c * * * *",
        "1/2/3 * * * *",
        "-1 * * * *",
        "99999999999999999999 * * * *",
    ] {
        let _ = crate::cron::parse(s);
    }
}

fn priority_class(name: &str, value: i64) -> Value {
    json!({"apiVersion":"scheduling.k8s.io/v1","kind":"PriorityClass",
        "metadata":{"name":name},"value":value,"description":"d"})
}

#[test]
fn priority_classes_on_create() {
    // Expected texts: pkg/apis/scheduling/validation/validation.go and
    // pkg/apis/scheduling/v1/helpers.go (IsKnownSystemPriorityClass).
    let pc = "PriorityClass";
    assert!(create(pc, priority_class("high", 1000)).is_empty());
    assert!(create(pc, priority_class("max", 1_000_000_000)).is_empty());
    assert!(create(pc, priority_class("low", -5)).is_empty());
    assert!(create(pc, without(priority_class("zero", 1), "/value")).is_empty());
    assert_eq!(
        create(pc, priority_class("huge", 1_000_000_001)),
        ["value: Forbidden: maximum allowed value of a user defined priority is 1000000000"]
    );
    assert!(create(pc, priority_class("system-node-critical", 2_000_001_000)).is_empty());
    assert!(create(pc, priority_class("system-cluster-critical", 2_000_000_000)).is_empty());
    let reserved = "metadata.name: Forbidden: priority class names with 'system-' prefix are reserved for system use only. error: ";
    assert_eq!(
        create(pc, priority_class("system-mine", 10)),
        [format!(
            "{reserved}system-mine is not a known system priority class"
        )]
    );
    assert_eq!(
        create(pc, priority_class("system-node-critical", 5)),
        [format!(
            "{reserved}value of system-node-critical PriorityClass must be 2000001000"
        )]
    );
    assert_eq!(
        create(
            pc,
            with(
                priority_class("system-cluster-critical", 2_000_000_000),
                "/globalDefault",
                json!(true)
            )
        ),
        [format!(
            "{reserved}globalDefault of system-cluster-critical PriorityClass must be false"
        )]
    );
    // A system- name is not also held to the user maximum.
    assert_eq!(
        create(pc, priority_class("system-x", 2_000_000_000)).len(),
        1
    );
    assert_eq!(
        create(
            pc,
            with(priority_class("p", 1), "/preemptionPolicy", json!("Sometimes"))
        ),
        ["preemptionPolicy: Unsupported value: \"Sometimes\": supported values: \"PreemptLowerPriority\", \"Never\""]
    );
    assert_eq!(
        create(
            pc,
            with(priority_class("p", 1), "/preemptionPolicy", json!(""))
        ),
        ["preemptionPolicy: Required value"]
    );
    assert!(create(
        pc,
        with(priority_class("p", 1), "/preemptionPolicy", json!("Never"))
    )
    .is_empty());
}

#[test]
fn priority_class_value_and_policy_are_immutable() {
    let pc = "PriorityClass";
    let old = priority_class("high", 1000);
    // Description and globalDefault may change; the value and the policy may not.
    let changed = with(
        with(old.clone(), "/description", json!("other")),
        "/globalDefault",
        json!(true),
    );
    assert!(update(pc, changed, old.clone()).is_empty());
    assert_eq!(
        update(pc, priority_class("high", 2000), old.clone()),
        ["value: Forbidden: may not be changed in an update."]
    );
    assert_eq!(
        update(
            pc,
            with(old.clone(), "/preemptionPolicy", json!("Never")),
            old.clone()
        ),
        ["preemptionPolicy: Invalid value: \"Never\": field is immutable"]
    );
    // Leaving the policy out defaults it again: no change.
    let mut stored = old.clone();
    apply_defaults(pc, &mut stored);
    assert!(update(pc, old.clone(), stored).is_empty());
    // Update does not re-check the create-time rules.
    let sys = priority_class("system-mine", 7);
    assert!(update(pc, sys.clone(), sys).is_empty());
}
