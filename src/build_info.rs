//! What this binary is: its version, the git revision and the compiler it was built from, and the
//! target. `--version` prints them and `iacwatch_build_info` exports them.

/// The crate's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git revision the binary was built from (12 hex digits), or `unknown`.
pub const REVISION: &str = env!("IACWATCH_REVISION");
/// The rustc version that built it, e.g. `1.95.0`, or `unknown`.
pub const RUSTC: &str = env!("IACWATCH_RUSTC_VERSION");
/// The target triple, e.g. `x86_64-unknown-linux-gnu`.
pub const TARGET: &str = env!("IACWATCH_TARGET");

/// The text of `--version` after the program's name.
pub fn long_version() -> String {
    format!("{VERSION} (revision {REVISION}, rustc {RUSTC}, {TARGET})")
}
