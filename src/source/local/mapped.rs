//! Parsing a big artifact straight from the page cache: a read-only mapping of the file instead
//! of a copy into a buffer (the copy, and the fresh pages a buffer of that size needs, cost more
//! than mapping it once a file is a few hundred KiB).
//!
//! A file cut short while it is mapped would end the process with `SIGBUS` when the parser reaches
//! the pages past its new end. A handler for `SIGBUS` maps zero pages over the rest of a mapping
//! of ours that faulted, so the parser reads zeros and stops, and marks that mapping cut; a fault
//! anywhere else goes to the handler that was there before. A cut mapping, or a file whose size or
//! modification time changed while it was parsed, gives no answer: the caller reads the file the
//! ordinary way, and so gets exactly what reading it would have given.
//!
//! Linux only (the zero-page repair and the `si_addr` of the fault are Linux's); elsewhere every
//! file is read.

use std::fs::{File, Metadata};
use std::os::fd::AsRawFd;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use nix::errno::Errno;
use nix::libc;

use crate::artifact::ParseError;

/// Files larger than this are parsed from a mapping. Below it the copy into the thread's reused
/// buffer costs less than the mapping's own system calls, page-table work and the unmapping.
pub(crate) const MAP_ABOVE: u64 = 192 << 10;

/// Parses `file` (opened with `meta`) from a mapping. `None` when there is no answer from the
/// mapping (it could not be made, the file was cut or changed while it was parsed): the caller
/// then reads the file.
pub(crate) fn parse<T>(
    file: &File,
    meta: &Metadata,
    slice: fn(&[u8]) -> Result<T, ParseError>,
) -> Option<Result<T, ParseError>> {
    let len = usize::try_from(meta.len()).ok().filter(|&len| len > 0)?;
    if !install() {
        return None;
    }
    let mapping = Mapping::of(file, len)?;
    let slot = Registered::new(&mapping)?;
    #[cfg(test)]
    AFTER_MAP.with(|hook| hook.take().map(|hook| hook()));
    // SAFETY: the mapping is `len` readable bytes until it is dropped, after this borrow ends.
    // Pages past a new end of the file read as zeros (the handler), and another writer's
    // changes show through the mapping; neither is trusted: a cut or a change below discards
    // what was parsed.
    let bytes = unsafe { std::slice::from_raw_parts(mapping.start.cast::<u8>(), len) };
    let parsed = slice(bytes);
    let cut = slot.release();
    drop(mapping);
    let now = file.metadata().ok()?;
    let same = now.len() == meta.len() && now.modified().ok() == meta.modified().ok();
    (!cut && same).then_some(parsed)
}

/// A read-only private mapping of a whole file, unmapped when dropped.
struct Mapping {
    start: *mut libc::c_void,
    len: usize,
}

impl Mapping {
    fn of(file: &File, len: usize) -> Option<Mapping> {
        // SAFETY: a new mapping at an address the kernel chooses; nothing else is touched.
        // Without MAP_POPULATE: a fault maps the pages around it from the page cache too, and
        // filling the whole page table first measured no faster.
        let start = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                file.as_raw_fd(),
                0,
            )
        };
        (start != libc::MAP_FAILED).then_some(Mapping { start, len })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `of`, which nothing borrows any more.
        unsafe { libc::munmap(self.start, self.len) };
    }
}

/// One mapping being parsed, as the handler sees it: `[start, end)` while in use (`start` 0 when
/// free), and whether the handler had to put zero pages in it.
struct Slot {
    taken: AtomicBool,
    start: AtomicUsize,
    end: AtomicUsize,
    cut: AtomicBool,
}

impl Slot {
    const fn free() -> Slot {
        Slot {
            taken: AtomicBool::new(false),
            start: AtomicUsize::new(0),
            end: AtomicUsize::new(0),
            cut: AtomicBool::new(false),
        }
    }
}

/// As many mappings as may be parsed at once; when all are in use a file is read instead.
const SLOTS: usize = 32;
static TABLE: [Slot; SLOTS] = [const { Slot::free() }; SLOTS];

/// A mapping's slot in the table while it is parsed.
struct Registered(&'static Slot);

impl Registered {
    fn new(mapping: &Mapping) -> Option<Registered> {
        let slot = TABLE.iter().find(|slot| {
            slot.taken
                .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        })?;
        let start = mapping.start as usize;
        slot.cut.store(false, Ordering::SeqCst);
        // The end first: the handler looks at a slot only once its start is set.
        slot.end.store(start + mapping.len, Ordering::SeqCst);
        slot.start.store(start, Ordering::SeqCst);
        Some(Registered(slot))
    }

    /// Frees the slot; whether the mapping was cut.
    fn release(self) -> bool {
        let cut = self.0.cut.load(Ordering::SeqCst);
        drop(self);
        cut
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.0.start.store(0, Ordering::SeqCst);
        self.0.end.store(0, Ordering::SeqCst);
        self.0.taken.store(false, Ordering::SeqCst);
    }
}

/// The disposition of `SIGBUS` before ours, for faults that are not in a mapping of ours.
static PREVIOUS: OnceLock<libc::sigaction> = OnceLock::new();
static PAGE: AtomicUsize = AtomicUsize::new(0);

/// Installs the handler once for the process; whether it is in place.
fn install() -> bool {
    static INSTALLED: OnceLock<bool> = OnceLock::new();
    *INSTALLED.get_or_init(|| {
        // SAFETY: sysconf only reads a value.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) })
            .ok()
            .filter(|page| page.is_power_of_two());
        let Some(page) = page else { return false };
        PAGE.store(page, Ordering::SeqCst);
        // SAFETY: sigaction with a zeroed struct to fill: asks for the current disposition only.
        let mut previous: libc::sigaction = unsafe { std::mem::zeroed() };
        if unsafe { libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut previous) } != 0 {
            return false;
        }
        let _ = PREVIOUS.set(previous);
        // SAFETY: the handler only reads atomics and calls mmap(2) and sigaction(2), which are
        // system calls, not library code that could be interrupted in an inconsistent state.
        // SA_ONSTACK as Rust's own handler, which tells a stack overflow, may be chained to.
        let mut ours: libc::sigaction = unsafe { std::mem::zeroed() };
        ours.sa_sigaction = on_sigbus as *const () as usize;
        ours.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        unsafe { libc::sigemptyset(&mut ours.sa_mask) };
        (unsafe { libc::sigaction(libc::SIGBUS, &ours, std::ptr::null_mut()) }) == 0
    })
}

extern "C" fn on_sigbus(signo: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    let saved = Errno::last_raw();
    // SAFETY: the kernel passes a valid siginfo_t to an SA_SIGINFO handler.
    let addr = if info.is_null() {
        0
    } else {
        (unsafe { (*info).si_addr() }) as usize
    };
    if !cover(addr) {
        pass_on(signo, info, context);
    }
    Errno::set_raw(saved);
}

/// When `addr` is in a mapping of ours, maps zero pages from its page to the mapping's end and
/// marks the mapping cut: the access that faulted then reads zero. Whether it did.
fn cover(addr: usize) -> bool {
    let Some(slot) = owner(addr) else { return false };
    let page = PAGE.load(Ordering::SeqCst);
    let from = addr & !(page - 1);
    let end = slot.end.load(Ordering::SeqCst);
    // SAFETY: replaces pages of a mapping this process made and still holds (its slot is set
    // until before it is unmapped), with private zero pages of the same protection.
    let zeros = unsafe {
        libc::mmap(
            from as *mut libc::c_void,
            end - from,
            libc::PROT_READ,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
            -1,
            0,
        )
    };
    if zeros == libc::MAP_FAILED {
        return false;
    }
    slot.cut.store(true, Ordering::SeqCst);
    true
}

/// The slot whose mapping holds `addr`.
fn owner(addr: usize) -> Option<&'static Slot> {
    if addr == 0 {
        return None;
    }
    TABLE.iter().find(|slot| {
        let start = slot.start.load(Ordering::SeqCst);
        start != 0 && start <= addr && addr < slot.end.load(Ordering::SeqCst)
    })
}

/// Hands a fault that is not ours to the previous handler; with none (or the default), restores
/// the default so that the access faults again and ends the process as it would have.
fn pass_on(signo: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    match PREVIOUS.get() {
        Some(previous) if previous.sa_sigaction != libc::SIG_DFL && previous.sa_sigaction != libc::SIG_IGN => {
            if previous.sa_flags & libc::SA_SIGINFO != 0 {
                // SAFETY: with SA_SIGINFO the handler has this signature.
                let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                    unsafe { std::mem::transmute(previous.sa_sigaction) };
                handler(signo, info, context);
            } else {
                // SAFETY: without SA_SIGINFO the handler takes the signal number only.
                let handler: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(previous.sa_sigaction) };
                handler(signo);
            }
        }
        _ => {
            // SAFETY: a zeroed sigaction is SIG_DFL with no flags.
            let default: libc::sigaction = unsafe { std::mem::zeroed() };
            unsafe { libc::sigaction(libc::SIGBUS, &default, std::ptr::null_mut()) };
        }
    }
}

#[cfg(test)]
thread_local! {
    /// Run once by the next `parse` on this thread between mapping the file and parsing it: a
    /// test cuts or rewrites the file there.
    pub(crate) static AFTER_MAP: std::cell::Cell<Option<Box<dyn FnOnce()>>> = const { std::cell::Cell::new(None) };
}

#[cfg(test)]
pub(crate) mod tests {
    use std::fs::{self, File, OpenOptions};
    use std::os::unix::process::ExitStatusExt;
    use std::path::Path;
    use std::process::Command;

    use super::*;
    use crate::artifact::state::{self, StateMeta};

    /// A state of exactly `len` bytes (at least a few hundred) with one resource in every 200
    /// bytes or so.
    pub(crate) fn state_text(len: usize, serial: u64) -> Vec<u8> {
        let head =
            format!(r#"{{"version":4,"serial":{serial},"lineage":"l-1","terraform_version":"1.9.8","resources":["#);
        let mut text = head.into_bytes();
        let mut n = 0;
        while text.len() + 300 < len {
            if n > 0 {
                text.push(b',');
            }
            let resource = format!(
                r#"{{"mode":"managed","type":"aws_s3_bucket","name":"b{n}","instances":[{{"attributes":{{"id":"bucket-{n}","tags":{{"team":"platform","purpose":"artifact storage for the build pipeline"}}}}}}]}}"#
            );
            text.extend_from_slice(resource.as_bytes());
            n += 1;
        }
        text.extend_from_slice(b"]}");
        text.resize(len, b' ');
        text
    }

    fn write(path: &Path, bytes: &[u8]) {
        fs::write(path, bytes).unwrap();
    }

    /// `parse` of the state at `path`, with `during` run on it between mapping and parsing.
    fn parsed_while(path: &Path, during: impl FnOnce(&Path) + 'static) -> Option<Result<StateMeta, ParseError>> {
        let file = File::open(path).unwrap();
        let meta = file.metadata().unwrap();
        let path = path.to_owned();
        AFTER_MAP.with(|hook| hook.set(Some(Box::new(move || during(&path)))));
        parse(&file, &meta, state::parse)
    }

    fn cut_to(path: &Path, len: u64) {
        OpenOptions::new().write(true).open(path).unwrap().set_len(len).unwrap();
    }

    #[test]
    fn a_mapped_file_parses_as_the_same_bytes_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("terraform.tfstate");
        let text = state_text(1 << 20, 3);
        write(&path, &text);
        let file = File::open(&path).unwrap();
        let meta = file.metadata().unwrap();
        let mapped = parse(&file, &meta, state::parse).expect("an unchanged file has an answer");
        assert_eq!(mapped, state::parse(&text));
        assert!(mapped.unwrap().resources.unwrap() > 1000);
    }

    #[test]
    fn a_file_cut_while_mapped_gives_zeros_not_a_crash_and_no_answer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("terraform.tfstate");
        write(&path, &state_text(1 << 20, 3));
        let file = File::open(&path).unwrap();
        let meta = file.metadata().unwrap();
        let mapping = Mapping::of(&file, meta.len() as usize).unwrap();
        assert!(install());
        let slot = Registered::new(&mapping).unwrap();
        cut_to(&path, 100_000);
        // SAFETY: the mapping is alive; the pages past the cut fault and read as zeros.
        let bytes = unsafe { std::slice::from_raw_parts(mapping.start.cast::<u8>(), mapping.len) };
        assert_eq!(bytes[..4], *b"{\"ve");
        assert!(bytes[200_000..].iter().all(|&b| b == 0), "past the cut, zeros");
        assert!(slot.release(), "the slot says it was cut");

        // The same through `parse`, cut between mapping and parsing.
        write(&path, &state_text(1 << 20, 4));
        assert_eq!(parsed_while(&path, |path| cut_to(path, 300_000)), None);
    }

    #[test]
    fn a_file_cut_within_its_last_page_is_told_by_its_size() {
        // No page past the end is touched: no fault, but the size differs.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("terraform.tfstate");
        write(&path, &state_text(1 << 20, 3));
        assert_eq!(parsed_while(&path, |path| cut_to(path, (1 << 20) - 10)), None);
    }

    #[test]
    fn a_file_that_grows_or_changes_while_mapped_has_no_answer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("terraform.tfstate");
        write(&path, &state_text(1 << 20, 3));
        let grow = |path: &Path| {
            use std::io::Write;
            OpenOptions::new()
                .append(true)
                .open(path)
                .unwrap()
                .write_all(b"  ")
                .unwrap();
        };
        assert_eq!(parsed_while(&path, grow), None);

        // Rewritten in place, same size: the modification time tells.
        write(&path, &state_text(1 << 20, 3));
        filetime::set_file_mtime(&path, filetime::FileTime::from_unix_time(1_700_000_000, 0)).unwrap();
        let rewrite = |path: &Path| {
            write(path, &state_text(1 << 20, 9));
            filetime::set_file_mtime(path, filetime::FileTime::from_unix_time(1_700_000_001, 0)).unwrap();
        };
        assert_eq!(parsed_while(&path, rewrite), None);
    }

    #[test]
    fn only_addresses_in_a_registered_mapping_are_ours() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        write(&path, &[b' '; 10_000]);
        let file = File::open(&path).unwrap();
        let mapping = Mapping::of(&file, 10_000).unwrap();
        let start = mapping.start as usize;
        assert!(owner(start).is_none(), "not registered yet");
        let slot = Registered::new(&mapping).unwrap();
        assert!(owner(start).is_some());
        assert!(owner(start + 9_999).is_some());
        assert!(owner(start + 10_000).is_none());
        assert!(owner(start - 1).is_none());
        assert!(owner(0).is_none());
        assert!(!slot.release());
        assert!(owner(start).is_none(), "released");
    }

    /// Set in the child process of the chaining test: which previous disposition it installs.
    const CHILD: &str = "IACWATCH_TEST_SIGBUS_PREVIOUS";

    extern "C" fn previous_handler(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(42) };
    }

    /// In the child: a previous disposition, then ours; a cut mapping of ours is survived, then a
    /// fault in a mapping that is not ours goes to the previous disposition.
    fn child(previous: &str) {
        // SAFETY: sets the disposition of SIGBUS in this child process, before ours.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            if previous == "handler" {
                action.sa_sigaction = previous_handler as *const () as usize;
                action.sa_flags = libc::SA_SIGINFO;
            }
            libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut());
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("terraform.tfstate");
        write(&path, &state_text(1 << 20, 3));
        assert_eq!(parsed_while(&path, |path| cut_to(path, 4096)), None);

        write(&path, &[b' '; 3 * 4096]);
        let file = File::open(&path).unwrap();
        let theirs = Mapping::of(&file, 3 * 4096).unwrap();
        cut_to(&path, 0);
        // SAFETY: deliberately touches a page past the end of a mapping that is not registered.
        let byte = unsafe { std::ptr::read_volatile(theirs.start.cast::<u8>().add(4096)) };
        eprintln!("read {byte} past the end without a fault");
        std::process::exit(3);
    }

    fn run_child(test: &str, previous: &str) -> std::process::ExitStatus {
        Command::new(std::env::current_exe().unwrap())
            .args([test, "--exact", "--test-threads=1", "--nocapture"])
            .env(CHILD, previous)
            .status()
            .unwrap()
    }

    #[test]
    fn a_fault_elsewhere_goes_to_the_previous_handler() {
        match std::env::var(CHILD) {
            Ok(previous) => child(&previous),
            Err(_) => {
                let name = "source::local::mapped::tests::a_fault_elsewhere_goes_to_the_previous_handler";
                assert_eq!(run_child(name, "handler").code(), Some(42), "the previous handler ran");
            }
        }
    }

    #[test]
    fn a_fault_elsewhere_with_no_previous_handler_ends_the_process_by_sigbus() {
        match std::env::var(CHILD) {
            Ok(previous) => child(&previous),
            Err(_) => {
                let name = "source::local::mapped::tests::a_fault_elsewhere_with_no_previous_handler_ends_the_process_by_sigbus";
                assert_eq!(run_child(name, "default").signal(), Some(libc::SIGBUS));
            }
        }
    }
}
