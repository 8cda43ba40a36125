//! [`Sandbox`]: turns an [`ExecRequest`] into checked, isolated processes and an [`ExecResult`].

use std::ffi::OsString;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use seccompiler::BpfProgram;
use tokio::sync::mpsc;

use crate::cgroup::{CgroupPool, Cgroups, RunLimits};
use crate::config::{Isolation, OnMissing, SandboxConfig};
use crate::diagnosis::{Context, Diagnoser};
use crate::error::SandboxError;
use crate::landlock_rules::{self, ReadPlan};
use crate::policy::{ExecPolicy, PolicyDecision};
use crate::probe::{Capabilities, probe_with_cgroup};
use crate::process::{self, Finished, Launch};
use crate::redact::Redactor;
use crate::runners::{self, Step};
use crate::seccomp;
use crate::sys::{self, ChildSetup};
use crate::tempdir::TempDirs;
use crate::types::{CommandLine, ExecKind, ExecRequest, ExecResult, LimitHit, OutputChunk};

/// Runs processes under one configuration. Build once (it probes the kernel and compiles rules)
/// and share it (`Arc<Sandbox>`); runs are independent and may be concurrent.
#[derive(Debug)]
pub struct Sandbox {
    config: SandboxConfig,
    capabilities: Capabilities,
    policy: ExecPolicy,
    redactor: Redactor,
    diagnoser: Diagnoser,
    read_plan: Mutex<Option<Arc<ReadPlan>>>,
    net_filter: Option<Arc<BpfProgram>>,
    cgroups: CgroupPool,
    temp_dirs: TempDirs,
}

impl Sandbox {
    /// Probe the kernel, compile the policy, redaction and seccomp rules.
    pub fn new(config: SandboxConfig) -> Result<Self, SandboxError> {
        let (capabilities, cgroups) = probe_with_cgroup();
        Self::build(config, capabilities, cgroups)
    }

    /// Like [`Sandbox::new`] but trusting `capabilities` (e.g. a probe with mechanisms marked
    /// unavailable, to rehearse the refuse/degrade behaviour of a weaker kernel). A mechanism is
    /// used only if both the kernel and `capabilities` offer it.
    pub fn with_capabilities(
        config: SandboxConfig,
        capabilities: Capabilities,
    ) -> Result<Self, SandboxError> {
        let (_, found) = probe_with_cgroup();
        let cgroups = Cgroups {
            pids: found.pids.filter(|_| capabilities.has("cgroup_pids")),
            memory: found.memory.filter(|_| capabilities.has("cgroup_memory")),
        };
        Self::build(config, capabilities, cgroups)
    }

    fn build(
        config: SandboxConfig,
        capabilities: Capabilities,
        cgroups: Cgroups,
    ) -> Result<Self, SandboxError> {
        let policy = ExecPolicy::new(&config.rules, config.default_rules)?;
        let redactor = Redactor::new(&config.secrets)?;
        let instance = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64 & 0xffff_ffff_ffff);
        // Distinguishes this sandbox's temp dirs and cgroups from another's in the same process.
        let prefix = format!("run-{}-{instance:x}", std::process::id());
        let temp_dirs = TempDirs::new(std::env::temp_dir(), format!("freeway-{prefix}"));
        let cgroups = CgroupPool::new(cgroups, prefix);
        let net_filter = if capabilities.has("seccomp") {
            Some(Arc::new(seccomp::deny_network()?))
        } else {
            None
        };
        Ok(Self {
            config,
            capabilities,
            policy,
            redactor,
            diagnoser: Diagnoser::new()?,
            read_plan: Mutex::new(None),
            net_filter,
            cgroups,
            temp_dirs,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &SandboxConfig {
        &self.config
    }

    /// What the kernel offers (as probed when the sandbox was built).
    pub fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    /// The redactor for outputs, logs, events and stored sessions.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// Evaluate the exec policy on a command line without running it.
    pub fn check(&self, command: &CommandLine) -> PolicyDecision {
        self.policy.evaluate(command)
    }

    /// Run and collect the result.
    pub async fn run(&self, request: ExecRequest) -> Result<ExecResult, SandboxError> {
        self.run_streaming(request, None).await
    }

    /// Run, sending redacted output chunks to `output` as they arrive, and collect the result.
    pub async fn run_streaming(
        &self,
        request: ExecRequest,
        output: Option<mpsc::Sender<OutputChunk>>,
    ) -> Result<ExecResult, SandboxError> {
        let isolation = request.isolation.unwrap_or(self.config.isolation);
        let cwd = request
            .cwd
            .clone()
            .unwrap_or_else(|| self.config.workspace.clone());
        let cwd = if cwd.is_relative() {
            self.config.workspace.join(cwd)
        } else {
            cwd
        };
        if !cwd.is_dir() {
            return Err(SandboxError::MissingWorkdir(cwd));
        }
        let timeout_ms = request.timeout_ms.unwrap_or(self.config.default_timeout_ms);
        let tmp = self.temp_dirs.take()?;
        let env = self.environment(&request, tmp.path());
        let path = env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| OsString::from(v))
            .unwrap_or_default();

        let steps = match &request.kind {
            ExecKind::Command { command } => {
                self.enforce_policy(command)?;
                match command {
                    CommandLine::Shell(s) => vec![Step {
                        program: "/bin/sh".into(),
                        args: vec!["-c".into(), s.clone()],
                        stage: "run",
                    }],
                    CommandLine::Argv(argv) => {
                        let (program, args) = argv
                            .split_first()
                            .ok_or_else(|| SandboxError::InvalidRequest("empty argv".into()))?;
                        vec![Step {
                            program: program.clone(),
                            args: args.to_vec(),
                            stage: "run",
                        }]
                    }
                }
            }
            ExecKind::Code { language, source } => {
                runners::plan_code(language, source, tmp.path(), &path)?
            }
            ExecKind::File { path: file, args } => {
                let file = if file.is_relative() {
                    cwd.join(file)
                } else {
                    file.clone()
                };
                let steps = runners::plan_file(&file, args, tmp.path(), &path)?;
                for step in &steps {
                    let argv = std::iter::once(step.program.clone())
                        .chain(step.args.iter().cloned())
                        .collect();
                    self.enforce_policy(&CommandLine::Argv(argv))?;
                }
                steps
            }
        };

        let network_denied = isolation != Isolation::FullAccess && !self.config.network;
        let mut last = None;
        for (i, step) in steps.iter().enumerate() {
            let stdin = if i + 1 == steps.len() {
                request.stdin.clone().map(String::into_bytes)
            } else {
                None
            };
            let mut degraded = Vec::new();
            let launch = self.prepare(
                step,
                &cwd,
                tmp.path(),
                &env,
                stdin,
                timeout_ms,
                isolation,
                network_denied,
                &mut degraded,
            )?;
            let finished = match process::launch(launch, &self.redactor, output.as_ref()).await {
                Ok(mut f) => {
                    if let Some(cg) = f.cgroup.take() {
                        self.cgroups.release(cg).await;
                    }
                    Some(f)
                }
                Err(SandboxError::Spawn { program, source }) if is_not_found_or_denied(&source) => {
                    // Report like a shell would, so the caller gets a result with a diagnosis.
                    last = Some(self.spawn_failure(
                        &program,
                        &source,
                        isolation,
                        network_denied,
                        std::mem::take(&mut degraded),
                    ));
                    None
                }
                Err(e) => return Err(e),
            };
            let Some(finished) = finished else { break };
            let result = self.result(finished, isolation, network_denied, degraded, step);
            let failed = !result.success();
            last = Some(result);
            if failed {
                break;
            }
        }
        self.temp_dirs.release(tmp).await;
        let mut result =
            last.ok_or_else(|| SandboxError::InvalidRequest("nothing to run".into()))?;
        let command = match &request.kind {
            ExecKind::Command { command } => command.display(),
            ExecKind::Code { language, .. } => format!("{language} snippet"),
            ExecKind::File { path, .. } => path.display().to_string(),
        };
        let ctx = Context {
            command: &command,
            network_denied,
            writes_restricted: isolation != Isolation::FullAccess,
            timeout_ms,
        };
        result.diagnosis = self.diagnoser.diagnose(&result, &ctx);
        Ok(result)
    }

    /// The read layer, built on first use and rebuilt when a directory it was derived from
    /// changed.
    fn read_plan(&self) -> Result<Arc<ReadPlan>, SandboxError> {
        let mut plan = self
            .read_plan
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match &*plan {
            Some(p) if p.is_fresh() => Ok(Arc::clone(p)),
            _ => {
                let fresh = Arc::new(ReadPlan::build(&self.config.deny_read)?);
                *plan = Some(Arc::clone(&fresh));
                Ok(fresh)
            }
        }
    }

    fn enforce_policy(&self, command: &CommandLine) -> Result<(), SandboxError> {
        let decision = self.policy.evaluate(command);
        if decision.allowed {
            return Ok(());
        }
        Err(SandboxError::PolicyDenied {
            rule: decision.rule.unwrap_or_default(),
            reason: decision.reason,
        })
    }

    /// Scrubbed environment: the allow list from the server's environment, a private TMPDIR,
    /// then the request's variables.
    fn environment(&self, request: &ExecRequest, tmp: &Path) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = self
            .config
            .env_allow
            .iter()
            .filter_map(|k| std::env::var(k).ok().map(|v| (k.clone(), v)))
            .collect();
        if !env.iter().any(|(k, _)| k == "PATH") {
            env.push(("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()));
        }
        let tmp = tmp.to_string_lossy().into_owned();
        for k in ["TMPDIR", "TMP", "TEMP", "GOCACHE"] {
            let v = if k == "GOCACHE" {
                format!("{tmp}/go-cache")
            } else {
                tmp.clone()
            };
            env.push((k.into(), v));
        }
        env.push(("PYTHONDONTWRITEBYTECODE".into(), "1".into()));
        for (k, v) in &request.env {
            env.retain(|(existing, _)| existing != k);
            env.push((k.clone(), v.clone()));
        }
        env
    }

    /// Require a mechanism: `Ok(true)` to use it, `Ok(false)` to go without (recorded), or
    /// refuse.
    fn require(
        &self,
        name: &'static str,
        degraded: &mut Vec<String>,
    ) -> Result<bool, SandboxError> {
        if self.capabilities.has(name) {
            return Ok(true);
        }
        let detail = self
            .capabilities
            .get(name)
            .map(|m| m.detail.clone())
            .unwrap_or_default();
        match self.config.on_missing {
            OnMissing::Refuse => Err(SandboxError::Unavailable {
                mechanism: name,
                detail,
            }),
            OnMissing::Degrade => {
                tracing::warn!(mechanism = name, %detail, "sandbox degraded: running without it");
                degraded.push(format!("{name}: {detail}"));
                Ok(false)
            }
        }
    }

    #[allow(
        clippy::too_many_arguments,
        reason = "internal plumbing of one run's facts"
    )]
    fn prepare(
        &self,
        step: &Step,
        cwd: &Path,
        tmp: &Path,
        env: &[(String, String)],
        stdin: Option<Vec<u8>>,
        timeout_ms: u64,
        isolation: Isolation,
        network_denied: bool,
        degraded: &mut Vec<String>,
    ) -> Result<Launch, SandboxError> {
        let limits = &self.config.limits;
        let mut setup = ChildSetup::default();
        let mut rl = |res: sys::Resource, v: Option<u64>| {
            if let Some(v) = v {
                setup.rlimits.push((res, v));
            }
        };
        rl(libc::RLIMIT_CPU, limits.cpu_seconds);
        // Resident memory is bounded by the memory cgroup where there is one; the address-space
        // limit is the fallback (it also refuses reservations that never become memory).
        if !self.cgroups.has_memory() {
            rl(libc::RLIMIT_AS, limits.memory_bytes);
        }
        rl(libc::RLIMIT_FSIZE, limits.file_size_bytes);
        rl(libc::RLIMIT_NOFILE, limits.open_files);
        rl(libc::RLIMIT_CORE, Some(0));

        if let Some(max) = limits.max_processes
            && !self.cgroups.has_pids()
        {
            if sys::is_root() {
                self.require("cgroup_pids", degraded)?;
            } else {
                setup.rlimits.push((libc::RLIMIT_NPROC, max));
            }
        }
        let cgroup = self
            .cgroups
            .take(RunLimits {
                max_pids: limits.max_processes,
                memory_bytes: limits.memory_bytes,
            })
            .map_err(|source| SandboxError::Setup {
                stage: "run cgroup",
                source,
            })?;
        if let Some(cg) = &cgroup {
            setup.cgroup_procs = cg.procs_fds();
        }

        if isolation != Isolation::FullAccess {
            if self.require("landlock", degraded)? {
                let mut write = vec![tmp.to_path_buf()];
                if isolation == Isolation::WorkspaceWrite {
                    write.push(cwd.to_path_buf());
                    write.extend(self.config.writable_roots.iter().cloned());
                }
                let deny_tcp = network_denied && self.capabilities.has("landlock_net");
                setup.landlock = vec![
                    Arc::clone(&self.read_plan()?.layer),
                    Arc::new(landlock_rules::write_layer(&write, deny_tcp)?),
                ];
            }
            if network_denied && self.require("seccomp", degraded)? {
                setup.seccomp.clone_from(&self.net_filter);
            }
        }

        Ok(Launch {
            program: step.program.clone(),
            args: step.args.clone(),
            cwd: if step.stage == "compile" {
                tmp.to_path_buf()
            } else {
                cwd.to_path_buf()
            },
            env: env.to_vec(),
            stdin,
            timeout: Duration::from_millis(timeout_ms),
            grace: Duration::from_millis(self.config.kill_grace_ms),
            output_limit: self.config.output_limit_bytes,
            setup,
            cgroup,
        })
    }

    fn result(
        &self,
        f: Finished,
        isolation: Isolation,
        network_denied: bool,
        degraded: Vec<String>,
        step: &Step,
    ) -> ExecResult {
        let limit_hit = match f.reaped.signal {
            Some(libc::SIGXCPU) => Some(LimitHit::Cpu),
            Some(libc::SIGKILL)
                if !f.timed_out
                    && self
                        .config
                        .limits
                        .cpu_seconds
                        .is_some_and(|c| f.reaped.cpu_ms + 50 >= c * 1000) =>
            {
                Some(LimitHit::Cpu)
            }
            Some(libc::SIGXFSZ) => Some(LimitHit::FileSize),
            _ if f.oom_killed => Some(LimitHit::Memory),
            _ if f.pids_max_hit => Some(LimitHit::Processes),
            _ => None,
        };
        let mut stderr = f.stderr;
        if step.stage == "compile" && f.reaped.exit_code != Some(0) {
            stderr.insert_str(0, "[freeway: compilation failed]\n");
        }
        ExecResult {
            exit_code: f.reaped.exit_code,
            signal: f.reaped.signal,
            stdout: f.stdout,
            stderr,
            duration_ms: u64::try_from(f.duration.as_millis()).unwrap_or(u64::MAX),
            timed_out: f.timed_out,
            truncated: f.truncated,
            max_rss_kb: f.reaped.max_rss_kb,
            cpu_ms: f.reaped.cpu_ms,
            diagnosis: None,
            isolation,
            network_denied,
            degraded,
            limit_hit,
            pid: f.pid,
        }
    }

    fn spawn_failure(
        &self,
        program: &str,
        err: &std::io::Error,
        isolation: Isolation,
        network_denied: bool,
        degraded: Vec<String>,
    ) -> ExecResult {
        let (code, what) = match err.kind() {
            std::io::ErrorKind::NotFound => (127, "command not found"),
            std::io::ErrorKind::PermissionDenied => (126, "Permission denied"),
            _ => (126, "cannot execute: Exec format error"),
        };
        ExecResult {
            exit_code: Some(code),
            signal: None,
            stdout: String::new(),
            stderr: self
                .redactor
                .redact(&format!("freeway: {program}: {what}\n")),
            duration_ms: 0,
            timed_out: false,
            truncated: false,
            max_rss_kb: 0,
            cpu_ms: 0,
            diagnosis: None,
            isolation,
            network_denied,
            degraded,
            limit_hit: None,
            pid: 0,
        }
    }
}

/// The program could not be executed as a shell would report it (127 or 126), rather than a
/// failure of the sandbox.
fn is_not_found_or_denied(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
    ) || e.raw_os_error() == Some(libc::ENOEXEC)
}
