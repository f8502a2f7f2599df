//! `iacwatch run`: the pipeline wrapper. Takes the validated `RunPlan` (nothing is written before
//! every check passed) and hands over to `wrapper::run`.

use super::Exit;
use crate::wrapper::{self, RunPlan};

pub fn main(plan: &RunPlan) -> anyhow::Result<Exit> {
    let finished = wrapper::run(plan)?;
    let code = match finished.exit_code {
        0 if !finished.recorded => 1,
        code => u8::try_from(code).unwrap_or(1),
    };
    Ok(if code == 0 { Exit::Ok } else { Exit::Code(code) })
}
