//! The process side of running containers: starting a container instance under its shim,
//! learning when it ends (also for instances a previous run of the agent started), signalling
//! its process group, and finding what is left on disk.
//!
//! A container instance's state dir holds `spec.json` (what to run), `shim.pid` (written by
//! the agent once the shim runs), and the shim's `started.json` and `exited.json`. Everything
//! the agent needs after a restart is there.

use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::unix::AsyncFd;

use crate::shim::{self, Exited, ShimSpec, Started};

/// The state dir of instance `n` of container `name` of pod `uid`.
pub fn instance_dir(root: &Path, uid: &str, name: &str, n: u32) -> PathBuf {
    root.join("pods")
        .join(uid)
        .join("containers")
        .join(name)
        .join(n.to_string())
}

/// The pod's state dir.
pub fn pod_dir(root: &Path, uid: &str) -> PathBuf {
    root.join("pods").join(uid)
}

/// The instance numbers of a container that have a state dir, ascending.
pub fn instances(root: &Path, uid: &str, name: &str) -> Vec<u32> {
    let dir = root.join("pods").join(uid).join("containers").join(name);
    let mut v: Vec<u32> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
        .collect();
    v.sort_unstable();
    v
}

/// The pod uids with a state dir.
pub fn pod_uids(root: &Path) -> Vec<String> {
    std::fs::read_dir(root.join("pods"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .collect()
}

/// Why an instance could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The state dir or spec could not be written, or the shim could not be run.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The shim wrote neither `started.json` nor `exited.json` in time.
    #[error("the container shim did not report within {0:?}")]
    Silent(Duration),
}

/// A started instance.
pub struct Running {
    /// The shim's pid.
    pub shim_pid: i32,
    /// What the shim reported: started, or (when the process could not start, or ended at
    /// once) exited.
    pub started: Option<Started>,
    /// Set when the instance already ended.
    pub exited: Option<Exited>,
    /// The shim process, when this agent started it (to reap it).
    pub child: Option<tokio::process::Child>,
}

fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, data)?;
    std::fs::rename(&tmp, path)
}

/// Starts `spec` under `concord-agent shim` (`shim_bin`) in a session of its own, so that it
/// outlives the agent, and waits (up to 10 s) for it to report. Blocking file I/O runs on the
/// blocking pool.
pub async fn start(shim_bin: &Path, spec: &ShimSpec) -> Result<Running, StartError> {
    let dir = spec.state_dir.clone();
    let json = serde_json::to_vec_pretty(spec).map_err(std::io::Error::other)?;
    let log_dir = spec.log_path.parent().map(Path::to_path_buf);
    let spec_path = dir.join("spec.json");
    {
        let (dir, spec_path) = (dir.clone(), spec_path.clone());
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            std::fs::create_dir_all(&dir)?;
            if let Some(l) = log_dir {
                std::fs::create_dir_all(l)?;
            }
            write_atomic(&spec_path, &json)
        })
        .await
        .map_err(std::io::Error::other)??;
    }
    let mut cmd = tokio::process::Command::new(shim_bin);
    cmd.arg("shim")
        .arg(&spec_path)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(false);
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    let shim_pid = child.id().map(|p| p as i32).unwrap_or(0);
    {
        let p = dir.join("shim.pid");
        let s = shim_pid.to_string();
        tokio::task::spawn_blocking(move || write_atomic(&p, s.as_bytes()))
            .await
            .map_err(std::io::Error::other)??;
    }
    let limit = Duration::from_secs(10);
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let d = dir.clone();
        let (started, exited) =
            tokio::task::spawn_blocking(move || (shim::read_started(&d), shim::read_exited(&d)))
                .await
                .map_err(std::io::Error::other)?;
        if started.is_some() || exited.is_some() {
            return Ok(Running {
                shim_pid,
                started,
                exited,
                child: Some(child),
            });
        }
        if tokio::time::Instant::now() > deadline {
            return Err(StartError::Silent(limit));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The pid in `shim.pid`, if that process is still a shim of this state dir.
pub fn live_shim(dir: &Path) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(dir.join("shim.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let spec = dir.join("spec.json");
    let spec = spec.to_string_lossy();
    let is_ours = cmdline.split(|b| *b == 0).any(|a| a == spec.as_bytes());
    is_ours.then_some(pid)
}

/// Waits until process `pid` (not necessarily a child) has ended, with a pidfd.
pub async fn wait_pid(pid: i32) -> std::io::Result<()> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ESRCH) {
            return Ok(());
        }
        return Err(e);
    }
    // SAFETY: fd is a fresh descriptor this function owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    // SAFETY: `fd` is an OwnedFd the AsyncFd owns for its whole life, so it stays open and
    // refers to the same pidfd.
    let afd = unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
        .map_err(|e| e.into_parts().1)?;
    let _guard = afd.readable().await?;
    Ok(())
}

/// Waits for an instance to end: for the shim this agent started, or (after a restart of the
/// agent) for the shim in `shim.pid`; then reads `exited.json`. `None` when the shim is gone
/// without having written it (killed, or the machine rebooted).
pub async fn wait_exit(dir: PathBuf, child: Option<tokio::process::Child>) -> Option<Exited> {
    match child {
        Some(mut c) => {
            let _ = c.wait().await;
        }
        None => {
            let d = dir.clone();
            let pid = tokio::task::spawn_blocking(move || live_shim(&d))
                .await
                .ok()
                .flatten();
            if let Some(pid) = pid {
                if wait_pid(pid).await.is_err() {
                    // No pidfd: poll.
                    loop {
                        let d = dir.clone();
                        let alive = tokio::task::spawn_blocking(move || live_shim(&d).is_some())
                            .await
                            .unwrap_or(false);
                        if !alive {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        }
    }
    tokio::task::spawn_blocking(move || shim::read_exited(&dir))
        .await
        .ok()
        .flatten()
}

/// Sends `sig` to the process group of a container process, if it is still the leader of
/// its own group (so a reused pid is never signalled). Returns whether it was sent.
pub fn signal_group(pid: i32, sig: i32) -> bool {
    if pid <= 1 {
        return false;
    }
    // SAFETY: getpgid and kill take plain integers.
    unsafe {
        if libc::getpgid(pid) != pid {
            return false;
        }
        libc::kill(-pid, sig) == 0
    }
}

/// SIGKILLs every container process group of a pod's state dir whose instance has not
/// exited; returns how many were signalled.
pub fn kill_pod_dir(dir: &Path) -> usize {
    let mut n = 0;
    for c in std::fs::read_dir(dir.join("containers"))
        .into_iter()
        .flatten()
        .flatten()
    {
        for i in std::fs::read_dir(c.path()).into_iter().flatten().flatten() {
            let dir = i.path();
            if shim::read_exited(&dir).is_some() {
                continue;
            }
            if let Some(s) = shim::read_started(&dir) {
                if signal_group(s.pid, libc::SIGKILL) {
                    n += 1;
                }
            }
        }
    }
    n
}

/// Kills every container process group under `root` whose instance has not exited; returns
/// how many were signalled. For `concord-agent kill-pods`.
pub fn kill_all(root: &Path) -> usize {
    pod_uids(root)
        .iter()
        .map(|uid| kill_pod_dir(&pod_dir(root, uid)))
        .sum()
}
