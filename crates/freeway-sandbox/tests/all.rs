//! Integration tests of freeway-sandbox: real processes under the real kernel mechanisms.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers")]

mod support {
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicU32, Ordering};

    use freeway_sandbox::{Capabilities, OnMissing, Sandbox, SandboxConfig};

    static N: AtomicU32 = AtomicU32::new(0);

    /// A fresh workspace directory under /tmp.
    pub fn workspace() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "fw-sandbox-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    pub fn config() -> SandboxConfig {
        SandboxConfig {
            workspace: workspace(),
            on_missing: OnMissing::Refuse,
            kill_grace_ms: 300,
            default_timeout_ms: 20_000,
            ..SandboxConfig::default()
        }
    }

    pub fn sandbox() -> Sandbox {
        Sandbox::new(config()).unwrap()
    }

    /// `caps` with the mechanism `name` marked unavailable, to rehearse a weaker kernel.
    pub fn without(caps: &Capabilities, name: &str) -> Capabilities {
        let mut caps = caps.clone();
        for m in &mut caps.mechanisms {
            if m.name == name {
                m.available = false;
                m.detail = "disabled by the test".into();
            }
        }
        caps
    }

    /// Processes (not zombies) whose process group is `pgid`.
    pub fn live_in_group(pgid: u32) -> Vec<String> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // pid (comm) state ppid pgrp ...
            let Some(after) = stat.rsplit_once(") ").map(|(_, a)| a) else {
                continue;
            };
            let fields: Vec<&str> = after.split_whitespace().collect();
            if fields.len() > 2 && fields[2] == pgid.to_string() && fields[0] != "Z" {
                out.push(stat);
            }
        }
        out
    }
}

#[path = "all/diagnosis.rs"]
mod diagnosis;
#[path = "all/isolation.rs"]
mod isolation;
#[path = "all/limits.rs"]
mod limits;
#[path = "all/policy.rs"]
mod policy;
#[path = "all/process.rs"]
mod process;
#[path = "all/redaction.rs"]
mod redaction;
#[path = "all/runners.rs"]
mod runners;
