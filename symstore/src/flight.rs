//! Single flight: concurrent requests for the same key inside one process share one fetch.
//! The first caller (the leader) does the work; the others wait for its result. (Across
//! processes, downloads land in a temp file renamed into place, so the worst case there is a
//! duplicate download, never a torn file.)

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

struct Slot<T> {
    result: Mutex<Option<T>>,
    done: Condvar,
}

pub(crate) struct SingleFlight<T: Clone> {
    slots: Mutex<HashMap<String, Arc<Slot<T>>>>,
}

fn lock<U>(m: &Mutex<U>) -> MutexGuard<'_, U> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Publishes the leader's result even if the leader panics (`on_panic`), so followers never
/// wait forever.
struct Publish<'a, T: Clone> {
    flight: &'a SingleFlight<T>,
    key: &'a str,
    slot: Arc<Slot<T>>,
    on_panic: Option<T>,
}

impl<T: Clone> Publish<'_, T> {
    fn set(&mut self, value: T) {
        *lock(&self.slot.result) = Some(value);
        self.on_panic = None;
    }
}

impl<T: Clone> Drop for Publish<'_, T> {
    fn drop(&mut self) {
        if let Some(v) = self.on_panic.take() {
            *lock(&self.slot.result) = Some(v);
        }
        lock(&self.flight.slots).remove(self.key);
        self.slot.done.notify_all();
    }
}

impl<T: Clone> SingleFlight<T> {
    pub fn new() -> Self {
        SingleFlight {
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// Runs `work` unless a call with the same key is in progress, in which case its result is
    /// returned instead. `on_panic` is what waiters get if the leader panics.
    pub fn run(&self, key: &str, on_panic: T, work: impl FnOnce() -> T) -> T {
        let (slot, leader) = {
            let mut slots = lock(&self.slots);
            match slots.get(key) {
                Some(s) => (Arc::clone(s), false),
                None => {
                    let s = Arc::new(Slot {
                        result: Mutex::new(None),
                        done: Condvar::new(),
                    });
                    slots.insert(key.to_string(), Arc::clone(&s));
                    (s, true)
                }
            }
        };
        if leader {
            let mut publish = Publish {
                flight: self,
                key,
                slot,
                on_panic: Some(on_panic),
            };
            let value = work();
            publish.set(value.clone());
            value
        } else {
            let mut result = lock(&slot.result);
            loop {
                if let Some(v) = result.as_ref() {
                    return v.clone();
                }
                result = slot.done.wait(result).unwrap_or_else(|e| e.into_inner());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[test]
    fn concurrent_callers_share_one_run() {
        let flight = SingleFlight::<u32>::new();
        let runs = AtomicUsize::new(0);
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        flight.run("k", 0, || {
                            runs.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(200));
                            7
                        })
                    })
                })
                .collect();
            for h in handles {
                assert_eq!(h.join().unwrap(), 7);
            }
        });
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        // Finished keys are forgotten: the next call runs again.
        assert_eq!(flight.run("k", 0, || 9), 9);
    }

    #[test]
    fn waiters_get_the_fallback_when_the_leader_panics() {
        let flight = SingleFlight::<u32>::new();
        std::thread::scope(|s| {
            let leader = s.spawn(|| {
                flight.run("k", 42, || {
                    std::thread::sleep(Duration::from_millis(200));
                    panic!("boom")
                })
            });
            std::thread::sleep(Duration::from_millis(50));
            let waiter = s.spawn(|| flight.run("k", 0, || 1));
            assert!(leader.join().is_err());
            assert_eq!(waiter.join().unwrap(), 42);
        });
    }
}
