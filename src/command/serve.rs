//! `iacwatch serve`: the daemon.

use super::Exit;
use crate::cli::ServeArgs;

pub fn main(_args: &ServeArgs) -> anyhow::Result<Exit> {
    anyhow::bail!("iacwatch serve is not available yet")
}
