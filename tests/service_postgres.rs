//! `pooltriage serve` on PostgreSQL (README "Scale-out with PostgreSQL"): a real server from
//! Debian's `postgresql` package (tests/independent/postgres.rs, one throwaway cluster per test
//! process), checked from outside with `psql`, not through our own queries.
//!
//! - `two_instances_share_one_queue`: two service processes on one database and one data
//!   directory, started together on an empty database (both run the migrations: sqlx's
//!   advisory lock must make that safe), 12 dumps uploaded alternately to both (one of them
//!   sent to both at the same moment: one dump, one job). Every job is
//!   run exactly once: the stub analyzer logs each run with the instance that ran it, and
//!   the `jobs` table (read with psql) has one attempt per content. Every report is readable
//!   from either instance;
//! - `an_instance_starting_keeps_another_instances_upload_in_flight`: a second instance starting
//!   on the shared data directory does not remove the temporary file of an upload the first is
//!   receiving (per-instance `tmp/` folders, server/src/storage);
//! - `the_database_connection_can_be_encrypted_and_the_server_verified`: `sslmode=verify-full`
//!   against the test server's throwaway CA; `pg_stat_ssl` shows the connections encrypted; a
//!   wrong CA stops the service at start;
//! - `migrations_run_at_start_on_an_empty_database`: the applied versions and checksums equal
//!   the files in migrations/ (SHA-384 by coreutils, as sqlx records them);
//! - `a_bad_database_url_fails_clearly_without_the_password`: unreachable server, missing
//!   database, unsupported scheme: the service and `tokens` exit non-zero with a message that
//!   names the database but never the password;
//! - `docker_compose_and_dockerfile_use_flags_the_binary_accepts`: docker-compose.yml (parsed
//!   with PyYAML from the venv) and the Dockerfile's CMD name only flags and environment
//!   variables that `pooltriage serve --help` lists, and the defaults of its image variables are
//!   the official images and the Dockerfile's build arguments (tests/service_compose.rs runs
//!   both).
//!
//! A missing PostgreSQL server or psql is a test failure with the set-up hint, never a skip.
//! Build the binary first (`cargo build -p pooltriage`).

#[path = "independent/harness.rs"]
mod harness;
#[path = "independent/service.rs"]
mod service;

use harness::postgres::{self, psql};
use harness::{pooltriage_bin, repo_root};
use service::{triage_variant, Service, Token};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A stub analyzer (the service's documented `POOLTRIAGE_ANALYZER` override): appends
/// `<instance> <content sha256>` to `$RUNS_LOG` (the dump path's file name is the content's
/// SHA-256), works a little so that the two instances overlap, and prints an analysis report.
fn write_stub(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("stub-analyzer.sh");
    std::fs::write(
        &path,
        "#!/bin/sh\n\
         for last; do :; done\n\
         echo \"$POOLTRIAGE_TEST_INSTANCE $(basename \"$last\")\" >> \"$RUNS_LOG\"\n\
         sleep 0.4\n\
         printf '%s' '{\"schema_version\":1,\"kind\":\"analysis\",\
         \"dump\":{\"format\":\"triage\",\"arch\":\"x64\",\"build\":19041},\
         \"bugcheck\":{\"code\":\"0x7e\",\"name\":\"SYSTEM_THREAD_EXCEPTION_NOT_HANDLED\"},\
         \"verdict\":{\"kind\":\"driver-leak\",\"sentence\":\"leaky.sys is the likely leaker\",\
         \"pool\":\"paged\",\"drivers\":[\"leaky.sys\"],\"bytes\":4096},\
         \"drivers\":[{\"module\":\"leaky.sys\",\"paged_bytes\":4096,\"nonpaged_bytes\":0,\"bytes\":4096}]}'\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Starts `pooltriage serve` on `dir` and database `url` without waiting for it.
fn spawn(dir: &Path, url: &str, env: &[(&str, &str)]) -> Child {
    let mut cmd = Command::new(pooltriage_bin());
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .arg("--database-url")
        .arg(url)
        .env_remove("POOLTRIAGE_DATABASE_URL")
        .env("POOLTRIAGE_UPLOAD_BURST", "1000")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("pooltriage serve starts")
}

/// Reads the address line of a spawned service.
fn ready(mut child: Child, dir: &Path) -> Service {
    let addr = harness::listening_address(&mut child);
    Service {
        child: harness::ServeProcess(child),
        addr,
        dir: dir.to_path_buf(),
    }
}

/// `pooltriage tokens create` on database `url` (the `--database-url` flag); the bearer token.
fn token(dir: &Path, url: &str, tenant: &str, role: &str) -> Token {
    let out = Command::new(pooltriage_bin())
        .args([
            "tokens",
            "create",
            "--tenant",
            tenant,
            "--role",
            role,
            "--data-dir",
        ])
        .arg(dir)
        .args(["--database-url", url])
        .env_remove("POOLTRIAGE_DATABASE_URL")
        .output()
        .expect("pooltriage tokens runs");
    assert!(
        out.status.success(),
        "tokens create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Token(format!(
        "Bearer {}",
        String::from_utf8(out.stdout).unwrap().trim()
    ))
}

#[test]
fn two_instances_share_one_queue() {
    const DUMPS: usize = 12;
    let dir = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let url = postgres::new_database("scaleout");
    let stub = write_stub(work.path());
    let runs = work.path().join("runs.log");
    let common = [
        ("POOLTRIAGE_ANALYZER", stub.to_str().unwrap()),
        ("RUNS_LOG", runs.to_str().unwrap()),
        ("POOLTRIAGE_WORKERS", "2"),
    ];
    // Both started at once on the empty database: both apply the migrations.
    let a = spawn(
        dir.path(),
        &url,
        &[common.as_slice(), &[("POOLTRIAGE_TEST_INSTANCE", "a")]].concat(),
    );
    let b = spawn(
        dir.path(),
        &url,
        &[common.as_slice(), &[("POOLTRIAGE_TEST_INSTANCE", "b")]].concat(),
    );
    let (a, b) = (ready(a, dir.path()), ready(b, dir.path()));
    let applied = psql(&url, "SELECT COUNT(*) FROM _sqlx_migrations WHERE success");
    let files = std::fs::read_dir(repo_root().join("migrations"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "sql")
        })
        .count();
    assert_eq!(applied, files.to_string(), "each migration applied once");

    let support = token(dir.path(), &url, "internal", "support");
    let acme = token(dir.path(), &url, "acme", "customer");
    // Uploads alternate between the instances; the same content twice (the second instance
    // gets the first's dump back: one content, one job).
    let mut ids = Vec::new();
    for i in 0..DUMPS - 1 {
        let svc = if i % 2 == 0 { &a } else { &b };
        ids.push(svc.upload(&acme, &triage_variant(&format!("scale-{i}")), ""));
    }
    // The last content is sent to both instances at once: the UNIQUE (tenant, sha256) and
    // UNIQUE (sha256) constraints make it one dump and one job, whoever commits first.
    let race = triage_variant("scale-race");
    let (ra, rb) = std::thread::scope(|s| {
        let ta = s.spawn(|| a.upload(&acme, &race, ""));
        let tb = s.spawn(|| b.upload(&acme, &race, ""));
        (ta.join().unwrap(), tb.join().unwrap())
    });
    assert_eq!(
        ra, rb,
        "one content sent to both instances at once: one dump"
    );
    ids.push(ra);
    let again = b.upload(&acme, &triage_variant("scale-0"), "");
    assert_eq!(again, ids[0], "same tenant, same content: the same dump");
    assert_eq!(psql(&url, "SELECT COUNT(*) FROM dumps"), DUMPS.to_string());
    for (i, id) in ids.iter().enumerate() {
        let svc = if i % 2 == 0 { &b } else { &a };
        let v = svc.wait_finished(&acme, id, Duration::from_secs(120));
        assert_eq!(v["status"], "done", "{v}");
    }

    // Exactly once, from the database (psql, not our queries).
    let jobs = psql(
        &url,
        "SELECT COUNT(*), SUM(attempts), COUNT(*) FILTER (WHERE state = 'done'), \
                COUNT(DISTINCT sha256), COUNT(*) FILTER (WHERE lease_owner IS NOT NULL) FROM jobs",
    );
    assert_eq!(
        jobs,
        format!("{DUMPS}|{DUMPS}|{DUMPS}|{DUMPS}|0"),
        "jobs: count|attempts|done|contents|leased"
    );
    let reports = psql(&url, "SELECT COUNT(*) FROM reports");
    assert_eq!(reports, DUMPS.to_string());
    // ... and from the analyzer's own log: one run per content, both instances worked.
    let log = std::fs::read_to_string(&runs).unwrap();
    let lines: Vec<(&str, &str)> = log
        .lines()
        .map(|l| l.split_once(' ').expect("instance sha"))
        .collect();
    let contents: BTreeSet<&str> = lines.iter().map(|(_, s)| *s).collect();
    assert_eq!(lines.len(), DUMPS, "runs:\n{log}");
    assert_eq!(contents.len(), DUMPS, "a content analysed twice:\n{log}");
    let mut per_instance: BTreeMap<&str, usize> = BTreeMap::new();
    for (inst, _) in &lines {
        *per_instance.entry(inst).or_default() += 1;
    }
    println!("jobs per instance: {per_instance:?}");
    assert_eq!(
        per_instance.keys().copied().collect::<Vec<_>>(),
        ["a", "b"],
        "{log}"
    );

    // Reports and the shared dump files are readable from either instance, and the index
    // (filled by whichever instance finished the job) answers on both.
    for id in &ids {
        let mut seen = Vec::new();
        for svc in [&a, &b] {
            let r = svc.get(&acme, &format!("/api/v1/dumps/{id}/report"));
            assert_eq!(r["verdict"]["drivers"][0], "leaky.sys", "{r}");
            seen.push(r);
        }
        assert_eq!(seen[0], seen[1]);
        let st = a.get(&support, &format!("/api/v1/dumps/{id}"));
        assert!(
            dir.path().join("dumps").read_dir().unwrap().any(|e| e
                .unwrap()
                .file_name()
                .to_string_lossy()
                == st["sha256"].as_str().unwrap()),
            "dump file of {id} in the shared data directory"
        );
    }
    for svc in [&a, &b] {
        let top = svc.get(&support, "/api/v1/drivers");
        let leaky = &top["items"][0];
        assert_eq!(leaky["module"], "leaky.sys", "{top}");
        assert_eq!(leaky["dumps"], DUMPS, "{top}");
        assert_eq!(leaky["total_bytes"], 4096 * DUMPS, "{top}");
    }
}

/// An instance that starts (or restarts) on the shared data directory clears only what dead
/// instances left in `tmp/`: an upload another instance is receiving at that moment completes.
#[test]
fn an_instance_starting_keeps_another_instances_upload_in_flight() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let url = postgres::new_database("restart");
    let stub = write_stub(work.path());
    let runs = work.path().join("runs.log");
    let env = [
        ("POOLTRIAGE_ANALYZER", stub.to_str().unwrap()),
        ("RUNS_LOG", runs.to_str().unwrap()),
        ("POOLTRIAGE_TEST_INSTANCE", "a"),
    ];
    let a = ready(spawn(dir.path(), &url, &env), dir.path());
    let acme = token(dir.path(), &url, "acme", "customer");
    let dump = triage_variant("in flight while b starts");

    let mut conn = std::net::TcpStream::connect(a.addr).unwrap();
    write!(
        conn,
        "POST /api/v1/dumps HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        acme.0,
        dump.len()
    )
    .unwrap();
    let half = dump.len() / 2;
    conn.write_all(&dump[..half]).unwrap();
    conn.flush().unwrap();
    let start = std::time::Instant::now();
    while harness::upload_temp_files(dir.path()).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the upload never reached tmp/"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // b starts on the same data directory while a is receiving.
    let b = ready(
        spawn(dir.path(), &url, &[("POOLTRIAGE_TEST_INSTANCE", "b")]),
        dir.path(),
    );
    assert_eq!(
        harness::upload_temp_files(dir.path()).len(),
        1,
        "b's start removed a's upload in progress"
    );

    conn.write_all(&dump[half..]).unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    let sha = answer
        .split("\"sha256\":\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_else(|| panic!("no sha256 in {answer}"));
    assert!(dir.path().join("dumps").join(sha).is_file(), "{answer}");
    drop(b);
}

/// 40 jobs already queued when two instances of 8 workers each start at the same moment: 16
/// claimers race for the same oldest rows. Each job must still be run once (the claim's
/// `FOR UPDATE SKIP LOCKED` and state check, `server/src/db/jobs.rs`).
#[test]
fn a_full_queue_is_drained_once_by_sixteen_workers() {
    const JOBS: usize = 40;
    let dir = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let url = postgres::new_database("drain");
    let stub = write_stub(work.path());
    let runs = work.path().join("runs.log");
    // `tokens list` applies the migrations; the jobs and their (stand-in) dump files are then
    // made from outside: the stub analyzer reads only the file's name.
    let (ok, err) = run_to_end(&["tokens", "list", "--database-url", &url], dir.path());
    assert!(ok, "{err}");
    let dumps = dir.path().join("dumps");
    std::fs::create_dir_all(&dumps).unwrap();
    let mut values = Vec::new();
    for i in 0..JOBS {
        let sha = format!("{i:064x}");
        std::fs::write(dumps.join(&sha), b"stand-in").unwrap();
        values.push(format!("('job{i}', '{sha}', 'queued', 'queued', {i}, {i})"));
    }
    psql(
        &url,
        &format!(
            "INSERT INTO jobs (id, sha256, state, stage, created_at, updated_at) VALUES {}",
            values.join(", ")
        ),
    );
    let common = [
        ("POOLTRIAGE_ANALYZER", stub.to_str().unwrap()),
        ("RUNS_LOG", runs.to_str().unwrap()),
        ("POOLTRIAGE_WORKERS", "8"),
    ];
    let a = spawn(
        dir.path(),
        &url,
        &[common.as_slice(), &[("POOLTRIAGE_TEST_INSTANCE", "a")]].concat(),
    );
    let b = spawn(
        dir.path(),
        &url,
        &[common.as_slice(), &[("POOLTRIAGE_TEST_INSTANCE", "b")]].concat(),
    );
    let _services = (ready(a, dir.path()), ready(b, dir.path()));
    service::wait_for("every job done", Duration::from_secs(120), || {
        let left = psql(&url, "SELECT COUNT(*) FROM jobs WHERE state <> 'done'");
        (left == "0").then_some(())
    });
    assert_eq!(
        psql(
            &url,
            "SELECT COUNT(*), SUM(attempts), MAX(attempts) FROM jobs"
        ),
        format!("{JOBS}|{JOBS}|1")
    );
    let log = std::fs::read_to_string(&runs).unwrap();
    let mut per_content: BTreeMap<&str, usize> = BTreeMap::new();
    let mut per_instance: BTreeMap<&str, usize> = BTreeMap::new();
    for l in log.lines() {
        let (inst, sha) = l.split_once(' ').expect("instance sha");
        *per_content.entry(sha).or_default() += 1;
        *per_instance.entry(inst).or_default() += 1;
    }
    println!("drain: jobs per instance: {per_instance:?}");
    assert_eq!(per_content.len(), JOBS, "{log}");
    assert!(
        per_content.values().all(|n| *n == 1),
        "a job ran twice:\n{log}"
    );
}

#[test]
fn migrations_run_at_start_on_an_empty_database() {
    let dir = tempfile::tempdir().unwrap();
    let url = postgres::new_database("fresh");
    assert_eq!(
        psql(
            &url,
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ),
        "0"
    );
    let svc = ready(spawn(dir.path(), &url, &[]), dir.path());
    let tables = psql(
        &url,
        "SELECT string_agg(table_name, ',' ORDER BY table_name) FROM information_schema.tables \
         WHERE table_schema = 'public'",
    );
    assert_eq!(
        tables,
        "_sqlx_migrations,dump_files_deleted,dumps,jobs,problem_comments,problem_deliveries,\
         problem_events,problem_workflow,report_drivers,report_modules,report_summaries,reports,sessions,\
         symbol_files,system_logs,tokens,uploads,webhook_deliveries"
    );
    // Applied = the files, with sqlx's checksum (SHA-384 of the file) computed by coreutils.
    let applied = psql(
        &url,
        "SELECT version || ' ' || encode(checksum, 'hex') FROM _sqlx_migrations \
         WHERE success ORDER BY version",
    );
    let mut files: Vec<_> = std::fs::read_dir(repo_root().join("migrations"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    files.sort();
    let expected: Vec<String> = files
        .iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let version: i64 = name.split('_').next().unwrap().parse().unwrap();
            let out = Command::new("sha384sum")
                .arg(p)
                .output()
                .expect("sha384sum");
            let sum = String::from_utf8(out.stdout).unwrap();
            format!("{version} {}", sum.split_whitespace().next().unwrap())
        })
        .collect();
    assert_eq!(applied.lines().collect::<Vec<_>>(), expected);
    // The service works on it: a token made by `tokens`, an upload queued.
    let acme = token(dir.path(), &url, "acme", "customer");
    svc.upload(&acme, &triage_variant("fresh"), "");
    assert_eq!(psql(&url, "SELECT state FROM jobs"), "queued");
    // Tokens are stored as SHA-256 only (checked by PostgreSQL's own sha256()).
    let secret = acme.0.strip_prefix("Bearer ").unwrap();
    assert_eq!(
        psql(
            &url,
            &format!(
                "SELECT COUNT(*) FROM tokens WHERE hash = encode(sha256('{secret}'::bytea), 'hex')"
            )
        ),
        "1"
    );
    // A second start finds nothing to apply.
    drop(svc);
    let _svc = ready(spawn(dir.path(), &url, &[]), dir.path());
    assert_eq!(
        psql(&url, "SELECT COUNT(*) FROM _sqlx_migrations"),
        files.len().to_string()
    );
}

/// Runs `pooltriage ARGS` to its end (within 60 s) and returns (success, stderr).
fn run_to_end(args: &[&str], dir: &Path) -> (bool, String) {
    let mut child = Command::new(pooltriage_bin())
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env_remove("POOLTRIAGE_DATABASE_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            return (status.success(), err);
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("pooltriage {args:?} still running after 60 s with a bad database URL");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `sslmode=verify-full` with the CA that signed the server's certificate: the service and
/// `tokens` work, and PostgreSQL's own `pg_stat_ssl` shows every connection of the service
/// encrypted. With a CA that did not sign it, the service refuses to start and says why.
#[test]
fn the_database_connection_can_be_encrypted_and_the_server_verified() {
    let dir = tempfile::tempdir().unwrap();
    let url = postgres::new_database("tls");
    let ca = postgres::tls_ca();
    let tls_url = format!("{url}?sslmode=verify-full&sslrootcert={}", ca.display());
    let svc = ready(spawn(dir.path(), &tls_url, &[]), dir.path());
    let admin = token(dir.path(), &tls_url, "acme", "admin");
    let (status, list) = svc.call(&admin, "GET", "/api/v1/dumps", None);
    assert_eq!(status, 200, "{list}");
    let ssl = psql(
        &postgres::admin_url(),
        "SELECT s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
         WHERE a.datname = 'tls' AND a.pid <> pg_backend_pid()",
    );
    let flags: Vec<&str> = ssl
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    assert!(
        !flags.is_empty(),
        "no connection of the service to its database"
    );
    assert!(
        flags.iter().all(|f| *f == "t"),
        "unencrypted connections: {flags:?}"
    );
    drop(svc);

    // A CA that did not sign the server's certificate.
    let other = tempfile::tempdir().unwrap();
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args([
            "-nodes",
            "-keyout",
            "k.pem",
            "-out",
            "ca.pem",
            "-days",
            "1",
            "-subj",
            "/CN=other",
        ])
        .current_dir(other.path())
        .output()
        .expect("openssl runs");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let wrong = format!(
        "{url}?sslmode=verify-full&sslrootcert={}",
        other.path().join("ca.pem").display()
    );
    let (ok, err) = run_to_end(
        &["serve", "--listen", "127.0.0.1:0", "--database-url", &wrong],
        dir.path(),
    );
    assert!(
        !ok,
        "serve started with a database certificate its CA did not sign"
    );
    assert!(err.contains("cannot connect to database"), "{err}");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
}

#[test]
fn a_bad_database_url_fails_clearly_without_the_password() {
    let dir = tempfile::tempdir().unwrap();
    // A loopback port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let admin = postgres::admin_url();
    let missing_db = admin
        .replace("postgres@", "postgres:Pw-missing-db@")
        .replace("/postgres", "/no_such_db");
    let cases = [
        (
            format!("postgres://pooltriage:Pw-unreachable@127.0.0.1:{closed}/triage"),
            format!("postgres://pooltriage:***@127.0.0.1:{closed}/triage"),
            "Pw-unreachable",
        ),
        (
            missing_db.clone(),
            missing_db.replace("Pw-missing-db", "***"),
            "Pw-missing-db",
        ),
        (
            "mysql://root:Pw-mysql@127.0.0.1/triage".to_string(),
            "only postgres://".to_string(),
            "Pw-mysql",
        ),
    ];
    for (url, shown, password) in &cases {
        for args in [
            vec!["serve", "--listen", "127.0.0.1:0", "--database-url", url],
            vec!["tokens", "list", "--database-url", url],
        ] {
            let (ok, err) = run_to_end(&args, dir.path());
            assert!(!ok, "{args:?} succeeded");
            assert!(err.contains(shown.as_str()), "{args:?}: {err}");
            assert!(
                !err.contains(password),
                "{args:?} shows the password: {err}"
            );
        }
    }
    // The missing database is named as such by the server's error.
    let (_, err) = run_to_end(
        &["tokens", "list", "--database-url", &missing_db],
        dir.path(),
    );
    assert!(
        err.contains("no_such_db") && err.contains("does not exist"),
        "{err}"
    );
    // No SQLite file was made as a fallback.
    assert!(!dir.path().join("pooltriage.db").exists());
}

/// The long flags and `[env: ...]` names of `pooltriage serve --help`.
fn serve_help() -> (BTreeSet<String>, BTreeSet<String>) {
    let out = Command::new(pooltriage_bin())
        .args(["serve", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let mut flags = BTreeSet::new();
    let mut envs = BTreeSet::new();
    for word in
        text.split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == ']' || c == '=')
    {
        if let Some(f) = word.strip_prefix("--") {
            flags.insert(f.to_string());
        }
    }
    for part in text.split("[env: ").skip(1) {
        let name: String = part
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        envs.insert(name);
    }
    (flags, envs)
}

/// The default of a compose value `${VAR:-default}` (the value itself when it is no variable).
fn default_of(value: &str) -> &str {
    value
        .strip_prefix("${")
        .and_then(|v| v.strip_suffix('}'))
        .and_then(|v| v.split_once(":-"))
        .map_or(value, |(_, default)| default)
}

#[test]
fn docker_compose_and_dockerfile_use_flags_the_binary_accepts() {
    let (flags, envs) = serve_help();
    assert!(flags.contains("database-url") && envs.contains("POOLTRIAGE_DATABASE_URL"));
    // docker-compose.yml through PyYAML (an independent YAML parser), as JSON.
    let out = Command::new(harness::python())
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
        ])
        .arg(repo_root().join("docker-compose.yml"))
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "PyYAML on docker-compose.yml ({}): {}",
        harness::SETUP_HINT,
        String::from_utf8_lossy(&out.stderr)
    );
    let compose: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let services = compose["services"].as_object().expect("services");
    let app = &services["pooltriage"];
    let pg = &services["postgres"];
    assert_eq!(app["build"]["context"].as_str(), Some("."));
    // Images are variables whose defaults are the official images; the build arguments'
    // defaults are the Dockerfile's own.
    assert_eq!(
        default_of(pg["image"].as_str().unwrap()),
        "postgres:16-bookworm",
        "{pg}"
    );
    let dockerfile = std::fs::read_to_string(repo_root().join("Dockerfile")).unwrap();
    let build_args = app["build"]["args"].as_object().expect("build args");
    for arg in ["RUST_IMAGE", "RUNTIME_IMAGE", "BINARY_FROM"] {
        let compose_default = default_of(build_args[arg].as_str().unwrap());
        assert!(
            dockerfile
                .lines()
                .any(|l| l == format!("ARG {arg}={compose_default}")),
            "compose's default of {arg} ({compose_default}) is not the Dockerfile's"
        );
    }
    assert!(
        pg["healthcheck"]["test"].to_string().contains("pg_isready"),
        "{pg}"
    );
    assert_eq!(
        app["depends_on"]["postgres"]["condition"], "service_healthy",
        "{app}"
    );
    // Every POOLTRIAGE_* variable the app gets is one `serve` reads.
    let env: Vec<String> = match &app["environment"] {
        serde_json::Value::Object(m) => m.keys().cloned().collect(),
        serde_json::Value::Array(a) => a
            .iter()
            .map(|e| e.as_str().unwrap().split('=').next().unwrap().to_string())
            .collect(),
        other => panic!("environment: {other}"),
    };
    assert!(
        env.iter().any(|e| e == "POOLTRIAGE_DATABASE_URL"),
        "{env:?}"
    );
    for e in env.iter().filter(|e| e.starts_with("POOLTRIAGE_")) {
        assert!(
            envs.contains(e),
            "compose sets {e}, which `serve --help` does not list"
        );
    }
    let url = app["environment"]["POOLTRIAGE_DATABASE_URL"]
        .as_str()
        .unwrap_or_default();
    assert!(
        url.starts_with("postgres://") && url.contains("@postgres:5432/"),
        "{url}"
    );
    // The command (compose's, else the Dockerfile's CMD): `serve` and known flags only.
    let cmd_line = dockerfile
        .lines()
        .rev()
        .find(|l| l.starts_with("CMD "))
        .expect("Dockerfile CMD");
    let cmd: Vec<String> = serde_json::from_str(cmd_line.trim_start_matches("CMD ").trim())
        .expect("CMD in exec (JSON array) form");
    let entry = dockerfile
        .lines()
        .rev()
        .find(|l| l.starts_with("ENTRYPOINT "))
        .expect("Dockerfile ENTRYPOINT");
    let entry: Vec<String> =
        serde_json::from_str(entry.trim_start_matches("ENTRYPOINT ").trim()).unwrap();
    assert_eq!(entry, ["/usr/local/bin/pooltriage"]);
    let mut commands = vec![cmd];
    if let Some(c) = app["command"].as_array() {
        commands.push(c.iter().map(|s| s.as_str().unwrap().to_string()).collect());
    }
    for c in commands {
        assert_eq!(c.first().map(String::as_str), Some("serve"), "{c:?}");
        for a in c.iter().filter_map(|a| a.strip_prefix("--")) {
            let name = a.split('=').next().unwrap();
            assert!(flags.contains(name), "--{name} is not a `serve` flag");
        }
        assert!(c.iter().any(|a| a == "0.0.0.0:8080"), "{c:?}");
        assert!(c.iter().any(|a| a == "/data"), "{c:?}");
    }
    // The data volume is mounted where the command puts the data directory.
    assert!(
        app["volumes"].to_string().contains(":/data"),
        "{}",
        app["volumes"]
    );
}
