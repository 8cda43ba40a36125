//! One process: spawn in its own session and process group with the child setup applied,
//! stream and capture stdout and stderr, enforce the timeout (SIGTERM to the group, SIGKILL
//! after the grace period), and reap with `wait4` for exit status, max RSS and CPU time.
//!
//! When the leader exits, whatever is left of its group and cgroup is killed: no child outlives
//! a run. The exit is awaited on a pidfd registered with tokio, so no thread blocks in `wait`.

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::sync::{mpsc, watch};

use crate::capture::{Capture, Utf8Decoder};
use crate::cgroup::RunCgroup;
use crate::error::SandboxError;
use crate::redact::Redactor;
use crate::sys::spawn::{self, SpawnError};
use crate::sys::{self, ChildSetup, Reaped};
use crate::types::{OutputChunk, Stream};

/// How long output is still read after every process of the run is gone or killed (bounds the
/// case of a descendant that escaped both the process group and a missing cgroup).
const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(300);

/// Everything needed to start one process.
pub(crate) struct Launch {
    pub program: String,
    pub args: Vec<String>,
    pub cwd: PathBuf,
    pub env: Vec<(String, String)>,
    pub stdin: Option<Vec<u8>>,
    pub timeout: Duration,
    pub grace: Duration,
    pub output_limit: usize,
    pub setup: ChildSetup,
    pub cgroup: Option<RunCgroup>,
}

/// What came out of one process.
pub(crate) struct Finished {
    pub reaped: Reaped,
    pub stdout: String,
    pub stderr: String,
    pub truncated: bool,
    pub duration: Duration,
    pub timed_out: bool,
    pub pid: u32,
    pub pids_max_hit: bool,
    pub oom_killed: bool,
    /// The run's cgroup, for its pool to empty and keep.
    pub cgroup: Option<RunCgroup>,
}

/// Kills and reaps the run if the future is dropped before it finished (client went away).
struct RunGuard {
    pid: u32,
    cgroup: Option<RunCgroup>,
    reaped: bool,
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        // A run cgroup dropped here kills what is left in it and removes itself.
        drop(self.cgroup.take());
        if self.reaped {
            return;
        }
        sys::kill_group(self.pid, libc::SIGKILL);
        let pid = self.pid;
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            // The group was SIGKILLed: reaping returns promptly.
            drop(handle.spawn_blocking(move || sys::wait4(pid, true)));
        }
    }
}

/// Spawn, stream, wait, reap. `Err(Spawn)` carries the OS error of clone or exec, `Err(Setup)`
/// the step of the child setup that failed.
pub(crate) async fn launch(
    l: Launch,
    redactor: &Redactor,
    tx: Option<&mpsc::Sender<OutputChunk>>,
) -> Result<Finished, SandboxError> {
    let start = Instant::now();
    let spawned = spawn::spawn(spawn::Spec {
        program: &l.program,
        args: &l.args,
        cwd: &l.cwd,
        env: &l.env,
        stdin_piped: l.stdin.is_some(),
        setup: l.setup,
    });
    let spawned = spawned.map_err(|e| match e {
        SpawnError::Invalid(detail) => SandboxError::InvalidRequest(detail),
        SpawnError::Os(source) | SpawnError::Exec(source) => SandboxError::Spawn {
            program: l.program.clone(),
            source,
        },
        SpawnError::Setup(stage, source) => SandboxError::Setup { stage, source },
    })?;
    let pid = spawned.pid;
    let mut guard = RunGuard {
        pid,
        cgroup: l.cgroup,
        reaped: false,
    };
    let stdin_fd = spawned.stdin;
    let stdout_fd = Some(spawned.stdout);
    let stderr_fd = Some(spawned.stderr);

    let pidfd = sys::async_pidfd(sys::pidfd_open(pid).map_err(SandboxError::Wait)?)
        .map_err(SandboxError::Wait)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let cgroup = guard.cgroup.as_ref();

    let waiter = async {
        let mut timed_out = false;
        let exited = tokio::select! {
            r = pidfd.readable() => { r.map_err(SandboxError::Wait)?.retain_ready(); true }
            () = tokio::time::sleep(l.timeout) => false,
        };
        if !exited {
            timed_out = true;
            sys::kill_group(pid, libc::SIGTERM);
            if let Some(cg) = cgroup {
                cg.signal_all(libc::SIGTERM);
            }
            tokio::select! {
                r = pidfd.readable() => { r.map_err(SandboxError::Wait)?.retain_ready(); }
                () = tokio::time::sleep(l.grace) => {}
            }
        }
        // The leader is a zombie (or overdue): its pid, hence the group id, is still reserved,
        // so signalling the group cannot hit an unrelated process.
        sys::kill_group(pid, libc::SIGKILL);
        if let Some(cg) = cgroup {
            cg.signal_all(libc::SIGKILL);
        }
        let reaped = loop {
            let mut ready = pidfd.readable().await.map_err(SandboxError::Wait)?;
            match sys::wait4(pid, false).map_err(SandboxError::Wait)? {
                Some(r) => break r,
                None => ready.clear_ready(),
            }
        };
        let duration = start.elapsed();
        // Anything that escaped the group but not the cgroup.
        if let Some(cg) = cgroup {
            cg.signal_all(libc::SIGKILL);
        }
        let _ = stop_tx.send(true);
        Ok::<_, SandboxError>((reaped, duration, timed_out))
    };

    let out = pump(
        stdout_fd,
        Stream::Stdout,
        redactor,
        tx,
        l.output_limit,
        stop_rx.clone(),
    );
    let err = pump(
        stderr_fd,
        Stream::Stderr,
        redactor,
        tx,
        l.output_limit,
        stop_rx.clone(),
    );
    let feed = feed(stdin_fd, l.stdin, stop_rx);
    let (waited, out, err, ()) = tokio::join!(waiter, out, err, feed);
    let (reaped, duration, timed_out) = waited?;
    guard.reaped = true;
    let pids_max_hit = guard.cgroup.as_ref().is_some_and(RunCgroup::hit_pids_max);
    let oom_killed = guard.cgroup.as_ref().is_some_and(RunCgroup::oom_killed);
    let (stdout, t1) = out.finish();
    let (stderr, t2) = err.finish();
    Ok(Finished {
        reaped,
        stdout,
        stderr,
        truncated: t1 || t2,
        duration,
        timed_out,
        pid,
        pids_max_hit,
        oom_killed,
        cgroup: guard.cgroup.take(),
    })
}

/// Read one pipe to EOF (or until shortly after the run is over), redacting and streaming.
async fn pump(
    fd: Option<OwnedFd>,
    stream: Stream,
    redactor: &Redactor,
    tx: Option<&mpsc::Sender<OutputChunk>>,
    limit: usize,
    mut stop: watch::Receiver<bool>,
) -> Capture {
    let name = match stream {
        Stream::Stdout => "stdout",
        Stream::Stderr => "stderr",
    };
    let mut capture = Capture::new(name, limit);
    let Some(fd) = fd else { return capture };
    let Ok(mut rx) = pipe::Receiver::from_owned_fd(fd) else {
        return capture;
    };
    let mut decoder = Utf8Decoder::default();
    let mut red = redactor.stream();
    let stopped = async move {
        let _ = stop.wait_for(|done| *done).await;
        tokio::time::sleep(DRAIN_AFTER_EXIT).await;
    };
    tokio::pin!(stopped);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        tokio::select! {
            biased;
            r = rx.read(&mut buf) => match r {
                Ok(0) => break,
                Ok(n) => {
                    let text = red.push(&decoder.push(&buf[..n]));
                    emit(&mut capture, stream, tx, text).await;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            },
            () = &mut stopped => break,
        }
    }
    let mut text = red.push(&decoder.finish());
    text.push_str(&red.finish());
    emit(&mut capture, stream, tx, text).await;
    capture
}

async fn emit(
    capture: &mut Capture,
    stream: Stream,
    tx: Option<&mpsc::Sender<OutputChunk>>,
    text: String,
) {
    if text.is_empty() {
        return;
    }
    capture.push(&text);
    if let Some(tx) = tx {
        // A consumer that went away does not stop the run.
        let _ = tx.send(OutputChunk { stream, text }).await;
    }
}

/// Write the given stdin and close it; give up when the run is over.
async fn feed(fd: Option<OwnedFd>, data: Option<Vec<u8>>, mut stop: watch::Receiver<bool>) {
    let (Some(fd), Some(data)) = (fd, data) else {
        return;
    };
    let Ok(mut tx) = pipe::Sender::from_owned_fd(fd) else {
        return;
    };
    tokio::select! {
        _ = tx.write_all(&data) => {}
        _ = stop.wait_for(|done| *done) => {}
    }
}
