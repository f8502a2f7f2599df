//! The commands of the binary, each taking its validated configuration.

pub mod generate;
mod history;
pub mod run;
pub mod scan;
pub mod serve;

/// How a command ends: the process exit code of the interfaces contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// 0: fine.
    Ok,
    /// 2: the `--fail-on` gate tripped.
    GateTripped,
    /// Another code: the wrapped command's (`iacwatch run`).
    Code(u8),
}

/// Whether `err` is a write to a pipe whose reader has gone (`iacwatch scan | head`): the reader
/// had what it wanted, so the program ends quietly, as Unix tools do.
pub fn is_closed_pipe(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|cause| cause.downcast_ref::<std::io::Error>())
        .any(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
}
