//! The local source: directory trees on this machine. Everything that touches the local file
//! system lives here: the names of the layout (`layout`), which directories are workspaces
//! (`discover`), reading one directory into evidence (`read`; big files parsed from a mapping,
//! `mapped`), asking the OS who holds a lock (`liveness`), a whole scan (`scan`) and the daemon's
//! watcher (`watch`).

pub mod discover;
pub mod layout;
pub mod liveness;
#[cfg(target_os = "linux")]
mod mapped;
pub mod read;
pub mod scan;
pub mod watch;

use std::fs::{self, File};
use std::path::{Path, PathBuf};

/// A directory the program scans, as the user named it, and where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Root {
    /// As given (command line or configuration): the `root` label of every output.
    pub label: String,
    pub path: PathBuf,
}

impl Root {
    pub fn new(label: impl Into<String>) -> Root {
        let label = label.into();
        Root {
            path: PathBuf::from(&label),
            label,
        }
    }
}

/// Opens a file for reading without ever blocking: a FIFO or a device where an artifact should be
/// would block a plain open (or read) forever, so opening does not wait for a writer, and anything
/// but a regular file is then refused.
pub(crate) fn open_regular(path: &Path) -> std::io::Result<File> {
    open_regular_with_metadata(path).map(|(file, _)| file)
}

/// As `open_regular`, with the metadata of the file opened (the one `fstat` that tells it is a
/// regular file also gives its size and modification time).
pub(crate) fn open_regular_with_metadata(path: &Path) -> std::io::Result<(File, fs::Metadata)> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if meta.is_file() {
        Ok((file, meta))
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ))
    }
}
