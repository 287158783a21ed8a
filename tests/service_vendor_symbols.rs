//! Vendor symbols in the service, end to end over loopback (docs/symbols.md, "Vendor
//! symbols"; docs/api.md, "Vendor symbols"):
//! - two customers upload the corpus triage dump (a crash in amdppm.sys); the service's public
//!   symbol path holds amdppm.sys's image only (as a server that has a vendor's image but not
//!   its private PDB), so neither report names the crash. One customer uploads the corpus
//!   store's amdppm.pdb: the service keys it by its content (the corpus store's directory
//!   name, written by Microsoft's tools, is the expected key), answers which dump it analyses
//!   again, and that customer's report then names the crash `amdppm!WriteIoMemRawEx+0x70`
//!   (expected from `llvm-pdbutil dump --publics --section-headers`: the nearest public
//!   function at or before the crash's RVA) and says the PDB carries no line information
//!   (`llvm-pdbutil dump -l` lists no line of it). The other customer's report of the same
//!   dump stays unnamed, and that customer sees none of the first one's files;
//! - a zip of the corpus symstore tree: the PDB is a duplicate, the image is added;
//! - hostile PDBs (truncated, a huge stream count, a stream directory that loops) and a file
//!   that is no symbol file are refused with a reason; the service goes on answering;
//! - the symbols page lists a tenant's files and not the other's; deleting the PDB analyses the
//!   dump again, unnamed.
//!
//! Build the binary first (`cargo build -p pooltriage`); needs llvm-pdbutil-14 (scripts/test.sh).

#[path = "independent/harness.rs"]
mod harness;
#[path = "independent/service.rs"]
mod service;

use harness::{corpus, run};
use serde_json::Value;
use service::{wait_for, Service, Token};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const PDB_DIR: &str = "symstore/amdppm.pdb/1C19FDDB27BB3399D9B45973EFEAFCF31";
const SYS_DIR: &str = "symstore/amdppm.sys/c9c030003b000";
const CRASH_OFFSET: u64 = 0x334c;

fn pdb_path() -> std::path::PathBuf {
    corpus().join(PDB_DIR).join("amdppm.pdb")
}

fn pdbutil(args: &[&str], pdb: &Path) -> String {
    let out = run(
        Command::new("llvm-pdbutil-14").args(args).arg(pdb),
        "llvm-pdbutil-14 (run scripts/test.sh)",
    );
    String::from_utf8(out).expect("utf-8")
}

/// `amdppm!Name+0xoff` for `rva`, from llvm-pdbutil's publics and section headers: the
/// function public with the greatest RVA at or below it.
fn expected_symbol(rva: u64) -> String {
    let pdb = pdb_path();
    let headers = pdbutil(&["dump", "--section-headers"], &pdb);
    let vas: Vec<u64> = headers
        .lines()
        .filter(|l| l.trim_end().ends_with("virtual address"))
        .map(|l| u64::from_str_radix(l.split_whitespace().next().unwrap(), 16).unwrap())
        .collect();
    let publics = pdbutil(&["dump", "--publics"], &pdb);
    let lines: Vec<&str> = publics.lines().collect();
    let mut best: Option<(u64, String)> = None;
    for w in lines.windows(2) {
        let Some(name) = w[0].split('`').nth(1) else {
            continue;
        };
        if !w[1].contains("flags = function") {
            continue;
        }
        let addr = w[1].rsplit("addr = ").next().unwrap().trim();
        let (sec, off) = addr.split_once(':').unwrap();
        let sec: usize = sec.parse().unwrap();
        let off: u64 = off.parse().unwrap();
        let at = vas[sec - 1] + off;
        if at <= rva && best.as_ref().is_none_or(|(b, _)| at > *b) {
            best = Some((at, name.to_string()));
        }
    }
    let (at, name) = best.expect("a public function before the crash");
    format!("amdppm!{name}+{:#x}", rva - at)
}

fn module<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["modules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("no module {name}"))
}

fn report(svc: &Service, t: &Token, id: &str) -> Value {
    let st = svc.wait_finished(t, id, Duration::from_secs(300));
    assert_eq!(st["status"], "done", "{st}");
    svc.get(t, &format!("/api/v1/dumps/{id}/report"))
}

/// Waits until the dump's analysis has been redone (queued again, then done).
fn reanalysed(svc: &Service, t: &Token, id: &str, check: impl Fn(&Value) -> bool) -> Value {
    wait_for("the re-analysis", Duration::from_secs(300), || {
        let st = svc.get(t, &format!("/api/v1/dumps/{id}"));
        if st["status"] != "done" {
            return None;
        }
        // A further re-queue may land between the two reads: 409 means "not yet".
        let (code, r) = svc.call(t, "GET", &format!("/api/v1/dumps/{id}/report"), None);
        assert!(code == 200 || code == 409, "report: {code} {r}");
        (code == 200 && check(&r)).then_some(r)
    })
}

fn upload_symbols(svc: &Service, t: &Token, name: &str, body: &[u8]) -> (u16, Value) {
    svc.call(
        t,
        "POST",
        &format!("/api/v1/symbols?name={}", service::enc(name)),
        Some(body),
    )
}

fn page(svc: &Service, t: &Token, path: &str) -> String {
    let r = ureq::get(&svc.url(path))
        .set("Authorization", &t.0)
        .call()
        .expect("page");
    r.into_string().unwrap()
}

/// The page's form as a browser without JavaScript posts it (the CSRF field first; a bearer
/// token needs none, so it is empty): (status, HTML).
fn form_upload(svc: &Service, t: &Token, name: &str, body: &[u8]) -> (u16, String) {
    let b = "----vendorsymbolsboundary";
    let mut form = format!(
        "--{b}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n\r\n--{b}\r\n\
         Content-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    form.extend_from_slice(body);
    form.extend_from_slice(format!("\r\n--{b}--\r\n").as_bytes());
    let r = ureq::post(&svc.url("/symbols"))
        .set("Authorization", &t.0)
        .set(
            "Content-Type",
            &format!("multipart/form-data; boundary={b}"),
        )
        .send_bytes(&form);
    let r = match r {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("POST /symbols: {e}"),
    };
    (r.status(), r.into_string().unwrap())
}

fn zip_of(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
    use std::io::Write;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data) in entries {
        w.start_file(*name, zip::write::SimpleFileOptions::default())
            .unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

/// The corpus PDB with its MSF stream directory damaged: (truncated, huge stream count, a
/// stream whose first page is the directory's own page). Offsets from the MSF 7.00 layout:
/// page size at 0x20, directory size at 0x2C, block map page at 0x34.
fn hostile_pdbs() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let good = std::fs::read(pdb_path()).unwrap();
    let ps = le32(&good, 0x20) as usize;
    let map = le32(&good, 0x34) as usize * ps;
    let dir_page = le32(&good, map);
    let dir = dir_page as usize * ps;
    let count = le32(&good, dir) as usize;
    let mut huge = good.clone();
    huge[dir..dir + 4].copy_from_slice(&0x4000_0000u32.to_le_bytes());
    // The first page number after the sizes belongs to the first non-empty stream.
    let mut looped = good.clone();
    let first_page = dir + 4 + 4 * count;
    looped[first_page..first_page + 4].copy_from_slice(&dir_page.to_le_bytes());
    vec![
        (
            "truncated.pdb",
            good[..good.len() / 2].to_vec(),
            "truncated",
        ),
        ("streams.pdb", huge, "streams"),
        ("looped.pdb", looped, "used twice"),
    ]
}

#[test]
fn a_tenants_pdb_names_its_crash_for_that_tenant_only() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    // The public symbol path: a store with amdppm.sys's image and nothing else.
    let public = tmp.path().join("public");
    let img_dir = public.join("amdppm.sys/C9C030003b000");
    std::fs::create_dir_all(&img_dir).unwrap();
    std::fs::copy(
        corpus().join(SYS_DIR).join("amdppm.sys"),
        img_dir.join("amdppm.sys"),
    )
    .unwrap();
    let acme = Token::new(&data, "acme", "customer");
    let other = Token::new(&data, "other", "customer");
    let support = Token::new(&data, "internal", "support");
    let public_path = public.display().to_string();
    let svc = Service::start(&data, &[("POOLTRIAGE_SYMBOL_PATH", &public_path)]);
    let dump = std::fs::read(corpus().join("dumps/triage_x64.dmp")).unwrap();
    let a = svc.upload(&acme, &dump, "?name=acme.dmp");
    let o = svc.upload(&other, &dump, "?name=other.dmp");

    // Before: the crash by module+offset, the PDB's key known from the public image.
    let expected = expected_symbol(CRASH_OFFSET);
    for (t, id) in [(&acme, &a), (&other, &o)] {
        let r = report(&svc, t, id);
        assert_eq!(
            r["bugcheck"]["faulting"],
            format!("amdppm.sys+{CRASH_OFFSET:#x}")
        );
        assert!(
            r["bugcheck"]["faulting_symbol"].is_null(),
            "{}",
            r["bugcheck"]
        );
        let m = module(&r, "amdppm.sys");
        assert_eq!(m["symbols"], "not found", "{m}");
        assert_eq!(
            m["pdb"]["guid"], "1C19FDDB-27BB-3399-D9B4-5973EFEAFCF3",
            "{m}"
        );
    }

    // acme uploads the PDB: stored under the key its content gives, acme's dump queued again.
    let pdb = std::fs::read(pdb_path()).unwrap();
    let (code, up) = upload_symbols(&svc, &acme, "amdppm.pdb", &pdb);
    assert_eq!(code, 201, "{up}");
    let f = &up["files"][0];
    assert_eq!(f["status"], "added", "{up}");
    let key = PDB_DIR.rsplit('/').next().unwrap();
    assert_eq!(f["identity"]["key"], key);
    assert_eq!(f["identity"]["pdb"]["line_ranges"], 0);
    let requeued: Vec<&str> = up["requeued"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(requeued, [a.as_str()], "{up}");
    let file_id = f["id"].as_str().unwrap().to_string();
    let lines = pdbutil(&["dump", "-l"], &pdb_path());
    assert!(
        !lines.contains("line/addr entries"),
        "the corpus PDB has lines: {lines}"
    );

    // acme's report names the crash, says the PDB has no lines and which store answered.
    let r = reanalysed(&svc, &acme, &a, |r| {
        !r["bugcheck"]["faulting_symbol"].is_null()
    });
    assert_eq!(r["bugcheck"]["faulting_symbol"], expected);
    assert!(r["bugcheck"]["faulting_source"].is_null());
    let m = module(&r, "amdppm.sys");
    assert_eq!(m["symbols"], "found");
    assert_eq!(m["line_info"], false);
    assert_eq!(m["symbols_source"], "vendor-symbols/acme");

    // The other tenant: the same dump, unnamed; none of acme's files.
    let r = report(&svc, &other, &o);
    assert!(
        r["bugcheck"]["faulting_symbol"].is_null(),
        "{}",
        r["bugcheck"]
    );
    assert_eq!(module(&r, "amdppm.sys")["symbols"], "not found");
    assert_eq!(
        svc.get(&other, "/api/v1/symbols")["items"],
        serde_json::json!([])
    );
    let (code, _) = svc.call(&other, "GET", &format!("/api/v1/symbols/{file_id}"), None);
    assert_eq!(code, 404);
    let (code, _) = svc.call(
        &other,
        "DELETE",
        &format!("/api/v1/symbols/{file_id}"),
        None,
    );
    assert_eq!(code, 404);
    let (code, _) = svc.call(&other, "GET", "/api/v1/symbols?tenant=acme", None);
    assert_eq!(code, 403);
    // Support sees the file and its tenant.
    let all = svc.get(&support, "/api/v1/symbols");
    assert_eq!(all["items"][0]["tenant"], "acme", "{all}");
    assert_eq!(
        all["items"][0]["path"],
        format!("amdppm.pdb/{key}/amdppm.pdb")
    );
    assert!(data
        .join("vendor-symbols/acme/amdppm.pdb")
        .join(key)
        .join("amdppm.pdb")
        .is_file());

    // A zipped symstore tree: the PDB is a duplicate, the image is added.
    let zip = zip_of(&[
        ("store/pingme.txt", Vec::new()),
        (
            &format!("store/{PDB_DIR}/amdppm.pdb").replace("symstore/", ""),
            pdb.clone(),
        ),
        (
            "store/amdppm.sys/0/amdppm.sys",
            std::fs::read(corpus().join(SYS_DIR).join("amdppm.sys")).unwrap(),
        ),
    ]);
    let (code, up) = upload_symbols(&svc, &acme, "store.zip", &zip);
    assert_eq!(code, 201, "{up}");
    let st: Vec<&str> = up["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["status"].as_str().unwrap())
        .collect();
    assert_eq!(st, ["skipped", "duplicate", "added"], "{up}");
    assert_eq!(
        up["files"][2]["identity"]["key"]
            .as_str()
            .map(str::to_lowercase)
            .as_deref(),
        Some("c9c030003b000")
    );

    // Hostile files: refused with a reason, nothing stored, the service goes on.
    for (name, body, why) in hostile_pdbs() {
        let (code, up) = upload_symbols(&svc, &acme, name, &body);
        assert_eq!(code, 422, "{name}: {up}");
        assert_eq!(up["files"][0]["status"], "refused", "{name}: {up}");
        assert_eq!(up["code"], "no_symbol_files");
        let e = up["files"][0]["error"].as_str().unwrap();
        assert!(e.contains(why), "{name}: {e}");
    }
    let (code, up) = upload_symbols(&svc, &acme, "notes.txt", b"just text");
    assert_eq!(
        (code, up["files"][0]["status"].as_str()),
        (422, Some("refused"))
    );
    assert_eq!(
        svc.get(&acme, "/api/v1/symbols")["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // The page: acme's files, not the other tenant's; its form takes an upload too.
    let html = page(&svc, &acme, "/symbols");
    assert!(html.contains("amdppm.pdb") && html.contains(key), "{html}");
    assert!(!page(&svc, &other, "/symbols").contains("amdppm.pdb"));
    let (code, html) = form_upload(&svc, &acme, "amdppm.pdb", &pdb);
    assert_eq!(code, 200, "{html}");
    assert!(
        html.contains("id=\"upload-result\"") && html.contains("duplicate"),
        "{html}"
    );
    let doc = svc.get(&acme, "/api/v1/openapi.json");
    for p in ["/api/v1/symbols", "/api/v1/symbols/{id}"] {
        assert!(doc["paths"].get(p).is_some(), "openapi lacks {p}");
    }

    // Deleting the PDB analyses the dump again, unnamed.
    let (code, del) = svc.call(&acme, "DELETE", &format!("/api/v1/symbols/{file_id}"), None);
    assert_eq!(code, 200, "{del}");
    assert_eq!(del["requeued"][0]["id"], a.as_str(), "{del}");
    let r = reanalysed(&svc, &acme, &a, |r| {
        r["bugcheck"]["faulting_symbol"].is_null()
    });
    assert_eq!(module(&r, "amdppm.sys")["symbols"], "not found");
}
