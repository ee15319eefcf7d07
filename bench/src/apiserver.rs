//! `concord-bench apiserver`: the Kubernetes API server's costs, measured as kubectl and
//! controllers meet them, beside the same objects written straight into the store.
//!
//! - `create`: POSTs of ~2 KiB pods through the API server by `--clients` concurrent clients
//!   (one HTTP/1.1 connection each), then the same objects written into the store with
//!   kube-apiserver's create transaction (`If(mod_revision == 0) Then Put`): the difference is
//!   the API server's overhead.
//! - `list`: `--pods` pods in the store, listed as `kubectl get pods -A` does (a Table, 500 at a
//!   time, following `continue`) and as one Table; the time to the last row.
//! - `watch`: `--watchers` concurrent watches on one namespace's configmaps while a writer
//!   changes one configmap `--events` times; the delay from the write's start to each
//!   watcher's event.
//!
//! It speaks plain HTTP/1.1 itself (request bodies with Content-Length, chunked responses), so
//! it needs no HTTP client crate.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use concord_client::prefix_end;
use concord_proto::etcdserverpb as pb;
use hdrhistogram::Histogram;
use pb::kv_client::KvClient;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

#[derive(clap::Args, Clone)]
pub struct Args {
    /// What to measure: create, list or watch.
    pub mode: String,
    /// The API server's address (host:port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub server: String,
    /// The store's client URL, for the direct writes.
    #[arg(long, default_value = "http://127.0.0.1:2379")]
    pub endpoints: String,
    /// Concurrent clients (create).
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// Objects to create (create).
    #[arg(long, default_value_t = 20_000)]
    pub total: u64,
    /// Pods in the store to list (list).
    #[arg(long, default_value_t = 10_000)]
    pub pods: u64,
    /// Page size of the paged list (list).
    #[arg(long, default_value_t = 500)]
    pub page: u64,
    /// Times each list is repeated; the median is reported (list).
    #[arg(long, default_value_t = 5)]
    pub repeat: usize,
    /// Concurrent watches (watch).
    #[arg(long, default_value_t = 1000)]
    pub watchers: usize,
    /// Changes written while they watch (watch).
    #[arg(long, default_value_t = 100)]
    pub events: u64,
    /// The namespace the objects go to (created if missing).
    #[arg(long, default_value = "bench")]
    pub namespace: String,
}

/// One HTTP/1.1 connection.
struct Http {
    conn: BufReader<TcpStream>,
    host: String,
}

impl Http {
    async fn connect(addr: &str) -> Result<Http> {
        let s = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        s.set_nodelay(true)?;
        Ok(Http {
            conn: BufReader::new(s),
            host: addr.to_string(),
        })
    }

    async fn send(&mut self, method: &str, path: &str, accept: &str, body: &[u8]) -> Result<()> {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAccept: {accept}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.host,
            body.len()
        );
        let s = self.conn.get_mut();
        s.write_all(head.as_bytes()).await?;
        s.write_all(body).await?;
        Ok(())
    }

    /// Reads a status line and headers; returns the status and whether the body is chunked
    /// (else its length).
    async fn head(&mut self) -> Result<(u16, Option<usize>)> {
        let mut line = String::new();
        self.conn.read_line(&mut line).await?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("bad status line {line:?}"))?;
        let mut length = Some(0);
        loop {
            line.clear();
            if self.conn.read_line(&mut line).await? == 0 {
                bail!("connection closed in headers");
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let lower = l.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                length = Some(v.trim().parse()?);
            } else if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
                length = None;
            }
        }
        Ok((status, length))
    }

    /// The next chunk of a chunked body (`None` at its end).
    async fn chunk(&mut self) -> Result<Option<Vec<u8>>> {
        let mut line = String::new();
        if self.conn.read_line(&mut line).await? == 0 {
            return Ok(None);
        }
        let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
            .with_context(|| format!("bad chunk size {line:?}"))?;
        let mut buf = vec![0; size + 2];
        self.conn.read_exact(&mut buf).await?;
        buf.truncate(size);
        Ok((size > 0).then_some(buf))
    }

    async fn request(
        &mut self,
        method: &str,
        path: &str,
        accept: &str,
        body: &[u8],
    ) -> Result<(u16, Vec<u8>)> {
        self.send(method, path, accept, body).await?;
        let (status, length) = self.head().await?;
        let body = match length {
            Some(n) => {
                let mut b = vec![0; n];
                self.conn.read_exact(&mut b).await?;
                b
            }
            None => {
                let mut b = Vec::new();
                while let Some(c) = self.chunk().await? {
                    b.extend_from_slice(&c);
                }
                b
            }
        };
        Ok((status, body))
    }
}

const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

/// A pod of about 2 KiB as kubectl would send it.
fn pod(ns: &str, name: &str) -> Value {
    let mut p = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": "bench", "tier": "backend"},
                     "annotations": {"pad": ""}},
        "spec": {"containers": [{
            "name": "server", "image": "registry.example/movies/model-serving:1.4.2",
            "command": ["/bin/serve"], "args": ["--port=8080", "--model=/models/current"],
            "ports": [{"containerPort": 8080, "name": "http"}],
            "env": [{"name": "MODE", "value": "production"}, {"name": "WORKERS", "value": "4"}],
            "resources": {"requests": {"cpu": "250m", "memory": "256Mi"},
                          "limits": {"cpu": "1", "memory": "512Mi"}},
            "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 5},
        }]},
    });
    let len = p.to_string().len();
    p["metadata"]["annotations"]["pad"] = json!("x".repeat(2048usize.saturating_sub(len)));
    p
}

/// A body built once with a placeholder name, so that the load generator spends no CPU on
/// JSON per request (it shares the machine with what it measures).
struct Template {
    before: String,
    after: String,
}

impl Template {
    fn new(v: &Value) -> Template {
        let text = v.to_string();
        let at = text.find(NAME_MARK).unwrap_or(0);
        Template {
            before: text[..at].to_string(),
            after: text[at + NAME_MARK.len().min(text.len() - at)..].to_string(),
        }
    }

    fn with(&self, name: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.before.len() + name.len() + self.after.len());
        out.extend_from_slice(self.before.as_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(self.after.as_bytes());
        out
    }
}

const NAME_MARK: &str = "@@name@@";

/// The same pod as the API server would store it (what the direct writes put).
fn stored_pod(ns: &str, name: &str, i: u64) -> Value {
    let mut p = pod(ns, name);
    p["metadata"]["uid"] = json!(format!("00000000-0000-4000-8000-{i:012}"));
    p["metadata"]["creationTimestamp"] = json!("2026-12-01T00:00:00Z");
    p["status"] = json!({"phase": "Pending", "qosClass": "Burstable"});
    p
}

async fn ensure_namespace(server: &str, ns: &str) -> Result<()> {
    let mut h = Http::connect(server).await?;
    let body =
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}).to_string();
    let (status, resp) = h
        .request(
            "POST",
            "/api/v1/namespaces",
            "application/json",
            body.as_bytes(),
        )
        .await?;
    if status != 201 && status != 409 {
        bail!(
            "creating namespace {ns}: {status} {}",
            String::from_utf8_lossy(&resp)
        );
    }
    Ok(())
}

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram bounds")
}

fn report(name: &str, n: u64, secs: f64, h: &Histogram<u64>) -> Value {
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let r = json!({"workload": name, "requests": n, "seconds": secs, "throughput": n as f64 / secs,
                   "latency_ms": {"p50": ms(0.5), "p90": ms(0.9), "p99": ms(0.99), "max": h.max() as f64 / 1000.0}});
    println!("{r}");
    r
}

async fn create(a: &Args) -> Result<()> {
    ensure_namespace(&a.server, &a.namespace).await?;
    let run_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis()
        % 100_000;
    // Through the API server.
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..a.clients {
        let (next, a) = (next.clone(), a.clone());
        tasks.push(tokio::spawn(async move {
            let mut h = Http::connect(&a.server).await?;
            let mut lat = hist();
            let path = format!("/api/v1/namespaces/{}/pods", a.namespace);
            let template = Template::new(&pod(&a.namespace, NAME_MARK));
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= a.total {
                    return Ok::<_, anyhow::Error>(lat);
                }
                let body = template.with(&format!("api-{run_id}-{i}"));
                let t = Instant::now();
                let (status, resp) = h.request("POST", &path, "application/json", &body).await?;
                if status != 201 {
                    bail!("create: {status} {}", String::from_utf8_lossy(&resp));
                }
                lat.record(t.elapsed().as_micros().max(1) as u64)?;
            }
        }));
    }
    let mut all = hist();
    for t in tasks {
        all.add(t.await??)?;
    }
    report(
        "apiserver-create-pod",
        a.total,
        start.elapsed().as_secs_f64(),
        &all,
    );

    // Straight into the store, with the same transaction shape.
    let channels = crate::load::connect(&a.endpoints, 8).await?;
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..a.clients {
        let (next, a, ch) = (
            next.clone(),
            a.clone(),
            channels[c % channels.len()].clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut kv = KvClient::new(ch);
            let mut lat = hist();
            let template = Template::new(&stored_pod(&a.namespace, NAME_MARK, 0));
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= a.total {
                    return Ok::<_, anyhow::Error>(lat);
                }
                let name = format!("direct-{run_id}-{i}");
                let key = format!("/registry/pods/{}/{name}", a.namespace).into_bytes();
                let value = template.with(&name);
                let t = Instant::now();
                let resp = kv.txn(create_txn(key, value)).await?.into_inner();
                if !resp.succeeded {
                    bail!("direct create of {name}: the key exists");
                }
                lat.record(t.elapsed().as_micros().max(1) as u64)?;
            }
        }));
    }
    let mut all = hist();
    for t in tasks {
        all.add(t.await??)?;
    }
    report(
        "store-create-pod",
        a.total,
        start.elapsed().as_secs_f64(),
        &all,
    );
    Ok(())
}

fn create_txn(key: Vec<u8>, value: Vec<u8>) -> pb::TxnRequest {
    pb::TxnRequest {
        compare: vec![pb::Compare {
            result: pb::compare::CompareResult::Equal as i32,
            target: pb::compare::CompareTarget::Mod as i32,
            key: key.clone(),
            range_end: vec![],
            target_union: Some(pb::compare::TargetUnion::ModRevision(0)),
        }],
        success: vec![pb::RequestOp {
            request: Some(pb::request_op::Request::RequestPut(pb::PutRequest {
                key,
                value,
                ..Default::default()
            })),
        }],
        failure: vec![],
    }
}

/// Writes pods into the store until the namespace holds `n` (by key count).
async fn populate(a: &Args, n: u64) -> Result<()> {
    let channels = crate::load::connect(&a.endpoints, 8).await?;
    let prefix = format!("/registry/pods/{}/", a.namespace);
    let mut kv = KvClient::new(channels[0].clone());
    let have = kv
        .range(pb::RangeRequest {
            key: prefix.clone().into_bytes(),
            range_end: prefix_end(prefix.as_bytes()),
            count_only: true,
            ..Default::default()
        })
        .await?
        .into_inner()
        .count as u64;
    if have >= n {
        return Ok(());
    }
    let next = Arc::new(AtomicU64::new(have));
    let mut tasks = Vec::new();
    for c in 0..32 {
        let (next, ch, ns) = (
            next.clone(),
            channels[c % channels.len()].clone(),
            a.namespace.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut kv = KvClient::new(ch);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, anyhow::Error>(());
                }
                let name = format!("list-{i:07}");
                let key = format!("/registry/pods/{ns}/{name}").into_bytes();
                let value = stored_pod(&ns, &name, i).to_string().into_bytes();
                kv.txn(create_txn(key, value)).await?;
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

/// Lists `path` as kubectl does (pages of `page`, or all at once with 0); returns the rows
/// seen and the time to the last one.
async fn list_once(server: &str, path: &str, accept: &str, page: u64) -> Result<(u64, Duration)> {
    let mut h = Http::connect(server).await?;
    let start = Instant::now();
    let mut rows = 0u64;
    let mut cont = String::new();
    loop {
        let mut p = path.to_string();
        if page > 0 {
            p.push_str(&format!("?limit={page}"));
            if !cont.is_empty() {
                p.push_str(&format!("&continue={cont}"));
            }
        }
        let (status, body) = h.request("GET", &p, accept, b"").await?;
        if status != 200 {
            bail!("list: {status} {}", String::from_utf8_lossy(&body));
        }
        let v: Value = serde_json::from_slice(&body)?;
        rows += v["rows"]
            .as_array()
            .or(v["items"].as_array())
            .map_or(0, |a| a.len() as u64);
        match v["metadata"]["continue"].as_str() {
            Some(c) if !c.is_empty() && page > 0 => cont = c.to_string(),
            _ => return Ok((rows, start.elapsed())),
        }
    }
}

async fn list(a: &Args) -> Result<()> {
    ensure_namespace(&a.server, &a.namespace).await?;
    populate(a, a.pods).await?;
    let path = "/api/v1/pods";
    for (name, accept, page) in [
        ("apiserver-get-pods-A-table-paged", TABLE, a.page),
        ("apiserver-list-pods-table-unpaged", TABLE, 0),
        ("apiserver-list-pods-json-paged", "application/json", a.page),
    ] {
        let mut times = Vec::new();
        let mut rows = 0;
        for _ in 0..a.repeat.max(1) {
            let (r, t) = list_once(&a.server, path, accept, page).await?;
            rows = r;
            times.push(t);
        }
        times.sort();
        let median = times[times.len() / 2];
        println!(
            "{}",
            json!({"workload": name, "rows": rows, "page": page, "runs": times.len(),
                   "median_seconds": median.as_secs_f64(),
                   "min_seconds": times[0].as_secs_f64(), "max_seconds": times[times.len() - 1].as_secs_f64()})
        );
    }
    Ok(())
}

async fn watch(a: &Args) -> Result<()> {
    ensure_namespace(&a.server, &a.namespace).await?;
    let base = Instant::now();
    let cm = |i: u64, t: u128| {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "probe", "namespace": a.namespace},
               "data": {"i": i.to_string(), "t": t.to_string()}})
        .to_string()
    };
    let mut h = Http::connect(&a.server).await?;
    let cm_path = format!("/api/v1/namespaces/{}/configmaps", a.namespace);
    let (status, body) = h
        .request("POST", &cm_path, "application/json", cm(0, 0).as_bytes())
        .await?;
    if status != 201 && status != 409 {
        bail!(
            "creating the probe: {status} {}",
            String::from_utf8_lossy(&body)
        );
    }
    let (_, body) = h
        .request("GET", &format!("{cm_path}/probe"), "application/json", b"")
        .await?;
    let rv = serde_json::from_slice::<Value>(&body)?["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("0")
        .to_string();
    // Open the watches, from the probe's current version.
    let ready = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..a.watchers {
        let (a, rv, ready) = (a.clone(), rv.clone(), ready.clone());
        tasks.push(tokio::spawn(async move {
            let mut w = Http::connect(&a.server).await?;
            let path = format!(
                "/api/v1/namespaces/{}/configmaps?watch=true&resourceVersion={rv}",
                a.namespace
            );
            w.send("GET", &path, "application/json", b"").await?;
            let (status, _) = w.head().await?;
            if status != 200 {
                bail!("watch: {status}");
            }
            ready.fetch_add(1, Ordering::Relaxed);
            let mut lat = hist();
            let mut seen = 0;
            let mut buf = Vec::new();
            while seen < a.events {
                let Some(c) = tokio::time::timeout(Duration::from_secs(30), w.chunk())
                    .await
                    .context("no event within 30 s")??
                else {
                    bail!("watch ended early");
                };
                let now = base.elapsed().as_micros();
                buf.extend_from_slice(&c);
                while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=pos).collect();
                    let ev: Value = serde_json::from_slice(&line)?;
                    if let Some(t) = ev["object"]["data"]["t"]
                        .as_str()
                        .and_then(|t| t.parse::<u128>().ok())
                    {
                        if t > 0 {
                            lat.record(now.saturating_sub(t).max(1) as u64)?;
                            seen += 1;
                        }
                    }
                }
            }
            Ok::<_, anyhow::Error>(lat)
        }));
    }
    while ready.load(Ordering::Relaxed) < a.watchers as u64 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let start = Instant::now();
    for i in 1..=a.events {
        let t = base.elapsed().as_micros();
        let (status, body) = h
            .request(
                "PUT",
                &format!("{cm_path}/probe"),
                "application/json",
                cm(i, t).as_bytes(),
            )
            .await?;
        if status != 200 {
            bail!("update: {status} {}", String::from_utf8_lossy(&body));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut all = hist();
    for t in tasks {
        all.add(t.await??)?;
    }
    let n = all.len();
    report(
        &format!("apiserver-watch-delay-{}-watchers", a.watchers),
        n,
        start.elapsed().as_secs_f64(),
        &all,
    );
    Ok(())
}

pub async fn run(a: Args) -> Result<()> {
    match a.mode.as_str() {
        "create" => create(&a).await,
        "list" => list(&a).await,
        "watch" => watch(&a).await,
        other => bail!("unknown mode {other:?}: create, list or watch"),
    }
}
