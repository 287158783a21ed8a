//! Which blocks need provenance: a block's tag names its owner only when one module's code
//! allocates with it. 'None' (every ExAllocatePool caller's), a tag several modules' code
//! allocates with, and a Windows tag that a driver's code also uses name no one: those blocks
//! are *ambiguous* and their owner must come from other evidence.

use crate::attribution::{Attributor, Source};
use crate::pool::Tag;
use std::collections::HashMap;

/// The tag ExAllocatePool gives its blocks.
pub const UNTAGGED: Tag = Tag(*b"None");

/// What a tag says about its blocks' owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagClass {
    /// One module's code allocates with it: the module (an index into the module list).
    Owned(u16),
    /// Several modules' code, or 'None': the owner must come from other evidence.
    Ambiguous,
    /// No module's code is known to allocate with it (a Windows tag, or an unknown one).
    Unowned,
}

/// Tag classes, computed once per distinct tag from the attributor's code evidence.
pub struct TagClasses<'a> {
    attributor: &'a Attributor,
    /// Module name (lower case) -> index into the module list.
    module_index: HashMap<String, u16>,
    cache: HashMap<Tag, TagClass>,
}

impl<'a> TagClasses<'a> {
    pub fn new(attributor: &'a Attributor, modules: &[String]) -> Self {
        let module_index = modules
            .iter()
            .enumerate()
            .filter_map(|(i, m)| Some((m.to_ascii_lowercase(), u16::try_from(i).ok()?)))
            .collect();
        TagClasses {
            attributor,
            module_index,
            cache: HashMap::new(),
        }
    }

    /// The class of `tag` (its protected form, XP/7's high bit, is the same tag).
    pub fn class(&mut self, tag: Tag) -> TagClass {
        let tag = tag.unprotected();
        if let Some(c) = self.cache.get(&tag) {
            return *c;
        }
        let c = self.compute(tag);
        self.cache.insert(tag, c);
        c
    }

    fn compute(&self, tag: Tag) -> TagClass {
        if tag == UNTAGGED {
            return TagClass::Ambiguous;
        }
        let mut owners: Vec<u16> = self
            .attributor
            .mappings(tag)
            .iter()
            .filter(|m| m.source == Source::DriverCodeAllocation)
            .filter_map(|m| m.module.as_deref())
            .filter_map(|m| self.module_index.get(&m.to_ascii_lowercase()).copied())
            .collect();
        owners.sort_unstable();
        owners.dedup();
        match owners[..] {
            [] => TagClass::Unowned,
            [one] => TagClass::Owned(one),
            _ => TagClass::Ambiguous,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attribution::{Allocator, AllocatorKind, CodeRegion};

    #[test]
    fn none_is_ambiguous_a_tag_of_two_modules_too_and_one_modules_tag_is_owned() {
        let mut a = Attributor::new(None);
        // Every call's slot is ExAllocatePoolWithTag's.
        let with_tag = |_: u64| {
            Some(Allocator {
                kind: AllocatorKind::PoolType,
                name: "ExAllocatePoolWithTag",
            })
        };
        // mov r8d, 'Acme'; call [rip+0] in two modules, 'Solo' in one.
        let code = |tag: &[u8; 4]| {
            let mut v = vec![0x41, 0xb8];
            v.extend_from_slice(tag);
            v.extend_from_slice(&[0xff, 0x15, 0, 0, 0, 0]);
            v
        };
        let cands = [Tag(*b"Acme"), Tag(*b"Solo")];
        for (name, tag) in [("a.sys", b"Acme"), ("b.sys", b"Acme"), ("c.sys", b"Solo")] {
            a.add_code_with(
                name,
                64,
                &[CodeRegion {
                    address: 0x1000,
                    bytes: code(tag),
                }],
                &cands,
                &with_tag,
            );
        }
        let mods: Vec<String> = ["a.sys", "b.sys", "c.sys"].map(String::from).to_vec();
        let mut c = TagClasses::new(&a, &mods);
        assert_eq!(c.class(UNTAGGED), TagClass::Ambiguous);
        assert_eq!(c.class(Tag(*b"Acme")), TagClass::Ambiguous);
        assert_eq!(c.class(Tag(*b"Solo")), TagClass::Owned(2));
        assert_eq!(c.class(Tag(*b"Nope")), TagClass::Unowned);
    }
}
