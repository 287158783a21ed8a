//! Dumps inside a trend: a dump whose tag tables could not be read (no symbols, a triage dump)
//! adds its pool figures only; its missing tags must not count as zero bytes in the tag fits.
//! The poolmon fixture's figures are known from how it was built (tests/fixtures/trend/README.md):
//! 'Leak' grows by exactly 1 MiB/h over six snapshots.

use analyzer::report::analysis::PoolName;
use analyzer::trend::dumps::{DumpIdentity, DumpPool, DumpSnapshot};
use analyzer::trend::input::{Source, SourceData};
use analyzer::trend::{analyze, tagtable, TrendOptions};
use std::collections::BTreeMap;
use std::io::Cursor;

const MIB: f64 = 1_048_576.0;
/// 2021-03-10T14:21:09Z, between the fixture's first two snapshots (13:51 and 14:51, read as
/// UTC: the test gives the offset 0).
const DUMP_MS: i64 = 1_615_334_400_000 + (14 * 3600 + 21 * 60 + 9) * 1000;

fn poolmon() -> Source {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/trend/poolmon_n_g.log"
    );
    let bytes = std::fs::read(path).expect("fixture");
    Source {
        name: "poolmon.log".into(),
        data: SourceData::Tags(tagtable::parse(Cursor::new(bytes)).expect("fixture reads")),
    }
}

fn dump_without_tags() -> Source {
    Source {
        name: "nosyms.dmp".into(),
        data: SourceData::Dump(Box::new(DumpSnapshot {
            time_ms: DUMP_MS,
            identity: DumpIdentity {
                build: 19041,
                arch: "x64".into(),
                kernel: None,
                kernel_base: None,
                boot_time_ms: None,
                modules: Vec::new(),
            },
            tags_read: false,
            rows: Vec::new(),
            pools: vec![DumpPool {
                pool: PoolName::Paged,
                in_use: 300 << 20,
                max: None,
            }],
            tag_drivers: BTreeMap::new(),
            verdict: ("no-leak-found".into(), "Nothing stands out.".into()),
        })),
    }
}

#[test]
fn a_dump_without_tag_tables_leaves_the_tag_fits_alone() {
    let opts = TrendOptions {
        generator: "test".into(),
        utc_offset_minutes: Some(0),
    };
    let r = analyze(&[poolmon(), dump_without_tags()], &opts).expect("one machine");
    let leak = r
        .tags
        .iter()
        .find(|t| t.tag == "Leak")
        .expect("Leak listed");
    assert_eq!(leak.bytes.points, 6, "{:?}", leak.bytes);
    assert!(
        (leak.bytes.slope_per_hour - MIB).abs() < 1e-6,
        "{:?}",
        leak.bytes
    );
    assert!(leak.judgement.growing());
    // The dump's pool figure is used, on its own series.
    let dumps = r
        .pools
        .iter()
        .find(|p| p.source == "dumps" && p.pool == PoolName::Paged)
        .expect("the dump's paged pool");
    assert_eq!(dumps.bytes.points, 1);
    assert!(
        r.warnings
            .iter()
            .any(|w| w.starts_with("nosyms.dmp: its tag tables could not be read")),
        "{:?}",
        r.warnings
    );
}
