//! A pids cgroup per run: bounds the number of processes (a fork bomb stays bounded even for
//! root, for whom RLIMIT_NPROC is not enforced) and lists every process of the run, including
//! those that left the process group with `setsid`, so that all of them can be killed.
//!
//! Works with cgroup v1 (a `pids` hierarchy, as on this kind of VM) and with v2 when the pids
//! controller can be enabled below the server's own cgroup.

use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Which cgroup version the pids controller was found in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CgroupVersion {
    /// Legacy hierarchy with a `pids` mount.
    V1,
    /// Unified hierarchy.
    V2,
}

/// The directory under which per-run cgroups are created.
#[derive(Debug, Clone)]
pub(crate) struct CgroupRoot {
    pub dir: PathBuf,
    pub version: CgroupVersion,
}

impl CgroupRoot {
    /// Find a writable place for per-run pids cgroups, or say why there is none.
    pub fn detect() -> Result<Self, String> {
        let mounts = fs::read_to_string("/proc/self/mounts")
            .map_err(|e| format!("/proc/self/mounts: {e}"))?;
        let own = fs::read_to_string("/proc/self/cgroup")
            .map_err(|e| format!("/proc/self/cgroup: {e}"))?;
        let mut reasons = Vec::new();
        // v1: a hierarchy mounted with the pids controller.
        for line in mounts.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 4 || f[2] != "cgroup" || !f[3].split(',').any(|o| o == "pids") {
                continue;
            }
            let rel = own
                .lines()
                .filter_map(|l| {
                    let mut parts = l.splitn(3, ':').skip(1);
                    parts.next().zip(parts.next())
                })
                .find(|(ctrls, _)| ctrls.split(',').any(|c| c == "pids"))
                .map(|(_, p)| p.trim_start_matches('/').to_string())
                .unwrap_or_default();
            let dir = Path::new(f[1]).join(rel).join("freeway-sandbox");
            match fs::create_dir_all(&dir) {
                Ok(()) => {
                    return Ok(Self {
                        dir,
                        version: CgroupVersion::V1,
                    });
                }
                Err(e) => reasons.push(format!("v1 {}: {e}", dir.display())),
            }
        }
        // v2: enable pids for children of our own cgroup (fails when we are not delegated one).
        for line in mounts.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 3 || f[2] != "cgroup2" {
                continue;
            }
            let rel = own
                .lines()
                .find_map(|l| l.strip_prefix("0::"))
                .map(|p| p.trim_start_matches('/').to_string())
                .unwrap_or_default();
            let base = Path::new(f[1]).join(rel);
            let controllers =
                fs::read_to_string(base.join("cgroup.controllers")).unwrap_or_default();
            if !controllers.split_whitespace().any(|c| c == "pids") {
                reasons.push(format!(
                    "v2 {}: pids controller not available",
                    base.display()
                ));
                continue;
            }
            let dir = base.join("freeway-sandbox");
            let made = fs::create_dir_all(&dir)
                .and_then(|()| fs::write(base.join("cgroup.subtree_control"), "+pids"))
                .and_then(|()| fs::write(dir.join("cgroup.subtree_control"), "+pids"));
            match made {
                Ok(()) => {
                    return Ok(Self {
                        dir,
                        version: CgroupVersion::V2,
                    });
                }
                Err(e) => reasons.push(format!("v2 {}: {e}", dir.display())),
            }
        }
        if reasons.is_empty() {
            reasons.push("no cgroup filesystem with the pids controller is mounted".into());
        }
        Err(reasons.join("; "))
    }

    /// Create the cgroup of one run with at most `max_pids` tasks.
    pub fn create_run(&self, name: &str, max_pids: Option<u64>) -> io::Result<RunCgroup> {
        let dir = self.dir.join(name);
        fs::create_dir(&dir)?;
        let made = (|| {
            if let Some(max) = max_pids {
                fs::write(dir.join("pids.max"), max.to_string())?;
            }
            let procs: OwnedFd = fs::OpenOptions::new()
                .write(true)
                .open(dir.join("cgroup.procs"))?
                .into();
            Ok(procs)
        })();
        match made {
            Ok(procs) => Ok(RunCgroup {
                dir,
                procs: Some(procs),
            }),
            Err(e) => {
                let _ = fs::remove_dir(&dir);
                Err(e)
            }
        }
    }
}

/// The cgroup of one run; removed by [`RunCgroup::destroy`].
#[derive(Debug)]
pub(crate) struct RunCgroup {
    dir: PathBuf,
    procs: Option<OwnedFd>,
}

impl RunCgroup {
    /// The `cgroup.procs` descriptor the child writes to, to join.
    pub fn take_procs_fd(&mut self) -> Option<OwnedFd> {
        self.procs.take()
    }

    /// Process ids currently in the cgroup.
    pub fn pids(&self) -> Vec<u32> {
        fs::read_to_string(self.dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// Signal every process in the cgroup once.
    pub fn signal_all(&self, signal: libc::c_int) {
        for pid in self.pids() {
            crate::sys::kill_pid(pid, signal);
        }
    }

    /// The pids limit refused at least one fork.
    pub fn hit_pids_max(&self) -> bool {
        fs::read_to_string(self.dir.join("pids.events"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("max ")?.trim().parse::<u64>().ok())
            })
            .is_some_and(|n| n > 0)
    }

    /// SIGKILL everything until the cgroup is empty, then remove it.
    pub async fn destroy(self) {
        for _ in 0..500 {
            let pids = self.pids();
            if pids.is_empty() {
                break;
            }
            for pid in pids {
                crate::sys::kill_pid(pid, libc::SIGKILL);
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        for _ in 0..100 {
            match fs::remove_dir(&self.dir) {
                Ok(()) => return,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return,
                Err(_) => tokio::time::sleep(Duration::from_millis(2)).await,
            }
        }
        tracing::warn!(dir = %self.dir.display(), "could not remove run cgroup");
    }

    /// Best-effort synchronous cleanup for a cancelled run.
    pub fn destroy_now(&self) {
        for _ in 0..50 {
            let pids = self.pids();
            if pids.is_empty() {
                break;
            }
            for pid in pids {
                crate::sys::kill_pid(pid, libc::SIGKILL);
            }
            std::thread::yield_now();
        }
        let _ = fs::remove_dir(&self.dir);
    }
}
