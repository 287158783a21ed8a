//! The HTML pages of `pooltriage serve` over real HTTP on loopback, parsed with a real HTML5
//! parser (scraper): a forged leak-tagged dump's report page (verdict, driver row and its
//! drill-down, pool gauges, tag table sorting), tenant isolation, the browser login flow with a
//! cookie and the form upload with CSRF, live status while a job runs, a failed analysis, an
//! old `inspect` report, and hostile names in a report.
//!
//! Expected values come from the forge's truth file (driver, tag, tag table figures) and the
//! corpus README (triage_x64.dmp: bugcheck 0x1000007E, 151 drivers, amdppm.sys), never from our
//! own output. The hostile report is hand-made here (checked against the analyzer's own serde
//! types) and served by a stand-in analyzer script (`POOLTRIAGE_ANALYZER`).
//!
//! Build the binary first (`cargo build -p pooltriage`); the CI builds the workspace.

#[path = "independent/harness.rs"]
mod harness;

use harness::{create_token, forge, pooltriage_bin, spawn_serve, ServeProcess};
use scraper::{Html, Selector};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const TRIAGE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/corpus/dumps/triage_x64.dmp"
);

/// A running `pooltriage serve` (killed when dropped).
struct Service {
    /// Held for its drop: the service stops with the test.
    _process: ServeProcess,
    addr: SocketAddr,
    agent: ureq::Agent,
}

/// A response, whatever its status; redirects are not followed.
struct Reply {
    status: u16,
    location: Option<String>,
    cookies: Vec<String>,
    body: String,
}

impl Reply {
    fn html(&self) -> Html {
        Html::parse_document(&self.body)
    }
    /// The value of cookie `name` set by this response.
    fn cookie(&self, name: &str) -> Option<String> {
        self.cookies.iter().find_map(|c| {
            let (k, rest) = c.split_once('=')?;
            (k == name).then(|| rest.split(';').next().unwrap_or("").to_string())
        })
    }
}

impl Service {
    fn start(dir: &Path, env: &[(&str, &str)]) -> Service {
        let mut env = env.to_vec();
        env.insert(0, ("POOLTRIAGE_UPLOAD_BURST", "100"));
        let (child, addr) = spawn_serve(dir, &env);
        Service {
            _process: child,
            addr,
            agent: ureq::AgentBuilder::new()
                .redirects(0)
                .timeout(Duration::from_secs(60))
                .build(),
        }
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Reply {
        let mut req = self
            .agent
            .request(method, &format!("http://{}{path}", self.addr));
        for (k, v) in headers {
            req = req.set(k, v);
        }
        let r = match body {
            Some(b) => req.send_bytes(b),
            None => req.call(),
        };
        let resp = match r {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{method} {path}: {e}"),
        };
        let status = resp.status();
        let location = resp.header("location").map(str::to_string);
        let cookies = resp
            .all("set-cookie")
            .into_iter()
            .map(str::to_string)
            .collect();
        let body = resp.into_string().unwrap_or_default();
        Reply {
            status,
            location,
            cookies,
            body,
        }
    }

    fn get(&self, path: &str, token: &str) -> Reply {
        self.request(
            "GET",
            path,
            &[("Authorization", &format!("Bearer {token}"))],
            None,
        )
    }

    /// Uploads through the API; returns the dump id.
    fn upload(&self, token: &str, dump: &Path) -> String {
        let body = std::fs::read(dump).unwrap();
        let name = dump.file_name().unwrap().to_string_lossy().to_string();
        let r = self.request(
            "POST",
            &format!("/api/v1/dumps?name={name}"),
            &[("Authorization", &format!("Bearer {token}"))],
            Some(&body),
        );
        assert!(
            r.status == 201 || r.status == 200,
            "upload: {} {}",
            r.status,
            r.body
        );
        let v: Value = serde_json::from_str(&r.body).unwrap();
        v["id"].as_str().unwrap().to_string()
    }

    /// Polls the API until the dump leaves queued/running; returns its status object.
    fn wait_finished(&self, token: &str, id: &str) -> Value {
        let start = Instant::now();
        loop {
            let r = self.get(&format!("/api/v1/dumps/{id}"), token);
            assert_eq!(r.status, 200, "{}", r.body);
            let v: Value = serde_json::from_str(&r.body).unwrap();
            if v["status"] == "done" || v["status"] == "failed" {
                return v;
            }
            assert!(
                start.elapsed() < Duration::from_secs(180),
                "dump {id} not finished: {v}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn sel(s: &str) -> Selector {
    Selector::parse(s).unwrap_or_else(|e| panic!("selector {s}: {e:?}"))
}

/// The whitespace-normalised text of every element matching `s`.
fn texts(doc: &Html, s: &str) -> Vec<String> {
    doc.select(&sel(s))
        .map(|e| {
            e.text()
                .collect::<String>()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

fn text(doc: &Html, s: &str) -> String {
    let t = texts(doc, s);
    assert_eq!(t.len(), 1, "expected one {s}, found {}", t.len());
    t.into_iter().next().unwrap()
}

/// The first cell of each row of a table's body, as written in the report (tags keep their
/// trailing spaces, so only the outer whitespace of the cell is trimmed... which a tag such as
/// "Irp " also has: compare tags trimmed).
fn first_cells(doc: &Html, table: &str) -> Vec<String> {
    doc.select(&sel(&format!("{table} tbody tr td:first-child")))
        .map(|e| e.text().collect::<String>().trim().to_string())
        .collect()
}

/// The truth's tag table: tag (trimmed) -> (paged bytes, nonpaged bytes, outstanding allocations).
fn truth_tags(truth: &Value) -> HashMap<String, (u64, u64, u64)> {
    truth["pool"]["tags"]
        .as_array()
        .expect("truth pool.tags")
        .iter()
        .map(|t| {
            let n = |k: &str| {
                t[k].as_u64()
                    .unwrap_or_else(|| panic!("truth tag {k}: {t}"))
            };
            let outstanding =
                n("paged_allocs") - n("paged_frees") + n("nonpaged_allocs") - n("nonpaged_frees");
            (
                t["tag"].as_str().unwrap().trim().to_string(),
                (n("paged_bytes"), n("nonpaged_bytes"), outstanding),
            )
        })
        .collect()
}

#[test]
fn forged_leak_report_page() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let token = create_token(&dir, "acme", "customer");
    let support = create_token(&dir, "internal", "support");
    let forged = {
        let fdir = tmp.path().join("forge");
        std::fs::create_dir_all(&fdir).unwrap();
        let dump = fdir.join("leak.dmp");
        let out = Command::new(pooltriage_bin())
            .env("POOLTRIAGE_CORPUS", harness::corpus())
            .args([
                "forge",
                "--profile",
                "win10-19041-x64",
                "--format",
                "kernel-bitmap",
            ])
            .args(["--scenario", "leak-tagged", "--size", "268435456", "--out"])
            .arg(&dump)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "forge: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let truth: Value = serde_json::from_str(
            &std::fs::read_to_string(fdir.join("leak.dmp.truth.json")).unwrap(),
        )
        .unwrap();
        (dump, truth)
    };
    let (dump, truth) = forged;
    let leak = &truth["pool"]["drivers"][0];
    let driver = leak["module"]
        .as_str()
        .expect("truth names the leaking driver");
    let leak_tag = leak["tags"][0]
        .as_str()
        .expect("truth names its tag")
        .trim()
        .to_string();

    // The analyzer child inherits the service's environment: the kernel's layouts come from the
    // corpus ISF folder (read only), as `analyze --isf-dir` would take them. Without symbols a
    // 19041 dump's tag table size is unknown and the report says "not analyzable".
    let isf = harness::corpus().join("isf");
    let svc = Service::start(&dir, &[("POOLTRIAGE_ISF_DIR", isf.to_str().unwrap())]);
    let id = svc.upload(&token, &dump);
    let st = svc.wait_finished(&token, &id);
    assert_eq!(st["status"], "done", "{st}");

    let page = svc.get(&format!("/dumps/{id}"), &token);
    assert_eq!(page.status, 200, "{}", page.body);
    let doc = page.html();
    // Finished: no more self-refresh.
    assert_eq!(doc.select(&sel("meta[http-equiv=refresh]")).count(), 0);
    // The verdict sentence names the truth's driver and tag.
    let verdict = text(&doc, "#verdict");
    assert!(
        verdict.contains(driver),
        "verdict {verdict:?} does not name {driver}"
    );
    assert!(
        verdict.contains(&leak_tag),
        "verdict {verdict:?} does not name tag {leak_tag}"
    );
    // Pool gauges: inline SVG, one per pool the report measured (at least one).
    assert!(
        doc.select(&sel("#pools svg.gauge")).count() >= 1,
        "no gauge SVG"
    );
    assert!(
        doc.select(&sel("#drivers svg.bars")).count() == 1,
        "no driver chart"
    );
    // The driver's row, marked as the one the verdict blames, links to its drill-down.
    let rows: Vec<_> = doc.select(&sel("#drivers tbody tr.driver")).collect();
    let row = rows
        .iter()
        .find(|r| r.text().collect::<String>().contains(driver))
        .unwrap_or_else(|| panic!("no driver row for {driver}"));
    assert!(row.value().attr("class").unwrap_or("").contains("blamed"));
    let href = row
        .select(&sel("a"))
        .next()
        .and_then(|a| a.value().attr("href"))
        .expect("driver link")
        .to_string();
    assert_eq!(href, format!("/dumps/{id}/drivers/{driver}"));
    let drill = svc.get(&href, &token);
    assert_eq!(drill.status, 200, "{}", drill.body);
    let ddoc = drill.html();
    assert_eq!(text(&ddoc, "h1"), driver);
    assert!(first_cells(&ddoc, "#driver-tags").contains(&leak_tag));
    // Largest blocks of the leak tag: the truth holds big allocations of it.
    let truth_big = truth["pool"]["big_pages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| {
            b["tag"].as_str().map(str::trim) == Some(leak_tag.as_str()) && b["free"] == false
        })
        .count();
    let listed = ddoc
        .select(&sel("#largest-blocks tbody tr"))
        .filter(|r| r.text().collect::<String>().contains(&leak_tag))
        .count();
    assert!(
        truth_big > 0 && listed >= truth_big.min(20),
        "largest blocks: {listed} of {truth_big} big"
    );
    // An unknown driver: 404 page.
    assert_eq!(
        svc.get(&format!("/dumps/{id}/drivers/nosuch.sys"), &token)
            .status,
        404
    );

    // The tag table, sorted by each key: the order must follow the truth's figures.
    let tt = truth_tags(&truth);
    type Key = fn(&(u64, u64, u64)) -> u64;
    let keys: [(&str, Key); 3] = [
        ("paged", |t| t.0),
        ("nonpaged", |t| t.1),
        ("allocs", |t| t.2),
    ];
    for (sort, key) in keys {
        let doc = svc
            .get(&format!("/dumps/{id}?sort={sort}&tags=all"), &token)
            .html();
        let tags = first_cells(&doc, "#tag-table");
        assert!(tags.contains(&leak_tag), "sort={sort}: {leak_tag} missing");
        let vals: Vec<u64> = tags
            .iter()
            .map(|t| {
                key(tt
                    .get(t)
                    .unwrap_or_else(|| panic!("tag {t:?} not in the truth")))
            })
            .collect();
        assert!(
            vals.windows(2).all(|w| w[0] >= w[1]),
            "sort={sort}: {tags:?} -> {vals:?} not descending"
        );
        // The active sort is shown as text, not a link.
        assert_eq!(doc.select(&sel("#tags .sort strong")).count(), 1);
    }
    let doc = svc
        .get(&format!("/dumps/{id}?sort=tag&tags=all"), &token)
        .html();
    let tags = first_cells(&doc, "#tag-table");
    let mut sorted = tags.clone();
    sorted.sort();
    assert_eq!(tags, sorted, "sort=tag");
    // The leak tag holds the most paged bytes in the truth: first under sort=paged.
    let top_paged = tt
        .iter()
        .max_by_key(|(t, v)| (v.0, std::cmp::Reverse((*t).clone())))
        .unwrap()
        .0;
    let doc = svc.get(&format!("/dumps/{id}?sort=paged"), &token).html();
    assert_eq!(&first_cells(&doc, "#tag-table")[0], top_paged);
    // The module list has every module the truth planted.
    let modules = first_cells(&doc, "#modules");
    for m in truth["modules"].as_array().unwrap() {
        let name = m["name"].as_str().unwrap();
        assert!(
            modules.iter().any(|x| x == name),
            "module {name} missing from {modules:?}"
        );
    }
    // The bugcheck block shows the truth's code.
    let code = truth["bugcheck"]["code"].as_str().unwrap();
    assert!(text(&doc, "#bugcheck").contains(code));

    // The support dashboard: the driver tops the drivers blamed, with its chart.
    let dash = svc.get("/dashboard", &support).html();
    let top = first_cells(&dash, "table.drivers");
    assert_eq!(
        top.first().map(String::as_str),
        Some(driver.to_lowercase().as_str())
    );
    let chart = texts(&dash, "svg.counts g.bar title");
    assert_eq!(chart, [format!("{}: 1 dump", driver.to_lowercase())]);

    // The list shows the dump with its verdict.
    let list = svc.get("/dumps", &token).html();
    let row = texts(&list, "table.dumps tbody tr").join("\n");
    assert!(row.contains(driver), "list: {row}");
}

/// A stand-in analyzer: prints `report` for the dump of size `hostile_size` once the file
/// [`release_file`] exists (so the test sees the page while the job runs, however slow the
/// machine), runs the real `inspect` for the triage dump (the
/// report shape stored before the pool engine ran), and fails like a bad dump otherwise.
fn stand_in_analyzer(
    dir: &Path,
    report: &Value,
    hostile_size: u64,
    triage_size: u64,
) -> std::path::PathBuf {
    let json = dir.join("hostile-report.json");
    let release = release_file(dir);
    std::fs::write(&json, serde_json::to_vec(report).unwrap()).unwrap();
    let script = dir.join("analyzer.sh");
    let text = format!(
        "#!/bin/sh\n\
         for last in \"$@\"; do :; done\n\
         size=$(stat -c %s \"$last\")\n\
         if [ \"$size\" -eq {hostile_size} ]; then\n\
           while [ ! -e '{release}' ]; do sleep 0.1; done; cat '{json}'; exit 0\n\
         fi\n\
         if [ \"$size\" -eq {triage_size} ]; then exec '{bin}' inspect --json --no-symbols \"$last\"; fi\n\
         echo 'not a dump this stand-in analyses: pool header <b>broken</b>' >&2\n\
         exit 2\n",
        json = json.display(),
        release = release.display(),
        bin = pooltriage_bin().display(),
    );
    std::fs::write(&script, text).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

/// Created by the test to let the stand-in analyzer finish the hostile dump's job.
fn release_file(dir: &Path) -> std::path::PathBuf {
    dir.join("release-hostile-job")
}

const EVIL_MODULE: &str = "<script>alert(1)</script>.sys";
const EVIL_TAG: &str = "<b>";
const EVIL_SENTENCE: &str = "<img src=x onerror=alert(2)> leaks \"everything\" & more";

/// A report in the analysis schema (docs/json.md) with markup in every text a dump controls.
fn hostile_report() -> Value {
    let report = json!({
        "schema_version": 1, "kind": "analysis", "generator": "hand-made",
        "dump": { "format": "kernel-bitmap", "dump_type": 5, "arch": "x64", "pae": false, "build": 19041,
                  "processors": 2, "system_time": null, "file_size": 1, "kernel_base": null },
        "bugcheck": { "code": "0xc2", "name": "BAD_POOL_CALLER", "params": ["0x1","0x2","0x3","0x4"], "pool_related": true },
        "symbols": { "source": "none", "path": null, "guid": null, "age": null, "matches_kernel": null },
        "verdict": { "kind": "driver-leak", "sentence": EVIL_SENTENCE, "pool": "paged",
                     "drivers": [EVIL_MODULE], "tags": [EVIL_TAG], "bytes": 4096, "share_of_pool": 0.5,
                     "confidence": "high", "process": null, "reasons": ["<i>reason</i>"] },
        "pools": [ { "pool": "paged", "in_use": 8192, "max": 16384, "commit": null, "used_fraction": 0.5,
                     "near_exhaustion": false, "source": "<u>src</u>" } ],
        "drivers": [ { "module": EVIL_MODULE, "base": "0xfffff80000000000", "size": 4096, "path": "\\<a>\\x.sys",
                       "paged_bytes": 4096, "nonpaged_bytes": 0, "bytes": 4096, "allocations": 1, "share_of_pool": 0.5,
                       "tags": [ { "tag": EVIL_TAG, "paged_bytes": 4096, "nonpaged_bytes": 0, "allocations": 1,
                                   "evidence": "driver-code-allocation", "shared_with": ["<em>x</em>"] } ],
                       "call_sites": [ { "address": "0xfffff80000001000", "offset": "<s>+0x1000", "symbol": null,
                                         "tag": EVIL_TAG, "kind": "tag-argument", "pool_type": "paged", "size": 64 } ],
                       "blocks": { "count": 1, "bytes": 4096, "largest": [ { "address": "0xffffc00000000000", "size": 4096,
                                   "tag": EVIL_TAG, "pool": "paged", "source": "big" } ] } } ],
        "tags": [ { "tag": EVIL_TAG, "paged_allocs": 1, "paged_frees": 0, "paged_bytes": 4096, "nonpaged_allocs": 0,
                    "nonpaged_frees": 0, "nonpaged_bytes": 0, "paged_outstanding": 1, "nonpaged_outstanding": 0,
                    "owners": [ { "module": EVIL_MODULE, "source": "driver-code-allocation", "description": null } ] } ],
        "session_tags": null,
        "blocks": { "classic": {"count":0,"bytes":0}, "big": {"count":1,"bytes":4096}, "lfh": {"count":0,"bytes":0},
                    "vs": {"count":0,"bytes":0}, "free_blocks": 0, "missing_pool_pages": 0, "complete": true },
        "quota": { "processes": [ { "pid": 4, "name": "<script>p</script>", "eprocess": "0xffff000000000000",
                                    "blocks": 1, "bytes": 64 } ], "uncharged_blocks": 0, "uncharged_bytes": 0 },
        "modules": [ { "name": EVIL_MODULE, "base": "0xfffff80000000000", "size": 4096, "timestamp": null,
                       "pdb": null, "symbols": "<marquee>not looked up" } ],
        "warnings": ["<script>w()</script>"], "errors": []
    });
    // The hand-made report must be one the analyzer's own types accept, or the page would only
    // show "cannot be shown" and this test would prove nothing about escaping.
    serde_json::from_value::<analyzer::report::AnalysisReport>(report.clone())
        .expect("the hostile report follows the analysis schema");
    report
}

#[test]
fn live_status_failure_old_reports_and_hostile_names() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let token = create_token(&dir, "acme", "customer");
    let fdir = tmp.path().join("forge");
    std::fs::create_dir_all(&fdir).unwrap();
    let hostile_dump = forge(&fdir, "win10-19041-x64", "kernel-bitmap", Some(256 << 20)).dump;
    let bad_dump = forge(&fdir, "win10-17763-x64", "kernel-bitmap", Some(256 << 20)).dump;
    let size = |p: &Path| std::fs::metadata(p).unwrap().len();
    assert_ne!(
        size(&hostile_dump),
        size(&bad_dump),
        "the stand-in tells the dumps apart by size"
    );
    let script = stand_in_analyzer(
        tmp.path(),
        &hostile_report(),
        size(&hostile_dump),
        size(Path::new(TRIAGE)),
    );
    let svc = Service::start(&dir, &[("POOLTRIAGE_ANALYZER", script.to_str().unwrap())]);

    // While the analysis runs (the stand-in waits for the release file), the page refreshes itself and says
    // what is happening, without a script.
    let id = svc.upload(&token, &hostile_dump);
    let doc = svc.get(&format!("/dumps/{id}"), &token).html();
    let refresh: Vec<_> = doc.select(&sel("meta[http-equiv=refresh]")).collect();
    assert_eq!(
        refresh.len(),
        1,
        "a queued/running dump's page refreshes itself"
    );
    assert_eq!(refresh[0].value().attr("content"), Some("3"));
    let status = text(&doc, "#status");
    assert!(
        status.contains("queued") || status.contains("running"),
        "{status}"
    );
    assert_eq!(doc.select(&sel("#stage")).count(), 1);
    assert_eq!(
        doc.select(&sel("script")).count(),
        0,
        "the dump page needs no script"
    );

    // Done: every hostile text is text, not markup.
    std::fs::write(release_file(tmp.path()), b"").unwrap();
    assert_eq!(svc.wait_finished(&token, &id)["status"], "done");
    let page = svc.get(&format!("/dumps/{id}"), &token);
    assert_eq!(page.status, 200);
    let doc = page.html();
    for tag in ["script", "img", "b", "i", "u", "em", "s", "marquee"] {
        assert_eq!(
            doc.select(&sel(tag)).count(),
            0,
            "a <{tag}> element came from the report: {}",
            page.body
        );
    }
    assert_eq!(
        text(&doc, "#verdict"),
        EVIL_SENTENCE
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    );
    let drivers = first_cells(&doc, "#drivers");
    assert_eq!(drivers, [EVIL_MODULE]);
    assert_eq!(first_cells(&doc, "#tag-table"), [EVIL_TAG]);
    assert_eq!(first_cells(&doc, "#modules"), [EVIL_MODULE]);
    assert!(texts(&doc, "#warnings li").contains(&"<script>w()</script>".to_string()));
    // SVG text is escaped too: the chart's labels read back as the hostile text.
    let svg_text = texts(&doc, "#drivers svg.bars title").join("|");
    assert!(svg_text.contains(EVIL_MODULE), "{svg_text}");
    // The drill-down of a module named with markup: a percent-encoded link that works.
    let href = doc
        .select(&sel("#drivers tbody a"))
        .next()
        .and_then(|a| a.value().attr("href"))
        .unwrap()
        .to_string();
    assert!(!href.contains('<'), "{href}");
    let drill = svc.get(&href, &token);
    assert_eq!(drill.status, 200, "{href}");
    let ddoc = drill.html();
    assert_eq!(text(&ddoc, "h1"), EVIL_MODULE);
    for tag in ["script", "b", "em", "s"] {
        assert_eq!(
            ddoc.select(&sel(tag)).count(),
            0,
            "<{tag}> on the driver page"
        );
    }

    // A dump the analyzer refuses: failed, with the reason (escaped).
    let bad = svc.upload(&token, &bad_dump);
    assert_eq!(svc.wait_finished(&token, &bad)["status"], "failed");
    let doc = svc.get(&format!("/dumps/{bad}"), &token).html();
    let status = text(&doc, "#status");
    assert!(status.contains("pool header <b>broken</b>"), "{status}");
    assert_eq!(doc.select(&sel("b")).count(), 0);
    assert_eq!(doc.select(&sel("meta[http-equiv=refresh]")).count(), 0);
    // Only an admin is offered, and allowed, a retry; the job then runs again (and fails again:
    // the stand-in analyzer refuses this dump every time).
    assert_eq!(doc.select(&sel("form[action$='/retry']")).count(), 0);
    let admin = create_token(&dir, "ops", "admin");
    let doc = svc.get(&format!("/dumps/{bad}"), &admin).html();
    assert_eq!(doc.select(&sel("form[action$='/retry']")).count(), 1);
    let retry = format!("/api/v1/dumps/{bad}/retry");
    let as_customer = [("Authorization", format!("Bearer {token}"))];
    let as_admin = [("Authorization", format!("Bearer {admin}"))];
    let r = svc.request(
        "POST",
        &retry,
        &[(as_customer[0].0, &as_customer[0].1)],
        None,
    );
    assert_eq!(r.status, 403);
    let r = svc.request("POST", &retry, &[(as_admin[0].0, &as_admin[0].1)], None);
    assert_eq!(r.status, 202, "{}", r.body);
    assert!(r.body.contains("\"status\":\"queued\""), "{}", r.body);
    assert_eq!(svc.wait_finished(&token, &bad)["status"], "failed");
    let r = svc.request("POST", &retry, &[(as_admin[0].0, &as_admin[0].1)], None);
    assert_eq!(r.status, 202, "a failed analysis can be retried again");
    assert_eq!(svc.wait_finished(&token, &bad)["status"], "failed");

    // An old inspect report (the real triage dump): module list and bugcheck, no pool analysis.
    let old = svc.upload(&token, Path::new(TRIAGE));
    assert_eq!(svc.wait_finished(&token, &old)["status"], "done");
    let doc = svc.get(&format!("/dumps/{old}"), &token).html();
    assert!(text(&doc, "#verdict").contains("No pool analysis"));
    // Corpus README: bugcheck 0x1000007E in amdppm.sys, 151 drivers.
    assert!(text(&doc, "#bugcheck").contains("0x1000007e"));
    let modules = first_cells(&doc, "#modules");
    assert_eq!(modules.len(), 151);
    assert!(modules.iter().any(|m| m.eq_ignore_ascii_case("amdppm.sys")));
    assert_eq!(doc.select(&sel("#pools")).count(), 0);

    // The list: each dump with its state and summary.
    let list = svc.get("/dumps", &token).html();
    let rows = texts(&list, "table.dumps tbody tr").join("\n");
    assert!(
        rows.contains(EVIL_SENTENCE.split_whitespace().next().unwrap()),
        "{rows}"
    );
    assert!(rows.contains("Analysis failed"), "{rows}");
    assert!(rows.contains("No pool analysis"), "{rows}");
    let failed_only = texts(
        &svc.get("/dumps?status=failed", &token).html(),
        "table.dumps tbody tr",
    );
    assert_eq!(failed_only.len(), 1, "{failed_only:?}");
}

#[test]
fn tenant_isolation_and_roles_on_pages() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let acme = create_token(&dir, "acme", "customer");
    let globex = create_token(&dir, "globex", "customer");
    let support = create_token(&dir, "internal", "support");
    let svc = Service::start(&dir, &[]);
    let id = svc.upload(&acme, Path::new(TRIAGE));
    svc.wait_finished(&acme, &id);

    assert_eq!(svc.get(&format!("/dumps/{id}"), &acme).status, 200);
    // Another tenant: the same 404 page as for an id that exists nowhere.
    let theirs = svc.get(&format!("/dumps/{id}"), &globex);
    let nowhere = svc.get("/dumps/00000000000000000000000000000000", &globex);
    assert_eq!((theirs.status, nowhere.status), (404, 404));
    assert_eq!(
        text(&theirs.html(), ".error"),
        text(&nowhere.html(), ".error")
    );
    assert_eq!(
        svc.get(&format!("/dumps/{id}/drivers/amdppm.sys"), &globex)
            .status,
        404
    );
    // ... and cannot delete it from a page either.
    let r = svc.request(
        "POST",
        &format!("/dumps/{id}/delete"),
        &[
            ("Authorization", &format!("Bearer {globex}")),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        Some(b"confirm=yes"),
    );
    assert_eq!(r.status, 404);
    assert_eq!(svc.get(&format!("/dumps/{id}"), &acme).status, 200);
    let list = svc.get("/dumps", &globex);
    assert_eq!(list.status, 200);
    assert!(!list.body.contains(&id));
    // A customer cannot widen its list with ?tenant=.
    assert!(!svc.get("/dumps?tenant=acme", &globex).body.contains(&id));
    // Customers have no dashboard (nor a link to it); support sees every tenant.
    assert_eq!(svc.get("/dashboard", &acme).status, 403);
    assert_eq!(
        svc.get("/", &acme)
            .html()
            .select(&sel("a[href='/dashboard']"))
            .count(),
        0
    );
    assert_eq!(svc.get(&format!("/dumps/{id}"), &support).status, 200);
    let dash = svc.get("/dashboard", &support);
    assert_eq!(dash.status, 200);
    let ddoc = dash.html();
    assert!(texts(&ddoc, "table.dumps tbody tr")
        .join("\n")
        .contains("acme"));
    // Queue health: one done job (the triage dump), nothing queued.
    let health = text(&ddoc, "#queue-health");
    assert!(
        health.contains("1 done") && health.contains("0 queued"),
        "{health}"
    );
    // The dashboard's customer filter.
    let other = svc.get("/dashboard?tenant=globex", &support).html();
    assert!(!texts(&other, "table.dumps tbody tr")
        .join("\n")
        .contains("acme"));
}

/// `multipart/form-data` with the given text fields, then the file field.
fn multipart(fields: &[(&str, &str)], file: &[u8]) -> (String, Vec<u8>) {
    let boundary = "----pooltriage-test-7d1f";
    let mut body = Vec::new();
    for (k, v) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"MEMORY.DMP\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[test]
fn browser_login_form_upload_and_logout() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let token = create_token(&dir, "acme", "customer");
    let svc = Service::start(&dir, &[]);

    // No session: to the login form, remembering the page.
    let r = svc.request("GET", "/dumps?status=done", &[], None);
    assert_eq!(r.status, 303);
    assert_eq!(
        r.location.as_deref(),
        Some("/login?next=%2Fdumps%3Fstatus%3Ddone")
    );
    let login = svc.request("GET", r.location.as_deref().unwrap(), &[], None);
    assert_eq!(login.status, 200);
    let csrf_cookie = login.cookie("pt_login_csrf").expect("login csrf cookie");
    let doc = login.html();
    let field = |name: &str| {
        doc.select(&sel(&format!("form input[name={name}]")))
            .next()
            .and_then(|e| e.value().attr("value"))
            .map(str::to_string)
    };
    assert_eq!(field("csrf").as_deref(), Some(csrf_cookie.as_str()));
    assert_eq!(field("next").as_deref(), Some("/dumps?status=done"));
    let form = format!(
        "token={token}&csrf={csrf_cookie}&next={}",
        "%2Fdumps%3Fstatus%3Ddone"
    );
    let r = svc.request(
        "POST",
        "/login",
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Cookie", &format!("pt_login_csrf={csrf_cookie}")),
        ],
        Some(form.as_bytes()),
    );
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(
        r.location.as_deref(),
        Some("/dumps?status=done"),
        "back to the page asked for"
    );
    let session = r.cookie("pt_session").expect("session cookie");
    let cookie = format!("pt_session={session}");
    // A next that leaves the site is not followed.
    let evil = format!("token={token}&csrf={csrf_cookie}&next=%2F%2Fevil.example%2F");
    let r = svc.request(
        "POST",
        "/login",
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Cookie", &format!("pt_login_csrf={csrf_cookie}")),
        ],
        Some(evil.as_bytes()),
    );
    assert_eq!(r.location.as_deref(), Some("/"));

    // Signed in by cookie: the portal carries the session's CSRF token for the script and the
    // form, and the upload form has the ids static/upload.js relies on.
    let portal = svc.request("GET", "/", &[("Cookie", &cookie)], None);
    assert_eq!(portal.status, 200);
    let doc = portal.html();
    let meta = doc
        .select(&sel("meta[name=csrf-token]"))
        .next()
        .and_then(|m| m.value().attr("content"))
        .unwrap()
        .to_string();
    assert_eq!(meta.len(), 64, "session CSRF token in <meta>");
    for id in [
        "#drop-zone",
        "#file-input",
        "#upload-form",
        "progress#progress",
        "#upload-status",
    ] {
        assert_eq!(doc.select(&sel(id)).count(), 1, "{id}");
    }
    assert_eq!(
        doc.select(&sel("script[src='/static/upload.js'][defer]"))
            .count(),
        1
    );
    let form = doc.select(&sel("form#upload-form")).next().unwrap();
    assert_eq!(form.value().attr("method"), Some("post"));
    assert_eq!(form.value().attr("enctype"), Some("multipart/form-data"));
    let action = form.value().attr("action").unwrap().to_string();
    // The hidden csrf field and the system field come before the file input (the server
    // reads them first).
    let names: Vec<_> = form
        .select(&sel("input"))
        .filter_map(|i| i.value().attr("name"))
        .collect();
    assert_eq!(names, ["csrf", "system", "file"]);
    let logout_csrf = doc
        .select(&sel("form.logout input[name=csrf]"))
        .next()
        .and_then(|i| i.value().attr("value"))
        .unwrap()
        .to_string();
    assert_eq!(logout_csrf, meta);

    // The form upload without JavaScript: without the CSRF token it is refused, with it the
    // browser is sent to the dump's page.
    let dump = std::fs::read(TRIAGE).unwrap();
    let (ct, body) = multipart(&[], &dump);
    let r = svc.request(
        "POST",
        &action,
        &[("Cookie", &cookie), ("Content-Type", &ct)],
        Some(&body),
    );
    assert_eq!(r.status, 403);
    let (ct, body) = multipart(&[("csrf", "0".repeat(64).as_str())], &dump);
    let r = svc.request(
        "POST",
        &action,
        &[("Cookie", &cookie), ("Content-Type", &ct)],
        Some(&body),
    );
    assert_eq!(r.status, 403);
    let (ct, body) = multipart(&[("csrf", &meta)], &dump);
    let r = svc.request(
        "POST",
        &action,
        &[("Cookie", &cookie), ("Content-Type", &ct)],
        Some(&body),
    );
    assert_eq!(r.status, 303, "{}", r.body);
    let location = r.location.unwrap();
    let id = location
        .strip_prefix("/dumps/")
        .expect("to the dump's page")
        .to_string();
    let api = svc.get(&format!("/api/v1/dumps/{id}"), &token);
    let v: Value = serde_json::from_str(&api.body).unwrap();
    assert_eq!(v["tenant"], "acme");
    assert_eq!(v["original_name"], "MEMORY.DMP");
    assert_eq!(v["size"], dump.len() as u64);
    let page = svc.request("GET", &location, &[("Cookie", &cookie)], None);
    assert_eq!(page.status, 200);
    let delete_action = page
        .html()
        .select(&sel("#delete form"))
        .next()
        .and_then(|f| f.value().attr("action"))
        .map(str::to_string)
        .expect("the dump page has a delete form");
    assert_eq!(delete_action, format!("/dumps/{id}/delete"));
    // Not a dump: the portal again with the reader's reason, 422.
    let (ct, body) = multipart(&[("csrf", &meta)], b"this is not a crash dump at all");
    let r = svc.request(
        "POST",
        &action,
        &[("Cookie", &cookie), ("Content-Type", &ct)],
        Some(&body),
    );
    assert_eq!(r.status, 422);
    assert_eq!(r.html().select(&sel("#upload-error")).count(), 1);

    // Delete from the page: the token and the confirmation box are both required.
    let form_post = |body: String| {
        svc.request(
            "POST",
            &delete_action,
            &[
                ("Cookie", &cookie),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            Some(body.as_bytes()),
        )
    };
    assert_eq!(form_post("confirm=yes".into()).status, 403);
    assert_eq!(form_post(format!("csrf={meta}")).status, 400);
    let r = form_post(format!("csrf={meta}&confirm=yes"));
    assert_eq!((r.status, r.location.as_deref()), (303, Some("/dumps")));
    assert_eq!(
        svc.request("GET", &location, &[("Cookie", &cookie)], None)
            .status,
        404
    );
    assert_eq!(svc.get(&format!("/api/v1/dumps/{id}"), &token).status, 404);

    // Sign out: the cookie stops working.
    let r = svc.request(
        "POST",
        "/logout",
        &[
            ("Cookie", &cookie),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        Some(format!("csrf={logout_csrf}").as_bytes()),
    );
    assert_eq!(r.status, 303);
    let r = svc.request("GET", "/dumps", &[("Cookie", &cookie)], None);
    assert_eq!(r.status, 303);
    assert!(r.location.unwrap().starts_with("/login?next="));
}
