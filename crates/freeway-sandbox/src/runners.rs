//! Code runners: which language runtimes are installed, and how a `code` snippet or a workspace
//! `file` becomes one or two processes (compile in the run's private temp dir, then run).

use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::SandboxError;

/// How a language is run.
#[derive(Debug, Clone, Copy)]
enum Mode {
    /// `runtime <file> args…`
    Interpret,
    /// `runtime <flags> -o prog <file>`, then `prog args…`
    Compile(&'static [&'static str]),
    /// `go build -o prog <file>`, then `prog args…`
    GoBuild,
}

struct Lang {
    name: &'static str,
    aliases: &'static [&'static str],
    runtimes: &'static [&'static str],
    extensions: &'static [&'static str],
    mode: Mode,
}

const LANGS: &[Lang] = &[
    Lang {
        name: "bash",
        aliases: &["shell"],
        runtimes: &["bash"],
        extensions: &["bash", "sh"],
        mode: Mode::Interpret,
    },
    Lang {
        name: "sh",
        aliases: &["posix-sh", "dash"],
        runtimes: &["sh"],
        extensions: &[],
        mode: Mode::Interpret,
    },
    Lang {
        name: "python",
        aliases: &["py", "python3"],
        runtimes: &["python3", "python"],
        extensions: &["py"],
        mode: Mode::Interpret,
    },
    Lang {
        name: "node",
        aliases: &["javascript", "js", "nodejs"],
        runtimes: &["node", "nodejs"],
        extensions: &["js", "mjs", "cjs"],
        mode: Mode::Interpret,
    },
    Lang {
        name: "c",
        aliases: &[],
        runtimes: &["cc", "gcc", "clang"],
        extensions: &["c"],
        mode: Mode::Compile(&["-O1", "-w", "-lm"]),
    },
    Lang {
        name: "cpp",
        aliases: &["c++", "cxx"],
        runtimes: &["c++", "g++", "clang++"],
        extensions: &["cpp", "cc", "cxx"],
        mode: Mode::Compile(&["-O1", "-w"]),
    },
    Lang {
        name: "rust",
        aliases: &["rs"],
        runtimes: &["rustc"],
        extensions: &["rs"],
        mode: Mode::Compile(&["--edition", "2021", "-C", "opt-level=1"]),
    },
    Lang {
        name: "go",
        aliases: &["golang"],
        runtimes: &["go"],
        extensions: &["go"],
        mode: Mode::GoBuild,
    },
];

/// A language and whether this host can run it (`GET /v1/exec/languages`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LanguageInfo {
    /// Name to use in a `code` request.
    pub language: &'static str,
    /// Other accepted names.
    pub aliases: &'static [&'static str],
    /// A runtime was found on PATH.
    pub available: bool,
    /// The runtime found.
    pub runtime: Option<PathBuf>,
    /// Compiled before running.
    pub compiled: bool,
    /// File extensions run as this language.
    pub extensions: &'static [&'static str],
}

/// Every supported language and whether it is installed, looked up on `path` (a PATH value).
pub fn languages_on(path: &OsStr) -> Vec<LanguageInfo> {
    LANGS
        .iter()
        .map(|l| {
            let runtime = l.runtimes.iter().find_map(|r| which(r, path));
            LanguageInfo {
                language: l.name,
                aliases: l.aliases,
                available: runtime.is_some(),
                runtime,
                compiled: !matches!(l.mode, Mode::Interpret),
                extensions: l.extensions,
            }
        })
        .collect()
}

/// Find an executable on a PATH value.
pub(crate) fn which(name: &str, path: &OsStr) -> Option<PathBuf> {
    if name.contains('/') {
        let p = PathBuf::from(name);
        return is_executable(&p).then_some(p);
    }
    std::env::split_paths(path)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// One process of a plan.
#[derive(Debug, Clone)]
pub(crate) struct Step {
    pub program: String,
    pub args: Vec<String>,
    /// `compile` or `run`.
    pub stage: &'static str,
}

fn find_lang(name: &str) -> Option<&'static Lang> {
    let name = name.to_ascii_lowercase();
    LANGS
        .iter()
        .find(|l| l.name == name || l.aliases.contains(&name.as_str()))
}

fn runtime(lang: &Lang, path: &OsStr) -> Result<PathBuf, SandboxError> {
    lang.runtimes
        .iter()
        .find_map(|r| which(r, path))
        .ok_or_else(|| SandboxError::RuntimeMissing {
            language: lang.name.to_string(),
            looked_for: lang.runtimes.join(", "),
        })
}

fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Plan a snippet: write it into `tmp` and return the steps.
pub(crate) fn plan_code(
    language: &str,
    source: &str,
    tmp: &Path,
    path: &OsStr,
) -> Result<Vec<Step>, SandboxError> {
    let lang = find_lang(language).ok_or_else(|| {
        SandboxError::InvalidRequest(format!(
            "unknown language `{language}`; known: {}",
            LANGS.iter().map(|l| l.name).collect::<Vec<_>>().join(", ")
        ))
    })?;
    let ext = lang.extensions.first().copied().unwrap_or("sh");
    let file = tmp.join(format!("main.{ext}"));
    fs::write(&file, source).map_err(|source| SandboxError::Setup {
        stage: "writing the source file",
        source,
    })?;
    plan_lang(lang, &file, &[], tmp, path)
}

fn plan_lang(
    lang: &Lang,
    file: &Path,
    args: &[String],
    tmp: &Path,
    path: &OsStr,
) -> Result<Vec<Step>, SandboxError> {
    let rt = runtime(lang, path)?;
    let prog = tmp.join("prog");
    Ok(match lang.mode {
        Mode::Interpret => {
            vec![Step {
                program: s(&rt),
                args: std::iter::once(s(file))
                    .chain(args.iter().cloned())
                    .collect(),
                stage: "run",
            }]
        }
        Mode::Compile(flags) => {
            // gcc wants libraries after the source file.
            let (before, after): (Vec<&str>, Vec<&str>) =
                flags.iter().partition(|f| !f.starts_with("-l"));
            let mut cargs: Vec<String> = before.iter().map(|f| (*f).to_string()).collect();
            cargs.extend(["-o".to_string(), s(&prog), s(file)]);
            cargs.extend(after.iter().map(|f| (*f).to_string()));
            vec![
                Step {
                    program: s(&rt),
                    args: cargs,
                    stage: "compile",
                },
                Step {
                    program: s(&prog),
                    args: args.to_vec(),
                    stage: "run",
                },
            ]
        }
        Mode::GoBuild => vec![
            Step {
                program: s(&rt),
                args: vec!["build".into(), "-o".into(), s(&prog), s(file)],
                stage: "compile",
            },
            Step {
                program: s(&prog),
                args: args.to_vec(),
                stage: "run",
            },
        ],
    })
}

/// Plan a workspace file by extension, then shebang, then executable bit.
pub(crate) fn plan_file(
    file: &Path,
    args: &[String],
    tmp: &Path,
    path: &OsStr,
) -> Result<Vec<Step>, SandboxError> {
    let meta = fs::metadata(file)
        .map_err(|e| SandboxError::InvalidRequest(format!("{}: {e}", file.display())))?;
    if !meta.is_file() {
        return Err(SandboxError::InvalidRequest(format!(
            "{} is not a regular file",
            file.display()
        )));
    }
    let ext = file
        .extension()
        .and_then(OsStr::to_str)
        .unwrap_or("")
        .to_ascii_lowercase();
    let shebang = read_shebang(file);
    if let Some(line) = &shebang {
        // The shebang names the interpreter (and one optional argument).
        let mut words = line.split_whitespace();
        if let Some(interp) = words.next() {
            let mut argv: Vec<String> = words.map(String::from).collect();
            let (program, rest) =
                if Path::new(interp).file_name().is_some_and(|n| n == "env") && !argv.is_empty() {
                    let name = argv.remove(0);
                    (which(&name, path).map_or(name, |p| s(&p)), argv)
                } else {
                    (interp.to_string(), argv)
                };
            let mut all = rest;
            all.push(s(file));
            all.extend(args.iter().cloned());
            return Ok(vec![Step {
                program,
                args: all,
                stage: "run",
            }]);
        }
    }
    if let Some(lang) = LANGS.iter().find(|l| l.extensions.contains(&ext.as_str())) {
        return plan_lang(lang, file, args, tmp, path);
    }
    if meta.permissions().mode() & 0o111 != 0 {
        return Ok(vec![Step {
            program: s(file),
            args: args.to_vec(),
            stage: "run",
        }]);
    }
    Err(SandboxError::InvalidRequest(format!(
        "cannot tell how to run {}: no known extension, no #! line, not executable",
        file.display()
    )))
}

fn read_shebang(file: &Path) -> Option<String> {
    let mut head = [0u8; 256];
    let n = fs::File::open(file)
        .and_then(|mut f| f.read(&mut head))
        .ok()?;
    let head = &head[..n];
    let rest = head.strip_prefix(b"#!")?;
    let line = rest.split(|&b| b == b'\n').next()?;
    Some(String::from_utf8_lossy(line).trim().to_string())
}
