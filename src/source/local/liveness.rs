//! Is anyone still holding a lock? Answers from the operating system, never from the lock file.
//!
//! A Terraform lock is held as an OS lock (`fcntl`) on the state file for the whole operation;
//! `F_GETLK` tells whether some process holds one, without taking it. A pipeline lock names a
//! host and a pid; on this host, a pid that no longer exists means the pipeline is gone.

use std::os::fd::AsFd;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, fcntl};
use nix::sys::signal::kill;
use nix::unistd::Pid;

use super::open_regular;
use crate::evidence::Holder;

/// Checks lock holders. A trait so that tests can name the host they pretend to be.
pub trait Probe: Sync {
    /// Whether a process holds an OS lock on `state_file`.
    fn os_lock(&self, state_file: &Path) -> Holder;
    /// Whether the process `pid` on `host` still exists.
    fn process(&self, host: Option<&str>, pid: Option<i64>) -> Holder;
}

/// The real machine.
#[derive(Clone, Debug)]
pub struct SystemProbe {
    host: String,
}

impl SystemProbe {
    /// Probes as this machine, under its own host name.
    pub fn new() -> SystemProbe {
        SystemProbe::with_host(&this_host())
    }

    /// Probes as a machine called `host` (fixtures record the host their pipeline locks name).
    pub fn with_host(host: &str) -> SystemProbe {
        SystemProbe {
            host: host.to_ascii_lowercase(),
        }
    }

    fn is_this_host(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        let short = |h: &str| h.split('.').next().unwrap_or_default().to_owned();
        host == self.host || short(&host) == short(&self.host)
    }
}

impl Default for SystemProbe {
    fn default() -> Self {
        SystemProbe::new()
    }
}

/// This machine's host name, as pipelines write it into `lock.json`.
pub fn this_host() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default()
}

impl Probe for SystemProbe {
    fn os_lock(&self, state_file: &Path) -> Holder {
        let file = match open_regular(state_file) {
            Ok(file) => file,
            // Nothing to lock: whoever took the lock is gone.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Holder::Gone,
            Err(_) => return Holder::Unknown,
        };
        let mut query = nix::libc::flock {
            l_type: nix::libc::F_WRLCK as i16,
            l_whence: nix::libc::SEEK_SET as i16,
            l_start: 0,
            l_len: 0,
            l_pid: 0,
        };
        match fcntl(file.as_fd(), FcntlArg::F_GETLK(&mut query)) {
            Ok(_) if query.l_type == nix::libc::F_UNLCK as i16 => Holder::Gone,
            Ok(_) => Holder::Alive,
            Err(_) => Holder::Unknown,
        }
    }

    fn process(&self, host: Option<&str>, pid: Option<i64>) -> Holder {
        let (Some(host), Some(pid)) = (host, pid) else {
            return Holder::Unknown;
        };
        if !self.is_this_host(host) {
            return Holder::Unknown;
        }
        // 0 and negative pids would address process groups: never signal those.
        let Ok(pid) = i32::try_from(pid) else {
            return Holder::Gone;
        };
        if pid <= 0 {
            return Holder::Unknown;
        }
        match kill(Pid::from_raw(pid), None) {
            Ok(()) | Err(Errno::EPERM) => Holder::Alive,
            Err(Errno::ESRCH) => Holder::Gone,
            Err(_) => Holder::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_pid_is_alive_and_a_huge_one_is_gone() {
        let probe = SystemProbe::with_host("builder");
        let me = i64::from(std::process::id());
        assert_eq!(probe.process(Some("builder"), Some(me)), Holder::Alive);
        assert_eq!(probe.process(Some("BUILDER.example.com"), Some(me)), Holder::Alive);
        assert_eq!(probe.process(Some("builder"), Some(99_999_999)), Holder::Gone);
        assert_eq!(probe.process(Some("elsewhere"), Some(99_999_999)), Holder::Unknown);
        assert_eq!(probe.process(Some("builder"), Some(0)), Holder::Unknown);
        assert_eq!(probe.process(None, Some(me)), Holder::Unknown);
    }

    #[test]
    fn an_unlocked_file_has_no_holder() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("terraform.tfstate");
        std::fs::write(&state, b"{}").unwrap();
        assert_eq!(SystemProbe::new().os_lock(&state), Holder::Gone);
        assert_eq!(SystemProbe::new().os_lock(&dir.path().join("missing")), Holder::Gone);
    }
}
