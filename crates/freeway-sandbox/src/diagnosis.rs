//! Deterministic diagnosis of a failed run: a category, the output lines that show it
//! (evidence), commands or changes that fix it (suggestions) and a confidence.
//!
//! A model-based analysis is not done here (it needs the gateway); [`analysis_prompt`] builds the
//! context a caller sends to a model, and [`ModelAnalysis`] is the JSON shape it asks for.

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::types::{ExecRequest, ExecResult, LimitHit};

/// What went wrong, in classes a user knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// The program is not installed or not on PATH.
    CommandNotFound,
    /// A file or directory could not be accessed (including sandbox write denials).
    PermissionDenied,
    /// A module, package or crate is not installed.
    MissingModule,
    /// A file or directory does not exist.
    MissingFile,
    /// The source does not parse.
    SyntaxError,
    /// The source parses but does not compile.
    CompileError,
    /// A listening port is taken.
    PortInUse,
    /// The network cannot be reached (or the sandbox denies it).
    NetworkUnreachable,
    /// Memory ran out (allocation failure, OOM kill, address-space limit).
    OutOfMemory,
    /// Killed by a signal for another or unknown reason.
    Killed,
    /// The run exceeded its timeout.
    Timeout,
    /// The disk is full.
    DiskFull,
    /// The CPU-seconds limit was reached.
    CpuLimit,
    /// The file-size limit was reached.
    FileTooLarge,
    /// The process-count limit refused a fork.
    ProcessLimit,
    /// None of the above.
    Unknown,
}

/// Diagnosis of a failed run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Diagnosis {
    /// Class of failure.
    pub category: Category,
    /// Output lines that show it.
    pub evidence: Vec<String>,
    /// Runnable commands or concrete changes that fix it.
    pub suggestions: Vec<String>,
    /// 0..1.
    pub confidence: f32,
}

/// What the diagnosis looks at, besides the output.
#[derive(Debug, Clone, Copy, Default)]
pub struct Context<'a> {
    /// The command line as run.
    pub command: &'a str,
    /// Network was denied to the run.
    pub network_denied: bool,
    /// Writes were restricted to the workspace and temp dir.
    pub writes_restricted: bool,
    /// Timeout that applied, in ms.
    pub timeout_ms: u64,
}

#[derive(Debug)]
struct Patterns {
    py_module: Regex,
    node_module: Regex,
    rust_crate: Regex,
    go_package: Regex,
    c_header: Regex,
    not_found_cmd: Regex,
    port_in_use: Regex,
    port_number: Regex,
    network: Regex,
    net_context: Regex,
    denied: Regex,
    oom: Regex,
    disk_full: Regex,
    too_large: Regex,
    proc_limit: Regex,
    missing_file: Regex,
    quoted_path: Regex,
    syntax: Regex,
    compile: Regex,
    location: Regex,
}

/// Compiled diagnosis patterns; build once (a [`crate::Sandbox`] holds one) and reuse.
#[derive(Debug)]
pub struct Diagnoser {
    p: Patterns,
}

impl Diagnoser {
    /// Compile the patterns.
    pub fn new() -> Result<Self, crate::SandboxError> {
        let re = |p: &str| {
            Regex::new(p).map_err(|e| crate::SandboxError::InvalidRule {
                name: "diagnosis".into(),
                detail: e.to_string(),
            })
        };
        Ok(Self {
            p: Patterns {
                py_module: re(
                    r#"(?:ModuleNotFoundError|ImportError): No module named '?([A-Za-z0-9_.]+)'?"#,
                )?,
                node_module: re(r"Cannot find (?:module|package) '([^']+)'")?,
                rust_crate: re(
                    r"(?:unresolved import|can't find crate for|use of (?:undeclared|unresolved) (?:crate|module)(?: or module)?) `([A-Za-z0-9_]+)",
                )?,
                go_package: re(
                    r#"(?:no required module provides package|cannot find package) "?([^\s";]+)"#,
                )?,
                c_header: re(r"fatal error: ([\w/.+-]+\.h(?:pp)?): No such file or directory")?,
                not_found_cmd: re(
                    r"(?:^|\s|:)([\w.+-]+): (?:command not found|not found)\s*$|No command '([^']+)' found|exec: \W?([\w.+-]+)\W?: executable file not found",
                )?,
                port_in_use: re(
                    r"(?i)address already in use|EADDRINUSE|port \d+ is (?:already )?in use",
                )?,
                port_number: re(r":(\d{2,5})\b|port (\d{2,5})")?,
                network: re(
                    r"(?i)network is unreachable|could not resolve host|temporary failure in name resolution|name or service not known|getaddrinfo|(?-i:\bENOTFOUND\b|\bEAI_AGAIN\b)|failed to establish a new connection|NewConnectionError|urlopen error|no route to host|connection refused|couldn't connect to server",
                )?,
                net_context: re(
                    r"(?i)socket|connect|urlopen|https?://|curl|wget|getaddrinfo|resolve|requests\.|urllib",
                )?,
                denied: re(
                    r"(?i)permission denied|operation not permitted|EACCES|EPERM|PermissionError|read-only file system",
                )?,
                oom: re(
                    r"(?i)MemoryError|cannot allocate memory|out of memory|std::bad_alloc|memory allocation of \d+ bytes failed|ENOMEM|heap out of memory|failed to allocate",
                )?,
                too_large: re(r"(?i)file too large|EFBIG|File size limit exceeded")?,
                disk_full: re(r"(?i)no space left on device|ENOSPC|disk quota exceeded")?,
                proc_limit: re(
                    r"(?i)fork: (?:retry: )?resource temporarily unavailable|can't fork|cannot fork|BlockingIOError: \[Errno 11\]|EAGAIN.*(?:fork|spawn)|fork failed|pthread_create.*(?:EAGAIN|Resource temporarily)",
                )?,
                missing_file: re(
                    r"(?i)no such file or directory|FileNotFoundError|ENOENT|can't open file|cannot find the (?:file|path)|does not exist",
                )?,
                quoted_path: re(r#"['"]([^'"]+)['"]|(?:^|\s)(/[^\s:]+|\./[^\s:]+)"#)?,
                syntax: re(
                    r"(?i)SyntaxError|IndentationError|TabError|syntax error|parse error|unexpected token|unexpected end of file|unexpected EOF|expected .+ before|error: expected",
                )?,
                compile: re(
                    r"error(?:\[E\d+\])?:|: error:|undefined reference to|cannot find symbol",
                )?,
                location: re(r#"File "([^"]+)", line (\d+)|([\w./-]+\.\w+):(\d+)(?::\d+)?"#)?,
            },
        })
    }

    /// Diagnose a finished run; `None` when it succeeded.
    pub fn diagnose(&self, result: &ExecResult, ctx: &Context<'_>) -> Option<Diagnosis> {
        diagnose(&self.p, result, ctx)
    }
}

fn evidence(text: &str, re: &Regex) -> Vec<String> {
    text.lines()
        .filter(|l| re.is_match(l))
        .take(5)
        .map(|l| l.trim().chars().take(300).collect())
        .collect()
}

fn diag(
    category: Category,
    evidence: Vec<String>,
    suggestions: Vec<String>,
    confidence: f32,
) -> Option<Diagnosis> {
    Some(Diagnosis {
        category,
        evidence,
        suggestions,
        confidence,
    })
}

/// Python import names whose package has another name.
fn pip_name(module: &str) -> &str {
    let top = module.split('.').next().unwrap_or(module);
    match top {
        "cv2" => "opencv-python",
        "yaml" => "pyyaml",
        "PIL" => "pillow",
        "sklearn" => "scikit-learn",
        "bs4" => "beautifulsoup4",
        "dateutil" => "python-dateutil",
        "dotenv" => "python-dotenv",
        "jwt" => "pyjwt",
        "serial" => "pyserial",
        other => other,
    }
}

fn diagnose(p: &Patterns, result: &ExecResult, ctx: &Context<'_>) -> Option<Diagnosis> {
    if result.success() {
        return None;
    }
    let text = format!("{}\n{}", result.stderr, result.stdout);
    if result.timed_out {
        return diag(
            Category::Timeout,
            tail_lines(&text, 3),
            vec![
                format!("raise timeout_ms (it was {} ms) if the work is expected to take longer", ctx.timeout_ms),
                "check for a prompt waiting on stdin, an endless loop, or a server started in the foreground".into(),
            ],
            0.95,
        );
    }
    match result.limit_hit {
        Some(LimitHit::Cpu) => {
            return diag(
                Category::CpuLimit,
                tail_lines(&text, 3),
                vec!["raise limits.cpu_seconds, or make the computation cheaper".into()],
                0.9,
            );
        }
        Some(LimitHit::FileSize) => {
            return diag(
                Category::FileTooLarge,
                tail_lines(&text, 3),
                vec!["raise limits.file_size_bytes, or write less data".into()],
                0.9,
            );
        }
        Some(LimitHit::Processes) => {
            let ev = evidence(&text, &p.proc_limit);
            return diag(
                Category::ProcessLimit,
                if ev.is_empty() { tail_lines(&text, 3) } else { ev },
                vec!["the run reached limits.max_processes: reduce parallelism (e.g. make -j2), or raise the limit".into()],
                0.9,
            );
        }
        Some(LimitHit::Memory) => {
            let ev = tail_lines(&text, 3);
            return diag(
                Category::OutOfMemory,
                std::iter::once("killed by the kernel's OOM killer: the run reached limits.memory_bytes (memory cgroup)".to_owned())
                    .chain(ev)
                    .collect(),
                vec!["raise limits.memory_bytes, or process the data in smaller pieces".into()],
                0.95,
            );
        }
        None => {}
    }
    // Most specific text patterns first.
    if let Some(c) = p.py_module.captures(&text) {
        let module = c.get(1).map_or("", |m| m.as_str());
        return diag(
            Category::MissingModule,
            evidence(&text, &p.py_module),
            vec![format!("pip install {}", pip_name(module))],
            0.9,
        );
    }
    if let Some(c) = p.node_module.captures(&text) {
        let module = c.get(1).map_or("", |m| m.as_str());
        if module.starts_with('.') || module.starts_with('/') {
            return diag(
                Category::MissingFile,
                evidence(&text, &p.node_module),
                vec![format!(
                    "check that {module} exists relative to the requiring file"
                )],
                0.8,
            );
        }
        let package = if module.starts_with('@') {
            module.splitn(3, '/').take(2).collect::<Vec<_>>().join("/")
        } else {
            module.split('/').next().unwrap_or(module).to_string()
        };
        return diag(
            Category::MissingModule,
            evidence(&text, &p.node_module),
            vec![format!("npm install {package}")],
            0.9,
        );
    }
    if let Some(c) = p.rust_crate.captures(&text) {
        let krate = c.get(1).map_or("", |m| m.as_str());
        if !matches!(krate, "crate" | "self" | "super" | "std" | "core" | "alloc") {
            return diag(
                Category::MissingModule,
                evidence(&text, &p.rust_crate),
                vec![format!("cargo add {krate}")],
                0.75,
            );
        }
    }
    if let Some(c) = p.go_package.captures(&text) {
        let pkg = c.get(1).map_or("", |m| m.as_str());
        return diag(
            Category::MissingModule,
            evidence(&text, &p.go_package),
            vec![format!("go get {pkg}")],
            0.85,
        );
    }
    if let Some(c) = p.c_header.captures(&text) {
        let header = c.get(1).map_or("", |m| m.as_str());
        return diag(
            Category::MissingModule,
            evidence(&text, &p.c_header),
            vec![format!(
                "apt-file search {header}   # then apt-get install the -dev package that provides it"
            )],
            0.8,
        );
    }
    if p.port_in_use.is_match(&text) {
        let ev = evidence(&text, &p.port_in_use);
        let port = p
            .port_number
            .captures(&format!("{} {}", ev.join(" "), ctx.command))
            .and_then(|c| c.get(1).or_else(|| c.get(2)))
            .map(|m| m.as_str().to_string());
        let mut sug = Vec::new();
        if let Some(port) = port {
            sug.push(format!(
                "ss -ltnp 'sport = :{port}'   # see which process holds port {port}"
            ));
        }
        sug.push(
            "stop the other server, or listen on another port (or port 0 for any free one)".into(),
        );
        return diag(Category::PortInUse, ev, sug, 0.9);
    }
    if p.proc_limit.is_match(&text) {
        return diag(
            Category::ProcessLimit,
            evidence(&text, &p.proc_limit),
            vec![
                "the run reached limits.max_processes: reduce parallelism, or raise the limit"
                    .into(),
            ],
            0.8,
        );
    }
    let net_denied_here = ctx.network_denied
        && p.denied.is_match(&text)
        && p.net_context.is_match(&format!("{text}\n{}", ctx.command));
    if p.network.is_match(&text) || net_denied_here {
        let mut ev = evidence(&text, &p.network);
        if ev.is_empty() {
            ev = evidence(&text, &p.denied);
        }
        let sug = if ctx.network_denied {
            vec![
                "network access is denied by the sandbox: set `network = true` in the sandbox configuration, or run with isolation \"full-access\"".into(),
            ]
        } else {
            vec!["check the address and that the server is up (curl -v URL), and DNS (getent hosts HOST)".into()]
        };
        return diag(
            Category::NetworkUnreachable,
            ev,
            sug,
            if ctx.network_denied { 0.9 } else { 0.7 },
        );
    }
    if p.too_large.is_match(&text) {
        return diag(
            Category::FileTooLarge,
            evidence(&text, &p.too_large),
            vec!["raise limits.file_size_bytes, or write less data".into()],
            0.85,
        );
    }
    if p.disk_full.is_match(&text) {
        return diag(
            Category::DiskFull,
            evidence(&text, &p.disk_full),
            vec!["df -h .   # find the full filesystem, then free space (e.g. cargo clean, docker system prune)".into()],
            0.9,
        );
    }
    if p.oom.is_match(&text) || result.signal == Some(libc::SIGKILL) {
        let ev = evidence(&text, &p.oom);
        let from_text = !ev.is_empty();
        return diag(
            if from_text || result.signal == Some(libc::SIGKILL) { Category::OutOfMemory } else { Category::Killed },
            if from_text { ev } else { vec![format!("killed by signal {}", result.signal.unwrap_or(0))] },
            vec![
                "raise limits.memory_bytes, or process the data in smaller pieces".into(),
                "check for unbounded growth (a list that is never cleared, reading a whole file at once)".into(),
            ],
            if from_text { 0.9 } else { 0.6 },
        );
    }
    if result.exit_code == Some(127) || p.not_found_cmd.is_match(&text) {
        let ev = evidence(&text, &p.not_found_cmd);
        let name = p
            .not_found_cmd
            .captures(&text)
            .and_then(|c| c.get(1).or_else(|| c.get(2)).or_else(|| c.get(3)))
            .map(|m| m.as_str().to_string())
            .or_else(|| ctx.command.split_whitespace().next().map(String::from))
            .unwrap_or_default();
        return diag(
            Category::CommandNotFound,
            if ev.is_empty() {
                tail_lines(&text, 2)
            } else {
                ev
            },
            vec![
                format!(
                    "command -v {name} || echo \"$PATH\"   # is it installed, and is its directory on PATH?"
                ),
                format!("apt-get install {}", apt_package(&name)),
            ],
            if result.exit_code == Some(127) {
                0.95
            } else {
                0.8
            },
        );
    }
    if p.syntax.is_match(&text) {
        let ev = evidence(&text, &p.syntax);
        let loc = p.location.captures(&text).map(|c| {
            let file = c.get(1).or_else(|| c.get(3)).map_or("", |m| m.as_str());
            let line = c.get(2).or_else(|| c.get(4)).map_or("", |m| m.as_str());
            format!("{file}:{line}")
        });
        let mut sug = vec!["fix the syntax at the reported line (unbalanced brackets or quotes, a missing colon or semicolon)".into()];
        if let Some(loc) = loc {
            sug.insert(0, format!("look at {loc}"));
        }
        return diag(Category::SyntaxError, ev, sug, 0.85);
    }
    if p.denied.is_match(&text) || result.exit_code == Some(126) {
        let ev = evidence(&text, &p.denied);
        let mut sug = Vec::new();
        if ctx.writes_restricted {
            sug.push("the sandbox allows writes only inside the working directory and $TMPDIR: write there, or run with isolation \"full-access\"".into());
        }
        if result.exit_code == Some(126) {
            let target = ctx.command.split_whitespace().next().unwrap_or("FILE");
            sug.push(format!("chmod +x {target}"));
        }
        sug.push("ls -l the path to check its owner and mode".into());
        return diag(
            Category::PermissionDenied,
            if ev.is_empty() {
                tail_lines(&text, 2)
            } else {
                ev
            },
            sug,
            0.85,
        );
    }
    if p.missing_file.is_match(&text) {
        let ev = evidence(&text, &p.missing_file);
        let path = ev
            .iter()
            .find_map(|l| p.quoted_path.captures(l))
            .and_then(|c| c.get(1).or_else(|| c.get(2)))
            .map(|m| m.as_str().to_string());
        let sug = match path {
            Some(path) => vec![format!(
                "ls -la {}   # does it exist? paths are relative to the working directory",
                parent_or_dot(&path)
            )],
            None => vec!["check the path: it is resolved relative to the working directory".into()],
        };
        return diag(Category::MissingFile, ev, sug, 0.8);
    }
    if p.compile.is_match(&text) {
        return diag(
            Category::CompileError,
            evidence(&text, &p.compile),
            vec!["fix the first reported error; later ones often follow from it".into()],
            0.6,
        );
    }
    if let Some(sig) = result.signal {
        return diag(
            Category::Killed,
            vec![format!("killed by signal {sig}")],
            Vec::new(),
            0.5,
        );
    }
    diag(
        Category::Unknown,
        tail_lines(&result.stderr, 5),
        Vec::new(),
        0.1,
    )
}

fn parent_or_dot(path: &str) -> String {
    std::path::Path::new(path)
        .parent()
        .map(|p| p.display().to_string())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| ".".into())
}

fn tail_lines(text: &str, n: usize) -> Vec<String> {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| l.chars().take(300).collect())
        .collect()
}

/// Debian package for a command, when it differs.
fn apt_package(command: &str) -> &str {
    match command {
        "python" | "python3" => "python3",
        "pip" | "pip3" => "python3-pip",
        "node" | "nodejs" => "nodejs",
        "npm" | "npx" => "npm",
        "gcc" | "cc" | "make" | "g++" => "build-essential",
        "rg" => "ripgrep",
        "fd" => "fd-find",
        "go" => "golang-go",
        "javac" | "java" => "default-jdk",
        "convert" => "imagemagick",
        other => other,
    }
}

/// The JSON a model is asked to return for an analysis (the `analysis` field of `/v1/exec`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelAnalysis {
    /// One sentence.
    pub summary: String,
    /// A [`Category`] name or a free word.
    pub category: String,
    /// The cause.
    pub root_cause: String,
    /// 0..1.
    pub confidence: f32,
    /// Commands that fix it.
    pub suggested_commands: Vec<String>,
}

/// Seam for the model analysis done by the caller (it needs the gateway): the prompt to send,
/// built from the request, the result and the deterministic diagnosis. Outputs are already
/// redacted; long outputs are cut to their last 4,000 characters.
pub fn analysis_prompt(request: &ExecRequest, result: &ExecResult) -> String {
    let what = match &request.kind {
        crate::types::ExecKind::Command { command } => format!("command: {}", command.display()),
        crate::types::ExecKind::Code { language, source } => {
            format!("{language} code:\n```\n{}\n```", last_chars(source, 4000))
        }
        crate::types::ExecKind::File { path, args } => {
            format!("file: {} {}", path.display(), args.join(" "))
        }
    };
    let diagnosis = result
        .diagnosis
        .as_ref()
        .map(|d| {
            format!(
                "{:?} (confidence {:.2}); evidence: {:?}",
                d.category, d.confidence, d.evidence
            )
        })
        .unwrap_or_else(|| "none".into());
    format!(
        "A process run in a sandbox failed. Find the root cause and how to fix it.\n\
         Answer with JSON only: {{\"summary\": str, \"category\": str, \"root_cause\": str, \"confidence\": number 0..1, \"suggested_commands\": [str]}}.\n\n\
         {what}\nisolation: {}\nnetwork denied: {}\nexit_code: {:?}\nsignal: {:?}\ntimed_out: {}\n\
         deterministic diagnosis: {diagnosis}\n\nstderr (tail):\n{}\n\nstdout (tail):\n{}\n",
        result.isolation.as_str(),
        result.network_denied,
        result.exit_code,
        result.signal,
        result.timed_out,
        last_chars(&result.stderr, 4000),
        last_chars(&result.stdout, 4000),
    )
}

fn last_chars(s: &str, n: usize) -> &str {
    let start = s.len().saturating_sub(n);
    let start = (start..=s.len())
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(s.len());
    &s[start..]
}
