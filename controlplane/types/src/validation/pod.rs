//! Pods and pod templates: `ValidatePodSpec`, `ValidatePodCreate`, `ValidatePodUpdate`,
//! `ValidatePodTemplateSpec` (pkg/apis/core/validation).

use std::collections::HashSet;

use serde_json::Value;

use super::{is_set, label_name, labels, nonneg, normalized, Errs};
use crate::field::{
    self, arr, duplicate, forbidden, go_quote, go_string_slice, int_of, invalid, invalid_num,
    invalid_str, not_found, not_supported_str, required, str_of, Path,
};
use crate::names;
use crate::quantity::Quantity;

const FILE_MODE_MSG: &str = "must be a number between 0 and 0777 (octal), both inclusive";
const MAX_INT32: i64 = 2_147_483_647;

/// A Pod, on create (`old` None) or update.
pub(super) fn validate_pod(obj: &Value, old: Option<&Value>) -> Errs {
    let mut errs = Errs::new();
    let spec = &obj["spec"];
    let sp = Path::new("spec");
    pod_spec(spec, &sp, true, &mut errs);
    // validatePodMetadataAndSpec: what only pods (not templates) must satisfy.
    if str_of(&spec["serviceAccountName"]).is_empty() {
        for (vi, v) in arr(&spec["volumes"]).iter().enumerate() {
            for (si, s) in arr(&v["projected"]["sources"]).iter().enumerate() {
                if is_set(&s["serviceAccountToken"]) {
                    let p = sp
                        .child("volumes")
                        .index(vi)
                        .child("projected")
                        .child("sources")
                        .index(si)
                        .child("serviceAccountToken");
                    errs.push(forbidden(
                        &p,
                        "must not be specified when serviceAccountName is not set",
                    ));
                }
            }
        }
    }
    for key in ["containers", "initContainers"] {
        for (i, c) in arr(&spec[key]).iter().enumerate() {
            let image = str_of(&c["image"]);
            if image.trim() != image {
                let p = sp.child(key).index(i).child("image");
                errs.push(invalid_str(
                    &p,
                    image,
                    "must not have leading or trailing whitespace",
                ));
            }
        }
    }
    match old {
        None => {
            if !arr(&spec["ephemeralContainers"]).is_empty() {
                errs.push(forbidden(
                    &sp.child("ephemeralContainers"),
                    "cannot be set on create",
                ));
            }
            if !str_of(&spec["nodeName"]).is_empty() && !arr(&spec["schedulingGates"]).is_empty() {
                errs.push(forbidden(
                    &sp.child("nodeName"),
                    "cannot be set until all schedulingGates have been cleared",
                ));
            }
        }
        Some(old) => pod_update(spec, &old["spec"], &mut errs),
    }
    errs
}

/// A PodTemplate object (`template` holds the pod template).
pub(super) fn validate_pod_template_object(obj: &Value) -> Errs {
    let mut errs = Errs::new();
    pod_template_spec(&obj["template"], &Path::new("template"), &mut errs);
    errs
}

/// `ValidatePodTemplateSpec`: template labels (reported at `<path>.labels`, as upstream
/// does), the pod spec, and no ephemeral containers.
pub(super) fn pod_template_spec(t: &Value, p: &Path, errs: &mut Errs) {
    labels(&t["metadata"]["labels"], &p.child("labels"), errs);
    pod_spec(&t["spec"], &p.child("spec"), false, errs);
    if !arr(&t["spec"]["ephemeralContainers"]).is_empty() {
        errs.push(forbidden(
            &p.child("spec").child("ephemeralContainers"),
            "ephemeral containers not allowed in pod template",
        ));
    }
}

/// `ValidatePodSpec`.
fn pod_spec(spec: &Value, p: &Path, is_pod: bool, errs: &mut Errs) {
    if !is_set(&spec["terminationGracePeriodSeconds"]) {
        errs.push(required(&p.child("terminationGracePeriodSeconds"), ""));
    }
    let grace = spec["terminationGracePeriodSeconds"].as_i64();
    let vols = volumes(&spec["volumes"], &p.child("volumes"), errs);
    containers(spec, &vols, grace, &p.child("containers"), errs);
    init_containers(spec, &vols, grace, &p.child("initContainers"), errs);
    host_network_deps(spec, p, is_pod, errs);
    match str_of(&spec["restartPolicy"]) {
        "Always" | "OnFailure" | "Never" => {}
        "" => errs.push(required(&p.child("restartPolicy"), "")),
        other => errs.push(not_supported_str(
            &p.child("restartPolicy"),
            other,
            &["Always", "OnFailure", "Never"],
        )),
    }
    match str_of(&spec["dnsPolicy"]) {
        "ClusterFirstWithHostNet" | "ClusterFirst" | "Default" | "None" => {}
        "" => errs.push(required(&p.child("dnsPolicy"), "")),
        other => errs.push(not_supported_str(
            &p.child("dnsPolicy"),
            other,
            &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
        )),
    }
    labels(&spec["nodeSelector"], &p.child("nodeSelector"), errs);
    pod_security_context(spec, &p.child("securityContext"), errs);
    dns_config(spec, &p.child("dnsConfig"), errs);
    let sa = str_of(&spec["serviceAccountName"]);
    if !sa.is_empty() {
        for m in names::dns1123_subdomain(sa) {
            errs.push(invalid_str(&p.child("serviceAccountName"), sa, &m));
        }
    }
    let node = str_of(&spec["nodeName"]);
    if !node.is_empty() {
        for m in names::dns1123_subdomain(node) {
            errs.push(invalid_str(&p.child("nodeName"), node, &m));
        }
    }
    if let Some(ads) = spec["activeDeadlineSeconds"].as_i64() {
        if !(1..=MAX_INT32).contains(&ads) {
            errs.push(invalid_num(
                &p.child("activeDeadlineSeconds"),
                ads,
                &names::inclusive_range(1, MAX_INT32),
            ));
        }
    }
    for key in ["hostname", "subdomain"] {
        let v = str_of(&spec[key]);
        if !v.is_empty() {
            for m in names::dns1123_label(v) {
                errs.push(invalid_str(&p.child(key), v, &m));
            }
        }
    }
    tolerations(arr(&spec["tolerations"]), &p.child("tolerations"), errs);
    let pc = str_of(&spec["priorityClassName"]);
    if !pc.is_empty() {
        for m in names::dns1123_subdomain(pc) {
            errs.push(invalid_str(&p.child("priorityClassName"), pc, &m));
        }
    }
    if let Some(rc) = spec["runtimeClassName"].as_str() {
        for m in names::dns1123_subdomain(rc) {
            errs.push(invalid_str(&p.child("runtimeClassName"), rc, &m));
        }
    }
    if let Some(pp) = spec["preemptionPolicy"].as_str() {
        match pp {
            "PreemptLowerPriority" | "Never" => {}
            "" => errs.push(required(&p.child("preemptionPolicy"), "")),
            other => errs.push(not_supported_str(
                &p.child("preemptionPolicy"),
                other,
                &["PreemptLowerPriority", "Never"],
            )),
        }
    }
    if spec["os"].is_object() {
        match str_of(&spec["os"]["name"]) {
            "" => errs.push(required(&p.child("os").child("name"), "cannot be empty")),
            "linux" | "windows" => {}
            other => errs.push(not_supported_str(
                &p.child("os"),
                other,
                &["linux", "windows"],
            )),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Volumes.

/// The volume sources in the order upstream checks them, with the path it reports a
/// second source at (`cephFS` and `downwarAPI` are upstream's spellings).
const SOURCES: &[(&str, &str)] = &[
    ("emptyDir", "emptyDir"),
    ("hostPath", "hostPath"),
    ("gitRepo", "gitRepo"),
    ("gcePersistentDisk", "gcePersistentDisk"),
    ("awsElasticBlockStore", "awsElasticBlockStore"),
    ("secret", "secret"),
    ("nfs", "nfs"),
    ("iscsi", "iscsi"),
    ("glusterfs", "glusterfs"),
    ("flocker", "flocker"),
    ("persistentVolumeClaim", "persistentVolumeClaim"),
    ("rbd", "rbd"),
    ("cinder", "cinder"),
    ("cephfs", "cephFS"),
    ("quobyte", "quobyte"),
    ("downwardAPI", "downwarAPI"),
    ("fc", "fc"),
    ("flexVolume", "flexVolume"),
    ("configMap", "configMap"),
    ("azureFile", "azureFile"),
    ("vsphereVolume", "vsphereVolume"),
    ("photonPersistentDisk", "photonPersistentDisk"),
    ("portworxVolume", "portworxVolume"),
    ("azureDisk", "azureDisk"),
    ("storageos", "storageos"),
    ("projected", "projected"),
    ("scaleIO", "scaleIO"),
    ("csi", "csi"),
    ("ephemeral", "ephemeral"),
    ("image", "image"),
];

/// A valid volume: its name and its object.
type Volumes<'a> = Vec<(&'a str, &'a Value)>;

/// `ValidateVolumes`: returns the volumes that are valid (for mount lookups).
fn volumes<'a>(list: &'a Value, p: &Path, errs: &mut Errs) -> Volumes<'a> {
    let mut names_seen: HashSet<&str> = HashSet::new();
    let mut vols = Volumes::new();
    for (i, vol) in arr(list).iter().enumerate() {
        let idx = p.index(i);
        let name_path = idx.child("name");
        let mut el = volume_source(vol, &idx);
        let name = str_of(&vol["name"]);
        if name.is_empty() {
            el.push(required(&name_path, ""));
        } else {
            for m in names::dns1123_label(name) {
                el.push(invalid_str(&name_path, name, &m));
            }
        }
        if names_seen.contains(name) {
            el.push(duplicate(&name_path, &go_quote(name)));
        }
        if el.is_empty() {
            names_seen.insert(name);
            vols.push((name, vol));
        } else {
            errs.extend(el);
        }
    }
    vols
}

fn volume_source(vol: &Value, p: &Path) -> Errs {
    let mut errs = Errs::new();
    let mut count = 0;
    for (key, shown) in SOURCES {
        let src = &vol[*key];
        if !is_set(src) {
            continue;
        }
        if count > 0 {
            errs.push(forbidden(
                &p.child(shown),
                "may not specify more than 1 volume type",
            ));
            continue;
        }
        count += 1;
        let sp = p.child(key);
        match *key {
            "emptyDir" => {
                let negative = src["sizeLimit"]
                    .as_str()
                    .and_then(Quantity::parse)
                    .is_some_and(|q| q.signum() < 0);
                if negative {
                    errs.push(forbidden(
                        &sp.child("sizeLimit"),
                        "SizeLimit field must be a valid resource quantity",
                    ));
                }
            }
            "hostPath" => {
                let path = str_of(&src["path"]);
                if path.is_empty() {
                    errs.push(required(&sp.child("path"), ""));
                } else {
                    no_backsteps(path, &sp.child("path"), &mut errs);
                    if let Some(t) = src["type"].as_str() {
                        const TYPES: &[&str] = &[
                            "",
                            "BlockDevice",
                            "CharDevice",
                            "Directory",
                            "DirectoryOrCreate",
                            "File",
                            "FileOrCreate",
                            "Socket",
                        ];
                        if !TYPES.contains(&t) {
                            errs.push(not_supported_str(&sp.child("type"), t, TYPES));
                        }
                    }
                }
            }
            "secret" => {
                if str_of(&src["secretName"]).is_empty() {
                    errs.push(required(&sp.child("secretName"), ""));
                }
                file_mode(&src["defaultMode"], &sp.child("defaultMode"), &mut errs);
                for (i, kp) in arr(&src["items"]).iter().enumerate() {
                    key_to_path(kp, &sp.child("items").index(i), &mut errs);
                }
            }
            "configMap" => {
                if str_of(&src["name"]).is_empty() {
                    errs.push(required(&sp.child("name"), ""));
                }
                file_mode(&src["defaultMode"], &sp.child("defaultMode"), &mut errs);
                for (i, kp) in arr(&src["items"]).iter().enumerate() {
                    key_to_path(kp, &sp.child("items").index(i), &mut errs);
                }
            }
            "persistentVolumeClaim" if str_of(&src["claimName"]).is_empty() => {
                errs.push(required(&sp.child("claimName"), ""));
            }
            "nfs" => {
                if str_of(&src["server"]).is_empty() {
                    errs.push(required(&sp.child("server"), ""));
                }
                let path = str_of(&src["path"]);
                if path.is_empty() {
                    errs.push(required(&sp.child("path"), ""));
                }
                if !path.starts_with('/') {
                    errs.push(invalid_str(
                        &sp.child("path"),
                        path,
                        "must be an absolute path",
                    ));
                }
            }
            "downwardAPI" => {
                file_mode(&src["defaultMode"], &sp.child("defaultMode"), &mut errs);
                for file in arr(&src["items"]) {
                    downward_api_file(file, &sp, &mut errs);
                }
            }
            "projected" => {
                file_mode(&src["defaultMode"], &sp.child("defaultMode"), &mut errs);
                projected_sources(src, &sp, &mut errs);
            }
            _ => {}
        }
    }
    if count == 0 {
        errs.push(required(p, "must specify a volume type"));
    }
    errs
}

fn file_mode(v: &Value, p: &Path, errs: &mut Errs) {
    if let Some(m) = v.as_i64() {
        if !(0..=0o777).contains(&m) {
            errs.push(invalid_num(p, m, FILE_MODE_MSG));
        }
    }
}

/// `validateKeyToPath`.
fn key_to_path(kp: &Value, p: &Path, errs: &mut Errs) {
    if str_of(&kp["key"]).is_empty() {
        errs.push(required(&p.child("key"), ""));
    }
    let path = str_of(&kp["path"]);
    if path.is_empty() {
        errs.push(required(&p.child("path"), ""));
    }
    local_non_reserved_path(path, &p.child("path"), errs);
    file_mode(&kp["mode"], &p.child("mode"), errs);
}

/// `validatePathNoBacksteps`.
fn no_backsteps(path: &str, p: &Path, errs: &mut Errs) {
    if path.split('/').any(|part| part == "..") {
        errs.push(invalid_str(p, path, "must not contain '..'"));
    }
}

/// `validateLocalDescendingPath`.
fn local_descending_path(path: &str, p: &Path, errs: &mut Errs) {
    if path.starts_with('/') {
        errs.push(invalid_str(p, path, "must be a relative path"));
    }
    no_backsteps(path, p, errs);
}

/// `ValidateLocalNonReservedPath`.
fn local_non_reserved_path(path: &str, p: &Path, errs: &mut Errs) {
    local_descending_path(path, p, errs);
    if path.starts_with("..") && !path.starts_with("../") {
        errs.push(invalid_str(p, path, "must not start with '..'"));
    }
}

const VOLUME_FIELD_PATHS: &[&str] = &[
    "metadata.annotations",
    "metadata.labels",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
];
const ENV_FIELD_PATHS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];
const RESOURCE_FIELD_PATHS: &[&str] = &[
    "limits.cpu",
    "limits.ephemeral-storage",
    "limits.memory",
    "requests.cpu",
    "requests.ephemeral-storage",
    "requests.memory",
];

/// `validateDownwardAPIVolumeFile` (errors are reported at the source's path).
fn downward_api_file(file: &Value, p: &Path, errs: &mut Errs) {
    let path = str_of(&file["path"]);
    if path.is_empty() {
        errs.push(required(&p.child("path"), ""));
    }
    local_non_reserved_path(path, &p.child("path"), errs);
    if is_set(&file["fieldRef"]) {
        object_field_selector(
            &file["fieldRef"],
            VOLUME_FIELD_PATHS,
            &p.child("fieldRef"),
            errs,
        );
        if is_set(&file["resourceFieldRef"]) {
            errs.push(invalid_str(
                p,
                "resource",
                "fieldRef and resourceFieldRef can not be specified simultaneously",
            ));
        }
    } else if is_set(&file["resourceFieldRef"]) {
        resource_field_selector(
            &file["resourceFieldRef"],
            &p.child("resourceFieldRef"),
            true,
            errs,
        );
    } else {
        errs.push(required(
            p,
            "one of fieldRef and resourceFieldRef is required",
        ));
    }
    file_mode(&file["mode"], &p.child("mode"), errs);
}

/// `validateProjectionSources`.
fn projected_sources(src: &Value, p: &Path, errs: &mut Errs) {
    let mut paths: HashSet<String> = HashSet::new();
    for (i, s) in arr(&src["sources"]).iter().enumerate() {
        let srcp = p.child("sources").index(i);
        let mut n = 0;
        for key in ["secret", "configMap"] {
            let x = &s[key];
            if !is_set(x) {
                continue;
            }
            n += 1;
            let xp = srcp.child(key);
            if str_of(&x["name"]).is_empty() {
                errs.push(required(&xp.child("name"), ""));
            }
            for (j, kp) in arr(&x["items"]).iter().enumerate() {
                key_to_path(kp, &xp.child("items").index(j), errs);
                let path = str_of(&kp["path"]);
                if !path.is_empty() && !paths.insert(path.to_string()) {
                    errs.push(invalid_str(
                        p,
                        str_of(&x["name"]),
                        "conflicting duplicate paths",
                    ));
                }
            }
        }
        if is_set(&s["downwardAPI"]) {
            n += 1;
            let dp = srcp.child("downwardAPI");
            for file in arr(&s["downwardAPI"]["items"]) {
                downward_api_file(file, &dp, errs);
                let path = str_of(&file["path"]);
                if !path.is_empty() && !paths.insert(path.to_string()) {
                    errs.push(invalid_str(p, path, "conflicting duplicate paths"));
                }
            }
        }
        let sat = &s["serviceAccountToken"];
        if is_set(sat) {
            n += 1;
            let tp = srcp.child("serviceAccountToken");
            let exp = int_of(&sat["expirationSeconds"]);
            if exp < 600 {
                errs.push(invalid_num(
                    &tp.child("expirationSeconds"),
                    exp,
                    "may not specify a duration less than 10 minutes",
                ));
            }
            if exp > 1 << 32 {
                errs.push(invalid_num(
                    &tp.child("expirationSeconds"),
                    exp,
                    "may not specify a duration larger than 2^32 seconds",
                ));
            }
            let path = str_of(&sat["path"]);
            if path.is_empty() {
                errs.push(required(&p.child("path"), ""));
            } else {
                local_non_reserved_path(path, &p.child("path"), errs);
            }
        }
        if is_set(&s["clusterTrustBundle"]) {
            n += 1;
        }
        if n > 1 {
            errs.push(forbidden(
                &srcp,
                "may not specify more than 1 volume type per source",
            ));
        }
    }
}

// ---------------------------------------------------------------------------------------
// Containers.

/// `validateContainers`.
fn containers(spec: &Value, vols: &Volumes, grace: Option<i64>, p: &Path, errs: &mut Errs) {
    let list = arr(&spec["containers"]);
    if list.is_empty() {
        errs.push(required(p, ""));
        return;
    }
    let mut seen: HashSet<&str> = HashSet::new();
    for (i, c) in list.iter().enumerate() {
        let cp = p.index(i);
        container_common(c, vols, &cp, errs);
        let name = str_of(&c["name"]);
        if !seen.insert(name) {
            errs.push(duplicate(&cp.child("name"), &go_quote(name)));
        }
        if is_set(&c["lifecycle"]) {
            lifecycle(&c["lifecycle"], grace, &cp.child("lifecycle"), errs);
        }
        probes(c, &cp, errs);
        if is_set(&c["restartPolicy"]) {
            errs.push(forbidden(
                &cp.child("restartPolicy"),
                "may not be set for non-init containers",
            ));
        }
    }
    host_port_conflicts(list, p, errs);
}

/// `validateInitContainers`.
fn init_containers(spec: &Value, vols: &Volumes, grace: Option<i64>, p: &Path, errs: &mut Errs) {
    let mut seen: HashSet<&str> = arr(&spec["containers"])
        .iter()
        .map(|c| str_of(&c["name"]))
        .collect();
    for (i, c) in arr(&spec["initContainers"]).iter().enumerate() {
        let cp = p.index(i);
        container_common(c, vols, &cp, errs);
        let mut restart_always = false;
        if let Some(rp) = c["restartPolicy"].as_str() {
            if rp != "Always" {
                errs.push(not_supported_str(
                    &cp.child("restartPolicy"),
                    rp,
                    &["Always"],
                ));
            }
            restart_always = rp == "Always";
        }
        let name = str_of(&c["name"]);
        if seen.contains(name) {
            errs.push(duplicate(&cp.child("name"), &go_quote(name)));
        } else if !name.is_empty() {
            seen.insert(name);
        }
        host_port_conflicts(std::slice::from_ref(c), p, errs);
        if restart_always {
            if is_set(&c["lifecycle"]) {
                lifecycle(&c["lifecycle"], grace, &cp.child("lifecycle"), errs);
            }
            probes(c, &cp, errs);
        } else {
            for key in [
                "lifecycle",
                "livenessProbe",
                "readinessProbe",
                "startupProbe",
            ] {
                if is_set(&c[key]) {
                    errs.push(forbidden(
                        &cp.child(key),
                        "may not be set for init containers without restartPolicy=Always",
                    ));
                }
            }
        }
    }
}

/// `validateContainerCommon`.
fn container_common(c: &Value, vols: &Volumes, p: &Path, errs: &mut Errs) {
    let name = str_of(&c["name"]);
    if name.is_empty() {
        errs.push(required(&p.child("name"), ""));
    } else {
        for m in names::dns1123_label(name) {
            errs.push(invalid_str(&p.child("name"), name, &m));
        }
    }
    if str_of(&c["image"]).is_empty() {
        errs.push(required(&p.child("image"), ""));
    }
    match str_of(&c["terminationMessagePolicy"]) {
        "File" | "FallbackToLogsOnError" => {}
        "" => errs.push(required(&p.child("terminationMessagePolicy"), "")),
        other => errs.push(not_supported_str(
            &p.child("terminationMessagePolicy"),
            other,
            &["File", "FallbackToLogsOnError"],
        )),
    }
    container_ports(arr(&c["ports"]), &p.child("ports"), errs);
    env(arr(&c["env"]), &p.child("env"), errs);
    env_from(arr(&c["envFrom"]), &p.child("envFrom"), errs);
    volume_mounts(c, vols, &p.child("volumeMounts"), errs);
    match str_of(&c["imagePullPolicy"]) {
        "Always" | "IfNotPresent" | "Never" => {}
        "" => errs.push(required(&p.child("imagePullPolicy"), "")),
        other => errs.push(not_supported_str(
            &p.child("imagePullPolicy"),
            other,
            &["Always", "IfNotPresent", "Never"],
        )),
    }
    resources(&c["resources"], &p.child("resources"), errs);
    let sc = &c["securityContext"];
    for key in ["runAsUser", "runAsGroup"] {
        if let Some(id) = sc[key].as_i64() {
            if !(0..=MAX_INT32).contains(&id) {
                let p = p.child("securityContext").child(key);
                errs.push(invalid_num(&p, id, &names::inclusive_range(0, MAX_INT32)));
            }
        }
    }
}

/// `validateContainerPorts`.
fn container_ports(ports: &[Value], p: &Path, errs: &mut Errs) {
    let mut seen: HashSet<&str> = HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        let ip = p.index(i);
        let name = str_of(&port["name"]);
        if !name.is_empty() {
            let msgs = names::port_name(name);
            if !msgs.is_empty() {
                for m in msgs {
                    errs.push(invalid_str(&ip.child("name"), name, &m));
                }
            } else if !seen.insert(name) {
                errs.push(duplicate(&ip.child("name"), &go_quote(name)));
            }
        }
        let cp = int_of(&port["containerPort"]);
        if cp == 0 {
            errs.push(required(&ip.child("containerPort"), ""));
        } else {
            for m in names::port_num(cp) {
                errs.push(invalid_num(&ip.child("containerPort"), cp, &m));
            }
        }
        let hp = int_of(&port["hostPort"]);
        if hp != 0 {
            for m in names::port_num(hp) {
                errs.push(invalid_num(&ip.child("hostPort"), hp, &m));
            }
        }
        protocol(&port["protocol"], &ip.child("protocol"), errs);
    }
}

/// A port protocol: required, one of SCTP/TCP/UDP.
pub(super) fn protocol(v: &Value, p: &Path, errs: &mut Errs) {
    match str_of(v) {
        "" => errs.push(required(p, "")),
        "TCP" | "UDP" | "SCTP" => {}
        other => errs.push(not_supported_str(p, other, &["SCTP", "TCP", "UDP"])),
    }
}

/// `ValidateEnv` (relaxed variable names).
fn env(vars: &[Value], p: &Path, errs: &mut Errs) {
    for (i, ev) in vars.iter().enumerate() {
        let ip = p.index(i);
        let name = str_of(&ev["name"]);
        if name.is_empty() {
            errs.push(required(&ip.child("name"), ""));
        } else {
            for m in names::relaxed_env_var_name(name) {
                errs.push(invalid_str(&ip.child("name"), name, &m));
            }
        }
        env_value_from(ev, &ip.child("valueFrom"), errs);
    }
}

fn env_value_from(ev: &Value, p: &Path, errs: &mut Errs) {
    let vf = &ev["valueFrom"];
    if !is_set(vf) {
        return;
    }
    let mut n = 0;
    if is_set(&vf["fieldRef"]) {
        n += 1;
        object_field_selector(&vf["fieldRef"], ENV_FIELD_PATHS, &p.child("fieldRef"), errs);
    }
    if is_set(&vf["resourceFieldRef"]) {
        n += 1;
        resource_field_selector(
            &vf["resourceFieldRef"],
            &p.child("resourceFieldRef"),
            false,
            errs,
        );
    }
    for key in ["configMapKeyRef", "secretKeyRef"] {
        let sel = &vf[key];
        if is_set(sel) {
            n += 1;
            let sp = p.child(key);
            let name = str_of(&sel["name"]);
            for m in names::name_is_dns_subdomain(name, false) {
                errs.push(invalid_str(&sp.child("name"), name, &m));
            }
            let k = str_of(&sel["key"]);
            if k.is_empty() {
                errs.push(required(&sp.child("key"), ""));
            } else {
                for m in names::config_map_key(k) {
                    errs.push(invalid_str(&sp.child("key"), k, &m));
                }
            }
        }
    }
    if n == 0 {
        errs.push(invalid_str(
            p,
            "",
            "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
        ));
    } else if !str_of(&ev["value"]).is_empty() {
        errs.push(invalid_str(
            p,
            "",
            "may not be specified when `value` is not empty",
        ));
    } else if n > 1 {
        errs.push(invalid_str(
            p,
            "",
            "may not have more than one field specified at a time",
        ));
    }
}

/// `validateObjectFieldSelector` for downward API field paths (API version v1).
fn object_field_selector(fs: &Value, supported: &[&str], p: &Path, errs: &mut Errs) {
    let version = str_of(&fs["apiVersion"]);
    if version.is_empty() {
        errs.push(required(&p.child("apiVersion"), ""));
        return;
    }
    let fp = str_of(&fs["fieldPath"]);
    if fp.is_empty() {
        errs.push(required(&p.child("fieldPath"), ""));
        return;
    }
    let converted = convert_field_label(version, fp);
    let label = match converted {
        Ok(l) => l,
        Err(e) => {
            errs.push(invalid_str(
                &p.child("fieldPath"),
                fp,
                &format!("error converting fieldPath: {e}"),
            ));
            return;
        }
    };
    if let Some((path, subscript)) = split_subscripted(&label) {
        match path {
            "metadata.annotations" => {
                let key = subscript.to_ascii_lowercase();
                for m in names::qualified_name(&key) {
                    errs.push(invalid_str(p, &key, &m));
                }
            }
            "metadata.labels" => {
                for m in names::qualified_name(subscript) {
                    errs.push(invalid_str(p, subscript, &m));
                }
            }
            _ => errs.push(invalid_str(p, path, "does not support subscript")),
        }
    } else if !supported.contains(&label.as_str()) {
        errs.push(not_supported_str(&p.child("fieldPath"), &label, supported));
    }
}

/// `fieldpath.SplitMaybeSubscriptedPath`: `metadata.labels['key']`.
fn split_subscripted(fp: &str) -> Option<(&str, &str)> {
    let inner = fp.strip_suffix("']")?;
    let (path, sub) = inner.split_once("['")?;
    if path.is_empty() {
        None
    } else {
        Some((path, sub))
    }
}

/// `ConvertDownwardAPIFieldLabel` for pods.
fn convert_field_label(version: &str, label: &str) -> Result<String, String> {
    if version != "v1" {
        return Err(format!("unsupported pod version: {version}"));
    }
    if let Some((path, _)) = split_subscripted(label) {
        return match path {
            "metadata.annotations" | "metadata.labels" => Ok(label.to_string()),
            _ => Err(format!("field label does not support subscript: {label}")),
        };
    }
    match label {
        "metadata.annotations"
        | "metadata.labels"
        | "metadata.name"
        | "metadata.namespace"
        | "metadata.uid"
        | "spec.nodeName"
        | "spec.restartPolicy"
        | "spec.serviceAccountName"
        | "spec.schedulerName"
        | "status.phase"
        | "status.hostIP"
        | "status.hostIPs"
        | "status.podIP"
        | "status.podIPs" => Ok(label.to_string()),
        "spec.host" => Ok("spec.nodeName".to_string()),
        _ => Err(format!("field label not supported: {label}")),
    }
}

/// `validateContainerResourceFieldSelector` (divisors are not checked).
fn resource_field_selector(fs: &Value, p: &Path, volume: bool, errs: &mut Errs) {
    let resource = str_of(&fs["resource"]);
    if volume && str_of(&fs["containerName"]).is_empty() {
        errs.push(required(&p.child("containerName"), ""));
    } else if resource.is_empty() {
        errs.push(required(&p.child("resource"), ""));
    } else if !RESOURCE_FIELD_PATHS.contains(&resource)
        && !resource.starts_with("requests.hugepages-")
        && !resource.starts_with("limits.hugepages-")
    {
        errs.push(not_supported_str(
            &p.child("resource"),
            resource,
            RESOURCE_FIELD_PATHS,
        ));
    }
}

/// `ValidateEnvFrom`.
fn env_from(list: &[Value], p: &Path, errs: &mut Errs) {
    for (i, ev) in list.iter().enumerate() {
        let ip = p.index(i);
        let prefix = str_of(&ev["prefix"]);
        if !prefix.is_empty() {
            for m in names::relaxed_env_var_name(prefix) {
                errs.push(invalid_str(&ip.child("prefix"), prefix, &m));
            }
        }
        let mut n = 0;
        for key in ["configMapRef", "secretRef"] {
            let r = &ev[key];
            if is_set(r) {
                n += 1;
                let name = str_of(&r["name"]);
                let np = ip.child(key).child("name");
                if name.is_empty() {
                    errs.push(required(&np, ""));
                } else {
                    for m in names::name_is_dns_subdomain(name, true) {
                        errs.push(invalid_str(&np, name, &m));
                    }
                }
            }
        }
        if n == 0 {
            errs.push(invalid_str(
                p,
                "",
                "must specify one of: `configMapRef` or `secretRef`",
            ));
        } else if n > 1 {
            errs.push(invalid_str(
                p,
                "",
                "may not have more than one field specified at a time",
            ));
        }
    }
}

/// `ValidateVolumeMounts` (volume devices are not checked).
fn volume_mounts(c: &Value, vols: &Volumes, p: &Path, errs: &mut Errs) {
    let mut points: HashSet<&str> = HashSet::new();
    let privileged = c["securityContext"]["privileged"].as_bool() == Some(true);
    for (i, m) in arr(&c["volumeMounts"]).iter().enumerate() {
        let ip = p.index(i);
        let name = str_of(&m["name"]);
        if name.is_empty() {
            errs.push(required(&ip.child("name"), ""));
        }
        if !vols.iter().any(|(n, _)| *n == name) {
            errs.push(not_found(&ip.child("name"), &go_quote(name)));
        }
        let mount_path = str_of(&m["mountPath"]);
        if mount_path.is_empty() {
            errs.push(required(&ip.child("mountPath"), ""));
        }
        if !points.insert(mount_path) {
            errs.push(invalid_str(
                &ip.child("mountPath"),
                mount_path,
                "must be unique",
            ));
        }
        let sub = str_of(&m["subPath"]);
        if !sub.is_empty() {
            local_descending_path(sub, &p.child("subPath"), errs);
        }
        let expr = str_of(&m["subPathExpr"]);
        if !expr.is_empty() {
            if !sub.is_empty() {
                errs.push(invalid_str(
                    &ip.child("subPathExpr"),
                    expr,
                    "subPathExpr and subPath are mutually exclusive",
                ));
            }
            local_descending_path(expr, &p.child("subPathExpr"), errs);
        }
        let propagation = m["mountPropagation"].as_str();
        if let Some(mp) = propagation {
            let pp = p.child("mountPropagation");
            if !matches!(mp, "Bidirectional" | "HostToContainer" | "None") {
                errs.push(not_supported_str(
                    &pp,
                    mp,
                    &["Bidirectional", "HostToContainer", "None"],
                ));
            }
            if mp == "Bidirectional" && !privileged {
                errs.push(forbidden(
                    &pp,
                    "Bidirectional mount propagation is available only to privileged containers",
                ));
            }
        }
        if let Some(rro) = m["recursiveReadOnly"].as_str() {
            let rp = p.child("recursiveReadOnly");
            match rro {
                "Disabled" => {}
                "Enabled" | "IfPossible" => {
                    if m["readOnly"].as_bool() != Some(true) {
                        errs.push(forbidden(
                            &rp,
                            "may only be specified when readOnly is true",
                        ));
                    }
                    if propagation.is_some_and(|mp| mp != "None") {
                        errs.push(forbidden(
                            &rp,
                            "may only be specified when mountPropagation is None or not specified",
                        ));
                    }
                }
                other => errs.push(not_supported_str(
                    &rp,
                    other,
                    &["Disabled", "Enabled", "IfPossible"],
                )),
            }
        }
    }
}

const STANDARD_RESOURCES: &[&str] = &[
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
    "resourcequotas",
    "services",
    "replicationcontrollers",
    "secrets",
    "persistentvolumeclaims",
    "configmaps",
    "services.nodeports",
    "services.loadbalancers",
    "requests.storage",
];

fn is_native(name: &str) -> bool {
    !name.contains('/') || name.contains("kubernetes.io/")
}

/// `validateContainerResourceName`.
fn container_resource_name(name: &str, p: &Path, errs: &mut Errs) {
    let qn = names::qualified_name(name);
    if !qn.is_empty() {
        for m in qn {
            errs.push(invalid_str(p, name, &m));
        }
    } else if !name.contains('/')
        && !STANDARD_RESOURCES.contains(&name)
        && !name.starts_with("hugepages-")
        && !name.starts_with("requests.hugepages-")
    {
        errs.push(invalid_str(
            p,
            name,
            "must be a standard resource type or fully qualified",
        ));
    }
    if !name.contains('/') {
        let container_std = matches!(name, "cpu" | "memory" | "ephemeral-storage")
            || name.starts_with("hugepages-");
        if !container_std {
            errs.push(invalid_str(
                p,
                name,
                "must be a standard resource for containers",
            ));
        }
    } else if !is_native(name) {
        let extended = !name.starts_with("requests.")
            && names::qualified_name(&format!("requests.{name}")).is_empty();
        if !extended {
            errs.push(invalid_str(
                p,
                name,
                "doesn't follow extended resource name standard",
            ));
        }
    }
}

/// `ValidateContainerResourceRequirements` (limits, then requests and requests ≤ limits).
fn resources(r: &Value, p: &Path, errs: &mut Errs) {
    let lim_path = p.child("limits");
    let req_path = p.child("requests");
    let limits = r["limits"].as_object();
    if let Some(limits) = limits {
        for (name, q) in limits {
            let fp = lim_path.key(name);
            container_resource_name(name, &fp, errs);
            quantity_nonneg(q, &fp, errs);
        }
    }
    if let Some(requests) = r["requests"].as_object() {
        for (name, q) in requests {
            let fp = req_path.key(name);
            container_resource_name(name, &fp, errs);
            quantity_nonneg(q, &fp, errs);
            let overcommit = is_native(name) && !name.starts_with("hugepages-");
            let req = q.as_str().and_then(Quantity::parse);
            match limits.and_then(|l| l.get(name)) {
                Some(lim) => {
                    let lim = lim.as_str().and_then(Quantity::parse);
                    if let (Some(req), Some(lim)) = (req, lim) {
                        let ord = req.cmp_value(&lim);
                        if !ord.is_eq() && !overcommit {
                            errs.push(invalid_str(
                                &req_path,
                                &req.canonical(),
                                &format!("must be equal to {name} limit of {}", lim.canonical()),
                            ));
                        } else if ord.is_gt() {
                            errs.push(invalid_str(
                                &req_path,
                                &req.canonical(),
                                &format!(
                                    "must be less than or equal to {name} limit of {}",
                                    lim.canonical()
                                ),
                            ));
                        }
                    }
                }
                None if !overcommit => errs.push(required(
                    &lim_path,
                    "Limit must be set for non overcommitable resources",
                )),
                None => {}
            }
        }
    }
}

/// `ValidateNonnegativeQuantity`.
pub(super) fn quantity_nonneg(q: &Value, p: &Path, errs: &mut Errs) {
    if let Some(q) = q.as_str().and_then(Quantity::parse) {
        if q.signum() < 0 {
            errs.push(invalid_str(
                p,
                &q.canonical(),
                "must be greater than or equal to 0",
            ));
        }
    }
}

fn probes(c: &Value, cp: &Path, errs: &mut Errs) {
    for key in ["livenessProbe", "readinessProbe", "startupProbe"] {
        let pr = &c[key];
        if !is_set(pr) {
            continue;
        }
        let pp = cp.child(key);
        probe(pr, &pp, errs);
        match key {
            "readinessProbe" => {
                if let Some(t) = pr["terminationGracePeriodSeconds"].as_i64() {
                    errs.push(invalid_num(
                        &pp.child("terminationGracePeriodSeconds"),
                        t,
                        "must not be set for readinessProbes",
                    ));
                }
            }
            _ => {
                let st = int_of(&pr["successThreshold"]);
                if st != 1 {
                    errs.push(invalid_num(&pp.child("successThreshold"), st, "must be 1"));
                }
            }
        }
    }
}

/// `validateProbe`.
fn probe(pr: &Value, p: &Path, errs: &mut Errs) {
    handler(pr, None, p, true, errs);
    for key in [
        "initialDelaySeconds",
        "timeoutSeconds",
        "periodSeconds",
        "successThreshold",
        "failureThreshold",
    ] {
        nonneg(&pr[key], &p.child(key), errs);
    }
    if let Some(t) = pr["terminationGracePeriodSeconds"].as_i64() {
        if t <= 0 {
            errs.push(invalid_num(
                &p.child("terminationGracePeriodSeconds"),
                t,
                "must be greater than 0",
            ));
        }
    }
}

fn lifecycle(l: &Value, grace: Option<i64>, p: &Path, errs: &mut Errs) {
    for key in ["postStart", "preStop"] {
        if is_set(&l[key]) {
            handler(&l[key], grace, &p.child(key), false, errs);
        }
    }
}

/// `validateHandler`: exactly one of exec/httpGet/tcpSocket/grpc (probes)/sleep (hooks).
fn handler(h: &Value, grace: Option<i64>, p: &Path, is_probe: bool, errs: &mut Errs) {
    let mut n = 0;
    for key in ["exec", "httpGet", "tcpSocket", "grpc", "sleep"] {
        let allowed = if is_probe {
            key != "sleep"
        } else {
            key != "grpc"
        };
        let x = &h[key];
        if !allowed || !is_set(x) {
            continue;
        }
        let kp = p.child(key);
        if n > 0 {
            errs.push(forbidden(&kp, "may not specify more than 1 handler type"));
            continue;
        }
        n += 1;
        match key {
            "exec" => {
                if arr(&x["command"]).is_empty() {
                    errs.push(required(&kp.child("command"), ""));
                }
            }
            "httpGet" => {
                if str_of(&x["path"]).is_empty() {
                    errs.push(required(&kp.child("path"), ""));
                }
                port_num_or_name(&x["port"], &kp.child("port"), errs);
                let scheme = str_of(&x["scheme"]);
                if !matches!(scheme, "HTTP" | "HTTPS") {
                    errs.push(not_supported_str(
                        &kp.child("scheme"),
                        scheme,
                        &["HTTP", "HTTPS"],
                    ));
                }
                for hdr in arr(&x["httpHeaders"]) {
                    let name = str_of(&hdr["name"]);
                    for m in names::http_header_name(name) {
                        errs.push(invalid_str(&kp.child("httpHeaders"), name, &m));
                    }
                }
            }
            "tcpSocket" => port_num_or_name(&x["port"], &kp.child("port"), errs),
            "grpc" => {
                let port = int_of(&x["port"]);
                for m in names::port_num(port) {
                    errs.push(invalid_num(&kp.child("port"), port, &m));
                }
            }
            _ => {
                let secs = int_of(&x["seconds"]);
                if let Some(g) = grace {
                    if secs < 0 || secs > g {
                        errs.push(invalid_num(
                            &kp,
                            secs,
                            &format!(
                                "must be non-negative and less than terminationGracePeriodSeconds ({g})"
                            ),
                        ));
                    }
                }
            }
        }
    }
    if n == 0 {
        errs.push(required(p, "must specify a handler type"));
    }
}

/// `ValidatePortNumOrName` for an IntOrString held in JSON.
pub(super) fn port_num_or_name(v: &Value, p: &Path, errs: &mut Errs) {
    match v {
        Value::String(s) => {
            for m in names::port_name(s) {
                errs.push(invalid_str(p, s, &m));
            }
        }
        other => {
            let n = int_of(other);
            for m in names::port_num(n) {
                errs.push(invalid_num(p, n, &m));
            }
        }
    }
}

/// `checkHostPortConflicts`.
fn host_port_conflicts(list: &[Value], p: &Path, errs: &mut Errs) {
    let mut seen: HashSet<String> = HashSet::new();
    for (ci, c) in list.iter().enumerate() {
        for (pi, port) in arr(&c["ports"]).iter().enumerate() {
            let hp = int_of(&port["hostPort"]);
            if hp == 0 {
                continue;
            }
            let key = format!(
                "{}/{}/{hp}",
                str_of(&port["protocol"]),
                str_of(&port["hostIP"])
            );
            if !seen.insert(key.clone()) {
                let pp = p.index(ci).child("ports").index(pi).child("hostPort");
                errs.push(duplicate(&pp, &go_quote(&key)));
            }
        }
    }
}

/// `validatePodHostNetworkDeps`.
fn host_network_deps(spec: &Value, p: &Path, is_pod: bool, errs: &mut Errs) {
    if spec["hostNetwork"].as_bool() != Some(true) {
        return;
    }
    for (i, c) in arr(&spec["containers"]).iter().enumerate() {
        for (j, port) in arr(&c["ports"]).iter().enumerate() {
            let hp = int_of(&port["hostPort"]);
            let cp = int_of(&port["containerPort"]);
            if (is_pod || hp != 0) && hp != cp {
                let pp = p
                    .child("containers")
                    .index(i)
                    .child("ports")
                    .index(j)
                    .child("hostPort");
                errs.push(invalid_num(
                    &pp,
                    hp,
                    "must match `containerPort` when `hostNetwork` is true",
                ));
            }
        }
    }
}

/// The ids and flags of `validatePodSpecSecurityContext`.
fn pod_security_context(spec: &Value, p: &Path, errs: &mut Errs) {
    let sc = &spec["securityContext"];
    for key in ["fsGroup", "runAsUser", "runAsGroup"] {
        if let Some(id) = sc[key].as_i64() {
            if !(0..=MAX_INT32).contains(&id) {
                errs.push(invalid_num(
                    &p.child(key),
                    id,
                    &names::inclusive_range(0, MAX_INT32),
                ));
            }
        }
    }
    for (i, g) in arr(&sc["supplementalGroups"]).iter().enumerate() {
        let id = int_of(g);
        if !(0..=MAX_INT32).contains(&id) {
            let gp = p.child("supplementalGroups").index(i);
            errs.push(invalid_num(&gp, id, &names::inclusive_range(0, MAX_INT32)));
        }
    }
    if spec["shareProcessNamespace"].as_bool() == Some(true)
        && spec["hostPID"].as_bool() == Some(true)
    {
        errs.push(invalid(
            &p.child("shareProcessNamespace"),
            "true",
            "ShareProcessNamespace and HostPID cannot both be enabled",
        ));
    }
    if let Some(policy) = sc["fsGroupChangePolicy"].as_str() {
        if !matches!(policy, "Always" | "OnRootMismatch") {
            errs.push(not_supported_str(
                &p.child("fsGroupChangePolicy"),
                policy,
                &["Always", "OnRootMismatch"],
            ));
        }
    }
}

/// `validatePodDNSConfig` (nameservers, searches, options).
fn dns_config(spec: &Value, p: &Path, errs: &mut Errs) {
    let cfg = &spec["dnsConfig"];
    if str_of(&spec["dnsPolicy"]) == "None" {
        if !is_set(cfg) {
            errs.push(required(
                p,
                "must provide `dnsConfig` when `dnsPolicy` is None",
            ));
            return;
        }
        if arr(&cfg["nameservers"]).is_empty() {
            errs.push(required(
                &p.child("nameservers"),
                "must provide at least one DNS nameserver when `dnsPolicy` is None",
            ));
            return;
        }
    }
    if !is_set(cfg) {
        return;
    }
    let ns = arr(&cfg["nameservers"]);
    if ns.len() > 3 {
        errs.push(invalid(
            &p.child("nameservers"),
            &go_string_slice(cfg["nameservers"].as_array()),
            "must not have more than 3 nameservers",
        ));
    }
    for (i, n) in ns.iter().enumerate() {
        for m in names::ip(str_of(n)) {
            errs.push(invalid_str(&p.child("nameservers").index(i), str_of(n), &m));
        }
    }
    let searches = arr(&cfg["searches"]);
    if searches.len() > 32 {
        errs.push(invalid(
            &p.child("searches"),
            &go_string_slice(cfg["searches"].as_array()),
            "must not have more than 32 search paths",
        ));
    }
    let joined: Vec<&str> = searches.iter().map(str_of).collect();
    if joined.join(" ").len() > 2048 {
        errs.push(invalid(
            &p.child("searches"),
            &go_string_slice(cfg["searches"].as_array()),
            "must not have more than 2048 characters (including spaces) in the search list",
        ));
    }
    for (i, s) in searches.iter().enumerate() {
        let s = str_of(s);
        if s == "." {
            continue;
        }
        let trimmed = s.strip_suffix('.').unwrap_or(s);
        let ok = !trimmed.is_empty()
            && trimmed.len() <= 253
            && trimmed.split('.').all(|l| {
                let l = l.strip_prefix('_').unwrap_or(l);
                !l.is_empty()
                    && l.chars().all(|c| {
                        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_'
                    })
                    && l.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                    && l.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            });
        if !ok {
            let msg = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '_', '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '_?[a-z0-9]([-_a-z0-9]*[a-z0-9])?(\\._?[a-z0-9]([-_a-z0-9]*[a-z0-9])?)*')";
            errs.push(invalid_str(&p.child("searches").index(i), trimmed, msg));
        }
    }
    for (i, o) in arr(&cfg["options"]).iter().enumerate() {
        if str_of(&o["name"]).is_empty() {
            errs.push(required(&p.child("options").index(i), "must not be empty"));
        }
    }
}

/// `ValidateTolerations`.
pub(super) fn tolerations(list: &[Value], p: &Path, errs: &mut Errs) {
    for (i, t) in list.iter().enumerate() {
        let ip = p.index(i);
        let key = str_of(&t["key"]);
        let op = str_of(&t["operator"]);
        let effect = str_of(&t["effect"]);
        let value = str_of(&t["value"]);
        if !key.is_empty() {
            label_name(key, &ip.child("key"), errs);
        }
        if key.is_empty() && op != "Exists" {
            errs.push(invalid_str(
                &ip.child("operator"),
                op,
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            ));
        }
        if is_set(&t["tolerationSeconds"]) && effect != "NoExecute" {
            errs.push(invalid_str(
                &ip.child("effect"),
                effect,
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            ));
        }
        match op {
            "Equal" | "" => {
                let msgs = names::label_value(value);
                if !msgs.is_empty() {
                    errs.push(invalid_str(&ip.child("operator"), value, &msgs.join(";")));
                }
            }
            "Exists" => {
                if !value.is_empty() {
                    errs.push(invalid_str(
                        &ip.child("operator"),
                        value,
                        "value must be empty when `operator` is 'Exists'",
                    ));
                }
            }
            other => errs.push(not_supported_str(
                &ip.child("operator"),
                other,
                &["Equal", "Exists"],
            )),
        }
        if !effect.is_empty() {
            taint_effect(effect, &ip.child("effect"), errs);
        }
    }
}

/// `validateTaintEffect` for a set effect.
pub(super) fn taint_effect(effect: &str, p: &Path, errs: &mut Errs) {
    if !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
        errs.push(not_supported_str(
            p,
            effect,
            &["NoSchedule", "PreferNoSchedule", "NoExecute"],
        ));
    }
}

// ---------------------------------------------------------------------------------------
// Updates.

const UPDATABLE: &str = "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// The spec part of `ValidatePodUpdate`.
fn pod_update(new: &Value, old: &Value, errs: &mut Errs) {
    let sp = Path::new("spec");
    for key in ["containers", "initContainers"] {
        let (n, o) = (arr(&new[key]), arr(&old[key]));
        let cp = sp.child(key);
        if n.len() != o.len() {
            errs.push(forbidden(
                &cp,
                "pod updates may not add or remove containers",
            ));
            return;
        }
        for (i, c) in n.iter().enumerate() {
            let image = str_of(&c["image"]);
            if image.is_empty() {
                errs.push(required(&cp.index(i).child("image"), ""));
            }
            if image.trim() != image {
                errs.push(invalid_str(
                    &cp.index(i).child("image"),
                    image,
                    "must not have leading or trailing whitespace",
                ));
            }
        }
    }
    let ads = sp.child("activeDeadlineSeconds");
    match (
        new["activeDeadlineSeconds"].as_i64(),
        old["activeDeadlineSeconds"].as_i64(),
    ) {
        (Some(n), old_v) => {
            if !(0..=MAX_INT32).contains(&n) {
                errs.push(invalid_num(&ads, n, &names::inclusive_range(0, MAX_INT32)));
                return;
            }
            if old_v.is_some_and(|o| o < n) {
                errs.push(invalid_num(
                    &ads,
                    n,
                    "must be less than or equal to previous value",
                ));
                return;
            }
        }
        (None, Some(_)) => errs.push(field::invalid(
            &ads,
            "null",
            "must not update from a positive integer to nil value",
        )),
        (None, None) => {}
    }
    only_added_tolerations(arr(&new["tolerations"]), arr(&old["tolerations"]), errs);
    let old_gates: HashSet<&str> = arr(&old["schedulingGates"])
        .iter()
        .map(|g| str_of(&g["name"]))
        .collect();
    for (i, g) in arr(&new["schedulingGates"]).iter().enumerate() {
        let name = str_of(&g["name"]);
        if !old_gates.contains(name) {
            errs.push(forbidden(
                &sp.child("schedulingGates").index(i).child("name"),
                &format!("only deletion is allowed, but found new scheduling gate '{name}'"),
            ));
        }
    }
    let munged = munge(new, old);
    let (a, b) = (normalized(old), normalized(&munged));
    if a != b {
        let mut lines = Vec::new();
        diff_lines("", &a, &b, &mut lines);
        let diff = format!("  core.PodSpec{{\n{}  }}\n", lines.concat());
        errs.push(forbidden(&sp, &format!("{UPDATABLE}\n{diff}")));
    }
}

/// The new spec with the updatable fields taken from the old one.
fn munge(new: &Value, old: &Value) -> Value {
    let mut m = new.clone();
    for key in ["containers", "initContainers"] {
        if let Some(list) = m.get_mut(key).and_then(Value::as_array_mut) {
            for (i, c) in list.iter_mut().enumerate() {
                if let Some(c) = c.as_object_mut() {
                    match old[key][i].get("image") {
                        Some(img) => c.insert("image".into(), img.clone()),
                        None => c.remove("image"),
                    };
                }
            }
        }
    }
    if let Some(o) = m.as_object_mut() {
        for key in ["activeDeadlineSeconds", "schedulingGates", "tolerations"] {
            match old.get(key) {
                Some(v) => o.insert(key.into(), v.clone()),
                None => o.remove(key),
            };
        }
        let old_grace = old["terminationGracePeriodSeconds"].as_i64();
        let new_grace = o
            .get("terminationGracePeriodSeconds")
            .and_then(Value::as_i64);
        if old_grace.is_some_and(|g| g < 0) && new_grace == Some(1) {
            o.insert(
                "terminationGracePeriodSeconds".into(),
                old["terminationGracePeriodSeconds"].clone(),
            );
        }
    }
    m
}

/// Lines `- path: old` / `+ path: new` for every differing leaf.
fn diff_lines(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    if a == b {
        return;
    }
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let av = x.get(k).unwrap_or(&Value::Null);
                let bv = y.get(k).unwrap_or(&Value::Null);
                diff_lines(&join(k), av, bv, out);
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (av, bv)) in x.iter().zip(y).enumerate() {
                diff_lines(&format!("{path}[{i}]"), av, bv, out);
            }
        }
        _ => {
            out.push(format!("- \t{path}: {a},\n"));
            out.push(format!("+ \t{path}: {b},\n"));
        }
    }
}

/// `validateOnlyAddedTolerations` (the new list's own validation is reported already).
fn only_added_tolerations(new: &[Value], old: &[Value], errs: &mut Errs) {
    let strip = |t: &Value| {
        let mut t = normalized(t);
        if let Some(o) = t.as_object_mut() {
            o.remove("tolerationSeconds");
        }
        t
    };
    for o in old {
        let so = strip(o);
        if !new.iter().any(|n| strip(n) == so) {
            errs.push(forbidden(
                &Path::new("spec").child("tolerations"),
                "existing toleration can not be modified except its tolerationSeconds",
            ));
            return;
        }
    }
}
