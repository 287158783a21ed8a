//! Vista+: the verified drivers from `ViTargetDriversAvl`, then each driver's tracker pages.
//!
//! The global is itself a `_VF_AVL_TREE` (decompiled `VfTargetDriversGetNode` /
//! `VfAvlLookupTreeNode(&ViTargetDriversAvl, ..)` index `Tables` with the `_VF_AVL_TABLE`
//! stride). Each table's `RtlTable` is an `RTL_AVL_TABLE` whose `BalancedRoot` is a sentinel:
//! the real root is its `RightChild`. An element follows its `RTL_BALANCED_LINKS` (decompiled
//! `VfAvlReserveNode` returns the allocation + 0x20) and is a `_VF_TARGET_DRIVER`: the image's
//! range (`TreeNode.p`, `RangeSize`) and `VerifiedData`, NULL for images in the tree only for
//! other verifier checks.

use super::bigscan::{scan, ScannedPages};
use super::layout::{uint, TargetLayout};
use super::trackers::{first_page, read_page, walk_pages, PageState};
use super::{
    read_unicode, BackPointers, Budget, FoundThrough, VerifiedDriver, VerifierTracking,
    MAX_DRIVERS, MAX_NODES_PER_TABLE, MAX_TABLES, MAX_TREE_DEPTH,
};
use crate::memory::VirtualMemory;
use crate::pool::KernelContext;
use std::collections::HashSet;

/// One `_VF_TARGET_DRIVER` with tracking data.
#[derive(Debug, Clone, Copy)]
struct TargetNode {
    base: u64,
    size: u64,
    data: u64,
}

/// Reads every verified driver: through the tree when it can be walked, else through the
/// tracker pages in the big page table.
pub(super) fn read(
    mem: &dyn VirtualMemory,
    ctx: &KernelContext,
    l: &TargetLayout,
    out: &mut VerifierTracking,
    budget: &mut Budget,
) {
    if ctx.pointer_size != 8 {
        // The SLIST heads and tracker entries of 32-bit Vista+ kernels are laid out
        // differently, and no profile here has one to check them against.
        out.work
            .stop("32-bit Vista+ kernel: tracker pages are decoded on x64 kernels only".into());
        return;
    }
    let mut w = Walk {
        mem,
        ctx,
        l,
        scanned: None,
    };
    let nodes = match ctx.global("ViTargetDriversAvl") {
        Some(tree) => tree_nodes(mem, tree, l, out),
        None => Err("the kernel's symbols have no ViTargetDriversAvl".into()),
    };
    match nodes {
        Ok(nodes) => {
            let mut seen = HashSet::new();
            for n in nodes.iter().filter(|n| n.data != 0) {
                if seen.insert(n.data) {
                    driver(&mut w, Some(*n), n.data, out, budget);
                }
            }
        }
        Err(why) => {
            out.work.stop(format!(
                "{why}: tracker pages found through the big page table"
            ));
            let pages = scan(mem, ctx, l, out);
            let found: Vec<u64> = pages.by_driver.keys().take(MAX_DRIVERS).copied().collect();
            w.scanned = Some(pages);
            for data in found {
                driver(&mut w, None, data, out, budget);
            }
        }
    }
}

/// Every `_VF_TARGET_DRIVER` of every table (bounded). `Err` when the tree itself is unreadable.
fn tree_nodes(
    mem: &dyn VirtualMemory,
    tree: u64,
    l: &TargetLayout,
    out: &mut VerifierTracking,
) -> Result<Vec<TargetNode>, String> {
    let tables = mem
        .read_u64(tree + l.tables)
        .map_err(|e| format!("ViTargetDriversAvl at {tree:#x}: {e}"))?;
    let n = mem
        .read_u32(tree + l.tables_no)
        .map_err(|e| format!("ViTargetDriversAvl at {tree:#x}: {e}"))?;
    let mut n = u64::from(n);
    if n > 0 && tables == 0 {
        return Err(format!("ViTargetDriversAvl: TablesNo {n} but no Tables"));
    }
    if n > MAX_TABLES {
        out.work.stop(format!(
            "ViTargetDriversAvl: TablesNo {n} is implausible; read the first {MAX_TABLES}"
        ));
        n = MAX_TABLES;
    }
    let mut nodes = Vec::new();
    for i in 0..n {
        walk_table(mem, i, tables + i * l.table_size, l, &mut nodes, out);
        if nodes.len() >= MAX_DRIVERS {
            out.work
                .stop(format!("ViTargetDriversAvl: more than {MAX_DRIVERS} nodes"));
            nodes.truncate(MAX_DRIVERS);
            break;
        }
    }
    Ok(nodes)
}

/// One `RTL_AVL_TABLE`, depth first from the sentinel's right child, every node once.
fn walk_table(
    mem: &dyn VirtualMemory,
    index: u64,
    table: u64,
    l: &TargetLayout,
    nodes: &mut Vec<TargetNode>,
    out: &mut VerifierTracking,
) {
    let what = format!("ViTargetDriversAvl table {index}");
    let sentinel = table + l.balanced_root;
    let (Ok(root), Ok(count)) = (
        mem.read_u64(sentinel + l.right_child),
        mem.read_u32(table + l.element_count),
    ) else {
        out.work.pages_missing += 1;
        out.work
            .stop(format!("{what} at {table:#x} is not in the dump"));
        return;
    };
    let mut visited: HashSet<u64> = HashSet::from([sentinel]);
    let mut stack = vec![(root, 1usize)];
    let mut cycle = false;
    while let Some((node, depth)) = stack.pop() {
        if node == 0 {
            continue;
        }
        if depth > MAX_TREE_DEPTH || visited.len() > MAX_NODES_PER_TABLE {
            out.work.stop(format!(
                "{what}: deeper than {MAX_TREE_DEPTH} or more than {MAX_NODES_PER_TABLE} nodes"
            ));
            return;
        }
        if !visited.insert(node) {
            out.work.loops_detected += 1;
            cycle = true;
            continue;
        }
        let len = (l.links_size + l.target_size) as usize;
        let Ok(buf) = mem.read_vec(node, len) else {
            out.work.pages_missing += 1;
            out.work
                .stop(format!("{what}: node {node:#x} is not in the dump"));
            continue;
        };
        out.work.nodes_read += 1;
        let field = |off: u64| uint(&buf, off, 8).unwrap_or(0);
        stack.push((field(l.right_child), depth + 1));
        stack.push((field(l.left_child), depth + 1));
        let t = l.links_size;
        nodes.push(TargetNode {
            base: field(t + l.range_base),
            size: field(t + l.range_size),
            data: field(t + l.verified_data),
        });
    }
    if cycle {
        out.work.stop(format!(
            "{what}: nodes reached twice (a cycle): each read once"
        ));
    }
    let found = visited.len() as u64 - 1;
    if found != u64::from(count) {
        out.warnings.push(format!(
            "{what}: {found} nodes found, NumberGenericTableElements says {count}"
        ));
    }
}

/// Where one driver's tracker pages are read from, and into.
struct Walk<'a> {
    mem: &'a dyn VirtualMemory,
    ctx: &'a KernelContext<'a>,
    l: &'a TargetLayout,
    /// The big page table's tracker pages, read once when first needed.
    scanned: Option<ScannedPages>,
}

/// One driver's data and allocations. Its pages come from its `PoolPageHeaders` list; when
/// that cannot be decoded or followed to its end, the tracker pages the big page table has
/// for it and the list did not reach are read too.
fn driver(
    w: &mut Walk,
    node: Option<TargetNode>,
    data: u64,
    out: &mut VerifierTracking,
    budget: &mut Budget,
) {
    let (mem, l) = (w.mem, w.l);
    let mut d = driver_data(mem, l, node, data);
    let who = d.name.clone().unwrap_or_else(|| format!("{data:#x}"));
    let mut state = PageState::default();
    let complete = match (node, first_page(mem, l, data)) {
        (None, _) => false,
        (Some(_), Ok(first)) => walk_pages(mem, l, first, &mut d, &mut state, out, budget),
        (Some(_), Err(why)) => {
            out.work.stop(format!("{who}: {why}"));
            false
        }
    };
    if !complete {
        let pages = w.scanned.get_or_insert_with(|| scan(mem, w.ctx, l, out));
        let extra: Vec<u64> = pages
            .by_driver
            .get(&data)
            .map(|v| {
                v.iter()
                    .copied()
                    .filter(|p| !state.visited.contains(p))
                    .collect()
            })
            .unwrap_or_default();
        for page in extra {
            state.visited.insert(page);
            if let Err(why) = read_page(mem, l, page, &mut d, &mut state, out, budget) {
                out.work.stop(format!("{who}: {why}"));
            }
        }
    }
    state.report(&who, out);
    out.drivers.push(d);
}

/// The driver's name, counters and range, from its `_VF_TARGET_VERIFIED_DRIVER_DATA` and
/// `_VF_SUSPECT_DRIVER_ENTRY` (whatever of them the dump holds).
fn driver_data(
    mem: &dyn VirtualMemory,
    l: &TargetLayout,
    node: Option<TargetNode>,
    data: u64,
) -> VerifiedDriver {
    let buf = mem.read_vec(data, l.data_size as usize).ok();
    let suspect = buf
        .as_deref()
        .and_then(|b| uint(b, l.suspect_entry, 8))
        .filter(|&s| s != 0);
    let u32_at = |off: u64| suspect.and_then(|s| mem.read_u32(s.wrapping_add(off)).ok());
    VerifiedDriver {
        name: suspect
            .and_then(|s| read_unicode(mem, s.wrapping_add(l.suspect_name), l.unicode_buffer)),
        image_base: node.map(|n| n.base).filter(|&b| b != 0),
        image_size: node.map(|n| n.size).filter(|&s| s != 0),
        entry: data,
        flags: None,
        loads: u32_at(l.suspect_loads),
        unloads: u32_at(l.suspect_unloads),
        found_through: match node {
            Some(_) => FoundThrough::TargetDriverTree,
            None => FoundThrough::TrackerPageScan,
        },
        counters: buf.as_deref().and_then(|b| l.counters.decode(b)),
        allocations: Vec::new(),
        back_pointers: BackPointers::default(),
    }
}
