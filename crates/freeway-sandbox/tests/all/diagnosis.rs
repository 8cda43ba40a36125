//! Each diagnosis class produced by a real failing command.

use std::net::TcpListener;

use freeway_sandbox::{
    Category, Diagnosis, ExecRequest, ExecResult, Isolation, Sandbox, SandboxConfig,
    analysis_prompt,
};

use crate::support::{config, sandbox};

async fn diagnose(sb: &Sandbox, req: ExecRequest) -> (ExecResult, Diagnosis) {
    let r = sb.run(req).await.unwrap();
    assert!(!r.success(), "expected a failure: {r:?}");
    let d = r.diagnosis.clone().expect("a failed run has a diagnosis");
    assert!(d.confidence > 0.0 && d.confidence <= 1.0);
    (r, d)
}

#[tokio::test]
async fn command_not_found() {
    let (_, d) = diagnose(
        &sandbox(),
        ExecRequest::shell("nonexistent_tool_xyz --version"),
    )
    .await;
    assert_eq!(d.category, Category::CommandNotFound);
    assert!(
        d.evidence
            .iter()
            .any(|l| l.contains("nonexistent_tool_xyz")),
        "{d:?}"
    );
    assert!(
        d.suggestions[0].contains("command -v nonexistent_tool_xyz"),
        "{d:?}"
    );
}

#[tokio::test]
async fn permission_denied_on_a_non_executable_script() {
    let sb = sandbox();
    std::fs::write(sb.config().workspace.join("run.sh"), "echo hi\n").unwrap();
    let (r, d) = diagnose(&sb, ExecRequest::shell("./run.sh")).await;
    assert_eq!(r.exit_code, Some(126));
    assert_eq!(d.category, Category::PermissionDenied);
    assert!(
        d.suggestions.iter().any(|s| s.starts_with("chmod +x")),
        "{d:?}"
    );
}

#[tokio::test]
async fn missing_python_module() {
    let (_, d) = diagnose(
        &sandbox(),
        ExecRequest::code("python", "import definitely_missing_mod_xyz.sub"),
    )
    .await;
    assert_eq!(d.category, Category::MissingModule);
    assert_eq!(
        d.suggestions,
        vec!["pip install definitely_missing_mod_xyz"]
    );
    assert!(d.evidence[0].contains("ModuleNotFoundError"));
}

#[tokio::test]
async fn missing_node_package() {
    let (_, d) = diagnose(
        &sandbox(),
        ExecRequest::code("node", "require('@scope-xyz/missing-pkg/sub')"),
    )
    .await;
    assert_eq!(d.category, Category::MissingModule);
    assert_eq!(d.suggestions, vec!["npm install @scope-xyz/missing-pkg"]);
}

#[tokio::test]
async fn missing_rust_crate() {
    let src = "use serde_missing_xyz::Deserialize;\nfn main() {}\n";
    let (_, d) = diagnose(
        &sandbox(),
        ExecRequest::code("rust", src).with_timeout_ms(60_000),
    )
    .await;
    assert_eq!(d.category, Category::MissingModule, "{d:?}");
    assert_eq!(d.suggestions, vec!["cargo add serde_missing_xyz"]);
}

#[tokio::test]
async fn missing_file() {
    let (_, d) = diagnose(&sandbox(), ExecRequest::shell("cat does-not-exist.txt")).await;
    assert_eq!(d.category, Category::MissingFile);
    assert!(d.evidence[0].contains("does-not-exist.txt"));
    let (_, d) = diagnose(
        &sandbox(),
        ExecRequest::code("python", "open('data/missing.csv')"),
    )
    .await;
    assert_eq!(d.category, Category::MissingFile);
    assert!(d.suggestions[0].starts_with("ls -la data"), "{d:?}");
}

#[tokio::test]
async fn syntax_errors() {
    let (_, d) = diagnose(
        &sandbox(),
        ExecRequest::code("python", "def f(:\n    pass\n"),
    )
    .await;
    assert_eq!(d.category, Category::SyntaxError);
    assert!(d.suggestions[0].contains("main.py:1"), "{d:?}");
    let (_, d) = diagnose(&sandbox(), ExecRequest::shell("if then fi")).await;
    assert_eq!(d.category, Category::SyntaxError);
    let (r, d) = diagnose(
        &sandbox(),
        ExecRequest::code("c", "int main( { return 0; }"),
    )
    .await;
    assert_eq!(d.category, Category::SyntaxError, "{}", r.stderr);
    assert!(r.stderr.starts_with("[freeway: compilation failed]"));
}

#[tokio::test]
async fn compile_error() {
    let (_, d) = diagnose(
        &sandbox(),
        ExecRequest::code("c", "int main(void) { return undeclared_thing; }"),
    )
    .await;
    assert_eq!(d.category, Category::CompileError, "{d:?}");
}

#[tokio::test]
async fn port_in_use() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let sb = Sandbox::new(SandboxConfig {
        network: true,
        ..config()
    })
    .unwrap();
    let src =
        format!("import socket\ns = socket.socket()\ns.bind(('127.0.0.1', {port}))\ns.listen()\n");
    let (_, d) = diagnose(&sb, ExecRequest::code("python", src)).await;
    assert_eq!(d.category, Category::PortInUse);
    assert!(d.evidence[0].contains("Address already in use"));
    drop(listener);
}

#[tokio::test]
async fn network_unreachable_when_not_allowed() {
    let (_, d) = diagnose(
        &sandbox(),
        ExecRequest::code(
            "python",
            "import urllib.request\nurllib.request.urlopen('http://127.0.0.1:9/', timeout=3)",
        ),
    )
    .await;
    assert_eq!(d.category, Category::NetworkUnreachable, "{d:?}");
}

#[tokio::test]
async fn disk_full() {
    let (_, d) = diagnose(
        &sandbox(),
        ExecRequest::shell("head -c 10 /dev/zero > /dev/full"),
    )
    .await;
    assert_eq!(d.category, Category::DiskFull);
    assert!(d.suggestions[0].starts_with("df -h"));
}

#[tokio::test]
async fn killed_by_sigkill_reads_as_out_of_memory() {
    let (r, d) = diagnose(&sandbox(), ExecRequest::shell("kill -KILL $$")).await;
    assert_eq!(r.signal, Some(9));
    assert_eq!(d.category, Category::OutOfMemory);
    assert!(d.confidence < 0.9, "no memory evidence: lower confidence");
}

#[tokio::test]
async fn unknown_failure_keeps_the_last_lines() {
    let (_, d) = diagnose(
        &sandbox(),
        ExecRequest::shell("echo something odd >&2; exit 4"),
    )
    .await;
    assert_eq!(d.category, Category::Unknown);
    assert_eq!(d.evidence, vec!["something odd"]);
}

#[tokio::test]
async fn success_has_no_diagnosis_and_the_prompt_seam_carries_the_failure() {
    let sb = sandbox();
    assert!(
        sb.run(ExecRequest::shell("true"))
            .await
            .unwrap()
            .diagnosis
            .is_none()
    );
    let req = ExecRequest::shell("cat nope.txt").with_isolation(Isolation::ReadOnly);
    let r = sb.run(req.clone()).await.unwrap();
    let prompt = analysis_prompt(&req, &r);
    assert!(prompt.contains("command: cat nope.txt"));
    assert!(prompt.contains("nope.txt: No such file or directory"));
    assert!(prompt.contains("MissingFile"));
    assert!(prompt.contains("suggested_commands"));
}

#[test]
fn results_serialize_in_the_exec_contract_shape() {
    let req: ExecRequest = serde_json::from_str(
        r#"{"kind":"command","command":["ls","-l"],"cwd":"/tmp","timeout_ms":5,"isolation":"read-only","analyze":true}"#,
    )
    .unwrap();
    assert_eq!(req.isolation, Some(Isolation::ReadOnly));
    let req: ExecRequest =
        serde_json::from_str(r#"{"kind":"code","language":"python","source":"print(1)"}"#).unwrap();
    assert!(matches!(req.kind, freeway_sandbox::ExecKind::Code { .. }));
    let req: ExecRequest = serde_json::from_str(r#"{"kind":"file","path":"x.py"}"#).unwrap();
    assert!(matches!(req.kind, freeway_sandbox::ExecKind::File { .. }));
    let result = ExecResult {
        exit_code: Some(1),
        signal: None,
        stdout: String::new(),
        stderr: "x".into(),
        duration_ms: 3,
        timed_out: false,
        truncated: false,
        max_rss_kb: 10,
        cpu_ms: 1,
        diagnosis: Some(Diagnosis {
            category: Category::MissingFile,
            evidence: vec![],
            suggestions: vec![],
            confidence: 0.5,
        }),
        isolation: Isolation::WorkspaceWrite,
        network_denied: true,
        degraded: vec![],
        limit_hit: None,
        pid: 1,
    };
    let v = serde_json::to_value(&result).unwrap();
    for key in [
        "exit_code",
        "signal",
        "stdout",
        "stderr",
        "duration_ms",
        "timed_out",
        "truncated",
        "max_rss_kb",
        "cpu_ms",
    ] {
        assert!(v.get(key).is_some(), "{key}");
    }
    assert_eq!(v["diagnosis"]["category"], "missing_file");
    assert_eq!(v["isolation"], "workspace-write");
}
