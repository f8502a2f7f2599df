//! Which directory holds the history: `--data-dir`, else `$STATE_DIRECTORY` (systemd's
//! `StateDirectory=`, the first of its colon-separated paths), else `$XDG_STATE_HOME/iacwatch`,
//! else `~/.local/state/iacwatch`.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::Error;

/// The values the data directory is chosen from; `None` or empty means unset.
#[derive(Clone, Copy, Debug, Default)]
pub struct DirSources<'a> {
    pub flag: Option<&'a Path>,
    pub state_directory: Option<&'a OsStr>,
    pub xdg_state_home: Option<&'a OsStr>,
    pub home: Option<&'a OsStr>,
}

/// The data directory for these values. Pure: it reads no environment and touches no disk.
///
/// Empty values count as unset. A relative `$XDG_STATE_HOME` or `$HOME` is ignored, as the XDG
/// base directory specification asks; a relative `--data-dir` is taken as given (relative to the
/// working directory), since the operator typed it.
pub fn resolve_data_dir(sources: DirSources<'_>) -> Result<PathBuf, Error> {
    if let Some(flag) = sources.flag.filter(|p| !p.as_os_str().is_empty()) {
        return Ok(flag.to_path_buf());
    }
    if let Some(first) = sources.state_directory.and_then(first_of_list) {
        return Ok(first);
    }
    if let Some(xdg) = sources.xdg_state_home.and_then(absolute) {
        return Ok(xdg.join("iacwatch"));
    }
    if let Some(home) = sources.home.and_then(absolute) {
        return Ok(home.join(".local/state/iacwatch"));
    }
    Err(Error::NoDataDir)
}

/// [`resolve_data_dir`] with the process's environment.
pub fn data_dir(flag: Option<&Path>) -> Result<PathBuf, Error> {
    let state_directory = std::env::var_os("STATE_DIRECTORY");
    let xdg_state_home = std::env::var_os("XDG_STATE_HOME");
    let home = std::env::var_os("HOME");
    resolve_data_dir(DirSources {
        flag,
        state_directory: state_directory.as_deref(),
        xdg_state_home: xdg_state_home.as_deref(),
        home: home.as_deref(),
    })
}

/// The first non-empty path of a colon-separated list.
fn first_of_list(list: &OsStr) -> Option<PathBuf> {
    list.as_bytes()
        .split(|b| *b == b':')
        .find(|part| !part.is_empty())
        .map(|part| PathBuf::from(OsString::from(OsStr::from_bytes(part))))
}

fn absolute(value: &OsStr) -> Option<&Path> {
    Some(Path::new(value)).filter(|p| p.is_absolute())
}
