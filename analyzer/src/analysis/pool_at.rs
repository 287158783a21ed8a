//! `pooltriage pool-at DUMP ADDRESS`: WinDbg's `!pool ADDRESS` with the answer to "whose is
//! it?": the block holding the address and its page's neighbours, the block's owner and call
//! site with the evidence, its first bytes, and every pointer to it the dump holds.

use super::input::Input;
use super::pool_report::{attribute_tables, symbols_info};
use super::provenance::refs::for_each_pointer;
use super::provenance::{modules::writable_sections, trace, Collector};
use crate::attribution::Attributor;
use crate::memory::{VirtualMemory, PAGE_SIZE};
use crate::pool::pages::Block;
use crate::pool::scan::read_pool;
use crate::pool::{BlockSource, PoolError};
use crate::report::hex::Hex;
use crate::report::pool::DumpSummary;
use crate::report::pool_at::*;

/// Bytes of content shown (`!pool ADDRESS 1` shows a block's first bytes).
pub const CONTENT_BYTES: u64 = 0x40;
/// Most references listed.
pub const MAX_REFERENCES: usize = 64;

/// A walked block as `pool-at` keeps it.
#[derive(Debug, Clone, Copy)]
struct Kept {
    block: Block,
    source: BlockSource,
    billed: Option<u64>,
}

/// The `pool-at` report for `address`.
pub fn pool_at(input: &Input, address: u64, scan_drivers: bool) -> Result<PoolAtReport, PoolError> {
    let profile = input.profile.as_ref();
    let reader = read_pool(&input.dump, &input.kernel, profile)?;
    let attributor = attribute_tables(input, &reader, scan_drivers);
    let mut collector = Collector::new(&attributor, &input.kernel, reader.verifier());
    let page_of = address & !(PAGE_SIZE - 1);
    let mut kept: Vec<Kept> = Vec::new();
    let walk = reader.walk(&mut |b| {
        collector.add(b);
        let k = b.block;
        let end = k.address.saturating_add(k.size);
        let on_page = b.source != BlockSource::Big && k.address & !(PAGE_SIZE - 1) == page_of;
        if on_page || (k.address..end).contains(&address) {
            kept.push(Kept {
                block: *k,
                source: b.source,
                billed: b.billed_process,
            });
        }
    });
    let provenance = trace(&reader, &input.kernel, profile, collector, &attributor);
    kept.sort_by_key(|k| k.block.address);
    let target = kept
        .iter()
        .find(|k| {
            (k.block.address..k.block.address.saturating_add(k.block.size)).contains(&address)
        })
        .copied();
    if let Some(t) = target.filter(|t| t.source == BlockSource::Big) {
        kept.retain(|k| k.block.address == t.block.address);
    }
    let header = if reader.context().pointer_size == 8 {
        16
    } else {
        8
    };
    let page = listing(&kept, address, &attributor, &provenance);
    let content = target.and_then(|t| content(reader.memory(), &t, header));
    let (references, truncated, unread) = match target {
        Some(t) => references(&reader, input, &t),
        None => (Vec::new(), false, 0),
    };
    let scan = reader.finish(walk);
    let header_info = input.dump.header();
    Ok(PoolAtReport {
        schema_version: 1,
        kind: POOL_AT_KIND,
        address: Hex(address),
        dump: DumpSummary {
            format: input.dump.format().as_str(),
            arch: header_info.arch.as_str(),
            build: header_info.build,
            kernel_base: scan.kernel_base,
        },
        symbols: symbols_info(input),
        block: page.iter().find(|b| b.contains).cloned(),
        page,
        content,
        references,
        references_truncated: truncated,
        references_unread_pages: unread,
        warnings: scan.warnings,
        errors: scan.failures.iter().map(|f| f.to_string()).collect(),
    })
}

/// Keeps, during a walk, the block holding one address: the pool block a crash's bug check
/// names, reported as `pool-at` reports its block (without the page's neighbours, so its
/// `previous_size` is 0).
pub(super) struct BlockCatcher {
    address: u64,
    kept: Option<Kept>,
}

impl BlockCatcher {
    pub(super) fn new(address: u64) -> Self {
        BlockCatcher {
            address,
            kept: None,
        }
    }

    pub(super) fn add(&mut self, b: &crate::pool::scan::SeenBlock<'_>) {
        let k = b.block;
        if self.kept.is_none()
            && (k.address..k.address.saturating_add(k.size)).contains(&self.address)
        {
            self.kept = Some(Kept {
                block: *k,
                source: b.source,
                billed: b.billed_process,
            });
        }
    }

    pub(super) fn report(
        &self,
        attributor: &Attributor,
        provenance: &super::provenance::Provenance,
    ) -> Option<PoolAtBlock> {
        let k = self.kept?;
        listing(&[k], self.address, attributor, provenance).pop()
    }
}

/// The page's blocks as `!pool` lists them, with their owners.
fn listing(
    kept: &[Kept],
    address: u64,
    attributor: &Attributor,
    provenance: &super::provenance::Provenance,
) -> Vec<PoolAtBlock> {
    let mut previous = 0u64;
    kept.iter()
        .map(|k| {
            let b = &k.block;
            let description = attributor
                .mappings(b.tag.unprotected())
                .into_iter()
                .find_map(|m| m.description);
            let out = PoolAtBlock {
                address: Hex(b.address),
                size: b.size,
                previous_size: previous,
                tag: b.tag.to_string(),
                pool: b.pool,
                allocated: b.allocated,
                session: b.pool_type.session,
                source: k.source,
                billed_process: k.billed.map(Hex),
                contains: (b.address..b.address.saturating_add(b.size)).contains(&address),
                description,
                owner: provenance.block_at(b.address).map(|p| p.owner()),
            };
            previous = b.size;
            out
        })
        .collect()
}

/// The block's first bytes after its header (a big allocation has none).
fn content(mem: &dyn VirtualMemory, t: &Kept, header: u64) -> Option<Content> {
    let skip = if t.source == BlockSource::Big {
        0
    } else {
        header
    };
    let start = t.block.address + skip;
    let len = t.block.size.saturating_sub(skip).min(CONTENT_BYTES);
    let bytes = mem.read_vec(start, usize::try_from(len).ok()?).ok()?;
    Some(Content {
        address: Hex(start),
        hex: bytes.iter().map(|b| format!("{b:02x}")).collect(),
        ascii: bytes
            .iter()
            .map(|&b| {
                if (0x20..0x7f).contains(&b) {
                    b as char
                } else {
                    '.'
                }
            })
            .collect(),
    })
}

/// Every pointer into the target held by a module's writable data or another allocated
/// block (a third walk of the pool).
fn references(
    reader: &crate::pool::scan::PoolReader,
    input: &Input,
    t: &Kept,
) -> (Vec<Reference>, bool, u64) {
    let mem = reader.memory();
    let ptr = reader.context().pointer_size;
    let (start, end) = (
        t.block.address,
        t.block.address.saturating_add(t.block.size),
    );
    let mut page = vec![0u8; PAGE_SIZE as usize];
    let mut out = Vec::new();
    let mut truncated = false;
    let mut unread = 0;
    let mut note = |out: &mut Vec<Reference>, r: Reference| {
        if out.len() < MAX_REFERENCES {
            out.push(r);
        } else {
            truncated = true;
        }
    };
    for m in &input.kernel.modules.modules {
        for (s, size) in writable_sections(m) {
            unread += for_each_pointer(mem, ptr, s, size, &mut page, &mut |v, at| {
                if (start..end).contains(&v) {
                    note(
                        &mut out,
                        Reference {
                            at: Hex(at),
                            value: Hex(v),
                            module: Some(m.name.clone()),
                            block: None,
                            block_tag: None,
                        },
                    );
                }
            });
        }
    }
    let _ = reader.walk(&mut |b| {
        let k = b.block;
        if !k.allocated || k.address == start {
            return;
        }
        unread += for_each_pointer(mem, ptr, k.address, k.size, &mut page, &mut |v, at| {
            if (start..end).contains(&v) {
                note(
                    &mut out,
                    Reference {
                        at: Hex(at),
                        value: Hex(v),
                        module: None,
                        block: Some(Hex(k.address)),
                        block_tag: Some(k.tag.to_string()),
                    },
                );
            }
        });
    });
    (out, truncated, unread)
}
