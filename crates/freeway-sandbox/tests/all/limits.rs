//! Resource limits: fork bombs stay bounded, memory hogs are killed (or fail to allocate without
//! a memory cgroup), CPU and file size are capped.

use freeway_sandbox::{Category, ExecRequest, LimitHit, Limits, Sandbox, SandboxConfig, probe};

use crate::support::{config, live_in_group, without};

fn limited(limits: Limits) -> Sandbox {
    Sandbox::new(SandboxConfig {
        limits,
        default_rules: false,
        ..config()
    })
    .unwrap()
}

#[tokio::test]
async fn fork_bomb_stays_bounded_and_leaves_nothing_behind() {
    let sb = limited(Limits {
        max_processes: Some(48),
        ..Limits::default()
    });
    let r = sb
        .run(ExecRequest::argv(["bash", "-c", ":(){ :|:& };:; sleep 1"]).with_timeout_ms(1500))
        .await
        .unwrap();
    assert_eq!(r.limit_hit, Some(LimitHit::Processes), "{r:?}");
    assert!(live_in_group(r.pid).is_empty());
    // The emptied cgroup serves the next run, which must not inherit the verdict.
    let next = sb.run(ExecRequest::shell("true")).await.unwrap();
    assert_eq!(next.exit_code, Some(0));
    assert_eq!(next.limit_hit, None, "{next:?}");
}

#[tokio::test]
async fn fork_bomb_shape_is_denied_by_the_default_policy() {
    let sb = Sandbox::new(config()).unwrap();
    let err = sb
        .run(ExecRequest::shell(":(){ :|:& };:"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("fork-bomb"), "{err}");
}

#[tokio::test]
async fn python_fork_loop_hits_the_process_limit() {
    let sb = limited(Limits {
        max_processes: Some(16),
        ..Limits::default()
    });
    let src = "import os, time\nkids = []\ntry:\n    for _ in range(1000):\n        pid = os.fork()\n        if pid == 0:\n            time.sleep(30)\n            os._exit(0)\n        kids.append(pid)\nexcept OSError as e:\n    print('fork failed after', len(kids), e)\n    raise\n";
    let r = sb
        .run(ExecRequest::code("python", src).with_timeout_ms(10_000))
        .await
        .unwrap();
    assert_ne!(r.exit_code, Some(0));
    assert!(r.stdout.contains("fork failed after"), "{}", r.stdout);
    let n: usize = r.stdout.split_whitespace().nth(3).unwrap().parse().unwrap();
    assert!(n < 16, "forked {n} children under a limit of 16");
    assert_eq!(r.diagnosis.unwrap().category, Category::ProcessLimit);
}

/// Touches 1 GiB a page at a time, printing how far it got.
const MEMORY_HOG: &str = "\
chunks = []
for i in range(1024):
    chunks.append(bytearray(1024 * 1024))
    if i % 64 == 0:
        print(i, flush=True)
print('allocated')
";

#[tokio::test]
async fn memory_hog_is_killed_by_its_memory_cgroup() {
    let sb = limited(Limits {
        memory_bytes: Some(128 << 20),
        ..Limits::default()
    });
    assert!(
        sb.capabilities().has("cgroup_memory"),
        "this machine has a memory cgroup: {:?}",
        sb.capabilities().get("cgroup_memory")
    );
    let r = sb
        .run(ExecRequest::code("python", MEMORY_HOG))
        .await
        .unwrap();
    assert_eq!(r.signal, Some(9), "{r:?}");
    assert_eq!(r.limit_hit, Some(LimitHit::Memory), "{r:?}");
    assert!(!r.stdout.contains("allocated"));
    // It got some way first: the limit is on resident memory, not on reservations.
    assert!(r.stdout.contains("64"), "{}", r.stdout);
    assert!(r.max_rss_kb < 160 * 1024, "{r:?}");
    let d = r.diagnosis.unwrap();
    assert_eq!(d.category, Category::OutOfMemory);
    assert!(d.evidence[0].contains("OOM killer"), "{d:?}");
    assert!(d.suggestions[0].contains("limits.memory_bytes"), "{d:?}");
    // The emptied cgroup serves the next run, which must not inherit the verdict.
    let next = sb.run(ExecRequest::shell("true")).await.unwrap();
    assert_eq!(next.limit_hit, None, "{next:?}");
}

#[tokio::test]
async fn memory_limit_counts_resident_memory_not_reservations() {
    // 4 GiB of address space reserved and never touched, under a 256 MiB limit: an
    // address-space limit would refuse it, the memory cgroup lets it through.
    let sb = limited(Limits {
        memory_bytes: Some(256 << 20),
        ..Limits::default()
    });
    let r = sb
        .run(ExecRequest::code(
            "python",
            "import mmap\nm = mmap.mmap(-1, 4 << 30)\nm[0] = 1\nprint('reserved')",
        ))
        .await
        .unwrap();
    assert_eq!(r.exit_code, Some(0), "{r:?}");
    assert_eq!(r.stdout.trim(), "reserved");
}

#[tokio::test]
async fn without_a_memory_cgroup_the_address_space_is_limited() {
    let caps = without(&probe(), "cgroup_memory");
    let sb = Sandbox::with_capabilities(
        SandboxConfig {
            limits: Limits {
                memory_bytes: Some(512 << 20),
                ..Limits::default()
            },
            default_rules: false,
            ..config()
        },
        caps,
    )
    .unwrap();
    let r = sb
        .run(ExecRequest::code(
            "python",
            "x = bytearray(2 * 1024 ** 3)\nprint('allocated')",
        ))
        .await
        .unwrap();
    assert_ne!(r.exit_code, Some(0));
    assert_eq!(
        r.limit_hit, None,
        "RLIMIT_AS makes the allocation fail: {r:?}"
    );
    assert!(!r.stdout.contains("allocated"));
    let d = r.diagnosis.unwrap();
    assert_eq!(d.category, Category::OutOfMemory);
    assert!(
        d.evidence.iter().any(|l| l.contains("MemoryError")),
        "{d:?}"
    );
}

#[tokio::test]
async fn cpu_seconds_are_capped() {
    let sb = limited(Limits {
        cpu_seconds: Some(1),
        ..Limits::default()
    });
    let r = sb
        .run(
            ExecRequest::argv(["sh", "-c", "exec python3 -c 'while True: pass'"])
                .with_timeout_ms(15_000),
        )
        .await
        .unwrap();
    assert!(!r.timed_out);
    assert_eq!(r.limit_hit, Some(LimitHit::Cpu), "{r:?}");
    assert_eq!(r.diagnosis.unwrap().category, Category::CpuLimit);
}

#[tokio::test]
async fn file_size_is_capped() {
    let sb = limited(Limits {
        file_size_bytes: Some(1 << 20),
        ..Limits::default()
    });
    // exec: the shell is replaced, so the signal is the run's own.
    let r = sb
        .run(ExecRequest::shell(
            "exec head -c 4000000 /dev/zero > big.bin",
        ))
        .await
        .unwrap();
    assert_eq!(r.signal, Some(25), "{r:?}");
    assert_eq!(r.limit_hit, Some(LimitHit::FileSize));
    assert_eq!(r.diagnosis.unwrap().category, Category::FileTooLarge);
    // Python ignores SIGXFSZ and reports EFBIG instead: same diagnosis from the text.
    let r = sb
        .run(ExecRequest::code(
            "python",
            "open('big.bin', 'wb').write(b'0' * 4_000_000)",
        ))
        .await
        .unwrap();
    assert!(r.stderr.contains("File too large"), "{}", r.stderr);
    assert_eq!(r.diagnosis.unwrap().category, Category::FileTooLarge);
}

#[tokio::test]
async fn open_files_are_capped() {
    let sb = limited(Limits {
        open_files: Some(32),
        ..Limits::default()
    });
    let r = sb
        .run(ExecRequest::code(
            "python",
            "fs = [open('/dev/null') for _ in range(100)]",
        ))
        .await
        .unwrap();
    assert_ne!(r.exit_code, Some(0));
    assert!(r.stderr.contains("Too many open files"), "{}", r.stderr);
}
