use super::*;

fn deploy(replicas: i64, surge: Value, unavailable: Value) -> Value {
    json!({
        "metadata": {"name": "web", "namespace": "ns", "generation": 2, "uid": "d1"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}},
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "nginx:2"}]}},
        },
        "status": {},
    })
}

fn rs(name: &str, created: i64, replicas: i64, available: i64) -> Value {
    json!({
        "metadata": {"name": name, "creationTimestamp": meta::format_rfc3339(created),
            "annotations": {}},
        "spec": {"replicas": replicas},
        "status": {"replicas": replicas, "readyReplicas": available,
            "availableReplicas": available},
    })
}

#[test]
fn percentages_round_surge_up_and_unavailability_down() {
    assert_eq!(scaled_value(&json!("25%"), 10, true), Some(3));
    assert_eq!(scaled_value(&json!("25%"), 10, false), Some(2));
    assert_eq!(scaled_value(&json!(4), 10, false), Some(4));
    assert_eq!(scaled_value(&json!("x"), 10, false), None);
    assert_eq!(resolve_fenceposts(&json!("25%"), &json!("25%"), 1), (1, 0));
    assert_eq!(resolve_fenceposts(&json!(0), &json!("10%"), 5), (0, 1));
    assert_eq!(resolve_fenceposts(&json!(0), &json!(0), 5), (0, 1));
    let d = deploy(10, json!("25%"), json!("25%"));
    assert_eq!((max_surge(&d), max_unavailable(&d)), (3, 2));
    let d = deploy(2, json!(0), json!(5));
    assert_eq!(max_unavailable(&d), 2, "capped at replicas");
    let mut r = deploy(3, json!(1), json!(1));
    r["spec"]["strategy"] = json!({"type": "Recreate"});
    assert_eq!((max_surge(&r), max_unavailable(&r)), (0, 0));
}

#[test]
fn hash_is_stable_and_ignores_the_hash_label_and_empties() {
    let t = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}});
    let t2 = json!({"spec": {"containers": [{"image": "i", "name": "c", "env": []}]},
        "metadata": {"labels": {"app": "web", HASH_LABEL: "zzz"}, "annotations": null}});
    assert_eq!(template_hash(&t, None), template_hash(&t2, None));
    assert!(equal_ignore_hash(&t, &t2));
    let other = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "j"}]}});
    assert_ne!(template_hash(&t, None), template_hash(&other, None));
    assert_ne!(template_hash(&t, None), template_hash(&t, Some(1)));
    let h = template_hash(&t, None);
    assert!(
        h.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)),
        "{h}"
    );
}

#[test]
fn rolling_scale_up_respects_surge() {
    let d = deploy(10, json!("25%"), json!("25%"));
    let old = rs("old", 1, 10, 10);
    let new = rs("new", 2, 0, 0);
    // 10 + 3 surge: the new RS may get 3.
    assert_eq!(new_rs_new_replicas(&d, &[&old, &new], &new, &|_| 0), 3);
    // Already at 13 pods: nothing more.
    let new3 = rs("new", 2, 3, 0);
    assert_eq!(new_rs_new_replicas(&d, &[&old, &new3], &new3, &|_| 0), 3);
    // Old shrunk to 6: up to 7, never past replicas.
    let old6 = rs("old", 1, 6, 6);
    assert_eq!(new_rs_new_replicas(&d, &[&old6, &new3], &new3, &|_| 0), 7);
    // Old scaled to 6 but its 10 pods not yet deleted: no growth until they go.
    let mut lagging = rs("old", 1, 6, 6);
    lagging["status"]["replicas"] = json!(10);
    assert_eq!(
        new_rs_new_replicas(&d, &[&lagging, &new3], &new3, &|_| 0),
        3
    );
    let old0 = rs("old", 1, 0, 0);
    let new8 = rs("new", 2, 8, 8);
    assert_eq!(new_rs_new_replicas(&d, &[&old0, &new8], &new8, &|_| 0), 10);
    // Pods the cache still shows for an old ReplicaSet count even when its spec and status
    // say fewer.
    let live = |rs: &Value| if rs == &old0 { 5 } else { 0 };
    assert_eq!(new_rs_new_replicas(&d, &[&old0, &new8], &new8, &live), 8);
    let live = |rs: &Value| if rs == &old0 { 4 } else { 0 };
    assert_eq!(new_rs_new_replicas(&d, &[&old0, &new8], &new8, &live), 9);
}

#[test]
fn rolling_scale_down_keeps_min_available_and_cleans_unhealthy_first() {
    let d = deploy(10, json!("25%"), json!("25%"));
    // 10 old available, 3 new not yet available: min available 8, so 2 old may go.
    let old = rs("old", 1, 10, 10);
    let new = rs("new", 2, 3, 0);
    let plan = plan_old_scale_down(&d, &[&old, &new], &[&old], &new);
    assert_eq!(plan, vec![("old".to_string(), 8)]);
    // New pods unavailable and already at the minimum: nothing.
    let old8 = rs("old", 1, 8, 8);
    let new5 = rs("new", 2, 5, 0);
    assert!(plan_old_scale_down(&d, &[&old8, &new5], &[&old8], &new5).is_empty());
    // An old RS with 2 unavailable pods is cleaned first, then healthy ones.
    let mut sick = rs("sick", 0, 4, 2);
    sick["status"]["readyReplicas"] = json!(2);
    let old6 = rs("old", 1, 6, 6);
    let new3 = rs("new", 2, 3, 3);
    let plan = plan_old_scale_down(&d, &[&sick, &old6, &new3], &[&sick, &old6], &new3);
    // available 11, min 8: 2 unhealthy cleaned, then 3 more (sick 2 -> 0, old 6 -> 5).
    assert_eq!(
        plan,
        vec![
            ("sick".to_string(), 2),
            ("sick".to_string(), 0),
            ("old".to_string(), 5)
        ]
    );
}

/// An old ReplicaSet scaled below the pods it still has (its controller has not deleted
/// them yet) has more available pods than its size: the cleanup must not take that for
/// unhealthy pods and scale it back up to them. (It did: the old ReplicaSet went 566 → 719
/// → 477 → 669 in the store, and the surge bound broke by up to 211 pods.)
#[test]
fn an_old_replica_set_with_more_available_pods_than_its_size_is_never_scaled_up() {
    let d = deploy(1000, json!("25%"), json!("25%"));
    let mut old = rs("old", 1, 566, 750);
    old["status"]["replicas"] = json!(750);
    let new = rs("new", 2, 500, 500);
    let plan = plan_old_scale_down(&d, &[&old, &new], &[&old], &new);
    assert!(
        plan.iter().all(|(_, size)| *size <= 566),
        "a scale-down plan grew the old ReplicaSet: {plan:?}"
    );
    // Available at most 566 + 500 (the old one counts for its size), minimum 750: 316 more
    // may go.
    assert_eq!(plan, vec![("old".to_string(), 250)]);
}

#[test]
fn proportional_scaling_mid_rollout() {
    // Deployment scaled 10 -> 20 while old has 8 and new 5 (max-replicas was 13).
    let mut d = deploy(20, json!("25%"), json!("25%"));
    d["status"]["replicas"] = json!(13);
    let mut old = rs("old", 1, 8, 8);
    let mut new = rs("new", 2, 5, 0);
    for r in [&mut old, &mut new] {
        set_replicas_annotations(r, 10, 13);
    }
    let (plan, op) = plan_proportional(&d, &[&new, &old]);
    assert_eq!(op, "up");
    // Allowed 20 + 5 = 25: 12 to add; old 8*25/13 = 15 (+7), new 5*25/13 = 10 (+5).
    assert_eq!(plan, vec![("old".to_string(), 15), ("new".to_string(), 10)]);
    // Scaling down to 5: allowed 5 + 2 = 7, 6 to remove.
    let mut d5 = deploy(5, json!("25%"), json!("25%"));
    d5["status"]["replicas"] = json!(13);
    let (plan, op) = plan_proportional(&d5, &[&new, &old]);
    assert_eq!(op, "down");
    let total: i64 = plan.iter().map(|p| p.1).sum();
    assert_eq!(total, 7, "{plan:?}");
    assert_eq!(plan[0].0, "old", "the largest first");
}

#[test]
fn revisions_bump_on_reuse_with_history() {
    let mut d = deploy(3, json!(1), json!(0));
    d["metadata"]["annotations"] = json!({"team": "a", REVISION: "4",
        "kubectl.kubernetes.io/last-applied-configuration": "{}"});
    let mut r = rs("web-1", 1, 0, 0);
    assert!(set_new_rs_annotations(&d, &mut r, 1, false));
    assert_eq!(annotation(&r, REVISION), Some("1"));
    assert_eq!(annotation(&r, "team"), Some("a"));
    assert_eq!(annotation(&r, DESIRED_REPLICAS), Some("3"));
    assert_eq!(annotation(&r, MAX_REPLICAS), Some("4"));
    assert_eq!(
        annotation(&r, "kubectl.kubernetes.io/last-applied-configuration"),
        None
    );
    // Rolled back to at revision 3, then again at 5.
    assert!(set_new_rs_annotations(&d, &mut r, 3, true));
    assert_eq!(annotation(&r, REVISION), Some("3"));
    assert_eq!(annotation(&r, REVISION_HISTORY), Some("1"));
    assert!(set_new_rs_annotations(&d, &mut r, 5, true));
    assert_eq!(annotation(&r, REVISION_HISTORY), Some("1,3"));
    // A lower revision changes nothing.
    assert!(!set_new_rs_annotations(&d, &mut r, 2, true));
    let a = rs("a", 1, 0, 0);
    assert_eq!(max_revision(&[&r, &a]), 5);
    assert!(set_deployment_revision(&mut d, "5"));
    assert!(!set_deployment_revision(&mut d, "5"));
}

#[test]
fn history_cleanup_deletes_lowest_empty_revisions_beyond_limit() {
    let mut d = deploy(3, json!(1), json!(0));
    d["spec"]["revisionHistoryLimit"] = json!(1);
    let mut a = rs("a", 1, 0, 0);
    let mut b = rs("b", 2, 0, 0);
    let mut c = rs("c", 3, 2, 2);
    for (r, n) in [(&mut a, "1"), (&mut b, "2"), (&mut c, "3")] {
        r["metadata"]["annotations"][REVISION] = json!(n);
    }
    // Three old, limit 1: the two lowest revisions, both empty.
    assert_eq!(plan_history_cleanup(&d, &[&c, &b, &a]), vec!["a", "b"]);
    // One with replicas is kept.
    let mut a2 = a.clone();
    a2["spec"]["replicas"] = json!(1);
    assert_eq!(plan_history_cleanup(&d, &[&c, &b, &a2]), vec!["b"]);
}

#[test]
fn status_and_conditions() {
    let now = 1_000_000;
    let mut d = deploy(3, json!(1), json!(0));
    let old = rs("old", 1, 1, 1);
    let new = rs("new", 2, 3, 2);
    let s = rollout_status(&d, &[&old, &new], Some(&new), now);
    assert_eq!(s["replicas"], 4);
    assert_eq!(s["updatedReplicas"], 3);
    assert_eq!(s["availableReplicas"], 3);
    assert_eq!(s["unavailableReplicas"], 1);
    assert_eq!(s["observedGeneration"], 2);
    let avail = condition(&s, "Available").unwrap();
    assert_eq!(avail["reason"], "MinimumReplicasAvailable");
    let prog = condition(&s, "Progressing").unwrap();
    assert_eq!(prog["reason"], RS_UPDATED);
    assert_eq!(prog["message"], "ReplicaSet \"new\" is progressing.");
    // Complete.
    d["status"] = s;
    let done = rs("new", 2, 3, 3);
    let s = rollout_status(&d, &[&done], Some(&done), now + 5);
    assert!(deployment_complete(&d, &s));
    assert_eq!(
        condition(&s, "Progressing").unwrap()["reason"],
        NEW_RS_AVAILABLE
    );
    assert_eq!(stuck_requeue_after(&d, &s, now + 5), None);
    // No progress past the deadline: timed out.
    let mut stuck = deploy(3, json!(1), json!(0));
    let s0 = rollout_status(&stuck, &[&old, &new], Some(&new), now);
    stuck["status"] = s0.clone();
    assert_eq!(stuck_requeue_after(&stuck, &s0, now + 100), Some(501));
    let s1 = rollout_status(&stuck, &[&old, &new], Some(&new), now + 601);
    let prog = condition(&s1, "Progressing").unwrap();
    assert_eq!(prog["status"], "False");
    assert_eq!(prog["reason"], TIMED_OUT);
    // Too few available.
    let none = rs("new", 2, 3, 0);
    let s = calculate_status(&stuck, &[&none], Some(&none), "t");
    assert_eq!(
        condition(&s, "Available").unwrap()["reason"],
        "MinimumReplicasUnavailable"
    );
    assert_eq!(
        s.get("availableReplicas"),
        None,
        "zero counters are omitted"
    );
}

#[test]
fn paused_and_resumed_conditions() {
    let mut d = deploy(3, json!(1), json!(0));
    d["spec"]["paused"] = json!(true);
    let c = paused_condition(&d, "t").unwrap();
    assert_eq!(
        (c["status"].as_str(), c["reason"].as_str()),
        (Some("Unknown"), Some(PAUSED))
    );
    set_condition(&mut d["status"], c);
    assert!(paused_condition(&d, "t").is_none());
    d["spec"]["paused"] = json!(false);
    assert_eq!(paused_condition(&d, "t").unwrap()["reason"], RESUMED);
}

#[test]
fn set_condition_keeps_transition_time_for_same_status() {
    let mut s = json!({});
    set_condition(&mut s, new_condition("Progressing", "True", "A", "m", "t1"));
    set_condition(
        &mut s,
        new_condition("Progressing", "True", "A", "m2", "t2"),
    );
    assert_eq!(
        condition(&s, "Progressing").unwrap()["message"],
        "m",
        "same reason: no-op"
    );
    set_condition(
        &mut s,
        new_condition("Progressing", "True", "B", "m3", "t3"),
    );
    let c = condition(&s, "Progressing").unwrap();
    assert_eq!(
        (
            c["lastTransitionTime"].as_str(),
            c["lastUpdateTime"].as_str()
        ),
        (Some("t1"), Some("t3"))
    );
}

#[test]
fn new_rs_is_the_oldest_with_the_template() {
    let d = deploy(3, json!(1), json!(0));
    let mut a = rs("a", 5, 1, 1);
    a["spec"]["template"] = new_rs_template(&d, "x");
    let mut b = rs("b", 3, 1, 1);
    b["spec"]["template"] = new_rs_template(&d, "y");
    let c = rs("c", 1, 1, 1);
    assert_eq!(find_new_rs(&d, &[a.clone(), b, c.clone()]), Some(1));
    assert_eq!(find_new_rs(&d, &[c]), None);
    let mut s = rs("s", 1, 3, 3);
    set_replicas_annotations(&mut s, 3, 4);
    assert!(is_saturated(&d, Some(&s)));
    s["status"]["availableReplicas"] = json!(2);
    assert!(!is_saturated(&d, Some(&s)));
    assert!(!is_saturated(&d, None));
}
