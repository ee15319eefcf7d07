//! The output formats of `-w`: simple, json, fields, protobuf and table, each printing what
//! etcdctl 3.4 prints for the same response, including which formats a command refuses.
//!
//! JSON is written as Go's `encoding/json` writes etcd's generated types (snake_case or
//! camelCase keys as their tags say, zero values left out, bytes in base64), and protobuf is the
//! response re-encoded with etcd 3.4's fields only.

use std::fmt::Write as _;
use std::io::Write as _;

use base64::Engine as _;
use concord_client::{
    AlarmResponse, DeleteResponse, EventKind, GetResponse, HashKvResponse, Header, KeyValue,
    LeaseGrant, LeaseKeepAlive, LeaseList, LeaseTimeToLive, Member, MemberAddResponse,
    MemberListResponse, PutResponse, StatusResponse, TxnOpResponse, TxnResponse, WatchBatch,
};
use concord_proto::{etcdserverpb as pb, mvccpb};
use prost::Message;

use crate::exit;
use crate::gofmt::{self, quote};
use crate::table;

/// An output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Simple,
    Fields,
    Json,
    Protobuf,
    Table,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        Some(match s {
            "simple" => Format::Simple,
            "fields" => Format::Fields,
            "json" => Format::Json,
            "protobuf" => Format::Protobuf,
            "table" => Format::Table,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Format::Simple => "simple",
            Format::Fields => "fields",
            Format::Json => "json",
            Format::Protobuf => "protobuf",
            Format::Table => "table",
        }
    }
}

/// A watch response as etcdctl prints it (clientv3's `WatchResponse`).
pub struct WatchOut<'a> {
    pub batch: &'a WatchBatch,
    pub compact_revision: i64,
    pub canceled: bool,
}

/// One endpoint's health, as `endpoint health` reports it.
pub struct EpHealth {
    pub ep: String,
    pub health: bool,
    pub took: String,
    pub error: String,
}

/// What `snapshot status` reports about a file.
pub struct DbStatus {
    pub hash: u32,
    pub revision: i64,
    pub total_key: i64,
    pub total_size: i64,
}

/// Prints responses in one format.
pub struct Printer {
    pub format: Format,
    pub hex: bool,
    /// `get --print-value-only`.
    pub value_only: bool,
}

fn out(s: &str) {
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(s.as_bytes());
}

fn out_bytes(b: &[u8]) {
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(b);
}

/// etcdctl's `addHexPrefix(hex.EncodeToString(b))`: `\x61\x62`.
fn hex_escaped(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 4);
    for byte in b {
        let _ = write!(s, "\\x{byte:02x}");
    }
    s
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// A JSON object under construction, skipping zero values the way `omitempty` does.
#[derive(Default)]
struct Obj(Vec<String>);

impl Obj {
    fn raw(mut self, k: &str, v: String) -> Self {
        self.0.push(format!("{}:{v}", gofmt::json_string(k)));
        self
    }
    fn num<T: PartialEq + Default + std::fmt::Display>(self, k: &str, v: T) -> Self {
        if v == T::default() {
            return self;
        }
        self.raw(k, v.to_string())
    }
    fn num_always<T: std::fmt::Display>(self, k: &str, v: T) -> Self {
        self.raw(k, v.to_string())
    }
    fn flag(self, k: &str, v: bool) -> Self {
        if v {
            self.raw(k, "true".into())
        } else {
            self
        }
    }
    fn bytes(self, k: &str, v: &[u8]) -> Self {
        if v.is_empty() {
            return self;
        }
        let s = gofmt::json_string(&b64(v));
        self.raw(k, s)
    }
    fn string(self, k: &str, v: &str) -> Self {
        if v.is_empty() {
            return self;
        }
        self.raw(k, gofmt::json_string(v))
    }
    fn opt(self, k: &str, v: Option<String>) -> Self {
        match v {
            Some(v) => self.raw(k, v),
            None => self,
        }
    }
    fn list(self, k: &str, items: Vec<String>) -> Self {
        if items.is_empty() {
            return self;
        }
        self.raw(k, format!("[{}]", items.join(",")))
    }
    fn done(self) -> String {
        format!("{{{}}}", self.0.join(","))
    }
}

/// A header that the server left out arrives as all zeros; print it as absent, as etcdctl does
/// a nil header.
fn header_present(h: &Header) -> bool {
    *h != Header::default()
}

fn header_fields(h: &Header) -> Obj {
    Obj::default()
        .num("cluster_id", h.cluster_id)
        .num("member_id", h.member_id)
        .num("revision", h.revision)
        .num("raft_term", h.raft_term)
}

/// The header's fields, for clientv3's types that embed it (none when it is absent).
fn flat_header(h: &Header) -> Obj {
    if header_present(h) {
        header_fields(h)
    } else {
        Obj::default()
    }
}

fn header_json(h: &Header) -> Option<String> {
    header_present(h).then(|| header_fields(h).done())
}

fn kv_json(kv: &KeyValue) -> String {
    Obj::default()
        .bytes("key", &kv.key)
        .num("create_revision", kv.create_revision)
        .num("mod_revision", kv.mod_revision)
        .num("version", kv.version)
        .bytes("value", &kv.value)
        .num("lease", kv.lease)
        .done()
}

fn get_json(r: &GetResponse) -> String {
    Obj::default()
        .opt("header", header_json(&r.header))
        .list("kvs", r.kvs.iter().map(kv_json).collect())
        .flag("more", r.more)
        .num("count", r.count)
        .done()
}

fn put_json(r: &PutResponse) -> String {
    Obj::default()
        .opt("header", header_json(&r.header))
        .opt("prev_kv", r.prev_kv.as_ref().map(kv_json))
        .done()
}

fn del_json(r: &DeleteResponse) -> String {
    Obj::default()
        .opt("header", header_json(&r.header))
        .num("deleted", r.deleted)
        .list("prev_kvs", r.prev_kvs.iter().map(kv_json).collect())
        .done()
}

fn txn_json(r: &TxnResponse) -> String {
    let ops = r
        .responses
        .iter()
        .map(|op| {
            let (name, body) = match op {
                TxnOpResponse::Get(g) => ("ResponseRange", get_json(g)),
                TxnOpResponse::Put(p) => ("ResponsePut", put_json(p)),
                TxnOpResponse::Delete(d) => ("ResponseDeleteRange", del_json(d)),
                TxnOpResponse::Txn(t) => ("ResponseTxn", txn_json(t)),
            };
            format!("{{\"Response\":{{\"{name}\":{body}}}}}")
        })
        .collect();
    Obj::default()
        .opt("header", header_json(&r.header))
        .flag("succeeded", r.succeeded)
        .list("responses", ops)
        .done()
}

fn member_json(m: &Member) -> String {
    Obj::default()
        .num("ID", m.id)
        .string("name", &m.name)
        .list(
            "peerURLs",
            m.peer_urls.iter().map(|u| gofmt::json_string(u)).collect(),
        )
        .list(
            "clientURLs",
            m.client_urls
                .iter()
                .map(|u| gofmt::json_string(u))
                .collect(),
        )
        .flag("isLearner", m.is_learner)
        .done()
}

fn members_json(h: &Header, members: &[Member]) -> String {
    Obj::default()
        .opt("header", header_json(h))
        .list("members", members.iter().map(member_json).collect())
        .done()
}

fn status_json(s: &StatusResponse) -> String {
    Obj::default()
        .opt("header", header_json(&s.header))
        .string("version", &s.version)
        .num("dbSize", s.db_size)
        .num("leader", s.leader)
        .num("raftIndex", s.raft_index)
        .num("raftTerm", s.raft_term)
        .num("raftAppliedIndex", s.raft_applied_index)
        .list(
            "errors",
            s.errors.iter().map(|e| gofmt::json_string(e)).collect(),
        )
        .num("dbSizeInUse", s.db_size_in_use)
        .flag("isLearner", s.is_learner)
        .done()
}

fn hashkv_json(h: &HashKvResponse) -> String {
    Obj::default()
        .opt("header", header_json(&h.header))
        .num("hash", h.hash)
        .num("compact_revision", h.compact_revision)
        .done()
}

// --- protobuf: the responses as etcd 3.4's messages ---

fn header_pb(h: &Header) -> Option<pb::ResponseHeader> {
    header_present(h).then_some(pb::ResponseHeader {
        cluster_id: h.cluster_id,
        member_id: h.member_id,
        revision: h.revision,
        raft_term: h.raft_term,
    })
}

fn kv_pb(kv: &KeyValue) -> mvccpb::KeyValue {
    mvccpb::KeyValue {
        key: kv.key.clone(),
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
        version: kv.version,
        value: kv.value.clone(),
        lease: kv.lease,
    }
}

fn get_pb(r: &GetResponse) -> pb::RangeResponse {
    pb::RangeResponse {
        header: header_pb(&r.header),
        kvs: r.kvs.iter().map(kv_pb).collect(),
        more: r.more,
        count: r.count,
    }
}

fn put_pb(r: &PutResponse) -> pb::PutResponse {
    pb::PutResponse {
        header: header_pb(&r.header),
        prev_kv: r.prev_kv.as_ref().map(kv_pb),
    }
}

fn del_pb(r: &DeleteResponse) -> pb::DeleteRangeResponse {
    pb::DeleteRangeResponse {
        header: header_pb(&r.header),
        deleted: r.deleted,
        prev_kvs: r.prev_kvs.iter().map(kv_pb).collect(),
    }
}

fn txn_pb(r: &TxnResponse) -> pb::TxnResponse {
    use pb::response_op::Response;
    pb::TxnResponse {
        header: header_pb(&r.header),
        succeeded: r.succeeded,
        responses: r
            .responses
            .iter()
            .map(|op| pb::ResponseOp {
                response: Some(match op {
                    TxnOpResponse::Get(g) => Response::ResponseRange(get_pb(g)),
                    TxnOpResponse::Put(p) => Response::ResponsePut(put_pb(p)),
                    TxnOpResponse::Delete(d) => Response::ResponseDeleteRange(del_pb(d)),
                    TxnOpResponse::Txn(t) => Response::ResponseTxn(txn_pb(t)),
                }),
            })
            .collect(),
    }
}

fn member_pb(m: &Member) -> pb::Member {
    pb::Member {
        id: m.id,
        name: m.name.clone(),
        peer_ur_ls: m.peer_urls.clone(),
        client_ur_ls: m.client_urls.clone(),
        is_learner: m.is_learner,
    }
}

/// The header alone: what etcdctl prints for the lease responses, whose Go types only embed
/// the header's `Marshal`.
fn header_only_pb(h: &Header) -> Vec<u8> {
    header_pb(h).unwrap_or_default().encode_to_vec()
}

impl Printer {
    fn unsupported(&self) -> ! {
        exit::with_error(
            exit::BAD_FEATURE,
            &format!("{} not supported as output format", self.format.name()),
        )
    }

    fn kv_simple(&self, kv: &KeyValue) {
        let (k, v) = if self.hex {
            (hex_escaped(&kv.key), hex_escaped(&kv.value))
        } else {
            (
                String::from_utf8_lossy(&kv.key).into_owned(),
                String::from_utf8_lossy(&kv.value).into_owned(),
            )
        };
        let mut o = std::io::stdout().lock();
        if !self.value_only {
            if self.hex {
                let _ = o.write_all(k.as_bytes());
            } else {
                let _ = o.write_all(&kv.key);
            }
            let _ = o.write_all(b"\n");
        }
        if self.hex {
            let _ = o.write_all(v.as_bytes());
        } else {
            let _ = o.write_all(&kv.value);
        }
        let _ = o.write_all(b"\n");
    }

    fn kv_fields(&self, pfx: &str, kv: &KeyValue) {
        out(&format!(
            "\"{pfx}Key\" : {}\n\"{pfx}CreateRevision\" : {}\n\"{pfx}ModRevision\" : {}\n\"{pfx}Version\" : {}\n\"{pfx}Value\" : {}\n\"{pfx}Lease\" : {}\n",
            quote(&kv.key),
            kv.create_revision,
            kv.mod_revision,
            kv.version,
            quote(&kv.value),
            kv.lease
        ));
    }

    fn hdr_fields(&self, h: &Header) {
        out(&format!(
            "\"ClusterID\" : {}\n\"MemberID\" : {}\n\"Revision\" : {}\n\"RaftTerm\" : {}\n",
            h.cluster_id, h.member_id, h.revision, h.raft_term
        ));
    }

    fn json(&self, s: String) {
        out(&s);
        out("\n");
    }

    pub fn get(&self, r: &GetResponse) {
        match self.format {
            Format::Simple => r.kvs.iter().for_each(|kv| self.kv_simple(kv)),
            Format::Json => self.json(get_json(r)),
            Format::Protobuf => out_bytes(&get_pb(r).encode_to_vec()),
            Format::Fields => {
                self.hdr_fields(&r.header);
                for kv in &r.kvs {
                    self.kv_fields("", kv);
                }
                out(&format!("\"More\" : {}\n\"Count\" : {}\n", r.more, r.count));
            }
            Format::Table => self.unsupported(),
        }
    }

    pub fn put(&self, r: &PutResponse) {
        match self.format {
            Format::Simple => {
                out("OK\n");
                if let Some(kv) = &r.prev_kv {
                    self.kv_simple(kv);
                }
            }
            Format::Json => self.json(put_json(r)),
            Format::Protobuf => out_bytes(&put_pb(r).encode_to_vec()),
            Format::Fields => {
                self.hdr_fields(&r.header);
                if let Some(kv) = &r.prev_kv {
                    self.kv_fields("Prev", kv);
                }
            }
            Format::Table => self.unsupported(),
        }
    }

    pub fn del(&self, r: &DeleteResponse) {
        match self.format {
            Format::Simple => {
                out(&format!("{}\n", r.deleted));
                r.prev_kvs.iter().for_each(|kv| self.kv_simple(kv));
            }
            Format::Json => self.json(del_json(r)),
            Format::Protobuf => out_bytes(&del_pb(r).encode_to_vec()),
            Format::Fields => {
                self.hdr_fields(&r.header);
                out(&format!("\"Deleted\" : {}\n", r.deleted));
                for kv in &r.prev_kvs {
                    self.kv_fields("Prev", kv);
                }
            }
            Format::Table => self.unsupported(),
        }
    }

    pub fn txn(&self, r: &TxnResponse) {
        match self.format {
            Format::Simple => {
                out(if r.succeeded {
                    "SUCCESS\n"
                } else {
                    "FAILURE\n"
                });
                for op in &r.responses {
                    out("\n");
                    match op {
                        TxnOpResponse::Get(g) => self.get(g),
                        TxnOpResponse::Put(p) => self.put(p),
                        TxnOpResponse::Delete(d) => self.del(d),
                        TxnOpResponse::Txn(t) => {
                            out(&format!("unexpected response {}\n", txn_json(t)))
                        }
                    }
                }
            }
            Format::Json => self.json(txn_json(r)),
            Format::Protobuf => out_bytes(&txn_pb(r).encode_to_vec()),
            Format::Fields => {
                self.hdr_fields(&r.header);
                out(&format!("\"Succeeded\" : {}\n", r.succeeded));
                for op in &r.responses {
                    match op {
                        TxnOpResponse::Get(g) => self.get(g),
                        TxnOpResponse::Put(p) => self.put(p),
                        TxnOpResponse::Delete(d) => self.del(d),
                        TxnOpResponse::Txn(t) => out(&format!(
                            "\"Unknown\" : {}\n",
                            gofmt::quote_str(&txn_json(t))
                        )),
                    }
                }
            }
            Format::Table => self.unsupported(),
        }
    }

    pub fn watch(&self, w: &WatchOut<'_>) {
        let b = w.batch;
        match self.format {
            Format::Simple => {
                for e in &b.events {
                    out(match e.kind {
                        EventKind::Put => "PUT\n",
                        EventKind::Delete => "DELETE\n",
                    });
                    if let Some(p) = &e.prev_kv {
                        self.kv_simple(p);
                    }
                    self.kv_simple(&e.kv);
                }
            }
            Format::Json => {
                let events: Vec<String> = b
                    .events
                    .iter()
                    .map(|e| {
                        Obj::default()
                            .num("type", u8::from(e.kind == EventKind::Delete))
                            .raw("kv", kv_json(&e.kv))
                            .opt("prev_kv", e.prev_kv.as_ref().map(kv_json))
                            .done()
                    })
                    .collect();
                let events = if events.is_empty() {
                    "null".to_string()
                } else {
                    format!("[{}]", events.join(","))
                };
                self.json(
                    Obj::default()
                        .raw("Header", header_fields(&b.header).done())
                        .raw("Events", events)
                        .num_always("CompactRevision", w.compact_revision)
                        .num_always("Canceled", w.canceled)
                        .num_always("Created", false)
                        .done(),
                );
            }
            Format::Protobuf => {
                let msg = pb::WatchResponse {
                    header: Some(header_pb(&b.header).unwrap_or_default()),
                    events: b
                        .events
                        .iter()
                        .map(|e| mvccpb::Event {
                            r#type: i32::from(e.kind == EventKind::Delete),
                            kv: Some(kv_pb(&e.kv)),
                            prev_kv: e.prev_kv.as_ref().map(kv_pb),
                        })
                        .collect(),
                    compact_revision: w.compact_revision,
                    canceled: w.canceled,
                    ..Default::default()
                };
                out_bytes(&msg.encode_to_vec());
            }
            Format::Fields => {
                self.hdr_fields(&b.header);
                for e in &b.events {
                    out(match e.kind {
                        EventKind::Put => "\"Type\" : PUT\n",
                        EventKind::Delete => "\"Type\" : DELETE\n",
                    });
                    if let Some(p) = &e.prev_kv {
                        self.kv_fields("Prev", p);
                    }
                    self.kv_fields("", &e.kv);
                }
            }
            Format::Table => self.unsupported(),
        }
    }

    pub fn grant(&self, g: &LeaseGrant) {
        match self.format {
            Format::Simple => out(&format!(
                "lease {:016x} granted with TTL({}s)\n",
                g.id, g.ttl
            )),
            Format::Json => self.json(
                flat_header(&g.header)
                    .num_always("ID", g.id)
                    .num_always("TTL", g.ttl)
                    .raw("Error", "\"\"".into())
                    .done(),
            ),
            Format::Protobuf => out_bytes(&header_only_pb(&g.header)),
            Format::Fields => {
                self.hdr_fields(&g.header);
                out(&format!("\"ID\" : {}\n\"TTL\" : {}\n", g.id, g.ttl));
            }
            Format::Table => self.unsupported(),
        }
    }

    pub fn revoke(&self, id: i64, h: &Header) {
        match self.format {
            Format::Simple => out(&format!("lease {id:016x} revoked\n")),
            Format::Json => self.json(Obj::default().opt("header", header_json(h)).done()),
            Format::Protobuf => out_bytes(
                &pb::LeaseRevokeResponse {
                    header: header_pb(h),
                }
                .encode_to_vec(),
            ),
            Format::Fields => self.hdr_fields(h),
            Format::Table => self.unsupported(),
        }
    }

    pub fn keep_alive(&self, k: &LeaseKeepAlive) {
        match self.format {
            Format::Simple => out(&format!(
                "lease {:016x} keepalived with TTL({})\n",
                k.id, k.ttl
            )),
            Format::Json => self.json(
                flat_header(&k.header)
                    .num_always("ID", k.id)
                    .num_always("TTL", k.ttl)
                    .done(),
            ),
            Format::Protobuf => out_bytes(&header_only_pb(&k.header)),
            Format::Fields => {
                self.hdr_fields(&k.header);
                out(&format!("\"ID\" : {}\n\"TTL\" : {}\n", k.id, k.ttl));
            }
            Format::Table => self.unsupported(),
        }
    }

    pub fn time_to_live(&self, t: &LeaseTimeToLive, keys: bool) {
        match self.format {
            Format::Simple => {
                if t.granted_ttl == 0 && t.ttl == -1 {
                    out(&format!("lease {:016x} already expired\n", t.id));
                    return;
                }
                let mut txt = format!(
                    "lease {:016x} granted with TTL({}s), remaining({}s)",
                    t.id, t.granted_ttl, t.ttl
                );
                if keys {
                    let ks: Vec<String> = t
                        .keys
                        .iter()
                        .map(|k| String::from_utf8_lossy(k).into_owned())
                        .collect();
                    txt.push_str(&format!(", attached keys({})", gofmt::string_slice(&ks)));
                }
                out(&txt);
                out("\n");
            }
            Format::Json => {
                let keys = if t.keys.is_empty() {
                    "null".to_string()
                } else {
                    format!(
                        "[{}]",
                        t.keys
                            .iter()
                            .map(|k| gofmt::json_string(&b64(k)))
                            .collect::<Vec<_>>()
                            .join(",")
                    )
                };
                self.json(
                    flat_header(&t.header)
                        .num_always("id", t.id)
                        .num_always("ttl", t.ttl)
                        .num_always("granted-ttl", t.granted_ttl)
                        .raw("keys", keys)
                        .done(),
                )
            }
            Format::Protobuf => out_bytes(&header_only_pb(&t.header)),
            Format::Fields => {
                self.hdr_fields(&t.header);
                out(&format!(
                    "\"ID\" : {}\n\"TTL\" : {}\n\"GrantedTTL\" : {}\n",
                    t.id, t.ttl, t.granted_ttl
                ));
                for k in &t.keys {
                    out(&format!("\"Key\" : {}\n", quote(k)));
                }
            }
            Format::Table => self.unsupported(),
        }
    }

    pub fn leases(&self, l: &LeaseList) {
        match self.format {
            Format::Simple => {
                out(&format!("found {} leases\n", l.ids.len()));
                for id in &l.ids {
                    out(&format!("{id:016x}\n"));
                }
            }
            Format::Json => {
                let items: Vec<String> =
                    l.ids.iter().map(|id| format!("{{\"id\":{id}}}")).collect();
                self.json(
                    flat_header(&l.header)
                        .raw("leases", format!("[{}]", items.join(",")))
                        .done(),
                )
            }
            Format::Protobuf => out_bytes(&header_only_pb(&l.header)),
            Format::Fields => {
                self.hdr_fields(&l.header);
                for id in &l.ids {
                    out(&format!("\"ID\" : {id}\n"));
                }
            }
            Format::Table => self.unsupported(),
        }
    }

    pub fn member_add(&self, r: &MemberAddResponse) {
        match self.format {
            Format::Simple => out(&format!(
                "Member {:16x} added to cluster {:16x}\n",
                r.member.id, r.header.cluster_id
            )),
            Format::Json => self.json(
                Obj::default()
                    .opt("header", header_json(&r.header))
                    .opt(
                        "member",
                        (r.member != Member::default()).then(|| member_json(&r.member)),
                    )
                    .list("members", r.members.iter().map(member_json).collect())
                    .done(),
            ),
            Format::Protobuf => out_bytes(
                &pb::MemberAddResponse {
                    header: header_pb(&r.header),
                    member: (r.member != Member::default()).then(|| member_pb(&r.member)),
                    members: r.members.iter().map(member_pb).collect(),
                }
                .encode_to_vec(),
            ),
            Format::Fields | Format::Table => self.unsupported(),
        }
    }

    /// `member remove`, `update` and `promote`: `verb` is "removed from", "updated in" or
    /// "promoted in".
    pub fn member_change(&self, verb: &str, id: u64, r: &MemberListResponse) {
        match self.format {
            Format::Simple => out(&format!(
                "Member {id:16x} {verb} cluster {:16x}\n",
                r.header.cluster_id
            )),
            Format::Json => self.json(members_json(&r.header, &r.members)),
            Format::Protobuf => {
                let header = header_pb(&r.header);
                let members: Vec<pb::Member> = r.members.iter().map(member_pb).collect();
                let bytes = match verb {
                    "removed from" => pb::MemberRemoveResponse { header, members }.encode_to_vec(),
                    "updated in" => pb::MemberUpdateResponse { header, members }.encode_to_vec(),
                    _ => pb::MemberPromoteResponse { header, members }.encode_to_vec(),
                };
                out_bytes(&bytes);
            }
            Format::Fields | Format::Table => self.unsupported(),
        }
    }

    fn member_rows(r: &MemberListResponse) -> Vec<Vec<String>> {
        r.members
            .iter()
            .map(|m| {
                vec![
                    format!("{:x}", m.id),
                    if m.name.is_empty() {
                        "unstarted"
                    } else {
                        "started"
                    }
                    .to_string(),
                    m.name.clone(),
                    m.peer_urls.join(","),
                    m.client_urls.join(","),
                    m.is_learner.to_string(),
                ]
            })
            .collect()
    }

    pub fn member_list(&self, r: &MemberListResponse) {
        match self.format {
            Format::Simple => {
                for row in Self::member_rows(r) {
                    out(&format!("{}\n", row.join(", ")));
                }
            }
            Format::Json => self.json(members_json(&r.header, &r.members)),
            Format::Protobuf => out_bytes(
                &pb::MemberListResponse {
                    header: header_pb(&r.header),
                    members: r.members.iter().map(member_pb).collect(),
                }
                .encode_to_vec(),
            ),
            Format::Fields => {
                self.hdr_fields(&r.header);
                for m in &r.members {
                    out(&format!(
                        "\"ID\" : {}\n\"Name\" : {}\n",
                        m.id,
                        gofmt::quote_str(&m.name)
                    ));
                    for u in &m.peer_urls {
                        out(&format!("\"PeerURL\" : {}\n", gofmt::quote_str(u)));
                    }
                    for u in &m.client_urls {
                        out(&format!("\"ClientURL\" : {}\n", gofmt::quote_str(u)));
                    }
                    out(&format!("\"IsLearner\" : {}\n\n", m.is_learner));
                }
            }
            Format::Table => out(&table::render(
                &[
                    "ID",
                    "Status",
                    "Name",
                    "Peer Addrs",
                    "Client Addrs",
                    "Is Learner",
                ],
                &Self::member_rows(r),
            )),
        }
    }

    pub fn endpoint_health(&self, hs: &[EpHealth]) {
        match self.format {
            Format::Simple => {
                let mut e = std::io::stderr().lock();
                for h in hs {
                    if h.error.is_empty() {
                        let _ = writeln!(
                            e,
                            "{} is healthy: successfully committed proposal: took = {}",
                            h.ep, h.took
                        );
                    } else {
                        let _ = writeln!(
                            e,
                            "{} is unhealthy: failed to commit proposal: {}",
                            h.ep, h.error
                        );
                    }
                }
            }
            Format::Json => {
                let items: Vec<String> = hs
                    .iter()
                    .map(|h| {
                        Obj::default()
                            .raw("endpoint", gofmt::json_string(&h.ep))
                            .num_always("health", h.health)
                            .raw("took", gofmt::json_string(&h.took))
                            .string("error", &h.error)
                            .done()
                    })
                    .collect();
                self.json(format!("[{}]", items.join(",")));
            }
            Format::Fields => {
                for h in hs {
                    out(&format!(
                        "\"Endpoint\" : {}\n\"Health\" : {}\n\"Took\" : {}\n\"Error\" : {}\n\n",
                        gofmt::quote_str(&h.ep),
                        h.health,
                        h.took,
                        h.error
                    ));
                }
            }
            Format::Table => out(&table::render(
                &["endpoint", "health", "took", "error"],
                &hs.iter()
                    .map(|h| {
                        vec![
                            h.ep.clone(),
                            h.health.to_string(),
                            h.took.clone(),
                            h.error.clone(),
                        ]
                    })
                    .collect::<Vec<_>>(),
            )),
            Format::Protobuf => self.unsupported(),
        }
    }

    fn status_rows(list: &[(String, StatusResponse)]) -> Vec<Vec<String>> {
        list.iter()
            .map(|(ep, s)| {
                vec![
                    ep.clone(),
                    format!("{:x}", s.header.member_id),
                    s.version.clone(),
                    gofmt::humanize_bytes(s.db_size.max(0) as u64),
                    (s.leader == s.header.member_id).to_string(),
                    s.is_learner.to_string(),
                    s.raft_term.to_string(),
                    s.raft_index.to_string(),
                    s.raft_applied_index.to_string(),
                    s.errors.join(", "),
                ]
            })
            .collect()
    }

    pub fn endpoint_status(&self, list: &[(String, StatusResponse)]) {
        match self.format {
            Format::Simple => {
                for row in Self::status_rows(list) {
                    out(&format!("{}\n", row.join(", ")));
                }
            }
            Format::Json => {
                let items: Vec<String> = list
                    .iter()
                    .map(|(ep, s)| {
                        format!(
                            "{{\"Endpoint\":{},\"Status\":{}}}",
                            gofmt::json_string(ep),
                            status_json(s)
                        )
                    })
                    .collect();
                self.json(format!("[{}]", items.join(",")));
            }
            Format::Fields => {
                for (ep, s) in list {
                    self.hdr_fields(&s.header);
                    out(&format!(
                        "\"Version\" : {}\n\"DBSize\" : {}\n\"Leader\" : {}\n\"IsLearner\" : {}\n\"RaftIndex\" : {}\n\"RaftTerm\" : {}\n\"RaftAppliedIndex\" : {}\n\"Errors\" : {}\n\"Endpoint\" : {}\n\n",
                        gofmt::quote_str(&s.version),
                        s.db_size,
                        s.leader,
                        s.is_learner,
                        s.raft_index,
                        s.raft_term,
                        s.raft_applied_index,
                        gofmt::string_slice(&s.errors),
                        gofmt::quote_str(ep)
                    ));
                }
            }
            Format::Table => out(&table::render(
                &[
                    "endpoint",
                    "ID",
                    "version",
                    "db size",
                    "is leader",
                    "is learner",
                    "raft term",
                    "raft index",
                    "raft applied index",
                    "errors",
                ],
                &Self::status_rows(list),
            )),
            Format::Protobuf => self.unsupported(),
        }
    }

    pub fn endpoint_hashkv(&self, list: &[(String, HashKvResponse)]) {
        let rows: Vec<Vec<String>> = list
            .iter()
            .map(|(ep, h)| vec![ep.clone(), h.hash.to_string()])
            .collect();
        match self.format {
            Format::Simple => {
                for row in rows {
                    out(&format!("{}\n", row.join(", ")));
                }
            }
            Format::Json => {
                let items: Vec<String> = list
                    .iter()
                    .map(|(ep, h)| {
                        format!(
                            "{{\"Endpoint\":{},\"HashKV\":{}}}",
                            gofmt::json_string(ep),
                            hashkv_json(h)
                        )
                    })
                    .collect();
                self.json(format!("[{}]", items.join(",")));
            }
            Format::Fields => {
                for (ep, h) in list {
                    self.hdr_fields(&h.header);
                    out(&format!(
                        "\"Endpoint\" : {}\n\"Hash\" : {}\n\n",
                        gofmt::quote_str(ep),
                        h.hash
                    ));
                }
            }
            Format::Table => out(&table::render(&["endpoint", "hash"], &rows)),
            Format::Protobuf => self.unsupported(),
        }
    }

    pub fn move_leader(&self, leader: u64, target: u64, h: &Header) {
        match self.format {
            Format::Simple => out(&format!(
                "Leadership transferred from {leader:x} to {target:x}\n"
            )),
            Format::Json => self.json(Obj::default().opt("header", header_json(h)).done()),
            Format::Protobuf => out_bytes(
                &pb::MoveLeaderResponse {
                    header: header_pb(h),
                }
                .encode_to_vec(),
            ),
            Format::Fields | Format::Table => self.unsupported(),
        }
    }

    pub fn alarm(&self, r: &AlarmResponse) {
        let name = |a: concord_client::AlarmType| match a {
            concord_client::AlarmType::None => "NONE",
            concord_client::AlarmType::Nospace => "NOSPACE",
            concord_client::AlarmType::Corrupt => "CORRUPT",
        };
        match self.format {
            Format::Simple => {
                for a in &r.alarms {
                    out(&format!(
                        "memberID:{} alarm:{} \n",
                        a.member_id,
                        name(a.alarm)
                    ));
                }
            }
            Format::Json => {
                let alarms: Vec<String> = r
                    .alarms
                    .iter()
                    .map(|a| {
                        Obj::default()
                            .num("memberID", a.member_id)
                            .num("alarm", a.alarm as i32)
                            .done()
                    })
                    .collect();
                self.json(
                    Obj::default()
                        .opt("header", header_json(&r.header))
                        .list("alarms", alarms)
                        .done(),
                );
            }
            Format::Protobuf => out_bytes(
                &pb::AlarmResponse {
                    header: header_pb(&r.header),
                    alarms: r
                        .alarms
                        .iter()
                        .map(|a| pb::AlarmMember {
                            member_id: a.member_id,
                            alarm: a.alarm as i32,
                        })
                        .collect(),
                }
                .encode_to_vec(),
            ),
            Format::Fields => {
                self.hdr_fields(&r.header);
                for a in &r.alarms {
                    out(&format!(
                        "\"MemberID\" : {}\n\"AlarmType\" : {}\n\n",
                        a.member_id,
                        name(a.alarm)
                    ));
                }
            }
            Format::Table => self.unsupported(),
        }
    }

    pub fn db_status(&self, s: &DbStatus) {
        let row = vec![
            format!("{:x}", s.hash),
            s.revision.to_string(),
            s.total_key.to_string(),
            gofmt::humanize_bytes(s.total_size.max(0) as u64),
        ];
        match self.format {
            Format::Simple => out(&format!("{}\n", row.join(", "))),
            Format::Json => self.json(format!(
                "{{\"hash\":{},\"revision\":{},\"totalKey\":{},\"totalSize\":{}}}",
                s.hash, s.revision, s.total_key, s.total_size
            )),
            Format::Fields => out(&format!(
                "\"Hash\" : {}\n\"Revision\" : {}\n\"Keys\" : {}\n\"Size\" : {}\n",
                s.hash, s.revision, s.total_key, s.total_size
            )),
            Format::Table => out(&table::render(
                &["hash", "revision", "total keys", "total size"],
                &[row],
            )),
            Format::Protobuf => self.unsupported(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: value.into(),
            create_revision: 2,
            mod_revision: 3,
            version: 2,
            lease: 0,
        }
    }

    #[test]
    fn json_like_etcdctl() {
        let r = GetResponse {
            header: Header {
                cluster_id: 324952591200643719,
                member_id: 3319814642761637952,
                revision: 3,
                raft_term: 2,
            },
            kvs: vec![kv("foo", "bar2")],
            more: false,
            count: 1,
        };
        assert_eq!(
            get_json(&r),
            "{\"header\":{\"cluster_id\":324952591200643719,\"member_id\":3319814642761637952,\"revision\":3,\"raft_term\":2},\"kvs\":[{\"key\":\"Zm9v\",\"create_revision\":2,\"mod_revision\":3,\"version\":2,\"value\":\"YmFyMg==\"}],\"count\":1}"
        );
        // A header the server left out is left out.
        assert_eq!(
            Obj::default()
                .opt("header", header_json(&Header::default()))
                .done(),
            "{}"
        );
    }

    #[test]
    fn hex_keys() {
        assert_eq!(hex_escaped(b"ab"), "\\x61\\x62");
    }
}
