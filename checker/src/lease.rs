//! Lease expiry checks.
//!
//! A lease granted with TTL `t` (or refreshed by a keep-alive that returned TTL `t`) cannot
//! expire before `t` seconds after the request was *sent*: the server resets the timer when
//! it handles the request, which is after the client sent it. So a leased key seen missing
//! by a linearizable read that completed before `sent + t - slack`, with nothing else that
//! could have removed it (no delete, no other write of the key, no revoke that may have run
//! first), shows a lease that expired early. Once a lease is seen dead (its key vanished that
//! way, a TTL query answered -1, a keep-alive answered 0, a revoke was acknowledged), a
//! keep-alive or TTL query sent later that answers a positive TTL, or a put attached to it
//! that succeeds, shows a lease that came back.

use std::collections::{BTreeMap, HashMap};

use crate::history::{Bytes, Call, History, LeaseId, MicroOp, Op, Ret};
use crate::report::{Anomaly, AnomalyKind, Checker, CheckerSummary, Findings};
use crate::util::secs;
use crate::validate::Validation;
use crate::CheckConfig;

const NS: i128 = 1_000_000_000;

/// Evidence that a lease was dead at some time.
struct Death {
    /// It was dead by this time.
    by: u64,
    ops: Vec<usize>,
    what: String,
}

#[derive(Default)]
struct LeaseInfo {
    grant: Option<(usize, i64)>,
    keepalives: Vec<(usize, i64)>,
    revokes: Vec<usize>,
    ttls: Vec<(usize, i64)>,
    puts: Vec<usize>,
    deaths: Vec<Death>,
}

/// Whether `op` may have written `key`.
fn may_write(op: &Op, key: &Bytes) -> bool {
    if op.is_failed() {
        return false;
    }
    let known = !op.is_indeterminate();
    match (&op.call, &op.ret) {
        (Call::Put { key: k, .. }, _) => k == key,
        (Call::Delete { key: k }, Ret::Delete { deleted: 0, .. }) if known => {
            // It found nothing: not a write, but it does say the key was missing.
            k == key
        }
        (Call::Delete { key: k }, _) => k == key,
        (
            Call::Cas { .. },
            Ret::Cas {
                succeeded: false, ..
            },
        ) if known => false,
        (Call::Cas { key: k, .. }, _) => k == key,
        (Call::Txn { micro_ops }, _) => micro_ops
            .iter()
            .any(|m| matches!(m, MicroOp::Append { key: k, .. } if k == key)),
        _ => false,
    }
}

/// The latest time the lease must still have been alive, given what was sent up to `until`:
/// (deadline, op that sets it).
fn deadline(h: &History, l: &LeaseInfo, until: u64) -> Option<(i128, usize)> {
    let mut best: Option<(i128, usize)> = None;
    let mut consider = |i: usize, ttl: i64| {
        let d = i128::from(h.ops[i].invoke_ns) + i128::from(ttl) * NS;
        if ttl > 0 && h.ops[i].invoke_ns <= until && best.is_none_or(|(b, _)| d > b) {
            best = Some((d, i));
        }
    };
    if let Some((g, ttl)) = l.grant {
        consider(g, ttl);
    }
    for &(k, ttl) in &l.keepalives {
        consider(k, ttl);
    }
    best
}

/// Runs the lease checker.
pub(crate) fn check(
    h: &History,
    v: &Validation,
    cfg: &CheckConfig,
) -> (CheckerSummary, Vec<Anomaly>) {
    let mut f = Findings::new(Checker::Lease, cfg.max_anomalies_per_kind);
    let mut leases: BTreeMap<LeaseId, LeaseInfo> = BTreeMap::new();
    let mut missing_reads: Vec<usize> = Vec::new();
    let mut by_key: HashMap<&Bytes, Vec<usize>> = HashMap::new();
    let mut checked = 0usize;
    for (i, op) in h.ops.iter().enumerate() {
        if v.excluded[i] {
            continue;
        }
        let ok = op.is_ok();
        match (&op.call, &op.ret) {
            (Call::LeaseGrant { .. }, Ret::LeaseGranted { lease, ttl_s }) if ok => {
                leases.entry(*lease).or_default().grant = Some((i, *ttl_s));
                checked += 1;
            }
            (Call::LeaseKeepAlive { lease }, Ret::LeaseKeepAlive { ttl_s }) if ok => {
                leases
                    .entry(*lease)
                    .or_default()
                    .keepalives
                    .push((i, *ttl_s));
                checked += 1;
            }
            (Call::LeaseTimeToLive { lease }, Ret::LeaseTtl { ttl_s }) if ok => {
                leases.entry(*lease).or_default().ttls.push((i, *ttl_s));
                checked += 1;
            }
            (Call::LeaseRevoke { lease }, _) if !op.is_failed() => {
                leases.entry(*lease).or_default().revokes.push(i);
                checked += 1;
            }
            (
                Call::Put {
                    lease: Some(lease), ..
                },
                Ret::Put { .. },
            ) if ok => {
                leases.entry(*lease).or_default().puts.push(i);
                checked += 1;
            }
            (
                Call::Get {
                    serializable: false,
                    ..
                },
                Ret::Get { value: None, .. },
            ) if ok => {
                missing_reads.push(i);
            }
            _ => {}
        }
        let keys: Vec<&Bytes> = match &op.call {
            Call::Txn { micro_ops } => micro_ops.iter().map(|m| m.key()).collect(),
            c => c.single_key().into_iter().collect(),
        };
        for k in keys {
            let list = by_key.entry(k).or_default();
            if list.last() != Some(&i) {
                list.push(i);
            }
        }
    }
    if leases.is_empty() {
        f.detail = "no leases".into();
        return f.finish();
    }
    let slack = cfg.lease_slack_ns;
    // Keys attached to leases, with the puts that attached them.
    let mut leased_puts: HashMap<&Bytes, Vec<(usize, LeaseId)>> = HashMap::new();
    for (&l, info) in &leases {
        for &p in &info.puts {
            if let Some(k) = h.ops[p].call.single_key() {
                leased_puts.entry(k).or_default().push((p, l));
            }
        }
    }
    // Deaths seen through vanished keys.
    for &r in &missing_reads {
        let rop = &h.ops[r];
        let Some(key) = rop.call.single_key() else {
            continue;
        };
        let Some(rc) = rop.known_complete() else {
            continue;
        };
        let Some(puts) = leased_puts.get(key) else {
            continue;
        };
        let Some(&(p, l)) = puts
            .iter()
            .filter(|(p, _)| h.ops[*p].precedes(rop))
            .max_by_key(|(p, _)| h.ops[*p].known_complete())
        else {
            continue;
        };
        checked += 1;
        let pop = &h.ops[p];
        let interfered = by_key.get(key).is_some_and(|ws| {
            ws.iter().any(|&w| {
                w != p
                    && w != r
                    && may_write(&h.ops[w], key)
                    && h.ops[w].invoke_ns < rc
                    && !h.ops[w].precedes(pop)
            })
        });
        if interfered {
            continue;
        }
        let Some(info) = leases.get_mut(&l) else {
            continue;
        };
        info.deaths.push(Death {
            by: rc,
            ops: vec![p, r],
            what: format!(
                "#{} saw key {key} (attached by #{}) missing",
                rop.id, pop.id
            ),
        });
    }
    for (&l, info) in leases.iter_mut() {
        for &(t, ttl) in &info.ttls {
            if ttl < 0 {
                if let Some(c) = h.ops[t].known_complete() {
                    info.deaths.push(Death {
                        by: c,
                        ops: vec![t],
                        what: format!("#{} found lease {l} gone (TTL {ttl})", h.ops[t].id),
                    });
                }
            }
        }
        for &(k, ttl) in &info.keepalives {
            if ttl <= 0 {
                if let Some(c) = h.ops[k].known_complete() {
                    info.deaths.push(Death {
                        by: c,
                        ops: vec![k],
                        what: format!("keep-alive #{} answered TTL {ttl}", h.ops[k].id),
                    });
                }
            }
        }
    }
    // Early expiry: a death before the lease's deadline, with no revoke that could explain it.
    for (&l, info) in &leases {
        for d in &info.deaths {
            let revoked = info.revokes.iter().any(|&rv| h.ops[rv].invoke_ns < d.by);
            if revoked {
                continue;
            }
            let Some((dl, by_op)) = deadline(h, info, d.by) else {
                continue;
            };
            if i128::from(d.by) + i128::from(slack) < dl {
                let early = dl - i128::from(d.by);
                let ttl_op = &h.ops[by_op];
                f.push(
                    Anomaly::new(
                        Checker::Lease,
                        AnomalyKind::LeaseExpiredEarly,
                        format!(
                            "lease {l} was dead by {} ({}), but #{} ({}) sent at {} keeps it alive \
                             until at least {}: {:.3}s too early (slack {})",
                            secs(d.by),
                            d.what,
                            ttl_op.id,
                            ttl_op.call.name(),
                            secs(ttl_op.invoke_ns),
                            secs(u64::try_from(dl).unwrap_or(u64::MAX)),
                            early as f64 / 1e9,
                            secs(slack)
                        ),
                    )
                    .ops(d.ops.iter().map(|&i| &h.ops[i]))
                    .ops([ttl_op]),
                );
            }
        }
    }
    // Resurrection: alive again after being seen dead or revoked.
    for (&l, info) in &leases {
        let mut deaths: Vec<(u64, Vec<usize>, String)> = info
            .deaths
            .iter()
            .map(|d| (d.by, d.ops.clone(), d.what.clone()))
            .collect();
        for &rv in &info.revokes {
            if let (Some(c), true) = (h.ops[rv].known_complete(), h.ops[rv].is_ok()) {
                deaths.push((c, vec![rv], format!("#{} revoked it", h.ops[rv].id)));
            }
        }
        let Some((by, dops, what)) = deaths.into_iter().min_by_key(|d| d.0) else {
            continue;
        };
        let alive = info
            .keepalives
            .iter()
            .chain(&info.ttls)
            .filter(|(_, ttl)| *ttl > 0)
            .map(|&(i, ttl)| (i, format!("answered TTL {ttl}s")))
            .chain(
                info.puts
                    .iter()
                    .map(|&p| (p, "succeeded with the lease attached".to_string())),
            )
            .filter(|(i, _)| h.ops[*i].invoke_ns > by.saturating_add(slack))
            .min_by_key(|(i, _)| h.ops[*i].invoke_ns);
        if let Some((i, how)) = alive {
            f.push(
                Anomaly::new(
                    Checker::Lease,
                    AnomalyKind::LeaseResurrected,
                    format!(
                        "lease {l} was dead by {} ({what}), yet #{} ({}) sent at {} {how}",
                        secs(by),
                        h.ops[i].id,
                        h.ops[i].call.name(),
                        secs(h.ops[i].invoke_ns)
                    ),
                )
                .ops(dops.iter().map(|&o| &h.ops[o]))
                .ops([&h.ops[i]]),
            );
        }
    }
    f.ops_checked = checked;
    f.detail = format!("{} leases", leases.len());
    f.finish()
}
