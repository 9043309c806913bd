//! The guest's global allocator: talc, with a free-list cache in front for
//! small blocks.
//!
//! Why a cache of our own in front of a maintained allocator: a strategy
//! allocates and frees a few short strings per detection (a pattern, a
//! label), and under callgrind talc spent about 200 instructions per small
//! allocate/free pair on its bins, a third of a whole 100-object call. A
//! block of up to 64 bytes here comes from one singly linked free list per
//! 8-byte size class (pop and push, a few instructions); it is never given
//! back to talc, so the cache holds at most the peak of small blocks a
//! strategy had alive at once. Everything larger, and every realloc between
//! two large sizes, goes to talc unchanged.
//!
//! Built only for single-threaded WebAssembly (no `atomics`), where the
//! `Sync` below is sound: there is one thread.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr::null_mut;

const CLASS_BYTES: usize = 8;
const CLASSES: usize = 8;
const MAX_SMALL: usize = CLASS_BYTES * CLASSES;

/// `inner` serves what the cache does not (talc in a component; the
/// unit tests use the system allocator).
struct Cached<A> {
    inner: A,
    /// Head of each size class's free list; a free block's first word
    /// points to the next.
    free: UnsafeCell<[*mut u8; CLASSES]>,
}

impl<A> Cached<A> {
    const fn new(inner: A) -> Self {
        Cached { inner, free: UnsafeCell::new([null_mut(); CLASSES]) }
    }
}

// SAFETY: single-threaded WebAssembly only (see the cfg on the global).
#[cfg(all(feature = "talc", target_family = "wasm", not(target_feature = "atomics")))]
unsafe impl<A> Sync for Cached<A> {}

#[cfg(all(feature = "talc", target_family = "wasm", not(target_feature = "atomics")))]
#[global_allocator]
static ALLOCATOR: Cached<talc::wasm::WasmDynamicTalc> = Cached::new(talc::wasm::new_wasm_dynamic_allocator());

/// The size class of a small, at most 8-aligned layout.
#[inline]
fn class(layout: Layout) -> Option<usize> {
    (layout.size() <= MAX_SMALL && layout.align() <= CLASS_BYTES)
        .then(|| layout.size().max(1).div_ceil(CLASS_BYTES) - 1)
}

/// The layout a block of `class` has in talc.
#[inline]
fn class_layout(class: usize) -> Layout {
    // (class + 1) * 8 <= 64 with alignment 8 is always a valid layout.
    unsafe { Layout::from_size_align_unchecked((class + 1) * CLASS_BYTES, CLASS_BYTES) }
}

unsafe impl<A: GlobalAlloc> GlobalAlloc for Cached<A> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match class(layout) {
            Some(class) => {
                // SAFETY: one thread; the list holds only blocks this
                // allocator freed into this class, each at least 8 bytes.
                unsafe {
                    let free = &mut *self.free.get();
                    let head = free[class];
                    if head.is_null() {
                        return self.inner.alloc(class_layout(class));
                    }
                    free[class] = *(head as *mut *mut u8);
                    head
                }
            }
            None => unsafe { self.inner.alloc(layout) },
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        match class(layout) {
            // SAFETY: `ptr` was allocated with this layout, so it is a block
            // of `class` (at least 8 bytes, 8-aligned) and now unused.
            Some(class) => unsafe {
                let free = &mut *self.free.get();
                *(ptr as *mut *mut u8) = free[class];
                free[class] = ptr;
            },
            None => unsafe { self.inner.dealloc(ptr, layout) },
        }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract (a valid layout of `new_size` with
        // the same alignment) passes through.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (class(layout), class(new_layout)) {
            // Both large: talc may grow or shrink in place.
            (None, None) => unsafe { self.inner.realloc(ptr, layout, new_size) },
            // Same small class: the block already fits.
            (Some(a), Some(b)) if a == b => ptr,
            _ => unsafe {
                let new = self.alloc(new_layout);
                if !new.is_null() {
                    core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                    self.dealloc(ptr, layout);
                }
                new
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::alloc::System;

    #[test]
    fn small_blocks_are_reused_by_class_and_large_ones_pass_through() {
        let cache = Cached::new(System);
        unsafe {
            let six = Layout::from_size_align(6, 1).unwrap();
            let a = cache.alloc(six);
            a.copy_from_nonoverlapping(b"person".as_ptr(), 6);
            cache.dealloc(a, six);
            // Same class (1..=8 bytes): the freed block comes back.
            let b = cache.alloc(Layout::from_size_align(8, 8).unwrap());
            assert_eq!(a, b);
            // Another class gets another block.
            let c = cache.alloc(Layout::from_size_align(9, 1).unwrap());
            assert_ne!(b, c);
            // Growing within the class keeps the block; past it, the bytes move.
            let grown = cache.realloc(c, Layout::from_size_align(9, 1).unwrap(), 16);
            assert_eq!(grown, c);
            grown.copy_from_nonoverlapping(b"0123456789abcdef".as_ptr(), 16);
            let large = cache.realloc(grown, Layout::from_size_align(16, 1).unwrap(), 1000);
            assert_eq!(std::slice::from_raw_parts(large, 16), b"0123456789abcdef");
            // The block it left is free in its class again.
            assert_eq!(cache.alloc(Layout::from_size_align(12, 4).unwrap()), c);
            cache.dealloc(large, Layout::from_size_align(1000, 1).unwrap());
            // Over-aligned small layouts are not cached.
            assert_eq!(class(Layout::from_size_align(8, 16).unwrap()), None);
            assert_eq!(class(Layout::from_size_align(64, 8).unwrap()), Some(7));
            assert_eq!(class(Layout::from_size_align(65, 8).unwrap()), None);
        }
    }
}
