//! The directory a session works in. Every path a tool touches is resolved here and must stay
//! inside it, symlinks included.

use std::path::{Component, Path, PathBuf};

use crate::tool::ToolError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    root: PathBuf,
}

impl Workspace {
    /// A workspace rooted at `root`, which must be an existing directory.
    pub fn new(root: impl AsRef<Path>) -> std::io::Result<Self> {
        let root = std::fs::canonicalize(root.as_ref())?;
        if !root.is_dir() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotADirectory,
                format!("{} is not a directory", root.display()),
            ));
        }
        Ok(Workspace { root })
    }

    /// The canonical root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Resolves `path` (relative to the root, or absolute inside it) to an absolute path that
    /// is inside the workspace. The path need not exist; its nearest existing ancestor is
    /// canonicalized so that a symlink cannot lead out.
    pub fn resolve(&self, path: &str) -> Result<PathBuf, ToolError> {
        if path.is_empty() {
            return Err(ToolError::new("the path is empty"));
        }
        let given = Path::new(path);
        let joined = if given.is_absolute() {
            given.to_path_buf()
        } else {
            self.root.join(given)
        };
        let mut normal = PathBuf::new();
        for part in joined.components() {
            match part {
                Component::ParentDir => {
                    normal.pop();
                }
                Component::CurDir => {}
                other => normal.push(other),
            }
        }
        // Canonicalize the longest existing prefix, then re-append the rest.
        let mut existing = normal.as_path();
        let mut rest = Vec::new();
        let canonical = loop {
            match std::fs::canonicalize(existing) {
                Ok(c) => break c,
                Err(_) => match (existing.parent(), existing.file_name()) {
                    (Some(parent), Some(name)) => {
                        rest.push(name.to_owned());
                        existing = parent;
                    }
                    _ => break existing.to_path_buf(),
                },
            }
        };
        let mut resolved = canonical;
        for name in rest.into_iter().rev() {
            resolved.push(name);
        }
        if !resolved.starts_with(&self.root) {
            return Err(ToolError(format!(
                "{path} is outside the working directory {}; use a path inside it",
                self.root.display()
            )));
        }
        Ok(resolved)
    }

    /// `path` relative to the root, for messages and listings.
    pub fn display(&self, path: &Path) -> String {
        match path.strip_prefix(&self.root) {
            Ok(p) if p.as_os_str().is_empty() => ".".to_owned(),
            Ok(p) => p.display().to_string(),
            Err(_) => path.display().to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_root() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        std::fs::create_dir(dir.path().join("src"))?;
        let ws = Workspace::new(dir.path())?;
        let root = ws.root().to_path_buf();
        assert_eq!(ws.resolve("src/lib.rs").ok(), Some(root.join("src/lib.rs")));
        assert_eq!(ws.resolve("./a/../b").ok(), Some(root.join("b")));
        assert!(ws.resolve("../etc/passwd").is_err());
        assert!(ws.resolve("/etc/passwd").is_err());
        assert_eq!(
            ws.resolve(&root.join("src").display().to_string()).ok(),
            Some(root.join("src"))
        );
        Ok(())
    }

    #[test]
    fn a_symlink_cannot_lead_out() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let outside = tempfile::tempdir()?;
        std::os::unix::fs::symlink(outside.path(), dir.path().join("link"))?;
        let ws = Workspace::new(dir.path())?;
        let err = ws.resolve("link/secret.txt").err();
        assert!(err.is_some_and(|e| e.0.contains("outside the working directory")));
        Ok(())
    }
}
