//! Filesystem (and TCP) rules with Landlock, in two layers (a process must pass every layer).
//!
//! 1. The read layer, built once per sandbox and reused by every run: everything readable
//!    except the denied paths, and every write right granted everywhere (the next layer narrows
//!    writes). Landlock only grants, it cannot carve a hole into a granted tree: to deny reading
//!    `~/.ssh` while the rest of the host stays readable, the read grant is spread over the
//!    siblings of every ancestor of a denied path. That can be a few hundred rules (`/etc` is
//!    wide), which is why the layer is cached ([`ReadPlan`], rebuilt when a listed directory
//!    changes) instead of rebuilt per run; adding the rules was most of a sandboxed spawn.
//! 2. The write layer, per run and small: writes only below the working directory, the private
//!    temp dir and a few devices; no TCP bind/connect when the network is denied; no signals
//!    or abstract UNIX sockets outside the sandbox (ABI 6).
//!
//! Directory listing stays allowed everywhere (names are not secrets; contents are).

use std::fs;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, PathBeneath, PathFd, Ruleset, RulesetAttr,
    RulesetCreated, RulesetCreatedAttr, RulesetError, Scope,
};

use crate::error::SandboxError;

/// Highest Landlock ABI whose rights we ask for; the crate downgrades on older kernels.
const ABI_WANTED: ABI = ABI::V6;

/// Character devices every run may read and write.
const DEVICES: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
];

/// Read grants that make everything readable except the denied paths, with the descriptors
/// opened once (O_PATH) and the directories they were derived from, to notice changes.
#[derive(Debug)]
pub(crate) struct ReadPlan {
    /// The read layer's ruleset, restricted-to by every run.
    pub layer: Arc<OwnedFd>,
    /// Directories listed to build the plan, with their modification time then.
    listed: Vec<(PathBuf, Option<SystemTime>)>,
}

impl ReadPlan {
    pub fn build(deny: &[PathBuf]) -> Result<Self, SandboxError> {
        let deny: Vec<PathBuf> = deny
            .iter()
            .filter_map(|p| fs::canonicalize(p).ok())
            .collect();
        let mut paths = Vec::new();
        let mut listed = Vec::new();
        if deny.is_empty() {
            paths.push(PathBuf::from("/"));
        } else {
            expand(Path::new("/"), &deny, &mut paths, &mut listed);
        }
        let layer = read_layer(&paths)?;
        Ok(Self {
            layer: Arc::new(layer),
            listed,
        })
    }

    /// No listed directory changed since the plan was built (an entry added next to a denied
    /// path must get its grant).
    pub fn is_fresh(&self) -> bool {
        self.listed
            .iter()
            .all(|(dir, mtime)| fs::metadata(dir).and_then(|m| m.modified()).ok() == *mtime)
    }
}

fn expand(
    dir: &Path,
    deny: &[PathBuf],
    out: &mut Vec<PathBuf>,
    listed: &mut Vec<(PathBuf, Option<SystemTime>)>,
) {
    listed.push((
        dir.to_path_buf(),
        fs::metadata(dir).and_then(|m| m.modified()).ok(),
    ));
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        // A symlink resolves to its target when the rule is made: its target has its own rule.
        if kind.is_symlink() || deny.iter().any(|d| d == &path) {
            continue;
        }
        if kind.is_dir() && deny.iter().any(|d| d.starts_with(&path)) {
            expand(&path, deny, out, listed);
        } else {
            out.push(path);
        }
    }
}

fn setup_error(e: RulesetError) -> SandboxError {
    SandboxError::Setup {
        stage: "landlock ruleset",
        source: std::io::Error::other(e.to_string()),
    }
}

/// The ruleset's descriptor; none means Landlock is not supported after all.
fn created_fd(created: Result<Option<OwnedFd>, RulesetError>) -> Result<OwnedFd, SandboxError> {
    created
        .map_err(setup_error)?
        .ok_or_else(|| SandboxError::Setup {
            stage: "landlock ruleset",
            source: std::io::Error::from_raw_os_error(libc::EOPNOTSUPP),
        })
}

fn read_layer(readable: &[PathBuf]) -> Result<OwnedFd, SandboxError> {
    let abi = ABI_WANTED;
    let build = || -> Result<Option<OwnedFd>, RulesetError> {
        let mut created = Ruleset::default()
            .handle_access(AccessFs::from_all(abi))?
            .create()?;
        let everywhere = AccessFs::from_write(abi) | AccessFs::ReadDir;
        created = add(created, [Path::new("/")], everywhere, abi)?;
        created = add(
            created,
            readable.iter().map(PathBuf::as_path),
            AccessFs::from_read(abi),
            abi,
        )?;
        Ok(created.into())
    };
    created_fd(build())
}

/// The per-run layer: writes only below `write` and the devices; when `deny_tcp`, no TCP bind
/// or connect.
pub(crate) fn write_layer(write: &[PathBuf], deny_tcp: bool) -> Result<OwnedFd, SandboxError> {
    let abi = ABI_WANTED;
    let build = || -> Result<Option<OwnedFd>, RulesetError> {
        let mut rs = Ruleset::default().handle_access(AccessFs::from_write(abi))?;
        if deny_tcp {
            rs = rs.handle_access(AccessNet::from_all(abi))?;
        }
        let mut created = rs.scope(Scope::from_all(abi))?.create()?;
        created = add(
            created,
            DEVICES.iter().map(Path::new),
            AccessFs::from_write(abi),
            abi,
        )?;
        created = add(
            created,
            write.iter().map(PathBuf::as_path),
            AccessFs::from_write(abi),
            abi,
        )?;
        Ok(created.into())
    };
    created_fd(build())
}

fn add<'a>(
    mut created: RulesetCreated,
    paths: impl IntoIterator<Item = &'a Path>,
    access: BitFlags<AccessFs>,
    abi: ABI,
) -> Result<RulesetCreated, RulesetError> {
    for path in paths {
        // Paths that vanished since the plan was made are skipped, not fatal.
        let Ok(meta) = fs::metadata(path) else {
            continue;
        };
        let Ok(fd) = PathFd::new(path) else { continue };
        let access = if meta.is_dir() {
            access
        } else {
            access & AccessFs::from_file(abi)
        };
        created = created.add_rule(PathBeneath::new(fd, access))?;
    }
    Ok(created)
}
