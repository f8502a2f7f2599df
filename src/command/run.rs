//! `iacwatch run`: the pipeline wrapper.

use clap::Args;

use super::Exit;

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// provision, destroy, plan or drift_check.
    #[arg(long)]
    pub operation: String,
    /// The command to run.
    #[arg(last = true)]
    pub command: Vec<String>,
}

pub fn main(_args: &RunArgs) -> anyhow::Result<Exit> {
    anyhow::bail!("iacwatch run is not available yet")
}
