//! `freeway exec` and `freeway doctor`: help, exit statuses, human and JSON output.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

/// A scratch workspace, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new() -> Self {
        let path = std::env::temp_dir().join(format!(
            "freeway-cli-test-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn freeway(dir: &Dir, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_freeway"))
        .args(args)
        .current_dir(&dir.0)
        .env_remove("FREEWAY_CONFIG")
        .env("NO_COLOR", "1")
        .env("COLUMNS", "100")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn exec_help() {
    let dir = Dir::new();
    let out = freeway(&dir, &["exec", "--help"]);
    assert!(out.status.success());
    insta::assert_snapshot!(text(&out.stdout));
}

#[test]
fn doctor_help() {
    let dir = Dir::new();
    let out = freeway(&dir, &["doctor", "--help"]);
    assert!(out.status.success());
    insta::assert_snapshot!(text(&out.stdout));
}

#[test]
fn the_exit_status_mirrors_the_command() {
    let dir = Dir::new();
    let out = freeway(&dir, &["exec", "--shell", "echo out; echo err >&2; exit 7"]);
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(text(&out.stdout), "out\n");
    let stderr = text(&out.stderr);
    assert!(stderr.starts_with("err\n"), "{stderr}");
    assert!(stderr.contains("exit 7"), "{stderr}");
    assert!(!stderr.contains('\x1b'), "NO_COLOR is set: {stderr:?}");
    let out = freeway(&dir, &["exec", "--timeout", "200ms", "--", "sleep", "10"]);
    assert_eq!(out.status.code(), Some(124));
}

#[test]
fn a_failure_is_diagnosed_on_stderr() {
    let dir = Dir::new();
    let out = freeway(
        &dir,
        &["exec", "--", "python3", "-c", "import nosuchmodule"],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("diagnosis: missing_module"), "{stderr}");
    assert!(stderr.contains("try: pip install nosuchmodule"), "{stderr}");
}

#[test]
fn json_output_is_the_http_response() {
    let dir = Dir::new();
    std::fs::write(dir.0.join("snippet.py"), "print(6 * 7)\n").unwrap();
    let out = freeway(
        &dir,
        &[
            "exec",
            "--json",
            "--code",
            "python",
            "--source",
            "snippet.py",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["exit_code"], 0);
    assert_eq!(r["stdout"], "42\n");
    assert_eq!(r["diagnosis"], Value::Null);
    assert_eq!(r["isolation"], "workspace-write");
}

#[test]
fn a_write_outside_the_workspace_is_denied_unless_full_access() {
    let dir = Dir::new();
    let outside = Dir::new();
    let target = outside.0.join("f");
    let cmd = format!("echo x > {}", target.display());
    let out = freeway(&dir, &["exec", "--shell", &cmd]);
    assert_ne!(out.status.code(), Some(0));
    assert!(!target.exists());
    let out = freeway(
        &dir,
        &["exec", "--isolation", "full-access", "--shell", &cmd],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(target.exists());
}

#[test]
fn freeway_failures_exit_125() {
    let dir = Dir::new();
    let out = freeway(&dir, &["exec"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(text(&out.stderr).contains("nothing to run"));
    let out = freeway(&dir, &["exec", "--", "rm", "-rf", "/"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        text(&out.stderr).contains("denied by exec policy rule"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn doctor_reports_mechanisms_languages_and_the_on_missing_verdict() {
    let dir = Dir::new();
    let out = freeway(&dir, &["doctor", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = r["mechanisms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    for m in ["landlock", "seccomp", "cgroup_pids", "user_namespaces"] {
        assert!(names.contains(&m), "{m} not in {names:?}");
    }
    assert!(
        r["languages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["language"] == "python")
    );
    assert_eq!(r["sandbox"]["on_missing"], "refuse");
    let levels = r["isolation_levels"].as_array().unwrap();
    assert_eq!(levels.len(), 3);
    assert!(
        levels
            .iter()
            .all(|l| ["ready", "degrade", "refuse"].contains(&l["action"].as_str().unwrap()))
    );
    let out = freeway(&dir, &["doctor"]);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("Isolation mechanisms") && stdout.contains("Languages"),
        "{stdout}"
    );
    assert!(stdout.contains("workspace-write (default):"), "{stdout}");
}

#[test]
fn doctor_fails_on_an_unreachable_provider_and_a_missing_model_file() {
    let dir = Dir::new();
    let config = dir.0.join("freeway.toml");
    let root = dir.0.display();
    std::fs::write(
        &config,
        format!(
            r#"
[storage]
url = "sqlite://{root}/store.db"

[[providers]]
name = "nowhere"
protocol = "openai"
base_url = "http://127.0.0.1:9/v1"
api_key = "sk-doctor-SECRET"

[[providers]]
name = "offline"
protocol = "local"
model_path = "{root}/missing.gguf"
model = "m"
"#
        ),
    )
    .unwrap();
    let out = freeway(
        &dir,
        &["doctor", "--json", "--config", config.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let checks = r["checks"].as_array().unwrap();
    let by_name = |name: &str| {
        checks
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no check of {name}: {checks:?}"))
            .clone()
    };
    assert_eq!(checks[0]["kind"], "store");
    assert_eq!(checks[0]["ok"], true);
    let nowhere = by_name("nowhere");
    assert_eq!(nowhere["ok"], false);
    assert!(
        nowhere["problem"].as_str().unwrap().contains("nowhere"),
        "{nowhere}"
    );
    let offline = by_name("offline");
    assert_eq!(offline["ok"], false);
    assert!(
        offline["problem"]
            .as_str()
            .unwrap()
            .contains("missing.gguf"),
        "{offline}"
    );
    assert!(!text(&out.stdout).contains("sk-doctor-SECRET"));
}
