//! ConfigMaps, Secrets, Namespaces, Nodes, Endpoints, EndpointSlices, core/v1 Events and
//! Leases.

use std::collections::HashSet;

use serde_json::Value;

use super::pod::{protocol, quantity_nonneg, taint_effect};
use super::service::endpoint_ip;
use super::{is_set, label_name, normalized, Errs};
use crate::field::{
    arr, duplicate, forbidden, go_quote, go_string_slice, int_of, invalid, invalid_num,
    invalid_str, not_supported_str, required, str_of, too_long, too_many, Path,
};
use crate::names;

/// `core.MaxSecretSize`: 1 MiB.
const MAX_SIZE: usize = 1024 * 1024;
const IMMUTABLE_MSG: &str = "field is immutable when `immutable` is set";

/// Decodes standard base64 (padding optional); `None` when malformed.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        })
    };
    let bytes = s.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        if chunk.len() == 1 {
            return None;
        }
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= val(*c)? << (18 - 6 * i);
        }
        let b = n.to_be_bytes();
        out.extend_from_slice(&b[1..chunk.len()]);
    }
    Some(out)
}

/// The decoded length of a base64 `[]byte` value as JSON carries it.
fn byte_len(v: &Value) -> usize {
    let s = str_of(v);
    base64_decode(s).map_or(s.len(), |b| b.len())
}

/// A ConfigMap, on create or update.
pub(super) fn validate_config_map(obj: &Value, old: Option<&Value>) -> Errs {
    let mut errs = Errs::new();
    if let Some(old) = old {
        if old["immutable"].as_bool() == Some(true) {
            if obj["immutable"].as_bool() != Some(true) {
                errs.push(forbidden(&Path::new("immutable"), IMMUTABLE_MSG));
            }
            for key in ["data", "binaryData"] {
                if normalized(&obj[key]) != normalized(&old[key]) {
                    errs.push(forbidden(&Path::new(key), IMMUTABLE_MSG));
                }
            }
        }
    }
    let mut total = 0usize;
    let binary = obj["binaryData"].as_object();
    if let Some(data) = obj["data"].as_object() {
        for (k, v) in data {
            let p = Path::new("data").key(k);
            for m in names::config_map_key(k) {
                errs.push(invalid_str(&p, k, &m));
            }
            if binary.is_some_and(|b| b.contains_key(k)) {
                errs.push(invalid_str(&p, k, "duplicate of key present in binaryData"));
            }
            total += str_of(v).len();
        }
    }
    if let Some(binary) = binary {
        for (k, v) in binary {
            for m in names::config_map_key(k) {
                errs.push(invalid_str(&Path::new("binaryData").key(k), k, &m));
            }
            total += byte_len(v);
        }
    }
    if total > MAX_SIZE {
        errs.push(too_long(&Path::whole(), MAX_SIZE));
    }
    errs
}

/// A Secret, on create or update.
pub(super) fn validate_secret(obj: &Value, old: Option<&Value>) -> Errs {
    let mut errs = Errs::new();
    if let Some(old) = old {
        let (t, ot) = (str_of(&obj["type"]), str_of(&old["type"]));
        if t != ot {
            errs.push(invalid_str(&Path::new("type"), t, "field is immutable"));
        }
        if old["immutable"].as_bool() == Some(true) {
            if obj["immutable"].as_bool() != Some(true) {
                errs.push(forbidden(&Path::new("immutable"), IMMUTABLE_MSG));
            }
            if normalized(&obj["data"]) != normalized(&old["data"]) {
                errs.push(forbidden(&Path::new("data"), IMMUTABLE_MSG));
            }
        }
    }
    let dp = Path::new("data");
    let data = &obj["data"];
    let mut total = 0usize;
    if let Some(d) = data.as_object() {
        for (k, v) in d {
            for m in names::config_map_key(k) {
                errs.push(invalid_str(&dp.key(k), k, &m));
            }
            total += byte_len(v);
        }
    }
    if total > MAX_SIZE {
        errs.push(too_long(&dp, MAX_SIZE));
    }
    let has = |k: &str| data.get(k).is_some_and(|v| !v.is_null());
    match str_of(&obj["type"]) {
        "kubernetes.io/service-account-token" => {
            let sa = str_of(&obj["metadata"]["annotations"]["kubernetes.io/service-account.name"]);
            if sa.is_empty() {
                let p = Path::new("metadata")
                    .child("annotations")
                    .key("kubernetes.io/service-account.name");
                errs.push(required(&p, ""));
            }
        }
        "kubernetes.io/dockercfg" | "kubernetes.io/dockerconfigjson" => {
            let key = if str_of(&obj["type"]) == "kubernetes.io/dockercfg" {
                ".dockercfg"
            } else {
                ".dockerconfigjson"
            };
            if !has(key) {
                errs.push(required(&dp.key(key), ""));
            } else {
                let bytes = base64_decode(str_of(&data[key])).unwrap_or_default();
                let parsed: Result<serde_json::Map<String, Value>, _> =
                    serde_json::from_slice(&bytes);
                if let Err(e) = parsed {
                    errs.push(invalid_str(
                        &dp.key(key),
                        "<secret contents redacted>",
                        &e.to_string(),
                    ));
                }
            }
        }
        "kubernetes.io/basic-auth" if !has("username") && !has("password") => {
            errs.push(required(&dp.key("username"), ""));
            errs.push(required(&dp.key("password"), ""));
        }
        "kubernetes.io/ssh-auth" if byte_len(&data["ssh-privatekey"]) == 0 => {
            errs.push(required(&dp.key("ssh-privatekey"), ""));
        }
        "kubernetes.io/tls" => {
            for key in ["tls.crt", "tls.key"] {
                if !has(key) {
                    errs.push(required(&dp.key(key), ""));
                }
            }
        }
        _ => {}
    }
    errs
}

/// A Namespace: `spec.finalizers` names (on create; updates check metadata only).
pub(super) fn validate_namespace(obj: &Value) -> Errs {
    let mut errs = Errs::new();
    let p = Path::new("spec").child("finalizers");
    for f in arr(&obj["spec"]["finalizers"]) {
        let f = str_of(f);
        for m in names::qualified_name(f) {
            errs.push(invalid_str(&p, f, &m));
        }
        if !f.contains('/') && !matches!(f, "kubernetes" | "orphan" | "foregroundDeletion") {
            errs.push(invalid_str(
                &p,
                f,
                "name is neither a standard finalizer name nor is it fully qualified",
            ));
        }
    }
    errs
}

/// A Node, on create or update.
pub(super) fn validate_node(obj: &Value, old: Option<&Value>) -> Errs {
    let mut errs = Errs::new();
    let spec = &obj["spec"];
    taints(
        arr(&spec["taints"]),
        &Path::new("metadata").child("taints"),
        &mut errs,
    );
    for key in ["capacity", "allocatable"] {
        if let Some(list) = obj["status"][key].as_object() {
            for (name, q) in list {
                let p = Path::new("status").child(key).child(name);
                quantity_nonneg(q, &p, &mut errs);
            }
        }
    }
    let cidrs = arr(&spec["podCIDRs"]);
    let cp = Path::new("spec").child("podCIDRs");
    match old {
        None => {
            for (i, c) in cidrs.iter().enumerate() {
                for m in names::cidr(str_of(c)) {
                    errs.push(invalid_str(&cp.index(i), str_of(c), &m));
                }
            }
            if cidrs.len() > 1 {
                let v6 = cidrs.iter().filter(|c| str_of(c).contains(':')).count();
                if v6 != 1 || cidrs.len() > 2 {
                    errs.push(invalid(
                        &cp,
                        &go_string_slice(spec["podCIDRs"].as_array()),
                        "may specify no more than one CIDR for each IP family",
                    ));
                }
                let mut seen = HashSet::new();
                for (i, c) in cidrs.iter().enumerate() {
                    if !seen.insert(str_of(c)) {
                        errs.push(duplicate(&cp.index(i), &go_quote(str_of(c))));
                    }
                }
            }
        }
        Some(old) => {
            let mut seen = HashSet::new();
            for (i, a) in arr(&obj["status"]["addresses"]).iter().enumerate() {
                let key = (str_of(&a["type"]), str_of(&a["address"]));
                if !seen.insert(key) {
                    let shown = format!(
                        "core.NodeAddress{{Type:{}, Address:{}}}",
                        go_quote(key.0),
                        go_quote(key.1)
                    );
                    errs.push(duplicate(
                        &Path::new("status").child("addresses").index(i),
                        &shown,
                    ));
                }
            }
            let old_spec = &old["spec"];
            let old_cidrs = arr(&old_spec["podCIDRs"]);
            let msg = "node updates may not change podCIDR except from \"\" to valid";
            if !old_cidrs.is_empty() {
                if old_cidrs.len() != cidrs.len() {
                    errs.push(forbidden(&cp, msg));
                } else {
                    for (o, n) in old_cidrs.iter().zip(cidrs) {
                        if o != n {
                            errs.push(forbidden(&cp, msg));
                        }
                    }
                }
            }
            let old_pid = str_of(&old_spec["providerID"]);
            if !old_pid.is_empty() && old_pid != str_of(&spec["providerID"]) {
                errs.push(forbidden(
                    &Path::new("spec").child("providerID"),
                    "node updates may not change providerID except from \"\" to valid",
                ));
            }
            if str_of(&spec["externalID"]) != str_of(&old_spec["externalID"]) {
                errs.push(forbidden(
                    &Path::new("spec").child("externalID"),
                    "may not be updated",
                ));
            }
        }
    }
    errs
}

/// `validateNodeTaints`.
fn taints(list: &[Value], p: &Path, errs: &mut Errs) {
    let mut seen: HashSet<(&str, &str)> = HashSet::new();
    for (i, t) in list.iter().enumerate() {
        let ip = p.index(i);
        let key = str_of(&t["key"]);
        let value = str_of(&t["value"]);
        let effect = str_of(&t["effect"]);
        label_name(key, &ip.child("key"), errs);
        let msgs = names::label_value(value);
        if !msgs.is_empty() {
            errs.push(invalid_str(&ip.child("value"), value, &msgs.join(";")));
        }
        if effect.is_empty() {
            errs.push(required(&ip.child("effect"), ""));
        } else {
            taint_effect(effect, &ip.child("effect"), errs);
        }
        if !seen.insert((effect, key)) {
            let shown = format!(
                "core.Taint{{Key:{}, Value:{}, Effect:{}, TimeAdded:(*v1.Time)(nil)}}",
                go_quote(key),
                go_quote(value),
                go_quote(effect)
            );
            let mut e = duplicate(&ip, &shown);
            e.detail = format!("{}: taints must be unique by key and effect pair", e.detail);
            errs.push(e);
        }
    }
}

/// Endpoints (create and update).
pub(super) fn validate_endpoints(obj: &Value) -> Errs {
    let mut errs = Errs::new();
    for (i, ss) in arr(&obj["subsets"]).iter().enumerate() {
        let sp = Path::new("subsets").index(i);
        let addrs = arr(&ss["addresses"]);
        let not_ready = arr(&ss["notReadyAddresses"]);
        if addrs.is_empty() && not_ready.is_empty() {
            errs.push(required(
                &sp,
                "must specify `addresses` or `notReadyAddresses`",
            ));
        }
        for (key, list) in [("addresses", addrs), ("notReadyAddresses", not_ready)] {
            for (j, a) in list.iter().enumerate() {
                let ap = sp.child(key).index(j);
                let ip = str_of(&a["ip"]);
                for m in names::ip(ip) {
                    errs.push(invalid_str(&ap.child("ip"), ip, &m));
                }
                let host = str_of(&a["hostname"]);
                if !host.is_empty() {
                    for m in names::dns1123_label(host) {
                        errs.push(invalid_str(&ap.child("hostname"), host, &m));
                    }
                }
                if let Some(node) = a["nodeName"].as_str() {
                    for m in names::dns1123_subdomain(node) {
                        errs.push(invalid_str(&ap.child("nodeName"), node, &m));
                    }
                }
                endpoint_ip(ip, &ap.child("ip"), &mut errs);
            }
        }
        let ports = arr(&ss["ports"]);
        for (j, port) in ports.iter().enumerate() {
            let pp = sp.child("ports").index(j);
            let name = str_of(&port["name"]);
            if ports.len() > 1 && name.is_empty() {
                errs.push(required(&pp.child("name"), ""));
            } else if !name.is_empty() {
                for m in names::dns1123_label(name) {
                    errs.push(invalid_str(&pp.child("name"), name, &m));
                }
            }
            let n = int_of(&port["port"]);
            for m in names::port_num(n) {
                errs.push(invalid_num(&pp.child("port"), n, &m));
            }
            protocol(&port["protocol"], &pp.child("protocol"), &mut errs);
            if let Some(ap) = port["appProtocol"].as_str() {
                label_name(ap, &pp.child("appProtocol"), &mut errs);
            }
        }
    }
    errs
}

/// An EndpointSlice, on create or update.
pub(super) fn validate_endpoint_slice(obj: &Value, old: Option<&Value>) -> Errs {
    let mut errs = Errs::new();
    let at = str_of(&obj["addressType"]);
    let atp = Path::new("addressType");
    match at {
        "" => errs.push(required(&atp, "")),
        "IPv4" | "IPv6" | "FQDN" => {}
        other => errs.push(not_supported_str(&atp, other, &["FQDN", "IPv4", "IPv6"])),
    }
    let eps = arr(&obj["endpoints"]);
    let ep_path = Path::new("endpoints");
    if eps.len() > 1000 {
        errs.push(too_many(&ep_path, eps.len(), 1000));
    } else {
        for (i, e) in eps.iter().enumerate() {
            let ip = ep_path.index(i);
            let ap = ip.child("addresses");
            let addrs = arr(&e["addresses"]);
            if addrs.is_empty() {
                errs.push(required(&ap, "must contain at least 1 address"));
            } else if addrs.len() > 100 {
                errs.push(too_many(&ap, addrs.len(), 100));
            }
            for (j, a) in addrs.iter().enumerate() {
                let a = str_of(a);
                let aip = ap.index(j);
                match at {
                    "IPv4" | "IPv6" => {
                        let ok = match a.parse::<std::net::IpAddr>() {
                            Ok(std::net::IpAddr::V4(_)) => at == "IPv4",
                            Ok(std::net::IpAddr::V6(_)) => at == "IPv6",
                            Err(_) => false,
                        };
                        if !ok {
                            errs.push(invalid_str(
                                &aip,
                                a,
                                &format!("must be a valid {at} address"),
                            ));
                        }
                        endpoint_ip(a, &aip, &mut errs);
                    }
                    "FQDN" => fqdn(a, &aip, &mut errs),
                    _ => {}
                }
            }
            if let Some(node) = e["nodeName"].as_str() {
                for m in names::dns1123_subdomain(node) {
                    errs.push(invalid_str(&ip.child("nodeName"), node, &m));
                }
            }
            if let Some(host) = e["hostname"].as_str() {
                for m in names::dns1123_label(host) {
                    errs.push(invalid_str(&ip.child("hostname"), host, &m));
                }
            }
        }
    }
    let ports = arr(&obj["ports"]);
    let pp = Path::new("ports");
    if ports.len() > 20000 {
        errs.push(too_many(&pp, ports.len(), 20000));
    } else {
        let mut seen: HashSet<&str> = HashSet::new();
        for (i, port) in ports.iter().enumerate() {
            let ip = pp.index(i);
            let name = str_of(&port["name"]);
            if !name.is_empty() {
                for m in names::dns1123_label(name) {
                    errs.push(invalid_str(&ip.child("name"), name, &m));
                }
            }
            if !seen.insert(name) {
                errs.push(duplicate(&ip.child("name"), &go_quote(name)));
            }
            match port["protocol"].as_str() {
                None => errs.push(required(&ip.child("protocol"), "")),
                Some("TCP" | "UDP" | "SCTP") => {}
                Some(other) => errs.push(not_supported_str(
                    &ip.child("protocol"),
                    other,
                    &["SCTP", "TCP", "UDP"],
                )),
            }
            if let Some(ap) = port["appProtocol"].as_str() {
                label_name(ap, &ip.child("appProtocol"), &mut errs);
            }
        }
    }
    if let Some(old) = old {
        let ot = str_of(&old["addressType"]);
        if at != ot {
            errs.push(invalid_str(&atp, at, "field is immutable"));
        }
    }
    errs
}

/// `IsFullyQualifiedDomainName`.
fn fqdn(name: &str, p: &Path, errs: &mut Errs) {
    if name.is_empty() {
        errs.push(required(p, ""));
        return;
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    let sub = names::dns1123_subdomain(name);
    if !sub.is_empty() {
        errs.push(invalid_str(p, name, &sub.join(",")));
        return;
    }
    if name.split('.').count() < 2 {
        errs.push(invalid_str(
            p,
            name,
            "should be a domain with at least two segments separated by dots",
        ));
        return;
    }
    for label in name.split('.') {
        let l = names::dns1123_label(label);
        if !l.is_empty() {
            errs.push(invalid_str(p, label, &l.join(",")));
            return;
        }
    }
}

/// A core/v1 Event (`legacyValidateEvent` for requests to the v1 API).
pub(super) fn validate_event(obj: &Value) -> Errs {
    let mut errs = Errs::new();
    let ns = str_of(&obj["metadata"]["namespace"]);
    let io_ns = str_of(&obj["involvedObject"]["namespace"]);
    let iop = Path::new("involvedObject").child("namespace");
    let mismatch = "does not match event.namespace";
    if !is_set(&obj["eventTime"]) {
        if io_ns.is_empty() {
            if !ns.is_empty() && ns != "default" {
                errs.push(invalid_str(&iop, io_ns, mismatch));
            }
        } else if ns != io_ns {
            errs.push(invalid_str(&iop, io_ns, mismatch));
        }
    } else {
        if io_ns.is_empty() && ns != "default" && ns != "kube-system" {
            errs.push(invalid_str(&iop, io_ns, mismatch));
        }
        let rc = str_of(&obj["reportingComponent"]);
        let rcp = Path::new("reportingComponent");
        if rc.is_empty() {
            errs.push(required(&rcp, ""));
        }
        label_name(rc, &rcp, &mut errs);
        let limits: [(&str, &str, usize, bool); 4] = [
            ("reportingInstance", "reportingInstance", 128, true),
            ("action", "action", 128, true),
            ("reason", "reason", 128, true),
            ("message", "message", 1024, false),
        ];
        for (key, path, max, required_field) in limits {
            let v = str_of(&obj[key]);
            if required_field && v.is_empty() {
                errs.push(required(&Path::new(path), ""));
            }
            if v.len() > max {
                errs.push(invalid_str(
                    &Path::new(path),
                    "",
                    &format!("can have at most {max} characters"),
                ));
            }
        }
    }
    for m in names::dns1123_subdomain(ns) {
        errs.push(invalid_str(&Path::new("namespace"), ns, &m));
    }
    errs
}

/// A Lease (create and update).
pub(super) fn validate_lease(obj: &Value) -> Errs {
    let mut errs = Errs::new();
    let spec = &obj["spec"];
    let p = Path::new("spec");
    if let Some(d) = spec["leaseDurationSeconds"].as_i64() {
        if d <= 0 {
            errs.push(invalid_num(
                &p.child("leaseDurationSeconds"),
                d,
                "must be greater than 0",
            ));
        }
    }
    if let Some(t) = spec["leaseTransitions"].as_i64() {
        if t < 0 {
            errs.push(invalid_num(
                &p.child("leaseTransitions"),
                t,
                "must be greater than or equal to 0",
            ));
        }
    }
    let strategy = spec["strategy"].as_str();
    if let Some(s) = strategy {
        let sp = p.child("strategy");
        if s.contains('/') {
            for m in names::qualified_name(s) {
                errs.push(invalid_str(&sp, s, &m));
            }
        } else if s != "OldestEmulationVersion" {
            errs.push(not_supported_str(&sp, s, &["OldestEmulationVersion"]));
        }
    }
    let preferred = str_of(&spec["preferredHolder"]);
    if !preferred.is_empty() && strategy.is_none_or(str::is_empty) {
        errs.push(forbidden(
            &p.child("preferredHolder"),
            "may only be specified if `strategy` is defined",
        ));
    }
    errs
}
