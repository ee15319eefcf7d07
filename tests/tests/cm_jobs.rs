//! The Job and CronJob controllers of `concord-controller-manager` on a whole control plane
//! with hollow nodes. Hollow nodes run pods but never finish them: the tests finish pods
//! themselves by writing their phase, as a kubelet would.

use std::time::{Duration, Instant};

use concord_cp_store::{Registry, Update};
use concord_cp_types::meta;
use concord_cp_types::resources::{self, Resource};
use concord_tests::component::Component;
use concord_tests::controlplane::ControlPlane;
use serde_json::{json, Value};

/// Short leader-election timings, so a restarted controller-manager leads within seconds.
const FAST_ELECTION: &[&str] = &[
    "--leader-elect-lease-duration=3s",
    "--leader-elect-renew-deadline=2s",
    "--leader-elect-retry-period=500ms",
];

fn res(group: &str, plural: &str) -> &'static Resource {
    let version = "v1";
    resources::find(group, version, plural).expect("resource")
}

fn get_json(cp: &ControlPlane, args: &[&str]) -> Value {
    let mut a = vec!["get"];
    a.extend_from_slice(args);
    a.extend_from_slice(&["-o", "json"]);
    serde_json::from_str(&cp.api.kubectl_ok(&a)).expect("kubectl JSON")
}

/// Polls `probe` every 200 ms until it returns `Some`, or panics after `timeout` with
/// `what`, the last state it saw and the controller-manager's log.
fn wait_for<T>(
    cp: &ControlPlane,
    timeout: Duration,
    what: &str,
    probe: impl FnMut() -> Result<T, String>,
) -> T {
    cp.wait_for(timeout, Duration::from_millis(200), what, probe)
}

/// The pods of Job `job` (by its `batch.kubernetes.io/job-name` label).
fn job_pods(cp: &ControlPlane, job: &str) -> Vec<Value> {
    let sel = format!("batch.kubernetes.io/job-name={job}");
    get_json(cp, &["pods", "-l", &sel])["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn phase(p: &Value) -> &str {
    p["status"]["phase"].as_str().unwrap_or("")
}

fn name(o: &Value) -> String {
    o["metadata"]["name"].as_str().unwrap_or("").to_string()
}

/// Finishes a pod as its kubelet would: phase `phase`.
fn finish_pod(cp: &ControlPlane, registry: &Registry, pod: &str, phase: &str) {
    cp.rt
        .block_on(
            registry.guaranteed_update(res("", "pods"), Some("default"), pod, |mut p| {
                p["status"]["phase"] = json!(phase);
                if let Some(conds) = p["status"]["conditions"].as_array_mut() {
                    for c in conds.iter_mut().filter(|c| c["type"] == "Ready") {
                        c["status"] = json!("False");
                    }
                }
                Ok(Update::Put(p))
            }),
        )
        .expect("finish the pod");
}

fn condition<'a>(obj: &'a Value, kind: &str) -> Option<&'a Value> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind && c["status"] == "True")
}

/// `reason: message` of the events about `kind/name`.
fn events_for(cp: &ControlPlane, name: &str) -> Vec<String> {
    let sel = format!("involvedObject.name={name}");
    get_json(cp, &["events", "--field-selector", &sel])["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|e| {
            format!(
                "{}: {}",
                e["reason"].as_str().unwrap_or(""),
                e["message"].as_str().unwrap_or("")
            )
        })
        .collect()
}

fn job_yaml(name: &str, spec_lines: &str) -> String {
    format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {name}\nspec:\n{spec_lines}  \
         template:\n    spec:\n      restartPolicy: Never\n      containers:\n      \
         - name: c\n        image: registry.k8s.io/pause:3.10\n"
    )
}

#[test]
fn a_job_runs_its_completions_with_bounded_parallelism() {
    let mut cp = ControlPlane::start(&[]);
    cp.add_named_nodes("n", 2);
    let registry = cp.registry();
    cp.api.apply_stdin(
        &job_yaml("three", "  completions: 3\n  parallelism: 2\n"),
        &[],
    );
    // Two at a time.
    let first = wait_for(&cp, Duration::from_secs(20), "two running pods", || {
        let pods = job_pods(&cp, "three");
        let running: Vec<String> = pods
            .iter()
            .filter(|p| phase(p) == "Running")
            .map(name)
            .collect();
        if running.len() == 2 && pods.len() == 2 {
            Ok(running)
        } else {
            Err(format!("{} pods, running {running:?}", pods.len()))
        }
    });
    let pod = &job_pods(&cp, "three")[0];
    let labels = &pod["metadata"]["labels"];
    assert_eq!(labels["job-name"], "three");
    assert!(labels["batch.kubernetes.io/controller-uid"].is_string());
    assert_eq!(
        pod["metadata"]["finalizers"],
        json!(["batch.kubernetes.io/job-tracking"])
    );
    for p in &first {
        finish_pod(&cp, &registry, p, "Succeeded");
    }
    // One more pod for the last completion, and no more than that.
    let third = wait_for(&cp, Duration::from_secs(20), "the third pod", || {
        let pods = job_pods(&cp, "three");
        let others: Vec<String> = pods
            .iter()
            .map(name)
            .filter(|n| !first.contains(n))
            .collect();
        let job = get_json(&cp, &["job", "three"]);
        match (others.as_slice(), job["status"]["succeeded"].as_i64()) {
            ([one], Some(2)) => Ok(one.clone()),
            _ => Err(format!("new pods {others:?}; status {}", job["status"])),
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        job_pods(&cp, "three").len(),
        3,
        "one pod per missing completion"
    );
    finish_pod(&cp, &registry, &third, "Succeeded");
    let job = wait_for(
        &cp,
        Duration::from_secs(20),
        "the Complete condition",
        || {
            let job = get_json(&cp, &["job", "three"]);
            if condition(&job, "Complete").is_some() {
                Ok(job)
            } else {
                Err(job["status"].to_string())
            }
        },
    );
    let st = &job["status"];
    assert_eq!(st["succeeded"], 3, "{st}");
    assert!(st["failed"].is_null() || st["failed"] == 0, "{st}");
    assert!(st["active"].is_null() || st["active"] == 0, "{st}");
    assert!(st["completionTime"].is_string(), "{st}");
    assert!(st["startTime"].is_string(), "{st}");
    assert_eq!(
        condition(&job, "SuccessCriteriaMet").map(|c| c["reason"].clone()),
        Some(json!("CompletionsReached")),
        "{st}"
    );
    assert_eq!(
        condition(&job, "Complete").unwrap()["reason"],
        "CompletionsReached"
    );
    // The counted pods lost their tracking finalizer.
    wait_for(&cp, Duration::from_secs(10), "finalizers removed", || {
        let held: Vec<String> = job_pods(&cp, "three")
            .iter()
            .filter(|p| !p["metadata"]["finalizers"].is_null())
            .map(name)
            .collect();
        if held.is_empty() {
            Ok(())
        } else {
            Err(format!("{held:?}"))
        }
    });
    let events = wait_for(&cp, Duration::from_secs(10), "the events", || {
        let ev = events_for(&cp, "three");
        if ev.iter().any(|e| e == "Completed: Job completed") {
            Ok(ev)
        } else {
            Err(format!("{ev:?}"))
        }
    });
    let creates = events
        .iter()
        .filter(|e| e.starts_with("SuccessfulCreate: Created pod: three-"))
        .count();
    assert_eq!(creates, 3, "{events:?}");
}

#[test]
fn failing_pods_reach_the_backoff_limit_after_a_backoff() {
    let mut cp = ControlPlane::start(&[]);
    cp.add_named_nodes("n", 1);
    let registry = cp.registry();
    cp.api
        .apply_stdin(&job_yaml("flaky", "  backoffLimit: 1\n"), &[]);
    let mut failed_at: Vec<Instant> = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for round in 0..2 {
        let pod = wait_for(&cp, Duration::from_secs(30), "a new pod", || {
            job_pods(&cp, "flaky")
                .iter()
                .map(name)
                .find(|n| !seen.contains(n))
                .ok_or_else(|| format!("round {round}: pods {seen:?}"))
        });
        if round == 1 {
            // The replacement waited for the pod-failure backoff (10 s after the failure).
            let waited = failed_at[0].elapsed();
            assert!(
                waited >= Duration::from_secs(8),
                "replaced after {waited:?}"
            );
        }
        finish_pod(&cp, &registry, &pod, "Failed");
        failed_at.push(Instant::now());
        seen.push(pod);
    }
    let job = wait_for(&cp, Duration::from_secs(20), "the Failed condition", || {
        let job = get_json(&cp, &["job", "flaky"]);
        if condition(&job, "Failed").is_some() {
            Ok(job)
        } else {
            Err(job["status"].to_string())
        }
    });
    let st = &job["status"];
    assert_eq!(st["failed"], 2, "{st}");
    assert_eq!(
        condition(&job, "Failed").unwrap()["reason"],
        "BackoffLimitExceeded"
    );
    assert_eq!(
        condition(&job, "FailureTarget").map(|c| c["message"].clone()),
        Some(json!("Job has reached the specified backoff limit"))
    );
    assert!(condition(&job, "Complete").is_none());
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(job_pods(&cp, "flaky").len(), 2, "no pod after the limit");
    wait_for(&cp, Duration::from_secs(10), "the warning event", || {
        let ev = events_for(&cp, "flaky");
        if ev
            .iter()
            .any(|e| e == "BackoffLimitExceeded: Job has reached the specified backoff limit")
        {
            Ok(())
        } else {
            Err(format!("{ev:?}"))
        }
    });
}

#[test]
fn an_active_deadline_fails_the_job_and_stops_its_pods_then_ttl_deletes_it() {
    let mut cp = ControlPlane::start(&[]);
    cp.add_named_nodes("n", 2);
    cp.api.apply_stdin(
        &job_yaml(
            "slow",
            "  parallelism: 2\n  completions: 4\n  activeDeadlineSeconds: 3\n  ttlSecondsAfterFinished: 4\n",
        ),
        &[],
    );
    wait_for(&cp, Duration::from_secs(20), "two running pods", || {
        let n = job_pods(&cp, "slow")
            .iter()
            .filter(|p| phase(p) == "Running")
            .count();
        if n == 2 {
            Ok(())
        } else {
            Err(format!("{n} running"))
        }
    });
    let job = wait_for(&cp, Duration::from_secs(20), "the Failed condition", || {
        let job = get_json(&cp, &["job", "slow"]);
        if condition(&job, "Failed").is_some() {
            Ok(job)
        } else {
            Err(job["status"].to_string())
        }
    });
    let failed = condition(&job, "Failed").unwrap();
    assert_eq!(failed["reason"], "DeadlineExceeded");
    assert_eq!(
        failed["message"],
        "Job was active longer than specified deadline"
    );
    let start = meta::parse_rfc3339(job["status"]["startTime"].as_str().unwrap()).unwrap();
    let at = meta::parse_rfc3339(failed["lastTransitionTime"].as_str().unwrap()).unwrap();
    assert!(at - start >= 3, "failed {}s after the start", at - start);
    assert_eq!(job["status"]["failed"], 2, "{}", job["status"]);
    // The pods were stopped and are gone.
    wait_for(&cp, Duration::from_secs(20), "the pods gone", || {
        let pods = job_pods(&cp, "slow");
        if pods.is_empty() {
            Ok(())
        } else {
            Err(format!("{:?}", pods.iter().map(name).collect::<Vec<_>>()))
        }
    });
    // ttlSecondsAfterFinished: the Job itself goes 4 s after it failed.
    wait_for(
        &cp,
        Duration::from_secs(20),
        "the Job deleted by its TTL",
        || {
            let out = cp.api.kubectl(&["get", "job", "slow", "-o", "name"]);
            if String::from_utf8_lossy(&out.stderr).contains("NotFound") {
                Ok(())
            } else {
                Err(String::from_utf8_lossy(&out.stdout).to_string())
            }
        },
    );
    let ev = events_for(&cp, "slow");
    assert!(
        ev.iter()
            .any(|e| e.starts_with("SuccessfulDelete: Deleted pod: slow-")),
        "{ev:?}"
    );
}

fn cronjob_yaml(name: &str, schedule: &str, extra: &str) -> String {
    format!(
        "apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: {name}\nspec:\n  schedule: \"{schedule}\"\n{extra}  \
         jobTemplate:\n    metadata:\n      labels: {{team: batch}}\n    spec:\n      template:\n        spec:\n          \
         restartPolicy: Never\n          containers:\n          - name: c\n            image: registry.k8s.io/pause:3.10\n"
    )
}

/// Sets a CronJob's `status.lastScheduleTime`, as if it had last run at `t`.
fn set_last_schedule(cp: &ControlPlane, registry: &Registry, cj: &str, t: i64) {
    cp.rt
        .block_on(registry.guaranteed_update(
            res("batch", "cronjobs"),
            Some("default"),
            cj,
            |mut o| {
                o["status"]["lastScheduleTime"] = json!(meta::format_rfc3339(t));
                Ok(Update::Put(o))
            },
        ))
        .expect("write lastScheduleTime");
}

/// Waits until at least `margin` is left in the current hour, so an hourly schedule does
/// not fire during the test; returns the start of the hour (Unix seconds).
fn hour_with_margin(margin: i64) -> i64 {
    loop {
        let now = meta::unix_now();
        let left = 3600 - now.rem_euclid(3600);
        if left > margin {
            return now - now.rem_euclid(3600);
        }
        std::thread::sleep(Duration::from_secs(left as u64 + 1));
    }
}

fn cronjob_jobs(cp: &ControlPlane) -> Vec<Value> {
    get_json(cp, &["jobs", "-l", "team=batch"])["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn a_missed_cronjob_run_starts_at_once_and_its_completion_is_recorded() {
    let mut cp = ControlPlane::start(&[]);
    cp.add_named_nodes("n", 1);
    let registry = cp.registry();
    let hour = hour_with_margin(90);
    cp.api
        .apply_stdin(&cronjob_yaml("hourly", "0 * * * *", ""), &[]);
    std::thread::sleep(Duration::from_secs(1));
    assert!(cronjob_jobs(&cp).is_empty(), "nothing is due yet");
    // It last ran three hours ago: the runs since were missed; only the latest starts.
    set_last_schedule(&cp, &registry, "hourly", hour - 3 * 3600);
    let want = format!("hourly-{}", hour / 60);
    let job = wait_for(&cp, Duration::from_secs(20), "the missed run's Job", || {
        let jobs = cronjob_jobs(&cp);
        match jobs.as_slice() {
            [j] => Ok(j.clone()),
            _ => Err(format!("{:?}", jobs.iter().map(name).collect::<Vec<_>>())),
        }
    });
    assert_eq!(name(&job), want);
    assert_eq!(
        job["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"],
        meta::format_rfc3339(hour)
    );
    assert_eq!(job["metadata"]["ownerReferences"][0]["kind"], "CronJob");
    let cj = wait_for(&cp, Duration::from_secs(10), "the status", || {
        let cj = get_json(&cp, &["cronjob", "hourly"]);
        if cj["status"]["active"][0]["name"] == want.as_str() {
            Ok(cj)
        } else {
            Err(cj["status"].to_string())
        }
    });
    assert_eq!(cj["status"]["lastScheduleTime"], meta::format_rfc3339(hour));
    // Run the Job to completion.
    let pod = wait_for(&cp, Duration::from_secs(20), "the Job's pod", || {
        job_pods(&cp, &want)
            .first()
            .map(name)
            .ok_or_else(|| "no pod".to_string())
    });
    finish_pod(&cp, &registry, &pod, "Succeeded");
    let cj = wait_for(
        &cp,
        Duration::from_secs(20),
        "the completion recorded",
        || {
            let cj = get_json(&cp, &["cronjob", "hourly"]);
            if cj["status"]["lastSuccessfulTime"].is_string() && cj["status"]["active"].is_null() {
                Ok(cj)
            } else {
                Err(cj["status"].to_string())
            }
        },
    );
    assert_eq!(cj["status"]["lastScheduleTime"], meta::format_rfc3339(hour));
    let ev = events_for(&cp, "hourly");
    assert!(
        ev.contains(&format!("SuccessfulCreate: Created job {want}")),
        "{ev:?}"
    );
    wait_for(&cp, Duration::from_secs(10), "SawCompletedJob", || {
        let ev = events_for(&cp, "hourly");
        let saw = format!("SawCompletedJob: Saw completed job: {want}, condition: Complete");
        if ev.contains(&saw) {
            Ok(())
        } else {
            Err(format!("{ev:?}"))
        }
    });
    assert_eq!(cronjob_jobs(&cp).len(), 1, "one run only");
}

#[test]
fn a_run_missed_while_the_controller_manager_was_down_starts_exactly_once() {
    let mut cp = ControlPlane::start(FAST_ELECTION);
    let registry = cp.registry();
    let hour = hour_with_margin(120);
    cp.controller_manager.kill();
    // Created while no controller-manager runs; it last ran five hours ago.
    cp.api.apply_stdin(
        &cronjob_yaml(
            "nightly",
            "0 * * * *",
            "  concurrencyPolicy: Forbid\n  timeZone: Etc/UTC\n",
        ),
        &[],
    );
    set_last_schedule(&cp, &registry, "nightly", hour - 5 * 3600);
    let etcd = cp.api.etcd.endpoint();
    let mut cm = Component::controller_manager(&etcd, cp.api.dir(), "cm2", FAST_ELECTION);
    let want = format!("nightly-{}", hour / 60);
    wait_for(&cp, Duration::from_secs(30), "the missed run's Job", || {
        let jobs: Vec<String> = cronjob_jobs(&cp).iter().map(name).collect();
        if jobs == [want.clone()] {
            Ok(())
        } else {
            Err(format!("{jobs:?}; cm2 log:\n{}", cm.log_tail()))
        }
    });
    let cj = wait_for(&cp, Duration::from_secs(10), "the status", || {
        let cj = get_json(&cp, &["cronjob", "nightly"]);
        if cj["status"]["lastScheduleTime"] == meta::format_rfc3339(hour) {
            Ok(cj)
        } else {
            Err(cj["status"].to_string())
        }
    });
    assert_eq!(cj["status"]["active"][0]["name"], want.as_str());
    // Another restart starts nothing more.
    cm.kill();
    let cm3 = Component::controller_manager(&etcd, cp.api.dir(), "cm3", FAST_ELECTION);
    let deadline = Instant::now() + Duration::from_secs(15);
    while !cm3.is_leader() {
        assert!(
            Instant::now() < deadline,
            "cm3 never led:\n{}",
            cm3.log_tail()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(3));
    let jobs: Vec<String> = cronjob_jobs(&cp).iter().map(name).collect();
    assert_eq!(
        jobs,
        std::slice::from_ref(&want),
        "cm3 log:\n{}",
        cm3.log_tail()
    );
    let ev = events_for(&cp, "nightly");
    let creates = ev
        .iter()
        .filter(|e| e.starts_with("SuccessfulCreate"))
        .count();
    assert_eq!(creates, 1, "{ev:?}");
}

#[test]
fn forbid_waits_replace_replaces_and_the_history_limit_deletes_finished_jobs() {
    let cp = ControlPlane::start(&[]);
    let registry = cp.registry();
    // Two past minutes of this hour, m0 < m1, with time left before the hour ends.
    let (hour, m0, m1) = loop {
        let hour = hour_with_margin(120);
        let minute = (meta::unix_now() - hour) / 60;
        if minute >= 2 {
            break (hour, minute - 2, minute - 1);
        }
        std::thread::sleep(Duration::from_secs(20));
    };
    cp.api.apply_stdin(
        &cronjob_yaml(
            "rep",
            &format!("{m0} * * * *"),
            "  concurrencyPolicy: Forbid\n  successfulJobsHistoryLimit: 0\n",
        ),
        &[],
    );
    set_last_schedule(&cp, &registry, "rep", hour - 3 * 3600);
    let first = format!("rep-{}", (hour + m0 * 60) / 60);
    let second = format!("rep-{}", (hour + m1 * 60) / 60);
    let names = || -> Vec<String> { cronjob_jobs(&cp).iter().map(name).collect() };
    wait_for(&cp, Duration::from_secs(20), "the first run", || {
        let n = names();
        if n == [first.clone()] {
            Ok(())
        } else {
            Err(format!("{n:?}"))
        }
    });
    // A later time is due while the first Job runs: Forbid waits.
    let patch = format!("{{\"spec\":{{\"schedule\":\"{m0},{m1} * * * *\"}}}}");
    cp.api
        .kubectl_ok(&["patch", "cronjob", "rep", "--type=merge", "-p", &patch]);
    wait_for(&cp, Duration::from_secs(20), "JobAlreadyActive", || {
        let ev = events_for(&cp, "rep");
        let want = "JobAlreadyActive: Not starting job because prior execution is running and concurrency policy is Forbid";
        if ev.iter().any(|e| e == want) {
            Ok(())
        } else {
            Err(format!("{ev:?}"))
        }
    });
    assert_eq!(
        names(),
        std::slice::from_ref(&first),
        "Forbid started nothing"
    );
    // Replace: the running Job goes, the due one starts.
    cp.api.kubectl_ok(&[
        "patch",
        "cronjob",
        "rep",
        "--type=merge",
        "-p",
        "{\"spec\":{\"concurrencyPolicy\":\"Replace\"}}",
    ]);
    wait_for(&cp, Duration::from_secs(20), "the replacement", || {
        let n = names();
        if n == [second.clone()] {
            Ok(())
        } else {
            Err(format!("{n:?}"))
        }
    });
    let ev = events_for(&cp, "rep");
    assert!(
        ev.contains(&format!("SuccessfulDelete: Deleted job {first}")),
        "{ev:?}"
    );
    // The second Job completes; with a history limit of 0 it is deleted.
    let pod = wait_for(&cp, Duration::from_secs(20), "the second Job's pod", || {
        job_pods(&cp, &second)
            .first()
            .map(name)
            .ok_or_else(|| "no pod".to_string())
    });
    finish_pod(&cp, &registry, &pod, "Succeeded");
    wait_for(
        &cp,
        Duration::from_secs(20),
        "the finished Job deleted",
        || {
            let n = names();
            let cj = get_json(&cp, &["cronjob", "rep"]);
            if n.is_empty() && cj["status"]["lastSuccessfulTime"].is_string() {
                Ok(())
            } else {
                Err(format!("{n:?}; {}", cj["status"]))
            }
        },
    );
    let ev = events_for(&cp, "rep");
    assert!(
        ev.contains(&format!("SuccessfulDelete: Deleted job {second}")),
        "{ev:?}"
    );
}

#[test]
fn a_suspended_job_starts_no_pods_until_resumed() {
    let cp = ControlPlane::start(&[]);
    cp.api.apply_stdin(
        &job_yaml(
            "later",
            "  suspend: true\n  parallelism: 2\n  completions: 2\n",
        ),
        &[],
    );
    wait_for(
        &cp,
        Duration::from_secs(20),
        "the Suspended condition",
        || {
            let job = get_json(&cp, &["job", "later"]);
            match condition(&job, "Suspended") {
                Some(c) if c["reason"] == "JobSuspended" => Ok(()),
                _ => Err(job["status"].to_string()),
            }
        },
    );
    std::thread::sleep(Duration::from_secs(1));
    assert!(job_pods(&cp, "later").is_empty(), "pods of a suspended Job");
    let job = get_json(&cp, &["job", "later"]);
    assert!(job["status"]["startTime"].is_null(), "{}", job["status"]);
    cp.api.kubectl_ok(&[
        "patch",
        "job",
        "later",
        "--type=merge",
        "-p",
        "{\"spec\":{\"suspend\":false}}",
    ]);
    let job = wait_for(
        &cp,
        Duration::from_secs(20),
        "two pods after resuming",
        || {
            let job = get_json(&cp, &["job", "later"]);
            let n = job_pods(&cp, "later").len();
            if n == 2 && job["status"]["active"] == 2 {
                Ok(job)
            } else {
                Err(format!("{n} pods; {}", job["status"]))
            }
        },
    );
    assert!(job["status"]["startTime"].is_string(), "{}", job["status"]);
    assert!(condition(&job, "Suspended").is_none(), "{}", job["status"]);
    let ev = events_for(&cp, "later");
    assert!(
        ev.contains(&"Suspended: Job suspended".to_string()),
        "{ev:?}"
    );
    assert!(ev.contains(&"Resumed: Job resumed".to_string()), "{ev:?}");
}
