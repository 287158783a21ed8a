//! A throw-away PostgreSQL server for the service tests: Debian's `postgresql` package (installed
//! by scripts/test.sh), one cluster per test process made by `initdb` under
//! `$TMPDIR/pooltriage-pg/<pid>` (world-traversable, so the `postgres` user reaches it without
//! loosening the permissions of the work tree), listening on a free loopback port with trust
//! authentication, C collation (byte order, as SQLite sorts text) and no fsync (test data). Each data directory of a
//! test gets its own database (`database_for`), so tests run in parallel on one server and a
//! test that restarts the service finds its data again.
//!
//! The server must not outlive the tests, even when the test process is killed: it runs under
//! `setpriv --pdeathsig KILL` from a thread that lives as long as the process (the death signal
//! follows the thread that spawned the child). `setpriv` also drops to the `postgres` user when
//! the tests run as root (PostgreSQL refuses to run as root).

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

struct Server {
    port: u16,
    /// The CA certificate (PEM) that signed the server's certificate.
    ca: PathBuf,
    /// The server's `bin` directory (psql, pg_isready of the same version).
    bin: PathBuf,
    /// Test data directory -> database URL.
    databases: Mutex<HashMap<PathBuf, String>>,
}

/// The newest installed server's `bin` directory.
fn server_bin() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    found.retain(|p| p.join("initdb").is_file() && p.join("postgres").is_file());
    found.sort();
    found.pop().unwrap_or_else(|| {
        panic!(
            "PostgreSQL server not installed (no initdb and postgres in /usr/lib/postgresql/*/bin): \
             install Debian's `postgresql` package, e.g. `bash scripts/test.sh --setup-only`"
        )
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// `setpriv` arguments that run the next program as the server user (when root) and kill it
/// when its parent thread dies.
fn setpriv(root: bool) -> Command {
    let mut c = Command::new("setpriv");
    if root {
        c.args(["--reuid=postgres", "--regid=postgres", "--init-groups"]);
    }
    c.args(["--pdeathsig", "KILL", "--"]);
    c
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Makes a CA and a server certificate for IP 127.0.0.1 signed by it in `dir` (openssl, P-256
/// keys); returns (CA certificate, server certificate, server key).
fn make_certs(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let openssl = |args: &[&str], what: &str| {
        run(Command::new("openssl").args(args).current_dir(dir), what);
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &["-keyout", "ca.key", "-out", "ca.pem", "-days", "2"],
            &["-subj", "/CN=pooltriage test CA"],
        ]
        .concat(),
        "openssl: test CA (install Debian's openssl: scripts/test.sh)",
    );
    openssl(
        &[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        ]
        .concat(),
        "openssl: server key",
    );
    std::fs::write(dir.join("server.ext"), "subjectAltName=IP:127.0.0.1\n").expect("server.ext");
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.pem",
        ],
        "openssl: server certificate",
    );
    (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    )
}

fn start() -> Server {
    let bin = server_bin();
    let root = is_root();
    // Clusters of dead test processes (killed runs) are removed here.
    let base = std::env::temp_dir().join("pooltriage-pg");
    std::fs::create_dir_all(&base).expect("postgres base dir");
    for e in std::fs::read_dir(&base).into_iter().flatten().flatten() {
        let pid = e.file_name().to_string_lossy().parse::<u32>().ok();
        if pid.is_some_and(|p| !Path::new(&format!("/proc/{p}")).exists()) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
    let data = base.join(std::process::id().to_string());
    let _ = std::fs::remove_dir_all(&data);
    std::fs::create_dir_all(&data).expect("cluster dir");
    if root {
        run(
            Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&data),
            "chown",
        );
        run(Command::new("chmod").arg("0755").arg(&base), "chmod");
    }
    run(
        setpriv(root)
            .arg(bin.join("initdb"))
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
                "-D",
            ])
            .arg(&data),
        "initdb",
    );
    // The certificates live in the cluster folder, owned by the server user (PostgreSQL
    // refuses a key file that others can read).
    let (ca, cert, key) = make_certs(&data);
    if root {
        run(
            Command::new("chown")
                .arg("postgres:postgres")
                .args([&cert, &key]),
            "chown certificates",
        );
    }
    run(
        Command::new("chmod").arg("0600").arg(&key),
        "chmod server.key",
    );
    let port = free_port();
    let (tx, rx) = std::sync::mpsc::channel();
    let postgres = bin.join("postgres");
    let cluster = data.clone();
    // The server's parent thread: parked for the life of the test process.
    std::thread::spawn(move || {
        let child = setpriv(root)
            .arg(&postgres)
            .arg("-D")
            .arg(&cluster)
            .args(["-p", &port.to_string(), "-h", "127.0.0.1", "-F"])
            .arg("-k")
            .arg(&cluster)
            .args(["-c", "max_connections=300", "-c", "fsync=off"])
            .args(["-c", "synchronous_commit=off", "-c", "full_page_writes=off"])
            .args(["-c", "ssl=on"])
            .arg("-c")
            .arg(format!("ssl_cert_file={}", cert.display()))
            .arg("-c")
            .arg(format!("ssl_key_file={}", key.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let _ = tx.send(child.map(|_| ()).map_err(|e| e.to_string()));
        loop {
            std::thread::park();
        }
    });
    rx.recv()
        .expect("server thread")
        .unwrap_or_else(|e| panic!("cannot start postgres: {e}"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while !Command::new(bin.join("pg_isready"))
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
    {
        assert!(
            Instant::now() < deadline,
            "PostgreSQL did not become ready on port {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Server {
        port,
        ca,
        bin,
        databases: Mutex::new(HashMap::new()),
    }
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(start)
}

/// The URL of the database that belongs to test data directory `dir` (created the first time).
pub fn database_for(dir: &Path) -> String {
    let server = server();
    let mut dbs = server.databases.lock().unwrap_or_else(|e| e.into_inner());
    let n = dbs.len();
    dbs.entry(dir.to_path_buf())
        .or_insert_with(|| create_database(server, &format!("t{n}")))
        .clone()
}

/// A new, empty database of its own (not tied to a data directory); returns its URL.
pub fn new_database(name: &str) -> String {
    create_database(server(), name)
}

/// The CA certificate (PEM) that signed the test server's certificate for 127.0.0.1.
pub fn tls_ca() -> PathBuf {
    server().ca.clone()
}

/// `postgres://postgres@127.0.0.1:<port>/postgres`: the server's maintenance database.
pub fn admin_url() -> String {
    format!("postgres://postgres@127.0.0.1:{}/postgres", server().port)
}

fn create_database(server: &Server, name: &str) -> String {
    psql(
        &format!("postgres://postgres@127.0.0.1:{}/postgres", server.port),
        &format!("CREATE DATABASE {name}"),
    );
    format!("postgres://postgres@127.0.0.1:{}/{name}", server.port)
}

/// Runs one SQL statement with psql and returns its unaligned, tuples-only output.
pub fn psql(url: &str, sql: &str) -> String {
    let out = Command::new(server().bin.join("psql"))
        .args([url, "-v", "ON_ERROR_STOP=1", "-At", "-c", sql])
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
