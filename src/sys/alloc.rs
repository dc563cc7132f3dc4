//! The global allocator of the init: musl's malloc, which is small and already linked.

use core::alloc::{GlobalAlloc, Layout};
use core::ffi::c_void;

/// `#[global_allocator]` over the C library's malloc family.
pub struct Malloc;

/// malloc's own guarantee on x86_64 (musl and glibc): 16-byte aligned blocks.
const MALLOC_ALIGN: usize = 16;

// SAFETY: malloc/calloc/realloc/free and aligned_alloc satisfy GlobalAlloc's contract: they
// return either null or a block of at least `size` bytes with the requested alignment
// (aligned_alloc for alignments above malloc's), blocks stay valid until freed, and `free`
// accepts any pointer these returned. realloc preserves contents and is only used when the
// alignment is one malloc already provides.
unsafe impl GlobalAlloc for Malloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= MALLOC_ALIGN {
            libc::malloc(layout.size()).cast()
        } else {
            // aligned_alloc wants a size that is a multiple of the alignment.
            let size = layout.size().next_multiple_of(layout.align());
            libc::aligned_alloc(layout.align(), size).cast()
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= MALLOC_ALIGN {
            libc::calloc(1, layout.size()).cast()
        } else {
            let p = self.alloc(layout);
            if !p.is_null() {
                core::ptr::write_bytes(p, 0, layout.size());
            }
            p
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        libc::free(ptr.cast::<c_void>())
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if layout.align() <= MALLOC_ALIGN {
            libc::realloc(ptr.cast(), new_size).cast()
        } else {
            let new = self.alloc(Layout::from_size_align_unchecked(new_size, layout.align()));
            if !new.is_null() {
                core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            new
        }
    }
}
