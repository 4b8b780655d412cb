//! Records what the binary was built from for `dbsync_exporter_build_info`: the git revision
//! (`unknown` outside a git checkout, e.g. a source package) and the rustc version.

use std::process::Command;

fn output(command: &mut Command) -> Option<String> {
    let output = command.output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .filter(|text| !text.is_empty())
}

fn main() {
    let revision = output(Command::new("git").args(["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=DBSYNC_EXPORTER_REVISION={revision}");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    // "rustc 1.95.0 (59807616e 2026-04-14)" -> "1.95.0"
    let version = output(Command::new(rustc).arg("--version"))
        .and_then(|text| text.split_whitespace().nth(1).map(str::to_owned))
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=DBSYNC_EXPORTER_RUSTC={version}");
    // A new commit moves HEAD or the branch it points to (worktrees keep both elsewhere).
    if let Some(head) = output(Command::new("git").args(["rev-parse", "--git-path", "HEAD"])) {
        println!("cargo:rerun-if-changed={head}");
    }
    if let Some(refs) = output(Command::new("git").args(["rev-parse", "--git-common-dir"])) {
        println!("cargo:rerun-if-changed={refs}/refs/heads");
        println!("cargo:rerun-if-changed={refs}/packed-refs");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
