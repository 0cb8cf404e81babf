//! What an algorithm precomputes for one endpoint set, cached lock-free.
//!
//! The table's set changes rarely (scale, reload, a static upstream added or
//! removed); health changes never rebuild it. So an algorithm builds its
//! schedule or table once per set and every pick after that costs one
//! `ArcSwapOption::load` (a thread-local slot, no shared counter) and one
//! comparison of the set's generation.

use std::sync::Arc;

use arc_swap::ArcSwapOption;

use super::EndpointSet;

pub(super) struct PerSet<T> {
    slot: ArcSwapOption<Built<T>>,
}

struct Built<T> {
    generation: u64,
    value: T,
}

impl<T> Default for PerSet<T> {
    fn default() -> Self {
        PerSet {
            slot: ArcSwapOption::empty(),
        }
    }
}

impl<T> PerSet<T> {
    /// Runs `f` on the value built for `set`, building it with `build` when
    /// the cached one belongs to another set. Two threads that both see a new
    /// set may both build; one of the results is kept. Neither waits.
    #[inline]
    pub(super) fn with<R>(
        &self,
        set: &EndpointSet,
        build: impl FnOnce(&EndpointSet) -> T,
        f: impl FnOnce(&T) -> R,
    ) -> R {
        if set.generation() == 0 {
            // A default set someone filled in by hand: it has no identity.
            return f(&build(set));
        }
        {
            let cached = self.slot.load();
            if let Some(built) = cached.as_deref() {
                if built.generation == set.generation() {
                    return f(&built.value);
                }
            }
        }
        let built = Arc::new(Built {
            generation: set.generation(),
            value: build(set),
        });
        self.slot.store(Some(built.clone()));
        f(&built.value)
    }
}
