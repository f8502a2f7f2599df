//! Runs a child process to its end while passing on the SIGINT and SIGTERM the wrapper receives,
//! so that Terraform can stop gracefully (release its lock, write its state) when a pipeline is
//! cancelled.
//!
//! Signals arrive through a self-pipe: the handlers only write two bytes (the signal, and whether
//! the terminal sent it), and one thread reads them and reaps the child, so a signal is never
//! passed to a process id that was already reaped and reused.
//!
//! What is passed on is always SIGINT - a terminal's Ctrl-C, which Terraform and OpenTofu are built
//! to stop gracefully on, and which their provider plugins ignore; a SIGTERM sent to the plugins
//! would end them under a running apply.
//!
//! Who gets it:
//! - stdin is not a terminal (CI): the child leads its own process group and every signal is
//!   passed to that whole group, once - like a terminal's Ctrl-C, it reaches `terraform` even when
//!   CMD is a shell script, and a signal sent to the wrapper's group is not doubled (Terraform exits
//!   at once, without cleaning up, on a second interrupt).
//!   Out of the wrapper's group, the child would outlive a kill of the job's group: a `guardian`
//!   stops it when the wrapper dies.
//! - stdin is a terminal: the child stays in the wrapper's group, so it can prompt. The terminal
//!   already sends Ctrl-C to the child, so only signals sent by a process are passed on.

use std::fs::File;
use std::io::{self, IsTerminal, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicI32, Ordering};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::libc;
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, kill, sigaction};
use nix::unistd::Pid;

use super::guardian::Guardian;

/// The write end of the self-pipe, for the handlers (-1 when none is installed).
static WAKE: AtomicI32 = AtomicI32::new(-1);

/// How a supervised child ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ending {
    pub status: ExitStatus,
    /// The last SIGINT or SIGTERM the wrapper received while the child ran.
    pub interrupted_by: Option<Signal>,
}

impl Ending {
    /// The child's exit code, or 128 + the signal that ended it (as a shell reports it).
    pub fn code(&self) -> i32 {
        match (self.status.code(), self.status.signal()) {
            (Some(code), _) => code,
            (None, Some(signal)) => 128 + signal,
            (None, None) => 1,
        }
    }

    /// The signal that ended the child, if one did.
    pub fn signal(&self) -> Option<i32> {
        self.status.signal()
    }
}

/// Holds the signal handlers for as long as it lives.
pub struct Supervisor {
    wake: File,
    _wake_write: OwnedFd,
    own_group: bool,
    previous: Vec<(Signal, SigAction)>,
}

impl Supervisor {
    /// Installs the handlers for SIGINT, SIGTERM and SIGCHLD. One at a time per process.
    pub fn install() -> io::Result<Supervisor> {
        let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
        // A full pipe must never block a handler; one pending wake-up is enough.
        let flags = OFlag::from_bits_truncate(fcntl(&write, FcntlArg::F_GETFL)?);
        fcntl(&write, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
        if WAKE
            .compare_exchange(-1, write.as_raw_fd(), Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            return Err(io::Error::other("signal handlers are already installed"));
        }
        let action = SigAction::new(
            SigHandler::SigAction(on_signal),
            SaFlags::SA_SIGINFO | SaFlags::SA_RESTART | SaFlags::SA_NOCLDSTOP,
            SigSet::empty(),
        );
        let mut supervisor = Supervisor {
            wake: File::from(read),
            _wake_write: write,
            own_group: !io::stdin().is_terminal(),
            previous: Vec::new(),
        };
        for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGCHLD] {
            // SAFETY: `on_signal` only calls async-signal-safe functions (write, errno access).
            let old = unsafe { sigaction(signal, &action) }?;
            supervisor.previous.push((signal, old));
        }
        Ok(supervisor)
    }

    /// Starts `command` and waits for it, passing signals on. `Err` only when it cannot start.
    pub fn run(&mut self, mut command: Command) -> io::Result<Ending> {
        if self.own_group {
            command.process_group(0);
        }
        let mut child = command.spawn()?;
        let pid = Pid::from_raw(child.id() as i32);
        // Out of the wrapper's group, CMD would outlive a kill of the job's group.
        let mut guardian = match self.own_group.then(|| Guardian::start(pid)).transpose() {
            Ok(guardian) => guardian,
            Err(e) => {
                eprintln!("iacwatch: warning: no guardian for the command (it would outlive a killed wrapper): {e}");
                None
            }
        };
        let mut interrupted_by = None;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(Ending { status, interrupted_by });
            }
            let mut note = [0u8; 2];
            match self.wake.read_exact(&mut note) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            let Ok(signal) = Signal::try_from(i32::from(note[0])) else {
                continue;
            };
            if signal == Signal::SIGCHLD {
                continue;
            }
            interrupted_by = Some(signal);
            let from_terminal = note[1] == 1;
            // The child is not reaped yet (only this loop reaps it), so its pid is still its own.
            let sent = if self.own_group {
                if let Some(guardian) = &mut guardian {
                    guardian.interrupted();
                }
                kill(Pid::from_raw(-pid.as_raw()), Signal::SIGINT)
            } else if !from_terminal {
                kill(pid, Signal::SIGINT)
            } else {
                Ok(())
            };
            if let Err(e) = sent
                && e != Errno::ESRCH
            {
                eprintln!("iacwatch: warning: could not pass {signal} on to the command as SIGINT: {e}");
            }
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        for (signal, old) in &self.previous {
            // SAFETY: restores the disposition that was in place before `install`.
            let _ = unsafe { sigaction(*signal, old) };
        }
        WAKE.store(-1, Ordering::SeqCst);
    }
}

extern "C" fn on_signal(signo: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    let saved = Errno::last_raw();
    // SAFETY: the kernel passes a valid siginfo_t to an SA_SIGINFO handler.
    let from_terminal = !info.is_null() && unsafe { (*info).si_code } == libc::SI_KERNEL;
    let note = [signo as u8, u8::from(from_terminal)];
    let fd = WAKE.load(Ordering::SeqCst);
    if fd >= 0 {
        // SAFETY: write(2) is async-signal-safe; the pipe is non-blocking and 2 bytes are written
        // atomically (less than PIPE_BUF).
        let _ = unsafe { libc::write(fd, note.as_ptr().cast(), note.len()) };
    }
    Errno::set_raw(saved);
}
