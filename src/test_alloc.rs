//! Tests only: the global allocator counts the allocations a thread makes
//! while it asks to (`count`), so a test can show a hot path allocates
//! nothing. Other threads and other tests pay one thread-local read.

#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    static COUNT: Cell<Option<usize>> = const { Cell::new(None) };
}

// SAFETY: every call is passed to `System` unchanged; the count is a
// thread-local `Cell` of a `Copy` value, which allocates nothing.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        bump();
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        bump();
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

fn bump() {
    // `try_with`: a thread being torn down has no locals left.
    let _ = COUNT.try_with(|c| {
        if let Some(n) = c.get() {
            c.set(Some(n + 1));
        }
    });
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// What `f` returns, and how many allocations (and reallocations) this
/// thread made while it ran.
pub fn count<T>(f: impl FnOnce() -> T) -> (T, usize) {
    COUNT.with(|c| c.set(Some(0)));
    let out = f();
    let n = COUNT.with(|c| c.replace(None)).unwrap_or(0);
    (out, n)
}

#[test]
fn it_counts() {
    let (v, n) = count(|| vec![1u8; 10]);
    assert_eq!((v.len(), n), (10, 1));
    assert_eq!(count(|| 1 + 1), (2, 0));
}
