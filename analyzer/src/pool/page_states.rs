//! Pool pages counted by what their page-table entries say, so that a report can tell a page
//! the dump lacks (a hole in the picture) from one paged out, one still in RAM in transition
//! (read, as WinDbg reads it) and one never committed (nothing lost). `memory::pte` decodes
//! the entries; docs/json.md "page_states" describes the fields.

use crate::memory::{Absence, MemoryError};
use serde::Serialize;

/// Pages of a walk by state. `paged_out`, `not_in_dump` and `prototype` are committed pages
/// the walk could not read ([`PageStates::missing`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PageStates {
    /// Transition PTE and the physical page in the dump: read.
    pub in_transition: u64,
    /// Paging-file PTE (or under a page table that is itself paged out: an upper bound).
    pub paged_out: u64,
    /// Valid or transition PTE whose physical page the dump did not store (or under a page
    /// table the dump did not store).
    pub not_in_dump: u64,
    /// Prototype PTE: section-backed, unexpected for pool, not followed.
    pub prototype: u64,
    /// Demand-zero or zero PTE, or no page table at all: nothing there to lose.
    pub never_committed: u64,
}

impl PageStates {
    /// Committed pages that could not be read.
    pub fn missing(&self) -> u64 {
        self.paged_out
            .saturating_add(self.not_in_dump)
            .saturating_add(self.prototype)
    }

    /// Counts `pages` absent pages.
    pub fn absent(&mut self, why: Absence, pages: u64) {
        let n = match why {
            Absence::NotInDump => &mut self.not_in_dump,
            Absence::PagedOut => &mut self.paged_out,
            Absence::Prototype => &mut self.prototype,
            Absence::NeverCommitted => &mut self.never_committed,
        };
        *n = n.saturating_add(pages);
    }

    /// Counts the page an error is about, when it is about a mapped page; returns whether the
    /// page counts as missing (committed, unread).
    pub fn error(&mut self, e: &MemoryError) -> bool {
        match e.absence() {
            Some(why) => {
                self.absent(why, 1);
                why != Absence::NeverCommitted
            }
            None => false,
        }
    }

    pub fn add(&mut self, o: &PageStates) {
        self.in_transition = self.in_transition.saturating_add(o.in_transition);
        self.paged_out = self.paged_out.saturating_add(o.paged_out);
        self.not_in_dump = self.not_in_dump.saturating_add(o.not_in_dump);
        self.prototype = self.prototype.saturating_add(o.prototype);
        self.never_committed = self.never_committed.saturating_add(o.never_committed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_is_the_committed_pages_not_read() {
        let mut s = PageStates::default();
        s.absent(Absence::PagedOut, 3);
        s.absent(Absence::NotInDump, 2);
        s.absent(Absence::Prototype, 1);
        s.absent(Absence::NeverCommitted, 100);
        s.in_transition = 7;
        assert_eq!(s.missing(), 6);
        assert!(s.error(&MemoryError::PageMissing { va: None, pa: 0 }));
        assert!(!s.error(&MemoryError::NotCommitted {
            va: 0,
            demand_zero: true
        }));
        assert!(!s.error(&MemoryError::NotMapped { va: 0 }));
        assert_eq!((s.not_in_dump, s.never_committed), (3, 101));
    }
}
