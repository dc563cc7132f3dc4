//! The init's memory allocator: small, because every kilobyte of the init counts.
//!
//! musl's mallocng is about 9 KB of code; this one is a fraction of that and fits how
//! imprint allocates (few, long-lived objects, plus a few large I/O buffers):
//! - Small blocks (up to 16 KiB) come in power-of-two size classes, carved from 64 KiB
//!   mappings that hold one class each. Freed blocks go on their class's free list, which
//!   later allocations reuse first. A block needs no header: `dealloc` is handed the same
//!   layout as `alloc`, and the layout names the class.
//! - Large blocks get their own mapping; freeing unmaps it, so a 4 MiB write buffer is
//!   returned to the kernel at once.
//!
//! Power-of-two classes waste up to half a block; for imprint's small objects that is a
//! few kilobytes against a budget of megabytes. Blocks are naturally aligned to their
//! class size up to a page (mappings are page aligned); no alignment beyond a page is
//! offered. Nothing of the C library imprint calls allocates (directories are read with
//! getdents64, not opendir), so musl's malloc is not linked at all: keep it so.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr;

const ARENA: usize = 64 * 1024;
const PAGE: usize = 4096;
/// Smallest class: 16 bytes (two pointers; malloc's alignment guarantee on x86_64).
const MIN_SHIFT: u32 = 4;
/// Largest small class: 16 KiB (four blocks per arena).
const MAX_SHIFT: u32 = 14;
const CLASSES: usize = (MAX_SHIFT - MIN_SHIFT + 1) as usize;

/// `#[global_allocator]` of the init. Per class: the most recently freed block (each free
/// block starts with the next).
pub struct Allocator {
    free: UnsafeCell<[*mut u8; CLASSES]>,
}

// SAFETY: the only threads besides the main one are a DirectRing's I/O threads
// (sys::block), whose body allocates nothing (musl maps their stacks itself, not through
// this allocator), so the state is never touched by two threads at once. The allocator is
// not used by the host's test harness, which is multi-threaded, except through per-test
// instances.
unsafe impl Sync for Allocator {}

/// The class of a layout, `None` for a large block.
fn class_of(layout: Layout) -> Option<usize> {
    let need = layout.size().max(layout.align()).max(1);
    let shift = usize::BITS - (need - 1).leading_zeros();
    (need <= 1 << MAX_SHIFT).then(|| (shift.max(MIN_SHIFT) - MIN_SHIFT) as usize)
}

/// A fresh anonymous mapping of `len` bytes (page aligned), or null.
fn map(len: usize) -> *mut u8 {
    let (prot, flags) =
        (libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS);
    // SAFETY: an anonymous private mapping of fresh memory, at an address the kernel picks.
    let raw = unsafe { libc::mmap(ptr::null_mut(), len, prot, flags, -1, 0) };
    (raw != libc::MAP_FAILED).then_some(raw.cast()).unwrap_or(ptr::null_mut())
}

// SAFETY: alloc returns null or a block of at least layout.size() bytes aligned to
// layout.align() (refusing alignments beyond a page) that stays valid until dealloc, which
// is handed the same layout and so finds the same class or mapping length. Blocks are
// only ever on one free list at a time; single-threaded (see `Sync`). (The default
// alloc_zeroed zeroes explicitly, as reused blocks hold old data; the default realloc
// allocates, copies and deallocates.)
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() > PAGE {
            return ptr::null_mut();
        }
        let Some(class) = class_of(layout) else { return map(layout.size()) };
        let size = 1 << (class as u32 + MIN_SHIFT);
        let free = &mut (*self.free.get())[class];
        if free.is_null() {
            // A new arena for the class: all its blocks go on the free list, lowest first.
            let arena = map(ARENA);
            if arena.is_null() {
                return arena;
            }
            for offset in (0..ARENA).step_by(size).rev() {
                *(arena.add(offset) as *mut *mut u8) = *free;
                *free = arena.add(offset);
            }
        }
        let block = *free;
        *free = *(block as *mut *mut u8);
        block
    }

    /// Kept out of line: inlined, it would be repeated at every drop.
    #[inline(never)]
    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        match class_of(layout) {
            Some(class) => {
                let free = &mut (*self.free.get())[class];
                *(block as *mut *mut u8) = *free;
                *free = block;
            }
            None => _ = libc::munmap(block.cast(), layout.size()),
        }
    }
}

/// The one allocator of the init (its `#[global_allocator]`). Host test builds keep the
/// host's allocator.
#[cfg_attr(all(not(test), target_env = "musl"), global_allocator)]
pub static ALLOCATOR: Allocator = Allocator { free: UnsafeCell::new([ptr::null_mut(); CLASSES]) };

#[cfg(test)]
mod tests {
    use super::*;

    impl Allocator {
        fn new() -> Allocator {
            Allocator { free: UnsafeCell::new([ptr::null_mut(); CLASSES]) }
        }
    }

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn classes_are_powers_of_two() {
        assert_eq!(class_of(layout(1, 1)), Some(0));
        assert_eq!(class_of(layout(16, 8)), Some(0));
        assert_eq!(class_of(layout(17, 8)), Some(1));
        assert_eq!(class_of(layout(8, 64)), Some(2), "the alignment counts as size");
        assert_eq!(class_of(layout(4096, 8)), Some(8));
        assert_eq!(class_of(layout(16384, 8)), Some(CLASSES - 1));
        assert_eq!(class_of(layout(16385, 8)), None);
    }

    #[test]
    fn blocks_are_aligned_disjoint_reused_and_keep_data() {
        let a = Allocator::new();
        let mut blocks = std::vec::Vec::new();
        for (i, size) in [1usize, 8, 16, 24, 100, 1000, 5000, 16384, 20000, 4 << 20]
            .iter()
            .cycle()
            .take(400)
            .enumerate()
        {
            let align = if i % 3 == 0 { 64 } else { 8 };
            // SAFETY: (test) layouts of non-zero size.
            let p = unsafe { a.alloc(layout(*size, align)) };
            assert!(!p.is_null());
            assert_eq!(p as usize % align, 0);
            if *size > 16384 {
                assert_eq!(p as usize % PAGE, 0, "large blocks are page aligned");
            }
            // SAFETY: (test) p holds at least `size` bytes.
            unsafe { ptr::write_bytes(p, (i % 251) as u8, *size) };
            blocks.push((p, *size, align, (i % 251) as u8));
        }
        // Every block still holds what was written: no two overlap.
        for &(p, size, _, fill) in &blocks {
            // SAFETY: (test) as above.
            let bytes = unsafe { core::slice::from_raw_parts(p, size) };
            assert!(bytes.iter().all(|&b| b == fill));
        }
        for &(p, size, align, _) in &blocks {
            // SAFETY: (test) each block with the layout it was allocated with.
            unsafe { a.dealloc(p, layout(size, align)) };
        }
        // The most recently freed block of a class is reused first.
        // SAFETY: (test) a layout of non-zero size.
        let again = unsafe { a.alloc(layout(8, 8)) };
        let last_16 = blocks.iter().rev().find(|b| b.1 <= 16 && b.2 == 8).unwrap().0;
        assert_eq!(again, last_16);
        // SAFETY: (test) a layout beyond a page of alignment.
        assert!(unsafe { a.alloc(layout(1 << 20, 8192)) }.is_null(), "refused");
    }

    #[test]
    fn realloc_moves_with_the_data() {
        let a = Allocator::new();
        let layout = layout(10, 8);
        // SAFETY: (test) a layout of non-zero size; p holds 10 bytes, q at least 100_000
        // with the first 10 copied, as GlobalAlloc::realloc promises.
        unsafe {
            let p = a.alloc(layout);
            ptr::copy_nonoverlapping(b"0123456789".as_ptr(), p, 10);
            let q = a.realloc(p, layout, 100_000);
            assert_eq!(core::slice::from_raw_parts(q, 10), b"0123456789");
            a.dealloc(q, Layout::from_size_align(100_000, 8).unwrap());
        }
    }
}
