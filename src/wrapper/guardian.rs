//! The guardian: a small process that outlives the wrapper, so that the death of a CI job stops
//! CMD too.
//!
//! In CI mode CMD leads a process group of its own (see `supervise`), so a runner that kills the
//! job's process group with SIGKILL ends the wrapper but not CMD: Terraform would apply on,
//! orphaned, outside the job that was cancelled. `PR_SET_PDEATHSIG` does not cover it: it reaches
//! only the direct child (Terraform 1.0's panicwrap parent ignores SIGINT, a shell running
//! `terraform` passes nothing on) and it fires when the spawning thread ends, not the process.
//!
//! So the wrapper forks a guardian into a process group of its own, beside CMD's, and keeps the
//! only write end of a pipe whose read end the guardian blocks on. The kernel closes that end when
//! the wrapper dies, however it dies. The wrapper writes one byte per message:
//! - `i`: it passed an interrupt on to CMD's group (Terraform exits at once, without cleaning up,
//!   on a second one, so the guardian then does not send its own first one);
//! - `d`: CMD ended; the guardian exits.
//!
//! End of file without `d`: the wrapper is gone. The guardian sends SIGINT to CMD's group (unless
//! it was passed on already), gives it `GRACE` to stop as Terraform does on Ctrl-C (in-flight
//! operations finish, the state is written, the lock released), then SIGTERM, and SIGKILL after
//! `LAST_WORD` to whatever is left, and exits.
//!
//! The guardian is a `fork` without `exec`: after the fork it calls only async-signal-safe
//! functions (setpgid, dup2, close_range or close, signal, pthread_sigmask, read, kill, nanosleep,
//! _exit), so it is sound even if the wrapper had other threads, and it needs no program of its own.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::libc;
use nix::sys::signal::{SigSet, SigmaskHow};
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, Pid, fork};

/// How long CMD's group has after the guardian's SIGINT before it gets SIGTERM.
pub const GRACE: Duration = Duration::from_secs(60);
/// How long it has after SIGTERM before SIGKILL.
pub const LAST_WORD: Duration = Duration::from_secs(10);

const INTERRUPTED: u8 = b'i';
const DONE: u8 = b'd';
const POLL: Duration = Duration::from_millis(100);

/// The wrapper's side of a running guardian. Dropping it tells the guardian that CMD ended.
pub struct Guardian {
    tell: Option<File>,
    pid: Pid,
}

impl Guardian {
    /// Forks the guardian of process group `group` (CMD's, led by CMD).
    pub fn start(group: Pid) -> io::Result<Guardian> {
        // Close-on-exec: no program started later holds the write end open.
        let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
        let read = above_stdio(read)?;
        let devnull = above_stdio(OwnedFd::from(File::options().read(true).write(true).open("/dev/null")?))?;
        // Until the child has dropped the wrapper's handlers, a signal must not run them there:
        // they would write into the wrapper's self-pipe, as if the wrapper had been signalled.
        let previous = SigSet::all().thread_swap_mask(SigmaskHow::SIG_BLOCK)?;
        // SAFETY: the child runs only `guard`, which calls async-signal-safe functions and never
        // returns; the parent goes on as before.
        let forked = match unsafe { fork() } {
            Ok(ForkResult::Child) => guard(read.as_raw_fd(), devnull.as_raw_fd(), group, &previous),
            Ok(ForkResult::Parent { child }) => Ok(child),
            Err(e) => Err(e),
        };
        // Signals that came meanwhile are delivered now.
        previous.thread_set_mask()?;
        Ok(Guardian {
            tell: Some(File::from(write)),
            pid: forked?,
        })
    }

    /// The wrapper passed an interrupt on to CMD's group.
    pub fn interrupted(&mut self) {
        self.send(INTERRUPTED);
    }

    fn send(&mut self, message: u8) {
        if let Some(tell) = &mut self.tell
            && tell.write_all(&[message]).is_err()
        {
            // The guardian is gone: nothing is left to tell.
            self.tell = None;
        }
    }
}

impl Drop for Guardian {
    fn drop(&mut self) {
        self.send(DONE);
        self.tell = None;
        // Reaps it; it exits as soon as it has read `DONE`.
        let _ = waitpid(self.pid, None);
    }
}

/// The same file on a descriptor above 0, 1 and 2, so that the guardian's `dup2` onto those cannot
/// overwrite it (a wrapper started with a standard descriptor closed).
fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    let raised = fcntl(&fd, FcntlArg::F_DUPFD_CLOEXEC(3))?;
    // SAFETY: F_DUPFD_CLOEXEC returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raised) })
}

/// The guardian's life after the fork.
fn guard(read: RawFd, devnull: RawFd, group: Pid, mask: &SigSet) -> ! {
    // SAFETY: every call is async-signal-safe and works on plain integers and a stack buffer.
    unsafe {
        // Out of the wrapper's process group, which is what a runner kills.
        libc::setpgid(0, 0);
        // The pipe becomes stdin; the job's log must not stay open because of the guardian, nor
        // anything else the wrapper had open (another guardian's pipe would never see its end).
        libc::dup2(read, 0);
        libc::dup2(devnull, 1);
        libc::dup2(devnull, 2);
        if libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) != 0 {
            for fd in 3..4096 {
                libc::close(fd);
            }
        }
        let read = 0;
        // The wrapper's handlers write to the wrapper's self-pipe: not for the guardian.
        for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGCHLD] {
            libc::signal(signal, libc::SIG_DFL);
        }
        libc::pthread_sigmask(libc::SIG_SETMASK, mask.as_ref(), std::ptr::null_mut());
        let mut interrupted = false;
        loop {
            let mut byte = 0u8;
            let n = libc::read(read, (&raw mut byte).cast(), 1);
            if n == 1 && byte == DONE {
                libc::_exit(0);
            } else if n == 1 {
                interrupted |= byte == INTERRUPTED;
            } else if n == 0 || Errno::last() != Errno::EINTR {
                break;
            }
        }
        let group = -group.as_raw();
        if !interrupted {
            libc::kill(group, libc::SIGINT);
        }
        if !gone_within(group, GRACE) {
            libc::kill(group, libc::SIGTERM);
            if !gone_within(group, LAST_WORD) {
                libc::kill(group, libc::SIGKILL);
            }
        }
        libc::_exit(0)
    }
}

/// Whether no process is left in the group (`-group`) within `limit`. Async-signal-safe.
fn gone_within(group: libc::pid_t, limit: Duration) -> bool {
    let pause = libc::timespec {
        tv_sec: 0,
        tv_nsec: POLL.as_nanos() as libc::c_long,
    };
    for _ in 0..limit.as_millis() / POLL.as_millis() {
        // SAFETY: kill with signal 0 only checks; nanosleep reads a valid timespec.
        unsafe {
            if libc::kill(group, 0) == -1 && Errno::last() == Errno::ESRCH {
                return true;
            }
            libc::nanosleep(&pause, std::ptr::null_mut());
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    use std::process::{Child, Command};
    use std::time::Instant;

    use super::*;

    /// A `sleep` leading a process group of its own, as CMD does in CI mode.
    fn command_in_its_own_group() -> (Child, Pid) {
        let child = Command::new("sleep").arg("30").process_group(0).spawn().unwrap();
        let pid = Pid::from_raw(child.id() as i32);
        (child, pid)
    }

    fn ended_within(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    #[test]
    fn the_death_of_the_wrapper_interrupts_the_command_group() {
        let (mut child, group) = command_in_its_own_group();
        let mut guardian = Guardian::start(group).unwrap();
        // What the kernel does when the wrapper dies: the write end closes, no goodbye.
        drop(guardian.tell.take());
        let status = ended_within(&mut child, Duration::from_secs(10)).expect("the command was stopped");
        assert_eq!(status.signal(), Some(libc::SIGINT));
        let _ = waitpid(guardian.pid, None);
    }

    #[test]
    fn a_goodbye_leaves_the_command_alone() {
        let (mut child, group) = command_in_its_own_group();
        drop(Guardian::start(group).unwrap());
        // Dropping waited for the guardian's exit, so any signal it sent would have arrived.
        assert!(child.try_wait().unwrap().is_none(), "the command was signalled");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn after_an_interrupt_was_passed_on_the_death_of_the_wrapper_sends_no_second_one() {
        let (mut child, group) = command_in_its_own_group();
        let mut guardian = Guardian::start(group).unwrap();
        guardian.interrupted();
        drop(guardian.tell.take());
        // The guardian now waits out the grace period: the command is left alone meanwhile.
        assert_eq!(ended_within(&mut child, Duration::from_millis(500)), None);
        child.kill().unwrap();
        child.wait().unwrap();
        // With the group gone, the guardian ends too.
        let _ = waitpid(guardian.pid, None);
    }
}
