//! Where a wrapped run happens: the workspace directory, the CLI workspace the markers are for, and
//! the program to start - all checked before any marker is written.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::source::local::layout::valid_workspace_name;

/// The workspace name: `--workspace`, else `TF_WORKSPACE`, else the name Terraform selected in
/// `DIR/.terraform/environment`, else `default` - the order Terraform itself follows.
pub fn workspace_name(flag: Option<&str>, tf_workspace: Option<&str>, dir: &Path) -> Result<String, String> {
    let chosen = flag
        .or(tf_workspace)
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| {
            fs::read_to_string(dir.join(".terraform/environment"))
                .ok()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| "default".to_owned());
    if valid_workspace_name(&chosen) {
        Ok(chosen)
    } else {
        Err(format!("workspace name {chosen:?} cannot name a folder of .iacwatch/"))
    }
}

/// Why a program cannot be started; the exit codes are a shell's.
#[derive(Debug, PartialEq, Eq)]
pub enum Unrunnable {
    /// 127.
    NotFound,
    /// 126.
    NotExecutable,
}

impl Unrunnable {
    pub fn exit_code(&self) -> u8 {
        match self {
            Unrunnable::NotFound => 127,
            Unrunnable::NotExecutable => 126,
        }
    }
}

/// Finds `program` as a shell would: a name with a `/` is a path (relative to `dir`, where it
/// runs), any other name is looked up in `path` (the PATH variable).
pub fn find_program(program: &OsStr, dir: &Path, path: Option<&OsStr>) -> Result<PathBuf, Unrunnable> {
    let as_path = Path::new(program);
    if program.as_encoded_bytes().contains(&b'/') {
        let full = dir.join(as_path);
        return if !full.is_file() {
            Err(Unrunnable::NotFound)
        } else if executable(&full) {
            Ok(full)
        } else {
            Err(Unrunnable::NotExecutable)
        };
    }
    if program.is_empty() {
        return Err(Unrunnable::NotFound);
    }
    let mut seen_file = false;
    for entry in std::env::split_paths(path.unwrap_or_default()) {
        // An empty PATH entry means the current directory, which is `dir` for the command.
        let full = if entry.as_os_str().is_empty() {
            dir.join(as_path)
        } else {
            dir.join(entry).join(as_path)
        };
        if full.is_file() {
            if executable(&full) {
                return Ok(full);
            }
            seen_file = true;
        }
    }
    Err(if seen_file {
        Unrunnable::NotExecutable
    } else {
        Unrunnable::NotFound
    })
}

fn executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workspace_comes_from_the_flag_the_variable_or_terraform() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(workspace_name(None, None, dir.path()).unwrap(), "default");
        fs::create_dir(dir.path().join(".terraform")).unwrap();
        fs::write(dir.path().join(".terraform/environment"), "blue\n").unwrap();
        assert_eq!(workspace_name(None, None, dir.path()).unwrap(), "blue");
        assert_eq!(workspace_name(None, Some("green"), dir.path()).unwrap(), "green");
        assert_eq!(workspace_name(Some("red"), Some("green"), dir.path()).unwrap(), "red");
        assert!(workspace_name(Some("../x"), None, dir.path()).is_err());
        assert!(workspace_name(Some(".hidden"), None, dir.path()).is_err());
    }

    #[test]
    fn programs_are_found_like_a_shell_finds_them() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        fs::create_dir(&bin).unwrap();
        fs::write(bin.join("tool"), "#!/bin/sh\n").unwrap();
        fs::set_permissions(bin.join("tool"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(dir.path().join("plain"), "").unwrap();
        let path = bin.as_os_str();
        assert_eq!(
            find_program(OsStr::new("tool"), dir.path(), Some(path)).unwrap(),
            bin.join("tool")
        );
        assert_eq!(
            find_program(OsStr::new("./bin/tool"), dir.path(), None).unwrap(),
            dir.path().join("./bin/tool")
        );
        assert_eq!(
            find_program(OsStr::new("nope"), dir.path(), Some(path)),
            Err(Unrunnable::NotFound)
        );
        assert_eq!(
            find_program(OsStr::new("./plain"), dir.path(), None),
            Err(Unrunnable::NotExecutable)
        );
    }
}
