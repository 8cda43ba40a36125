//! Escape attempts: each must be denied with a clear reason, and the same action must succeed
//! where the policy allows it (so the test can fail).

use std::io::Read;
use std::net::TcpListener;

use freeway_sandbox::{
    Category, ExecRequest, Isolation, OnMissing, Sandbox, SandboxConfig, SandboxError, probe,
};

use crate::support::{config, sandbox, without, workspace};

fn outside_path(tag: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("fw-outside-{tag}-{}", std::process::id()))
}

#[tokio::test]
async fn write_outside_the_workspace_is_denied() {
    let sb = sandbox();
    let target = outside_path("write");
    let _ = std::fs::remove_file(&target);
    let r = sb
        .run(ExecRequest::shell(format!(
            "echo pwned > {}",
            target.display()
        )))
        .await
        .unwrap();
    assert_ne!(r.exit_code, Some(0));
    assert!(r.stderr.contains("Permission denied"), "{}", r.stderr);
    assert!(
        !target.exists(),
        "the file was written outside the workspace"
    );
    let d = r.diagnosis.unwrap();
    assert_eq!(d.category, Category::PermissionDenied);
    assert!(
        d.suggestions
            .iter()
            .any(|s| s.contains("only inside the working directory")),
        "{:?}",
        d.suggestions
    );
}

#[tokio::test]
async fn workspace_and_private_tmp_are_writable() {
    let sb = sandbox();
    let r = sb
        .run(ExecRequest::shell(
            "echo a > inside.txt && echo b > \"$TMPDIR/t\" && cat inside.txt \"$TMPDIR/t\"",
        ))
        .await
        .unwrap();
    assert_eq!(r.exit_code, Some(0), "{}", r.stderr);
    assert_eq!(r.stdout, "a\nb\n");
    assert!(sb.config().workspace.join("inside.txt").exists());
}

#[tokio::test]
async fn a_temp_dir_is_private_to_its_run() {
    async fn dirs(sb: &Sandbox, script: &str) -> freeway_sandbox::ExecResult {
        let req = ExecRequest::shell(script).with_isolation(Isolation::FullAccess);
        sb.run(req).await.unwrap()
    }
    let sb = sandbox();
    // An empty temp dir is handed on: the next run gets the same path, still empty and 0700,
    // even after a full-access run opened it up.
    let first = dirs(&sb, "echo \"$TMPDIR\"; chmod 777 \"$TMPDIR\"").await;
    let second = dirs(
        &sb,
        "echo \"$TMPDIR\"; stat -c %a \"$TMPDIR\"; ls -A \"$TMPDIR\" | wc -l",
    )
    .await;
    let lines: Vec<&str> = second.stdout.lines().collect();
    assert_eq!(lines[0], first.stdout.trim(), "reused");
    assert_eq!(&lines[1..], ["700", "0"], "{}", second.stdout);
    // One that holds something is removed and never seen again.
    let third = dirs(&sb, "echo \"$TMPDIR\"; echo secret > \"$TMPDIR/left\"").await;
    let path = third.stdout.trim().to_owned();
    assert!(!std::path::Path::new(&path).exists(), "{path} removed");
    let fourth = dirs(&sb, "echo \"$TMPDIR\"; ls -A \"$TMPDIR\" | wc -l").await;
    let lines: Vec<&str> = fourth.stdout.lines().collect();
    assert_ne!(lines[0], path);
    assert_eq!(lines[1], "0");
    // A symlink put in its place is not followed: the dir is not reused and the target stays.
    let target = workspace();
    std::fs::write(target.join("keep"), "x").unwrap();
    let fifth = dirs(
        &sb,
        &format!(
            "d=\"$TMPDIR\"; echo \"$d\"; rmdir \"$d\" && ln -s {} \"$d\"",
            target.display()
        ),
    )
    .await;
    assert_eq!(fifth.exit_code, Some(0), "{}", fifth.stderr);
    let sixth = dirs(&sb, "echo \"$TMPDIR\"").await;
    assert_ne!(sixth.stdout, fifth.stdout);
    assert!(target.join("keep").exists());
    assert!(!std::path::Path::new(fifth.stdout.trim()).exists());
}

#[tokio::test]
async fn read_only_denies_writes_in_the_workspace_too() {
    let sb = sandbox();
    let r = sb
        .run(ExecRequest::shell("echo a > inside.txt").with_isolation(Isolation::ReadOnly))
        .await
        .unwrap();
    assert_ne!(r.exit_code, Some(0));
    assert!(r.stderr.contains("Permission denied"), "{}", r.stderr);
    assert!(!sb.config().workspace.join("inside.txt").exists());
    // Reading still works.
    let r = sb
        .run(
            ExecRequest::shell("head -c 4 /etc/hostname >/dev/null && echo ok")
                .with_isolation(Isolation::ReadOnly),
        )
        .await
        .unwrap();
    assert_eq!(r.stdout, "ok\n", "{}", r.stderr);
}

#[tokio::test]
async fn full_access_can_write_outside() {
    let sb = sandbox();
    let target = outside_path("full");
    let r = sb
        .run(
            ExecRequest::shell(format!("echo ok > {}", target.display()))
                .with_isolation(Isolation::FullAccess),
        )
        .await
        .unwrap();
    assert_eq!(r.exit_code, Some(0), "{}", r.stderr);
    assert!(target.exists());
    std::fs::remove_file(target).unwrap();
}

#[tokio::test]
async fn reading_a_denied_path_is_denied() {
    let secret_dir = workspace();
    std::fs::write(secret_dir.join("id_rsa"), "TOP-SECRET-KEY-MATERIAL").unwrap();
    let sb = Sandbox::new(SandboxConfig {
        deny_read: vec![secret_dir.clone()],
        ..config()
    })
    .unwrap();
    let file = secret_dir.join("id_rsa");
    let r = sb
        .run(ExecRequest::shell(format!("cat {}", file.display())))
        .await
        .unwrap();
    assert_ne!(r.exit_code, Some(0));
    assert!(r.stderr.contains("Permission denied"), "{}", r.stderr);
    assert!(!r.stdout.contains("TOP-SECRET"));
    // A sibling of the denied directory stays readable.
    let sibling = workspace();
    std::fs::write(sibling.join("ok.txt"), "visible").unwrap();
    let r = sb
        .run(ExecRequest::shell(format!(
            "cat {}/ok.txt",
            sibling.display()
        )))
        .await
        .unwrap();
    assert_eq!(r.stdout, "visible", "{}", r.stderr);
    // Without the rule the same read works (the test can fail).
    let open = sandbox();
    let r = open
        .run(ExecRequest::shell(format!("cat {}", file.display())))
        .await
        .unwrap();
    assert_eq!(r.stdout, "TOP-SECRET-KEY-MATERIAL");
}

const CONNECT_PY: &str = "import socket, sys\ns = socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=5)\ns.sendall(b'hello')\nprint('connected')\n";

async fn connect_from_sandbox(sb: &Sandbox, port: u16) -> freeway_sandbox::ExecResult {
    let ws = &sb.config().workspace;
    std::fs::write(ws.join("connect.py"), CONNECT_PY).unwrap();
    sb.run(ExecRequest::new(freeway_sandbox::ExecKind::File {
        path: "connect.py".into(),
        args: vec![port.to_string()],
    }))
    .await
    .unwrap()
}

#[tokio::test]
async fn connecting_to_a_local_listener_is_denied() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let sb = sandbox();
    let r = connect_from_sandbox(&sb, port).await;
    assert_ne!(r.exit_code, Some(0));
    assert!(r.network_denied);
    assert!(r.stderr.contains("Permission denied"), "{}", r.stderr);
    let d = r.diagnosis.unwrap();
    assert_eq!(d.category, Category::NetworkUnreachable, "{d:?}");
    assert!(d.suggestions[0].contains("denied by the sandbox"));
    // bash's /dev/tcp and UDP are refused too.
    let r = sb
        .run(ExecRequest::argv([
            "bash",
            "-c",
            &format!("echo x > /dev/tcp/127.0.0.1/{port}"),
        ]))
        .await
        .unwrap();
    assert_ne!(r.exit_code, Some(0));
    let r = sb
        .run(ExecRequest::code("python", "import socket\nsocket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('127.0.0.1', 9))"))
        .await
        .unwrap();
    assert!(r.stderr.contains("Permission denied"), "{}", r.stderr);
}

#[tokio::test]
async fn network_allowed_by_policy_connects() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let accept = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).unwrap();
        buf
    });
    let sb = Sandbox::new(SandboxConfig {
        network: true,
        ..config()
    })
    .unwrap();
    let r = connect_from_sandbox(&sb, port).await;
    assert_eq!(r.exit_code, Some(0), "{}", r.stderr);
    assert!(!r.network_denied);
    assert_eq!(&accept.join().unwrap(), b"hello");
}

#[tokio::test]
async fn environment_is_scrubbed_to_the_allow_list() {
    // Set for this test process by the test runner, and not on the allow list.
    let key = "CARGO_MANIFEST_DIR";
    assert!(std::env::var(key).is_ok());
    let sb = sandbox();
    let mut req = ExecRequest::shell(format!(
        "echo \"[${key}]\"; echo \"[$GIVEN]\"; test -n \"$PATH\" && echo path"
    ));
    req.env.insert("GIVEN".into(), "yes".into());
    let r = sb.run(req).await.unwrap();
    assert_eq!(r.stdout, "[]\n[yes]\npath\n");
}

#[tokio::test]
async fn a_missing_mechanism_refuses_or_degrades_visibly() {
    let caps = without(&probe(), "landlock");
    let refuse = Sandbox::with_capabilities(config(), caps.clone()).unwrap();
    let err = refuse.run(ExecRequest::shell("true")).await.unwrap_err();
    assert!(
        matches!(
            err,
            SandboxError::Unavailable {
                mechanism: "landlock",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(err.status_code(), 503);

    let degrade = Sandbox::with_capabilities(
        SandboxConfig {
            on_missing: OnMissing::Degrade,
            ..config()
        },
        caps,
    )
    .unwrap();
    let target = outside_path("degraded");
    let r = degrade
        .run(ExecRequest::shell(format!("echo x > {}", target.display())))
        .await
        .unwrap();
    assert_eq!(r.exit_code, Some(0));
    assert!(
        r.degraded.iter().any(|d| d.starts_with("landlock")),
        "{:?}",
        r.degraded
    );
    std::fs::remove_file(target).unwrap();
}
