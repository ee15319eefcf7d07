//! Per-container cgroups: how a container's memory and CPU limits are enforced.
//!
//! The agent gives each container instance its own cgroup, sets the container's
//! `resources.limits` on it, and the shim moves the container's process into it before the
//! program starts. What the machine allows decides the [`Mode`] (chosen at start-up and
//! logged; see [`Cgroups::describe`]):
//!
//! - **cgroup v2** ([`Mode::V2`]): the unified hierarchy (at `/sys/fs/cgroup`, or
//!   `/sys/fs/cgroup/unified` on a hybrid machine), when its `memory` and `cpu` controllers can
//!   be enabled for the agent's cgroups. A memory limit is `memory.max`, with `memory.swap.max`
//!   0 (containers do not swap, as with the kubelet's default) and `memory.oom.group` 1 (the OOM
//!   killer kills the whole container); a CPU limit is `cpu.max`.
//! - **cgroup v1** ([`Mode::V1`]): otherwise, the `memory` and `cpu` hierarchies
//!   (`/sys/fs/cgroup/memory`, `/sys/fs/cgroup/cpu` or `cpu,cpuacct`) when they are writable. A
//!   memory limit is `memory.limit_in_bytes`, and `memory.memsw.limit_in_bytes` (memory plus
//!   swap) when the kernel accounts swap, so swapping does not hide a container going over its
//!   limit; a CPU limit is `cpu.cfs_period_us`/`cpu.cfs_quota_us`.
//! - **none** ([`Mode::None`]): with `--cgroups-per-qos=false`, or when neither is usable (the
//!   agent is not root, or runs where the hierarchies are read-only). Containers run without
//!   limits.
//!
//! A CPU limit of `m` millicores is a quota of `m × 100000 / 1000` µs per 100000 µs period (at
//! least 1000 µs), as Kubernetes converts it. A container whose memory goes over its limit is
//! killed by the kernel's OOM killer; the agent reports it as `OOMKilled`.
//!
//! Layout, in each hierarchy used: `<hierarchy>/<cgroup-root>/pod<pod-uid>/<container>`, where
//! `<cgroup-root>` is `--cgroup-root` (a path under the hierarchy's root, like the kubelet's
//! flag). Only the container cgroups hold processes. A container's cgroup is made afresh for
//! each instance (what an earlier instance left is killed), so its counters (and its OOM kill
//! count) are its own.
//!
//! All functions do blocking file I/O: async code calls them in `spawn_blocking`. They never
//! panic; [`Cgroups::create`] returns errors, the others log them at debug level.
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// What the machine allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// cgroup v2 with the memory and cpu controllers.
    V2,
    /// cgroup v1 memory and cpu hierarchies.
    V1,
    /// None: limits are not enforced.
    None,
}

/// The cgroup manager of one agent.
#[derive(Debug, Clone)]
pub struct Cgroups {
    /// What is in use.
    pub mode: Mode,
    /// `<hierarchy>/<cgroup-root>` in each hierarchy used (v2: one; v1: memory, then cpu).
    roots: Vec<PathBuf>,
}

impl Default for Cgroups {
    fn default() -> Cgroups {
        Cgroups::disabled()
    }
}

/// A container instance's cgroup(s).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerCgroup {
    /// The `cgroup.procs` files its processes join.
    pub procs: Vec<PathBuf>,
}

impl ContainerCgroup {
    /// The cgroup directories (those of [`procs`](Self::procs)).
    pub fn dirs(&self) -> Vec<PathBuf> {
        self.procs
            .iter()
            .filter_map(|p| p.parent().map(Path::to_path_buf))
            .collect()
    }
}

/// The CPU period, in µs.
pub const CPU_PERIOD_US: u64 = 100_000;
/// The smallest CPU quota, in µs.
pub const MIN_CPU_QUOTA_US: u64 = 1_000;
/// The largest CPU quota the kernel takes, in µs (2^44 - 1).
const MAX_CPU_QUOTA_US: u64 = (1 << 44) - 1;
/// How long [`Cgroups::remove`] keeps killing before it gives up.
const REMOVE_TIMEOUT: Duration = Duration::from_secs(2);

/// The CFS quota (µs per [`CPU_PERIOD_US`]) of a CPU limit in millicores, as Kubernetes
/// converts it: `millis × period / 1000`, at least [`MIN_CPU_QUOTA_US`].
pub fn cpu_quota_us(millis: u64) -> u64 {
    (millis.saturating_mul(CPU_PERIOD_US) / 1000).max(MIN_CPU_QUOTA_US)
}

/// A cgroup mount of `/proc/self/mountinfo`.
#[derive(Debug)]
struct Mount {
    point: PathBuf,
    v2: bool,
    options: Vec<String>,
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            let oct = &field[i + 1..i + 4];
            if let Ok(v) = u8::from_str_radix(oct, 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn cgroup_mounts() -> Vec<Mount> {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut mounts = Vec::new();
    for line in text.lines() {
        // id parent major:minor root mount-point options [optional...] - fstype source super
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(dash) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        let (Some(point), Some(fstype), Some(sup)) =
            (fields.get(4), fields.get(dash + 1), fields.get(dash + 3))
        else {
            continue;
        };
        let v2 = match *fstype {
            "cgroup2" => true,
            "cgroup" => false,
            _ => continue,
        };
        mounts.push(Mount {
            point: PathBuf::from(unescape(point)),
            v2,
            options: sup.split(',').map(str::to_string).collect(),
        });
    }
    mounts
}

/// The components of `--cgroup-root`, if it is a plain relative path.
fn root_components(root_name: &str) -> Option<Vec<String>> {
    let parts: Vec<String> = root_name
        .split('/')
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect();
    let ok = !parts.is_empty()
        && parts.iter().all(|p| {
            p != "." && p != ".." && !p.starts_with("cgroup.") && !p.contains(['\0', '\n'])
        });
    ok.then_some(parts)
}

/// Whether `name` can be one cgroup directory name of ours (a pod uid or a container name).
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn invalid_input(what: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        format!("{what} cannot be a cgroup name"),
    )
}

/// Writes `value` to the cgroup file `file` (one write, as the kernel wants).
fn write_file(file: &Path, value: &str) -> std::io::Result<()> {
    std::fs::write(file, value)
        .map_err(|e| std::io::Error::new(e.kind(), format!("writing {}: {e}", file.display())))
}

fn mkdir(dir: &Path) -> std::io::Result<()> {
    match std::fs::create_dir(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(std::io::Error::new(
            e.kind(),
            format!("creating {}: {e}", dir.display()),
        )),
        _ => Ok(()),
    }
}

/// Enables the memory and cpu controllers for the children of v2 cgroup `dir`.
fn enable_controllers(dir: &Path) -> std::io::Result<()> {
    let file = dir.join("cgroup.subtree_control");
    let current = std::fs::read_to_string(&file).unwrap_or_default();
    let has = |c: &str| current.split_whitespace().any(|x| x == c);
    if has("memory") && has("cpu") {
        return Ok(());
    }
    write_file(&file, "+memory +cpu")
}

/// The value of `key` in a flat keyed cgroup file (`key value` lines).
fn keyed_value(file: &Path, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().find_map(|line| {
        let mut it = line.split_whitespace();
        (it.next() == Some(key))
            .then(|| it.next()?.parse().ok())
            .flatten()
    })
}

fn read_pids(procs: &Path) -> Vec<i32> {
    std::fs::read_to_string(procs)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

impl Cgroups {
    /// No cgroups ([`Mode::None`]).
    pub fn disabled() -> Cgroups {
        Cgroups {
            mode: Mode::None,
            roots: Vec::new(),
        }
    }

    /// Detects what the machine allows under `root_name` (`--cgroup-root`); `enabled=false`
    /// forces [`Mode::None`]. Creates `<hierarchy>/<root_name>` in the hierarchies it picks.
    pub fn detect(root_name: &str, enabled: bool) -> Cgroups {
        if !enabled {
            return Cgroups::disabled();
        }
        let Some(parts) = root_components(root_name) else {
            tracing::warn!("the cgroup root is not a relative path of plain names: cgroups off");
            return Cgroups::disabled();
        };
        let mounts = cgroup_mounts();
        if let Some(c) = Self::try_v2(&mounts, &parts) {
            return c;
        }
        if let Some(c) = Self::try_v1(&mounts, &parts) {
            return c;
        }
        tracing::debug!("neither cgroup v2 nor v1 memory and cpu are usable: cgroups off");
        Cgroups::disabled()
    }

    fn try_v2(mounts: &[Mount], parts: &[String]) -> Option<Cgroups> {
        let mut candidates: Vec<&Mount> = mounts.iter().filter(|m| m.v2).collect();
        let rank = |m: &&Mount| match m.point.to_str() {
            Some("/sys/fs/cgroup") => 0,
            Some("/sys/fs/cgroup/unified") => 1,
            _ => 2,
        };
        candidates.sort_by_key(rank);
        for m in candidates {
            let controllers =
                std::fs::read_to_string(m.point.join("cgroup.controllers")).unwrap_or_default();
            let has = |c: &str| controllers.split_whitespace().any(|x| x == c);
            if !(has("memory") && has("cpu")) {
                tracing::debug!("cgroup v2: the memory and cpu controllers are not available");
                continue;
            }
            // Each level down to <root> hands memory and cpu to its children (the root of
            // the hierarchy is exempt from the no-internal-processes rule; ours hold none).
            let mut dir = m.point.clone();
            let mut created = Vec::new();
            let mut result = enable_controllers(&dir);
            for p in parts {
                if result.is_err() {
                    break;
                }
                dir.push(p);
                if !dir.exists() {
                    result = mkdir(&dir);
                    if result.is_ok() {
                        created.push(dir.clone());
                    }
                }
                if result.is_ok() {
                    result = enable_controllers(&dir);
                }
            }
            match result {
                Ok(()) => {
                    return Some(Cgroups {
                        mode: Mode::V2,
                        roots: vec![dir],
                    })
                }
                Err(e) => {
                    tracing::debug!(
                        error = %e.kind(),
                        "cgroup v2: cannot enable the memory and cpu controllers"
                    );
                    for d in created.iter().rev() {
                        let _ = std::fs::remove_dir(d);
                    }
                }
            }
        }
        None
    }

    fn try_v1(mounts: &[Mount], parts: &[String]) -> Option<Cgroups> {
        let find = |controller: &str| {
            mounts
                .iter()
                .find(|m| !m.v2 && m.options.iter().any(|o| o == controller))
        };
        let (Some(memory), Some(cpu)) = (find("memory"), find("cpu")) else {
            tracing::debug!("cgroup v1: no memory or no cpu hierarchy");
            return None;
        };
        let mut roots = vec![memory.point.clone()];
        if cpu.point != memory.point {
            roots.push(cpu.point.clone());
        }
        for root in &mut roots {
            for p in parts {
                root.push(p);
            }
            if let Err(e) = std::fs::create_dir_all(&*root) {
                tracing::debug!(error = %e.kind(), "cgroup v1: cannot create the cgroup root");
                return None;
            }
        }
        let has = |file: &str| roots.iter().any(|r| r.join(file).exists());
        if !has("memory.limit_in_bytes") || !has("cpu.cfs_quota_us") {
            tracing::debug!("cgroup v1: no memory limit or no CFS quota files");
            return None;
        }
        Some(Cgroups {
            mode: Mode::V1,
            roots,
        })
    }

    /// What the mode means, for the start-up log and people.
    pub fn describe(&self) -> String {
        let dirs = self
            .roots
            .iter()
            .map(|r| r.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        match self.mode {
            Mode::V2 => format!(
                "cgroup v2 under {dirs}: memory limits (memory.max, no swap) and CPU limits \
                 (cpu.max) are enforced; a container over its memory limit is OOM-killed"
            ),
            Mode::V1 => format!(
                "cgroup v1 under {dirs}: memory limits (memory.limit_in_bytes, and \
                 memory.memsw.limit_in_bytes when swap is accounted) and CPU limits \
                 (cpu.cfs_quota_us) are enforced; a container over its memory limit is \
                 OOM-killed"
            ),
            Mode::None => "no cgroups: memory and CPU limits are not enforced (cgroups are off, \
                           or the machine allows neither cgroup v2 with the memory and cpu \
                           controllers nor writable cgroup v1 memory and cpu hierarchies; the \
                           agent must run as root)"
                .to_string(),
        }
    }

    /// The cgroup of container `container` of pod `pod_uid`, whether or not it exists (for
    /// an agent that finds its containers again after a restart).
    pub fn container(&self, pod_uid: &str, container: &str) -> ContainerCgroup {
        ContainerCgroup {
            procs: self
                .roots
                .iter()
                .map(|r| {
                    r.join(format!("pod{pod_uid}"))
                        .join(container)
                        .join("cgroup.procs")
                })
                .collect(),
        }
    }

    /// The uids of the pods that have cgroups (for removing those of pods that are gone).
    pub fn pod_uids(&self) -> Vec<String> {
        let mut uids = std::collections::BTreeSet::new();
        for root in &self.roots {
            let Ok(rd) = std::fs::read_dir(root) else {
                continue;
            };
            for e in rd.filter_map(Result::ok) {
                if let Some(uid) = e.file_name().to_str().and_then(|n| n.strip_prefix("pod")) {
                    if valid_name(uid) && e.path().is_dir() {
                        uids.insert(uid.to_string());
                    }
                }
            }
        }
        uids.into_iter().collect()
    }

    /// Creates the cgroup of container `container` of pod `pod_uid` with the given limits
    /// (bytes; millicores; `None` or 0: no limit), afresh: what an earlier instance left there
    /// is killed. Returns the `cgroup.procs` files the container's process joins (none in
    /// [`Mode::None`]).
    pub fn create(
        &self,
        pod_uid: &str,
        container: &str,
        memory_limit: Option<u64>,
        cpu_limit_millis: Option<u64>,
    ) -> std::io::Result<ContainerCgroup> {
        if self.mode == Mode::None {
            return Ok(ContainerCgroup::default());
        }
        if !valid_name(pod_uid) {
            return Err(invalid_input("the pod uid"));
        }
        if !valid_name(container) {
            return Err(invalid_input("the container name"));
        }
        let cg = self.container(pod_uid, container);
        let dirs = cg.dirs();
        // An earlier instance's cgroup: kill what is left, and start from zero.
        let existing: Vec<PathBuf> = dirs.iter().filter(|d| d.exists()).cloned().collect();
        if !existing.is_empty() && !kill_and_rmdir(&existing, Instant::now() + REMOVE_TIMEOUT) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::ResourceBusy,
                "the container's previous cgroup could not be emptied",
            ));
        }
        let made = self.make(&dirs, memory_limit.filter(|&m| m > 0), cpu_limit_millis);
        if let Err(e) = made {
            kill_and_rmdir(&dirs, Instant::now() + REMOVE_TIMEOUT);
            return Err(e);
        }
        Ok(cg)
    }

    fn make(
        &self,
        dirs: &[PathBuf],
        memory: Option<u64>,
        cpu_millis: Option<u64>,
    ) -> std::io::Result<()> {
        let quota = cpu_millis
            .filter(|&m| m > 0)
            .map(cpu_quota_us)
            .filter(|&q| q <= MAX_CPU_QUOTA_US);
        for dir in dirs {
            let Some(pod) = dir.parent() else {
                continue;
            };
            mkdir(pod)?;
            if self.mode == Mode::V2 {
                enable_controllers(pod)?;
            }
            mkdir(dir)?;
            match self.mode {
                Mode::V2 => {
                    if let Some(m) = memory {
                        write_file(&dir.join("memory.max"), &m.to_string())?;
                    }
                    if dir.join("memory.swap.max").exists() {
                        write_file(&dir.join("memory.swap.max"), "0")?;
                    }
                    if dir.join("memory.oom.group").exists() {
                        write_file(&dir.join("memory.oom.group"), "1")?;
                    }
                    if let Some(q) = quota {
                        write_file(&dir.join("cpu.max"), &format!("{q} {CPU_PERIOD_US}"))?;
                    }
                }
                Mode::V1 => {
                    if let Some(m) = memory {
                        if dir.join("memory.limit_in_bytes").exists() {
                            // memsw (memory + swap) may not be below the memory limit: memory
                            // first, on a fresh cgroup where both are unlimited.
                            write_file(&dir.join("memory.limit_in_bytes"), &m.to_string())?;
                            if dir.join("memory.memsw.limit_in_bytes").exists() {
                                write_file(
                                    &dir.join("memory.memsw.limit_in_bytes"),
                                    &m.to_string(),
                                )?;
                            }
                        }
                    }
                    if let Some(q) = quota {
                        if dir.join("cpu.cfs_quota_us").exists() {
                            write_file(&dir.join("cpu.cfs_period_us"), &CPU_PERIOD_US.to_string())?;
                            write_file(&dir.join("cpu.cfs_quota_us"), &q.to_string())?;
                        }
                    }
                }
                Mode::None => {}
            }
        }
        Ok(())
    }

    /// Whether the kernel's OOM killer killed a process of this cgroup.
    pub fn oom_killed(&self, cg: &ContainerCgroup) -> bool {
        cg.dirs().iter().any(|dir| {
            // v2: memory.events; v1: memory.oom_control (kernels since 4.13 count kills).
            let events = dir.join("memory.events");
            let count = if events.exists() {
                keyed_value(&events, "oom_kill")
            } else {
                keyed_value(&dir.join("memory.oom_control"), "oom_kill")
            };
            count.is_some_and(|n| n > 0)
        })
    }

    /// Whether `dir` is a container (or pod) cgroup of this manager: strictly under one of
    /// its roots, without `..`. Nothing else is ever killed or removed.
    fn owns(&self, dir: &Path) -> bool {
        self.roots.iter().any(|r| {
            dir.strip_prefix(r).is_ok_and(|rest| {
                let parts: Vec<_> = rest.components().collect();
                !parts.is_empty()
                    && parts.len() <= 2
                    && parts
                        .iter()
                        .all(|c| matches!(c, std::path::Component::Normal(_)))
                    && parts[0]
                        .as_os_str()
                        .to_str()
                        .is_some_and(|p| p.starts_with("pod"))
            })
        })
    }

    /// Kills what is left in a container's cgroup and removes it.
    pub fn remove(&self, cg: &ContainerCgroup) {
        let dirs: Vec<PathBuf> = cg
            .dirs()
            .into_iter()
            .filter(|d| {
                let ours = self.owns(d);
                if !ours {
                    tracing::debug!("not removing a cgroup outside the agent's cgroup root");
                }
                ours
            })
            .collect();
        if !dirs.is_empty() && !kill_and_rmdir(&dirs, Instant::now() + REMOVE_TIMEOUT) {
            tracing::debug!("a container cgroup could not be removed");
        }
    }

    /// Removes every cgroup of pod `pod_uid` (killing what is left in them).
    pub fn remove_pod(&self, pod_uid: &str) {
        if self.mode == Mode::None || !valid_name(pod_uid) {
            return;
        }
        let mut dirs = Vec::new();
        let mut pods = Vec::new();
        for root in &self.roots {
            let pod = root.join(format!("pod{pod_uid}"));
            if let Ok(rd) = std::fs::read_dir(&pod) {
                for e in rd.filter_map(Result::ok) {
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        dirs.push(e.path());
                    }
                }
                pods.push(pod);
            }
        }
        // Containers first, then the pod's own.
        dirs.extend(pods);
        if !dirs.is_empty() && !kill_and_rmdir(&dirs, Instant::now() + REMOVE_TIMEOUT) {
            tracing::debug!(cgroups = dirs.len(), "a pod's cgroups could not be removed");
        }
    }
}

/// SIGKILLs every process in the cgroups `dirs` until they are empty, and removes them (in
/// order: children before parents), until `deadline`. Whether all are gone.
fn kill_and_rmdir(dirs: &[PathBuf], deadline: Instant) -> bool {
    let me = std::process::id() as i32;
    loop {
        let mut left = 0;
        for dir in dirs.iter().filter(|d| d.exists()) {
            let kill_file = dir.join("cgroup.kill");
            if kill_file.exists() {
                // cgroup v2 (5.14+): kills all, forks included, at once.
                let _ = std::fs::write(&kill_file, "1");
            }
            for pid in read_pids(&dir.join("cgroup.procs")) {
                if pid > 1 && pid != me {
                    // SAFETY: kill(2) has no memory-safety preconditions.
                    unsafe {
                        libc::kill(pid, libc::SIGKILL);
                    }
                }
                left += 1;
            }
        }
        if left == 0 {
            let mut all_gone = true;
            for dir in dirs {
                match std::fs::remove_dir(dir) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        tracing::debug!(error = %e.kind(), "removing a cgroup");
                        all_gone = false;
                    }
                }
            }
            if all_gone {
                return true;
            }
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Child, Command, Stdio};
    use std::sync::atomic::{AtomicU32, Ordering};

    static N: AtomicU32 = AtomicU32::new(0);

    /// A manager under a root of its own, removed (with everything in it) when dropped.
    struct Fixture {
        cg: Cgroups,
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            for uid in self.cg.pod_uids() {
                self.cg.remove_pod(&uid);
            }
            for r in &self.cg.roots {
                let _ = std::fs::remove_dir(r);
            }
        }
    }

    /// A fresh manager, or `None` (with a note) where the machine allows no cgroups.
    fn fixture(test: &str) -> Option<Fixture> {
        let name = format!(
            "concord-test-{}-{}-{test}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let cg = Cgroups::detect(&name, true);
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        if cg.mode == Mode::None {
            assert!(
                !(root && Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists()),
                "running as root with cgroup v1 memory, yet no cgroups were usable"
            );
            eprintln!(
                "SKIPPED {test}: this machine allows no cgroups ({})",
                cg.describe()
            );
            return None;
        }
        Some(Fixture { cg })
    }

    /// Starts `script` under `sh`, in `cg`, and only then lets it run.
    fn spawn_in(cg: &ContainerCgroup, script: &str) -> Child {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(format!("read go; {script}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sh runs");
        for procs in &cg.procs {
            std::fs::write(procs, child.id().to_string()).expect("the child joins the cgroup");
        }
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin.write_all(b"go\n").expect("the child reads");
        child
    }

    fn wait_bounded(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = child.try_wait().expect("waiting") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("the child did not exit within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn read(dir: &Path, file: &str) -> String {
        std::fs::read_to_string(dir.join(file))
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    #[test]
    fn memory_limit_oom_kills() {
        let Some(f) = fixture("oom") else { return };
        const MIB: u64 = 1024 * 1024;
        let cg = f.cg.create("uid-oom", "app", Some(50 * MIB), None).unwrap();
        assert_eq!(cg.procs.len(), if f.cg.mode == Mode::V1 { 2 } else { 1 });
        assert!(!f.cg.oom_killed(&cg));
        let hog = if Command::new("python3")
            .arg("-c")
            .arg("")
            .status()
            .is_ok_and(|s| s.success())
        {
            "exec python3 -c 'b = bytearray(200 * 1024 * 1024); print(len(b))'"
        } else {
            "head -c 200M /dev/zero | tail > /dev/null"
        };
        let mut child = spawn_in(&cg, hog);
        let status = wait_bounded(&mut child, Duration::from_secs(30));
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
        assert!(f.cg.oom_killed(&cg), "the OOM kill is counted");

        // A new instance starts with fresh counters, and a small allocation fits.
        let cg = f.cg.create("uid-oom", "app", Some(50 * MIB), None).unwrap();
        assert!(!f.cg.oom_killed(&cg));
        let mut child = spawn_in(&cg, "head -c 10M /dev/zero | wc -c > /dev/null");
        let status = wait_bounded(&mut child, Duration::from_secs(30));
        assert!(status.success(), "{status:?}");
        assert!(!f.cg.oom_killed(&cg));
        f.cg.remove(&cg);
        assert!(cg.dirs().iter().all(|d| !d.exists()));
    }

    #[test]
    fn limits_are_written() {
        let Some(f) = fixture("limits") else { return };
        let cg =
            f.cg.create("uid-lim", "web", Some(64 << 20), Some(250))
                .unwrap();
        let tiny = f.cg.create("uid-lim", "tiny", None, Some(5)).unwrap();
        let free = f.cg.create("uid-lim", "free", Some(0), Some(0)).unwrap();
        for (c, name) in [(&cg, "web"), (&tiny, "tiny"), (&free, "free")] {
            for d in c.dirs() {
                assert!(d.is_dir());
                assert!(
                    d.ends_with(Path::new("poduid-lim").join(name)),
                    "{}",
                    d.display()
                );
            }
        }
        match f.cg.mode {
            Mode::V1 => {
                let find = |c: &ContainerCgroup, file: &str| {
                    c.dirs()
                        .into_iter()
                        .find(|d| d.join(file).exists())
                        .expect(file)
                };
                let mem = find(&cg, "memory.limit_in_bytes");
                assert_eq!(read(&mem, "memory.limit_in_bytes"), "67108864");
                if mem.join("memory.memsw.limit_in_bytes").exists() {
                    assert_eq!(read(&mem, "memory.memsw.limit_in_bytes"), "67108864");
                }
                let cpu = find(&cg, "cpu.cfs_quota_us");
                assert_eq!(read(&cpu, "cpu.cfs_period_us"), "100000");
                assert_eq!(read(&cpu, "cpu.cfs_quota_us"), "25000");
                assert_eq!(
                    read(&find(&tiny, "cpu.cfs_quota_us"), "cpu.cfs_quota_us"),
                    "1000"
                );
                assert_eq!(
                    read(&find(&free, "cpu.cfs_quota_us"), "cpu.cfs_quota_us"),
                    "-1"
                );
                let free_mem = read(
                    &find(&free, "memory.limit_in_bytes"),
                    "memory.limit_in_bytes",
                );
                assert!(free_mem.parse::<u64>().unwrap() > 1 << 60, "{free_mem}");
            }
            Mode::V2 => {
                let d = &cg.dirs()[0];
                assert_eq!(read(d, "memory.max"), "67108864");
                assert_eq!(read(d, "cpu.max"), "25000 100000");
                assert_eq!(read(&tiny.dirs()[0], "cpu.max"), "1000 100000");
                assert_eq!(read(&free.dirs()[0], "cpu.max"), "max 100000");
                assert_eq!(read(&free.dirs()[0], "memory.max"), "max");
            }
            Mode::None => unreachable!(),
        }
        assert_eq!(f.cg.pod_uids(), vec!["uid-lim".to_string()]);
        f.cg.remove_pod("uid-lim");
        assert!(f.cg.pod_uids().is_empty());
        for c in [&cg, &tiny, &free] {
            assert!(c.dirs().iter().all(|d| !d.exists()));
            assert!(c.dirs().iter().all(|d| !d.parent().unwrap().exists()));
        }
    }

    #[test]
    fn remove_kills_what_is_left() {
        let Some(f) = fixture("remove") else { return };
        let a = f.cg.create("uid-rm", "a", None, Some(100)).unwrap();
        let b = f.cg.create("uid-rm", "b", Some(32 << 20), None).unwrap();
        // A process with a child of its own in each.
        let mut pa = spawn_in(&a, "sleep 100 & sleep 100");
        let mut pb = spawn_in(&b, "sleep 100 & sleep 100");
        let deadline = Instant::now() + Duration::from_secs(5);
        while read_pids(&a.procs[0]).len() < 2 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(
            read_pids(&a.procs[0]).len() >= 2,
            "the shell and its sleeps"
        );

        // Recreating a container kills what its earlier instance left.
        let started = Instant::now();
        let a2 = f.cg.create("uid-rm", "a", None, None).unwrap();
        let status = wait_bounded(&mut pa, Duration::from_secs(5));
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        assert!(read_pids(&a2.procs[0]).is_empty());
        assert!(started.elapsed() < Duration::from_secs(2));

        // Nothing outside the agent's pods is touched.
        let outside = ContainerCgroup {
            procs: f.cg.roots.iter().map(|r| r.join("cgroup.procs")).collect(),
        };
        f.cg.remove(&outside);
        assert!(f.cg.roots.iter().all(|r| r.is_dir()));
        let climbing = ContainerCgroup {
            procs: vec![f.cg.roots[0].join("poduid-rm/../../x/cgroup.procs")],
        };
        assert!(!f.cg.owns(&climbing.dirs()[0]));

        f.cg.remove(&b);
        let status = wait_bounded(&mut pb, Duration::from_secs(5));
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        assert!(b.dirs().iter().all(|d| !d.exists()));
        f.cg.remove_pod("uid-rm");
        assert!(a2.dirs().iter().all(|d| !d.parent().unwrap().exists()));
        // Removing again is harmless.
        f.cg.remove(&b);
        f.cg.remove_pod("uid-rm");
    }

    #[test]
    fn names_are_checked() {
        let Some(f) = fixture("names") else { return };
        for (uid, c) in [
            ("../x", "c"),
            ("u", ".."),
            ("u", "a/b"),
            ("", "c"),
            ("u", "cgroup.procs"),
        ] {
            let e = f.cg.create(uid, c, None, None).unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
        }
        f.cg.remove_pod("../..");
        assert!(f.cg.roots.iter().all(|r| r.is_dir()));
    }

    #[test]
    fn disabled_does_nothing() {
        let cg = Cgroups::detect("concord", false);
        assert_eq!(cg.mode, Mode::None);
        let c = cg.create("uid", "c", Some(1 << 20), Some(100)).unwrap();
        assert!(c.procs.is_empty());
        assert!(!cg.oom_killed(&c));
        cg.remove(&c);
        cg.remove_pod("uid");
        assert!(cg.describe().contains("not enforced"));
        assert_eq!(Cgroups::default().mode, Mode::None);
        assert_eq!(Cgroups::detect("../up", true).mode, Mode::None);
        assert_eq!(Cgroups::detect("", true).mode, Mode::None);
    }

    #[test]
    fn quota_conversion() {
        assert_eq!(cpu_quota_us(1000), 100_000);
        assert_eq!(cpu_quota_us(250), 25_000);
        assert_eq!(cpu_quota_us(1), 1_000);
        assert_eq!(cpu_quota_us(2500), 250_000);
        assert_eq!(cpu_quota_us(u64::MAX), u64::MAX / 1000);
        assert_eq!(unescape(r"/a\040b"), "/a b");
        assert_eq!(unescape(r"/a\"), r"/a\");
    }
}
