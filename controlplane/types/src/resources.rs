//! The resources Concord serves: one static table that the registry (keys), the API server
//! (paths, discovery, OpenAPI) and the typed round trip (validation) all read.

/// A subresource served under a resource's item path (`.../pods/NAME/status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subresource {
    /// The path segment after the item's name: `status`, `scale`, `binding`, `log`, ...
    pub name: &'static str,
    /// The kind its requests and responses carry (`Scale`, `Binding`, the parent's kind, ...).
    pub kind: &'static str,
    /// The group and version of that kind when they differ from the parent's (`autoscaling`,
    /// `v1` for `scale`; `policy`, `v1` for `eviction`), else `None`.
    pub group_version: Option<(&'static str, &'static str)>,
    /// The verbs discovery lists for it.
    pub verbs: &'static [&'static str],
}

/// One resource: how it is named in paths, in discovery and in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resource {
    /// The API group (`""` for the core group).
    pub group: &'static str,
    /// The API version (`v1`).
    pub version: &'static str,
    /// The kind (`Pod`).
    pub kind: &'static str,
    /// The plural, lower-case name used in paths and store keys (`pods`).
    pub plural: &'static str,
    /// The singular name (`pod`).
    pub singular: &'static str,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// Short names for kubectl (`po`).
    pub short_names: &'static [&'static str],
    /// Categories (`all`) that `kubectl get all` expands.
    pub categories: &'static [&'static str],
    /// Subresources.
    pub subresources: &'static [Subresource],
}

/// Every verb on a full resource.
pub const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

const STATUS: Subresource = Subresource {
    name: "status",
    kind: "",
    group_version: None,
    verbs: &["get", "patch", "update"],
};

const SCALE: Subresource = Subresource {
    name: "scale",
    kind: "Scale",
    group_version: Some(("autoscaling", "v1")),
    verbs: &["get", "patch", "update"],
};

impl Resource {
    /// `group/version`, or `version` for the core group: the `apiVersion` of its objects.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `plural` for the core group, `plural.group` otherwise: how kube-apiserver names the
    /// resource in messages (`deployments.apps "web" not found`).
    pub fn qualified_plural(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// `Kind` for the core group, `Kind.group` otherwise (`Deployment.apps "web" is invalid`).
    pub fn qualified_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.to_string()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }

    /// The kind of its lists (`PodList`).
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// The subresource named `name`, if the resource has it.
    pub fn subresource(&self, name: &str) -> Option<&'static Subresource> {
        self.subresources.iter().find(|s| s.name == name)
    }
}

macro_rules! resource {
    ($group:expr, $kind:expr, $plural:expr, $singular:expr, $namespaced:expr,
     [$($short:expr),*], [$($cat:expr),*], [$($sub:expr),*]) => {
        Resource {
            group: $group,
            version: "v1",
            kind: $kind,
            plural: $plural,
            singular: $singular,
            namespaced: $namespaced,
            short_names: &[$($short),*],
            categories: &[$($cat),*],
            subresources: &[$($sub),*],
        }
    };
}

/// Every resource Concord serves, grouped by API group in discovery order.
pub static RESOURCES: &[Resource] = &[
    resource!(
        "",
        "Namespace",
        "namespaces",
        "namespace",
        false,
        ["ns"],
        [],
        [
            STATUS,
            Subresource {
                name: "finalize",
                kind: "",
                group_version: None,
                verbs: &["update"]
            }
        ]
    ),
    resource!(
        "",
        "Pod",
        "pods",
        "pod",
        true,
        ["po"],
        ["all"],
        [
            STATUS,
            Subresource {
                name: "binding",
                kind: "Binding",
                group_version: None,
                verbs: &["create"]
            },
            Subresource {
                name: "eviction",
                kind: "Eviction",
                group_version: Some(("policy", "v1")),
                verbs: &["create"]
            },
            Subresource {
                name: "log",
                kind: "Pod",
                group_version: None,
                verbs: &["get"]
            }
        ]
    ),
    resource!("", "Node", "nodes", "node", false, ["no"], [], [STATUS]),
    resource!(
        "",
        "Service",
        "services",
        "service",
        true,
        ["svc"],
        ["all"],
        [STATUS]
    ),
    resource!(
        "",
        "Endpoints",
        "endpoints",
        "endpoints",
        true,
        ["ep"],
        [],
        []
    ),
    resource!("", "Event", "events", "event", true, ["ev"], [], []),
    resource!(
        "",
        "ConfigMap",
        "configmaps",
        "configmap",
        true,
        ["cm"],
        [],
        []
    ),
    resource!("", "Secret", "secrets", "secret", true, [], [], []),
    resource!(
        "apps",
        "Deployment",
        "deployments",
        "deployment",
        true,
        ["deploy"],
        ["all"],
        [STATUS, SCALE]
    ),
    resource!(
        "apps",
        "ReplicaSet",
        "replicasets",
        "replicaset",
        true,
        ["rs"],
        ["all"],
        [STATUS, SCALE]
    ),
    resource!("batch", "Job", "jobs", "job", true, [], ["all"], [STATUS]),
    resource!(
        "batch",
        "CronJob",
        "cronjobs",
        "cronjob",
        true,
        ["cj"],
        ["all"],
        [STATUS]
    ),
    resource!(
        "discovery.k8s.io",
        "EndpointSlice",
        "endpointslices",
        "endpointslice",
        true,
        [],
        [],
        []
    ),
    resource!(
        "coordination.k8s.io",
        "Lease",
        "leases",
        "lease",
        true,
        [],
        [],
        []
    ),
    resource!(
        "scheduling.k8s.io",
        "PriorityClass",
        "priorityclasses",
        "priorityclass",
        false,
        ["pc"],
        [],
        []
    ),
];

/// The API groups, in discovery order (the core group first, as `""`).
pub fn groups() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for r in RESOURCES {
        if !out.contains(&r.group) {
            out.push(r.group);
        }
    }
    out
}

/// The resources of one group and version.
pub fn in_group_version(group: &str, version: &str) -> impl Iterator<Item = &'static Resource> {
    let group = group.to_string();
    let version = version.to_string();
    RESOURCES
        .iter()
        .filter(move |r| r.group == group && r.version == version)
}

/// The resource named `plural` in `group`/`version`.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The resource whose objects have this `apiVersion` and `kind`.
pub fn by_kind(api_version: &str, kind: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .find(|r| r.kind == kind && r.api_version() == api_version)
}

/// The namespaces that exist from the start.
pub const INITIAL_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

/// A PriorityClass the API server creates at start-up (kube-apiserver's
/// `scheduling/bootstrap-system-priority-classes` hook).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SystemPriorityClass {
    /// The class name (it carries the reserved `system-` prefix).
    pub name: &'static str,
    /// Its priority value, above every value a user class may have.
    pub value: i64,
    /// Its `description`.
    pub description: &'static str,
}

/// The prefix reserved for [`SYSTEM_PRIORITY_CLASSES`]: no other class may use it.
pub const SYSTEM_PRIORITY_CLASS_PREFIX: &str = "system-";

/// The highest value a user-defined PriorityClass may have; larger values are kept for the
/// system classes so that no user workload can outrank the cluster's own components.
pub const HIGHEST_USER_DEFINABLE_PRIORITY: i64 = 1_000_000_000;

/// The built-in PriorityClasses (`pkg/apis/scheduling/v1/helpers.go`), in the order
/// kube-apiserver lists them: validation accepts a `system-` class only when it is one of
/// these, with this value and without `globalDefault`.
pub const SYSTEM_PRIORITY_CLASSES: &[SystemPriorityClass] = &[
    SystemPriorityClass {
        name: "system-node-critical",
        value: 2 * HIGHEST_USER_DEFINABLE_PRIORITY + 1000,
        description: "Used for system critical pods that must not be moved from their current node.",
    },
    SystemPriorityClass {
        name: "system-cluster-critical",
        value: 2 * HIGHEST_USER_DEFINABLE_PRIORITY,
        description: "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.",
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plurals_are_unique_within_a_group_and_kinds_resolve_back() {
        for r in RESOURCES {
            assert_eq!(find(r.group, r.version, r.plural), Some(r));
            assert_eq!(by_kind(&r.api_version(), r.kind), Some(r));
        }
        assert_eq!(groups()[0], "");
    }

    #[test]
    fn names_in_messages_follow_kube_apiserver() {
        let d = find("apps", "v1", "deployments").expect("deployments");
        assert_eq!(d.qualified_plural(), "deployments.apps");
        assert_eq!(d.qualified_kind(), "Deployment.apps");
        assert_eq!(d.api_version(), "apps/v1");
        let p = find("", "v1", "pods").expect("pods");
        assert_eq!(p.qualified_plural(), "pods");
        assert_eq!(p.api_version(), "v1");
        assert_eq!(p.subresource("eviction").map(|s| s.kind), Some("Eviction"));
        let pc = find("scheduling.k8s.io", "v1", "priorityclasses").expect("priorityclasses");
        assert_eq!(pc.qualified_plural(), "priorityclasses.scheduling.k8s.io");
        assert_eq!(pc.qualified_kind(), "PriorityClass.scheduling.k8s.io");
        assert!(!pc.namespaced);
        assert_eq!(pc.short_names, &["pc"]);
    }

    #[test]
    fn system_priority_classes_are_kube_apiservers() {
        let values: Vec<(&str, i64)> = SYSTEM_PRIORITY_CLASSES
            .iter()
            .map(|c| (c.name, c.value))
            .collect();
        assert_eq!(
            values,
            [
                ("system-node-critical", 2_000_001_000),
                ("system-cluster-critical", 2_000_000_000)
            ]
        );
        assert!(SYSTEM_PRIORITY_CLASSES
            .iter()
            .all(|c| c.name.starts_with(SYSTEM_PRIORITY_CLASS_PREFIX)));
    }
}
