//! The commands of the binary, each taking its validated configuration.

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
