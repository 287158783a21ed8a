use super::*;
use std::io::Cursor;

const PS: u32 = 0x200;

/// An MSF 7.00 file with these streams laid out as linkers do: superblock, free page maps
/// (pages 1 and 2), streams, directory, block map last. Returns the bytes and the page of
/// the directory.
fn msf(streams: &[&[u8]]) -> (Vec<u8>, u32) {
    let ps = PS as usize;
    let mut pages: Vec<Vec<u8>> = vec![vec![0; ps]; 3];
    let mut dir = (streams.len() as u32).to_le_bytes().to_vec();
    for s in streams {
        dir.extend((s.len() as u32).to_le_bytes());
    }
    for s in streams {
        for chunk in s.chunks(ps) {
            dir.extend((pages.len() as u32).to_le_bytes());
            let mut p = chunk.to_vec();
            p.resize(ps, 0);
            pages.push(p);
        }
    }
    assert!(dir.len() <= ps, "test directory fits one page");
    let dir_page = pages.len() as u32;
    let mut d = dir.clone();
    d.resize(ps, 0);
    pages.push(d);
    let map_page = pages.len() as u32;
    let mut m = dir_page.to_le_bytes().to_vec();
    m.resize(ps, 0);
    pages.push(m);
    let mut head = MSF7_MAGIC.to_vec();
    head.extend(PS.to_le_bytes());
    head.extend(1u32.to_le_bytes());
    head.extend((pages.len() as u32).to_le_bytes());
    head.extend((dir.len() as u32).to_le_bytes());
    head.extend(0u32.to_le_bytes());
    head.extend(map_page.to_le_bytes());
    pages[0][..head.len()].copy_from_slice(&head);
    (pages.concat(), dir_page)
}

fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn run(b: &[u8]) -> Result<MsfSummary, MsfError> {
    check(&mut Cursor::new(b))
}

#[test]
fn a_well_formed_container_passes() {
    let big = vec![7u8; 1300];
    let (b, _) = msf(&[b"", b"abc", &big]);
    let s = run(&b).unwrap();
    assert_eq!((s.page_size, s.streams), (PS, 3));
    assert_eq!(s.pages as usize * PS as usize, b.len());
}

#[test]
fn nil_streams_have_no_pages() {
    let (mut b, dir_page) = msf(&[b"x", b""]);
    let dir = dir_page as usize * PS as usize;
    put32(&mut b, dir + 8, u32::MAX);
    assert_eq!(run(&b).unwrap().streams, 2);
}

#[test]
fn truncated_files_are_refused() {
    let (b, _) = msf(&[b"abc", &[1u8; 900]]);
    let cut = &b[..b.len() - PS as usize];
    assert!(matches!(run(cut), Err(MsfError::Truncated { .. })));
    assert_eq!(run(&b[..40]), Err(MsfError::NotMsf));
    assert_eq!(run(b""), Err(MsfError::NotMsf));
}

#[test]
fn huge_stream_counts_are_refused() {
    let (mut b, dir_page) = msf(&[b"abc"]);
    put32(&mut b, dir_page as usize * PS as usize, 0x4000_0000);
    assert!(matches!(
        run(&b),
        Err(MsfError::StreamCount {
            count: 0x4000_0000,
            ..
        })
    ));
    // A count that fits MAX_STREAMS but not the directory's bytes.
    put32(&mut b, dir_page as usize * PS as usize, 1000);
    assert!(matches!(run(&b), Err(MsfError::StreamCount { .. })));
}

#[test]
fn a_directory_that_loops_is_refused() {
    // Stream 0's page is the directory's own page.
    let (mut b, dir_page) = msf(&[b"abc"]);
    let dir = dir_page as usize * PS as usize;
    put32(&mut b, dir + 8, dir_page);
    assert_eq!(run(&b), Err(MsfError::PageReused(dir_page)));
    // The block map lists the block map page itself as the directory.
    let (mut b, _) = msf(&[b"abc"]);
    let map_page = le32(&b, 0x34);
    let map = map_page as usize * PS as usize;
    put32(&mut b, map, map_page);
    assert_eq!(run(&b), Err(MsfError::PageReused(map_page)));
}

#[test]
fn sizes_and_pages_outside_the_file_are_refused() {
    let (mut b, dir_page) = msf(&[b"abc"]);
    let dir = dir_page as usize * PS as usize;
    let mut grown = b.clone();
    put32(&mut grown, dir + 4, 0xF000_0000);
    assert!(matches!(run(&grown), Err(MsfError::StreamSize { .. })));
    put32(&mut b, dir + 8, 0x7fff);
    assert!(matches!(
        run(&b),
        Err(MsfError::PageOutOfRange { page: 0x7fff, .. })
    ));
    let (mut b, _) = msf(&[b"abc"]);
    put32(&mut b, 0x2c, 0x7fff_ffff);
    assert!(matches!(run(&b), Err(MsfError::DirectorySize(_))));
    let (mut b, _) = msf(&[b"abc"]);
    put32(&mut b, 0x20, 0x300);
    assert_eq!(run(&b), Err(MsfError::PageSize(0x300)));
}

#[test]
fn a_directory_too_short_for_its_page_lists_is_refused() {
    let (mut b, dir_page) = msf(&[b"abc"]);
    // The header's directory size stops before stream 0's page number.
    put32(&mut b, 0x2c, 8);
    let _ = dir_page;
    assert_eq!(run(&b), Err(MsfError::DirectoryShort(0)));
}

#[test]
fn the_old_container_is_named() {
    let mut b = MSF2_MAGIC.to_vec();
    b.resize(4096, 0);
    assert_eq!(run(&b), Err(MsfError::OldMsf));
}

/// Every real PDB of the corpus passes: the check refuses nothing a linker writes.
#[test]
fn corpus_pdbs_pass() {
    // `$POOLTRIAGE_CORPUS` (CI), else `shared/corpus` beside the repository.
    let corpus = std::env::var_os("POOLTRIAGE_CORPUS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpus").into())
        .join("")
        .to_string_lossy()
        .into_owned();
    for rel in [
        "pdb/ntkrnlpa.pdb",
        "symstore/amdppm.pdb/1C19FDDB27BB3399D9B45973EFEAFCF31/amdppm.pdb",
    ] {
        let mut f = std::fs::File::open(format!("{corpus}{rel}")).expect("corpus PDB");
        let s = check(&mut f).unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert!(s.streams > 3, "{rel}: {s:?}");
    }
}
