use super::*;
use std::io::Cursor;

const PDB_REL: &str = "amdppm.pdb/1C19FDDB27BB3399D9B45973EFEAFCF31/amdppm.pdb";
const SYS_REL: &str = "amdppm.sys/c9c030003b000/amdppm.sys";

fn limits() -> IngestLimits {
    IngestLimits {
        max_file_bytes: 64 << 20,
        max_files: 100,
        max_total_bytes: 256 << 20,
        max_ratio: 100,
        ratio_floor_bytes: 1 << 20,
    }
}

fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in entries {
        w.start_file(*name, opts).unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

fn corpus(rel: &str) -> Vec<u8> {
    std::fs::read(analyzer::test_corpus::corpus("symstore").join(rel)).unwrap()
}

#[test]
fn a_zipped_symstore_tree_gives_its_files_keyed_by_content() {
    let dir = tempfile::tempdir().unwrap();
    let up = dir.path().join("up");
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    // The key directory names lie: the keys come from the files.
    let z = zip_of(&[
        ("store/pingme.txt", b""),
        ("store/000Admin/history.txt", b"x"),
        ("store/amdppm.pdb/WRONGKEY/amdppm.pdb", &corpus(PDB_REL)),
        ("store/amdppm.sys/0/amdppm.sys", &corpus(SYS_REL)),
        ("store/readme.txt", b"hello"),
    ]);
    std::fs::write(&up, z).unwrap();
    let got = unpack(&up, None, &out, &limits()).unwrap();
    let st: Vec<_> = got.files.iter().map(|f| f.status).collect();
    use EntryStatus::*;
    assert_eq!(st, [Skipped, Skipped, Ok, Ok, Refused]);
    let pdb = got.files[2].identity.as_ref().unwrap();
    assert_eq!(
        (pdb.kind.as_str(), pdb.key.as_str()),
        ("pdb", "1C19FDDB27BB3399D9B45973EFEAFCF31")
    );
    let sys = got.files[3].identity.as_ref().unwrap();
    assert_eq!(sys.key.to_ascii_lowercase(), "c9c030003b000");
    let f = out.join(got.files[2].file.as_ref().unwrap());
    assert_eq!(std::fs::read(f).unwrap(), corpus(PDB_REL));
    assert!(got.files[4]
        .error
        .as_ref()
        .unwrap()
        .contains("neither a PDB nor a PE"));
    // Only the accepted files are left in the output directory.
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 2);
}

#[test]
fn a_single_file_needs_its_name_and_limits_hold() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let up = dir.path().join("up");
    std::fs::write(&up, corpus(PDB_REL)).unwrap();
    assert!(matches!(
        unpack(&up, None, &out, &limits()),
        Err(UnpackError::NoName)
    ));
    let got = unpack(&up, Some("amdppm.pdb"), &out, &limits()).unwrap();
    assert_eq!(got.files[0].status, EntryStatus::Ok);
    let small = IngestLimits {
        max_file_bytes: 1000,
        ..limits()
    };
    let got = unpack(&up, Some("amdppm.pdb"), &out, &small).unwrap();
    assert_eq!(got.files[0].status, EntryStatus::Refused);
    // A zip bomb: 64 MiB of zeros in a few KiB.
    let zeros = vec![0u8; 64 << 20];
    std::fs::write(&up, zip_of(&[("big.pdb", &zeros)])).unwrap();
    let got = unpack(&up, None, &out, &limits()).unwrap();
    let e = got.files[0].error.as_deref().unwrap();
    assert!(e.contains("compression bomb"), "{e}");
    // Too many files.
    let few = IngestLimits {
        max_files: 1,
        ..limits()
    };
    let pdb = corpus(PDB_REL);
    std::fs::write(&up, zip_of(&[("a.pdb", &pdb), ("b.pdb", &pdb)])).unwrap();
    let got = unpack(&up, None, &out, &few).unwrap();
    assert_eq!(got.files[1].status, EntryStatus::Refused);
    std::fs::write(&up, b"PK\x03\x04 broken").unwrap();
    assert!(matches!(
        unpack(&up, None, &out, &limits()),
        Err(UnpackError::BadArchive(_))
    ));
}
