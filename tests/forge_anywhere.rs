//! `pooltriage forge` outside the development tree: a copy of the binary in an empty folder,
//! run from another empty folder with no corpus variable, forges a dump when given a Volatility 3
//! symbol folder (`--isf-dir`, as `analyze` takes), and without one says where it looked and
//! what to pass instead of failing with a path of this repository.

#[path = "independent/harness.rs"]
mod harness;

use std::process::Command;

fn forge_cmd(bin: &std::path::Path, cwd: &std::path::Path) -> Command {
    let mut cmd = Command::new(bin);
    cmd.current_dir(cwd)
        .env_remove("POOLTRIAGE_CORPUS")
        .env_remove("POOLTRIAGE_ISF_DIR")
        .args([
            "forge",
            "--profile",
            "win10-19041-x64",
            "--format",
            "kernel-bitmap",
        ])
        .args(["--size", "268435456", "--out", "out.dmp"]);
    cmd
}

#[test]
fn forge_works_from_any_folder_given_an_isf_folder() {
    let away = tempfile::tempdir().unwrap();
    let bin = away.path().join("bin").join("pooltriage");
    std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
    std::fs::copy(harness::pooltriage_bin(), &bin).unwrap();
    let cwd = away.path().join("work");
    std::fs::create_dir_all(&cwd).unwrap();

    let out = forge_cmd(&bin, &cwd).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--isf-dir") && err.contains("not found"),
        "says what to pass: {err}"
    );

    let out = forge_cmd(&bin, &cwd)
        .arg("--isf-dir")
        .arg(harness::corpus().join("isf"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(cwd.join("out.dmp").is_file() && cwd.join("out.dmp.truth.json").is_file());
}
