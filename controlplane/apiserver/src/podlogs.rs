//! `GET pods/NAME/log`: kube-apiserver's `LogREST`. The options are decoded and validated
//! (`ValidatePodLogOptions`), the container chosen (`LogLocation`), and the request passed
//! on to the node agent's log server, the kubelet's `GET /containerLogs/NS/POD/CONTAINER`,
//! at the Node's InternalIP and `status.daemonEndpoints.kubeletEndpoint.Port`. The agent's
//! body is streamed back as `text/plain`, so `kubectl logs -f` follows.
//!
//! Kubernetes reaches the kubelet over HTTPS (client certificates, and
//! `insecureSkipTLSVerifyBackend` to skip checking the kubelet's); Concord's agents serve
//! plain HTTP on the node's address, so that option is accepted and has no effect.

use std::collections::HashMap;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderValue, Request, StatusCode};
use axum::response::Response;
use concord_cp_types::resources::Resource;
use concord_cp_types::{go_error_text, meta, ApiError, FieldError};
use futures::StreamExt;
use serde_json::{json, Value};

/// How long connecting to an agent may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an agent may take to start answering.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
/// The most of an agent's error body read (kube's `maxReadLength`).
const MAX_ERROR_BODY: usize = 50_000;
/// The kubelet port assumed when a Node publishes none (`--kubelet-port`'s default).
pub const DEFAULT_KUBELET_PORT: u16 = 10250;

/// The kind named in invalid-options errors (`PodLogOptions "p" is invalid: …`).
static POD_LOG_OPTIONS: Resource = Resource {
    group: "",
    version: "v1",
    kind: "PodLogOptions",
    plural: "podlogoptions",
    singular: "",
    namespaced: true,
    short_names: &[],
    categories: &[],
    subresources: &[],
};

/// A request's `PodLogOptions` (the query parameters kubectl sends).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodLogOptions {
    /// `container`: empty means "the pod's only container".
    pub container: String,
    /// `follow`.
    pub follow: bool,
    /// `previous`: the previous, terminated instance.
    pub previous: bool,
    /// `timestamps`.
    pub timestamps: bool,
    /// `tailLines`.
    pub tail_lines: Option<i64>,
    /// `sinceSeconds`.
    pub since_seconds: Option<i64>,
    /// `sinceTime`, as seconds since the Unix epoch (RFC 3339 in the query).
    pub since_time: Option<i64>,
    /// `limitBytes`.
    pub limit_bytes: Option<i64>,
    /// `insecureSkipTLSVerifyBackend` (no effect: the agents speak plain HTTP).
    pub insecure_skip_tls_verify_backend: bool,
}

/// A boolean query parameter as Kubernetes decodes one: `0`, `f`, `false`, `n`, `no` (any
/// case) are false, anything else, the empty value too, true.
fn query_bool(v: Option<&String>) -> bool {
    match v {
        None => false,
        Some(v) => {
            !(v == "0"
                || ["f", "false", "n", "no"]
                    .iter()
                    .any(|f| v.eq_ignore_ascii_case(f)))
        }
    }
}

fn query_int(query: &HashMap<String, String>, key: &str) -> Result<Option<i64>, ApiError> {
    match query.get(key) {
        None => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| {
            ApiError::BadRequest(format!("strconv.ParseInt: parsing {v:?}: invalid syntax"))
        }),
    }
}

impl PodLogOptions {
    /// Decodes the query (a 400 for what does not parse) and validates it as
    /// `ValidatePodLogOptions` does (422 `PodLogOptions "<pod>" is invalid: …`).
    pub fn from_query(query: &HashMap<String, String>, pod: &str) -> Result<Self, ApiError> {
        let since_time = match query.get("sinceTime").filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => Some(meta::parse_rfc3339(s).ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "parsing time {s:?} as \"2006-01-02T15:04:05Z07:00\": cannot parse {s:?} as RFC 3339"
                ))
            })?),
        };
        let opts = PodLogOptions {
            container: query.get("container").cloned().unwrap_or_default(),
            follow: query_bool(query.get("follow")),
            previous: query_bool(query.get("previous")),
            timestamps: query_bool(query.get("timestamps")),
            tail_lines: query_int(query, "tailLines")?,
            since_seconds: query_int(query, "sinceSeconds")?,
            since_time,
            limit_bytes: query_int(query, "limitBytes")?,
            insecure_skip_tls_verify_backend: query_bool(query.get("insecureSkipTLSVerifyBackend")),
        };
        let causes = opts.validate();
        if !causes.is_empty() {
            return Err(ApiError::Invalid {
                resource: &POD_LOG_OPTIONS,
                name: pod.to_string(),
                causes,
            });
        }
        Ok(opts)
    }

    /// `ValidatePodLogOptions`' field errors.
    fn validate(&self) -> Vec<FieldError> {
        let mut errs = Vec::new();
        if let Some(t) = self.tail_lines.filter(|t| *t < 0) {
            errs.push(FieldError::invalid(
                "tailLines",
                &json!(t),
                "must be greater than or equal to 0",
            ));
        }
        if let Some(l) = self.limit_bytes.filter(|l| *l < 1) {
            errs.push(FieldError::invalid(
                "limitBytes",
                &json!(l),
                "must be greater than 0",
            ));
        }
        match (self.since_seconds, self.since_time) {
            (Some(_), Some(_)) => errs.push(FieldError::forbidden(
                "",
                "at most one of `sinceTime` or `sinceSeconds` may be specified",
            )),
            (Some(s), None) if s < 1 => errs.push(FieldError::invalid(
                "sinceSeconds",
                &json!(s),
                "must be greater than 0",
            )),
            _ => {}
        }
        errs
    }

    /// The query passed on to the agent, as `LogLocation` builds it (sorted like Go's
    /// `url.Values.Encode`; `sinceTime` in whole seconds).
    pub fn agent_query(&self) -> String {
        let mut params: Vec<(&str, String)> = Vec::new();
        if self.follow {
            params.push(("follow", "true".into()));
        }
        if let Some(l) = self.limit_bytes {
            params.push(("limitBytes", l.to_string()));
        }
        if self.previous {
            params.push(("previous", "true".into()));
        }
        if let Some(s) = self.since_seconds {
            params.push(("sinceSeconds", s.to_string()));
        }
        if let Some(t) = self.since_time {
            params.push(("sinceTime", meta::format_rfc3339(t)));
        }
        if let Some(t) = self.tail_lines {
            params.push(("tailLines", t.to_string()));
        }
        if self.timestamps {
            params.push(("timestamps", "true".into()));
        }
        params
            .iter()
            .map(|(k, v)| format!("{k}={}", query_escape(v)))
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// Go's `url.QueryEscape`.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A path segment escaped for a URL (names are DNS labels, so this rarely changes any).
fn path_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The names of a pod's containers in kube's `VisitContainers` order: init containers,
/// containers, ephemeral containers.
fn container_names(pod: &Value) -> Vec<String> {
    ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .flat_map(|list| pod["spec"][*list].as_array().into_iter().flatten())
        .filter_map(|c| c["name"].as_str().map(str::to_string))
        .collect()
}

/// The container to read (`validateContainer` of kube's pod strategy): the named one, which
/// must be one of the pod's (init, regular or ephemeral) containers, or the only regular
/// container when none is named.
pub fn choose_container(pod: &Value, requested: &str, pod_name: &str) -> Result<String, ApiError> {
    if requested.is_empty() {
        let regular = pod["spec"]["containers"].as_array().map_or(0, Vec::len);
        return match regular {
            1 => Ok(pod["spec"]["containers"][0]["name"]
                .as_str()
                .unwrap_or("")
                .to_string()),
            0 => Err(ApiError::BadRequest(format!(
                "a container name must be specified for pod {pod_name}"
            ))),
            _ => Err(ApiError::BadRequest(format!(
                "a container name must be specified for pod {pod_name}, choose one of: [{}]",
                container_names(pod).join(" ")
            ))),
        };
    }
    if container_names(pod).iter().any(|n| n == requested) {
        Ok(requested.to_string())
    } else {
        Err(ApiError::BadRequest(format!(
            "container {requested} is not valid for pod {pod_name}"
        )))
    }
}

/// Where a Node's agent serves logs: its InternalIP (else its ExternalIP) and
/// `status.daemonEndpoints.kubeletEndpoint.Port` ([`DEFAULT_KUBELET_PORT`] when unset, as
/// kube-apiserver does). kube-apiserver's default preference starts with `Hostname`;
/// Concord's agents register a node name that need not resolve, so it is not used.
pub fn kubelet_endpoint(node: &Value) -> Result<(String, u16), ApiError> {
    let addrs = node["status"]["addresses"].as_array();
    let find = |kind: &str| {
        addrs
            .into_iter()
            .flatten()
            .find(|a| a["type"] == kind)
            .and_then(|a| a["address"].as_str())
            .filter(|a| !a.is_empty())
    };
    let Some(ip) = find("InternalIP").or_else(|| find("ExternalIP")) else {
        let known: Vec<String> = addrs
            .into_iter()
            .flatten()
            .map(|a| {
                format!(
                    "{{{} {}}}",
                    a["type"].as_str().unwrap_or(""),
                    a["address"].as_str().unwrap_or("")
                )
            })
            .collect();
        return Err(ApiError::Internal(format!(
            "no preferred addresses found; known addresses: [{}]",
            known.join(" ")
        )));
    };
    let port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
        .as_i64()
        .filter(|p| *p > 0)
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or(DEFAULT_KUBELET_PORT);
    Ok((ip.to_string(), port))
}

/// `host:port`, with brackets for IPv6.
fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// GETs `/containerLogs/NS/POD/CONTAINER?…` from the agent at `host:port` and answers with
/// its body, streamed as `text/plain`; the agent's errors become Statuses as kube's
/// `GenericHttpResponseChecker` makes them (400 → BadRequest with the agent's text, 500 →
/// InternalError, 404 → NotFound), and a failed connection an InternalError that reads like
/// Go's (`Get "http://…": dial tcp …: connect: connection refused`).
pub async fn fetch(
    host: &str,
    port: u16,
    namespace: &str,
    pod: &str,
    container: &str,
    opts: &PodLogOptions,
) -> Result<Response, ApiError> {
    let addr = host_port(host, port);
    let query = opts.agent_query();
    let mut path = format!(
        "/containerLogs/{}/{}/{}",
        path_escape(namespace),
        path_escape(pod),
        path_escape(container)
    );
    if !query.is_empty() {
        path.push('?');
        path.push_str(&query);
    }
    let url = format!("http://{addr}{path}");
    let fail = |detail: String| ApiError::Internal(format!("Get {url:?}: {detail}"));

    let stream = match tokio::time::timeout(
        DIAL_TIMEOUT,
        tokio::net::TcpStream::connect((host, port)),
    )
    .await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            return Err(fail(format!(
                "dial tcp {addr}: connect: {}",
                go_error_text(&e)
            )))
        }
        Err(_) => return Err(fail(format!("dial tcp {addr}: i/o timeout"))),
    };
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| fail(e.to_string()))?;
    tokio::spawn(async move {
        // Ends when the answer is read or dropped.
        let _ = conn.await;
    });
    let req = Request::get(path.as_str())
        .header(header::HOST, addr.as_str())
        .header(header::USER_AGENT, "concord-apiserver")
        .body(Body::empty())
        .map_err(|e| fail(e.to_string()))?;
    let resp = match tokio::time::timeout(ANSWER_TIMEOUT, sender.send_request(req)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return Err(fail(e.to_string())),
        Err(_) => {
            return Err(fail(
                "net/http: timeout awaiting response headers".to_string(),
            ))
        }
    };
    let status = resp.status();
    if status.is_success() {
        let mut r = Response::new(Body::new(resp.into_body()));
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        return Ok(r);
    }
    // The error's text, at most MAX_ERROR_BODY bytes of it.
    let mut body = Vec::new();
    let mut data = Body::new(resp.into_body()).into_data_stream();
    while let Some(chunk) = data.next().await {
        let Ok(chunk) = chunk else { break };
        let room = MAX_ERROR_BODY - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_ERROR_BODY {
            break;
        }
    }
    let text = String::from_utf8_lossy(&body).into_owned();
    Err(match status {
        StatusCode::BAD_REQUEST => ApiError::BadRequest(text),
        StatusCode::NOT_FOUND => ApiError::NoSuchResource,
        StatusCode::SERVICE_UNAVAILABLE => {
            ApiError::Unavailable("the server is currently unable to handle the request".into())
        }
        _ => ApiError::Internal(text),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn q(s: &str) -> HashMap<String, String> {
        crate::http::parse_query(Some(s))
    }

    fn pod(init: &[&str], regular: &[&str], ephemeral: &[&str]) -> Value {
        let list = |names: &[&str]| -> Value { names.iter().map(|n| json!({"name": n})).collect() };
        json!({"spec": {
            "initContainers": list(init),
            "containers": list(regular),
            "ephemeralContainers": list(ephemeral),
        }})
    }

    #[test]
    fn the_container_is_chosen_as_kube_does() {
        assert_eq!(
            choose_container(&pod(&[], &["app"], &[]), "", "p"),
            Ok("app".into())
        );
        assert_eq!(
            choose_container(&pod(&["setup"], &["app"], &[]), "setup", "p"),
            Ok("setup".into())
        );
        assert_eq!(
            choose_container(&pod(&[], &["a", "b"], &[]), "", "web"),
            Err(ApiError::BadRequest(
                "a container name must be specified for pod web, choose one of: [a b]".into()
            ))
        );
        assert_eq!(
            choose_container(&pod(&["i"], &["a", "b"], &["dbg"]), "", "web"),
            Err(ApiError::BadRequest(
                "a container name must be specified for pod web, choose one of: [i a b dbg]".into()
            ))
        );
        assert_eq!(
            choose_container(&pod(&[], &["a"], &["dbg"]), "dbg", "web"),
            Ok("dbg".into())
        );
        assert_eq!(
            choose_container(&pod(&[], &["a"], &[]), "x", "web"),
            Err(ApiError::BadRequest(
                "container x is not valid for pod web".into()
            ))
        );
        assert_eq!(
            choose_container(&pod(&[], &[], &[]), "", "web"),
            Err(ApiError::BadRequest(
                "a container name must be specified for pod web".into()
            ))
        );
    }

    #[test]
    fn options_decode_validate_and_pass_on() {
        let o = PodLogOptions::from_query(
            &q("container=c&follow=true&previous=false&timestamps=1&tailLines=10&limitBytes=5&sinceTime=2026-12-02T01:02:03Z&insecureSkipTLSVerifyBackend=true"),
            "p",
        )
        .expect("valid");
        assert_eq!(o.container, "c");
        assert!(o.follow && !o.previous && o.timestamps && o.insecure_skip_tls_verify_backend);
        assert_eq!(
            o.agent_query(),
            "follow=true&limitBytes=5&sinceTime=2026-12-02T01%3A02%3A03Z&tailLines=10&timestamps=true"
        );
        assert_eq!(
            PodLogOptions::from_query(&q("previous&sinceSeconds=30"), "p")
                .expect("valid")
                .agent_query(),
            "previous=true&sinceSeconds=30"
        );
        assert_eq!(
            PodLogOptions::from_query(&q(""), "p")
                .expect("valid")
                .agent_query(),
            ""
        );

        let err = |s: &str| {
            PodLogOptions::from_query(&q(s), "p")
                .expect_err("invalid")
                .to_string()
        };
        assert_eq!(
            err("tailLines=-1"),
            "PodLogOptions \"p\" is invalid: tailLines: Invalid value: -1: must be greater than or equal to 0"
        );
        assert_eq!(
            err("limitBytes=0"),
            "PodLogOptions \"p\" is invalid: limitBytes: Invalid value: 0: must be greater than 0"
        );
        assert_eq!(
            err("sinceSeconds=0"),
            "PodLogOptions \"p\" is invalid: sinceSeconds: Invalid value: 0: must be greater than 0"
        );
        assert_eq!(
            err("sinceSeconds=5&sinceTime=2026-12-02T01:02:03Z"),
            "PodLogOptions \"p\" is invalid: : Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified"
        );
        assert_eq!(
            err("tailLines=-1&limitBytes=-2"),
            "PodLogOptions \"p\" is invalid: [tailLines: Invalid value: -1: must be greater than or equal to 0, limitBytes: Invalid value: -2: must be greater than 0]"
        );
        let e = PodLogOptions::from_query(&q("tailLines=ten"), "p").expect_err("bad");
        assert_eq!(e.code(), 400);
        assert_eq!(
            e.to_string(),
            "strconv.ParseInt: parsing \"ten\": invalid syntax"
        );
        assert_eq!(
            PodLogOptions::from_query(&q("tailLines=-1"), "p")
                .expect_err("bad")
                .code(),
            422
        );
    }

    #[test]
    fn the_node_endpoint_is_its_internal_ip_and_kubelet_port() {
        let node = json!({"status": {
            "addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "127.0.0.5"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 12345}},
        }});
        assert_eq!(kubelet_endpoint(&node), Ok(("127.0.0.5".into(), 12345)));
        let node =
            json!({"status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]}});
        assert_eq!(kubelet_endpoint(&node), Ok(("10.0.0.1".into(), 10250)));
        let node = json!({"status": {"addresses": [{"type": "Hostname", "address": "n1"}]}});
        assert_eq!(
            kubelet_endpoint(&node).expect_err("no ip").to_string(),
            "Internal error occurred: no preferred addresses found; known addresses: [{Hostname n1}]"
        );
    }

    /// A one-shot agent: answers the first request with `answer` and returns the request.
    async fn fake_agent(answer: String) -> (u16, tokio::task::JoinHandle<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let task = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.expect("accept");
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut buf).await.expect("read");
                if n == 0 {
                    break;
                }
                req.extend_from_slice(&buf[..n]);
            }
            s.write_all(answer.as_bytes()).await.expect("write");
            let _ = s.shutdown().await;
            String::from_utf8_lossy(&req).into_owned()
        });
        (port, task)
    }

    async fn body_text(r: Response) -> String {
        let b = axum::body::to_bytes(r.into_body(), 1 << 20)
            .await
            .expect("body");
        String::from_utf8_lossy(&b).into_owned()
    }

    #[tokio::test]
    async fn the_agents_answer_is_streamed_through() {
        let (port, req) = fake_agent(
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n6\r\nhello\n\r\n6\r\nworld\n\r\n0\r\n\r\n"
                .to_string(),
        )
        .await;
        let opts = PodLogOptions {
            follow: true,
            tail_lines: Some(2),
            ..Default::default()
        };
        let r = tokio::time::timeout(
            Duration::from_secs(10),
            fetch("127.0.0.1", port, "ns", "pod", "c", &opts),
        )
        .await
        .expect("in time")
        .expect("ok");
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "text/plain");
        assert_eq!(body_text(r).await, "hello\nworld\n");
        let req = req.await.expect("request");
        assert!(
            req.starts_with("GET /containerLogs/ns/pod/c?follow=true&tailLines=2 HTTP/1.1\r\n"),
            "{req}"
        );
    }

    /// What a plain fetch of container c from the agent at `port` fails with.
    async fn fetch_error(port: u16, why: &str) -> ApiError {
        fetch(
            "127.0.0.1",
            port,
            "ns",
            "pod",
            "c",
            &PodLogOptions::default(),
        )
        .await
        .expect_err(why)
    }

    #[tokio::test]
    async fn the_agents_errors_become_statuses() {
        let msg = "previous terminated container \"c\" in pod \"pod\" not found";
        let (port, _req) = fake_agent(format!(
            "HTTP/1.1 400 Bad Request\r\ncontent-length: {}\r\n\r\n{msg}",
            msg.len()
        ))
        .await;
        let e = fetch_error(port, "400").await;
        assert_eq!(e, ApiError::BadRequest(msg.into()));

        let (port, _req) = fake_agent(
            "HTTP/1.1 500 Internal Server Error\r\ncontent-length: 4\r\n\r\nboom".into(),
        )
        .await;
        let e = fetch_error(port, "500").await;
        assert_eq!(e, ApiError::Internal("boom".into()));

        // Nothing listens: Go's dial error.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let e = fetch_error(port, "refused").await;
        assert_eq!(e.code(), 500);
        assert_eq!(
            e.to_string(),
            format!(
                "Internal error occurred: Get \"http://127.0.0.1:{port}/containerLogs/ns/pod/c\": dial tcp 127.0.0.1:{port}: connect: connection refused"
            )
        );
    }
}
