//! The corpus symbol store served over loopback by a plain static file server (Python's
//! http.server), the same files laid out by the `symstore` tool, `.pd_` from gcab and a
//! `file.ptr` with a URL, all over HTTP; then the cache reused with the server gone.

mod symstore_support;

use std::fs;
use std::path::Path;
use std::process::Command;
use symstore::{FetchError, SymbolPath, SymbolStore};
use symstore_support::*;

fn store(path: &str, cache: &Path) -> SymbolStore {
    SymbolStore::new(SymbolPath::parse(path).unwrap(), fast_config(cache))
}

#[test]
fn corpus_store_over_http_then_offline_from_the_cache() {
    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("cache");
    let mut server = StaticServer::start(&corpus_store());
    let path = format!("srv*{}*{}", cache.display(), server.url());
    let s = store(&path, &cache);

    // PE by TimeDateStamp and SizeOfImage. The corpus directory is lower case
    // ("c9c030003b000"): on a case-sensitive static server only the lower-case variant exists.
    let sys = s.fetch(&amdppm_sys()).unwrap();
    assert_eq!(fs::read(&sys.path).unwrap(), corpus_sys_bytes());
    assert_eq!(sys.path, cache.join("amdppm.sys/C9C030003b000/amdppm.sys"));
    assert_eq!(sys.source, server.url());
    assert_eq!(
        sys.origin,
        format!("{}/amdppm.sys/c9c030003b000/amdppm.sys", server.url())
    );

    // PDB by GUID and age: Microsoft's spelling is the corpus's.
    let pdb = s.fetch(&amdppm_pdb()).unwrap();
    assert_eq!(fs::read(&pdb.path).unwrap(), corpus_pdb_bytes());
    assert_eq!(
        pdb.origin,
        format!(
            "{}/amdppm.pdb/1C19FDDB27BB3399D9B45973EFEAFCF31/amdppm.pdb",
            server.url()
        )
    );

    // A second fetch in the same process is a cache hit.
    assert_eq!(
        s.fetch(&amdppm_pdb()).unwrap().source,
        cache.display().to_string()
    );

    // Server gone: a new process (new store) still gets both from the cache.
    server.stop();
    let offline = store(&path, &cache);
    for (key, bytes) in [
        (amdppm_sys(), corpus_sys_bytes()),
        (amdppm_pdb(), corpus_pdb_bytes()),
    ] {
        let f = offline.fetch(&key).unwrap();
        assert_eq!(f.source, cache.display().to_string(), "{f:?}");
        assert_eq!(fs::read(&f.path).unwrap(), bytes);
    }
    // And something not cached fails as a download failure (connection refused), not a hang.
    let e = offline
        .fetch(&symstore::SymbolKey::pe("other.sys", 1, 0x1000))
        .unwrap_err();
    assert_eq!(e.status(), "download failed", "{e}");
}

#[test]
fn symstore_tool_layout_and_gcab_and_file_ptr_over_http() {
    let work = tempfile::tempdir().unwrap();
    let (files, root) = (work.path().join("in"), work.path().join("www"));
    fs::create_dir_all(&files).unwrap();
    fs::write(files.join("amdppm.sys"), corpus_sys_bytes()).unwrap();
    fs::write(files.join("amdppm.pdb"), corpus_pdb_bytes()).unwrap();

    // 1. Laid out by the symstore tool (it wants the parent directory to exist).
    fs::create_dir_all(&root).unwrap();
    let by_tool = root.join("tool");
    run(Command::new(symstore_tool())
        .arg(&by_tool)
        .arg(files.join("amdppm.sys"))
        .arg(files.join("amdppm.pdb")));
    // 2. Compressed with gcab (as Microsoft's server stores many files).
    let cabbed = root.join("cab");
    let kd = cabbed.join("amdppm.pdb/1C19FDDB27BB3399D9B45973EFEAFCF31");
    fs::create_dir_all(&kd).unwrap();
    gcab_compress(&files.join("amdppm.pdb"), &kd.join("amdppm.pd_"));
    let kd = cabbed.join("amdppm.sys/C9C030003b000");
    fs::create_dir_all(&kd).unwrap();
    gcab_compress(&files.join("amdppm.sys"), &kd.join("amdppm.sy_"));
    // 3. A file.ptr pointing to a URL on the same server.
    let pointed = root.join("ptr");
    let kd = pointed.join("amdppm.pdb/1C19FDDB27BB3399D9B45973EFEAFCF31");
    fs::create_dir_all(&kd).unwrap();
    fs::create_dir_all(root.join("blobs")).unwrap();
    fs::write(root.join("blobs/amdppm-pdb.bin"), corpus_pdb_bytes()).unwrap();

    let server = StaticServer::start(&root);
    fs::write(
        kd.join("file.ptr"),
        format!("PATH:{}/blobs/amdppm-pdb.bin", server.url()),
    )
    .unwrap();
    // 4. A file.ptr served over HTTP that points at a local file: refused.
    let evil = root.join("evil");
    let kd = evil.join("amdppm.pdb/1C19FDDB27BB3399D9B45973EFEAFCF31");
    fs::create_dir_all(&kd).unwrap();
    fs::write(
        kd.join("file.ptr"),
        format!("PATH:{}", files.join("amdppm.pdb").display()),
    )
    .unwrap();

    for sub in ["tool", "cab", "ptr"] {
        let cache = work.path().join(format!("cache-{sub}"));
        let s = store(
            &format!("srv*{}*{}/{sub}", cache.display(), server.url()),
            &cache,
        );
        let f = s
            .fetch(&amdppm_pdb())
            .unwrap_or_else(|e| panic!("{sub}: {e}"));
        assert!(f.path.starts_with(&cache), "{sub}: {f:?}");
        assert_eq!(fs::read(&f.path).unwrap(), corpus_pdb_bytes(), "{sub}");
        if sub != "ptr" {
            let f = s
                .fetch(&amdppm_sys())
                .unwrap_or_else(|e| panic!("{sub}: {e}"));
            assert_eq!(fs::read(&f.path).unwrap(), corpus_sys_bytes(), "{sub}");
            if sub == "cab" {
                assert!(f.origin.ends_with("amdppm.sy_"), "{f:?}");
            }
        }
    }
    let cache = work.path().join("cache-evil");
    let e = store(
        &format!("srv*{}*{}/evil", cache.display(), server.url()),
        &cache,
    )
    .fetch(&amdppm_pdb())
    .unwrap_err();
    assert!(
        matches!(e, FetchError::Malformed { .. }) && e.to_string().contains("refused"),
        "{e}"
    );
}
