//! HTTP done right, against a fault-injecting server on 127.0.0.1: timeouts, 500s, dropped
//! connections, lying Content-Length, the size limit, retries with backoff, the circuit
//! breaker, the negative cache across store instances, one download for concurrent requests,
//! atomic installs with two independent clients, and LRU eviction of the cache.

mod symstore_support;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use symstore::{FetchError, StoreConfig, SymbolKey, SymbolPath, SymbolStore};
use symstore_support::*;

const PDB_PATH: &str = "/amdppm.pdb/1C19FDDB27BB3399D9B45973EFEAFCF31/amdppm.pdb";

fn store_with(server: &FaultServer, cache: &Path, cfg: StoreConfig) -> SymbolStore {
    let path = SymbolPath::parse(&format!("srv*{}*{}", cache.display(), server.url())).unwrap();
    SymbolStore::new(path, cfg)
}

fn pdb_body(len: usize) -> Vec<u8> {
    let mut b = b"Microsoft C/C++ MSF 7.00\r\n\x1aDS\0\0\0".to_vec();
    b.resize(len, 0xAB);
    b
}

fn pe_body(len: usize, fill: u8) -> Vec<u8> {
    let mut b = b"MZ".to_vec();
    b.resize(len, fill);
    b
}

fn ok(body: Vec<u8>) -> Reply {
    Reply::Body {
        content_length: Some(body.len() as u64),
        body,
        delay: Duration::ZERO,
    }
}

fn no_temp_files(dir: &Path) -> bool {
    fn walk(d: &Path) -> bool {
        std::fs::read_dir(d).map_or(true, |rd| {
            rd.flatten().all(|e| {
                let p = e.path();
                if p.is_dir() {
                    walk(&p)
                } else {
                    !e.file_name().to_string_lossy().ends_with(".tmp")
                }
            })
        })
    }
    walk(dir)
}

#[test]
fn a_silent_server_times_out_with_bounded_retries() {
    let server = FaultServer::start(|_| Reply::Hang(Duration::from_secs(5)));
    let cache = tempfile::tempdir().unwrap();
    let cfg = StoreConfig {
        read_timeout: Duration::from_millis(300),
        max_retries: 1,
        ..fast_config(cache.path())
    };
    let t = Instant::now();
    let e = store_with(&server, cache.path(), cfg)
        .fetch(&amdppm_pdb())
        .unwrap_err();
    assert_eq!(e.status(), "timed out", "{e}");
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "took {:?}",
        t.elapsed()
    );
    assert_eq!(server.count(PDB_PATH), 2, "one attempt and one retry");
}

#[test]
fn total_timeout_bounds_a_slow_drip() {
    // Each read arrives in time, but the whole takes too long: the total timeout stops it.
    let server = FaultServer::start(|_| Reply::Body {
        body: pdb_body(100),
        content_length: Some(100),
        delay: Duration::from_millis(1500),
    });
    let cache = tempfile::tempdir().unwrap();
    let cfg = StoreConfig {
        read_timeout: Duration::from_secs(5),
        total_timeout: Duration::from_millis(700),
        ..fast_config(cache.path())
    };
    let t = Instant::now();
    let e = store_with(&server, cache.path(), cfg)
        .fetch(&amdppm_pdb())
        .unwrap_err();
    assert_eq!(e.status(), "timed out", "{e}");
    assert!(
        t.elapsed() < Duration::from_millis(1400),
        "took {:?}",
        t.elapsed()
    );
}

#[test]
fn server_errors_are_retried_then_reported() {
    let server = FaultServer::start(|_| Reply::Status(500));
    let cache = tempfile::tempdir().unwrap();
    let e = store_with(&server, cache.path(), fast_config(cache.path()))
        .fetch(&amdppm_pdb())
        .unwrap_err();
    assert_eq!(e.status(), "download failed", "{e}");
    assert!(e.to_string().contains("HTTP 500"), "{e}");
    assert_eq!(server.count(PDB_PATH), 3, "1 + max_retries attempts");
    assert_eq!(
        server.total(),
        3,
        "a failing server is not asked for the other spellings"
    );
    assert!(no_temp_files(cache.path()));
}

#[test]
fn retries_recover_from_transient_errors() {
    let n = Arc::new(AtomicUsize::new(0));
    let n2 = Arc::clone(&n);
    let server = FaultServer::start(move |_| {
        if n2.fetch_add(1, Ordering::SeqCst) < 2 {
            Reply::Status(503)
        } else {
            ok(pdb_body(4096))
        }
    });
    let cache = tempfile::tempdir().unwrap();
    let f = store_with(&server, cache.path(), fast_config(cache.path()))
        .fetch(&amdppm_pdb())
        .unwrap();
    assert_eq!(std::fs::read(&f.path).unwrap(), pdb_body(4096));
    assert_eq!(server.count(PDB_PATH), 3);
}

#[test]
fn not_found_is_never_retried() {
    let server = FaultServer::start(|_| Reply::Status(404));
    let cache = tempfile::tempdir().unwrap();
    let e = store_with(&server, cache.path(), fast_config(cache.path()))
        .fetch(&amdppm_pdb())
        .unwrap_err();
    assert!(matches!(e, FetchError::NotFound { .. }), "{e}");
    // Plain, .pd_ and file.ptr, each as Microsoft spells the key and in lower case: once each.
    for p in [
        PDB_PATH,
        "/amdppm.pdb/1C19FDDB27BB3399D9B45973EFEAFCF31/amdppm.pd_",
        "/amdppm.pdb/1C19FDDB27BB3399D9B45973EFEAFCF31/file.ptr",
        "/amdppm.pdb/1c19fddb27bb3399d9b45973efeafcf31/amdppm.pdb",
        "/amdppm.pdb/1c19fddb27bb3399d9b45973efeafcf31/amdppm.pd_",
        "/amdppm.pdb/1c19fddb27bb3399d9b45973efeafcf31/file.ptr",
    ] {
        assert_eq!(server.count(p), 1, "{p}");
    }
    assert_eq!(server.total(), 6);
    // A miss leaves no empty name/KEY directories in the cache.
    assert!(!cache.path().join("amdppm.pdb").exists());
    assert!(no_temp_files(cache.path()));
}

#[test]
fn dropped_connections_fail_after_retries() {
    let server = FaultServer::start(|_| Reply::Drop);
    let cache = tempfile::tempdir().unwrap();
    let e = store_with(&server, cache.path(), fast_config(cache.path()))
        .fetch(&amdppm_pdb())
        .unwrap_err();
    assert_eq!(e.status(), "download failed", "{e}");
    // ureq itself retries a request once on a connection closed before any response (it may
    // be a stale pooled connection), so the server sees 3 or 6 requests.
    assert!(
        matches!(server.count(PDB_PATH), 3 | 6),
        "{}",
        server.count(PDB_PATH)
    );
}

#[test]
fn a_body_shorter_than_its_content_length_is_rejected() {
    let server = FaultServer::start(|_| Reply::Truncated {
        content_length: 100_000,
        sent: 1000,
    });
    let cache = tempfile::tempdir().unwrap();
    let e = store_with(&server, cache.path(), fast_config(cache.path()))
        .fetch(&amdppm_sys())
        .unwrap_err();
    assert_eq!(e.status(), "download failed", "{e}");
    assert_eq!(server.count("/amdppm.sys/C9C030003b000/amdppm.sys"), 3);
    assert!(!cache
        .path()
        .join("amdppm.sys/C9C030003b000/amdppm.sys")
        .exists());
    assert!(no_temp_files(cache.path()));
}

#[test]
fn the_size_limit_holds_whatever_content_length_says() {
    let cache = tempfile::tempdir().unwrap();
    let cfg = || StoreConfig {
        max_download_bytes: 1 << 20,
        ..fast_config(cache.path())
    };
    // Announced too large: refused before reading, not retried.
    let big = FaultServer::start(|_| Reply::Body {
        body: pe_body(10, 0),
        content_length: Some(5 << 20),
        delay: Duration::ZERO,
    });
    let e = store_with(&big, cache.path(), cfg())
        .fetch(&amdppm_sys())
        .unwrap_err();
    assert_eq!(e.status(), "too large", "{e}");
    assert_eq!(big.total(), 1);
    // No Content-Length and an endless body: aborted once past the limit.
    let endless = FaultServer::start(|_| Reply::Endless(1 << 30));
    let t = Instant::now();
    let e = store_with(&endless, cache.path(), cfg())
        .fetch(&amdppm_sys())
        .unwrap_err();
    assert_eq!(e.status(), "too large", "{e}");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
    assert_eq!(endless.total(), 1);
    // Exactly at the limit is fine.
    let exact = FaultServer::start(|_| ok(pe_body(1 << 20, 1)));
    let f = store_with(&exact, cache.path(), cfg())
        .fetch(&amdppm_sys())
        .unwrap();
    assert_eq!(std::fs::metadata(&f.path).unwrap().len(), 1 << 20);
    assert!(no_temp_files(cache.path()));
}

#[test]
fn an_html_page_served_as_a_pdb_is_not_cached() {
    let server =
        FaultServer::start(|_| ok(b"<html><body>Sign in to the hotel wifi</body></html>".to_vec()));
    let cache = tempfile::tempdir().unwrap();
    let e = store_with(&server, cache.path(), fast_config(cache.path()))
        .fetch(&amdppm_pdb())
        .unwrap_err();
    assert_eq!(e.status(), "malformed", "{e}");
    assert!(!cache.path().join(&PDB_PATH[1..]).exists());
}

#[test]
fn the_circuit_breaker_skips_a_failing_host_then_probes_it_again() {
    let healthy = Arc::new(AtomicBool::new(false));
    let h = Arc::clone(&healthy);
    let server = FaultServer::start(move |_| {
        if h.load(Ordering::SeqCst) {
            ok(pe_body(64, 2))
        } else {
            Reply::Status(502)
        }
    });
    let cache = tempfile::tempdir().unwrap();
    let cfg = StoreConfig {
        max_retries: 0,
        breaker_threshold: 3,
        breaker_cooldown: Duration::from_millis(600),
        ..fast_config(cache.path())
    };
    let s = store_with(&server, cache.path(), cfg);
    for i in 0..3 {
        let e = s
            .fetch(&SymbolKey::pe(format!("d{i}.sys"), 1, 0x1000))
            .unwrap_err();
        assert!(e.to_string().contains("HTTP 502"), "{e}");
    }
    assert_eq!(server.total(), 3);
    // Tripped: the host is skipped without a request.
    let e = s.fetch(&SymbolKey::pe("d3.sys", 1, 0x1000)).unwrap_err();
    assert_eq!(e.status(), "download failed");
    assert!(e.to_string().contains("circuit breaker"), "{e}");
    assert_eq!(server.total(), 3);
    // After the cool-down one request probes the (now healthy) host, and it is used again.
    healthy.store(true, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(700));
    s.fetch(&SymbolKey::pe("d4.sys", 1, 0x1000)).unwrap();
    s.fetch(&SymbolKey::pe("d5.sys", 1, 0x1000)).unwrap();
    assert_eq!(server.total(), 5);
}

#[test]
fn the_negative_cache_is_shared_through_the_cache_dir_and_expires() {
    let server = FaultServer::start(|_| Reply::Status(404));
    let cache = tempfile::tempdir().unwrap();
    let key = SymbolKey::pe("thirdparty.sys", 0x5E00_0000, 0x2000);
    let first = store_with(&server, cache.path(), fast_config(cache.path()));
    assert!(matches!(
        first.fetch(&key),
        Err(FetchError::NotFound { .. })
    ));
    let asked = server.total();
    assert!(asked >= 3);
    // Another store on the same cache directory (as another process would be): no request.
    let second = store_with(&server, cache.path(), fast_config(cache.path()));
    match second.fetch(&key) {
        Err(FetchError::NotFound { tried }) => {
            assert!(tried.iter().any(|t| t.contains("remembered")), "{tried:?}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(server.total(), asked);
    // A TTL shorter than the record's age: asked again.
    std::thread::sleep(Duration::from_millis(1100));
    let third = store_with(
        &server,
        cache.path(),
        StoreConfig {
            negative_ttl: Duration::from_secs(1),
            ..fast_config(cache.path())
        },
    );
    assert!(matches!(
        third.fetch(&key),
        Err(FetchError::NotFound { .. })
    ));
    assert_eq!(server.total(), 2 * asked);
    // Failures are not remembered as misses.
    let failing = FaultServer::start(|_| Reply::Status(500));
    let s = store_with(
        &failing,
        cache.path(),
        StoreConfig {
            max_retries: 0,
            ..fast_config(cache.path())
        },
    );
    let _ = s.fetch(&key);
    let _ = s.fetch(&key);
    assert_eq!(failing.total(), 2);
}

#[test]
fn concurrent_requests_for_one_key_make_one_download() {
    let server = FaultServer::start(|p| {
        if p == PDB_PATH {
            Reply::Body {
                body: pdb_body(200_000),
                content_length: Some(200_000),
                delay: Duration::from_millis(300),
            }
        } else {
            Reply::Status(404)
        }
    });
    let cache = tempfile::tempdir().unwrap();
    let s = store_with(&server, cache.path(), fast_config(cache.path()));
    let results: Vec<_> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..8)
            .map(|_| sc.spawn(|| s.fetch(&amdppm_pdb())))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for r in &results {
        assert_eq!(r.as_ref().unwrap().path, cache.path().join(&PDB_PATH[1..]));
    }
    assert_eq!(server.count(PDB_PATH), 1, "eight callers, one download");

    // Two independent clients (as two processes would be) on one cache: both download, the
    // renames are atomic, the file is whole and no temp file is left.
    let cache2 = tempfile::tempdir().unwrap();
    let a = store_with(&server, cache2.path(), fast_config(cache2.path()));
    let b = store_with(&server, cache2.path(), fast_config(cache2.path()));
    std::thread::scope(|sc| {
        let ha = sc.spawn(|| a.fetch(&amdppm_pdb()));
        let hb = sc.spawn(|| b.fetch(&amdppm_pdb()));
        ha.join().unwrap().unwrap();
        hb.join().unwrap().unwrap();
    });
    assert_eq!(
        std::fs::read(cache2.path().join(&PDB_PATH[1..])).unwrap(),
        pdb_body(200_000)
    );
    assert!(no_temp_files(cache2.path()));
}

#[test]
fn the_cache_evicts_the_least_recently_used_file() {
    let server = FaultServer::start(|p| {
        let fill = p.as_bytes().get(1).copied().unwrap_or(0);
        if p.ends_with(".sys") && !p.contains("/file.ptr") {
            ok(pe_body(100_000, fill))
        } else {
            Reply::Status(404)
        }
    });
    let cache = tempfile::tempdir().unwrap();
    let cfg = StoreConfig {
        max_cache_bytes: Some(250_000),
        ..fast_config(cache.path())
    };
    let s = store_with(&server, cache.path(), cfg);
    let key = |n: &str| SymbolKey::pe(format!("{n}.sys"), 1, 0x1000);
    let nap = || std::thread::sleep(Duration::from_millis(30));
    let a = s.fetch(&key("a")).unwrap().path;
    nap();
    let b = s.fetch(&key("b")).unwrap().path;
    nap();
    // A hit on a: now b is the least recently used.
    assert_eq!(
        s.fetch(&key("a")).unwrap().source,
        cache.path().display().to_string()
    );
    nap();
    let c = s.fetch(&key("c")).unwrap().path;
    assert!(
        a.exists() && c.exists(),
        "a was used recently, c just arrived"
    );
    assert!(!b.exists(), "b was the least recently used");
    assert!(
        !b.parent().unwrap().exists(),
        "its empty key directory went too"
    );
    assert_eq!(
        server.count("/a.sys/000000011000/a.sys"),
        1,
        "the hit did not download again"
    );
}

#[test]
fn names_are_percent_encoded_in_urls() {
    let server = FaultServer::start(|_| Reply::Status(404));
    let cache = tempfile::tempdir().unwrap();
    let s = store_with(&server, cache.path(), fast_config(cache.path()));
    let _ = s.fetch(&SymbolKey::pe("win32k base%.sys", 0xAB, 0x1000));
    assert_eq!(
        server.count("/win32k%20base%25.sys/000000AB1000/win32k%20base%25.sys"),
        1
    );
    // A hostile name never reaches the server at all.
    let _ = s.fetch(&SymbolKey::pe("../../x.sys", 0xAB, 0x1000));
    let _ = s.fetch(&SymbolKey::pe("x.sys?a=b#c", 0xAB, 0x1000));
    assert_eq!(
        server.total(),
        6,
        "only the first key's six spellings were requested"
    );
}

#[test]
fn requests_go_through_the_configured_proxy() {
    // A forward proxy receives the absolute URL in the request line.
    let proxy = FaultServer::start(|_| ok(pdb_body(4096)));
    let cache = tempfile::tempdir().unwrap();
    let cfg = StoreConfig {
        proxy: Some(proxy.url()),
        ..fast_config(cache.path())
    };
    let path = SymbolPath::parse(&format!(
        "srv*{}*http://symbols.invalid/x",
        cache.path().display()
    ))
    .unwrap();
    let f = SymbolStore::new(path, cfg).fetch(&amdppm_pdb()).unwrap();
    assert_eq!(std::fs::read(&f.path).unwrap(), pdb_body(4096));
    assert_eq!(
        proxy.count(&format!("http://symbols.invalid/x{PDB_PATH}")),
        1
    );
    // A proxy setting that cannot be used fails every download, clearly.
    let cfg = StoreConfig {
        proxy: Some("ftp://nope".into()),
        ..fast_config(cache.path())
    };
    let path = SymbolPath::parse(&format!(
        "srv*{}*http://symbols.invalid/x",
        cache.path().display()
    ))
    .unwrap();
    let e = SymbolStore::new(path, cfg)
        .fetch(&amdppm_sys())
        .unwrap_err();
    assert!(e.to_string().contains("bad proxy"), "{e}");
}

#[test]
fn offline_skips_servers_and_fetch_many_keeps_order() {
    let server = FaultServer::start(|p| {
        if p.contains("/missing.sys/") {
            Reply::Status(404)
        } else {
            ok(pe_body(1000, p.as_bytes().get(1).copied().unwrap_or(0)))
        }
    });
    let cache = tempfile::tempdir().unwrap();
    let offline = store_with(
        &server,
        cache.path(),
        StoreConfig {
            offline: true,
            ..fast_config(cache.path())
        },
    );
    match offline.fetch(&amdppm_sys()) {
        Err(FetchError::NotFound { tried }) => {
            assert!(tried.iter().any(|t| t.ends_with("(offline)")), "{tried:?}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(server.total(), 0);

    let s = store_with(&server, cache.path(), fast_config(cache.path()));
    let keys: Vec<SymbolKey> = ["a", "missing", "b", "c"]
        .iter()
        .map(|n| SymbolKey::pe(format!("{n}.sys"), 1, 0x1000))
        .collect();
    let results = s.fetch_many(&keys, 3);
    assert_eq!(results.len(), 4);
    for (key, r) in keys.iter().zip(&results) {
        match (key.name(), r) {
            ("missing.sys", Err(FetchError::NotFound { .. })) => {}
            (name, Ok(f)) => {
                assert!(
                    f.path.ends_with(format!("{name}/000000011000/{name}")),
                    "{f:?}"
                );
                assert_eq!(std::fs::read(&f.path).unwrap()[2], name.as_bytes()[0]);
            }
            other => panic!("{other:?}"),
        }
    }
    // Now cached: the offline store finds them.
    assert!(offline.fetch(&keys[0]).is_ok());
}

#[test]
fn a_redirect_loop_or_odd_status_is_a_failure_not_a_file() {
    let cache = tempfile::tempdir().unwrap();
    let odd = FaultServer::start(|_| Reply::Status(304));
    let e = store_with(&odd, cache.path(), fast_config(cache.path()))
        .fetch(&amdppm_pdb())
        .unwrap_err();
    assert_eq!(e.status(), "download failed", "{e}");
    assert_eq!(odd.total(), 1, "not retried");
}

#[test]
fn redirects_are_followed() {
    let server = FaultServer::start(|p| {
        if p == PDB_PATH {
            Reply::Redirect("/blob/abc?sig=1".into())
        } else if p == "/blob/abc?sig=1" {
            ok(pdb_body(3000))
        } else {
            Reply::Status(404)
        }
    });
    let cache = tempfile::tempdir().unwrap();
    let f = store_with(&server, cache.path(), fast_config(cache.path()))
        .fetch(&amdppm_pdb())
        .unwrap();
    assert_eq!(std::fs::read(&f.path).unwrap(), pdb_body(3000));
    assert_eq!(
        (server.count(PDB_PATH), server.count("/blob/abc?sig=1")),
        (1, 1)
    );
}
