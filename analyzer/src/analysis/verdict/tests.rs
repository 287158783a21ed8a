//! The rule on hand-built reports: each test names the clause it checks.
use super::*;
use crate::attribution::Source;
use crate::report::hex::Hex;

fn report(
    tags: Vec<TagReport>,
    drivers: Vec<DriverReport>,
    pools: Vec<PoolGauge>,
) -> AnalysisReport {
    AnalysisReport {
        schema_version: 1,
        kind: "analysis".into(),
        generator: "test".into(),
        dump: AnalysisDump {
            format: "kernel-bitmap".into(),
            dump_type: 5,
            arch: "x64".into(),
            pae: false,
            build: 19041,
            processors: 2,
            system_time: None,
            file_size: 0,
            kernel_base: Some(Hex(0xfffff800_00000000)),
            boot_time: None,
            truncated: None,
        },
        bugcheck: AnalysisBugcheck {
            code: Hex(0xe2),
            name: Some("MANUALLY_INITIATED_CRASH".into()),
            params: [Hex(0); 4],
            pool_related: false,
            faulting: None,
            name_source: None,
            description: None,
            faulting_symbol: None,
            faulting_source: None,
        },
        symbols: AnalysisSymbols {
            source: SymbolSource::Isf,
            path: None,
            guid: None,
            age: None,
            matches_kernel: Some(true),
        },
        verdict: not_analyzable("placeholder".into()),
        pools,
        drivers,
        tags,
        session_tags: None,
        sessions: Vec::new(),
        blocks: BlockTotals {
            complete: true,
            ..BlockTotals::default()
        },
        quota: None,
        modules: vec![AnalysisModule {
            name: "ntoskrnl.exe".into(),
            base: Hex(0xfffff800_00000000),
            size: 0x100000,
            timestamp: None,
            pdb: None,
            symbols: "not looked up".into(),
            windows: None,
            symbols_source: None,
            line_info: None,
        }],
        provenance: None,
        crash: None,
        warnings: Vec::new(),
        errors: Vec::new(),
    }
}

fn owner(module: &str, source: Source) -> TagOwner {
    TagOwner {
        module: Some(module.into()),
        source,
        description: None,
    }
}

fn tag(name: &str, paged: u64, nonpaged: u64, owners: Vec<TagOwner>) -> TagReport {
    TagReport {
        tag: name.into(),
        paged_allocs: 10,
        paged_frees: 0,
        paged_bytes: paged,
        nonpaged_allocs: 10,
        nonpaged_frees: 0,
        nonpaged_bytes: nonpaged,
        paged_outstanding: if paged > 0 { 10 } else { 0 },
        nonpaged_outstanding: if nonpaged > 0 { 10 } else { 0 },
        owners,
        // The block walk agrees with the tag tables.
        blocks: Some(TagBlocks {
            count: 20,
            bytes: paged + nonpaged,
            paged_bytes: paged,
            nonpaged_bytes: nonpaged,
            ..TagBlocks::default()
        }),
    }
}

fn site(tag: &str, pool: Option<PoolName>, size: Option<u64>) -> CallSite {
    CallSite {
        address: Hex(0x1000),
        offset: "x+0x1000".into(),
        symbol: None,
        tag: tag.into(),
        kind: if tag == "None" {
            CallSiteKind::UntaggedAllocatorCall
        } else {
            CallSiteKind::TagArgument
        },
        pool_type: pool,
        size,
        callee: None,
        call: Some(Hex(0x1000)),
        source: None,
    }
}

fn driver(module: &str, tags: &[(&str, u64, u64, Source)], sites: Vec<CallSite>) -> DriverReport {
    DriverReport {
        module: module.into(),
        base: None,
        size: None,
        path: None,
        paged_bytes: tags.iter().map(|t| t.1).sum(),
        nonpaged_bytes: tags.iter().map(|t| t.2).sum(),
        session_bytes: 0,
        bytes: tags.iter().map(|t| t.1 + t.2).sum(),
        allocations: 0,
        share_of_pool: None,
        tags: tags
            .iter()
            .map(|t| DriverTag {
                tag: t.0.into(),
                paged_bytes: t.1,
                nonpaged_bytes: t.2,
                allocations: 0,
                evidence: t.3,
                shared_with: Vec::new(),
                session: false,
                attributed: false,
            })
            .collect(),
        call_sites: sites,
        call_sites_truncated: false,
        blocks: DriverBlocks::default(),
        provenance: None,
    }
}

fn gauge(pool: PoolName, in_use: u64, max: Option<u64>) -> PoolGauge {
    let used_fraction = max.map(|m| in_use as f64 / m as f64);
    PoolGauge {
        pool,
        in_use,
        max,
        commit: None,
        used_fraction,
        near_exhaustion: near_exhaustion(pool, in_use, max),
        source: "test".into(),
    }
}

const CODE: Source = Source::DriverCodeAllocation;

/// A pool near exhaustion by `!vm`'s rule (paged above 95%, nonpaged above 80% of the maximum).
fn pressed(pool: PoolName, in_use: u64) -> PoolGauge {
    let used_percent = match pool {
        PoolName::Paged => 97,
        PoolName::Nonpaged => 85,
    };
    let g = gauge(pool, in_use, Some(in_use * 100 / used_percent));
    assert!(g.near_exhaustion);
    g
}

#[test]
fn empty_tables_are_not_analyzable_and_say_why() {
    let mut r = report(Vec::new(), Vec::new(), Vec::new());
    r.errors
        .push("tag tables: PoolTrackTable is unknown".into());
    let facts = Facts {
        unread: Some(r.errors[0].clone()),
        ..Facts::default()
    };
    let v = decide(&r, &facts);
    assert_eq!(v.kind, VerdictKind::NotAnalyzable);
    assert!(v.reasons[0].contains("PoolTrackTable"), "{:?}", v.reasons);
    r.dump.format = "triage".into();
    let v = decide(&r, &facts);
    assert_eq!(v.kind, VerdictKind::NotAnalyzable);
    assert!(v.sentence.contains("triage"), "{}", v.sentence);
    assert!(v.drivers.is_empty() && v.bytes == 0);
}

#[test]
fn tables_read_but_missing_blocks_and_no_owner_is_no_leak() {
    // Tag tables read but nothing owned: no-leak-found, never a made-up driver.
    let tags = vec![tag("Abcd", 500_000, 0, vec![])];
    let mut r = report(
        tags,
        Vec::new(),
        vec![gauge(PoolName::Paged, 1_000_000, None)],
    );
    r.blocks.complete = false;
    let v = decide(&r, &Facts::default());
    assert_eq!(v.kind, VerdictKind::NoLeakFound);
    assert_eq!(v.confidence, Confidence::Low);
    assert!(v.drivers.is_empty());
}

#[test]
fn a_third_party_tag_holding_a_big_share_is_a_driver_leak() {
    let tags = vec![
        tag("Leak", 400_000, 0, vec![owner("leaky.sys", CODE)]),
        tag("Irp ", 0, 50_000, vec![owner("nt", Source::BuiltIn)]),
    ];
    let drivers = vec![driver(
        "leaky.sys",
        &[("Leak", 400_000, 0, CODE)],
        vec![site("Leak", Some(PoolName::Paged), Some(0x7f0))],
    )];
    let mut r = report(
        tags,
        drivers,
        vec![
            pressed(PoolName::Paged, 1_000_000),
            gauge(PoolName::Nonpaged, 100_000, None),
        ],
    );
    let v = decide(&r, &Facts::default());
    assert_eq!(v.kind, VerdictKind::DriverLeak);
    assert_eq!(
        v.pressure.as_ref().map(|p| p.rule),
        Some(PressureRule::NearExhaustion)
    );
    assert_eq!(v.drivers, ["leaky.sys"]);
    assert_eq!(v.tags, ["Leak"]);
    assert_eq!((v.bytes, v.pool), (400_000, Some(PoolName::Paged)));
    assert_eq!(v.share_of_pool, Some(0.4));
    assert_eq!(v.confidence, Confidence::High);
    assert!(
        v.sentence.starts_with("leaky.sys is the likely leaker"),
        "{}",
        v.sentence
    );
    assert!(v.sentence.contains("x+0x1000"), "{}", v.sentence);
    // The same holdings in a pool far from its maximum: the largest consumer, not a leaker.
    r.pools[0] = gauge(PoolName::Paged, 1_000_000, Some(512 << 20));
    let v = decide(&r, &Facts::default());
    assert_eq!(
        (v.kind, v.confidence),
        (VerdictKind::LargestConsumer, Confidence::Low)
    );
    assert!(v.pressure.is_none());
    assert!(!v.sentence.contains("leaker"), "{}", v.sentence);
    assert!(
        v.sentence
            .starts_with("leaky.sys is the largest consumer of paged pool")
            && v.sentence.contains("not under pressure"),
        "{}",
        v.sentence
    );
    // One driver holding a quarter of the pool's maximum is pressure by itself.
    r.pools[0] = gauge(PoolName::Paged, 1_000_000, Some(1_500_000));
    let v = decide(&r, &Facts::default());
    assert_eq!(v.kind, VerdictKind::DriverLeak);
    assert_eq!(
        v.pressure.as_ref().map(|p| p.rule),
        Some(PressureRule::ShareOfMaximum)
    );
    assert!(v.share_of_maximum.is_some_and(|s| s > 0.26 && s < 0.27));
}

#[test]
fn below_the_threshold_nothing_stands_out() {
    let tags = vec![tag("Leak", 50_000, 0, vec![owner("leaky.sys", CODE)])];
    let drivers = vec![driver("leaky.sys", &[("Leak", 50_000, 0, CODE)], vec![])];
    let r = report(tags, drivers, vec![gauge(PoolName::Paged, 1_000_000, None)]);
    let v = decide(&r, &Facts::default());
    assert_eq!(v.kind, VerdictKind::NoLeakFound);
    assert!(v.sentence.contains("leaky.sys"), "{}", v.sentence);
    // A significant share without pressure: the largest consumer, confidence low.
    let tags = vec![tag("Leak", 150_000, 0, vec![owner("leaky.sys", CODE)])];
    let drivers = vec![driver("leaky.sys", &[("Leak", 150_000, 0, CODE)], vec![])];
    let r = report(tags, drivers, vec![gauge(PoolName::Paged, 1_000_000, None)]);
    let v = decide(&r, &Facts::default());
    assert_eq!(
        (v.kind, v.confidence),
        (VerdictKind::LargestConsumer, Confidence::Low)
    );
}

#[test]
fn a_complete_walk_that_finds_none_of_the_bytes_lowers_confidence() {
    let mut t = tag("Leak", 400_000, 0, vec![owner("leaky.sys", CODE)]);
    t.blocks = None;
    let drivers = vec![driver("leaky.sys", &[("Leak", 400_000, 0, CODE)], vec![])];
    let r = report(vec![t], drivers, vec![pressed(PoolName::Paged, 1_000_000)]);
    let v = decide(&r, &Facts::default());
    assert_eq!(
        (v.kind, v.confidence),
        (VerdictKind::DriverLeak, Confidence::Medium)
    );
    assert!(
        v.reasons
            .iter()
            .any(|r| r.contains("found no 'Leak' block")),
        "{:?}",
        v.reasons
    );
}

#[test]
fn a_windows_tag_never_blames_a_third_party_driver() {
    // 'Irp ' is nt's (built-in table) even though vendor.sys's code also allocates it.
    let tags = vec![tag(
        "Irp ",
        0,
        900_000,
        vec![owner("vendor.sys", CODE), owner("nt", Source::BuiltIn)],
    )];
    let drivers = vec![driver("vendor.sys", &[("Irp ", 0, 900_000, CODE)], vec![])];
    let r = report(
        tags.clone(),
        drivers.clone(),
        vec![gauge(PoolName::Nonpaged, 1_000_000, None)],
    );
    let v = decide(&r, &Facts::default());
    assert_eq!(v.kind, VerdictKind::NoLeakFound);
    assert!(v.drivers.is_empty());
    // Near exhaustion: the Windows tag is named, no driver is.
    let r = report(
        tags,
        drivers,
        vec![gauge(PoolName::Nonpaged, 1_000_000, Some(1_050_000))],
    );
    let v = decide(&r, &Facts::default());
    assert_eq!(v.kind, VerdictKind::UnattributedTag);
    assert_eq!(
        (v.tags.clone(), v.drivers.len()),
        (vec!["Irp ".to_string()], 0)
    );
    assert_eq!(v.confidence, Confidence::Low);
}

#[test]
fn nt_code_evidence_alone_makes_a_windows_tag() {
    let tags = vec![tag("Wxyz", 600_000, 0, vec![owner("ntoskrnl.exe", CODE)])];
    let drivers = vec![driver(
        "ntoskrnl.exe",
        &[("Wxyz", 600_000, 0, CODE)],
        vec![],
    )];
    let r = report(tags, drivers, vec![gauge(PoolName::Paged, 1_000_000, None)]);
    assert_eq!(decide(&r, &Facts::default()).kind, VerdictKind::NoLeakFound);
}

#[test]
fn an_unowned_tag_filling_a_pool_is_unattributed() {
    let tags = vec![
        tag("Zzzz", 0, 900_000, vec![]),
        tag("Leak", 0, 20_000, vec![owner("a.sys", CODE)]),
    ];
    let drivers = vec![driver("a.sys", &[("Leak", 0, 20_000, CODE)], vec![])];
    let r = report(
        tags,
        drivers,
        vec![gauge(PoolName::Nonpaged, 950_000, Some(1_000_000))],
    );
    let v = decide(&r, &Facts::default());
    assert_eq!(v.kind, VerdictKind::UnattributedTag);
    assert_eq!(v.tags, ["Zzzz"]);
    assert_eq!(v.pool, Some(PoolName::Nonpaged));
    assert_eq!(v.confidence, Confidence::Medium);
}

#[test]
fn shared_tags_name_every_owner_and_call_sites_separate_them() {
    let owners = vec![owner("a.sys", CODE), owner("b.sys", CODE)];
    let tags = vec![tag("Acme", 600_000, 100_000, owners)];
    let drivers = vec![
        driver(
            "a.sys",
            &[("Acme", 600_000, 100_000, CODE)],
            vec![site("Acme", Some(PoolName::Nonpaged), Some(0x200))],
        ),
        driver(
            "b.sys",
            &[("Acme", 600_000, 100_000, CODE)],
            vec![site("Acme", Some(PoolName::Paged), Some(0x600))],
        ),
    ];
    let r = report(
        tags,
        drivers,
        vec![
            pressed(PoolName::Paged, 1_000_000),
            gauge(PoolName::Nonpaged, 500_000, None),
        ],
    );
    let v = decide(&r, &Facts::default());
    assert_eq!(v.kind, VerdictKind::SharedTag);
    assert_eq!(v.drivers, ["a.sys", "b.sys"]);
    // The tag could not be split: both are named and no one is credited with the other's
    // bytes (the figures are the tag's, in its main pool).
    assert_eq!(v.bytes, 600_000);
    assert_eq!(v.confidence, Confidence::Medium);
    assert!(
        v.reasons
            .iter()
            .any(|r| r.contains("only b.sys's call sites allocate from paged pool")),
        "{:?}",
        v.reasons
    );
}

#[test]
fn untagged_bytes_go_to_the_exallocatepool_caller() {
    let none = vec![
        owner("u.sys", Source::DriverCallsUntaggedAllocator),
        owner("<any>", Source::BuiltIn),
    ];
    let tags = vec![tag("None", 0, 300_000, none)];
    let drivers = vec![driver(
        "u.sys",
        &[("None", 0, 300_000, Source::DriverCallsUntaggedAllocator)],
        vec![site("None", Some(PoolName::Nonpaged), Some(0x180))],
    )];
    let r = report(tags, drivers, vec![pressed(PoolName::Nonpaged, 500_000)]);
    let v = decide(&r, &Facts::default());
    assert_eq!(v.kind, VerdictKind::UntaggedLeak);
    assert_eq!(v.drivers, ["u.sys"]);
    assert_eq!(v.confidence, Confidence::High);
}

#[test]
fn quota_dominated_by_one_process_names_the_process_and_the_driver() {
    let mut t = tag("QLek", 400_000, 0, vec![owner("q.sys", CODE)]);
    t.blocks = Some(TagBlocks {
        count: 50,
        bytes: 400_000,
        paged_bytes: 400_000,
        quota_bytes: 320_000,
        quota_processes: vec![QuotaShare {
            eprocess: Hex(0xe1),
            blocks: 40,
            bytes: 320_000,
        }],
        ..TagBlocks::default()
    });
    let drivers = vec![driver("q.sys", &[("QLek", 400_000, 0, CODE)], vec![])];
    let mut r = report(vec![t], drivers, vec![pressed(PoolName::Paged, 1_000_000)]);
    r.quota = Some(QuotaSummary {
        processes: vec![
            QuotaProcess {
                pid: Some(3012),
                name: Some("explorer.exe".into()),
                eprocess: Hex(0xe1),
                blocks: 40,
                bytes: 320_000,
            },
            QuotaProcess {
                pid: Some(4),
                name: Some("System".into()),
                eprocess: Hex(0xe2),
                blocks: 1,
                bytes: 1000,
            },
        ],
        uncharged_blocks: 0,
        uncharged_bytes: 0,
    });
    let v = decide(&r, &Facts::default());
    assert_eq!(v.kind, VerdictKind::ProcessQuota);
    assert_eq!(
        v.process.as_ref().and_then(|p| p.name.as_deref()),
        Some("explorer.exe")
    );
    assert_eq!(v.drivers, ["q.sys"]);
    assert_eq!(v.bytes, 320_000);
    // The driver leads; the process is whom the pool is charged to, and why it matters.
    assert!(
        v.sentence.starts_with("q.sys is the likely leaker"),
        "{}",
        v.sentence
    );
    assert!(v.sentence.contains("explorer.exe"), "{}", v.sentence);
    assert!(
        v.reasons
            .iter()
            .any(|r| r.contains("keeps the process referenced")),
        "{:?}",
        v.reasons
    );
    // The same charges spread over several processes do not make a process verdict.
    if let Some(q) = r.quota.as_mut() {
        q.processes[1].bytes = 320_000;
        let mut third = q.processes[1].clone();
        third.eprocess = Hex(0xe3);
        q.processes.push(third);
    }
    assert_eq!(decide(&r, &Facts::default()).kind, VerdictKind::DriverLeak);
}

#[test]
fn mismatched_symbols_and_pooltag_only_evidence_lower_confidence() {
    let tags = vec![tag(
        "Leak",
        400_000,
        0,
        vec![owner("leaky.sys", Source::PoolTagFile)],
    )];
    let drivers = vec![driver(
        "leaky.sys",
        &[("Leak", 400_000, 0, Source::PoolTagFile)],
        vec![],
    )];
    let mut r = report(tags, drivers, vec![pressed(PoolName::Paged, 1_000_000)]);
    r.symbols.matches_kernel = Some(false);
    let v = decide(&r, &Facts::default());
    assert_eq!(v.kind, VerdictKind::DriverLeak);
    assert_eq!(v.confidence, Confidence::Low);
}

#[test]
fn figures_from_the_block_walk_alone_lower_confidence() {
    // Tag tables unreadable: the rows come from the block walk and the report warns so.
    let tags = vec![tag("Leak", 400_000, 0, vec![owner("leaky.sys", CODE)])];
    let drivers = vec![driver("leaky.sys", &[("Leak", 400_000, 0, CODE)], vec![])];
    let mut r = report(tags, drivers, Vec::new());
    r.errors
        .push("tag tables: PoolTrackTable is unknown".into());
    r.warnings.push(
        "the tag tables could not be read: tag figures below come from the block walk (allocated blocks only)"
            .into(),
    );
    let facts = Facts {
        unread: Some(r.errors[0].clone()),
        figures_from_blocks: true,
        ..Facts::default()
    };
    let v = decide(&r, &facts);
    // No !vm figure: no pressure can be shown; the share is of the tags' own sum.
    assert_eq!(v.kind, VerdictKind::LargestConsumer);
    assert_eq!(v.share_of_pool, Some(1.0));
    assert_eq!(v.confidence, Confidence::Low);
    assert!(
        v.reasons
            .iter()
            .any(|r| r.contains("the figures come from the block walk")),
        "{:?}",
        v.reasons
    );
}

/// A display driver's tag holding most of session pool: named, with `session` set and the
/// share of session pool; a larger system-pool leak still wins; session figures never feed
/// the system-pool candidate.
#[test]
fn a_driver_dominating_session_pool_is_named_as_a_session_leak() {
    let system = vec![
        tag("Ntfx", 300_000, 0, vec![owner("ntfs.sys", Source::BuiltIn)]),
        tag("Irp ", 0, 200_000, vec![owner("nt", Source::BuiltIn)]),
    ];
    let mut disp = driver(
        "dispkmd.sys",
        &[],
        vec![site("DspK", Some(PoolName::Paged), Some(0x3f0))],
    );
    disp.session_bytes = 900_000;
    disp.bytes = 900_000;
    disp.tags.push(DriverTag {
        tag: "DspK".into(),
        paged_bytes: 900_000,
        nonpaged_bytes: 0,
        allocations: 900,
        evidence: CODE,
        shared_with: Vec::new(),
        session: true,
        attributed: false,
    });
    let mut r = report(
        system,
        vec![disp],
        vec![pressed(PoolName::Paged, 1_000_000)],
    );
    r.session_tags = Some(vec![
        tag("DspK", 900_000, 0, vec![owner("dispkmd.sys", CODE)]),
        tag("Gh05", 100_000, 0, Vec::new()),
    ]);
    let v = decide(&r, &Facts::default());
    assert_eq!(v.kind, VerdictKind::DriverLeak, "{v:?}");
    assert!(v.session);
    assert_eq!(v.pool, Some(PoolName::Paged));
    assert_eq!(v.drivers, vec!["dispkmd.sys".to_string()]);
    assert_eq!(v.tags, vec!["DspK".to_string()]);
    assert_eq!(v.bytes, 900_000);
    // 900 000 of the session tags' 1 000 000 bytes.
    assert_eq!(v.share_of_pool, Some(0.9));
    assert_eq!(v.confidence, Confidence::High);
    assert!(v.sentence.contains("session paged pool"), "{}", v.sentence);

    // The same driver with a larger system-pool leak of another driver beside it.
    r.tags
        .push(tag("Leak", 2_000_000, 0, vec![owner("leaky.sys", CODE)]));
    r.drivers
        .push(driver("leaky.sys", &[("Leak", 2_000_000, 0, CODE)], vec![]));
    r.pools = vec![pressed(PoolName::Paged, 2_500_000)];
    let v = decide(&r, &Facts::default());
    assert_eq!(
        (v.kind, v.session),
        (VerdictKind::DriverLeak, false),
        "{v:?}"
    );
    assert_eq!(v.drivers, vec!["leaky.sys".to_string()]);

    // Session pool spread thin (the driver holds under 10% of it): no session verdict.
    r.tags.pop();
    r.drivers.pop();
    r.pools = vec![gauge(PoolName::Paged, 2_500_000, Some(1 << 30))];
    if let Some(st) = r.session_tags.as_mut() {
        st[1].paged_bytes = 9_000_000;
    }
    let v = decide(&r, &Facts::default());
    assert!(!v.session, "{v:?}");
    assert_eq!(v.kind, VerdictKind::NoLeakFound, "{v:?}");
}

#[test]
fn sizes_read_as_people_write_them() {
    assert_eq!(human(812), "812 bytes");
    assert_eq!(human(359_296), "351 KiB");
    assert_eq!(human(5_351_104), "5.1 MiB");
    assert_eq!(human(64 << 20), "64 MiB");
}

/// Microsoft's pooltag.txt gives 'None' to nt!Vf: as a description only, it never takes the
/// untagged bytes away from the driver whose code calls ExAllocatePool.
#[test]
fn a_pooltag_line_never_overrides_code_evidence() {
    let none = vec![
        owner("u.sys", Source::DriverCallsUntaggedAllocator),
        owner("<any>", Source::BuiltIn),
        owner("nt", Source::PoolTagFile),
    ];
    let tags = vec![tag("None", 0, 300_000, none)];
    let drivers = vec![driver(
        "u.sys",
        &[("None", 0, 300_000, Source::DriverCallsUntaggedAllocator)],
        vec![],
    )];
    let r = report(tags, drivers, vec![pressed(PoolName::Nonpaged, 500_000)]);
    let v = decide(&r, &Facts::default());
    assert_eq!(
        (v.kind, v.drivers.clone()),
        (VerdictKind::UntaggedLeak, vec!["u.sys".to_string()])
    );
}

/// A module recognised as part of Windows (the inbox list) is never the leaker, whatever it
/// holds; the verdict falls to the pool's state.
#[test]
fn a_windows_driver_is_never_named_the_leaker() {
    let tags = vec![tag("NDnd", 0, 800_000, vec![owner("NDIS.SYS", CODE)])];
    let drivers = vec![driver("NDIS.SYS", &[("NDnd", 0, 800_000, CODE)], vec![])];
    let mut r = report(tags, drivers, vec![pressed(PoolName::Nonpaged, 1_000_000)]);
    r.modules.push(AnalysisModule {
        name: "NDIS.SYS".into(),
        base: Hex(0xfffff800_10000000),
        size: 0x100000,
        timestamp: None,
        pdb: None,
        symbols: "not looked up".into(),
        windows: Some(crate::attribution::windows::WindowsBasis::InboxList),
        symbols_source: None,
        line_info: None,
    });
    let v = decide(&r, &Facts::default());
    assert!(v.drivers.is_empty(), "{v:?}");
    assert_eq!(v.kind, VerdictKind::UnattributedTag, "{v:?}");
}

/// Provenance split 'None' between two vendors: the verdict names the one holding the bytes,
/// with its share (never the whole tag), its call sites and its orphans.
#[test]
fn an_attributed_share_of_none_names_the_module_holding_it() {
    let none = vec![
        owner("a.sys", Source::DriverCallsUntaggedAllocator),
        owner("b.sys", Source::DriverCallsUntaggedAllocator),
    ];
    let tags = vec![tag("None", 900_000, 0, none)];
    let mut a = driver(
        "a.sys",
        &[("None", 700_000, 0, Source::DriverCallsUntaggedAllocator)],
        vec![],
    );
    let mut b = driver(
        "b.sys",
        &[("None", 150_000, 0, Source::DriverCallsUntaggedAllocator)],
        vec![],
    );
    for d in [&mut a, &mut b] {
        d.tags[0].attributed = true;
    }
    a.tags[0].shared_with = vec!["b.sys".into()];
    a.provenance = Some(crate::report::provenance::DriverProvenance {
        blocks: CountBytes {
            count: 70,
            bytes: 700_000,
        },
        paged_bytes: 700_000,
        nonpaged_bytes: 0,
        orphans: CountBytes {
            count: 50,
            bytes: 500_000,
        },
        evidence: vec![crate::report::provenance::EvidenceCount {
            kind: crate::report::provenance::EvidenceName::Reachable,
            count: 70,
            bytes: 700_000,
        }],
        high: CountBytes {
            count: 70,
            bytes: 700_000,
        },
        medium: CountBytes::default(),
        low: CountBytes::default(),
        sites: vec![crate::report::provenance::SiteBlocks {
            address: Hex(0x1000),
            offset: "a.sys+0x1000".into(),
            tag: "None".into(),
            blocks: CountBytes {
                count: 70,
                bytes: 700_000,
            },
            orphans: CountBytes {
                count: 50,
                bytes: 500_000,
            },
            symbol: None,
            source: None,
        }],
        unknown_site: CountBytes::default(),
    });
    let r = report(tags, vec![a, b], vec![pressed(PoolName::Paged, 1_000_000)]);
    let v = decide(&r, &Facts::default());
    assert_eq!(v.kind, VerdictKind::UntaggedLeak, "{v:?}");
    assert_eq!(v.drivers, ["a.sys"]);
    assert_eq!(v.bytes, 700_000);
    assert_eq!(v.orphans.map(|o| o.count), Some(50));
    assert!(v.sentence.contains("a.sys+0x1000"), "{}", v.sentence);
    assert!(
        v.reasons.iter().any(|r| r.contains("orphans")),
        "{:?}",
        v.reasons
    );
}

/// Tables and walk disagreeing, or pool pages missing from the walk, lower confidence.
#[test]
fn missing_pages_and_a_short_walk_lower_confidence() {
    let tags = vec![tag("Leak", 400_000, 0, vec![owner("leaky.sys", CODE)])];
    let drivers = vec![driver("leaky.sys", &[("Leak", 400_000, 0, CODE)], vec![])];
    let mut r = report(tags, drivers, vec![pressed(PoolName::Paged, 1_000_000)]);
    assert_eq!(decide(&r, &Facts::default()).confidence, Confidence::High);
    r.blocks.missing_pool_pages = 3;
    let v = decide(&r, &Facts::default());
    assert_eq!(v.confidence, Confidence::Medium);
    assert!(
        v.reasons.iter().any(|r| r.contains("3 pool pages")),
        "{:?}",
        v.reasons
    );
    let facts = Facts {
        walk_short: Some((5000, 12)),
        ..Facts::default()
    };
    assert_eq!(decide(&r, &facts).confidence, Confidence::Low);
}
