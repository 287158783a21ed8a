//! Local stores: the real corpus store (Microsoft's layout, lower-case key directory) read
//! case-insensitively, the same files laid out by the independent `symstore` tool (PyPI), a
//! two-tier store, a flat directory, `.pd_` files made by Debian's gcab, `file.ptr` in every
//! form, and names from a hostile dump. Expected bytes are the corpus files themselves.

mod symstore_support;

use std::fs;
use std::path::Path;
use std::process::Command;
use symstore::{FetchError, StoreConfig, SymbolKey, SymbolPath, SymbolStore};
use symstore_support::*;

fn store(path: &str, cache: &Path) -> SymbolStore {
    SymbolStore::new(SymbolPath::parse(path).unwrap(), fast_config(cache))
}

fn link(src: &Path, dst: &Path) {
    fs::create_dir_all(dst.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(src, dst).unwrap();
}

#[test]
fn corpus_store_as_a_local_directory() {
    let cache = tempfile::tempdir().unwrap();
    let corpus = corpus_store();
    let s = store(corpus.to_str().unwrap(), cache.path());
    // The corpus key directory is "c9c030003b000": Microsoft's "C9C030003b000" matched ignoring case.
    let sys = s.fetch(&amdppm_sys()).unwrap();
    assert_eq!(fs::read(&sys.path).unwrap(), corpus_sys_bytes());
    assert!(
        sys.path.starts_with(&corpus),
        "a plain local hit is used in place: {sys:?}"
    );
    assert_eq!(sys.source, corpus.display().to_string());
    let pdb = s.fetch(&amdppm_pdb()).unwrap();
    assert_eq!(fs::read(&pdb.path).unwrap(), corpus_pdb_bytes());
    // Upper-case names match too.
    let upper = s
        .fetch(&SymbolKey::pe("AMDPPM.SYS", 0xC9C0_3000, 0x3B000))
        .unwrap();
    assert_eq!(upper.path, sys.path);
    // Nothing was written to the cache.
    assert_eq!(
        fs::read_dir(cache.path()).map(|d| d.count()).unwrap_or(0),
        0
    );
    // A key the store does not have.
    match s.fetch(&SymbolKey::pe("amdppm.sys", 0xC9C0_3000, 0x3C000)) {
        Err(FetchError::NotFound { tried }) => {
            assert_eq!(tried, vec![corpus.display().to_string()])
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn layout_written_by_the_symstore_tool() {
    let work = tempfile::tempdir().unwrap();
    let (files, st) = (work.path().join("in"), work.path().join("store"));
    fs::create_dir_all(&files).unwrap();
    fs::write(files.join("amdppm.sys"), corpus_sys_bytes()).unwrap();
    fs::write(files.join("amdppm.pdb"), corpus_pdb_bytes()).unwrap();
    run(Command::new(symstore_tool())
        .arg(&st)
        .arg(files.join("amdppm.sys"))
        .arg(files.join("amdppm.pdb")));
    let s = store(&format!("srv*{}", st.display()), work.path());
    for (key, bytes) in [
        (amdppm_sys(), corpus_sys_bytes()),
        (amdppm_pdb(), corpus_pdb_bytes()),
    ] {
        let f = s.fetch(&key).unwrap();
        assert!(f.path.starts_with(&st), "{f:?}");
        assert_eq!(fs::read(&f.path).unwrap(), bytes);
    }
}

#[test]
fn two_tier_store_with_index2() {
    let work = tempfile::tempdir().unwrap();
    let st = work.path().join("store");
    fs::create_dir_all(&st).unwrap();
    fs::write(st.join("index2.txt"), "").unwrap();
    link(
        &corpus_store().join("amdppm.pdb/1C19FDDB27BB3399D9B45973EFEAFCF31/amdppm.pdb"),
        &st.join("am/amdppm.pdb/1C19FDDB27BB3399D9B45973EFEAFCF31/amdppm.pdb"),
    );
    let f = store(st.to_str().unwrap(), work.path())
        .fetch(&amdppm_pdb())
        .unwrap();
    assert_eq!(fs::read(&f.path).unwrap(), corpus_pdb_bytes());
    // Without index2.txt the same tree is not a two-tier store.
    fs::remove_file(st.join("index2.txt")).unwrap();
    assert!(matches!(
        store(st.to_str().unwrap(), work.path()).fetch(&amdppm_pdb()),
        Err(FetchError::NotFound { .. })
    ));
}

#[test]
fn flat_directory_checks_the_identity() {
    let work = tempfile::tempdir().unwrap();
    let flat = work.path().join("flat");
    fs::create_dir_all(&flat).unwrap();
    fs::write(flat.join("amdppm.sys"), corpus_sys_bytes()).unwrap();
    fs::write(flat.join("AMDPPM.PDB"), corpus_pdb_bytes()).unwrap();
    let s = store(flat.to_str().unwrap(), &work.path().join("cache"));
    assert_eq!(
        s.fetch(&amdppm_sys()).unwrap().path,
        flat.join("amdppm.sys")
    );
    assert_eq!(
        s.fetch(&amdppm_pdb()).unwrap().path,
        flat.join("AMDPPM.PDB")
    );
    // Same names, other builds: not these files.
    for other in [
        SymbolKey::pe("amdppm.sys", 0xC9C0_3001, 0x3B000),
        SymbolKey::pe("amdppm.sys", 0xC9C0_3000, 0x3A000),
        SymbolKey::pdb("amdppm.pdb", "1C19FDDB-27BB-3399-D9B4-5973EFEAFCF3", 2),
        SymbolKey::pdb("amdppm.pdb", "2C19FDDB-27BB-3399-D9B4-5973EFEAFCF3", 1),
    ] {
        assert!(
            matches!(s.fetch(&other), Err(FetchError::NotFound { .. })),
            "{other}"
        );
    }
}

#[test]
fn compressed_files_made_by_gcab_are_decompressed_into_the_cache() {
    let work = tempfile::tempdir().unwrap();
    let (st, cache) = (work.path().join("store"), work.path().join("cache"));
    let src = work.path().join("amdppm.pdb");
    fs::write(&src, corpus_pdb_bytes()).unwrap();
    let key_dir = st.join("amdppm.pdb/1C19FDDB27BB3399D9B45973EFEAFCF31");
    fs::create_dir_all(&key_dir).unwrap();
    gcab_compress(&src, &key_dir.join("amdppm.pd_"));
    let before: Vec<_> = fs::read_dir(&key_dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();

    let s = store(
        &format!("cache*{};{}", cache.display(), st.display()),
        &cache,
    );
    let f = s.fetch(&amdppm_pdb()).unwrap();
    assert_eq!(
        f.path,
        cache.join("amdppm.pdb/1C19FDDB27BB3399D9B45973EFEAFCF31/amdppm.pdb")
    );
    assert_eq!(fs::read(&f.path).unwrap(), corpus_pdb_bytes());
    assert!(f.origin.ends_with("amdppm.pd_"), "{f:?}");
    let after: Vec<_> = fs::read_dir(&key_dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(before, after, "nothing is written next to the source");

    // The same through a srv* chain: decompressed into the downstream store.
    let down = work.path().join("down");
    let chained = store(&format!("srv*{}*{}", down.display(), st.display()), &cache);
    assert!(chained
        .fetch(&amdppm_pdb())
        .unwrap()
        .path
        .starts_with(&down));

    // A damaged cabinet is "malformed", never a panic or a half-written file.
    let bad_dir = work
        .path()
        .join("bad/amdppm.pdb/1C19FDDB27BB3399D9B45973EFEAFCF31");
    fs::create_dir_all(&bad_dir).unwrap();
    let mut cab = fs::read(key_dir.join("amdppm.pd_")).unwrap();
    cab.truncate(cab.len() / 2);
    fs::write(bad_dir.join("amdppm.pd_"), &cab).unwrap();
    let cache2 = work.path().join("cache2");
    let err = store(work.path().join("bad").to_str().unwrap(), &cache2)
        .fetch(&amdppm_pdb())
        .unwrap_err();
    assert_eq!(err.status(), "malformed", "{err}");
    assert!(!cache2
        .join("amdppm.pdb/1C19FDDB27BB3399D9B45973EFEAFCF31/amdppm.pdb")
        .exists());
}

#[test]
fn compressed_content_over_the_size_limit_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let st = work.path().join("store");
    let src = work.path().join("amdppm.pdb");
    fs::write(&src, corpus_pdb_bytes()).unwrap();
    let key_dir = st.join("amdppm.pdb/1C19FDDB27BB3399D9B45973EFEAFCF31");
    fs::create_dir_all(&key_dir).unwrap();
    gcab_compress(&src, &key_dir.join("amdppm.pd_"));
    let cfg = StoreConfig {
        max_download_bytes: 100_000,
        ..fast_config(&work.path().join("cache"))
    };
    let s = SymbolStore::new(SymbolPath::parse(st.to_str().unwrap()).unwrap(), cfg);
    assert_eq!(s.fetch(&amdppm_pdb()).unwrap_err().status(), "too large");
}

#[test]
fn file_ptr_in_every_form() {
    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("cache");
    let target = corpus_store().join("amdppm.pdb/1C19FDDB27BB3399D9B45973EFEAFCF31/amdppm.pdb");
    let shared = work.path().join("share");
    fs::create_dir_all(&shared).unwrap();
    fs::copy(&target, shared.join("amdppm.pdb")).unwrap();
    let forms = [
        format!("PATH:{}", target.display()), // as symstore.exe writes it
        format!("{}\r\n", target.display()),  // a plain path
        "../../../share/amdppm.pdb".to_string(), // relative to the file.ptr
    ];
    for (i, content) in forms.iter().enumerate() {
        let st = work.path().join(format!("store{i}"));
        let key_dir = st.join("amdppm.pdb/1C19FDDB27BB3399D9B45973EFEAFCF31");
        fs::create_dir_all(&key_dir).unwrap();
        fs::write(key_dir.join("file.ptr"), content).unwrap();
        let f = store(st.to_str().unwrap(), &cache)
            .fetch(&amdppm_pdb())
            .unwrap_or_else(|e| panic!("{content}: {e}"));
        assert_eq!(fs::read(&f.path).unwrap(), corpus_pdb_bytes(), "{content}");
    }
    // A pointer to a cabinet is decompressed into the cache.
    let cabbed = work.path().join("cabbed.pd_");
    gcab_compress(&shared.join("amdppm.pdb"), &cabbed);
    let st = work.path().join("store-cab");
    let key_dir = st.join("amdppm.pdb/1C19FDDB27BB3399D9B45973EFEAFCF31");
    fs::create_dir_all(&key_dir).unwrap();
    fs::write(
        key_dir.join("file.ptr"),
        format!("PATH:{}", cabbed.display()),
    )
    .unwrap();
    let f = store(st.to_str().unwrap(), &cache)
        .fetch(&amdppm_pdb())
        .unwrap();
    assert!(f.path.starts_with(&cache));
    assert_eq!(fs::read(&f.path).unwrap(), corpus_pdb_bytes());
    // A pointer to a pointer is followed once: the second file.ptr is not a PDB. (A fresh
    // cache: the one above already holds this key and would answer first.)
    let cache = work.path().join("cache-loop");
    let st2 = work.path().join("store-loop");
    let kd2 = st2.join("amdppm.pdb/1C19FDDB27BB3399D9B45973EFEAFCF31");
    fs::create_dir_all(&kd2).unwrap();
    fs::write(
        kd2.join("file.ptr"),
        format!("PATH:{}", kd2.join("file.ptr").display()),
    )
    .unwrap();
    assert_eq!(
        store(st2.to_str().unwrap(), &cache)
            .fetch(&amdppm_pdb())
            .unwrap_err()
            .status(),
        "malformed"
    );
    // symstore's marker for a deleted entry.
    fs::write(
        kd2.join("file.ptr"),
        "MSG: deleted by transaction 0000000042",
    )
    .unwrap();
    let e = store(st2.to_str().unwrap(), &cache)
        .fetch(&amdppm_pdb())
        .unwrap_err();
    assert!(e.to_string().contains("deleted"), "{e}");
}

#[test]
fn wrong_content_is_malformed_not_found() {
    let work = tempfile::tempdir().unwrap();
    let st = work.path().join("store");
    let kd = st.join("amdppm.pdb/1C19FDDB27BB3399D9B45973EFEAFCF31");
    fs::create_dir_all(&kd).unwrap();
    fs::write(kd.join("amdppm.pdb"), "<html>captive portal</html>").unwrap();
    let e = store(st.to_str().unwrap(), work.path())
        .fetch(&amdppm_pdb())
        .unwrap_err();
    assert_eq!(e.status(), "malformed", "{e}");
}

#[test]
fn hostile_names_from_a_dump_touch_nothing() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("root");
    let cache = root.join("cache");
    let st = root.join("store");
    fs::create_dir_all(&st).unwrap();
    // A file the hostile names aim at, outside the store.
    fs::write(root.join("secret.pdb"), "secret").unwrap();
    let s = store(
        &format!(
            "srv*{}*http://127.0.0.1:9;{}",
            cache.display(),
            st.display()
        ),
        &cache,
    );
    for name in [
        "../secret.pdb",
        "..\\secret.pdb",
        "..",
        "C:secret.pdb",
        "sec\0ret.pdb",
        "a\nb.pdb",
        &"x".repeat(4000),
    ] {
        for key in [
            SymbolKey::pdb(name, "1C19FDDB27BB3399D9B45973EFEAFCF3", 1),
            SymbolKey::pe(name, 1, 2),
        ] {
            match s.fetch(&key) {
                Err(FetchError::HostileName { .. }) => {}
                other => panic!("{name:?}: {other:?}"),
            }
        }
    }
    assert!(!cache.exists(), "no cache directory was even created");
}

#[test]
fn a_chain_copies_what_it_finds_upstream_into_the_downstream_store() {
    let work = tempfile::tempdir().unwrap();
    let (down, mid) = (work.path().join("down"), work.path().join("mid"));
    let corpus = corpus_store();
    let path = format!(
        "srv*{}*{}*{}",
        down.display(),
        mid.display(),
        corpus.display()
    );
    let f = store(&path, work.path()).fetch(&amdppm_pdb()).unwrap();
    assert_eq!(f.source, corpus.display().to_string());
    assert_eq!(
        f.path,
        down.join("amdppm.pdb/1C19FDDB27BB3399D9B45973EFEAFCF31/amdppm.pdb")
    );
    assert_eq!(fs::read(&f.path).unwrap(), corpus_pdb_bytes());
    assert_eq!(
        fs::read(mid.join("amdppm.pdb/1C19FDDB27BB3399D9B45973EFEAFCF31/amdppm.pdb")).unwrap(),
        corpus_pdb_bytes(),
        "the intermediate store gets a copy too"
    );
    // Next time the downstream store answers.
    let again = store(&path, work.path()).fetch(&amdppm_pdb()).unwrap();
    assert_eq!(
        (again.source, again.path),
        (down.display().to_string(), f.path)
    );
}
