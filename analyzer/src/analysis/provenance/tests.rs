//! Provenance on hand-built memory: a driver's .data list head, a device extension, an owned
//! block, chains, a leaked ring nobody points to, a block whose evidence conflicts.

use super::classify::TagClass;
use super::decide::{decide, Certainty, EvidenceKind, Inputs, Site, SiteBasis};
use super::index::BlockIndex;
use super::modules::ModuleMap;
use super::refs::{ObjectRanges, RefScan};
use crate::kernel::Module;
use crate::pool::pages::Block;
use crate::pool::testmem::Image;
use crate::pool::{BlockSource, PoolKind, PoolType, SeenBlock, Tag};

const NT: u64 = 0xfffff800_00000000;
const A: u64 = 0xfffff880_01000000;
const B: u64 = 0xfffff880_02000000;
const POOL: u64 = 0xffffa000_00000000;

fn module(name: &str, base: u64) -> Module {
    Module {
        name: name.into(),
        path: String::new(),
        base,
        size: 0x10000,
        timestamp: None,
        checksum: None,
        ldr_entry: None,
        pe: None,
        pe_error: None,
    }
}

fn block(address: u64, size: u64, tag: &[u8; 4]) -> Block {
    Block {
        address,
        size,
        previous_size: None,
        tag: Tag(*tag),
        pool_type: PoolType {
            raw: 3,
            kind: PoolKind::Paged,
            session: false,
            quota: false,
        },
        pool: PoolKind::Paged,
        allocated: true,
        process_billed: None,
    }
}

/// Blocks, 0x100 apart: 0..=3 'None' reached from a.sys's data (0 -> 1 -> 2 chain, 3 also
/// holds a pointer into a.sys's code), 4..=5 a leaked 'None' ring, 6 'None' pointed to from
/// b.sys's data and holding a pointer into a.sys (conflict), 7 an 'Ownd' block of b.sys
/// nobody points to, 8 'None' pointed to from that owned block.
struct World {
    mem: Image,
    blocks: Vec<Block>,
    modules: ModuleMap,
}

fn world() -> World {
    let mut mem = Image::new(8);
    let tags: [&[u8; 4]; 9] = [
        b"None", b"None", b"None", b"None", b"None", b"None", b"None", b"Ownd", b"None",
    ];
    let blocks: Vec<Block> = tags
        .iter()
        .enumerate()
        .map(|(i, t)| block(POOL + 0x100 * i as u64, 0x100, t))
        .collect();
    for b in &blocks {
        mem.touch(b.address);
    }
    let data = |i: usize| POOL + 0x100 * i as u64 + 0x10;
    mem.u64(A + 0x8000, data(0)); // a.sys .data list head -> 0
    mem.u64(data(0), data(1)); // 0 -> 1
    mem.u64(data(1), data(2)); // 1 -> 2
    mem.u64(A + 0x8008, data(3));
    mem.u64(data(3) + 8, A + 0x1234); // 3 -> a.sys code
    mem.u64(data(4), data(5)); // leaked ring 4 <-> 5
    mem.u64(data(5), data(4));
    mem.u64(B + 0x8000, data(6)); // b.sys .data -> 6
    mem.u64(data(6) + 8, A + 0x2000); // 6 -> a.sys code: conflict
    mem.u64(data(7), data(8)); // b.sys's own block -> 8
    mem.u64(data(2) + 8, data(2)); // a self-pointer counts for nothing
    let mods = vec![module("nt", NT), module("a.sys", A), module("b.sys", B)];
    World {
        mem,
        blocks,
        modules: ModuleMap::new(&mods, Some(NT)),
    }
}

#[test]
fn chains_orphans_and_conflicts_are_decided_from_the_pointers() {
    let w = world();
    let class = |t: Tag| match &t.0 {
        b"Ownd" => TagClass::Owned(2),
        _ => TagClass::Ambiguous,
    };
    let mut index = BlockIndex::default();
    for b in &w.blocks {
        let seen = SeenBlock {
            block: b,
            source: BlockSource::Classic,
            billed_process: None,
        };
        index.push(&seen, class(b.tag));
    }
    index.seal();
    let objects = ObjectRanges::default();
    let mut scan = RefScan::new(&index, &w.modules, &objects, 8);
    scan.scan_section(&w.mem, 1, A + 0x8000, 0x1000);
    scan.scan_section(&w.mem, 2, B + 0x8000, 0x1000);
    let tracked = vec![None; index.len()];
    let inputs = Inputs {
        index: &index,
        sites: &[],
        header: 16,
        tracked: &tracked,
    };
    let attributor = crate::attribution::Attributor::new(None);
    let mut classes = super::classify::TagClasses::new(&attributor, w.modules.names());
    for b in &w.blocks {
        let seen = SeenBlock {
            block: b,
            source: BlockSource::Classic,
            billed_process: None,
        };
        scan.scan_block(&w.mem, &seen, &mut classes);
    }
    let d = decide(&inputs, &scan.refs);
    let owner = |i: usize| d[i].owner.map(|m| w.modules.name(m).to_string());
    for (i, di) in d.iter().enumerate().take(3) {
        assert_eq!(owner(i).as_deref(), Some("a.sys"), "block {i}");
        assert!(di.evidence.has(EvidenceKind::Reachable), "block {i}");
        assert!(!di.orphan, "block {i}");
        assert_eq!(di.certainty, Certainty::Medium);
    }
    // Reached from a.sys and pointing into it: two kinds agree.
    assert_eq!(owner(3).as_deref(), Some("a.sys"));
    assert_eq!(d[3].certainty, Certainty::High);
    // The ring points to itself only: both orphans, no owner.
    for (i, di) in d.iter().enumerate().skip(4).take(2) {
        assert!(di.orphan, "block {i}");
        assert_eq!(di.owner, None, "block {i}");
    }
    // b.sys's data reaches it, its pointer names a.sys: unattributed, conflict.
    assert_eq!(d[6].owner, None);
    assert!(d[6].conflict);
    assert!(!d[6].orphan);
    // The owned block is b.sys's by its tag, and an orphan; what it points to is reached
    // from it (a chain from b.sys) but only through an orphan.
    assert_eq!(owner(7).as_deref(), Some("b.sys"));
    assert!(d[7].evidence.has(EvidenceKind::Tag));
    assert!(d[7].orphan);
    assert_eq!(owner(8).as_deref(), Some("b.sys"));
    assert!(d[8].orphan, "reached only from an orphan");
}

#[test]
fn a_size_that_one_module_asks_for_names_it_and_its_site() {
    let w = world();
    let mut index = BlockIndex::default();
    let blocks = [
        block(POOL, 0x100, b"None"), // fits a.sys's 0xf0 request: 0xf0 + 16
        block(POOL + 0x100, 0x80, b"None"), // fits both modules' 0x70: no size vote
        block(POOL + 0x180, 0x40, b"None"), // fits nobody
    ];
    for b in &blocks {
        let seen = SeenBlock {
            block: b,
            source: BlockSource::Classic,
            billed_process: None,
        };
        index.push(&seen, TagClass::Ambiguous);
    }
    index.seal();
    let none = Tag(*b"None");
    let sites = [
        Site {
            module: 1,
            address: A + 0x100,
            call: A + 0x100,
            tag: none,
            paged: Some(true),
            size: Some(0xf0),
        },
        Site {
            module: 1,
            address: A + 0x200,
            call: A + 0x200,
            tag: none,
            paged: Some(true),
            size: Some(0x70),
        },
        Site {
            module: 2,
            address: B + 0x100,
            call: B + 0x100,
            tag: none,
            paged: Some(true),
            size: Some(0x70),
        },
        // A nonpaged site of the same size must not match a paged block.
        Site {
            module: 2,
            address: B + 0x200,
            call: B + 0x200,
            tag: none,
            paged: Some(false),
            size: Some(0xf0),
        },
    ];
    let tracked = vec![None; index.len()];
    let inputs = Inputs {
        index: &index,
        sites: &sites,
        header: 16,
        tracked: &tracked,
    };
    let refs = RefScan::new(&index, &w.modules, &ObjectRanges::default(), 8).refs;
    let d = decide(&inputs, &refs);
    assert_eq!(d[0].owner, Some(1));
    assert_eq!(d[0].site, Some((A + 0x100, SiteBasis::Size)));
    assert!(d[0].evidence.has(EvidenceKind::Size));
    assert_eq!(d[1].owner, None, "two modules ask for that size");
    assert!(
        !d[1].conflict,
        "a shared size is no conflict, just no evidence"
    );
    assert_eq!(d[2].owner, None);
    assert!(d.iter().all(|d| d.orphan), "nothing points to any of them");
}

/// Hostile contents: a cycle of blocks reached from a module, blocks pointing at each other
/// in a loop nobody reaches, pointers into unmapped memory, a block whose page is not in the
/// dump. The scan and the decisions finish, state what they could not read, and name owners
/// only where a chain from a module reaches.
#[test]
fn cycles_loops_and_unmapped_pointers_are_bounded() {
    let mut mem = Image::new(8);
    let n = 64;
    let blocks: Vec<Block> = (0..n)
        .map(|i| block(POOL + 0x100 * i as u64, 0x100, b"None"))
        .collect();
    for b in &blocks {
        mem.touch(b.address);
    }
    let data = |i: usize| POOL + 0x100 * i as u64 + 0x10;
    // 0..32: a ring reached from a.sys's data; 32..63: a ring nobody reaches; every block
    // also points into unmapped memory and at itself.
    mem.u64(A + 0x8000, data(0));
    for i in 0..n {
        let next = if i == 31 {
            0
        } else if i == n - 1 {
            32
        } else {
            i + 1
        };
        mem.u64(data(i), data(next));
        mem.u64(data(i) + 8, 0xffff_9000_dead_0000 + i as u64);
        mem.u64(data(i) + 16, data(i));
    }
    // Block 63's page is not in the dump: its pointers are unseen.
    mem.missing(POOL + 0x100 * 63);
    let mods = vec![module("nt", NT), module("a.sys", A), module("b.sys", B)];
    let modules = ModuleMap::new(&mods, Some(NT));
    let mut index = BlockIndex::default();
    for b in &blocks {
        let seen = SeenBlock {
            block: b,
            source: BlockSource::Classic,
            billed_process: None,
        };
        index.push(&seen, TagClass::Ambiguous);
    }
    index.seal();
    let objects = ObjectRanges::default();
    let mut scan = RefScan::new(&index, &modules, &objects, 8);
    scan.scan_section(&mem, 1, A + 0x8000, 0x1000);
    let attributor = crate::attribution::Attributor::new(None);
    let mut classes = super::classify::TagClasses::new(&attributor, modules.names());
    for b in &blocks {
        let seen = SeenBlock {
            block: b,
            source: BlockSource::Classic,
            billed_process: None,
        };
        scan.scan_block(&mem, &seen, &mut classes);
    }
    assert!(scan.refs.unread_pages >= 1, "the missing page is counted");
    let tracked = vec![None; index.len()];
    let d = decide(
        &Inputs {
            index: &index,
            sites: &[],
            header: 16,
            tracked: &tracked,
        },
        &scan.refs,
    );
    for (i, di) in d.iter().enumerate() {
        if i < 32 {
            assert_eq!(di.owner, Some(1), "block {i} is reached from a.sys");
            assert!(!di.orphan, "block {i}");
        } else {
            assert_eq!(di.owner, None, "block {i}");
            assert!(di.orphan, "block {i}: a ring nobody reaches");
        }
    }
}
