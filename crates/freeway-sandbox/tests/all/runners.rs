//! Code runners and the probe: languages, snippets, workspace files.

use freeway_sandbox::{ExecKind, ExecRequest, SandboxError, languages, probe};

use crate::support::sandbox;

fn available(lang: &str) -> bool {
    languages()
        .iter()
        .any(|l| l.language == lang && l.available)
}

#[test]
fn languages_lists_every_supported_runtime() {
    let langs = languages();
    let names: Vec<_> = langs.iter().map(|l| l.language).collect();
    for name in ["bash", "sh", "python", "node", "c", "cpp", "rust", "go"] {
        assert!(names.contains(&name), "{name} missing");
    }
    for l in &langs {
        assert_eq!(l.available, l.runtime.is_some());
    }
    assert!(available("sh") && available("bash"));
}

#[tokio::test]
async fn snippets_run_in_every_installed_language() {
    let sb = sandbox();
    let cases = [
        (
            "bash",
            "echo \"hello from $0\" | sed 's/from .*/from bash/'",
        ),
        ("python", "print('hello from python')"),
        ("node", "console.log('hello from node')"),
        (
            "c",
            "#include <stdio.h>\nint main(void) { puts(\"hello from c\"); return 0; }",
        ),
        (
            "cpp",
            "#include <iostream>\nint main() { std::cout << \"hello from cpp\" << std::endl; }",
        ),
        ("rust", "fn main() { println!(\"hello from rust\"); }"),
        (
            "go",
            "package main\nimport \"fmt\"\nfunc main() { fmt.Println(\"hello from go\") }",
        ),
    ];
    let mut ran = 0;
    for (lang, src) in cases {
        if !available(lang) {
            let err = sb.run(ExecRequest::code(lang, src)).await.unwrap_err();
            assert!(
                matches!(err, SandboxError::RuntimeMissing { .. }),
                "{lang}: {err}"
            );
            continue;
        }
        let r = sb
            .run(ExecRequest::code(lang, src).with_timeout_ms(120_000))
            .await
            .unwrap();
        assert_eq!(
            r.stdout,
            format!("hello from {lang}\n"),
            "{lang}: {}",
            r.stderr
        );
        assert_eq!(r.exit_code, Some(0));
        ran += 1;
    }
    assert!(ran >= 3, "only {ran} languages ran");
}

#[tokio::test]
async fn code_reads_stdin() {
    let sb = sandbox();
    let r = sb
        .run(
            ExecRequest::code("python", "import sys\nprint(sys.stdin.read().upper())")
                .with_stdin("abc"),
        )
        .await
        .unwrap();
    assert_eq!(r.stdout, "ABC\n");
}

#[tokio::test]
async fn unknown_language_is_a_bad_request() {
    let err = sandbox()
        .run(ExecRequest::code("cobol-xyz", "x"))
        .await
        .unwrap_err();
    assert_eq!(err.status_code(), 400);
}

fn file(path: &str, args: &[&str]) -> ExecRequest {
    ExecRequest::new(ExecKind::File {
        path: path.into(),
        args: args.iter().map(|s| s.to_string()).collect(),
    })
}

#[tokio::test]
async fn files_run_by_extension_shebang_or_executable_bit() {
    use std::os::unix::fs::PermissionsExt;
    let sb = sandbox();
    let ws = sb.config().workspace.clone();
    std::fs::write(ws.join("tool.py"), "import sys\nprint('py', sys.argv[1])").unwrap();
    let r = sb.run(file("tool.py", &["x"])).await.unwrap();
    assert_eq!(r.stdout, "py x\n", "{}", r.stderr);

    // Shebang, not executable, no extension.
    std::fs::write(ws.join("script"), "#!/usr/bin/env bash\necho \"bash $1\"").unwrap();
    let r = sb.run(file("script", &["y"])).await.unwrap();
    assert_eq!(r.stdout, "bash y\n", "{}", r.stderr);

    if available("c") {
        std::fs::write(
            ws.join("prog.c"),
            "#include <stdio.h>\nint main(int c, char **v) { printf(\"c %s\\n\", v[1]); }",
        )
        .unwrap();
        let r = sb.run(file("prog.c", &["z"])).await.unwrap();
        assert_eq!(r.stdout, "c z\n", "{}", r.stderr);
    }

    // Executable without extension or shebang: run as is.
    std::fs::copy("/bin/echo", ws.join("myecho")).unwrap();
    std::fs::set_permissions(ws.join("myecho"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let r = sb.run(file("myecho", &["bin"])).await.unwrap();
    assert_eq!(r.stdout, "bin\n");

    std::fs::write(ws.join("data.bin"), [0u8, 1, 2]).unwrap();
    let err = sb.run(file("data.bin", &[])).await.unwrap_err();
    assert!(err.to_string().contains("cannot tell how to run"), "{err}");
}

#[test]
fn probe_reports_the_mechanisms_this_kernel_offers() {
    let caps = probe();
    for name in [
        "landlock",
        "landlock_net",
        "seccomp",
        "cgroup_pids",
        "cgroup_memory",
        "rlimit_nproc",
    ] {
        assert!(caps.get(name).is_some(), "{name}");
    }
    // This machine (Linux 6.x, root, cgroup v1 pids) offers the mechanisms the tests rely on.
    assert!(caps.has("landlock"), "{caps:?}");
    assert!(caps.has("seccomp"), "{caps:?}");
    let json = serde_json::to_string(&caps).unwrap();
    assert!(json.contains("\"mechanisms\""));
}
