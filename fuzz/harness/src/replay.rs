//! Every committed input through its target: `fuzz/seeds/<target>/*` (valid samples) and
//! `fuzz/regressions/<target>/*` (inputs that once crashed, hung or ran out of memory). Each must
//! return, within a time that shows it did not hang.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Far more than any input takes in a debug build; a regression that hangs again exceeds it.
const PER_INPUT: Duration = Duration::from_secs(20);

fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(kind)
        .join(target);
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.retain(|p| p.is_file());
    v.sort();
    v
}

fn replay(target: &str) {
    let (_, f) = crate::TARGETS
        .iter()
        .find(|(n, _)| *n == target)
        .expect("a target of that name");
    let seeds = inputs("seeds", target);
    assert!(!seeds.is_empty(), "fuzz/seeds/{target}/ has no seed");
    for p in seeds.iter().chain(inputs("regressions", target).iter()) {
        let data = std::fs::read(p).unwrap();
        let t = Instant::now();
        f(&data);
        assert!(
            t.elapsed() < PER_INPUT,
            "{} took {:?}",
            p.display(),
            t.elapsed()
        );
    }
}

macro_rules! replay_tests {
    ($($name:ident),* $(,)?) => {
        $(#[test]
        fn $name() {
            replay(stringify!($name));
        })*

        /// Every target has its replay test above.
        #[test]
        fn every_target_is_replayed() {
            let listed = [$(stringify!($name)),*];
            for (n, _) in crate::TARGETS {
                assert!(listed.contains(n), "{n} has no replay test");
            }
        }
    };
}

replay_tests!(
    header,
    triage,
    bitmap,
    pe_memory,
    pe_file,
    pdb,
    isf,
    pool_page,
    big_pages,
    segheap,
    session,
    code_scan,
    cab,
    file_ptr,
    pooltag,
    upload,
    tag_log,
    counter_log,
    crash,
    kernel,
    frame_data,
);
