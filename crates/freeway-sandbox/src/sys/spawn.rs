//! Starting a process without `fork`: `clone(CLONE_VM | CLONE_VFORK)`, as `posix_spawn` does,
//! with the sandbox's [`ChildSetup`] applied between the clone and the `exec`.
//!
//! `std::process::Command` falls back to `fork` as soon as a `pre_exec` hook is set. A fork
//! copies the page tables of the whole server (the embedded model's mappings included) only for
//! the child to drop them at `exec`, and every page either side writes meanwhile is copied; that
//! was most of what a sandboxed spawn cost over a plain one. A vfork child shares the parent's
//! memory and runs on a stack of its own while the calling thread waits, so the cost of a spawn
//! no longer grows with the size of the server.
//!
//! Sharing memory is what makes the child's rules strict. Everything it touches is prepared by
//! the parent (C strings, the `PATH` candidates, the descriptors, the setup); it allocates
//! nothing and makes only async-signal-safe system calls. Every signal is blocked around the
//! clone, so no handler of the parent can run on the child's stack; the child resets the caught
//! ones to their defaults before it unblocks them. A failure is written into a slot the parent
//! reads when the clone returns, which with `CLONE_VFORK` is after the child's `exec` or exit.

use std::ffi::{CString, c_char, c_int, c_void};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::{ChildSetup, SetupFailure, apply_in_child};

/// Stack of the vfork child: its frames are shallow (the setup, then `execve`).
const STACK_SIZE: usize = 64 * 1024;
/// An inaccessible page below the stack, so an overflow faults instead of writing the heap.
const GUARD_SIZE: usize = 4096;

/// Everything needed to start one process.
pub(crate) struct Spec<'a> {
    pub program: &'a str,
    pub args: &'a [String],
    pub cwd: &'a Path,
    pub env: &'a [(String, String)],
    /// Give the child a pipe for stdin (else `/dev/null`).
    pub stdin_piped: bool,
    pub setup: ChildSetup,
}

/// A started process and the parent's ends of its pipes.
#[derive(Debug)]
pub(crate) struct Spawned {
    pub pid: u32,
    pub stdin: Option<OwnedFd>,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

/// Where starting a process failed.
#[derive(Debug)]
pub(crate) enum SpawnError {
    /// The request cannot be turned into C strings (a NUL byte).
    Invalid(String),
    /// Pipes, the child's stack or the clone itself.
    Os(io::Error),
    /// A step of the child setup, named.
    Setup(&'static str, io::Error),
    /// `execve` of the program (not found, permission denied, not executable...).
    Exec(io::Error),
}

/// What the child reads. Built by the parent; the child writes only `failure`.
struct ChildArgs<'a> {
    candidates: Vec<CString>,
    argv: Vec<*const c_char>,
    envp: Vec<*const c_char>,
    cwd: CString,
    stdio: [RawFd; 3],
    setup: &'a ChildSetup,
    failure: Option<ChildFailure>,
}

#[derive(Clone, Copy)]
enum ChildFailure {
    Setup(SetupFailure),
    Exec(i32),
}

/// Start `spec.program` with `spec.args`, in `spec.cwd`, with exactly `spec.env`, its stdout and
/// stderr piped to the parent.
pub(crate) fn spawn(spec: Spec<'_>) -> Result<Spawned, SpawnError> {
    let cstr = |what: &str, s: &[u8]| {
        CString::new(s).map_err(|_| SpawnError::Invalid(format!("{what} contains a NUL byte")))
    };
    let program = cstr("the program name", spec.program.as_bytes())?;
    let mut argv_c = vec![program];
    for a in spec.args {
        argv_c.push(cstr("an argument", a.as_bytes())?);
    }
    let mut env_c = Vec::with_capacity(spec.env.len());
    for (k, v) in spec.env {
        if k.contains('=') {
            return Err(SpawnError::Invalid(format!(
                "environment variable name `{k}` contains `=`"
            )));
        }
        env_c.push(cstr(
            "an environment variable",
            format!("{k}={v}").as_bytes(),
        )?);
    }
    let path = spec
        .env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map_or("/usr/local/bin:/usr/bin:/bin", |(_, v)| v.as_str());
    let candidates = candidates(spec.program, path, &cstr)?;
    let cwd = cstr("the working directory", spec.cwd.as_os_str().as_bytes())?;

    let (stdin_child, stdin_parent) = if spec.stdin_piped {
        let (r, w) = pipe()?;
        (r, Some(w))
    } else {
        (dev_null()?, None)
    };
    let (stdout_parent, stdout_child) = pipe()?;
    let (stderr_parent, stderr_child) = pipe()?;
    let stdio = [
        above_stdio(stdin_child)?,
        above_stdio(stdout_child)?,
        above_stdio(stderr_child)?,
    ];

    let mut args = ChildArgs {
        argv: nul_terminated(&argv_c),
        envp: nul_terminated(&env_c),
        candidates,
        cwd,
        stdio: [
            stdio[0].as_raw_fd(),
            stdio[1].as_raw_fd(),
            stdio[2].as_raw_fd(),
        ],
        setup: &spec.setup,
        failure: None,
    };
    let stack = Stack::new().map_err(SpawnError::Os)?;
    let pid = clone_vfork(&stack, &mut args).map_err(SpawnError::Os)?;
    drop(stack);
    drop(stdio);
    // The clone returned: the child has exec'd or exited, and wrote nothing after either.
    if let Some(failure) = args.failure {
        // It called `_exit`: reaping is immediate.
        let _ = super::wait4(pid, true);
        return Err(match failure {
            ChildFailure::Setup(f) => {
                SpawnError::Setup(f.step, io::Error::from_raw_os_error(f.errno))
            }
            ChildFailure::Exec(errno) => SpawnError::Exec(io::Error::from_raw_os_error(errno)),
        });
    }
    Ok(Spawned {
        pid,
        stdin: stdin_parent,
        stdout: stdout_parent,
        stderr: stderr_parent,
    })
}

/// The paths `execvp` would try: the program itself when it names a path, else each `PATH`
/// entry joined with it (an empty entry is the working directory).
fn candidates(
    program: &str,
    path: &str,
    cstr: &impl Fn(&str, &[u8]) -> Result<CString, SpawnError>,
) -> Result<Vec<CString>, SpawnError> {
    if program.is_empty() {
        return Err(SpawnError::Exec(io::Error::from_raw_os_error(libc::ENOENT)));
    }
    if program.contains('/') {
        return Ok(vec![cstr("the program name", program.as_bytes())?]);
    }
    path.split(':')
        .map(|dir| {
            let dir = if dir.is_empty() { "." } else { dir };
            cstr("PATH", format!("{dir}/{program}").as_bytes())
        })
        .collect()
}

fn nul_terminated(strings: &[CString]) -> Vec<*const c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

/// `pipe2(O_CLOEXEC)`: (read end, write end).
fn pipe() -> Result<(OwnedFd, OwnedFd), SpawnError> {
    let mut fds = [0 as c_int; 2];
    // SAFETY: `fds` is a valid array of two ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(SpawnError::Os(io::Error::last_os_error()));
    }
    // SAFETY: both descriptors were just returned by the kernel and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn dev_null() -> Result<OwnedFd, SpawnError> {
    // SAFETY: a valid NUL-terminated path; the descriptor returned is ours to own.
    let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(SpawnError::Os(io::Error::last_os_error()));
    }
    // SAFETY: fresh descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Move a descriptor above 2, so that putting the child's stdio in place never overwrites
/// another of them (a server started with a closed stdin gets pipes numbered 0).
fn above_stdio(fd: OwnedFd) -> Result<OwnedFd, SpawnError> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    // SAFETY: duplicating a valid descriptor; the new one is ours to own.
    let dup = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if dup < 0 {
        return Err(SpawnError::Os(io::Error::last_os_error()));
    }
    // SAFETY: fresh descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(dup) })
}

/// The child's stack: an anonymous mapping with a guard page at its low end.
struct Stack {
    base: *mut c_void,
    len: usize,
}

impl Stack {
    fn new() -> io::Result<Self> {
        let len = STACK_SIZE + GUARD_SIZE;
        // SAFETY: an anonymous private mapping; checked below.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let stack = Self { base, len };
        // SAFETY: the first page of the mapping just made.
        if unsafe { libc::mprotect(base, GUARD_SIZE, libc::PROT_NONE) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(stack)
    }

    /// The initial stack pointer: the stack grows down from the end of the mapping, which is
    /// page-aligned and so 16-byte aligned as the ABI asks.
    fn top(&self) -> *mut c_void {
        self.base.wrapping_byte_add(self.len)
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, no longer used (the child exec'd or exited).
        unsafe {
            libc::munmap(self.base, self.len);
        }
    }
}

/// Clone a child that shares our memory and suspends this thread until it execs or exits.
fn clone_vfork(stack: &Stack, args: &mut ChildArgs<'_>) -> io::Result<u32> {
    // SAFETY: sigset_t is plain data; sigfillset initialises it.
    let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointers to locals. Blocking every signal keeps the parent's handlers off
    // the child's stack until the child has reset them.
    unsafe {
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
    }
    // SAFETY: `child_main` only touches `args`, which outlives the child's use of it: with
    // CLONE_VFORK this call returns only after the child exec'd or exited. The stack is a
    // dedicated mapping that stays mapped until then.
    let pid = unsafe {
        libc::clone(
            child_main,
            stack.top(),
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            std::ptr::from_mut(args).cast(),
        )
    };
    let err = io::Error::last_os_error();
    // SAFETY: restores the mask saved above.
    unsafe {
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
    }
    if pid < 0 {
        return Err(err);
    }
    u32::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::ECHILD))
}

/// The child: reset signals, put stdio in place, enter the working directory, apply the setup,
/// exec. Never returns.
extern "C" fn child_main(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `ChildArgs` the parent passed to clone, alive and not accessed by
    // the (suspended) parent until this child execs or exits.
    let args = unsafe { &mut *arg.cast::<ChildArgs<'_>>() };
    // SAFETY (whole block): async-signal-safe system calls on memory prepared by the parent.
    unsafe {
        reset_signals();
        let stdio = args.stdio;
        for (target, fd) in (0..).zip(stdio) {
            if libc::dup2(fd, target) < 0 {
                fail_child(args, ChildFailure::Setup(super::fail("redirecting stdio")));
            }
        }
        if libc::chdir(args.cwd.as_ptr()) < 0 {
            fail_child(
                args,
                ChildFailure::Setup(super::fail("entering the working directory")),
            );
        }
        if let Err(f) = apply_in_child(args.setup) {
            fail_child(args, ChildFailure::Setup(f));
        }
        // SAFETY: an empty set, initialised by sigemptyset.
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        // Like execvp: go on after "not here", remember "not allowed", stop at anything else.
        let mut errno = libc::ENOENT;
        let mut denied = false;
        for path in &args.candidates {
            libc::execve(path.as_ptr(), args.argv.as_ptr(), args.envp.as_ptr());
            errno = io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::ENOENT);
            match errno {
                libc::EACCES => denied = true,
                libc::ENOENT | libc::ENOTDIR | libc::ESTALE | libc::ENODEV | libc::ETIMEDOUT => {}
                _ => break,
            }
        }
        if denied && matches!(errno, libc::ENOENT | libc::ENOTDIR) {
            errno = libc::EACCES;
        }
        fail_child(args, ChildFailure::Exec(errno));
    }
}

/// Record why the child gives up and leave without running any exit handler (they would run on
/// the parent's memory).
fn fail_child(args: &mut ChildArgs<'_>, failure: ChildFailure) -> ! {
    args.failure = Some(failure);
    // SAFETY: `_exit` only ends this process.
    unsafe { libc::_exit(127) }
}

/// Every signal the parent catches goes back to its default action, and SIGPIPE too (Rust
/// ignores it; programs expect the default). Other ignored signals stay ignored, as with `fork`.
///
/// # Safety
/// Only in the vfork child, with every signal blocked.
unsafe fn reset_signals() {
    for signal in 1..=libc::SIGRTMAX() {
        if signal == libc::SIGKILL || signal == libc::SIGSTOP {
            continue;
        }
        // SAFETY: sigaction is plain data; querying and setting dispositions of this process.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(signal, std::ptr::null(), &mut old) < 0 {
                continue;
            }
            if old.sa_sigaction != libc::SIG_IGN || signal == libc::SIGPIPE {
                let mut dfl: libc::sigaction = std::mem::zeroed();
                dfl.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(signal, &dfl, std::ptr::null_mut());
            }
        }
    }
}
