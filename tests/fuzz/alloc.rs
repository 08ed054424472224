//! A counting global allocator: the peak bytes a decoder allocates at once on its thread,
//! and the bound it must stay under.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    static MEASURING: Cell<bool> = const { Cell::new(false) };
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn on_alloc(size: usize) {
    let _ = MEASURING.try_with(|m| {
        if m.get() {
            let live = LIVE.with(|l| {
                let v = l.get().saturating_add(size);
                l.set(v);
                v
            });
            PEAK.with(|p| p.set(p.get().max(live)));
        }
    });
}

fn on_free(size: usize) {
    let _ = MEASURING.try_with(|m| {
        if m.get() {
            LIVE.with(|l| l.set(l.get().saturating_sub(size)));
        }
    });
}

/// Requests above this are mapped lazily instead of given to `System`: a decoder that
/// trusts a length asks for hundreds of gigabytes, which `System` refuses, and the
/// process would abort. Mapped without reserve, the request succeeds without using the
/// memory, the decoder returns, and the bound check fails as an ordinary, shrinkable
/// test failure.
const LAZY: usize = 1 << 30;

fn lazy_map(layout: Layout) -> *mut u8 {
    if layout.align() > 4096 {
        return std::ptr::null_mut();
    }
    // SAFETY: an anonymous private mapping, no file, no fixed address.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            layout.size(),
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        std::ptr::null_mut()
    } else {
        p.cast()
    }
}

// SAFETY: requests up to `LAZY` are passed to `System` unchanged, larger ones are mapped
// (zeroed, page aligned) and unmapped by size, which `dealloc` and `realloc` are given.
// The bookkeeping only touches const-initialised thread-locals (no allocation, no
// destructor).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        on_alloc(layout.size());
        if layout.size() > LAZY {
            return lazy_map(layout);
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        on_alloc(layout.size());
        if layout.size() > LAZY {
            return lazy_map(layout);
        }
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        on_free(layout.size());
        if layout.size() > LAZY {
            // SAFETY: mapped by `lazy_map` with this size.
            unsafe { libc::munmap(ptr.cast(), layout.size()) };
            return;
        }
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if layout.size() > LAZY || new_size > LAZY {
            // SAFETY: the caller guarantees a valid layout for `new_size`.
            let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
            let new = unsafe { self.alloc(new_layout) };
            if !new.is_null() {
                // SAFETY: both blocks are at least this long and do not overlap.
                unsafe {
                    std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                    self.dealloc(ptr, layout);
                }
            }
            return new;
        }
        // Counted as the new block allocated before the old one is freed, which is what
        // a moving realloc does.
        on_alloc(new_size);
        on_free(layout.size());
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Stops measuring even when the decoder panics (proptest catches the panic to shrink).
struct Measuring;

impl Drop for Measuring {
    fn drop(&mut self) {
        MEASURING.with(|m| m.set(false));
    }
}

/// Runs `f` and returns its result and the peak bytes it had allocated at once on this
/// thread (its result included, since that is dropped after).
pub fn measured<R>(f: impl FnOnce() -> R) -> (R, usize) {
    LIVE.with(|l| l.set(0));
    PEAK.with(|p| p.set(0));
    let guard = Measuring;
    MEASURING.with(|m| m.set(true));
    let r = f();
    drop(guard);
    (r, PEAK.with(|p| p.get()))
}

/// What a decoder may allocate for `len` input bytes. The decoders copy what they read
/// into owned values, and the worst ratio of memory to wire bytes is a file's hole slot:
/// 1 byte on the wire, a 76-byte `Option<BlobRef>` in memory (plus collection overhead).
/// So 128 bytes per input byte, plus 16 KiB for small fixed buffers (serde_json's
/// scratch, error strings); the decoders measure far below it. A length or count
/// trusted from the input asks for megabytes to gigabytes, past it: the journal header's
/// 64 KiB name buffer (now fixed) failed it on 150-byte inputs.
pub fn bound(len: usize) -> usize {
    (16 << 10) + 128 * len
}

/// The export reader holds one sealed and one opened segment (1 MiB each) by design.
pub fn segment_bound(len: usize) -> usize {
    (3 << 20) + 128 * len
}

/// Decodes `input` with `f` under the allocation bound; returns what `f` returned.
pub fn check<R>(what: &str, input: &[u8], f: impl FnOnce(&[u8]) -> R) -> R {
    check_within(what, input, bound(input.len()), f)
}

pub fn check_within<R>(what: &str, input: &[u8], limit: usize, f: impl FnOnce(&[u8]) -> R) -> R {
    let (r, peak) = measured(|| f(input));
    assert!(
        peak <= limit,
        "{what}: {peak} bytes allocated at once for {} input bytes (bound {limit})",
        input.len()
    );
    r
}
