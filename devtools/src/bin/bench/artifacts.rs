//! The binaries the benchmark runs, built here with the release profile, and the deploy zips.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// `cargo build --release <args>` in the workspace, and the path of the binary it made.
pub fn cargo_build(root: &Path, args: &[&str], binary: &str) -> Result<PathBuf, String> {
    eprintln!("cargo build --release {} ...", args.join(" "));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "--quiet"])
        .args(args)
        .current_dir(root)
        .status()
        .map_err(|e| format!("cargo build: {e}"))?;
    if !status.success() {
        return Err(format!("cargo build --release {} failed", args.join(" ")));
    }
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    Ok(target.join("release").join(binary))
}

pub fn file_size(path: &Path) -> Result<u64, String> {
    std::fs::metadata(path)
        .map(|m| m.len())
        .map_err(|e| format!("{}: {e}", path.display()))
}

pub enum Zips {
    Skipped(&'static str),
    Built {
        arm64: Result<u64, String>,
        x86_64: Result<u64, String>,
    },
}

/// `./build.sh --arch <arch>`, then the size of `target/lambda/<arch>/deploy.zip`.
pub fn build_zip(root: &Path, arch: &str) -> Result<u64, String> {
    eprintln!("./build.sh --arch {arch} ...");
    let status = Command::new(root.join("build.sh"))
        .args(["--arch", arch])
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(std::io::stderr())
        .status()
        .map_err(|e| format!("./build.sh: {e}"))?;
    if !status.success() {
        return Err(format!("build.sh failed ({status})"));
    }
    file_size(&root.join("target/lambda").join(arch).join("deploy.zip"))
}
