//! What we ship, run: docker-compose.yml builds the Dockerfile and starts PostgreSQL and two
//! `pooltriage` instances (the `scale` profile), on one database and one dump volume
//! (tests/independent/compose.rs drives docker and compose).
//!
//! - `compose_runs_two_instances_that_share_dumps_and_survive_a_killed_one`: a bearer token made
//!   as README says (`compose run --rm pooltriage tokens create ...`); a forged leak dump
//!   uploaded to instance A is analysed and its report, read from instance B, names the driver
//!   the forge's truth file names; then a job is started, the instance running its analyzer
//!   (found from the host with `docker top`) is killed with `docker kill`, and the other instance
//!   takes the job over once the lease expires and finishes it (second attempt, report
//!   readable), while the killed container stays down.
//!
//! The image is the Dockerfile's runtime stage with this build's `pooltriage` binary
//! (`POOLTRIAGE_BINARY_FROM`): the release build of its builder stage takes many minutes on
//! 2 cores (scripts/docker-build-check.sh builds it). A test-only override file adds a short job
//! lease, the corpus ISFs, no symbol server (no network), an analyzer wrapper that waits 3 s
//! before running `pooltriage analyze` (so a job is still running when its instance is killed)
//! and a loopback port for instance B.
//!
//! Without a reachable docker daemon the test is skipped with the reason printed, unless `CI`
//! is set: there it fails (scripts/test.sh starts Debian's dockerd and makes the base images).

#[path = "independent/compose.rs"]
mod compose;
#[path = "independent/harness.rs"]
mod harness;
#[path = "independent/service.rs"]
mod service;

use compose::{Docker, Project};
use serde_json::Value;
use service::{triage_variant, wait_for, Token};
use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

/// The analyzer wrapper mounted into both instances (POOLTRIAGE_ANALYZER).
const SLOW_ANALYZER: &str = "#!/bin/sh\nsleep 3\nexec /usr/local/bin/pooltriage \"$@\"\n";

/// An instance's published loopback address and a small JSON client for it.
struct Instance {
    base: String,
}

impl Instance {
    fn new(port: u16) -> Instance {
        Instance {
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    /// (status, JSON body or Null); None when the connection fails (not up yet, or killed).
    fn call(
        &self,
        token: &Token,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Option<(u16, Value)> {
        let req = ureq::request(method, &format!("{}{path}", self.base))
            .timeout(Duration::from_secs(60))
            .set("Authorization", &token.0);
        let sent = match body {
            Some(b) => req.send_bytes(b),
            None => req.call(),
        };
        let resp = match sent {
            Ok(r) | Err(ureq::Error::Status(_, r)) => r,
            Err(_) => return None,
        };
        let status = resp.status();
        let text = resp.into_string().ok()?;
        Some((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    fn get(&self, token: &Token, path: &str) -> Value {
        match self.call(token, "GET", path, None) {
            Some((200, v)) => v,
            other => panic!("GET {}{path}: {other:?}", self.base),
        }
    }

    /// Waits until the service answers HTTP (any status): through docker's port proxy a
    /// connection is accepted before the service listens.
    fn wait_up(&self) {
        let anyone = Token("Bearer none".into());
        wait_for(
            &format!("{} answers", self.base),
            Duration::from_secs(90),
            || self.call(&anyone, "GET", "/api/v1/queue", None),
        );
    }

    fn wait_status(&self, token: &Token, id: &str, done: bool) -> Value {
        wait_for(
            &format!("dump {id} {}", if done { "finished" } else { "running" }),
            Duration::from_secs(120),
            || {
                let v = self.get(token, &format!("/api/v1/dumps/{id}"));
                let s = v["status"].as_str().unwrap_or_default();
                let hit = if done {
                    s == "done" || s == "failed"
                } else {
                    s == "running"
                };
                hit.then_some(v)
            },
        )
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// The test-only compose override (see the module comment).
fn write_override(dir: &Path, port_b: u16) -> std::path::PathBuf {
    let analyzer = dir.join("slow-analyzer.sh");
    std::fs::write(&analyzer, SLOW_ANALYZER).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&analyzer, std::fs::Permissions::from_mode(0o755)).unwrap();
    let isf = harness::corpus().join("isf");
    let service = |ports: &str| {
        format!(
            "    environment:\n\
             \x20     POOLTRIAGE_JOB_LEASE_SECS: \"2\"\n\
             \x20     POOLTRIAGE_ANALYZER: /test/slow-analyzer.sh\n\
             \x20     POOLTRIAGE_ISF_DIR: /isf\n\
             \x20     POOLTRIAGE_NO_SYMBOLS: \"true\"\n\
             \x20     POOLTRIAGE_UPLOAD_BURST: \"1000\"\n\
             \x20   volumes:\n\
             \x20     - {}:/test/slow-analyzer.sh:ro\n\
             \x20     - {}:/isf:ro\n{ports}",
            analyzer.display(),
            isf.display()
        )
    };
    let text = format!(
        "services:\n  pooltriage:\n{}  pooltriage-worker:\n{}",
        service(""),
        service(&format!(
            "    ports:\n      - \"127.0.0.1:{port_b}:8080\"\n"
        ))
    );
    let path = dir.join("compose.test.yml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn compose_runs_two_instances_that_share_dumps_and_survive_a_killed_one() {
    let docker = match Docker::connect() {
        Ok(d) => d,
        Err(why) if std::env::var_os("CI").is_none() => {
            eprintln!("SKIPPED: no docker daemon ({why}); scripts/test.sh starts one");
            return;
        }
        Err(why) => panic!("CI is set and the docker daemon cannot be reached: {why}"),
    };
    let work = tempfile::tempdir().unwrap();
    let name = format!("pooltriage-test-{}", std::process::id());
    let (binary, service_image) = (format!("{name}-binary:test"), format!("{name}:test"));
    let (port_a, port_b) = (free_port(), free_port());
    let override_file = write_override(work.path(), port_b);
    let port_a_var = format!("127.0.0.1:{port_a}");
    let project = Project::new(
        &docker,
        &name,
        &override_file,
        &[
            ("POOLTRIAGE_BINARY_FROM", binary.as_str()),
            ("POOLTRIAGE_IMAGE", service_image.as_str()),
            ("POOLTRIAGE_PORT", port_a_var.as_str()),
            ("POSTGRES_PASSWORD", "compose-test"),
        ],
        &[binary.as_str(), service_image.as_str()],
    );
    docker.binary_image(&binary);
    project.run(&["--profile", "scale", "up", "-d", "--build"]);
    let (a, b) = (Instance::new(port_a), Instance::new(port_b));
    a.wait_up();
    b.wait_up();

    // The token as README says; tokens live in PostgreSQL, so it is valid on both instances.
    let out = project.run(&[
        "run",
        "--rm",
        "-T",
        "pooltriage",
        "tokens",
        "create",
        "--tenant",
        "internal",
        "--role",
        "admin",
    ]);
    let token = Token(format!(
        "Bearer {}",
        out.lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .expect("a token")
            .trim()
    ));

    upload_to_a_report_from_b(&a, &b, &token, work.path());
    kill_the_instance_running_a_job(&docker, &project, [&a, &b], &token);
}

/// A forged leak: uploaded to A, analysed by either, its report read from B names the truth's
/// driver.
fn upload_to_a_report_from_b(a: &Instance, b: &Instance, token: &Token, work: &Path) {
    let (dump, driver) = harness::leak_dump(work);
    let body = std::fs::read(dump).unwrap();
    let (code, v) = a
        .call(token, "POST", "/api/v1/dumps?name=leak.dmp", Some(&body))
        .expect("upload to A");
    assert_eq!(code, 201, "{v}");
    let id = v["id"].as_str().expect("dump id").to_string();
    let status = b.wait_status(token, &id, true);
    assert_eq!(status["status"], "done", "{status}");
    let report = b.get(token, &format!("/api/v1/dumps/{id}/report"));
    let drivers = report["verdict"]["drivers"].to_string().to_lowercase();
    assert!(
        drivers.contains(&driver.to_lowercase()),
        "B's report names {driver}: {}",
        report["verdict"]
    );
}

/// Starts a job, kills the instance whose container runs its analyzer, and sees the other
/// instance finish it.
fn kill_the_instance_running_a_job(
    docker: &Docker,
    project: &Project,
    instances: [&Instance; 2],
    token: &Token,
) {
    let containers = [
        project.container("pooltriage"),
        project.container("pooltriage-worker"),
    ];
    let (code, v) = instances[1]
        .call(
            token,
            "POST",
            "/api/v1/dumps?name=kill.dmp",
            Some(&triage_variant("compose kill")),
        )
        .expect("upload to B");
    assert_eq!(code, 201, "{v}");
    let id = v["id"].as_str().expect("dump id").to_string();
    instances[1].wait_status(token, &id, false);
    let runs_analyzer = |c: &str| {
        docker
            .processes(c)
            .iter()
            .any(|p| p.contains("slow-analyzer"))
    };
    let victim = wait_for(
        "an instance runs the analyzer",
        Duration::from_secs(30),
        || (0..2).find(|&i| runs_analyzer(&containers[i])),
    );
    let survivor = 1 - victim;
    docker.run(&["kill", &containers[victim]]);
    wait_for(
        "the killed container stops",
        Duration::from_secs(10),
        || (!docker.running(&containers[victim])).then_some(()),
    );

    // The survivor's reaper returns the expired lease to the queue, one of its workers runs it.
    wait_for(
        "the other instance runs the analyzer",
        Duration::from_secs(60),
        || runs_analyzer(&containers[survivor]).then_some(()),
    );
    let status = instances[survivor].wait_status(token, &id, true);
    assert_eq!(status["status"], "done", "{status}");
    assert_eq!(
        status["attempts"], 2,
        "claimed before the kill and after: {status}"
    );
    let report = instances[survivor].get(token, &format!("/api/v1/dumps/{id}/report"));
    assert_eq!(report["dump"]["format"], "triage", "{report}");
    assert!(
        !docker.running(&containers[victim]),
        "the killed instance stayed down: the other one finished the job"
    );
}
