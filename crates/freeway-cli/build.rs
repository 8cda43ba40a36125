//! How the release `freeway` binary is linked, for a smaller resident set and denser hot code.
//!
//! - `-z pack-relative-relocs` (RELR): the binary is position-independent, and its 52,000
//!   relative relocations took 1.2 MB of `.rela.dyn`, all read at start-up. Packed, they take
//!   about 32 KB.
//! - `--symbol-ordering-file=hot-text.txt`: the functions `freeway serve` runs (requests first,
//!   then start-up) go to the front of `.text`, together. Spread over 29 MB of code they made the
//!   kernel map 14.5 MB of text at start-up, and a request on a cold CPU walk hundreds of scattered
//!   pages. `scripts/hot-text/profile.py` regenerates the file; names a later build no longer has
//!   are skipped (`--no-warn-symbol-ordering`), so a stale file costs density, not correctness.
//!
//! Both are linker features of lld (Rust's default linker on x86_64 Linux) and of glibc 2.36+
//! (RELR), so they are used only when a probe program links with them and runs. Release builds
//! only; `FREEWAY_HOT_TEXT=off` turns both off (the profiling build does).

// A build script talks to Cargo on stdout (whether clippy lints build scripts for it varies).
#![allow(clippy::print_stdout)]

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=hot-text.txt");
    println!("cargo:rerun-if-env-changed=FREEWAY_HOT_TEXT");
    if env::var("PROFILE").as_deref() != Ok("release")
        || env::var("FREEWAY_HOT_TEXT").as_deref() == Ok("off")
    {
        return;
    }
    let order = Path::new(&env::var("CARGO_MANIFEST_DIR").unwrap_or_default()).join("hot-text.txt");
    let mut args = vec!["-Wl,-z,pack-relative-relocs".to_owned()];
    if order.is_file() {
        args.push(format!("-Wl,--symbol-ordering-file={}", order.display()));
        args.push("-Wl,--no-warn-symbol-ordering".to_owned());
    }
    if !probe(&args) {
        println!(
            "cargo:warning=the linker refused {}; linking freeway without them",
            args.join(" ")
        );
        return;
    }
    for arg in args {
        println!("cargo:rustc-link-arg-bin=freeway={arg}");
    }
}

/// Whether a program linked with `args` by the linker this build uses starts.
fn probe(args: &[String]) -> bool {
    let (Ok(rustc), Ok(out)) = (env::var("RUSTC"), env::var("OUT_DIR")) else {
        return false;
    };
    // Running the probe needs a native build.
    if env::var("HOST").ok() != env::var("TARGET").ok() {
        return false;
    }
    let dir = PathBuf::from(out);
    let source = dir.join("probe.rs");
    let binary = dir.join("probe");
    if std::fs::write(&source, "fn main() {}\n").is_err() {
        return false;
    }
    let mut cmd = Command::new(rustc);
    cmd.arg(&source).arg("-o").arg(&binary);
    if let Ok(linker) = env::var("RUSTC_LINKER") {
        cmd.arg(format!("-Clinker={linker}"));
    }
    // The build's own flags, which may choose another linker (`-C link-arg=-fuse-ld=…`).
    if let Ok(flags) = env::var("CARGO_ENCODED_RUSTFLAGS") {
        cmd.args(flags.split('\x1f').filter(|f| !f.is_empty()));
    }
    for arg in args {
        cmd.arg(format!("-Clink-arg={arg}"));
    }
    let linked = cmd.output().map(|o| o.status.success()).unwrap_or(false);
    linked
        && Command::new(&binary)
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
}
