//! Each run's private temp dir (mode 0700, its `TMPDIR`, writable under every isolation level).
//!
//! A run that leaves its temp dir empty hands it on to a later run instead of removing it: on a
//! journalled filesystem, making and removing a directory were a tenth of a sandboxed spawn. A
//! dir that is not empty, or no longer a plain directory of ours, is removed, never reused, so
//! nothing of one run is seen by the next.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::SandboxError;

/// Idle temp dirs kept for reuse, at most.
const MAX_IDLE: usize = 16;

/// The temp dirs of one sandbox: `{parent}/{prefix}-{n}`.
#[derive(Debug)]
pub(crate) struct TempDirs {
    parent: PathBuf,
    prefix: String,
    made: AtomicU64,
    idle: Mutex<Vec<PathBuf>>,
}

impl TempDirs {
    pub fn new(parent: PathBuf, prefix: String) -> Self {
        Self {
            parent,
            prefix,
            made: AtomicU64::new(0),
            idle: Mutex::new(Vec::new()),
        }
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<PathBuf>> {
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// An empty private dir for one run.
    pub fn take(&self) -> Result<TempDir, SandboxError> {
        loop {
            let Some(path) = self.idle().pop() else { break };
            // A full-access run may have replaced or re-permissioned it since it was checked.
            match fs::symlink_metadata(&path) {
                Ok(m) if m.is_dir() && m.mode() & 0o7777 == 0o700 => return Ok(TempDir(path)),
                Ok(m) if m.is_dir() => {
                    if fs::set_permissions(&path, fs::Permissions::from_mode(0o700)).is_ok() {
                        return Ok(TempDir(path));
                    }
                    drop(TempDir(path));
                }
                _ => drop(TempDir(path)),
            }
        }
        let n = self.made.fetch_add(1, Ordering::Relaxed);
        let path = self.parent.join(format!("{}-{n}", self.prefix));
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(|source| SandboxError::Setup {
                stage: "private temp dir",
                source,
            })?;
        Ok(TempDir(path))
    }

    /// The run is over: keep its dir if it left it empty, else remove it.
    pub async fn release(&self, dir: TempDir) {
        let empty = fs::read_dir(dir.path()).is_ok_and(|mut entries| entries.next().is_none());
        let is_dir = fs::symlink_metadata(dir.path()).is_ok_and(|m| m.is_dir());
        let path = dir.into_path();
        if empty && is_dir {
            let mut idle = self.idle();
            if idle.len() < MAX_IDLE {
                idle.push(path);
                return;
            }
        }
        if fs::remove_dir(&path).is_err() {
            let _ = tokio::fs::remove_dir_all(&path).await;
        }
    }
}

impl Drop for TempDirs {
    fn drop(&mut self) {
        for path in self.idle().drain(..) {
            drop(TempDir(path));
        }
    }
}

/// One run's temp dir; removed with everything in it when dropped (a cancelled run).
#[derive(Debug)]
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// The path, no longer removed on drop.
    fn into_path(self) -> PathBuf {
        let path = self.0.clone();
        std::mem::forget(self);
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // A symlink put in its place is removed, not followed.
        match fs::symlink_metadata(&self.0) {
            Ok(m) if m.is_dir() => {
                let _ = fs::remove_dir_all(&self.0);
            }
            Ok(_) => {
                let _ = fs::remove_file(&self.0);
            }
            Err(_) => {}
        }
    }
}
