//! Shared plumbing of the end-to-end tests that hold pooltriage against independent readers
//! (`tests/kdmp_parser.rs`, `tests/volatility.rs`): where the tools are, forging a dump with the
//! `pooltriage` binary, reading its truth file, and a seeded RNG.
//!
//! Every tool that a test needs and cannot find is a test FAILURE naming `scripts/test.sh`, which
//! installs it: a check against an independent reader that silently skips is a check that
//! cannot fail.
#![allow(dead_code)]

#[path = "postgres.rs"]
pub mod postgres;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const SETUP_HINT: &str =
    "run scripts/test.sh (it installs the independent readers into .venv/, \
     lays out .cache/vol-symbols/ and builds the pooltriage binary)";

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn env_or(var: &str, default: PathBuf) -> PathBuf {
    std::env::var_os(var).map(PathBuf::from).unwrap_or(default)
}

fn must_exist(what: &str, var: &str, path: PathBuf) -> PathBuf {
    assert!(
        path.exists(),
        "{what} not found at {} (set {var} or {SETUP_HINT})",
        path.display()
    );
    path
}

/// The `pooltriage` binary of the same build profile as this test: `target/<profile>/pooltriage`,
/// the grandparent of `target/<profile>/deps/<test>-<hash>`.
pub fn pooltriage_bin() -> PathBuf {
    let default = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent()?.parent().map(|dir| dir.join("pooltriage")))
        .unwrap_or_else(|| PathBuf::from("target/debug/pooltriage"));
    must_exist(
        "the pooltriage binary",
        "POOLTRIAGE_BIN",
        env_or("POOLTRIAGE_BIN", default),
    )
}

/// The venv python that has kdmp-parser and Volatility 3 (pinned in tests/independent/requirements.txt).
pub fn python() -> PathBuf {
    must_exist(
        "the venv python",
        "POOLTRIAGE_PYTHON",
        env_or("POOLTRIAGE_PYTHON", repo_root().join(".venv/bin/python")),
    )
}

pub fn vol() -> PathBuf {
    must_exist(
        "Volatility 3 (vol)",
        "POOLTRIAGE_VOL",
        env_or("POOLTRIAGE_VOL", repo_root().join(".venv/bin/vol")),
    )
}

/// A Volatility symbols dir with `windows/ntkrnlmp.pdb/*.json.xz` (the corpus ISFs) and
/// `windows/ntkrnlpa.pdb/*.json.xz` (the XP ISF made by pdbconv).
pub fn vol_symbols() -> PathBuf {
    let dir = env_or(
        "POOLTRIAGE_VOL_SYMBOLS",
        repo_root().join(".cache/vol-symbols"),
    );
    for sub in ["windows/ntkrnlmp.pdb", "windows/ntkrnlpa.pdb"] {
        let has_isf = std::fs::read_dir(dir.join(sub))
            .map(|rd| {
                rd.flatten()
                    .any(|e| e.file_name().to_string_lossy().ends_with(".json.xz"))
            })
            .unwrap_or(false);
        assert!(
            has_isf,
            "no ISF in {} (set POOLTRIAGE_VOL_SYMBOLS or {SETUP_HINT})",
            dir.join(sub).display()
        );
    }
    dir
}

/// The real test data, `../shared/corpus` beside the repository (or POOLTRIAGE_CORPUS).
pub fn corpus() -> PathBuf {
    must_exist(
        "the corpus",
        "POOLTRIAGE_CORPUS",
        env_or("POOLTRIAGE_CORPUS", repo_root().join("../shared/corpus")),
    )
}

pub fn script(name: &str) -> PathBuf {
    must_exist(
        "helper script",
        "-",
        repo_root().join("tests/independent").join(name),
    )
}

/// Runs a command, panicking with its stderr when it fails; returns stdout.
/// The functions of a driver's PDB (`llvm-pdbutil-14 dump -symbols`: `S_GPROC32 ... \`Name\``,
/// then `addr = 0001:OFFSET, code size = N`, decimal) placed at `objdump -h`'s address of the
/// image's first section, which the PDB's section 1 is: (name, start, end).
pub fn pdb_functions(sys: &Path, pdb: &Path, objdump: &str) -> Vec<(String, u64, u64)> {
    let h = String::from_utf8(run(Command::new(objdump).arg("-h").arg(sys), "objdump -h")).unwrap();
    let text = h
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() > 3 && f[0] == "0" && f[1] == ".text").then(|| f[3].to_string())
        })
        .expect("objdump -h shows .text as section 0");
    let text = u64::from_str_radix(&text, 16).unwrap();
    let dump = String::from_utf8(run(
        Command::new("llvm-pdbutil-14")
            .args(["dump", "-symbols"])
            .arg(pdb),
        "llvm-pdbutil-14 dump -symbols",
    ))
    .unwrap();
    let mut out = Vec::new();
    let mut name = None;
    for line in dump.lines() {
        if line.contains("S_GPROC32") || line.contains("S_LPROC32") {
            name = line.split('`').nth(1).map(str::to_string);
        } else if let (Some(n), Some(rest)) = (&name, line.split("addr = 0001:").nth(1)) {
            let offset: u64 = rest.split(',').next().unwrap().trim().parse().unwrap();
            let size: u64 = rest
                .split("code size = ")
                .nth(1)
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            out.push((n.clone(), text + offset, text + offset + size));
            name = None;
        }
    }
    out
}

pub fn run(cmd: &mut Command, what: &str) -> Vec<u8> {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start {cmd:?}: {e} ({SETUP_HINT})"));
    assert!(
        out.status.success(),
        "{what} failed ({}): {cmd:?}\n--- stderr ---\n{}\n--- stdout (start) ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout[..out.stdout.len().min(4000)])
    );
    out.stdout
}

/// `pooltriage forge --list`, and the profile whose name carries `build` (e.g. "19041" ->
/// "win10-19041-x64"). Profile names follow the issue: each is named with its build number.
pub fn profile_for_build(build: u32) -> String {
    static LIST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let text = LIST.get_or_init(|| {
        let out = run(
            Command::new(pooltriage_bin()).args(["forge", "--list"]),
            "pooltriage forge --list",
        );
        String::from_utf8_lossy(&out).into_owned()
    });
    let needle = build.to_string();
    let mut found: Vec<String> = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'))
        .filter(|tok| {
            tok.chars().any(|c| c.is_ascii_alphabetic())
                && tok.split(['-', '_']).any(|part| part == needle)
        })
        .map(str::to_owned)
        .collect();
    found.sort();
    found.dedup();
    assert_eq!(
        found.len(),
        1,
        "expected exactly one forge profile named with build {build} in `pooltriage forge --list`:\n{text}"
    );
    found.remove(0)
}

pub struct Forged {
    pub dump: PathBuf,
    pub truth: Value,
}

/// Forges `profile`/`format` into `dir` with the `pooltriage` binary and reads FILE.truth.json.
pub fn forge(dir: &Path, profile: &str, format: &str, size: Option<u64>) -> Forged {
    let dump = dir.join(format!("{profile}-{format}.dmp"));
    let mut cmd = Command::new(pooltriage_bin());
    cmd.env("POOLTRIAGE_CORPUS", corpus());
    cmd.args(["forge", "--profile", profile, "--format", format, "--out"])
        .arg(&dump);
    if let Some(size) = size {
        cmd.args(["--size", &size.to_string()]);
    }
    run(&mut cmd, "pooltriage forge");
    let truth_path = PathBuf::from(format!("{}.truth.json", dump.display()));
    let text = std::fs::read_to_string(&truth_path)
        .unwrap_or_else(|e| panic!("forge wrote no truth file {}: {e}", truth_path.display()));
    let truth: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", truth_path.display()));
    assert_eq!(truth["schema"], 1, "truth schema");
    assert_eq!(truth["profile"], profile, "truth profile");
    assert_eq!(truth["format"], format, "truth format");
    Forged { dump, truth }
}

/// Forges pool scenario `scenario` on `profile` as a kernel-bitmap dump into `dir` (of a
/// `size`-byte machine when given). `None` when the forge refuses the scenario on XP, as it
/// must: quota-leak needs x64 pool headers (ProcessBilled), session-leak a session tag table
/// (`ExpSessionPoolTrackTable`, Vista+); any other refusal fails the test.
pub fn forge_scenario(
    dir: &Path,
    profile: &str,
    scenario: &str,
    size: Option<u64>,
) -> Option<Forged> {
    let dump = dir.join(format!("{profile}-{scenario}.dmp"));
    let mut cmd = Command::new(pooltriage_bin());
    cmd.env("POOLTRIAGE_CORPUS", corpus())
        .args(["forge", "--profile", profile, "--format", "kernel-bitmap"])
        .args(["--scenario", scenario, "--out"])
        .arg(&dump);
    if let Some(size) = size {
        cmd.args(["--size", &size.to_string()]);
    }
    let out = cmd.output().expect("pooltriage forge runs");
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            (scenario == "quota-leak" || scenario == "session-leak") && profile.starts_with("xp"),
            "forge {profile} {scenario}: {err}"
        );
        return None;
    }
    let truth_path = format!("{}.truth.json", dump.display());
    let text = std::fs::read(&truth_path).unwrap_or_else(|e| panic!("{truth_path}: {e}"));
    let truth: Value =
        serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{truth_path}: {e}"));
    assert_eq!(truth["scenario"], scenario, "truth scenario");
    Some(Forged { dump, truth })
}

/// A forged 19041 leak-tagged dump of a 256 MiB machine (a ~36 MB file) and the leaking
/// driver the truth names, for the service tests that need one real analysis.
#[allow(dead_code)]
pub fn leak_dump(dir: &Path) -> (PathBuf, String) {
    let (dump, driver, _) = leak_dump_with_tags(dir);
    (dump, driver)
}

/// [`leak_dump`] with the pool tags the truth gives the leaking driver.
#[allow(dead_code)]
pub fn leak_dump_with_tags(dir: &Path) -> (PathBuf, String, Vec<String>) {
    let forged = forge_scenario(
        dir,
        &profile_for_build(19041),
        "leak-tagged",
        Some(256 << 20),
    )
    .expect("leak-tagged forges on 19041");
    let driver = forged.truth["pool"]["drivers"][0]["module"]
        .as_str()
        .expect("the truth names the leaking driver")
        .to_string();
    let tags = forged.truth["pool"]["drivers"][0]["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str())
        .map(|t| t.trim().to_string())
        .collect();
    (forged.dump, driver, tags)
}

/// A "0x..." hex string (or a plain number) of the truth file as u64.
pub fn hx(v: &Value) -> u64 {
    match v {
        Value::String(s) => {
            let digits = s
                .strip_prefix("0x")
                .unwrap_or_else(|| panic!("not a 0x hex string: {s:?}"));
            u64::from_str_radix(digits, 16).unwrap_or_else(|e| panic!("bad hex {s:?}: {e}"))
        }
        Value::Number(n) => n.as_u64().unwrap_or_else(|| panic!("not a u64: {n}")),
        other => panic!("expected a hex string, got {other}"),
    }
}

pub fn field<'a>(v: &'a Value, key: &str) -> &'a Value {
    let f = &v[key];
    assert!(!f.is_null(), "truth lacks {key:?}: {v}");
    f
}

pub fn array<'a>(v: &'a Value, key: &str) -> &'a Vec<Value> {
    field(v, key)
        .as_array()
        .unwrap_or_else(|| panic!("truth {key:?} is not an array"))
}

/// SplitMix64: a fixed seed gives the same "random" addresses on every run and machine.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in 0..n (n > 0); the modulo bias is irrelevant here.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// Temporary upload files in a service data directory: the files inside the instances'
/// folders `tmp/<instance>/` (not their lock files `tmp/<instance>.lock`, see server/src/storage).
pub fn upload_temp_files(data_dir: &Path) -> Vec<PathBuf> {
    let list = |dir: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(dir)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default()
    };
    list(&data_dir.join("tmp"))
        .into_iter()
        .filter(|p| p.is_dir())
        .flat_map(|d| list(&d))
        .collect()
}

/// A `pooltriage serve` child process, SIGKILLed and reaped when dropped, so a test that fails
/// half-way leaves no service running. Derefs to the [`std::process::Child`].
pub struct ServeProcess(pub std::process::Child);

impl std::ops::Deref for ServeProcess {
    type Target = std::process::Child;
    fn deref(&self) -> &std::process::Child {
        &self.0
    }
}

impl std::ops::DerefMut for ServeProcess {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        &mut self.0
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `pooltriage serve` on a free loopback port with `dir` as its data directory and the
/// extra environment `env`; returns the process and the address it printed on its first line.
pub fn spawn_serve(dir: &Path, env: &[(&str, &str)]) -> (ServeProcess, std::net::SocketAddr) {
    use std::process::Stdio;
    let mut cmd = Command::new(pooltriage_bin());
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    with_test_database(&mut cmd, dir);
    // Tests use no network but loopback, and serve's default symbol path is Microsoft's
    // server: no symbol path unless the test names one (or the ISF folder, which still works).
    cmd.env_remove("_NT_SYMBOL_PATH");
    if !env
        .iter()
        .any(|(k, _)| *k == "POOLTRIAGE_SYMBOL_PATH" || *k == "POOLTRIAGE_NO_SYMBOLS")
    {
        cmd.env("POOLTRIAGE_NO_SYMBOLS", "true");
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = ServeProcess(cmd.spawn().expect("pooltriage serve starts"));
    let addr = listening_address(&mut child);
    (child, addr)
}

/// The address a `pooltriage serve` child with piped stdout prints on its first line
/// (`listening on http://ADDR`), once it is bound.
pub fn listening_address(child: &mut std::process::Child) -> std::net::SocketAddr {
    use std::io::{BufRead, BufReader};
    let stdout = child.stdout.take().expect("piped stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("serve prints its address");
    line.trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line from serve: {line:?}"))
        .parse()
        .expect("serve prints a socket address")
}

/// `pooltriage tokens create` in data directory `dir`; returns the new token.
pub fn create_token(dir: &Path, tenant: &str, role: &str) -> String {
    let mut cmd = Command::new(pooltriage_bin());
    cmd.args([
        "tokens",
        "create",
        "--tenant",
        tenant,
        "--role",
        role,
        "--data-dir",
    ])
    .arg(dir);
    with_test_database(&mut cmd, dir);
    let out = cmd.output().expect("pooltriage tokens runs");
    assert!(
        out.status.success(),
        "tokens create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8 token")
        .trim()
        .to_string()
}

/// The database backend the service tests run on: `POOLTRIAGE_TEST_DATABASE=postgres` runs them
/// on a real PostgreSQL server (tests/independent/postgres.rs), one database per data
/// directory; unset or `sqlite`, on the default SQLite file. scripts/test.sh runs the service
/// suites both ways.
pub fn test_database() -> &'static str {
    match std::env::var("POOLTRIAGE_TEST_DATABASE").as_deref() {
        Ok("postgres") => "postgres",
        Ok("sqlite") | Ok("") | Err(_) => "sqlite",
        Ok(other) => panic!("POOLTRIAGE_TEST_DATABASE={other}: expected sqlite or postgres"),
    }
}

/// Points `cmd` (`serve` or `tokens`) at the test database of data directory `dir`. An
/// explicit `POOLTRIAGE_DATABASE_URL` in a test's own env (set after this) still wins.
pub fn with_test_database(cmd: &mut Command, dir: &Path) {
    if test_database() == "postgres" {
        cmd.env("POOLTRIAGE_DATABASE_URL", postgres::database_for(dir));
    } else {
        cmd.env_remove("POOLTRIAGE_DATABASE_URL");
    }
}

/// GNU objdump for PE images (Debian `binutils-mingw-w64-x86-64`; it reads pe-i386 too).
pub const OBJDUMP: &str = "x86_64-w64-mingw32-objdump";

/// A module's image (`base..base+size`) read out of `dump` by kdmp-parser (x64) or by
/// Volatility 3's crash-dump and Intel PAE layers (x86: kdmp-parser reads 64-bit dumps only),
/// written to a file in `dir`; pages neither can read are zeros.
pub fn image_from_dump(dump: &Path, dir: &Path, base: u64, size: u64, x64: bool) -> PathBuf {
    let addrs = dir.join(format!("{base:x}.addrs"));
    let list: String = (0..size.div_ceil(0x1000))
        .map(|i| format!("{:#x}\n", base + i * 0x1000))
        .collect();
    std::fs::write(&addrs, list).unwrap();
    let reader = if x64 {
        "kdmp_read.py"
    } else {
        "vol_virt_read.py"
    };
    let out = run(
        Command::new(python())
            .arg(script(reader))
            .arg(dump)
            .arg(&addrs),
        "read a module's image",
    );
    let v: Value = serde_json::from_slice(&out).expect("the reader prints JSON");
    let mut image = Vec::new();
    for r in v["reads"].as_array().unwrap() {
        match r["page"].as_str() {
            Some(h) => image.extend(
                (0..h.len() / 2).map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).unwrap()),
            ),
            None => image.extend_from_slice(&[0u8; 0x1000]),
        }
    }
    let path = dir.join(format!("{base:x}.img"));
    std::fs::write(&path, image).unwrap();
    path
}
