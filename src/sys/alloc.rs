//! The init's memory allocator: small, because every kilobyte of the init counts.
//!
//! musl's mallocng is about 9 KB of code; this one is a fraction of that and fits how
//! imprint allocates (few, long-lived objects, plus a few large I/O buffers):
//! - Small blocks (up to 16 KiB) come in power-of-two size classes, carved from 64 KiB
//!   arenas that hold one class each. An arena's first block holds its header (the class),
//!   so `free(ptr)` finds the class by rounding the pointer down to the arena. Freed blocks
//!   go on their class's free list, which later allocations reuse first.
//! - Large blocks get their own mapping, 64 KiB aligned, with the header in its first page
//!   and the block from the second page on; freeing unmaps them, so a 4 MiB write buffer
//!   is returned to the kernel at once.
//!
//! Power-of-two classes waste up to half a block; for imprint's small objects that is a
//! few kilobytes against a budget of megabytes. Blocks are naturally aligned to their
//! class size (arenas are aligned to their size); large blocks to a page.
//!
//! Nothing of the C library imprint calls allocates (directories are read with
//! getdents64, not opendir), so musl's malloc is not linked at all: keep it so.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ffi::c_void;
use core::ptr;

const ARENA: usize = 64 * 1024;
const PAGE: usize = 4096;
/// Smallest class: 16 bytes (two pointers; malloc's alignment guarantee on x86_64).
const MIN_SHIFT: u32 = 4;
/// Largest small class: 16 KiB (four blocks per arena, one of them the header).
const MAX_SHIFT: u32 = 14;
const CLASSES: usize = (MAX_SHIFT - MIN_SHIFT + 1) as usize;
/// Marks an arena or large mapping as ours (a stray pointer to free is caught).
const MAGIC: u32 = 0x1b9_71a7;
/// Header `class` value of a large mapping.
const LARGE: u32 = u32::MAX;

/// At the start of every arena and large mapping.
#[repr(C)]
struct Header {
    magic: u32,
    class: u32,
    /// Large mappings: the length mapped.
    mapped: usize,
}

/// Per class: the most recently freed block (each free block starts with the next).
struct State {
    free: [*mut u8; CLASSES],
}

/// `#[global_allocator]` of the init.
pub struct Allocator {
    state: UnsafeCell<State>,
}

// SAFETY: imprint never creates threads (PID 1 forks only to exec a shell), so the state is
// never touched by two threads at once. The allocator is not used by the host's test
// harness, which is multi-threaded, except through per-test instances.
unsafe impl Sync for Allocator {}

impl Allocator {
    pub const fn new() -> Allocator {
        Allocator { state: UnsafeCell::new(State { free: [ptr::null_mut(); CLASSES] }) }
    }

    /// A block of at least `size` bytes aligned to `align` (a power of two), or null.
    fn allocate(&self, size: usize, align: usize) -> *mut u8 {
        let need = size.max(align).max(1);
        if need > 1 << MAX_SHIFT {
            return if align <= PAGE { allocate_large(size) } else { ptr::null_mut() };
        }
        let class = class_of(need);
        let block_size = 1 << (class as u32 + MIN_SHIFT);
        // SAFETY: single-threaded (see `Sync`); the free lists only ever hold blocks of
        // arenas this allocator mapped, at block boundaries of the class's size.
        unsafe {
            let s = &mut *self.state.get();
            if s.free[class].is_null() {
                // A new arena for the class: its first block holds the header, the others
                // go on the free list, the lowest first.
                let arena = map_aligned(ARENA);
                if arena.is_null() {
                    return ptr::null_mut();
                }
                arena.cast::<Header>().write(Header {
                    magic: MAGIC,
                    class: class as u32,
                    mapped: ARENA,
                });
                for offset in (block_size..ARENA).step_by(block_size).rev() {
                    *(arena.add(offset) as *mut *mut u8) = s.free[class];
                    s.free[class] = arena.add(offset);
                }
            }
            let block = s.free[class];
            s.free[class] = *(block as *mut *mut u8);
            block
        }
    }

    /// Returns a block to the allocator. `block` must come from `allocate` (or be null).
    fn release(&self, block: *mut u8) {
        if block.is_null() {
            return;
        }
        // SAFETY: every block comes from an arena or large mapping whose header sits at the
        // block's address rounded down to ARENA (blocks never start at offset 0); the
        // header was written when the arena was mapped. Single-threaded (see `Sync`).
        unsafe {
            let header = &*header_of(block);
            assert!(header.magic == MAGIC, "free of a pointer the allocator never returned");
            if header.class == LARGE {
                libc::munmap(header_of(block).cast(), header.mapped);
            } else {
                let s = &mut *self.state.get();
                let class = header.class as usize;
                *(block as *mut *mut u8) = s.free[class];
                s.free[class] = block;
            }
        }
    }
}

fn class_of(need: usize) -> usize {
    let shift = usize::BITS - (need - 1).leading_zeros();
    (shift.max(MIN_SHIFT) - MIN_SHIFT) as usize
}

fn header_of(block: *mut u8) -> *mut Header {
    (block as usize & !(ARENA - 1)) as *mut Header
}

fn allocate_large(size: usize) -> *mut u8 {
    let mapped = match size.checked_add(PAGE + PAGE - 1) {
        Some(n) => n & !(PAGE - 1),
        None => return ptr::null_mut(),
    };
    let base = map_aligned(mapped);
    if base.is_null() {
        return base;
    }
    // SAFETY: base is a fresh mapping of `mapped` >= 2 pages, writable.
    unsafe {
        base.cast::<Header>().write(Header { magic: MAGIC, class: LARGE, mapped });
        base.add(PAGE)
    }
}

/// Maps `len` bytes (a multiple of the page size) at an ARENA-aligned address, or null.
fn map_aligned(len: usize) -> *mut u8 {
    let span = len + ARENA;
    // SAFETY: an anonymous private mapping of fresh memory; we unmap only its unaligned
    // head and the tail beyond `len`, both inside the mapping just made.
    unsafe {
        let raw = libc::mmap(
            ptr::null_mut(),
            span,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if raw == libc::MAP_FAILED {
            return ptr::null_mut();
        }
        let start = raw as usize;
        let aligned = (start + ARENA - 1) & !(ARENA - 1);
        if aligned > start {
            libc::munmap(raw, aligned - start);
        }
        let tail = start + span - (aligned + len);
        if tail > 0 {
            libc::munmap((aligned + len) as *mut c_void, tail);
        }
        aligned as *mut u8
    }
}

// SAFETY: allocate returns null or a block of at least layout.size() bytes aligned to
// layout.align() that stays valid until released; release takes exactly such blocks. (The
// default alloc_zeroed zeroes explicitly, as reused blocks hold old data; the default
// realloc allocates, copies and releases.)
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.allocate(layout.size(), layout.align())
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        self.release(ptr)
    }
}

/// The one allocator of the init (its `#[global_allocator]`). Host test builds keep the
/// host's allocator.
#[cfg_attr(all(not(test), target_env = "musl"), global_allocator)]
pub static ALLOCATOR: Allocator = Allocator::new();

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_are_powers_of_two() {
        assert_eq!(class_of(1), 0);
        assert_eq!(class_of(16), 0);
        assert_eq!(class_of(17), 1);
        assert_eq!(class_of(4096), 8);
        assert_eq!(class_of(16384), CLASSES - 1);
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
            let p = a.allocate(*size, align);
            assert!(!p.is_null());
            assert_eq!(p as usize % align, 0);
            if *size > 16384 {
                assert_eq!(p as usize % PAGE, 0, "large blocks are page aligned");
            }
            // SAFETY: (test) p holds at least `size` bytes.
            unsafe { ptr::write_bytes(p, (i % 251) as u8, *size) };
            blocks.push((p, *size, (i % 251) as u8));
        }
        // Every block still holds what was written: no two overlap.
        for &(p, size, fill) in &blocks {
            // SAFETY: (test) as above.
            let bytes = unsafe { core::slice::from_raw_parts(p, size) };
            assert!(bytes.iter().all(|&b| b == fill));
        }
        let (first, _, _) = blocks[1];
        for &(p, _, _) in &blocks {
            a.release(p);
        }
        // The most recently freed block of a class is reused first.
        let again = a.allocate(8, 8);
        assert!(blocks.iter().any(|&(p, s, _)| p == again && s <= 16), "{again:?} {first:?}");
    }

    #[test]
    fn realloc_moves_with_the_data() {
        let a = Allocator::new();
        let layout = Layout::from_size_align(10, 8).unwrap();
        // SAFETY: (test) a layout of non-zero size; p holds 10 bytes, q at least 100_000
        // with the first 10 copied, as GlobalAlloc::realloc promises.
        unsafe {
            let p = a.alloc(layout);
            ptr::copy_nonoverlapping(b"0123456789".as_ptr(), p, 10);
            let q = a.realloc(p, layout, 100_000);
            assert_eq!(core::slice::from_raw_parts(q, 10), b"0123456789");
            a.dealloc(q, Layout::from_size_align(100_000, 8).unwrap());
        }
        assert!(a.allocate(1 << 20, 8192).is_null(), "alignment beyond a page is refused");
    }
}
