//! docker-compose.yml run for real (tests/service_compose.rs): the docker CLI and compose found
//! from the environment, a compose project with a unique name torn down (`down -v`) when
//! dropped, and the image holding the already-built `pooltriage` binary that the Dockerfile takes
//! instead of compiling its own (build argument `BINARY_FROM`).
//!
//! Environment (scripts/test.sh sets them from scripts/docker-test-images.sh):
//! - `POOLTRIAGE_DOCKER`: the docker CLI (`docker`). It must build with BuildKit, which skips the
//!   Dockerfile's unused builder stage: Debian's docker.io 20.10 does, a newer CLI without the
//!   buildx plugin does not;
//! - `POOLTRIAGE_COMPOSE`: the compose command (`docker compose` when that plugin answers, else
//!   `docker-compose`, Debian's 1.29, which builds through that CLI: `COMPOSE_DOCKER_CLI_BUILD`);
//! - `POOLTRIAGE_RUNTIME_IMAGE`, `POOLTRIAGE_POSTGRES_IMAGE`: read by docker-compose.yml itself
//!   (base images made locally where Docker Hub cannot be reached; the official ones otherwise).
#![allow(dead_code)]

use super::harness::{pooltriage_bin, repo_root};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The docker CLI, once its daemon answered.
pub struct Docker {
    cli: PathBuf,
    compose: Vec<String>,
}

/// `$POOLTRIAGE_DOCKER`, else `docker` on PATH.
fn docker_cli() -> PathBuf {
    std::env::var_os("POOLTRIAGE_DOCKER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("docker"))
}

impl Docker {
    /// The daemon, or why it cannot be reached (`docker info` fails or the CLI is missing).
    pub fn connect() -> Result<Docker, String> {
        let cli = docker_cli();
        let out = Command::new(&cli)
            .args(["info", "--format", "{{.ServerVersion}}"])
            .output()
            .map_err(|e| format!("cannot run {}: {e}", cli.display()))?;
        if !out.status.success() {
            return Err(format!(
                "`{} info` failed: {}",
                cli.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let compose = match std::env::var("POOLTRIAGE_COMPOSE") {
            Ok(c) if !c.trim().is_empty() => c.split_whitespace().map(String::from).collect(),
            _ => {
                let plugin = Command::new(&cli).args(["compose", "version"]).output();
                if plugin.map(|o| o.status.success()).unwrap_or(false) {
                    vec![cli.display().to_string(), "compose".into()]
                } else {
                    vec!["docker-compose".into()]
                }
            }
        };
        Ok(Docker { cli, compose })
    }

    /// A docker CLI command (the environment of [`Docker::env`] applied).
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(&self.cli);
        self.env(&mut c);
        c
    }

    /// BuildKit on, compose 1.x building through the CLI, and that CLI first on PATH (compose
    /// 1.x runs `docker build` by name).
    fn env(&self, c: &mut Command) {
        c.env("DOCKER_BUILDKIT", "1")
            .env("COMPOSE_DOCKER_CLI_BUILD", "1");
        if let Some(dir) = self.cli.parent().filter(|d| !d.as_os_str().is_empty()) {
            let path = std::env::var_os("PATH").unwrap_or_default();
            let mut dirs = vec![dir.to_path_buf()];
            dirs.extend(std::env::split_paths(&path));
            c.env("PATH", std::env::join_paths(dirs).expect("PATH"));
        }
    }

    /// Runs a docker command to its end; panics with its stderr when it fails; stdout.
    pub fn run(&self, args: &[&str]) -> String {
        checked(self.cmd().args(args), &format!("docker {}", args.join(" ")))
    }

    /// Builds `tag`: `FROM scratch` holding the test's `pooltriage` binary at
    /// /usr/local/bin/pooltriage, the path the Dockerfile copies from `BINARY_FROM`. The binary
    /// runs in the image only if it was built against the runtime image's glibc or an older one
    /// (the CI machines are Debian bookworm, as the runtime image).
    pub fn binary_image(&self, tag: &str) {
        let ctx = tempfile::tempdir().unwrap();
        let copy = ctx.path().join("pooltriage");
        std::fs::copy(pooltriage_bin(), &copy).expect("copy the binary");
        // Without its debug information (273 MB -> 35 MB here: less to send to the daemon and
        // to copy between layers); binutils' strip, when there.
        let _ = Command::new("strip")
            .arg("--strip-debug")
            .arg(&copy)
            .status();
        std::fs::write(
            ctx.path().join("Dockerfile"),
            "FROM scratch\nCOPY pooltriage /usr/local/bin/pooltriage\n",
        )
        .unwrap();
        self.run(&["build", "-q", "-t", tag, ctx.path().to_str().unwrap()]);
    }

    /// Whether the container is running (`docker inspect`).
    pub fn running(&self, container: &str) -> bool {
        self.run(&["inspect", "-f", "{{.State.Running}}", container])
            .trim()
            == "true"
    }

    /// The command lines of the processes in `container`, read by the host (`docker top`), so
    /// the image needs no `ps`.
    pub fn processes(&self, container: &str) -> Vec<String> {
        // `docker top` needs the PID column.
        let out = self
            .cmd()
            .args(["top", container, "-o", "pid,args"])
            .output();
        match out {
            Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
                .lines()
                .skip(1)
                .map(String::from)
                .collect(),
            // A container that is not running has no processes.
            _ => Vec::new(),
        }
    }
}

fn checked(cmd: &mut Command, what: &str) -> String {
    let out: Output = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A compose project of docker-compose.yml plus an override file, under a name of its own (so
/// parallel runs and a user's own project never meet); `down -v` and the test images removed
/// when dropped, the services' logs printed first when the test failed.
pub struct Project<'a> {
    pub docker: &'a Docker,
    pub name: String,
    files: Vec<PathBuf>,
    env: Vec<(String, String)>,
    images: Vec<String>,
}

impl<'a> Project<'a> {
    /// `override_file` is added after docker-compose.yml; `env` is the compose variables.
    pub fn new(
        docker: &'a Docker,
        name: &str,
        override_file: &Path,
        env: &[(&str, &str)],
        images: &[&str],
    ) -> Project<'a> {
        Project {
            docker,
            name: name.to_string(),
            files: vec![repo_root().join("docker-compose.yml"), override_file.into()],
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            images: images.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// A compose command of this project (`-p NAME -f ... -f ...`, the variables set).
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.docker.compose[0]);
        c.args(&self.docker.compose[1..]).arg("-p").arg(&self.name);
        for f in &self.files {
            c.arg("-f").arg(f);
        }
        c.args(args).current_dir(repo_root());
        self.docker.env(&mut c);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    /// Runs a compose command to its end; panics with its output when it fails; stdout.
    pub fn run(&self, args: &[&str]) -> String {
        checked(&mut self.cmd(args), &format!("compose {}", args.join(" ")))
    }

    /// The container id of `service`'s (single) container.
    pub fn container(&self, service: &str) -> String {
        let out = self.run(&["ps", "-q", service]);
        let ids: Vec<&str> = out.split_whitespace().collect();
        assert_eq!(ids.len(), 1, "one container of {service}: {out}");
        ids[0].to_string()
    }
}

impl Drop for Project<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Ok(o) = self.cmd(&["logs", "--no-color", "--tail", "40"]).output() {
                eprintln!(
                    "--- compose logs ---\n{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                );
            }
        }
        let down = self
            .cmd(&["--profile", "scale", "down", "-v", "--remove-orphans"])
            .output();
        if !down.map(|o| o.status.success()).unwrap_or(false) {
            eprintln!("compose down of project {} failed", self.name);
        }
        for image in &self.images {
            let _ = self
                .docker
                .cmd()
                .args(["image", "rm", "-f", image])
                .output();
        }
    }
}
