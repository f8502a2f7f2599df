//! Reading one workspace directory: list it once, find each artifact, read it, and assemble the
//! evidence of each of its CLI workspaces.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use walkdir::WalkDir;

use super::discover;
use super::layout::{self, PRUNED, is_config, is_crash_log, is_marker, is_plan_json, marker, valid_workspace_name};
use super::liveness::Probe;
use super::{open_regular, open_regular_with_metadata};
use crate::artifact::{self, ParseError};
use crate::evidence::{Artifact, Evidence, Holder, Observed, Stamp, StateReading};

/// Files larger than this are parsed from a reader in constant memory instead of being held.
/// The default: fast for a one-shot scan.
pub const STREAM_ABOVE: u64 = 256 << 20;
/// For the daemon, which stays up: memory matters more than the second a very large state takes.
pub const STREAM_ABOVE_IN_DAEMON: u64 = 32 << 20;

/// One CLI workspace of a directory, with what was read for it.
#[derive(Clone, Debug)]
pub(crate) struct WorkspaceEvidence {
    pub name: String,
    pub evidence: Evidence,
}

/// Why a whole directory could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{path} cannot be read ({kind})")]
pub(crate) struct DirError {
    pub path: String,
    pub kind: std::io::ErrorKind,
}

/// Where each artifact of a directory is, before anything is read.
#[derive(Default)]
pub(crate) struct Listing {
    state: Option<PathBuf>,
    lock: Option<PathBuf>,
    named: BTreeMap<String, PathBuf>,
    uses_named: bool,
    dot_terraform: Option<PathBuf>,
    errored: Option<PathBuf>,
    crash_logs: Vec<PathBuf>,
    plans: Vec<PathBuf>,
    markers: BTreeMap<String, PathBuf>,
    /// Configuration files and when each was modified.
    config: Vec<(PathBuf, SystemTime)>,
    terragrunt: bool,
    terragrunt_cache: Option<PathBuf>,
}

impl Listing {
    fn of(dir: &Path) -> Result<Listing, std::io::Error> {
        let entries: Vec<fs::DirEntry> = fs::read_dir(dir)?.flatten().collect();
        Ok(Listing::from_entries(&entries))
    }

    /// Where each artifact is, from a directory's entries (as its listing gave them, to the walk
    /// that found it or to [`Listing::of`]).
    pub(crate) fn from_entries(entries: &[fs::DirEntry]) -> Listing {
        let mut listing = Listing::default();
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            // The listing already knows the type; only a symbolic link needs a look at its target.
            let is_dir = match entry.file_type() {
                Ok(kind) if kind.is_symlink() => path.is_dir(),
                Ok(kind) => kind.is_dir(),
                Err(_) => path.is_dir(),
            };
            match name.as_str() {
                layout::STATE if !is_dir => listing.state = Some(path),
                layout::TERRAFORM_LOCK if !is_dir => listing.lock = Some(path),
                layout::NAMED_STATES if is_dir => {
                    listing.uses_named = true;
                    listing.named = subdirectories(&path);
                }
                layout::DOT_TERRAFORM if is_dir => listing.dot_terraform = Some(path),
                marker::DIR if is_dir => listing.markers = subdirectories(&path),
                layout::TERRAGRUNT_CACHE if is_dir => listing.terragrunt_cache = Some(path),
                layout::ERRORED_STATE if !is_dir => listing.errored = Some(path),
                _ if is_dir => {}
                _ if is_plan_json(&name) => listing.plans.push(path),
                _ if is_crash_log(&name) => listing.crash_logs.push(path),
                _ => {
                    if name == layout::TERRAGRUNT {
                        listing.terragrunt = true;
                    }
                    if is_config(&name)
                        && let Ok(modified) = modified(entry, &path)
                    {
                        listing.config.push((path, modified));
                    }
                }
            }
        }
        listing
    }

    /// Takes what Terragrunt's working copy holds and this unit directory does not.
    fn merge_working_copy(&mut self, copy: Listing) {
        self.state = self.state.take().or(copy.state);
        self.lock = self.lock.take().or(copy.lock);
        if self.named.is_empty() {
            self.named = copy.named;
            self.uses_named |= copy.uses_named;
        }
        self.dot_terraform = self.dot_terraform.take().or(copy.dot_terraform);
        self.errored = self.errored.take().or(copy.errored);
        self.crash_logs.extend(copy.crash_logs);
        self.plans.extend(copy.plans);
        self.config.extend(copy.config);
    }
}

/// When a listed file was modified: asked of the directory's entry (no walk of the whole path
/// again), or through a symbolic link of the file it names.
fn modified(entry: &fs::DirEntry, path: &Path) -> std::io::Result<SystemTime> {
    match entry.file_type() {
        Ok(kind) if !kind.is_symlink() => entry.metadata(),
        _ => fs::metadata(path),
    }
    .and_then(|meta| meta.modified())
}

fn subdirectories(dir: &Path) -> BTreeMap<String, PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return BTreeMap::new();
    };
    // The listing knows each entry's type; only a symbolic link needs a look at its target.
    entries
        .flatten()
        .filter(|e| match e.file_type() {
            Ok(kind) if !kind.is_symlink() => kind.is_dir(),
            _ => e.path().is_dir(),
        })
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .filter(|(name, _)| valid_workspace_name(name))
        .collect()
}

/// The working copy Terragrunt ran last: of the directories inside `.terragrunt-cache` that hold
/// Terraform's working files, the one written most recently.
fn terragrunt_working_copy(cache: &Path) -> Option<PathBuf> {
    WalkDir::new(cache)
        .max_depth(8)
        .into_iter()
        .filter_entry(|e| {
            e.depth() == 0
                || !(e.file_type().is_dir() && PRUNED.contains(&e.file_name().to_string_lossy().as_ref()))
                || is_marker(&e.file_name().to_string_lossy(), true)
        })
        .flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy();
            name != layout::TERRAGRUNT && is_marker(&name, e.file_type().is_dir())
        })
        .filter_map(|e| {
            let modified = e.metadata().ok()?.modified().ok()?;
            Some((modified, e.path().parent()?.to_owned()))
        })
        .max()
        .map(|(_, dir)| dir)
}

fn to_utc(time: SystemTime) -> DateTime<Utc> {
    DateTime::<Utc>::from(time)
}

/// Reads a whole directory, from its `listing` when the walk that found it made one (else it is
/// listed now). `previous` gives the last good state of a workspace, kept while its state file is
/// being rewritten.
pub(crate) fn read_directory(
    root: &Path,
    rel: &str,
    listing: Option<Listing>,
    stream_above: u64,
    probe: &dyn Probe,
    previous: &dyn Fn(&str) -> Option<std::sync::Arc<crate::artifact::state::StateMeta>>,
) -> Result<Vec<WorkspaceEvidence>, DirError> {
    let mut listing = match listing {
        Some(listing) => listing,
        None => Listing::of(&discover::directory(root, rel)).map_err(|e| DirError {
            path: rel.to_owned(),
            kind: e.kind(),
        })?,
    };
    if listing.terragrunt
        && let Some(cache) = &listing.terragrunt_cache
        && let Some(copy) = terragrunt_working_copy(cache)
        && let Ok(copy) = Listing::of(&copy)
    {
        listing.merge_working_copy(copy);
    }
    let reader = Reader {
        root,
        probe,
        stream_above,
    };
    let mut problems = Vec::new();
    let (selected, backend) = match &listing.dot_terraform {
        Some(dot) => reader.dot_terraform(dot, &mut problems),
        None => ("default".to_owned(), None),
    };
    let mut names = BTreeSet::new();
    if listing.state.is_some() || !listing.uses_named {
        names.insert("default".to_owned());
    }
    names.extend(listing.named.keys().cloned());
    names.extend(listing.markers.keys().cloned());
    if selected != "default" {
        names.insert(selected.clone());
    }
    let newest_config = listing
        .config
        .iter()
        .max_by_key(|(_, modified)| modified)
        .map(|(path, modified)| Artifact {
            path: reader.rel(path),
            modified: to_utc(*modified),
            content: (),
        });
    let crash_log = listing
        .crash_logs
        .iter()
        .filter_map(|p| reader.stamp(p))
        .max_by_key(|s| s.modified);
    let errored_state = listing.errored.as_deref().and_then(|p| reader.stamp(p));
    let dir_plans: Vec<_> = listing.plans.iter().filter_map(|p| reader.plan(p)).collect();

    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let marker_dir = listing.markers.get(&name);
        let (state_path, lock_path) = if name == "default" {
            (listing.state.clone(), listing.lock.clone())
        } else {
            match listing.named.get(&name) {
                Some(dir) => (Some(dir.join(layout::STATE)), Some(dir.join(layout::TERRAFORM_LOCK))),
                None => (None, None),
            }
        };
        let local_state = state_path.as_deref().and_then(|p| reader.state(p));
        let state = local_state.or_else(|| marker_dir.and_then(|d| reader.state(&d.join(marker::STATE))));
        let terraform_lock = lock_path.as_deref().and_then(|lock| {
            let state_file = state_path.clone().unwrap_or_else(|| lock.with_file_name(layout::STATE));
            reader.terraform_lock(lock, &state_file)
        });
        let is_selected = name == selected;
        let mut plans = if is_selected { dir_plans.clone() } else { Vec::new() };
        plans.extend(marker_dir.and_then(|d| reader.plan(&d.join(marker::PLAN))));
        let evidence = Evidence {
            previous_state: state
                .as_ref()
                .filter(|s| s.content.wants_previous())
                .and_then(|_| previous(&name)),
            state,
            terraform_lock: terraform_lock.map(Box::new),
            pipeline_lock: marker_dir.and_then(|d| reader.pipeline_lock(&d.join(marker::LOCK)).map(Box::new)),
            pipeline_lease: None,
            last_run: marker_dir.and_then(|d| reader.last_run(&d.join(marker::LAST_RUN)).map(Box::new)),
            plans,
            errored_state: errored_state.clone().filter(|_| is_selected).map(Box::new),
            crash_log: crash_log.clone().filter(|_| is_selected).map(Box::new),
            newest_config: newest_config.clone(),
            backend: backend.clone(),
            remote_state_read: false,
            state_digest_mismatch: None,
            problems: problems.clone(),
        };
        out.push(WorkspaceEvidence { name, evidence });
    }
    Ok(out)
}

fn read_fresh<T>(file: &File, len: u64, slice: fn(&[u8]) -> Result<T, ParseError>) -> Result<T, ParseError> {
    let mut buf = Vec::new();
    read_whole(file, len, &mut buf)
        .map_err(|e| ParseError::Io { kind: e.kind() })
        .and_then(|n| slice(&buf[..n]))
}

/// Reads single artifacts, naming them relative to the root.
struct Reader<'a> {
    root: &'a Path,
    probe: &'a dyn Probe,
    /// Files larger than this are parsed from a stream, in constant memory.
    stream_above: u64,
}

/// An opened artifact: either the open file, to be read whole (with the turn to hold a big file
/// in memory when it is big), or (when big) to be parsed from a mapping, or (when very large) to
/// be parsed from a stream.
enum Body {
    Whole(File, u64, Option<std::sync::MutexGuard<'static, Vec<u8>>>),
    #[cfg(target_os = "linux")]
    Mapped(File, fs::Metadata),
    Large(File),
}

/// Files above this size are held in memory one at a time across all reading threads, so that
/// peak memory is the largest such file, not the sum of the largest few read at once. The turn
/// holds the buffer they are read into, reused from one big file to the next.
const ONE_AT_A_TIME_ABOVE: u64 = 16 << 20;
static BIG_FILE_TURN: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());

fn big_file_turn(len: u64) -> Option<std::sync::MutexGuard<'static, Vec<u8>>> {
    (len > ONE_AT_A_TIME_ABOVE).then(|| BIG_FILE_TURN.lock().unwrap_or_else(|e| e.into_inner()))
}

/// Files up to this size are read into a buffer kept by the reading thread: a fresh buffer for
/// every file costs the page faults of memory the kernel must hand over and clear.
const REUSED_UP_TO: u64 = 1 << 20;

thread_local! {
    static BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Frees this thread's read buffer (up to [`REUSED_UP_TO`]): the daemon's reading threads call it
/// after a full scan, so that they do not each keep the largest file they read until the next.
pub(crate) fn release_buffer() {
    BUFFER.with(|cell| {
        if let Ok(mut buf) = cell.try_borrow_mut() {
            *buf = Vec::new();
        }
    });
}

/// Files above this size are read with `POSIX_FADV_SEQUENTIAL` (a larger read-ahead when they
/// are not cached); a smaller one takes one `read` anyway, and the advice would be a system call
/// of its own for nothing.
const ADVISE_ABOVE: u64 = 1 << 20;

/// Reads `file` (of `len` bytes when opened) whole into the front of `buf`, and gives how many
/// bytes it holds; what lies in `buf` past them is left from earlier files. `buf` keeps its
/// length (it only grows, zeroed once), so that a reused buffer costs no clearing per file, and the
/// file is read to its end by plain `read`s: `read_to_end` of a `File` asks the kernel for the
/// size and the position again (an `fstat` and an `lseek` per file) before it reads.
fn read_whole(file: &File, len: u64, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    // One byte more than the file held when opened: the read that returns nothing ends it.
    let room = usize::try_from(len).unwrap_or(usize::MAX - 1) + 1;
    if buf.len() < room {
        buf.resize(room, 0);
    }
    if len > ADVISE_ABOVE {
        // The whole file is read once, front to back.
        let _ = nix::fcntl::posix_fadvise(file, 0, 0, nix::fcntl::PosixFadviseAdvice::POSIX_FADV_SEQUENTIAL);
    }
    let mut reader = file;
    let mut filled = 0;
    loop {
        if filled == buf.len() {
            // The file grew since it was opened: read on to its end, as `read_to_end` does.
            buf.resize(2 * buf.len(), 0);
        }
        match reader.read(&mut buf[filled..]) {
            Ok(0) => return Ok(filled),
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

impl Reader<'_> {
    fn rel(&self, path: &Path) -> String {
        discover::relative(self.root, path)
    }

    /// Opens a file (to read whole, or keeps it open for a stream when large). `None` when it
    /// does not exist.
    fn open(&self, path: &Path) -> Option<(DateTime<Utc>, Result<Body, ParseError>)> {
        let (file, meta) = match open_regular_with_metadata(path) {
            Ok(opened) => opened,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                let modified = fs::symlink_metadata(path).and_then(|m| m.modified()).map(to_utc).ok()?;
                return Some((modified, Err(ParseError::Io { kind: e.kind() })));
            }
        };
        let modified = meta.modified().map(to_utc).unwrap_or_else(|_| Utc::now());
        if meta.len() > self.stream_above {
            return Some((modified, Ok(Body::Large(file))));
        }
        // A mapping holds no memory of its own: no turn to wait for.
        #[cfg(target_os = "linux")]
        if meta.len() > super::mapped::MAP_ABOVE {
            return Some((modified, Ok(Body::Mapped(file, meta))));
        }
        Some((modified, Ok(Body::Whole(file, meta.len(), big_file_turn(meta.len())))))
    }

    fn parse<T>(
        &self,
        path: &Path,
        slice: fn(&[u8]) -> Result<T, ParseError>,
        reader: Option<fn(File) -> Result<T, ParseError>>,
    ) -> Option<Artifact<Result<T, ParseError>>> {
        let (modified, body) = self.open(path)?;
        let content = body.and_then(|body| match body {
            Body::Whole(file, len, turn) => self.read_and_parse(&file, len, turn, slice),
            // Cut or changed while mapped: read as any other file, for the answer reading gives.
            #[cfg(target_os = "linux")]
            Body::Mapped(file, meta) => super::mapped::parse(&file, &meta, slice)
                .unwrap_or_else(|| self.read_and_parse(&file, meta.len(), big_file_turn(meta.len()), slice)),
            Body::Large(file) => match reader {
                Some(read) => read(file),
                None => Err(ParseError::WrongShape { line: 0, column: 0 }),
            },
        });
        Some(Artifact {
            path: self.rel(path),
            modified,
            content,
        })
    }

    /// Reads `file` whole (`len` bytes when opened), into the big files' buffer when `turn` is
    /// held, and parses it.
    fn read_and_parse<T>(
        &self,
        file: &File,
        len: u64,
        turn: Option<std::sync::MutexGuard<'static, Vec<u8>>>,
        slice: fn(&[u8]) -> Result<T, ParseError>,
    ) -> Result<T, ParseError> {
        let io = |e: std::io::Error| ParseError::Io { kind: e.kind() };
        match turn {
            Some(mut turn) => {
                let parsed = read_whole(file, len, &mut turn)
                    .map_err(io)
                    .and_then(|n| slice(&turn[..n]));
                // A one-shot scan keeps the big buffer for the next big file; the daemon, which
                // stays up, gives its memory back at once.
                if self.stream_above < STREAM_ABOVE {
                    *turn = Vec::new();
                }
                parsed
            }
            None if len <= REUSED_UP_TO => BUFFER.with(|cell| match cell.try_borrow_mut() {
                Ok(mut buf) => read_whole(file, len, &mut buf)
                    .map_err(io)
                    .and_then(|n| slice(&buf[..n])),
                // Not reentrant; a fresh buffer should it ever be.
                Err(_) => read_fresh(file, len, slice),
            }),
            None => read_fresh(file, len, slice),
        }
    }

    fn stamp(&self, path: &Path) -> Option<Stamp> {
        let meta = fs::metadata(path).ok()?;
        Some(Artifact {
            path: self.rel(path),
            modified: to_utc(meta.modified().ok()?),
            content: (),
        })
    }

    fn state(&self, path: &Path) -> Option<Artifact<StateReading>> {
        let artifact = self.parse(path, artifact::state::parse, Some(artifact::state::parse_reader))?;
        Some(artifact.map(|content| match content {
            Ok(meta) => StateReading::Parsed(std::sync::Arc::new(meta)),
            Err(ParseError::Empty) => StateReading::Empty,
            Err(err) => StateReading::Unreadable(err),
        }))
    }

    fn plan(&self, path: &Path) -> Option<Artifact<Result<artifact::plan::PlanSummary, ParseError>>> {
        self.parse(path, artifact::plan::parse, Some(artifact::plan::parse_reader))
    }

    fn terraform_lock(
        &self,
        path: &Path,
        state_file: &Path,
    ) -> Option<Artifact<Observed<artifact::tflock::TerraformLock>>> {
        let artifact = self.parse(path, artifact::tflock::parse, None)?;
        let holder = self.probe.os_lock(state_file);
        Some(artifact.map(|content| Observed { content, holder }))
    }

    fn pipeline_lock(&self, path: &Path) -> Option<Artifact<Observed<artifact::marker::PipelineLock>>> {
        let artifact = self.parse(path, artifact::marker::parse_lock, None)?;
        let holder = match &artifact.content {
            Ok(lock) => self.probe.process(lock.host.as_deref(), lock.pid),
            Err(_) => Holder::Unknown,
        };
        Some(artifact.map(|content| Observed { content, holder }))
    }

    fn last_run(&self, path: &Path) -> Option<Artifact<Result<artifact::marker::LastRun, ParseError>>> {
        self.parse(path, artifact::marker::parse_last_run, None)
    }

    /// The selected workspace and the backend type, from `.terraform/`.
    fn dot_terraform(&self, dot: &Path, problems: &mut Vec<Artifact<ParseError>>) -> (String, Option<String>) {
        let selected = open_regular(&dot.join(layout::ENVIRONMENT))
            .and_then(|file| {
                let mut text = String::new();
                file.take(256).read_to_string(&mut text).map(|_| text)
            })
            .ok()
            .map(|text| text.trim().to_owned())
            .filter(|name| valid_workspace_name(name))
            .unwrap_or_else(|| "default".to_owned());
        let backend = match self.parse(&dot.join(layout::BACKEND), artifact::backend::parse, None) {
            Some(Artifact { content: Ok(kind), .. }) => kind,
            Some(Artifact {
                path,
                modified,
                content: Err(err),
            }) => {
                problems.push(Artifact {
                    path,
                    modified,
                    content: err,
                });
                None
            }
            None => None,
        };
        (selected, backend)
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::fs::OpenOptions;

    use super::super::liveness::SystemProbe;
    use super::super::mapped::{self, AFTER_MAP, tests::state_text};
    use super::*;

    /// `with` given a reader of `root` as `scan` has (files streamed above `STREAM_ABOVE`).
    fn with_reader<R>(root: &Path, with: impl FnOnce(&Reader<'_>) -> R) -> R {
        let probe = SystemProbe::new();
        with(&Reader {
            root,
            probe: &probe,
            stream_above: STREAM_ABOVE,
        })
    }

    fn reading(root: &Path, path: &Path) -> StateReading {
        with_reader(root, |reader| reader.state(path).expect("the state exists").content)
    }

    fn is_mapped(root: &Path, path: &Path) -> bool {
        with_reader(root, |reader| {
            matches!(reader.open(path), Some((_, Ok(Body::Mapped(..)))))
        })
    }

    #[test]
    fn files_above_the_threshold_are_mapped_and_read_alike() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(layout::STATE);
        let at = mapped::MAP_ABOVE as usize;
        for (len, mapped) in [(at, false), (at + 1, true)] {
            let text = state_text(len, 5);
            fs::write(&path, &text).unwrap();
            assert_eq!(is_mapped(dir.path(), &path), mapped, "{len} bytes");
            let expected = artifact::state::parse(&text).unwrap();
            assert_eq!(
                reading(dir.path(), &path),
                StateReading::Parsed(std::sync::Arc::new(expected))
            );
        }
    }

    #[test]
    fn a_state_cut_while_mapped_reads_as_the_cut_file_does() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(layout::STATE);
        let text = state_text(2 << 20, 5);
        fs::write(&path, &text).unwrap();
        let cut = path.clone();
        AFTER_MAP.with(|hook| {
            hook.set(Some(Box::new(move || {
                OpenOptions::new()
                    .write(true)
                    .open(&cut)
                    .unwrap()
                    .set_len(700_000)
                    .unwrap();
            })))
        });
        let while_mapped = reading(dir.path(), &path);
        assert!(
            AFTER_MAP.with(|hook| hook.take().is_none()),
            "the file was mapped and cut"
        );
        let read = artifact::state::parse(&text[..700_000]).map_or_else(StateReading::Unreadable, |meta| {
            StateReading::Parsed(std::sync::Arc::new(meta))
        });
        assert_eq!(while_mapped, read);
        assert!(
            matches!(read, StateReading::Unreadable(ParseError::Truncated { .. })),
            "{read:?}"
        );
        // Read again, small enough now to be read: the same.
        assert_eq!(reading(dir.path(), &path), read);
    }

    #[test]
    fn a_state_rewritten_while_mapped_reads_as_the_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(layout::STATE);
        fs::write(&path, state_text(1 << 20, 5)).unwrap();
        let newer = state_text(3 << 20, 6);
        let expected = artifact::state::parse(&newer).unwrap();
        let rewrite = path.clone();
        AFTER_MAP.with(|hook| hook.set(Some(Box::new(move || fs::write(&rewrite, newer).unwrap()))));
        assert_eq!(
            reading(dir.path(), &path),
            StateReading::Parsed(std::sync::Arc::new(expected))
        );
        assert!(AFTER_MAP.with(|hook| hook.take().is_none()), "the file was mapped");
    }
}
