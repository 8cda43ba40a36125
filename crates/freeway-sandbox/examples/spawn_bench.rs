//! Spawn-to-exit of `true`, sandboxed vs plain, measured side by side (interleaved so both see
//! the same machine load). Run through `bench/sandbox.sh`.
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "benchmark report"
)]

use std::time::{Duration, Instant};

use freeway_sandbox::{ExecRequest, Isolation, Sandbox, SandboxConfig};

fn stats(name: &str, mut v: Vec<Duration>) -> f64 {
    v.sort();
    let q = |p: f64| v[((v.len() - 1) as f64 * p) as usize].as_secs_f64() * 1000.0;
    println!(
        "{name:<42} median {:>6.3} ms   p10 {:>6.3}   p90 {:>6.3}   n={}",
        q(0.5),
        q(0.1),
        q(0.9),
        v.len()
    );
    q(0.5)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(500);
    let workspace = std::env::temp_dir().join(format!("fw-bench-{}", std::process::id()));
    std::fs::create_dir_all(&workspace).unwrap();
    let sb = Sandbox::new(SandboxConfig {
        workspace: workspace.clone(),
        ..SandboxConfig::default()
    })
    .unwrap();
    let caps = sb.capabilities();
    println!(
        "kernel {} landlock ABI {:?} cgroup_pids {} cgroup_memory {}",
        caps.kernel,
        caps.landlock_abi,
        caps.has("cgroup_pids"),
        caps.has("cgroup_memory")
    );

    let no_cg = Sandbox::new(SandboxConfig {
        workspace: workspace.clone(),
        limits: freeway_sandbox::Limits {
            max_processes: None,
            ..Default::default()
        },
        ..SandboxConfig::default()
    })
    .unwrap();
    let no_deny = Sandbox::new(SandboxConfig {
        workspace: workspace.clone(),
        deny_read: vec![],
        ..SandboxConfig::default()
    })
    .unwrap();
    let (mut plain_status, mut plain_output, mut sandboxed, mut full) =
        (vec![], vec![], vec![], vec![]);
    let (mut full_no_cg, mut ws_no_deny) = (vec![], vec![]);
    for _ in 0..20 {
        let _ = sb.run(ExecRequest::argv(["true"])).await.unwrap();
    }
    for _ in 0..n {
        let t = Instant::now();
        let s = tokio::process::Command::new("true").status().await.unwrap();
        plain_status.push(t.elapsed());
        assert!(s.success());

        let t = Instant::now();
        let o = tokio::process::Command::new("true").output().await.unwrap();
        plain_output.push(t.elapsed());
        assert!(o.status.success());

        let t = Instant::now();
        let r = sb.run(ExecRequest::argv(["true"])).await.unwrap();
        sandboxed.push(t.elapsed());
        assert!(r.success() && r.network_denied && r.degraded.is_empty());

        let t = Instant::now();
        let r = sb
            .run(ExecRequest::argv(["true"]).with_isolation(Isolation::FullAccess))
            .await
            .unwrap();
        full.push(t.elapsed());
        assert!(r.success());

        let t = Instant::now();
        let r = no_cg
            .run(ExecRequest::argv(["true"]).with_isolation(Isolation::FullAccess))
            .await
            .unwrap();
        full_no_cg.push(t.elapsed());
        assert!(r.success());

        let t = Instant::now();
        let r = no_deny.run(ExecRequest::argv(["true"])).await.unwrap();
        ws_no_deny.push(t.elapsed());
        assert!(r.success());
    }
    let a = stats("plain tokio Command::status (no capture)", plain_status);
    let b = stats("plain tokio Command::output (captured)", plain_output);
    let s = stats("sandbox workspace-write, network denied", sandboxed);
    stats("sandbox full-access (group, cgroup, rlimits)", full);
    stats("sandbox full-access, no pids limit", full_no_cg);
    stats("sandbox workspace-write, no deny_read paths", ws_no_deny);
    println!(
        "ratio sandboxed/plain-status {:.2}x, sandboxed/plain-output {:.2}x",
        s / a,
        s / b
    );
    let _ = std::fs::remove_dir_all(workspace);
}
