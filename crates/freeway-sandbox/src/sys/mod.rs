//! Thin wrappers over the Linux system calls the sandbox needs, the code that runs in the child
//! between clone and `exec`, and [`spawn`] itself. All `unsafe` of the crate lives here.
#![allow(
    unsafe_code,
    reason = "raw system calls (clone, pidfd, wait4, kill, rlimits, Landlock, seccomp)"
)]

pub(crate) mod spawn;

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;

use seccompiler::BpfProgram;

#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub(crate) type Resource = libc::__rlimit_resource_t;
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) type Resource = libc::c_int;

/// Everything the child applies to itself before `exec`, prepared by the parent so that the
/// child allocates nothing and only makes async-signal-safe system calls.
#[derive(Default)]
pub(crate) struct ChildSetup {
    /// `(resource, limit)` pairs for `setrlimit`, soft = hard.
    pub rlimits: Vec<(Resource, u64)>,
    /// `cgroup.procs` of the run's cgroups (one per v1 hierarchy), open for writing; the child
    /// writes `0` to each to join.
    pub cgroup_procs: Vec<Arc<OwnedFd>>,
    /// Landlock rulesets to restrict self with, one layer each.
    pub landlock: Vec<Arc<OwnedFd>>,
    /// A compiled seccomp filter.
    pub seccomp: Option<Arc<BpfProgram>>,
}

/// A system call of the child setup failed: which one, and its errno.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SetupFailure {
    pub step: &'static str,
    pub errno: i32,
}

fn fail(step: &'static str) -> SetupFailure {
    SetupFailure {
        step,
        errno: io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EINVAL),
    }
}

/// Apply `setup` to the calling process. Runs in the child between clone and exec: it only
/// reads memory prepared by the parent (no allocation, no locks) and makes async-signal-safe
/// system calls.
pub(crate) fn apply_in_child(setup: &ChildSetup) -> Result<(), SetupFailure> {
    // SAFETY (whole function): plain system calls on valid arguments owned by `setup`.
    unsafe {
        // New session and process group: timeouts signal the whole group; no controlling tty.
        if libc::setsid() < 0 {
            return Err(fail("setsid"));
        }
        for fd in &setup.cgroup_procs {
            let zero = b"0";
            if libc::write(fd.as_raw_fd(), zero.as_ptr().cast(), 1) < 0 {
                return Err(fail("joining the run cgroup"));
            }
        }
        for &(resource, limit) in &setup.rlimits {
            let lim = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if libc::setrlimit(resource, &lim) < 0 {
                return Err(fail("setrlimit"));
            }
        }
        // Descriptors the server forgot to mark close-on-exec (sockets!) must not leak into the
        // sandbox; errors are ignored on kernels without close_range (< 5.11).
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        );
        if (!setup.landlock.is_empty() || setup.seccomp.is_some())
            && libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0
        {
            return Err(fail("prctl(PR_SET_NO_NEW_PRIVS)"));
        }
        for fd in &setup.landlock {
            if libc::syscall(libc::SYS_landlock_restrict_self, fd.as_raw_fd(), 0u32) < 0 {
                return Err(fail("landlock_restrict_self"));
            }
        }
        if let Some(prog) = &setup.seccomp {
            let fprog = libc::sock_fprog {
                len: u16::try_from(prog.len()).unwrap_or(u16::MAX),
                filter: prog.as_ptr().cast_mut().cast(),
            };
            if libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0u32,
                &raw const fprog,
            ) < 0
            {
                return Err(fail("seccomp(SET_MODE_FILTER)"));
            }
        }
    }
    Ok(())
}

/// `pidfd_open(2)`: a descriptor that becomes readable when `pid` exits.
pub(crate) fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: plain system call; on success the returned descriptor is ours to own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0u32) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = libc::c_int::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: `fd` is a fresh descriptor returned by the kernel and owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Exit status and resource usage of a reaped child.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reaped {
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub max_rss_kb: u64,
    pub cpu_ms: u64,
}

/// `wait4(pid, WNOHANG)`: `Ok(None)` while the child is still running.
pub(crate) fn wait4(pid: u32, block: bool) -> io::Result<Option<Reaped>> {
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain old data; zeroed is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let flags = if block { 0 } else { libc::WNOHANG };
    loop {
        // SAFETY: valid pointers to locals.
        let rc = unsafe { libc::wait4(pid as libc::pid_t, &mut status, flags, &mut usage) };
        if rc < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        if rc == 0 {
            return Ok(None);
        }
        break;
    }
    let (exit_code, signal) = if libc::WIFEXITED(status) {
        (Some(libc::WEXITSTATUS(status)), None)
    } else if libc::WIFSIGNALED(status) {
        (None, Some(libc::WTERMSIG(status)))
    } else {
        (None, None)
    };
    let tv_ms = |tv: libc::timeval| {
        u64::try_from(tv.tv_sec).unwrap_or(0) * 1000 + u64::try_from(tv.tv_usec).unwrap_or(0) / 1000
    };
    Ok(Some(Reaped {
        exit_code,
        signal,
        max_rss_kb: u64::try_from(usage.ru_maxrss).unwrap_or(0),
        cpu_ms: tv_ms(usage.ru_utime) + tv_ms(usage.ru_stime),
    }))
}

/// Send `signal` to every process of the process group `pgid`. Returns false when none is left.
pub(crate) fn kill_group(pgid: u32, signal: libc::c_int) -> bool {
    if pgid <= 1 {
        return false;
    }
    // SAFETY: plain system call; a negative pid addresses the process group.
    unsafe { libc::kill(-(pgid as libc::pid_t), signal) == 0 }
}

/// Send `signal` to one process.
pub(crate) fn kill_pid(pid: u32, signal: libc::c_int) -> bool {
    if pid <= 1 {
        return false;
    }
    // SAFETY: plain system call.
    unsafe { libc::kill(pid as libc::pid_t, signal) == 0 }
}

/// The effective user id is 0 (RLIMIT_NPROC is not enforced for root).
pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The highest Landlock ABI the kernel supports, or the errno explaining why none.
pub(crate) fn landlock_abi() -> Result<u32, io::Error> {
    // SAFETY: LANDLOCK_CREATE_RULESET_VERSION with a null attr is the documented version query.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            1u32,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    u32::try_from(rc).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// Seccomp filter mode is available: `seccomp(SET_MODE_FILTER)` with a null program fails with
/// EFAULT when supported and EINVAL when not, without changing anything.
pub(crate) fn seccomp_filter_available() -> Result<(), io::Error> {
    // SAFETY: a null program pointer is rejected by the kernel before anything is installed.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0u32,
            std::ptr::null::<libc::c_void>(),
        )
    };
    let err = io::Error::last_os_error();
    if rc < 0 && err.raw_os_error() == Some(libc::EFAULT) {
        Ok(())
    } else {
        Err(err)
    }
}

/// Kernel release string (`uname -r`).
pub(crate) fn kernel_release() -> String {
    // SAFETY: utsname is plain old data; uname fills it.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer to a local.
    if unsafe { libc::uname(&mut uts) } < 0 {
        return String::from("unknown");
    }
    let bytes: Vec<u8> = uts
        .release
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Register a pidfd with the tokio reactor.
pub(crate) fn async_pidfd(fd: OwnedFd) -> io::Result<tokio::io::unix::AsyncFd<OwnedFd>> {
    // SAFETY: the `OwnedFd` is moved into the `AsyncFd`, which owns it until dropped, so the
    // descriptor stays open and refers to the same pidfd for the registration's lifetime.
    unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE)
            .map_err(io::Error::from)
    }
}
