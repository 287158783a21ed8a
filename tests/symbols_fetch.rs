//! `pooltriage symbols fetch` end to end: the built binary against the corpus symbol store
//! served over loopback by Python's http.server, by key and for the crashing module of the real
//! triage dump; the cache reused with the server gone (default symbol path, no network: the
//! cache answers first); `_NT_SYMBOL_PATH`; exit codes for misses and hostile names.
//! Expected bytes and keys come from the corpus (README: amdppm.sys crashed in triage_x64.dmp).

#[path = "independent/harness.rs"]
mod harness;

use harness::{corpus, pooltriage_bin, python, SETUP_HINT};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

const PDB_GUID: &str = "1C19FDDB-27BB-3399-D9B4-5973EFEAFCF3";

struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(dir: &Path) -> Server {
        let mut child = Command::new(python())
            .args([
                "-u",
                "-m",
                "http.server",
                "0",
                "--bind",
                "127.0.0.1",
                "--directory",
            ])
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start python http.server: {e} ({SETUP_HINT})"));
        let mut reader = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let port: u16 = line
            .split_whitespace()
            .skip_while(|w| *w != "port")
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected http.server banner {line:?}"));
        std::thread::spawn(move || {
            let _ = reader.read_to_end(&mut Vec::new());
        });
        Server {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn fetch(args: &[&str], env_path: Option<&str>) -> Output {
    let mut cmd = Command::new(pooltriage_bin());
    cmd.args(["symbols", "fetch"])
        .args(args)
        .env_remove("_NT_SYMBOL_PATH");
    if let Some(p) = env_path {
        cmd.env("_NT_SYMBOL_PATH", p);
    }
    cmd.output().expect("pooltriage runs")
}

fn json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "exit {:?}: {}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

fn corpus_file(rel: &str) -> Vec<u8> {
    std::fs::read(corpus().join("symstore").join(rel)).unwrap()
}

#[test]
fn by_key_and_by_dump_module_over_loopback_http_then_offline() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let cache = data.join("symbols");
    let server = Server::start(&corpus().join("symstore"));
    let sympath = format!("srv*{}*{}", cache.display(), server.url);

    let v = json(&fetch(
        &[
            "--pdb",
            "amdppm.pdb",
            PDB_GUID,
            "1",
            "--symbol-path",
            &sympath,
            "--json",
        ],
        None,
    ));
    let r = &v["results"][0];
    assert_eq!(r["status"], "found");
    assert_eq!(r["kind"], "pdb");
    assert_eq!(r["key"], "1C19FDDB27BB3399D9B45973EFEAFCF31");
    assert_eq!(r["source"], server.url.as_str());
    let path = r["path"].as_str().unwrap();
    assert!(Path::new(path).starts_with(&cache), "{path}");
    assert_eq!(
        std::fs::read(path).unwrap(),
        corpus_file("amdppm.pdb/1C19FDDB27BB3399D9B45973EFEAFCF31/amdppm.pdb")
    );

    // The crashing driver of the real triage dump: the dump holds no image of it, so it is
    // fetched by the timestamp and size of the triage driver list.
    let dump = corpus().join("dumps/triage_x64.dmp");
    let v = json(&fetch(
        &[
            "--dump",
            dump.to_str().unwrap(),
            "--module",
            "AMDPPM.SYS",
            "--symbol-path",
            &sympath,
            "--json",
        ],
        None,
    ));
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 1, "{v}");
    let r = &results[0];
    assert_eq!(r["module"], "amdppm.sys");
    assert_eq!(
        (r["kind"].as_str(), r["status"].as_str()),
        (Some("pe"), Some("found")),
        "{r}"
    );
    assert!(
        r["key"]
            .as_str()
            .unwrap()
            .eq_ignore_ascii_case("c9c030003b000"),
        "{r}"
    );
    assert_eq!(
        std::fs::read(r["path"].as_str().unwrap()).unwrap(),
        corpus_file("amdppm.sys/c9c030003b000/amdppm.sys")
    );

    // Server gone, default symbol path (srv*DATA/symbols*https://msdl...): the cache answers
    // before any network access.
    drop(server);
    let out = fetch(
        &[
            "--pe",
            "amdppm.sys",
            "0xC9C03000",
            "0x3B000",
            "--data-dir",
            data.to_str().unwrap(),
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("found") && text.contains(&cache.display().to_string()),
        "{text}"
    );

    // _NT_SYMBOL_PATH is used when there is no flag.
    let v = json(&fetch(
        &["--pdb", "amdppm.pdb", PDB_GUID, "0x1", "--json"],
        Some(&format!("cache*{}", cache.display())),
    ));
    assert_eq!(
        v["results"][0]["source"],
        cache.display().to_string().as_str()
    );
    assert_eq!(
        v["symbol_path"],
        format!("cache*{}", cache.display()).as_str()
    );
}

#[test]
fn misses_hostile_names_and_bad_arguments() {
    let work = tempfile::tempdir().unwrap();
    let local = corpus().join("symstore");
    let sp = local.to_str().unwrap();
    // A key the store does not have: exit 1, one line saying so.
    let out = fetch(
        &[
            "--pe",
            "amdppm.sys",
            "0xC9C03000",
            "0x3C000",
            "--symbol-path",
            sp,
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("not found"));
    // Hostile names and malformed numbers: exit 2 with one line, nothing written anywhere.
    for args in [
        vec!["--pdb", "../../etc/passwd", PDB_GUID, "1"],
        vec!["--pdb", "C:\\x.pdb", PDB_GUID, "1"],
        vec!["--pdb", "a.pdb", "not-a-guid", "1"],
        vec!["--pe", "a.sys", "12zz", "0x1000"],
    ] {
        let mut a = args.clone();
        a.extend([
            "--data-dir",
            work.path().to_str().unwrap(),
            "--symbol-path",
            sp,
        ]);
        let out = fetch(&a, None);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr).lines().count(),
            1,
            "{args:?}"
        );
    }
    assert_eq!(std::fs::read_dir(work.path()).unwrap().count(), 0);
    // A dump without such a module, and a file that is not a dump.
    let dump = corpus().join("dumps/triage_x64.dmp");
    let out = fetch(
        &[
            "--dump",
            dump.to_str().unwrap(),
            "--module",
            "nosuch.sys",
            "--symbol-path",
            sp,
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    let out = fetch(
        &[
            "--dump",
            local
                .join("amdppm.sys/c9c030003b000/amdppm.sys")
                .to_str()
                .unwrap(),
            "--symbol-path",
            sp,
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn several_processes_share_one_cache() {
    // Four processes fetch the same files into one cache at once: each download goes through
    // a temp file renamed into place, so every process succeeds, the files are whole and no
    // temp file is left behind.
    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("cache");
    let server = Server::start(&corpus().join("symstore"));
    let sympath = format!("srv*{}*{}", cache.display(), server.url);
    let children: Vec<Child> = (0..4)
        .map(|_| {
            Command::new(pooltriage_bin())
                .args([
                    "symbols",
                    "fetch",
                    "--pdb",
                    "amdppm.pdb",
                    PDB_GUID,
                    "1",
                    "--symbol-path",
                    &sympath,
                ])
                .env_remove("_NT_SYMBOL_PATH")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("pooltriage runs")
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let dir = cache.join("amdppm.pdb/1C19FDDB27BB3399D9B45973EFEAFCF31");
    assert_eq!(
        std::fs::read(dir.join("amdppm.pdb")).unwrap(),
        corpus_file("amdppm.pdb/1C19FDDB27BB3399D9B45973EFEAFCF31/amdppm.pdb")
    );
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["amdppm.pdb".to_string()]);
}
