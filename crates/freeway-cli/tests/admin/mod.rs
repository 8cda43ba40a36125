//! `freeway teams`, `keys`, `usage` and `audit` against a real `freeway serve`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A scratch directory, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new() -> Self {
        let path = std::env::temp_dir().join(format!(
            "freeway-cli-admin-{}-{}",
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

/// `freeway <args>` with a clean environment: no configuration, no server or key from the
/// developer's shell, no colors, 100 columns.
fn freeway(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_freeway"))
        .args(args)
        .current_dir(dir)
        .env_remove("FREEWAY_CONFIG")
        .env_remove("FREEWAY_URL")
        .env_remove("FREEWAY_ADMIN_KEY")
        .env_remove("FREEWAY_MASTER_KEY")
        .env("NO_COLOR", "1")
        .env("COLUMNS", "100")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn help(args: &[&str]) -> String {
    let dir = Dir::new();
    let out = freeway(&dir.0, args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

#[test]
fn keys_help() {
    insta::assert_snapshot!(help(&["keys", "--help"]));
}

#[test]
fn keys_create_help() {
    insta::assert_snapshot!(help(&["keys", "create", "--help"]));
}

#[test]
fn usage_help() {
    insta::assert_snapshot!(help(&["usage", "--help"]));
}

#[test]
fn audit_verify_help() {
    insta::assert_snapshot!(help(&["audit", "verify", "--help"]));
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn no_server_is_a_clear_error() {
    let dir = Dir::new();
    let url = format!("http://127.0.0.1:{}", free_port());
    let out = freeway(&dir.0, &["teams", "list", "--url", &url, "--key", "k"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains(&url), "{stderr}");
    assert!(stderr.contains("freeway serve"), "{stderr}");
}

#[test]
fn bad_flags_fail_before_asking() {
    let dir = Dir::new();
    let url = format!("http://127.0.0.1:{}", free_port());
    let base = ["--url", url.as_str(), "--key", "k"];
    for (args, says) in [
        (
            &[
                "keys",
                "create",
                "--team",
                "t",
                "--role",
                "developer",
                "--expires-in",
                "soon",
            ][..],
            "not a duration",
        ),
        (
            &["keys", "update", "key_x", "--rpm", "5", "--clear", "rpm"][..],
            "--clear rpm",
        ),
        (&["teams", "update", "t"][..], "nothing to change"),
        (&["usage", "--since", "yesterday"][..], "--since"),
    ] {
        let out = freeway(&dir.0, &[args, &base[..]].concat());
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = text(&out.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}

/// `freeway serve` on a free port with a store in a temp dir; killed on drop.
struct Server {
    child: Child,
    url: String,
    dir: Dir,
}

impl Server {
    fn start() -> Self {
        let dir = Dir::new();
        let port = free_port();
        let config = dir.0.join("freeway.toml");
        std::fs::write(
            &config,
            format!(
                r#"[server]
listen = "127.0.0.1:{port}"
master_key = "fw-test-master"

[storage]
url = "sqlite://{db}"

# A provider, so that the embedded local model is not loaded; nothing is ever sent to it.
[[providers]]
name = "up"
protocol = "openai"
base_url = "http://127.0.0.1:9/v1"
models = ["m"]
"#,
                db = dir.0.join("freeway.db").display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.0.join("server.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_freeway"))
            .args(["serve", "--config"])
            .arg(&config)
            .env_remove("FREEWAY_CONFIG")
            .env_remove("FREEWAY_MASTER_KEY")
            .env_remove("FREEWAY_LISTEN")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut server = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            dir,
        };
        server.wait_healthy(port);
        server
    }

    fn wait_healthy(&mut self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("freeway serve exited with {status}:\n{}", self.log());
            }
            if healthz(port) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no /healthz after 60 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("server.log")).unwrap_or_default()
    }

    /// `freeway <args> --url <server> --key <master key>`.
    fn run(&self, args: &[&str]) -> Output {
        self.run_with_key("fw-test-master", args)
    }

    fn run_with_key(&self, key: &str, args: &[&str]) -> Output {
        let all = [args, &["--url", &self.url, "--key", key][..]].concat();
        freeway(&self.dir.0, &all)
    }

    /// The command's stdout, asserting it succeeded.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "freeway {args:?} failed: {}\n--- server log:\n{}",
            text(&out.stderr),
            self.log()
        );
        text(&out.stdout)
    }

    fn json(&self, args: &[&str]) -> Value {
        let stdout = self.ok(&[args, &["--json"][..]].concat());
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {stdout}"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn healthz(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200")
}

#[test]
fn teams_keys_usage_and_audit_against_a_running_server() {
    let server = Server::start();

    // Teams.
    let team = server.json(&[
        "teams",
        "create",
        "research",
        "--budget-usd",
        "10",
        "--rpm",
        "100",
    ]);
    assert_eq!(team["name"], "research", "{team}");
    assert_eq!(team["budget_usd"], 10.0, "{team}");
    assert_eq!(team["rpm"], 100, "{team}");
    let listed = server.ok(&["teams", "list"]);
    assert!(listed.contains("research"), "{listed}");
    assert!(listed.contains("$10.0000/month"), "{listed}");
    let updated = server.json(&[
        "teams", "update", "research", "--tpm", "5000", "--clear", "rpm",
    ]);
    assert_eq!(updated["tpm"], 5000, "{updated}");
    assert!(updated["rpm"].is_null(), "{updated}");
    let shown = server.ok(&["teams", "show", "research"]);
    assert!(shown.contains("5,000 per minute"), "{shown}");

    // A key: the secret once, the prefix after.
    let key = server.json(&[
        "keys",
        "create",
        "--team",
        "research",
        "--role",
        "developer",
        "--name",
        "ci",
        "--expires-in",
        "30d",
    ]);
    let secret = key["key"].as_str().unwrap().to_owned();
    let id = key["id"].as_str().unwrap().to_owned();
    let prefix = key["prefix"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("fw-"), "{key}");
    assert!(secret.starts_with(&prefix), "{key}");
    assert!(key["expires_at"].is_number(), "{key}");
    let listed = server.ok(&["keys", "list", "--team", "research"]);
    assert!(listed.contains(&prefix), "{listed}");
    assert!(listed.contains(&id), "{listed}");
    assert!(
        !listed.contains(&secret),
        "the secret is never listed: {listed}"
    );

    // The human form prints the secret with the warning that it shows once.
    let out = server.run(&["keys", "create", "--team", "research", "--role", "viewer"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.lines().any(|l| l.trim().starts_with("fw-")),
        "{stdout}"
    );
    assert!(
        text(&out.stderr).contains("shown only now"),
        "{}",
        text(&out.stderr)
    );

    // Rotate, then revoke.
    let rotated = server.json(&["keys", "rotate", &id, "--grace", "1m"]);
    let new_secret = rotated["key"].as_str().unwrap();
    assert!(
        new_secret.starts_with("fw-") && new_secret != secret,
        "{rotated}"
    );
    assert!(rotated["rotated_at"].is_number(), "{rotated}");
    let out = server.ok(&["keys", "revoke", &id]);
    assert!(out.contains("revoked key"), "{out}");
    let active = server.json(&["keys", "list"]);
    assert!(
        active["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["id"] != id.as_str()),
        "a revoked key is left out: {active}"
    );
    let all = server.json(&["keys", "list", "--all"]);
    let revoked = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id.as_str())
        .unwrap_or_else(|| panic!("--all lists revoked keys: {all}"));
    assert!(revoked["revoked_at"].is_number(), "{revoked}");

    // Usage: nothing was called, but the document is whole.
    let usage = server.json(&["usage", "--group-by", "team", "--since", "7d"]);
    assert_eq!(usage["group_by"], "team", "{usage}");
    assert!(usage["data"].is_array(), "{usage}");
    assert!(usage["total"]["requests"].is_number(), "{usage}");
    server.ok(&["usage"]);

    // The audit log has every action, intact.
    let audit = server.json(&["audit", "list"]);
    let entries = audit["data"].as_array().unwrap();
    let actions: Vec<&str> = entries
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for action in ["team.create", "key.create"] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
    let seqs: Vec<i64> = entries.iter().filter_map(|e| e["seq"].as_i64()).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] > w[1]),
        "newest first: {seqs:?}"
    );
    let creates = server.json(&["audit", "list", "--action", "key.create"]);
    assert_eq!(creates["data"].as_array().unwrap().len(), 2, "{creates}");
    let table = server.ok(&["audit", "list", "--oldest-first", "--limit", "2"]);
    assert!(table.contains("team.create"), "{table}");

    let out = server.run(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("intact"),
        "{}",
        text(&out.stdout)
    );
    let verified = server.json(&["audit", "verify"]);
    assert_eq!(verified["ok"], true, "{verified}");
    assert_eq!(verified["entries"], entries.len(), "{verified}");

    let file = server.dir.0.join("audit.jsonl");
    server.ok(&["audit", "export", "--output", file.to_str().unwrap()]);
    let exported = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<Value> = exported
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), entries.len(), "{exported}");
    let seqs: Vec<i64> = lines.iter().filter_map(|e| e["seq"].as_i64()).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "oldest first: {seqs:?}"
    );
    assert_eq!(
        server.ok(&["audit", "export"]),
        exported,
        "stdout gets the same lines"
    );

    // The server's refusals, in its words, with exit status 1.
    let out = server.run(&["keys", "create", "--team", "nope", "--role", "developer"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("nope"),
        "the message names the team: {stderr}"
    );
    let out = server.run_with_key("wrong", &["teams", "list"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("invalid API key"), "{stderr}");
    assert!(
        stderr.contains("--key"),
        "a hint says how to send one: {stderr}"
    );
}
