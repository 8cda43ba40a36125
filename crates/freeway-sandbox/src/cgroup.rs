//! A cgroup per run, with two controllers:
//!
//! - `pids` bounds the number of processes (a fork bomb stays bounded even for root, for whom
//!   RLIMIT_NPROC is not enforced) and lists every process of the run, including those that left
//!   the process group with `setsid`, so that all of them can be killed;
//! - `memory` bounds what the run keeps resident, which RLIMIT_AS cannot: an address-space limit
//!   also refuses the large reservations of Go, the JVM or V8 that never become memory, and lets
//!   a process that maps little but touches it all through. Over the limit, the kernel's OOM
//!   killer ends the run and counts it, which is how [`RunCgroup::oom_killed`] knows.
//!
//! Works with cgroup v1 (a hierarchy per controller, as on this kind of VM) and with v2 when the
//! controllers can be enabled below the server's own cgroup. Either controller may be missing;
//! the probe reports each.

use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Which cgroup version the controllers were found in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CgroupVersion {
    /// Legacy hierarchies, one per controller.
    V1,
    /// Unified hierarchy.
    V2,
}

/// A controller the sandbox uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Controller {
    Pids,
    Memory,
}

impl Controller {
    fn name(self) -> &'static str {
        match self {
            Self::Pids => "pids",
            Self::Memory => "memory",
        }
    }
}

/// The directory under which per-run cgroups of one controller are created.
#[derive(Debug, Clone)]
pub(crate) struct CgroupRoot {
    pub dir: PathBuf,
    pub version: CgroupVersion,
}

impl CgroupRoot {
    /// Find a writable place for per-run cgroups of `controller`, or say why there is none.
    pub fn detect(controller: Controller) -> Result<Self, String> {
        let mounts = fs::read_to_string("/proc/self/mounts")
            .map_err(|e| format!("/proc/self/mounts: {e}"))?;
        let own = fs::read_to_string("/proc/self/cgroup")
            .map_err(|e| format!("/proc/self/cgroup: {e}"))?;
        let name = controller.name();
        let mut reasons = Vec::new();
        // v1: a hierarchy mounted with the controller.
        for line in mounts.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 4 || f[2] != "cgroup" || !f[3].split(',').any(|o| o == name) {
                continue;
            }
            let rel = own
                .lines()
                .filter_map(|l| {
                    let mut parts = l.splitn(3, ':').skip(1);
                    parts.next().zip(parts.next())
                })
                .find(|(ctrls, _)| ctrls.split(',').any(|c| c == name))
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
        // v2: enable the controller for children of our own cgroup (fails when we are not
        // delegated one).
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
            if !controllers.split_whitespace().any(|c| c == name) {
                reasons.push(format!(
                    "v2 {}: {name} controller not available",
                    base.display()
                ));
                continue;
            }
            let dir = base.join("freeway-sandbox");
            let enable = format!("+{name}");
            let made = fs::create_dir_all(&dir)
                .and_then(|()| fs::write(base.join("cgroup.subtree_control"), &enable))
                .and_then(|()| fs::write(dir.join("cgroup.subtree_control"), &enable));
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
            reasons.push(format!(
                "no cgroup filesystem with the {name} controller is mounted"
            ));
        }
        Err(reasons.join("; "))
    }
}

/// Where per-run cgroups go, per controller (in v2 both are the same directory).
#[derive(Debug, Clone, Default)]
pub(crate) struct Cgroups {
    pub pids: Option<CgroupRoot>,
    pub memory: Option<CgroupRoot>,
}

/// The limits of one run's cgroup.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RunLimits {
    pub max_pids: Option<u64>,
    pub memory_bytes: Option<u64>,
}

/// Idle run cgroups kept for reuse, at most.
const MAX_IDLE: usize = 16;

/// The run cgroups of one sandbox. An empty cgroup is kept for the next run instead of being
/// removed: making one (a directory of control files per controller) and removing it cost more
/// than the rest of a run's setup together.
#[derive(Debug)]
pub(crate) struct CgroupPool {
    roots: Cgroups,
    /// Prefix of the directories made (unique to the sandbox).
    prefix: String,
    made: AtomicU64,
    idle: Mutex<Vec<RunCgroup>>,
}

impl CgroupPool {
    pub fn new(roots: Cgroups, prefix: String) -> Self {
        Self {
            roots,
            prefix,
            made: AtomicU64::new(0),
            idle: Mutex::new(Vec::new()),
        }
    }

    pub fn has_pids(&self) -> bool {
        self.roots.pids.is_some()
    }

    pub fn has_memory(&self) -> bool {
        self.roots.memory.is_some()
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<RunCgroup>> {
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A cgroup for one run: an idle one with the same limits, or a new one. A controller is
    /// used when its root exists and its limit is set; with neither there is nothing to make.
    pub fn take(&self, limits: RunLimits) -> io::Result<Option<RunCgroup>> {
        let limits = RunLimits {
            max_pids: limits.max_pids.filter(|_| self.has_pids()),
            memory_bytes: limits.memory_bytes.filter(|_| self.has_memory()),
        };
        if limits == RunLimits::default() {
            return Ok(None);
        }
        let reused = {
            let mut idle = self.idle();
            let found = idle.iter().rposition(|run| run.limits == limits);
            found.map(|i| idle.swap_remove(i))
        };
        if let Some(mut run) = reused {
            // The counters are not reset by the kernel: a run compares against where they were.
            run.pids_max_base = run.pids_max_events();
            run.oom_base = run.oom_kills();
            return Ok(Some(run));
        }
        let name = format!(
            "{}-{}",
            self.prefix,
            self.made.fetch_add(1, Ordering::Relaxed)
        );
        self.create(&name, limits).map(Some)
    }

    fn create(&self, name: &str, limits: RunLimits) -> io::Result<RunCgroup> {
        let mut run = RunCgroup::default();
        run.limits = limits;
        let made = (|| {
            if let (Some(root), Some(max)) = (&self.roots.pids, limits.max_pids) {
                let dir = run.enter(root, name)?;
                fs::write(dir.join("pids.max"), max.to_string())?;
                run.pids = Some(dir);
            }
            if let (Some(root), Some(bytes)) = (&self.roots.memory, limits.memory_bytes) {
                let dir = run.enter(root, name)?;
                match root.version {
                    CgroupVersion::V1 => {
                        fs::write(dir.join("memory.limit_in_bytes"), bytes.to_string())?;
                        // Where swap is accounted, the limit covers it too.
                        let memsw = dir.join("memory.memsw.limit_in_bytes");
                        if memsw.exists() {
                            fs::write(memsw, bytes.to_string())?;
                        }
                    }
                    CgroupVersion::V2 => {
                        fs::write(dir.join("memory.max"), bytes.to_string())?;
                        let swap = dir.join("memory.swap.max");
                        if swap.exists() {
                            fs::write(swap, "0")?;
                        }
                    }
                }
                run.memory = Some((dir, root.version));
            }
            Ok(())
        })();
        match made {
            Ok(()) => Ok(run),
            Err(e) => {
                run.remove_now();
                Err(e)
            }
        }
    }

    /// The run is over: SIGKILL whatever is left of it, then keep the empty cgroup for the
    /// next run, or remove it when enough are idle (or it would not empty).
    pub async fn release(&self, mut run: RunCgroup) {
        if run.kill_all().await {
            let mut idle = self.idle();
            if idle.len() < MAX_IDLE {
                idle.push(run);
                return;
            }
        }
        run.remove().await;
    }
}

/// The cgroup of one run (a directory per v1 hierarchy). Dropped without going back to its
/// pool (a cancelled run), it kills what is in it and removes itself.
#[derive(Debug, Default)]
pub(crate) struct RunCgroup {
    limits: RunLimits,
    /// Every directory made, each once.
    dirs: Vec<PathBuf>,
    /// `cgroup.procs` of each directory, open for writing: the child writes to them to join.
    procs: Vec<Arc<OwnedFd>>,
    pids: Option<PathBuf>,
    memory: Option<(PathBuf, CgroupVersion)>,
    pids_max_base: u64,
    oom_base: u64,
    removed: bool,
}

impl RunCgroup {
    /// Make (or reuse, for a v2 root shared by both controllers) the run's directory under
    /// `root`.
    fn enter(&mut self, root: &CgroupRoot, name: &str) -> io::Result<PathBuf> {
        let dir = root.dir.join(name);
        if self.dirs.contains(&dir) {
            return Ok(dir);
        }
        fs::create_dir(&dir)?;
        self.dirs.push(dir.clone());
        let procs: OwnedFd = fs::OpenOptions::new()
            .write(true)
            .open(dir.join("cgroup.procs"))?
            .into();
        self.procs.push(Arc::new(procs));
        Ok(dir)
    }

    /// The `cgroup.procs` descriptors the child writes to, to join.
    pub fn procs_fds(&self) -> Vec<Arc<OwnedFd>> {
        self.procs.clone()
    }

    /// Process ids currently in the run.
    pub fn pids(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = self
            .dirs
            .iter()
            .flat_map(|dir| {
                fs::read_to_string(dir.join("cgroup.procs"))
                    .unwrap_or_default()
                    .lines()
                    .filter_map(|l| l.trim().parse().ok())
                    .collect::<Vec<u32>>()
            })
            .collect();
        if self.dirs.len() > 1 {
            pids.sort_unstable();
            pids.dedup();
        }
        pids
    }

    /// Signal every process of the run once.
    pub fn signal_all(&self, signal: libc::c_int) {
        for pid in self.pids() {
            crate::sys::kill_pid(pid, signal);
        }
    }

    fn pids_max_events(&self) -> u64 {
        self.pids
            .as_ref()
            .map_or(0, |dir| counter(&dir.join("pids.events"), "max"))
    }

    fn oom_kills(&self) -> u64 {
        self.memory.as_ref().map_or(0, |(dir, version)| {
            let file = match version {
                CgroupVersion::V1 => "memory.oom_control",
                CgroupVersion::V2 => "memory.events",
            };
            counter(&dir.join(file), "oom_kill")
        })
    }

    /// The pids limit refused at least one fork during this run.
    pub fn hit_pids_max(&self) -> bool {
        self.pids_max_events() > self.pids_max_base
    }

    /// The memory limit made the kernel kill a process of this run.
    pub fn oom_killed(&self) -> bool {
        self.oom_kills() > self.oom_base
    }

    /// SIGKILL everything until the run is empty; false when it would not empty.
    async fn kill_all(&self) -> bool {
        for _ in 0..500 {
            let pids = self.pids();
            if pids.is_empty() {
                return true;
            }
            for pid in pids {
                crate::sys::kill_pid(pid, libc::SIGKILL);
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        false
    }

    /// Remove the directories, waiting for the kernel to let go of the last processes.
    async fn remove(&mut self) {
        self.removed = true;
        for dir in &self.dirs {
            let mut removed = false;
            for _ in 0..100 {
                match fs::remove_dir(dir) {
                    Ok(()) => removed = true,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => removed = true,
                    Err(_) => tokio::time::sleep(Duration::from_millis(2)).await,
                }
                if removed {
                    break;
                }
            }
            if !removed {
                tracing::warn!(dir = %dir.display(), "could not remove run cgroup");
            }
        }
    }

    /// Best-effort synchronous cleanup, for a cancelled run.
    pub fn remove_now(&mut self) {
        if self.removed {
            return;
        }
        self.removed = true;
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
        for dir in &self.dirs {
            let _ = fs::remove_dir(dir);
        }
    }
}

impl Drop for RunCgroup {
    fn drop(&mut self) {
        self.remove_now();
    }
}

/// The value of `key N` in a flat-keyed cgroup file (`pids.events`, `memory.events`,
/// `memory.oom_control`); 0 when absent.
fn counter(file: &Path, key: &str) -> u64 {
    fs::read_to_string(file)
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                let (k, v) = l.split_once(' ')?;
                (k == key).then(|| v.trim().parse().ok()).flatten()
            })
        })
        .unwrap_or(0)
}
