//! Filesystem (and TCP) rules with Landlock.
//!
//! Landlock only grants, it cannot carve a hole into a granted tree. To deny reading a path such
//! as `~/.ssh` while the rest of the host stays readable, the read grant is spread over the
//! siblings of every ancestor of the denied paths ([`ReadPlan`], opened once and rebuilt when
//! one of the listed directories changes).
//! Directory listing stays allowed everywhere (names are not secrets; contents are).

use std::fs;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
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
    /// `(descriptor, is a directory)` of each granted path.
    roots: Vec<(PathFd, bool)>,
    /// Directories listed to build the plan, with their modification time then.
    listed: Vec<(PathBuf, Option<SystemTime>)>,
}

impl ReadPlan {
    pub fn build(deny: &[PathBuf]) -> Self {
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
        let roots = paths
            .iter()
            .filter_map(|p| {
                let is_dir = fs::metadata(p).ok()?.is_dir();
                let fd = PathFd::new(p).ok()?;
                Some((fd, is_dir))
            })
            .collect();
        Self { roots, listed }
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

/// Build a Landlock ruleset: read `read`, read and write `write`, devices, and when
/// `deny_tcp` no TCP bind or connect. Returns the ruleset descriptor for the child.
pub(crate) fn ruleset(
    read: &ReadPlan,
    write: &[PathBuf],
    deny_tcp: bool,
) -> Result<Option<OwnedFd>, SandboxError> {
    build(read, write, deny_tcp).map_err(|e| SandboxError::Setup {
        stage: "landlock ruleset",
        source: std::io::Error::other(e.to_string()),
    })
}

fn build(
    read: &ReadPlan,
    write: &[PathBuf],
    deny_tcp: bool,
) -> Result<Option<OwnedFd>, RulesetError> {
    let abi = ABI_WANTED;
    let mut rs = Ruleset::default().handle_access(AccessFs::from_all(abi))?;
    if deny_tcp {
        rs = rs.handle_access(AccessNet::from_all(abi))?;
    }
    let rs = rs.scope(Scope::from_all(abi))?;
    let mut created = rs.create()?;
    created = add(created, [Path::new("/")], AccessFs::ReadDir.into(), abi)?;
    for (fd, is_dir) in &read.roots {
        let access = if *is_dir {
            AccessFs::from_read(abi)
        } else {
            AccessFs::from_read(abi) & AccessFs::from_file(abi)
        };
        created = created.add_rule(PathBeneath::new(fd, access))?;
    }
    created = add(
        created,
        DEVICES.iter().map(Path::new),
        AccessFs::from_all(abi),
        abi,
    )?;
    created = add(
        created,
        write.iter().map(PathBuf::as_path),
        AccessFs::from_all(abi),
        abi,
    )?;
    Ok(created.into())
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
