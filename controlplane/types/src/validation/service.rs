//! Services: `ValidateService`, `ValidateServiceUpdate` (pkg/apis/core/validation), on the
//! object as the Service storage has normalised it (`clusterIPs` from `clusterIP`, allocated
//! values carried over on update).

use std::collections::HashSet;

use serde_json::{json, Value};

use super::pod::{port_num_or_name, protocol};
use super::{is_set, label_name, labels, Errs};
use crate::field::{
    arr, duplicate, forbidden, go_quote, go_string_slice, int_of, invalid, invalid_num,
    invalid_str, not_supported_str, required, shown_scalar, str_of, Path,
};
use crate::names;

/// A Service, on create or update.
pub(super) fn validate_service(obj: &Value, old: Option<&Value>) -> Errs {
    let mut svc = obj.clone();
    match old {
        Some(old) => crate::defaults::service_update_defaults(&mut svc, old),
        None => {
            let spec = &mut svc["spec"];
            let ip = spec["clusterIP"].as_str().unwrap_or("").to_string();
            let ips_empty = spec["clusterIPs"].as_array().is_none_or(Vec::is_empty);
            if !ip.is_empty() && ips_empty && spec.is_object() {
                spec["clusterIPs"] = json!([ip]);
            }
        }
    }
    let mut errs = Errs::new();
    if let Some(old) = old {
        update_checks(&svc, old, &mut errs);
    }
    service(&svc, &mut errs);
    errs
}

fn cluster_ips(spec: &Value) -> Vec<&str> {
    arr(&spec["clusterIPs"]).iter().map(str_of).collect()
}

fn is_headless(spec: &Value) -> bool {
    cluster_ips(spec) == ["None"]
}

fn externally_accessible(spec: &Value) -> bool {
    let ty = str_of(&spec["type"]);
    ty == "LoadBalancer"
        || ty == "NodePort"
        || (ty == "ClusterIP" && !arr(&spec["externalIPs"]).is_empty())
}

fn needs_health_check(spec: &Value) -> bool {
    str_of(&spec["type"]) == "LoadBalancer" && str_of(&spec["externalTrafficPolicy"]) == "Local"
}

/// `ValidateServiceUpdate`'s own checks (before `ValidateService`).
fn update_checks(svc: &Value, old: &Value, errs: &mut Errs) {
    let (new, old) = (&svc["spec"], &old["spec"]);
    let sp = Path::new("spec");
    let external_name =
        str_of(&new["type"]) == "ExternalName" || str_of(&old["type"]) == "ExternalName";
    // validateUpgradeDowngradeClusterIPs
    let both_headless = is_headless(old) && is_headless(new);
    if !external_name && !both_headless {
        let (o, n) = (cluster_ips(old), cluster_ips(new));
        let shown = go_string_slice(new["clusterIPs"].as_array());
        let ips = sp.child("clusterIPs");
        if o.len() == n.len() {
            for (i, ip) in o.iter().enumerate() {
                if *ip != n[i] {
                    errs.push(invalid(&ips.index(i), &shown, "may not change once set"));
                }
            }
        } else if o.len() > n.len() {
            if n.is_empty() {
                errs.push(invalid(
                    &ips.index(0),
                    &shown,
                    "primary clusterIP can not be unset",
                ));
            }
            if !o.is_empty() && !n.is_empty() && n[0] != o[0] {
                errs.push(invalid(&ips.index(0), &shown, "may not change once set"));
            }
            if n.len() == 1 && str_of(&new["ipFamilyPolicy"]) != "SingleStack" {
                errs.push(invalid(
                    &sp.child("ipFamilyPolicy"),
                    &policy_shown(new),
                    "must be set to 'SingleStack' when releasing the secondary clusterIP",
                ));
            }
        } else if !o.is_empty() && n[0] != o[0] {
            errs.push(invalid(&ips.index(0), &shown, "may not change once set"));
        }
    }
    // validateUpgradeDowngradeIPFamilies
    if !external_name && is_headless(old) == is_headless(new) && !is_headless(new) {
        let fam = |s: &Value| -> Vec<String> {
            arr(&s["ipFamilies"])
                .iter()
                .map(|f| str_of(f).to_string())
                .collect()
        };
        let (o, n) = (fam(old), fam(new));
        let fp = sp.child("ipFamilies").index(0);
        let shown_f = go_families(&new["ipFamilies"]);
        let shown_ips = go_string_slice(new["clusterIPs"].as_array());
        if o.len() == n.len() {
            for (i, f) in o.iter().enumerate() {
                if *f != n[i] {
                    errs.push(invalid(&fp, &shown_f, "may not change once set"));
                }
            }
        } else if o.len() > n.len() {
            if cluster_ips(new).is_empty() {
                errs.push(invalid(&fp, &shown_f, "primary ipFamily can not be unset"));
            }
            if !n.is_empty() && n[0] != o[0] {
                errs.push(invalid(&fp, &shown_ips, "may not change once set"));
            }
            if n.len() == 1 && str_of(&new["ipFamilyPolicy"]) != "SingleStack" {
                errs.push(invalid(
                    &sp.child("ipFamilyPolicy"),
                    &policy_shown(new),
                    "must be set to 'SingleStack' when releasing the secondary ipFamily",
                ));
            }
        } else if !o.is_empty() && !n.is_empty() && n[0] != o[0] {
            errs.push(invalid(&fp, &shown_ips, "may not change once set"));
        }
    }
    // validateLoadBalancerClassField (update part)
    if str_of(&old["type"]) == "LoadBalancer"
        && str_of(&new["type"]) == "LoadBalancer"
        && new["loadBalancerClass"] != old["loadBalancerClass"]
        && !(new["loadBalancerClass"].is_null() && old["loadBalancerClass"].is_null())
    {
        errs.push(invalid(
            &sp.child("loadBalancerClass"),
            &shown_scalar(&new["loadBalancerClass"]),
            "may not change once set",
        ));
    }
    // validateServiceExternalTrafficFieldsUpdate
    if needs_health_check(old)
        && needs_health_check(new)
        && int_of(&new["healthCheckNodePort"]) != int_of(&old["healthCheckNodePort"])
    {
        errs.push(forbidden(
            &sp.child("healthCheckNodePort"),
            "field is immutable",
        ));
    }
}

fn policy_shown(spec: &Value) -> String {
    spec["ipFamilyPolicy"]
        .as_str()
        .map_or("null".to_string(), go_quote)
}

fn go_families(v: &Value) -> String {
    match v.as_array() {
        None => "[]core.IPFamily(nil)".to_string(),
        Some(a) => {
            let items: Vec<String> = a.iter().map(|f| go_quote(str_of(f))).collect();
            format!("[]core.IPFamily{{{}}}", items.join(", "))
        }
    }
}

/// Go's `%#v` of a `core.ServicePort` key used for duplicate detection.
fn go_service_port_key(protocol: &str, port: i64) -> String {
    format!(
        "core.ServicePort{{Name:\"\", Protocol:{}, AppProtocol:(*string)(nil), Port:{port}, TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:\"\"}}, NodePort:0}}",
        go_quote(protocol)
    )
}

/// `ValidateService`.
fn service(svc: &Value, errs: &mut Errs) {
    let spec = &svc["spec"];
    let sp = Path::new("spec");
    let ty = str_of(&spec["type"]);
    let headless = is_headless(spec);
    let ports = arr(&spec["ports"]);
    if ports.is_empty() && !headless && ty != "ExternalName" {
        errs.push(required(&sp.child("ports"), ""));
    }
    match ty {
        "LoadBalancer" | "NodePort" if headless => errs.push(invalid_str(
            &sp.child("clusterIPs").index(0),
            "None",
            &format!("may not be set to 'None' for {ty} services"),
        )),
        "ExternalName" => {
            if !cluster_ips(spec).is_empty() {
                errs.push(forbidden(
                    &sp.child("clusterIPs"),
                    "may not be set for ExternalName services",
                ));
            }
            if !arr(&spec["ipFamilies"]).is_empty() {
                errs.push(forbidden(
                    &sp.child("ipFamilies"),
                    "may not be set for ExternalName services",
                ));
            }
            if is_set(&spec["ipFamilyPolicy"]) {
                errs.push(forbidden(
                    &sp.child("ipFamilyPolicy"),
                    "may not be set for ExternalName services",
                ));
            }
            let en = str_of(&spec["externalName"]);
            let cname = en.strip_suffix('.').unwrap_or(en);
            if cname.is_empty() {
                errs.push(required(&sp.child("externalName"), ""));
            } else {
                for m in names::dns1123_subdomain(cname) {
                    errs.push(invalid_str(&sp.child("externalName"), cname, &m));
                }
            }
        }
        _ => {}
    }
    let mut port_names: HashSet<&str> = HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        service_port(
            port,
            ports.len() > 1,
            &mut port_names,
            &sp.child("ports").index(i),
            errs,
        );
    }
    labels(&spec["selector"], &sp.child("selector"), errs);
    let sa = str_of(&spec["sessionAffinity"]);
    match sa {
        "" => errs.push(required(&sp.child("sessionAffinity"), "")),
        "ClientIP" | "None" => {}
        other => errs.push(not_supported_str(
            &sp.child("sessionAffinity"),
            other,
            &["ClientIP", "None"],
        )),
    }
    let cfg = &spec["sessionAffinityConfig"];
    let cp = sp.child("sessionAffinityConfig");
    if sa == "ClientIP" {
        let when = "when session affinity type is ClientIP";
        if !is_set(cfg) {
            errs.push(required(&cp, when));
        } else if !is_set(&cfg["clientIP"]) {
            errs.push(required(&cp.child("clientIP"), when));
        } else if !is_set(&cfg["clientIP"]["timeoutSeconds"]) {
            errs.push(required(
                &cp.child("clientIP").child("timeoutSeconds"),
                when,
            ));
        } else {
            let t = int_of(&cfg["clientIP"]["timeoutSeconds"]);
            if t <= 0 || t > 86400 {
                errs.push(invalid_num(
                    &cp.child("clientIP").child("timeoutSeconds"),
                    t,
                    "must be greater than 0 and less than 86400",
                ));
            }
        }
    } else if sa == "None" && is_set(cfg) {
        errs.push(forbidden(
            &cp,
            "must not be set when session affinity is None",
        ));
    }
    cluster_ips_related(spec, errs);
    for (i, ip) in arr(&spec["externalIPs"]).iter().enumerate() {
        let ip = str_of(ip);
        let ipp = sp.child("externalIPs").index(i);
        let bad = names::ip(ip);
        if bad.is_empty() {
            non_special_ip(ip, &ipp, errs);
        } else {
            for m in bad {
                errs.push(invalid_str(&ipp, ip, &m));
            }
        }
    }
    match ty {
        "" => errs.push(required(&sp.child("type"), "")),
        "ClusterIP" | "ExternalName" | "LoadBalancer" | "NodePort" => {}
        other => errs.push(not_supported_str(
            &sp.child("type"),
            other,
            &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"],
        )),
    }
    if ty == "ClusterIP" {
        for (i, port) in ports.iter().enumerate() {
            if int_of(&port["nodePort"]) != 0 {
                errs.push(forbidden(
                    &sp.child("ports").index(i).child("nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                ));
            }
        }
    }
    let mut node_ports: HashSet<(String, i64)> = HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        let np = int_of(&port["nodePort"]);
        if np == 0 {
            continue;
        }
        if !node_ports.insert((str_of(&port["protocol"]).to_string(), np)) {
            errs.push(duplicate(
                &sp.child("ports").index(i).child("nodePort"),
                &np.to_string(),
            ));
        }
    }
    let mut seen: HashSet<(String, i64)> = HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        let proto = str_of(&port["protocol"]);
        let num = int_of(&port["port"]);
        if !seen.insert((proto.to_string(), num)) {
            errs.push(duplicate(
                &sp.child("ports").index(i),
                &go_service_port_key(proto, num),
            ));
        }
    }
    let ranges = arr(&spec["loadBalancerSourceRanges"]);
    if !ranges.is_empty() {
        let rp = sp.child("LoadBalancerSourceRanges");
        if ty != "LoadBalancer" {
            errs.push(forbidden(
                &rp,
                "may only be used when `type` is 'LoadBalancer'",
            ));
        }
        for (i, r) in ranges.iter().enumerate() {
            let r = str_of(r).trim();
            for m in names::cidr(r) {
                errs.push(invalid_str(&rp.index(i), r, &m));
            }
        }
    }
    let alloc = &spec["allocateLoadBalancerNodePorts"];
    if is_set(alloc) && ty != "LoadBalancer" {
        errs.push(forbidden(
            &sp.child("allocateLoadBalancerNodePorts"),
            "may only be used when `type` is 'LoadBalancer'",
        ));
    }
    if ty == "LoadBalancer" && !is_set(alloc) {
        errs.push(required(&Path::new("allocateLoadBalancerNodePorts"), ""));
    }
    let lbc = &spec["loadBalancerClass"];
    if ty == "LoadBalancer" {
        if let Some(c) = lbc.as_str() {
            label_name(c, &sp.child("loadBalancerClass"), errs);
        }
    } else if is_set(lbc) {
        errs.push(forbidden(
            &sp.child("loadBalancerClass"),
            "may only be used when `type` is 'LoadBalancer'",
        ));
    }
    let etp = str_of(&spec["externalTrafficPolicy"]);
    let etp_path = sp.child("externalTrafficPolicy");
    if !externally_accessible(spec) {
        if !etp.is_empty() {
            errs.push(invalid_str(
                &etp_path,
                etp,
                "may only be set for externally-accessible services",
            ));
        }
    } else if etp.is_empty() {
        errs.push(required(&etp_path, ""));
    } else if !matches!(etp, "Cluster" | "Local") {
        errs.push(not_supported_str(&etp_path, etp, &["Cluster", "Local"]));
    }
    let hc = int_of(&spec["healthCheckNodePort"]);
    let hcp = sp.child("healthCheckNodePort");
    if !needs_health_check(spec) {
        if hc != 0 {
            errs.push(invalid_num(
                &hcp,
                hc,
                "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
            ));
        }
    } else if hc == 0 {
        errs.push(required(&hcp, ""));
    } else {
        for m in names::port_num(hc) {
            errs.push(invalid_num(&hcp, hc, &m));
        }
    }
    let itp = &spec["internalTrafficPolicy"];
    match itp.as_str() {
        None => {
            if matches!(ty, "NodePort" | "LoadBalancer" | "ClusterIP") {
                errs.push(required(&sp.child("internalTrafficPolicy"), ""));
            }
        }
        Some("Cluster" | "Local") => {}
        Some(other) => errs.push(not_supported_str(
            &sp.child("internalTrafficPolicy"),
            other,
            &["Cluster", "Local"],
        )),
    }
    if let Some(td) = spec["trafficDistribution"].as_str() {
        if !matches!(td, "PreferClose" | "PreferSameZone" | "PreferSameNode") {
            errs.push(not_supported_str(
                &sp.child("trafficDistribution"),
                td,
                &["PreferClose", "PreferSameZone", "PreferSameNode"],
            ));
        }
    }
}

/// `validateServicePort`.
fn service_port<'a>(
    port: &'a Value,
    require_name: bool,
    seen: &mut HashSet<&'a str>,
    p: &Path,
    errs: &mut Errs,
) {
    let name = str_of(&port["name"]);
    if require_name && name.is_empty() {
        errs.push(required(&p.child("name"), ""));
    } else if !name.is_empty() {
        for m in names::dns1123_label(name) {
            errs.push(invalid_str(&p.child("name"), name, &m));
        }
        if !seen.insert(name) {
            errs.push(duplicate(&p.child("name"), &go_quote(name)));
        }
    }
    let num = int_of(&port["port"]);
    for m in names::port_num(num) {
        errs.push(invalid_num(&p.child("port"), num, &m));
    }
    protocol(&port["protocol"], &p.child("protocol"), errs);
    port_num_or_name(&port["targetPort"], &p.child("targetPort"), errs);
    if let Some(ap) = port["appProtocol"].as_str() {
        label_name(ap, &p.child("appProtocol"), errs);
    }
}

/// `ValidateServiceClusterIPsRelatedFields`.
fn cluster_ips_related(spec: &Value, errs: &mut Errs) {
    if str_of(&spec["type"]) == "ExternalName" {
        return;
    }
    let sp = Path::new("spec");
    let ips_path = sp.child("clusterIPs");
    let ips = cluster_ips(spec);
    let shown = go_string_slice(spec["clusterIPs"].as_array());
    let ip = str_of(&spec["clusterIP"]);
    if !ip.is_empty() {
        if ips.is_empty() {
            errs.push(required(&ips_path, ""));
        } else if ips[0] != ip {
            errs.push(invalid(
                &ips_path,
                &shown,
                "first value must match `clusterIP`",
            ));
        }
    } else if !ips.is_empty() {
        errs.push(invalid(
            &ips_path,
            &shown,
            "must be empty when `clusterIP` is not specified",
        ));
    }
    let mut fams: HashSet<&str> = HashSet::new();
    for (i, f) in arr(&spec["ipFamilies"]).iter().enumerate() {
        let f = str_of(f);
        let fp = sp.child("ipFamilies").index(i);
        if !matches!(f, "IPv4" | "IPv6") {
            errs.push(not_supported_str(&fp, f, &["IPv4", "IPv6"]));
        }
        if !fams.insert(f) {
            errs.push(duplicate(&fp, &go_quote(f)));
        }
    }
    if let Some(policy) = spec["ipFamilyPolicy"].as_str() {
        if !matches!(
            policy,
            "SingleStack" | "PreferDualStack" | "RequireDualStack"
        ) {
            errs.push(not_supported_str(
                &sp.child("ipFamilyPolicy"),
                policy,
                &["PreferDualStack", "RequireDualStack", "SingleStack"],
            ));
        }
    }
    let mut bad = false;
    for (i, ip) in ips.iter().enumerate() {
        if i == 0 && *ip == "None" {
            if ips.len() > 1 {
                bad = true;
                errs.push(invalid(
                    &ips_path,
                    &shown,
                    "'None' must be the first and only value",
                ));
            }
            continue;
        }
        for m in names::ip(ip) {
            bad = true;
            errs.push(invalid_str(&ips_path.index(i), ip, &m));
        }
    }
    if ips.len() > 2 {
        errs.push(invalid(&ips_path, &shown, "may only hold up to 2 values"));
    }
    if bad {
        return;
    }
    if ips.len() > 1 {
        let v6 = ips.iter().filter(|ip| ip.contains(':')).count();
        if v6 != 1 || ips.len() != 2 {
            errs.push(invalid(
                &ips_path,
                &shown,
                "may specify no more than one IP for each IP family",
            ));
        }
    }
    let families = arr(&spec["ipFamilies"]);
    if !is_headless(spec) && !ips.is_empty() && !families.is_empty() {
        for (i, ip) in ips.iter().enumerate() {
            let Some(f) = families.get(i) else {
                break;
            };
            let is_v6 = ip.contains(':');
            if f == "IPv4" && is_v6 {
                errs.push(invalid_str(
                    &ips_path.index(i),
                    ip,
                    &format!("expected an IPv4 value as indicated by `ipFamilies[{i}]`"),
                ));
            }
            if f == "IPv6" && !is_v6 {
                errs.push(invalid_str(
                    &ips_path.index(i),
                    ip,
                    &format!("expected an IPv6 value as indicated by `ipFamilies[{i}]`"),
                ));
            }
        }
    }
}

/// `ValidateNonSpecialIP` (for a parseable address).
pub(super) fn non_special_ip(ip: &str, p: &Path, errs: &mut Errs) {
    special_ip_checks(ip, p, errs, false);
}

/// An endpoint's address: as [`non_special_ip`], except that IPv4 loopback addresses are
/// allowed. Unlike Kubernetes: Concord's pods get their addresses from a loopback range
/// (the agent's `--pod-cidr`, 127.1.0.0/16 by default), so their endpoints are loopback
/// addresses.
pub(super) fn endpoint_ip(ip: &str, p: &Path, errs: &mut Errs) {
    special_ip_checks(ip, p, errs, true);
}

fn special_ip_checks(ip: &str, p: &Path, errs: &mut Errs, allow_v4_loopback: bool) {
    let Ok(addr) = ip.parse::<std::net::IpAddr>() else {
        errs.push(invalid_str(p, ip, "must be a valid IP address"));
        return;
    };
    let (unspecified, loopback, link_local, link_local_mc) = match addr {
        std::net::IpAddr::V4(a) => {
            let o = a.octets();
            (
                a.is_unspecified(),
                a.is_loopback() && !allow_v4_loopback,
                a.is_link_local(),
                o[0] == 224 && o[1] == 0 && o[2] == 0,
            )
        }
        std::net::IpAddr::V6(a) => {
            let s = a.segments();
            (
                a.is_unspecified(),
                a.is_loopback(),
                (s[0] & 0xffc0) == 0xfe80,
                (s[0] & 0xff0f) == 0xff02,
            )
        }
    };
    if unspecified {
        errs.push(invalid_str(
            p,
            ip,
            &format!("may not be unspecified ({ip})"),
        ));
    }
    if loopback {
        errs.push(invalid_str(
            p,
            ip,
            "may not be in the loopback range (127.0.0.0/8, ::1/128)",
        ));
    }
    if link_local {
        errs.push(invalid_str(
            p,
            ip,
            "may not be in the link-local range (169.254.0.0/16, fe80::/10)",
        ));
    }
    if link_local_mc {
        errs.push(invalid_str(
            p,
            ip,
            "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)",
        ));
    }
}
