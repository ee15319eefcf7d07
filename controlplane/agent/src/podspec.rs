//! What a container runs, from its pod spec and image: the command line (`command`/`args`
//! over the image's Entrypoint/Cmd, with `$(VAR)` expansion), the environment (the image's,
//! then `envFrom`, then `env` with `valueFrom`, then the downward API values Concord adds:
//! `POD_IP`, `HOSTNAME`), the working directory, and the limits for the cgroup.

use std::collections::HashMap;
use std::path::PathBuf;

use base64::Engine;
use serde_json::Value;

use crate::image::ImageConfig;

/// Why a container cannot be created: its waiting reason is `CreateContainerConfigError`
/// (or `CreateContainerError` for [`ConfigError::NoCommand`]), with this message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// A ConfigMap or Secret that `env`/`envFrom` needs is missing, or lacks the key.
    #[error("{0}")]
    Missing(String),
    /// A fieldRef or resourceFieldRef Concord cannot resolve.
    #[error("{0}")]
    Unsupported(String),
    /// Neither the container nor its image says what to run.
    #[error("no command specified")]
    NoCommand,
}

/// The objects `env` and `envFrom` read: ConfigMaps and Secrets of the pod's namespace,
/// by name (absent ones are `None`).
pub trait Sources {
    /// ConfigMap `name`'s object.
    fn config_map(&self, name: &str) -> Option<Value>;
    /// Secret `name`'s object.
    fn secret(&self, name: &str) -> Option<Value>;
}

/// Expands `$(VAR)` references with `vars` as Kubernetes does: `$$` is a literal `$`, an
/// undefined or malformed reference is left as written.
pub fn expand(s: &str, vars: &HashMap<String, String>) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    let mut lit = 0;
    while i < b.len() {
        if b[i] == b'$' && i + 1 < b.len() {
            match b[i + 1] {
                b'$' => {
                    out.push_str(&s[lit..i]);
                    out.push('$');
                    i += 2;
                    lit = i;
                    continue;
                }
                b'(' => {
                    if let Some(end) = s[i + 2..].find(')') {
                        let name = &s[i + 2..i + 2 + end];
                        if let Some(v) = vars.get(name) {
                            out.push_str(&s[lit..i]);
                            out.push_str(v);
                            i = i + 2 + end + 1;
                            lit = i;
                            continue;
                        }
                    }
                }
                _ => {}
            }
        }
        i += 1;
    }
    out.push_str(&s[lit..]);
    out
}

fn data_value(obj: &Value, key: &str, secret: bool) -> Option<String> {
    if secret {
        let v = obj["data"][key].as_str()?;
        let bytes = base64::engine::general_purpose::STANDARD.decode(v).ok()?;
        Some(String::from_utf8_lossy(&bytes).into_owned())
    } else {
        obj["data"][key].as_str().map(str::to_string).or_else(|| {
            let v = obj["binaryData"][key].as_str()?;
            let bytes = base64::engine::general_purpose::STANDARD.decode(v).ok()?;
            Some(String::from_utf8_lossy(&bytes).into_owned())
        })
    }
}

/// A `fieldRef` path's value.
fn field_value(
    pod: &Value,
    pod_ip: &str,
    host_ip: &str,
    path: &str,
) -> Result<String, ConfigError> {
    let meta = &pod["metadata"];
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    if let Some(rest) = path
        .strip_prefix("metadata.labels['")
        .and_then(|r| r.strip_suffix("']"))
    {
        return Ok(s(&meta["labels"][rest]));
    }
    if let Some(rest) = path
        .strip_prefix("metadata.annotations['")
        .and_then(|r| r.strip_suffix("']"))
    {
        return Ok(s(&meta["annotations"][rest]));
    }
    let kv = |m: &Value| {
        let mut v: Vec<String> = m
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| format!("{k}=\"{}\"", v.as_str().unwrap_or("")))
            .collect();
        v.sort();
        v.join("\n")
    };
    Ok(match path {
        "metadata.name" => s(&meta["name"]),
        "metadata.namespace" => s(&meta["namespace"]),
        "metadata.uid" => s(&meta["uid"]),
        "metadata.labels" => kv(&meta["labels"]),
        "metadata.annotations" => kv(&meta["annotations"]),
        "spec.nodeName" => s(&pod["spec"]["nodeName"]),
        "spec.serviceAccountName" => s(&pod["spec"]["serviceAccountName"]),
        "status.hostIP" | "status.hostIPs" => host_ip.to_string(),
        "status.podIP" | "status.podIPs" => pod_ip.to_string(),
        other => {
            return Err(ConfigError::Unsupported(format!(
                "unsupported fieldRef path {other:?}"
            )))
        }
    })
}

/// A `resourceFieldRef`'s value: the container's limit (or request), in units of the
/// divisor, rounded up as the kubelet does; an unset CPU or memory limit is the node's
/// allocatable, which the caller passes.
fn resource_value(
    container: &Value,
    r: &Value,
    node_cpu_millis: i64,
    node_memory: i64,
) -> Result<String, ConfigError> {
    let resource = r["resource"].as_str().unwrap_or("");
    let divisor = r["divisor"].as_str().unwrap_or("1");
    let (section, name) = resource
        .split_once('.')
        .ok_or_else(|| ConfigError::Unsupported(format!("unsupported resource {resource:?}")))?;
    let quantity = container["resources"][section][name].as_str();
    let cpu = name == "cpu";
    let value_milli: i64 = match quantity {
        Some(q) => concord_cp_types::milli_value(q).unwrap_or(0),
        None if cpu => node_cpu_millis,
        None if name == "memory" => node_memory.saturating_mul(1000),
        None => 0,
    };
    let div_milli = concord_cp_types::milli_value(divisor)
        .filter(|d| *d > 0)
        .unwrap_or(1000);
    let v = (value_milli + div_milli - 1) / div_milli;
    Ok(v.max(if cpu { 1 } else { 0 }).to_string())
}

/// What the node tells the container about itself.
#[derive(Debug, Clone)]
pub struct PodContext<'a> {
    /// The pod.
    pub pod: &'a Value,
    /// Its address.
    pub pod_ip: &'a str,
    /// The node's address.
    pub host_ip: &'a str,
    /// The node's allocatable CPU, in millicores (for resourceFieldRef without limits).
    pub node_cpu_millis: i64,
    /// The node's allocatable memory, in bytes.
    pub node_memory: i64,
}

/// The container's environment, in order (later entries win): the image's, `PATH` with the
/// image's `bin` first, `HOSTNAME`, the Service variables, `POD_IP`, `envFrom`, then `env`.
pub fn environment(
    ctx: &PodContext<'_>,
    container: &Value,
    image: &ImageConfig,
    service_env: &[(String, String)],
    sources: &dyn Sources,
) -> Result<Vec<(String, String)>, ConfigError> {
    let mut order: Vec<String> = Vec::new();
    let mut vars: HashMap<String, String> = HashMap::new();
    let set = |order: &mut Vec<String>, vars: &mut HashMap<String, String>, k: &str, v: String| {
        if !vars.contains_key(k) {
            order.push(k.to_string());
        }
        vars.insert(k.to_string(), v);
    };
    let default_path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    let image_path = image
        .env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| default_path.to_string());
    for (k, v) in &image.env {
        set(&mut order, &mut vars, k, v.clone());
    }
    let root = image.root.display();
    set(
        &mut order,
        &mut vars,
        "PATH",
        format!("{root}/bin:{root}:{image_path}"),
    );
    let pod_name = ctx.pod["metadata"]["name"].as_str().unwrap_or("");
    set(&mut order, &mut vars, "HOSTNAME", pod_name.to_string());
    for (k, v) in service_env {
        set(&mut order, &mut vars, k, v.clone());
    }
    // Before the container's own variables, so that they (and the command line) can refer to
    // it as $(POD_IP), and can override it.
    set(&mut order, &mut vars, "POD_IP", ctx.pod_ip.to_string());
    for from in container["envFrom"].as_array().into_iter().flatten() {
        let prefix = from["prefix"].as_str().unwrap_or("");
        let (obj, secret, name, optional) = if from["configMapRef"].is_object() {
            let r = &from["configMapRef"];
            let name = r["name"].as_str().unwrap_or("");
            (sources.config_map(name), false, name, r["optional"] == true)
        } else if from["secretRef"].is_object() {
            let r = &from["secretRef"];
            let name = r["name"].as_str().unwrap_or("");
            (sources.secret(name), true, name, r["optional"] == true)
        } else {
            continue;
        };
        let Some(obj) = obj else {
            if optional {
                continue;
            }
            let kind = if secret { "secret" } else { "configmap" };
            return Err(ConfigError::Missing(format!("{kind} \"{name}\" not found")));
        };
        let mut keys: Vec<String> = obj["data"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| k.clone())
            .collect();
        keys.sort();
        for k in keys {
            if let Some(v) = data_value(&obj, &k, secret) {
                set(&mut order, &mut vars, &format!("{prefix}{k}"), v);
            }
        }
    }
    for e in container["env"].as_array().into_iter().flatten() {
        let Some(name) = e["name"].as_str() else {
            continue;
        };
        let value = if let Some(v) = e["value"].as_str() {
            Some(expand(v, &vars))
        } else if e["valueFrom"].is_object() {
            let f = &e["valueFrom"];
            if let Some(path) = f["fieldRef"]["fieldPath"].as_str() {
                Some(field_value(ctx.pod, ctx.pod_ip, ctx.host_ip, path)?)
            } else if f["resourceFieldRef"].is_object() {
                Some(resource_value(
                    container,
                    &f["resourceFieldRef"],
                    ctx.node_cpu_millis,
                    ctx.node_memory,
                )?)
            } else {
                let (r, secret) = if f["configMapKeyRef"].is_object() {
                    (&f["configMapKeyRef"], false)
                } else if f["secretKeyRef"].is_object() {
                    (&f["secretKeyRef"], true)
                } else {
                    continue;
                };
                let obj_name = r["name"].as_str().unwrap_or("");
                let key = r["key"].as_str().unwrap_or("");
                let optional = r["optional"] == true;
                let obj = if secret {
                    sources.secret(obj_name)
                } else {
                    sources.config_map(obj_name)
                };
                let ns = ctx.pod["metadata"]["namespace"].as_str().unwrap_or("");
                match obj {
                    None if optional => None,
                    None => {
                        let kind = if secret { "secret" } else { "configmap" };
                        return Err(ConfigError::Missing(format!(
                            "{kind} \"{obj_name}\" not found"
                        )));
                    }
                    Some(o) => match data_value(&o, key, secret) {
                        Some(v) => Some(v),
                        None if optional => None,
                        None => {
                            let kind = if secret { "Secret" } else { "ConfigMap" };
                            return Err(ConfigError::Missing(format!(
                                "couldn't find key {key} in {kind} {ns}/{obj_name}"
                            )));
                        }
                    },
                }
            }
        } else {
            Some(String::new())
        };
        if let Some(v) = value {
            set(&mut order, &mut vars, name, v);
        }
    }
    Ok(order
        .into_iter()
        .map(|k| {
            let v = vars.remove(&k).unwrap_or_default();
            (k, v)
        })
        .collect())
}

/// The command line: `command` replaces the image's Entrypoint (and drops its Cmd), `args`
/// replaces Cmd; `$(VAR)` references are expanded with the container's environment.
pub fn command_line(
    container: &Value,
    image: &ImageConfig,
    env: &[(String, String)],
) -> Result<Vec<String>, ConfigError> {
    let strings = |v: &Value| -> Option<Vec<String>> {
        v.as_array().map(|a| {
            a.iter()
                .map(|s| s.as_str().unwrap_or("").to_string())
                .collect()
        })
    };
    let command = strings(&container["command"]).filter(|c| !c.is_empty());
    let args = strings(&container["args"]).filter(|a| !a.is_empty());
    let (entry, cmd) = match (command, args) {
        (Some(c), Some(a)) => (c, a),
        (Some(c), None) => (c, vec![]),
        (None, Some(a)) => (image.entrypoint.clone(), a),
        (None, None) => (image.entrypoint.clone(), image.cmd.clone()),
    };
    let vars: HashMap<String, String> = env.iter().cloned().collect();
    let argv: Vec<String> = entry
        .into_iter()
        .chain(cmd)
        .map(|s| expand(&s, &vars))
        .collect();
    if argv.is_empty() {
        return Err(ConfigError::NoCommand);
    }
    Ok(argv)
}

/// The working directory: the container's `workingDir`, else the image's, else its root.
/// A relative one is taken in the image's root.
pub fn working_dir(container: &Value, image: &ImageConfig) -> PathBuf {
    let wd = container["workingDir"]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .or_else(|| image.working_dir.clone());
    match wd {
        Some(p) if p.is_absolute() => p,
        Some(p) => image.root.join(p),
        None => image.root.clone(),
    }
}

/// The container's memory limit in bytes and CPU limit in millicores, if set.
pub fn limits(container: &Value) -> (Option<u64>, Option<u64>) {
    let l = &container["resources"]["limits"];
    let memory = l["memory"]
        .as_str()
        .and_then(concord_cp_types::int_value)
        .and_then(|v| u64::try_from(v).ok())
        .filter(|v| *v > 0);
    let cpu = l["cpu"]
        .as_str()
        .and_then(concord_cp_types::milli_value)
        .and_then(|v| u64::try_from(v).ok())
        .filter(|v| *v > 0);
    (memory, cpu)
}

/// The Service variables of a namespace's Services (`enableServiceLinks`): for each Service
/// with a cluster IP, `NAME_SERVICE_HOST`, `NAME_SERVICE_PORT` (its first port) and
/// `NAME_SERVICE_PORT_PORTNAME` (named ports), names upper-cased with `-` as `_`.
pub fn service_env(services: &[std::sync::Arc<Value>]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut sorted: Vec<&Value> = services.iter().map(|s| s.as_ref()).collect();
    sorted.sort_by(|a, b| {
        a["metadata"]["name"]
            .as_str()
            .cmp(&b["metadata"]["name"].as_str())
    });
    for s in sorted {
        let ip = s["spec"]["clusterIP"].as_str().unwrap_or("");
        if ip.is_empty() || ip == "None" {
            continue;
        }
        let name = s["metadata"]["name"]
            .as_str()
            .unwrap_or("")
            .to_uppercase()
            .replace('-', "_");
        let ports = s["spec"]["ports"].as_array().cloned().unwrap_or_default();
        out.push((format!("{name}_SERVICE_HOST"), ip.to_string()));
        if let Some(p) = ports.first() {
            out.push((format!("{name}_SERVICE_PORT"), p["port"].to_string()));
        }
        for p in &ports {
            if let Some(pn) = p["name"].as_str().filter(|n| !n.is_empty()) {
                out.push((
                    format!(
                        "{name}_SERVICE_PORT_{}",
                        pn.to_uppercase().replace('-', "_")
                    ),
                    p["port"].to_string(),
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct NoSources(HashMap<String, Value>, HashMap<String, Value>);
    impl Sources for NoSources {
        fn config_map(&self, name: &str) -> Option<Value> {
            self.0.get(name).cloned()
        }
        fn secret(&self, name: &str) -> Option<Value> {
            self.1.get(name).cloned()
        }
    }

    #[test]
    fn expansion_follows_kubernetes() {
        let vars: HashMap<String, String> =
            [("A".to_string(), "x".to_string())].into_iter().collect();
        assert_eq!(expand("$(A)-$(B)-$$(A)-$(A", &vars), "x-$(B)-$(A)-$(A");
        assert_eq!(expand("plain $ sign", &vars), "plain $ sign");
        assert_eq!(expand("$A $ $", &vars), "$A $ $");
        assert_eq!(expand("", &vars), "");
    }

    #[test]
    fn environment_and_command_line() {
        let pod = json!({"metadata": {"name": "web-1", "namespace": "ns", "uid": "u1",
                          "labels": {"app": "web"}},
                         "spec": {"nodeName": "n1"}});
        let container = json!({
            "name": "c",
            "command": ["python3", "-m", "http.server", "--bind", "$(POD_IP)", "$(PORT)"],
            "env": [
                {"name": "PORT", "value": "8080"},
                {"name": "URL", "value": "http://$(POD_IP):$(PORT)/"},
                {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}}},
                {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "s", "key": "pw"}}},
                {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
            ],
            "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}],
            "resources": {"limits": {"memory": "64Mi", "cpu": "500m"}},
        });
        let image = ImageConfig {
            root: PathBuf::from("/images/x/rootfs"),
            env: vec![("LANG".into(), "C.UTF-8".into())],
            ..Default::default()
        };
        let sources = NoSources(
            [("cfg".to_string(), json!({"data": {"mode": "fast"}}))].into(),
            [("s".to_string(), json!({"data": {"pw": "aHVudGVyMg=="}}))].into(),
        );
        let ctx = PodContext {
            pod: &pod,
            pod_ip: "127.1.0.7",
            host_ip: "127.0.0.1",
            node_cpu_millis: 2000,
            node_memory: 1 << 30,
        };
        let svc = vec![("WEB_SERVICE_HOST".to_string(), "127.2.0.3".to_string())];
        let env = environment(&ctx, &container, &image, &svc, &sources).unwrap();
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("URL"), Some("http://127.1.0.7:8080/"));
        assert_eq!(get("NODE"), Some("n1"));
        assert_eq!(get("APP"), Some("web"));
        assert_eq!(get("MODE"), Some("fast"));
        assert_eq!(get("CFG_mode"), Some("fast"));
        assert_eq!(get("PW"), Some("hunter2"));
        assert_eq!(get("MEM"), Some("64"));
        assert_eq!(get("LANG"), Some("C.UTF-8"));
        assert_eq!(get("HOSTNAME"), Some("web-1"));
        assert_eq!(get("WEB_SERVICE_HOST"), Some("127.2.0.3"));
        assert!(get("PATH").unwrap().starts_with("/images/x/rootfs/bin:"));
        let argv = command_line(&container, &image, &env).unwrap();
        assert_eq!(
            argv,
            [
                "python3",
                "-m",
                "http.server",
                "--bind",
                "127.1.0.7",
                "8080"
            ]
        );
        assert_eq!(limits(&container), (Some(64 << 20), Some(500)));

        // Missing sources give the kubelet's messages.
        let none = NoSources(HashMap::new(), HashMap::new());
        let e = environment(&ctx, &container, &image, &[], &none).unwrap_err();
        assert_eq!(e.to_string(), "configmap \"cfg\" not found");
        let only_cm = NoSources(
            [("cfg".to_string(), json!({"data": {"mode": "fast"}}))].into(),
            [("s".to_string(), json!({"data": {}}))].into(),
        );
        let e = environment(&ctx, &container, &image, &[], &only_cm).unwrap_err();
        assert_eq!(e.to_string(), "couldn't find key pw in Secret ns/s");
    }

    #[test]
    fn image_defaults_apply_unless_overridden() {
        let image = ImageConfig {
            root: PathBuf::from("/img"),
            entrypoint: vec!["server".into()],
            cmd: vec!["--port".into(), "80".into()],
            working_dir: Some(PathBuf::from("app")),
            ..Default::default()
        };
        let c = json!({"name": "c"});
        assert_eq!(
            command_line(&c, &image, &[]).unwrap(),
            ["server", "--port", "80"]
        );
        let c = json!({"name": "c", "args": ["--port", "81"]});
        assert_eq!(
            command_line(&c, &image, &[]).unwrap(),
            ["server", "--port", "81"]
        );
        let c = json!({"name": "c", "command": ["sh"]});
        assert_eq!(command_line(&c, &image, &[]).unwrap(), ["sh"]);
        assert_eq!(working_dir(&json!({}), &image), PathBuf::from("/img/app"));
        assert_eq!(
            working_dir(&json!({"workingDir": "/tmp"}), &image),
            PathBuf::from("/tmp")
        );
        let empty = ImageConfig::default();
        assert_eq!(
            command_line(&json!({}), &empty, &[]),
            Err(ConfigError::NoCommand)
        );
    }

    #[test]
    fn service_variables() {
        let svcs = vec![std::sync::Arc::new(json!({
            "metadata": {"name": "model-serving"},
            "spec": {"clusterIP": "127.2.0.9", "ports": [{"name": "http", "port": 80}]}
        }))];
        let env = service_env(&svcs);
        assert_eq!(
            env,
            vec![
                ("MODEL_SERVING_SERVICE_HOST".into(), "127.2.0.9".into()),
                ("MODEL_SERVING_SERVICE_PORT".into(), "80".into()),
                ("MODEL_SERVING_SERVICE_PORT_HTTP".into(), "80".into()),
            ]
        );
    }
}
