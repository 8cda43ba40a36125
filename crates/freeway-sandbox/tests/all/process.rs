//! Process control: capture, streaming, stdin, timeouts that leave no survivor, output caps.

use freeway_sandbox::{ExecRequest, Isolation, OutputChunk, Sandbox, SandboxConfig, Stream};
use tokio::sync::mpsc;

use crate::support::{config, live_in_group, sandbox};

#[tokio::test]
async fn captures_stdout_stderr_and_exit_code() {
    let sb = sandbox();
    let r = sb
        .run(ExecRequest::shell("echo out; echo err >&2; exit 3"))
        .await
        .unwrap();
    assert_eq!(r.exit_code, Some(3));
    assert_eq!(r.signal, None);
    assert_eq!(r.stdout, "out\n");
    assert_eq!(r.stderr, "err\n");
    assert!(!r.timed_out);
    assert!(!r.truncated);
    assert!(r.degraded.is_empty(), "{:?}", r.degraded);
}

#[tokio::test]
async fn argv_is_not_shell_interpreted() {
    let sb = sandbox();
    let r = sb
        .run(ExecRequest::argv(["echo", "$HOME", "a;b"]))
        .await
        .unwrap();
    assert_eq!(r.stdout, "$HOME a;b\n");
}

#[tokio::test]
async fn stdin_is_given_or_closed() {
    let sb = sandbox();
    let r = sb
        .run(ExecRequest::shell("tr a-z A-Z").with_stdin("hello"))
        .await
        .unwrap();
    assert_eq!(r.stdout, "HELLO");
    // No stdin given: reads see EOF at once instead of hanging.
    let r = sb.run(ExecRequest::shell("cat; echo done")).await.unwrap();
    assert_eq!(r.stdout, "done\n");
}

#[tokio::test]
async fn output_is_streamed_in_chunks_per_stream() {
    let sb = sandbox();
    let (tx, mut rx) = mpsc::channel::<OutputChunk>(64);
    let req = ExecRequest::shell("echo one; echo two >&2; echo three");
    let r = sb.run_streaming(req, Some(tx)).await.unwrap();
    let mut out = String::new();
    let mut err = String::new();
    while let Ok(chunk) = rx.try_recv() {
        match chunk.stream {
            Stream::Stdout => out.push_str(&chunk.text),
            Stream::Stderr => err.push_str(&chunk.text),
        }
    }
    assert_eq!(out, "one\nthree\n");
    assert_eq!(err, "two\n");
    assert_eq!(r.stdout, out);
}

#[tokio::test]
async fn reports_signal_rss_and_cpu() {
    let sb = sandbox();
    let r = sb.run(ExecRequest::shell("kill -TERM $$")).await.unwrap();
    assert_eq!(r.exit_code, None);
    assert_eq!(r.signal, Some(libc_sigterm()));
    // A process that touches ~50 MiB and burns some CPU.
    let r = sb
        .run(ExecRequest::code("python", "b = bytearray(50 * 1024 * 1024)\nfor i in range(0, len(b), 4096): b[i] = 1\nx = sum(range(3_000_000))\n"))
        .await
        .unwrap();
    assert_eq!(r.exit_code, Some(0), "{}", r.stderr);
    assert!(r.max_rss_kb > 50 * 1024, "max_rss_kb = {}", r.max_rss_kb);
    assert!(r.cpu_ms > 0);
}

fn libc_sigterm() -> i32 {
    15
}

#[tokio::test]
async fn timeout_kills_a_child_that_ignores_sigterm_and_outlives_its_parent() {
    let sb = sandbox();
    let req = ExecRequest::shell(r#"(trap "" TERM; sleep 100) & sleep 100"#).with_timeout_ms(500);
    let r = sb.run(req).await.unwrap();
    assert!(r.timed_out);
    assert!(r.pid > 1);
    let left = live_in_group(r.pid);
    assert!(
        left.is_empty(),
        "processes of group {} survived: {left:?}",
        r.pid
    );
    let d = r.diagnosis.unwrap();
    assert_eq!(d.category, freeway_sandbox::Category::Timeout);
}

#[tokio::test]
async fn background_children_do_not_outlive_a_finished_run() {
    let sb = sandbox();
    let r = sb
        .run(ExecRequest::shell(
            "sleep 100 >/dev/null 2>&1 & echo started",
        ))
        .await
        .unwrap();
    assert_eq!(r.exit_code, Some(0));
    assert!(!r.timed_out);
    assert!(live_in_group(r.pid).is_empty());
}

#[tokio::test]
async fn a_child_that_leaves_the_process_group_is_still_killed() {
    // setsid moves the child to a new group; the run's cgroup still holds it.
    let sb = sandbox();
    let marker = format!("fw-escape-{}", std::process::id());
    let req = ExecRequest::shell(format!(
        "setsid sh -c 'exec -a {marker} sleep 100' >/dev/null 2>&1 & sleep 0.2; echo ok"
    ));
    let r = sb.run(req).await.unwrap();
    assert_eq!(r.stdout, "ok\n");
    let survivors: Vec<_> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .filter(|c| String::from_utf8_lossy(c).contains(&marker))
        .collect();
    assert!(survivors.is_empty(), "escaped child survived the run");
}

#[tokio::test]
async fn output_flood_is_capped_with_a_marker() {
    let sb = Sandbox::new(SandboxConfig {
        output_limit_bytes: 64 * 1024,
        ..config()
    })
    .unwrap();
    let r = sb
        .run(ExecRequest::shell(
            "yes 'flood line' | head -c 20000000; echo; echo THE-END",
        ))
        .await
        .unwrap();
    assert_eq!(r.exit_code, Some(0));
    assert!(r.truncated);
    assert!(
        r.stdout.len() < 70 * 1024,
        "stdout kept {} bytes",
        r.stdout.len()
    );
    assert!(r.stdout.contains("bytes of stdout truncated"));
    assert!(r.stdout.starts_with("flood line\n"));
    assert!(r.stdout.ends_with("THE-END\n"), "the tail is kept");
}

#[tokio::test]
async fn endless_flood_ends_at_the_timeout() {
    let sb = Sandbox::new(SandboxConfig {
        output_limit_bytes: 16 * 1024,
        ..config()
    })
    .unwrap();
    let r = sb
        .run(ExecRequest::shell("yes").with_timeout_ms(300))
        .await
        .unwrap();
    assert!(r.timed_out);
    assert!(r.truncated);
    assert!(r.stdout.len() < 20 * 1024);
}

#[tokio::test]
async fn missing_program_gives_127_with_diagnosis() {
    let sb = sandbox();
    let r = sb
        .run(ExecRequest::argv(["definitely-not-a-command-xyz"]))
        .await
        .unwrap();
    assert_eq!(r.exit_code, Some(127));
    assert_eq!(
        r.diagnosis.unwrap().category,
        freeway_sandbox::Category::CommandNotFound
    );
}

#[tokio::test]
async fn full_access_still_controls_the_process_group() {
    let sb = sandbox();
    let req = ExecRequest::shell("sleep 100 & sleep 100")
        .with_timeout_ms(200)
        .with_isolation(Isolation::FullAccess);
    let r = sb.run(req).await.unwrap();
    assert!(r.timed_out);
    assert!(live_in_group(r.pid).is_empty());
}

#[tokio::test]
async fn programs_that_cannot_start_answer_like_a_shell() {
    use std::os::unix::fs::PermissionsExt;
    let sb = sandbox();
    let ws = &sb.config().workspace;
    let missing = sb
        .run(ExecRequest::argv(["no-such-program-xyz"]))
        .await
        .unwrap();
    assert_eq!(missing.exit_code, Some(127), "{missing:?}");
    assert!(
        missing.stderr.contains("command not found"),
        "{}",
        missing.stderr
    );

    // Executable bit without a format the kernel knows.
    let junk = ws.join("junk");
    std::fs::write(&junk, [0u8, 1, 2, 3, 4, 5, 6, 7]).unwrap();
    std::fs::set_permissions(&junk, std::fs::Permissions::from_mode(0o755)).unwrap();
    let r = sb
        .run(ExecRequest::argv([junk.display().to_string()]))
        .await
        .unwrap();
    assert_eq!(r.exit_code, Some(126), "{r:?}");
    assert!(r.stderr.contains("Exec format error"), "{}", r.stderr);

    // No executable bit.
    let plain = ws.join("plain.sh");
    std::fs::write(&plain, "#!/bin/sh\necho hi\n").unwrap();
    let r = sb
        .run(ExecRequest::argv([plain.display().to_string()]))
        .await
        .unwrap();
    assert_eq!(r.exit_code, Some(126), "{r:?}");
    assert!(r.stderr.contains("Permission denied"), "{}", r.stderr);

    // An argument with a NUL byte is the caller's mistake.
    let err = sb
        .run(ExecRequest::argv(["echo", "a\0b"]))
        .await
        .unwrap_err();
    assert_eq!(err.status_code(), 400, "{err}");
    assert!(err.to_string().contains("NUL"), "{err}");
}
