//! Uploads in flight: each holds a blocking thread and a temporary file while its bytes arrive,
//! so their number is bounded, and no tenant may hold more than half of them: one customer
//! sending many slow uploads leaves room for the others. A slot is taken when the bytes start
//! to flow (a dump or symbol upload, one chunk of a resumable upload) and given back when the
//! request ends, however it ends (the [`UploadSlot`] guard).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_tenant: HashMap<String, usize>,
}

/// The bound, and who holds what.
#[derive(Debug, Clone)]
pub struct UploadSlots {
    max: usize,
    counts: Arc<Mutex<Counts>>,
}

/// Why no slot was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Busy {
    /// Every slot is taken.
    Server,
    /// The tenant holds its share already.
    Tenant,
}

/// One upload in flight; its slot is free again when dropped.
#[derive(Debug)]
pub struct UploadSlot {
    tenant: String,
    counts: Arc<Mutex<Counts>>,
}

impl UploadSlots {
    /// `max` uploads in flight at most (at least 1).
    pub fn new(max: usize) -> Self {
        UploadSlots {
            max: max.max(1),
            counts: Arc::default(),
        }
    }

    /// Most uploads one tenant may have in flight: half of all, at least one.
    pub fn tenant_share(&self) -> usize {
        (self.max / 2).max(1)
    }

    pub fn take(&self, tenant: &str) -> Result<UploadSlot, Busy> {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if c.total >= self.max {
            return Err(Busy::Server);
        }
        let share = self.tenant_share();
        let mine = c.per_tenant.entry(tenant.to_string()).or_insert(0);
        if *mine >= share {
            return Err(Busy::Tenant);
        }
        *mine += 1;
        c.total += 1;
        Ok(UploadSlot {
            tenant: tenant.to_string(),
            counts: self.counts.clone(),
        })
    }
}

impl Drop for UploadSlot {
    fn drop(&mut self) {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_tenant.get_mut(&self.tenant) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                c.per_tenant.remove(&self.tenant);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_tenant_gets_half_and_slots_come_back_on_drop() {
        let slots = UploadSlots::new(4);
        let a1 = slots.take("acme").unwrap();
        let _a2 = slots.take("acme").unwrap();
        assert_eq!(slots.take("acme").unwrap_err(), Busy::Tenant);
        let _g1 = slots.take("globex").unwrap();
        let _g2 = slots.take("globex").unwrap();
        assert_eq!(slots.take("initech").unwrap_err(), Busy::Server);
        drop(a1);
        let _i = slots.take("initech").unwrap();
        assert_eq!(slots.take("acme").unwrap_err(), Busy::Server);
    }

    #[test]
    fn a_single_slot_server_still_takes_uploads() {
        let slots = UploadSlots::new(1);
        let s = slots.take("acme").unwrap();
        assert_eq!(slots.take("globex").unwrap_err(), Busy::Server);
        drop(s);
        assert!(slots.take("globex").is_ok());
    }
}
