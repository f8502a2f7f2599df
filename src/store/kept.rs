//! Kept memory: where the records the store keeps are allocated.
//!
//! A record the store keeps lives for hours; the reading it is copied from lives for a moment. Made
//! from the same heap, the kept records land in the holes the freed readings leave, scattered over
//! the heap the scan grew, and one small record holds a page of free memory resident. So while the
//! writer makes its kept copies (inside [`keeping`]), the process's allocator ([`Allocator`], the
//! binary's global allocator) hands out memory from chunks of 64 KiB of their own, one piece after
//! the other, and nothing else goes there. A chunk goes back to the system when nothing in it is
//! alive any more; the writer copies its records again when the chunks it holds are twice what
//! is alive in them ([`held`], [`alive`]), so records replaced one by one over hours do not leave
//! every chunk a tenth full.
//!
//! Everything else, and everything when the chunks cannot be had (not Linux, the address space
//! refused, all of it in use), is the system allocator's.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    static KEEPING: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with this thread's allocations made in kept memory.
pub fn keeping<T>(f: impl FnOnce() -> T) -> T {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            KEEPING.with(|k| k.set(self.0));
        }
    }
    let _restore = Restore(KEEPING.with(|k| k.replace(true)));
    f()
}

fn is_keeping() -> bool {
    KEEPING.try_with(Cell::get).unwrap_or(false)
}

/// Bytes of kept memory in chunks that are in use (resident, once touched).
pub fn held() -> usize {
    chunks::held()
}

/// Bytes of kept memory handed out and not yet freed.
pub fn alive() -> usize {
    chunks::alive()
}

/// The system allocator, with kept memory for what is allocated inside [`keeping`].
pub struct Allocator;

// SAFETY: every block comes from the system allocator or from a chunk, and goes back to where it
// came from (`chunks::contains` tells); a chunk's piece is never handed out twice while alive.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_keeping()
            && let Some(ptr) = chunks::alloc(layout)
        {
            return ptr;
        }
        // SAFETY: the caller's layout, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_keeping()
            && let Some(ptr) = chunks::alloc(layout)
        {
            // SAFETY: `ptr` is a fresh piece of `layout.size()` bytes.
            unsafe { ptr.write_bytes(0, layout.size()) };
            return ptr;
        }
        // SAFETY: the caller's layout, passed on.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if chunks::contains(ptr) {
            chunks::free(ptr, layout);
        } else {
            // SAFETY: not a chunk's, so the system allocator's, with the layout it was made with.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !chunks::contains(ptr) {
            // SAFETY: the system allocator's block, with the caller's arguments.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // SAFETY: the caller guarantees a valid layout of `new_size` bytes at this alignment.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: a valid, non-zero layout (the caller's contract for realloc).
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are valid for the smaller of the two sizes and do not overlap.
            unsafe { std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size)) };
            chunks::free(ptr, layout);
        }
        new
    }
}

#[cfg(target_os = "linux")]
mod chunks {
    //! The chunks: one reservation of address space, taken on first use, cut into chunks of
    //! `CHUNK` bytes. The writer hands out pieces of one open chunk at a time, in order; each chunk
    //! counts the bytes alive in it (and `OPEN` while pieces are still handed out from it), and the
    //! one who takes its count to zero gives its pages back and puts it on the free list.

    use std::alloc::Layout;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

    use nix::libc;

    const CHUNK: usize = 64 << 10;
    /// 1 GiB of address space (reserved, not committed: untouched, it costs nothing).
    const CHUNKS: usize = 16 << 10;
    /// Larger pieces are the system allocator's (its own mapping above 64 KiB anyway).
    const LARGEST: usize = CHUNK / 4;
    const OPEN: u32 = 1 << 31;
    const NONE: u32 = u32::MAX;

    /// The reservation's first address; 0 until reserved.
    static BASE: AtomicUsize = AtomicUsize::new(0);
    static LIVE: [AtomicU32; CHUNKS] = [const { AtomicU32::new(0) }; CHUNKS];
    /// The free list, linked through the chunks' indices.
    static NEXT: [AtomicU32; CHUNKS] = [const { AtomicU32::new(NONE) }; CHUNKS];
    static HELD: AtomicUsize = AtomicUsize::new(0);
    static ALIVE: AtomicUsize = AtomicUsize::new(0);

    struct Open {
        /// Whether the reservation was tried (and then `BASE` says whether it was had).
        reserved: bool,
        chunk: u32,
        offset: usize,
        /// Chunks never used yet start here.
        fresh: u32,
        free: u32,
    }

    static OPENED: Mutex<Open> = Mutex::new(Open {
        reserved: false,
        chunk: NONE,
        offset: 0,
        fresh: 0,
        free: NONE,
    });

    pub(super) fn held() -> usize {
        HELD.load(Ordering::Relaxed) * CHUNK
    }

    pub(super) fn alive() -> usize {
        ALIVE.load(Ordering::Relaxed)
    }

    pub(super) fn contains(ptr: *mut u8) -> bool {
        let base = BASE.load(Ordering::Acquire);
        base != 0 && (ptr as usize).wrapping_sub(base) < CHUNKS * CHUNK
    }

    fn index(ptr: *mut u8) -> usize {
        (ptr as usize - BASE.load(Ordering::Acquire)) / CHUNK
    }

    fn address(chunk: u32) -> usize {
        BASE.load(Ordering::Acquire) + chunk as usize * CHUNK
    }

    pub(super) fn alloc(layout: Layout) -> Option<*mut u8> {
        let size = layout.size().max(1);
        if size > LARGEST || layout.align() > 4096 {
            return None;
        }
        let mut open = OPENED.lock().unwrap_or_else(|e| e.into_inner());
        if !open.reserved {
            open.reserved = true;
            reserve();
        }
        if BASE.load(Ordering::Acquire) == 0 {
            return None;
        }
        let at = open.offset.next_multiple_of(layout.align());
        if open.chunk == NONE || at + size > CHUNK {
            let next = take(&mut open)?;
            if open.chunk != NONE {
                let chunk = open.chunk;
                if LIVE[chunk as usize].fetch_sub(OPEN, Ordering::AcqRel) == OPEN {
                    release(chunk, &mut open);
                }
            }
            open.chunk = next;
            open.offset = 0;
            return alloc_in(&mut open, 0, size);
        }
        alloc_in(&mut open, at, size)
    }

    fn alloc_in(open: &mut Open, at: usize, size: usize) -> Option<*mut u8> {
        LIVE[open.chunk as usize].fetch_add(size as u32, Ordering::AcqRel);
        ALIVE.fetch_add(size, Ordering::Relaxed);
        open.offset = at + size;
        Some((address(open.chunk) + at) as *mut u8)
    }

    /// A chunk to open: one from the free list, else a fresh one made writable.
    fn take(open: &mut Open) -> Option<u32> {
        let chunk = if open.free != NONE {
            let chunk = open.free;
            open.free = NEXT[chunk as usize].load(Ordering::Relaxed);
            chunk
        } else {
            if open.fresh as usize == CHUNKS {
                return None;
            }
            let chunk = open.fresh;
            // SAFETY: a chunk of the reservation, not yet handed out; only its protection changes.
            let made = unsafe {
                libc::mprotect(
                    address(chunk) as *mut libc::c_void,
                    CHUNK,
                    libc::PROT_READ | libc::PROT_WRITE,
                )
            };
            if made != 0 {
                return None;
            }
            open.fresh += 1;
            chunk
        };
        LIVE[chunk as usize].store(OPEN, Ordering::Release);
        HELD.fetch_add(1, Ordering::Relaxed);
        Some(chunk)
    }

    /// Gives an empty chunk's pages back and puts it on the free list.
    fn release(chunk: u32, open: &mut Open) {
        // SAFETY: nothing in the chunk is alive and it is not open: no one reads or writes it.
        unsafe {
            libc::madvise(address(chunk) as *mut libc::c_void, CHUNK, libc::MADV_DONTNEED);
        }
        NEXT[chunk as usize].store(open.free, Ordering::Relaxed);
        open.free = chunk;
        HELD.fetch_sub(1, Ordering::Relaxed);
    }

    pub(super) fn free(ptr: *mut u8, layout: Layout) {
        let size = layout.size().max(1) as u32;
        let chunk = index(ptr) as u32;
        ALIVE.fetch_sub(size as usize, Ordering::Relaxed);
        if LIVE[chunk as usize].fetch_sub(size, Ordering::AcqRel) == size {
            let mut open = OPENED.lock().unwrap_or_else(|e| e.into_inner());
            release(chunk, &mut open);
        }
    }

    fn reserve() {
        // SAFETY: a new anonymous mapping with no access; it touches nothing of ours.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                CHUNKS * CHUNK,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if base != libc::MAP_FAILED {
            BASE.store(base as usize, Ordering::Release);
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod chunks {
    //! No chunks: everything is the system allocator's.

    use std::alloc::Layout;

    pub(super) fn held() -> usize {
        0
    }

    pub(super) fn alive() -> usize {
        0
    }

    pub(super) fn contains(_: *mut u8) -> bool {
        false
    }

    pub(super) fn alloc(_: Layout) -> Option<*mut u8> {
        None
    }

    pub(super) fn free(_: *mut u8, _: Layout) {}
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn in_chunks<T: ?Sized>(value: &T) -> bool {
        chunks::contains(value as *const T as *const u8 as *mut u8)
    }

    #[test]
    fn what_is_made_while_keeping_lives_in_the_chunks_and_the_rest_does_not() {
        let kept: Vec<Box<[u8; 100]>> = keeping(|| (0..2_000u32).map(|i| Box::new([i as u8; 100])).collect());
        let other = Box::new([7u8; 100]);
        assert!(kept.iter().all(|b| in_chunks(&**b)));
        assert!(!in_chunks(&*other));
        // More than one chunk's worth, each piece intact.
        assert!(alive() >= 2_000 * 100);
        assert!(held() >= 3 * (64 << 10));
        for (i, b) in kept.iter().enumerate() {
            assert!(b.iter().all(|&x| x == i as u8));
        }
        // Too large for a chunk: the system allocator's.
        let big = keeping(|| vec![0u8; 20 << 10]);
        assert!(!in_chunks(&big[..]));
    }

    #[test]
    fn a_kept_block_grown_outside_keeping_moves_out_with_its_bytes() {
        let mut s = keeping(|| String::from("kept"));
        assert!(in_chunks(s.as_str()));
        s.push_str(&"x".repeat(1000));
        assert!(!in_chunks(s.as_str()));
        assert!(s.starts_with("keptxxx") && s.len() == 1004);
        let z: Vec<u64> = keeping(|| vec![0; 64]);
        assert!(in_chunks(&z[..]) && z.iter().all(|&x| x == 0));
    }

    #[test]
    fn a_chunk_nothing_is_alive_in_is_given_back() {
        // Fill and drop many chunks' worth; the chunks held come back down (other tests may be
        // keeping at the same time, so the bound is loose).
        for _ in 0..100 {
            let many: Vec<Box<[u8; 1000]>> = keeping(|| (0..1_000).map(|_| Box::new([1u8; 1000])).collect());
            assert!(many.iter().all(|b| in_chunks(&**b)));
            drop(many);
        }
        assert!(held() < 64 << 20, "held {} bytes", held());
    }
}
