//! Applying one command: its writes go to a private `Pending` layered over everything applied
//! before it, so a failing command leaves no trace.

use crate::error::MvccError;
use crate::keys::{self, Rec};
use crate::read::{self, Revs};
use crate::source::{Cf, Overlay, Pending, Source};
use crate::types::*;

pub struct Writer<'a> {
    base: &'a dyn Source,
    pub pending: Pending,
    /// The revision before this command.
    begin: i64,
    compacted: i64,
    /// Writes made so far; each takes the next sub-revision.
    sub: i64,
    /// The changes made so far, for watchers (only when capturing).
    pub events: Vec<Event>,
    capture: bool,
}

impl<'a> Writer<'a> {
    /// `capture`: record an [`Event`] for every change (with the previous version's value).
    pub fn new(base: &'a dyn Source, revs: Revs, capture: bool) -> Writer<'a> {
        Writer {
            base,
            pending: Pending::default(),
            begin: revs.current,
            compacted: revs.compacted,
            sub: 0,
            events: Vec::new(),
            capture,
        }
    }

    /// The revision this command writes at.
    pub fn rev(&self) -> i64 {
        self.begin.saturating_add(1)
    }

    /// True if the command wrote anything (and so takes a revision).
    pub fn wrote(&self) -> bool {
        self.sub > 0
    }

    fn view(&self) -> Overlay<'_> {
        Overlay {
            base: self.base,
            pending: &self.pending,
        }
    }

    /// Revisions as reads inside this command see them.
    fn revs(&self) -> Revs {
        Revs {
            current: if self.wrote() { self.rev() } else { self.begin },
            compacted: self.compacted,
        }
    }

    fn current(&self, key: &[u8]) -> Result<Option<Rec>, MvccError> {
        self.view()
            .get(Cf::Kv, key)?
            .map(|v| Rec::decode(&v))
            .transpose()
    }

    fn record(&mut self, key: &[u8], rec: &Rec, kind: u8) {
        let enc = rec.encode();
        if rec.tombstone {
            self.pending.delete(Cf::Kv, key.to_vec());
        } else {
            self.pending.put(Cf::Kv, key.to_vec(), enc.clone());
        }
        self.pending
            .put(Cf::History, keys::history_key(key, rec.modr), enc);
        self.pending.put(
            Cf::Revs,
            keys::rev_key(rec.modr, rec.sub),
            keys::rev_value(kind, key),
        );
        self.sub += 1;
    }

    pub fn put(&mut self, req: &PutRequest) -> Result<PutResponse, MvccError> {
        // Inside a txn this runs again after the txn's check: an earlier op of the same txn may
        // have deleted the key (etcd panics there; here the txn fails and changes nothing).
        let prev = self.check_put(req)?;
        let rev = self.rev();
        let rec = Rec {
            create: prev.as_ref().map_or(rev, |p| p.create),
            modr: rev,
            sub: self.sub,
            version: prev.as_ref().map_or(1, |p| p.version.saturating_add(1)),
            lease: match (&prev, req.ignore_lease) {
                (Some(p), true) => p.lease,
                _ => req.lease,
            },
            value: match (&prev, req.ignore_value) {
                (Some(p), true) => p.value.clone(),
                _ => req.value.clone(),
            },
            tombstone: false,
        };
        self.record(&req.key, &rec, keys::EVENT_PUT);
        self.reattach(&req.key, prev.as_ref().map_or(0, |p| p.lease), rec.lease);
        let prev = prev.map(|p| p.into_kv(req.key.clone()));
        if self.capture {
            self.events.push(Event {
                kind: EventKind::Put,
                kv: rec.into_kv(req.key.clone()),
                prev_kv: prev.clone(),
            });
        }
        let prev_kv = if req.prev_kv { prev } else { None };
        Ok(PutResponse { prev_kv })
    }

    pub fn delete(&mut self, req: &DeleteRangeRequest) -> Result<DeleteRangeResponse, MvccError> {
        let mut found = Vec::new();
        let cur = self.revs().current;
        let capture = self.capture;
        read::visit(
            &self.view(),
            &req.key,
            &req.range_end,
            cur,
            true,
            &mut |k, raw| {
                // Watchers may ask for the previous value.
                let with_value = req.prev_kv || capture;
                found.push((k.to_vec(), Rec::decode_with(raw, with_value)?));
                Ok(true)
            },
        )?;
        let rev = self.rev();
        let mut prev_kvs = Vec::new();
        let deleted = found.len() as i64;
        for (k, prev) in found {
            let tomb = Rec {
                create: 0,
                modr: rev,
                sub: self.sub,
                version: 0,
                lease: 0,
                value: Vec::new(),
                tombstone: true,
            };
            self.record(&k, &tomb, keys::EVENT_DELETE);
            self.reattach(&k, prev.lease, 0);
            if !self.capture {
                if req.prev_kv {
                    prev_kvs.push(prev.into_kv(k));
                }
                continue;
            }
            let prev = prev.into_kv(k.clone());
            if req.prev_kv {
                prev_kvs.push(prev.clone());
            }
            self.events.push(Event {
                kind: EventKind::Delete,
                kv: KeyValue {
                    key: k,
                    mod_revision: rev,
                    ..KeyValue::default()
                },
                prev_kv: Some(prev),
            });
        }
        Ok(DeleteRangeResponse { deleted, prev_kvs })
    }

    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse, MvccError> {
        read::range(&self.view(), self.revs(), req, None)
    }

    /// A txn the way etcd applies one: every compare (nested txns' included) is evaluated against
    /// the state before the txn, the chosen ops are checked against that state too, and only
    /// then are they run, in order, each seeing the writes before it. An error anywhere fails
    /// the whole txn; the caller then drops everything it wrote.
    pub fn txn(&mut self, req: &TxnRequest) -> Result<TxnResponse, MvccError> {
        let mut path = Vec::new();
        read::txn_path(&self.view(), self.revs().current, req, &mut path)?;
        let before = self.revs();
        self.check(req, before, &mut path.iter().copied())?;
        self.run_txn(req, &mut path.into_iter())
    }

    /// etcd's checkTxn: puts that must fail and ranges at revisions that cannot be read, in the
    /// chosen branches, against the state before the txn.
    fn check(
        &self,
        req: &TxnRequest,
        before: Revs,
        path: &mut dyn Iterator<Item = bool>,
    ) -> Result<(), MvccError> {
        let succeeded = path
            .next()
            .ok_or_else(|| MvccError::Corrupt("txn path too short".into()))?;
        for op in read::branch(req, succeeded) {
            match op {
                RequestOp::Range(r) => {
                    before.resolve(r.revision)?;
                }
                RequestOp::Put(p) => {
                    self.check_put(p)?;
                }
                RequestOp::DeleteRange(_) => {}
                RequestOp::Txn(t) => self.check(t, before, path)?,
            }
        }
        Ok(())
    }

    /// Why a put would fail, if it would.
    fn check_put(&self, req: &PutRequest) -> Result<Option<Rec>, MvccError> {
        let prev = self.current(&req.key)?;
        if (req.ignore_value || req.ignore_lease) && prev.is_none() {
            return Err(MvccError::KeyNotFound);
        }
        if req.lease != 0 && !req.ignore_lease && !self.lease_exists(req.lease)? {
            return Err(MvccError::LeaseNotFound);
        }
        Ok(prev)
    }

    fn lease_exists(&self, id: i64) -> Result<bool, MvccError> {
        Ok(self.view().get(Cf::Lease, &keys::lease_key(id))?.is_some())
    }

    /// Moves a key's attachment from one lease to another (0: none).
    fn reattach(&mut self, key: &[u8], from: i64, to: i64) {
        if from == to {
            return;
        }
        if from != 0 {
            self.pending
                .delete(Cf::Lease, keys::lease_attach_key(from, key));
        }
        if to != 0 {
            self.pending
                .put(Cf::Lease, keys::lease_attach_key(to, key), Vec::new());
        }
    }

    pub fn lease_grant(&mut self, id: i64, ttl: i64) -> Result<(), MvccError> {
        if self.lease_exists(id)? {
            return Err(MvccError::LeaseExists);
        }
        self.pending
            .put(Cf::Lease, keys::lease_key(id), keys::encode_lease(ttl, 0));
        Ok(())
    }

    /// Deletes the lease and its keys; the deletes share one revision.
    pub fn lease_revoke(&mut self, id: i64) -> Result<(), MvccError> {
        if !self.lease_exists(id)? {
            return Err(MvccError::LeaseNotFound);
        }
        let prefix = keys::lease_keys_prefix(id);
        let end = keys::lease_keys_end(id);
        let mut attached = Vec::new();
        self.view()
            .scan(Cf::Lease, &prefix, Some(&end), &mut |k, _| {
                attached.push(k[prefix.len()..].to_vec());
                Ok(true)
            })?;
        for key in attached {
            self.delete(&DeleteRangeRequest {
                key,
                ..DeleteRangeRequest::default()
            })?;
        }
        self.pending.delete(Cf::Lease, keys::lease_key(id));
        Ok(())
    }

    pub fn lease_checkpoint(&mut self, checkpoints: &[(i64, i64)]) -> Result<(), MvccError> {
        for &(id, remaining) in checkpoints {
            let Some(raw) = self.view().get(Cf::Lease, &keys::lease_key(id))? else {
                continue;
            };
            let (ttl, _) = keys::decode_lease(&raw)?;
            self.pending.put(
                Cf::Lease,
                keys::lease_key(id),
                keys::encode_lease(ttl, remaining.max(0)),
            );
        }
        Ok(())
    }

    fn run_txn(
        &mut self,
        req: &TxnRequest,
        path: &mut dyn Iterator<Item = bool>,
    ) -> Result<TxnResponse, MvccError> {
        let succeeded = path
            .next()
            .ok_or_else(|| MvccError::Corrupt("txn path too short".into()))?;
        let ops = read::branch(req, succeeded);
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            responses.push(match op {
                RequestOp::Range(r) => ResponseOp::Range(self.range(r)?),
                RequestOp::Put(p) => ResponseOp::Put(self.put(p)?),
                RequestOp::DeleteRange(d) => ResponseOp::DeleteRange(self.delete(d)?),
                RequestOp::Txn(t) => ResponseOp::Txn(self.run_txn(t, path)?),
            });
        }
        Ok(TxnResponse {
            succeeded,
            responses,
        })
    }
}
