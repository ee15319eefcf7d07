//! The scheduler's configuration file: a `KubeSchedulerConfiguration`
//! (`kubescheduler.config.k8s.io/v1`) in YAML or JSON, of which Concord reads the fields
//! below. Unknown fields are refused, so a typo is not silently ignored.
//!
//! ```yaml
//! apiVersion: kubescheduler.config.k8s.io/v1
//! kind: KubeSchedulerConfiguration
//! percentageOfNodesToScore: 50          # 0: kube-scheduler's adaptive default
//! podInitialBackoffSeconds: 1
//! podMaxBackoffSeconds: 10
//! profiles:
//! - schedulerName: default-scheduler
//!   plugins:
//!     multiPoint:                        # or filter / score
//!       disabled: [{name: NodePorts}]    # "*" disables every default plugin
//!       enabled: [{name: NodeAffinity, weight: 5}]
//!   pluginConfig:
//!   - name: NodeResourcesFit
//!     args: {scoringStrategy: {type: MostAllocated}}
//! ```
//!
//! Plugins kube-scheduler has and Concord does not need (volume and image plugins,
//! SchedulingGates, PrioritySort, DefaultBinder, DefaultPreemption as a name) may be named
//! in `disabled`; naming them in `enabled` is an error, as is any other unknown plugin.

use std::time::Duration;

use serde::Deserialize;

use crate::framework::{Filter, Profile, Score};
use crate::plugins::resources::Strategy;
use crate::queue::Backoff;

/// A configuration error, with the field it is about.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// The file is not a valid configuration.
    #[error("scheduler configuration: {0}")]
    Invalid(String),
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct File {
    api_version: Option<String>,
    kind: Option<String>,
    percentage_of_nodes_to_score: Option<u32>,
    pod_initial_backoff_seconds: Option<u64>,
    pod_max_backoff_seconds: Option<u64>,
    parallelism: Option<u32>,
    leader_election: Option<serde_json::Value>,
    client_connection: Option<serde_json::Value>,
    #[serde(default)]
    profiles: Vec<ProfileFile>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ProfileFile {
    scheduler_name: Option<String>,
    percentage_of_nodes_to_score: Option<u32>,
    plugins: Option<Plugins>,
    #[serde(default)]
    plugin_config: Vec<PluginConfig>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Plugins {
    multi_point: Option<PluginSet>,
    filter: Option<PluginSet>,
    score: Option<PluginSet>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PluginSet {
    #[serde(default)]
    enabled: Vec<PluginRef>,
    #[serde(default)]
    disabled: Vec<PluginRef>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PluginRef {
    name: String,
    weight: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PluginConfig {
    name: String,
    args: Option<serde_json::Value>,
}

/// Plugins of kube-scheduler's default profile that have nothing to do here.
const KNOWN_ELSEWHERE: &[&str] = &[
    "SchedulingGates",
    "PrioritySort",
    "VolumeRestrictions",
    "EBSLimits",
    "GCEPDLimits",
    "NodeVolumeLimits",
    "AzureDiskLimits",
    "VolumeBinding",
    "VolumeZone",
    "ImageLocality",
    "DefaultBinder",
    "DynamicResources",
];

/// What the file configures.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// The profile.
    pub profile: Profile,
    /// Backoff timings.
    pub backoff: Backoff,
}

fn filter_named(name: &str) -> Option<Filter> {
    Filter::ALL.into_iter().find(|f| f.name() == name)
}

fn score_named(name: &str) -> Option<Score> {
    Score::DEFAULTS
        .into_iter()
        .map(|(s, _)| s)
        .find(|s| s.name() == name)
}

fn is_known(name: &str) -> bool {
    filter_named(name).is_some()
        || score_named(name).is_some()
        || name == "DefaultPreemption"
        || KNOWN_ELSEWHERE.contains(&name)
}

impl Config {
    /// Reads a configuration file's text (YAML, which includes JSON).
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let file: File =
            serde_norway::from_str(text).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if let Some(v) = &file.api_version {
            if v != "kubescheduler.config.k8s.io/v1" {
                return bad(format!(
                    "apiVersion {v:?} is not supported: use \"kubescheduler.config.k8s.io/v1\""
                ));
            }
        }
        if let Some(k) = &file.kind {
            if k != "KubeSchedulerConfiguration" {
                return bad(format!(
                    "kind {k:?}: expected \"KubeSchedulerConfiguration\""
                ));
            }
        }
        if file.profiles.len() > 1 {
            return bad(format!(
                "{} profiles given: concord-scheduler runs one profile per process; start one scheduler per schedulerName",
                file.profiles.len()
            ));
        }
        let mut config = Config::default();
        if let Some(p) = file.percentage_of_nodes_to_score {
            if p > 100 {
                return bad(format!(
                    "percentageOfNodesToScore: Invalid value: {p}: not in valid range [0-100]"
                ));
            }
            config.profile.percentage_of_nodes_to_score = p;
        }
        let initial = file.pod_initial_backoff_seconds.unwrap_or(1);
        let max = file.pod_max_backoff_seconds.unwrap_or(10);
        if initial == 0 || max < initial {
            return bad(format!(
                "podInitialBackoffSeconds ({initial}) must be positive and at most podMaxBackoffSeconds ({max})"
            ));
        }
        config.backoff = Backoff {
            initial: Duration::from_secs(initial),
            max: Duration::from_secs(max),
        };
        let _ = (
            &file.parallelism,
            &file.leader_election,
            &file.client_connection,
        );
        if let Some(p) = file.profiles.into_iter().next() {
            apply_profile(&mut config.profile, p)?;
        }
        Ok(config)
    }
}

fn apply_profile(profile: &mut Profile, p: ProfileFile) -> Result<(), ConfigError> {
    let bad = |m: String| Err(ConfigError::Invalid(m));
    if let Some(name) = p.scheduler_name.filter(|n| !n.is_empty()) {
        profile.scheduler_name = name;
    }
    if let Some(pct) = p.percentage_of_nodes_to_score {
        if pct > 100 {
            return bad(format!("profiles[0].percentageOfNodesToScore: Invalid value: {pct}: not in valid range [0-100]"));
        }
        profile.percentage_of_nodes_to_score = pct;
    }
    let plugins = p.plugins.unwrap_or_default();
    for (set, filters, scores) in [
        (plugins.multi_point, true, true),
        (plugins.filter, true, false),
        (plugins.score, false, true),
    ] {
        let Some(set) = set else { continue };
        for d in &set.disabled {
            if d.name == "*" {
                if filters {
                    profile.filters.clear();
                }
                if scores {
                    profile.scores.clear();
                }
                if filters && scores {
                    profile.preemption = false;
                }
                continue;
            }
            if !is_known(&d.name) {
                return bad(format!("disabled plugin {:?} does not exist", d.name));
            }
            if filters {
                profile.filters.retain(|f| f.name() != d.name);
            }
            if scores {
                profile.scores.retain(|(s, _)| s.name() != d.name);
            }
            if d.name == "DefaultPreemption" {
                profile.preemption = false;
            }
        }
        for e in &set.enabled {
            if !is_known(&e.name) {
                return bad(format!("plugin {:?} does not exist", e.name));
            }
            if KNOWN_ELSEWHERE.contains(&e.name.as_str()) {
                return bad(format!(
                    "plugin {:?} is not supported by concord-scheduler",
                    e.name
                ));
            }
            if e.name == "DefaultPreemption" {
                profile.preemption = true;
                continue;
            }
            if filters {
                if let Some(f) = filter_named(&e.name) {
                    if !profile.filters.contains(&f) {
                        // Keep kube-scheduler's order among the enabled filters.
                        profile.filters.push(f);
                        profile
                            .filters
                            .sort_by_key(|x| Filter::ALL.iter().position(|y| y == x));
                    }
                }
            }
            if scores {
                if let Some(s) = score_named(&e.name) {
                    let default = Score::DEFAULTS
                        .iter()
                        .find(|(d, _)| *d == s)
                        .map(|(_, w)| *w)
                        .unwrap_or(1);
                    let weight = e.weight.unwrap_or(default);
                    if weight <= 0 {
                        return bad(format!(
                            "plugin {:?}: weight must be positive, got {weight}",
                            e.name
                        ));
                    }
                    profile.scores.retain(|(x, _)| *x != s);
                    profile.scores.push((s, weight));
                }
            }
        }
    }
    for pc in p.plugin_config {
        match pc.name.as_str() {
            "NodeResourcesFit" => {
                let kind = pc
                    .args
                    .as_ref()
                    .and_then(|a| a["scoringStrategy"]["type"].as_str())
                    .unwrap_or("LeastAllocated");
                profile.fit_strategy = match kind {
                    "LeastAllocated" => Strategy::LeastAllocated,
                    "MostAllocated" => Strategy::MostAllocated,
                    other => {
                        return bad(format!(
                            "NodeResourcesFit scoringStrategy.type {other:?} is not supported: use LeastAllocated or MostAllocated"
                        ))
                    }
                };
            }
            name if is_known(name) => {}
            name => return bad(format!("pluginConfig for unknown plugin {name:?}")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_profile_is_kube_schedulers() {
        let c = Config::parse(
            "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\n",
        )
        .expect("valid");
        assert_eq!(c.profile.filters, Filter::ALL.to_vec());
        assert_eq!(c.profile.scores, Score::DEFAULTS.to_vec());
        assert_eq!(c.backoff.initial, Duration::from_secs(1));
    }

    #[test]
    fn a_profile_disables_enables_weights_and_picks_most_allocated() {
        let c = Config::parse(
            r#"
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
percentageOfNodesToScore: 30
podMaxBackoffSeconds: 20
profiles:
- schedulerName: packer
  plugins:
    multiPoint:
      disabled: [{name: NodePorts}, {name: ImageLocality}]
    score:
      disabled: [{name: "*"}]
      enabled: [{name: NodeResourcesFit, weight: 5}]
  pluginConfig:
  - name: NodeResourcesFit
    args: {scoringStrategy: {type: MostAllocated}}
"#,
        )
        .expect("valid");
        assert_eq!(c.profile.scheduler_name, "packer");
        assert_eq!(c.profile.percentage_of_nodes_to_score, 30);
        assert!(!c.profile.filters.contains(&Filter::NodePorts));
        assert_eq!(c.profile.scores, vec![(Score::NodeResourcesFit, 5)]);
        assert_eq!(c.profile.fit_strategy, Strategy::MostAllocated);
        assert_eq!(c.backoff.max, Duration::from_secs(20));
    }

    #[test]
    fn mistakes_are_refused_with_the_field() {
        let err = |t: &str| Config::parse(t).unwrap_err().to_string();
        assert!(
            err("percentageOfNodesToScor: 3").contains("unknown field `percentageOfNodesToScor`")
        );
        assert!(
            err("profiles: [{plugins: {filter: {enabled: [{name: Nope}]}}}]")
                .contains("plugin \"Nope\" does not exist")
        );
        assert!(
            err("profiles: [{plugins: {filter: {enabled: [{name: VolumeBinding}]}}}]")
                .contains("not supported")
        );
        assert!(err("percentageOfNodesToScore: 101").contains("not in valid range"));
        assert!(err("apiVersion: v1beta9").contains("is not supported"));
    }
}
