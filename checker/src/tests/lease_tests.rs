use super::util::H;
use crate::{AnomalyKind, Call, Checker, Ret, Validity};

fn grant(h: &mut H, t0: u64, lease: i64, ttl_s: i64) -> u64 {
    h.op(
        1,
        t0,
        Some(t0 + 10),
        Call::LeaseGrant { ttl_s },
        Ret::LeaseGranted { lease, ttl_s },
    )
}

fn keepalive(h: &mut H, t0: u64, lease: i64, ttl_s: i64) -> u64 {
    h.op(
        1,
        t0,
        Some(t0 + 10),
        Call::LeaseKeepAlive { lease },
        Ret::LeaseKeepAlive { ttl_s },
    )
}

fn ttl(h: &mut H, t0: u64, lease: i64, ttl_s: i64) -> u64 {
    h.op(
        2,
        t0,
        Some(t0 + 10),
        Call::LeaseTimeToLive { lease },
        Ret::LeaseTtl { ttl_s },
    )
}

fn revoke(h: &mut H, t0: u64, lease: i64) -> u64 {
    h.op(
        3,
        t0,
        Some(t0 + 10),
        Call::LeaseRevoke { lease },
        Ret::LeaseRevoked,
    )
}

fn lease_kinds(r: &crate::Report) -> Vec<AnomalyKind> {
    r.anomalies
        .iter()
        .filter(|a| a.checker == Checker::Lease)
        .map(|a| a.kind)
        .collect()
}

#[test]
fn key_missing_one_second_after_a_ttl_10_keepalive_is_early_expiry() {
    let mut h = H::new();
    grant(&mut h, 0, 7, 10);
    let put = h.put_lease(2, 1000, 1010, "k", "v", 7);
    let ka = keepalive(&mut h, 2000, 7, 10);
    let read = h.get(3, 3000, 3010, "k", None);
    let r = h.check();
    assert_eq!(lease_kinds(&r), vec![AnomalyKind::LeaseExpiredEarly], "{r}");
    let mut ids: Vec<u64> = r.anomalies[0].ops.iter().map(|o| o.id).collect();
    ids.sort_unstable();
    assert_eq!(ids, vec![put, ka, read], "{r}");
}

#[test]
fn correct_lease_history_passes() {
    let mut h = H::new();
    grant(&mut h, 0, 7, 2);
    h.put_lease(2, 100, 110, "k", "v", 7);
    h.get(3, 500, 510, "k", Some("v"));
    keepalive(&mut h, 1000, 7, 2);
    h.get(3, 2000, 2010, "k", Some("v"));
    h.get(3, 3500, 3510, "k", None);
    ttl(&mut h, 4000, 7, -1);
    keepalive(&mut h, 4100, 7, 0);
    // A second lease, revoked, and a key deleted by hand.
    grant(&mut h, 5000, 8, 60);
    h.put_lease(2, 5100, 5110, "j", "w", 8);
    revoke(&mut h, 5500, 8);
    h.get(3, 6000, 6010, "j", None);
    grant(&mut h, 7000, 9, 60);
    h.put_lease(2, 7100, 7110, "i", "u", 9);
    h.del(2, 7200, 7210, "i", 1, 0);
    h.get(3, 7300, 7310, "i", None);
    keepalive(&mut h, 7400, 9, 60);
    let r = h.check();
    assert!(r.is_valid(), "{r}");
    assert_eq!(
        r.summary(Checker::Lease).map(|s| s.validity),
        Some(Validity::Valid)
    );
}

#[test]
fn vanishing_within_the_clock_slack_is_tolerated() {
    let mut h = H::new();
    grant(&mut h, 0, 7, 2);
    h.put_lease(2, 100, 110, "k", "v", 7);
    // Deadline 2.000s; seen missing by 1.810s: 190ms early, inside the default 500ms slack.
    h.get(3, 1800, 1810, "k", None);
    assert!(h.check().is_valid());
}

#[test]
fn keepalive_answering_alive_after_expiry_is_resurrection() {
    let mut h = H::new();
    grant(&mut h, 0, 7, 2);
    ttl(&mut h, 5000, 7, -1);
    keepalive(&mut h, 6000, 7, 2);
    let r = h.check();
    assert_eq!(lease_kinds(&r), vec![AnomalyKind::LeaseResurrected], "{r}");
    assert_eq!(r.anomalies[0].ops.len(), 2);
}

#[test]
fn keepalive_after_the_key_vanished_or_a_revoke_is_resurrection() {
    let mut h = H::new();
    grant(&mut h, 0, 7, 1);
    h.put_lease(2, 100, 110, "k", "v", 7);
    h.get(3, 3000, 3010, "k", None);
    keepalive(&mut h, 4000, 7, 1);
    let r = h.check();
    assert_eq!(lease_kinds(&r), vec![AnomalyKind::LeaseResurrected], "{r}");

    let mut h = H::new();
    grant(&mut h, 0, 7, 100);
    revoke(&mut h, 1000, 7);
    h.put_lease(2, 2000, 2010, "k", "v", 7);
    let r = h.check();
    assert_eq!(lease_kinds(&r), vec![AnomalyKind::LeaseResurrected], "{r}");
}

#[test]
fn serializable_reads_do_not_count() {
    let mut h = H::new();
    grant(&mut h, 0, 7, 10);
    h.put_lease(2, 1000, 1010, "k", "v", 7);
    h.get_serializable(3, 3000, 3010, "k", None);
    assert!(h.check().is_valid());
}
