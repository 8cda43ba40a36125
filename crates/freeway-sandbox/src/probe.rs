//! What isolation mechanisms this kernel offers: the report `freeway doctor` prints and the
//! facts a [`crate::Sandbox`] decides by (refuse or degrade when one is missing).

use serde::Serialize;

use crate::cgroup::{CgroupRoot, CgroupVersion, Cgroups, Controller};
use crate::config::{Isolation, SandboxConfig};
use crate::sys;

/// One mechanism and whether it works here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mechanism {
    /// Short name: `landlock`, `landlock_net`, `seccomp`, `cgroup_pids`, `cgroup_memory`,
    /// `rlimit_nproc`.
    pub name: &'static str,
    /// Usable.
    pub available: bool,
    /// What was found (ABI version, cgroup path, or the error).
    pub detail: String,
    /// What the sandbox uses it for.
    pub used_for: &'static str,
}

/// The kernel's sandboxing capabilities.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Capabilities {
    /// `uname -r`.
    pub kernel: String,
    /// Running as root (RLIMIT_NPROC does not bind root; a pids cgroup is needed).
    pub running_as_root: bool,
    /// Highest Landlock ABI, if any.
    pub landlock_abi: Option<u32>,
    /// Every mechanism with its status.
    pub mechanisms: Vec<Mechanism>,
}

impl Capabilities {
    /// The mechanism called `name`.
    pub fn get(&self, name: &str) -> Option<&Mechanism> {
        self.mechanisms.iter().find(|m| m.name == name)
    }

    /// `name` is available.
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some_and(|m| m.available)
    }

    /// The mechanisms a run at `isolation` under `config` needs, by name (the same decisions
    /// [`crate::Sandbox`] takes before each run).
    pub fn required(&self, config: &SandboxConfig, isolation: Isolation) -> Vec<&'static str> {
        let mut needed = Vec::new();
        if isolation != Isolation::FullAccess {
            needed.push("landlock");
            if !config.network {
                needed.push("seccomp");
            }
        }
        // Without a pids cgroup the process limit falls back to RLIMIT_NPROC, which root ignores.
        if config.limits.max_processes.is_some() && self.running_as_root {
            needed.push("cgroup_pids");
        }
        needed
    }

    /// The mechanisms a run at `isolation` needs and this kernel lacks: with
    /// `on_missing = "refuse"` such a run is refused, with `"degrade"` it runs without them.
    pub fn missing_for(&self, config: &SandboxConfig, isolation: Isolation) -> Vec<&Mechanism> {
        self.required(config, isolation)
            .into_iter()
            .filter(|name| !self.has(name))
            .filter_map(|name| self.get(name))
            .collect()
    }
}

/// Whether unprivileged user namespaces can be created, from the kernel's sysctls.
fn user_namespaces() -> Result<String, String> {
    let read = |path: &str| {
        std::fs::read_to_string(path)
            .ok()
            .map(|s| s.trim().to_owned())
    };
    match read("/proc/sys/user/max_user_namespaces").as_deref() {
        None => return Err("no /proc/sys/user/max_user_namespaces".into()),
        Some("0") => return Err("max_user_namespaces is 0".into()),
        Some(_) => {}
    }
    match read("/proc/sys/kernel/unprivileged_userns_clone").as_deref() {
        Some("0") => Err("kernel.unprivileged_userns_clone is 0".into()),
        _ => Ok("enabled".into()),
    }
}

/// Probe the kernel. Cheap (a few system calls and file reads); may create the sandbox's cgroup
/// directories.
pub fn probe() -> Capabilities {
    probe_with_cgroup().0
}

pub(crate) fn probe_with_cgroup() -> (Capabilities, Cgroups) {
    let root = sys::is_root();
    let abi = sys::landlock_abi();
    let landlock_abi = abi.as_ref().ok().copied().filter(|&v| v > 0);
    let mut mechanisms = vec![
        Mechanism {
            name: "landlock",
            available: landlock_abi.is_some(),
            detail: match &abi {
                Ok(v) => format!("ABI {v}"),
                Err(e) => format!("unavailable: {e}"),
            },
            used_for: "filesystem rules of read-only and workspace-write",
        },
        Mechanism {
            name: "landlock_net",
            available: landlock_abi.is_some_and(|v| v >= 4),
            detail: "TCP bind/connect rules need Landlock ABI 4 (Linux 6.7)".into(),
            used_for: "second layer of network denial (TCP)",
        },
    ];
    let seccomp = sys::seccomp_filter_available();
    mechanisms.push(Mechanism {
        name: "seccomp",
        available: seccomp.is_ok(),
        detail: match &seccomp {
            Ok(()) => "filter mode".into(),
            Err(e) => format!("unavailable: {e}"),
        },
        used_for: "network denial (socket families, connect, bind, io_uring)",
    });
    let describe = |found: &Result<CgroupRoot, String>| match found {
        Ok(c) => format!(
            "{} at {}",
            match c.version {
                CgroupVersion::V1 => "cgroup v1",
                CgroupVersion::V2 => "cgroup v2",
            },
            c.dir.display()
        ),
        Err(e) => e.clone(),
    };
    let pids = CgroupRoot::detect(Controller::Pids);
    mechanisms.push(Mechanism {
        name: "cgroup_pids",
        available: pids.is_ok(),
        detail: describe(&pids),
        used_for: "process-count limit (fork bombs) and killing every process of a run",
    });
    let memory = CgroupRoot::detect(Controller::Memory);
    mechanisms.push(Mechanism {
        name: "cgroup_memory",
        available: memory.is_ok(),
        detail: describe(&memory),
        used_for: "memory limit on resident memory (without it: RLIMIT_AS, on address space)",
    });
    mechanisms.push(Mechanism {
        name: "rlimit_nproc",
        available: !root,
        detail: if root {
            "not enforced for root".into()
        } else {
            "per-user process limit".into()
        },
        used_for: "process-count limit when no pids cgroup is available",
    });
    let userns = user_namespaces();
    mechanisms.push(Mechanism {
        name: "user_namespaces",
        available: userns.is_ok(),
        detail: match userns {
            Ok(d) | Err(d) => d,
        },
        used_for: "not used yet (reported for completeness: a private network namespace would need it)",
    });
    let caps = Capabilities {
        kernel: sys::kernel_release(),
        running_as_root: root,
        landlock_abi,
        mechanisms,
    };
    let cgroups = Cgroups {
        pids: pids.ok(),
        memory: memory.ok(),
    };
    (caps, cgroups)
}
