//! `iacwatch completions SHELL` and `iacwatch man`: a shell completion script and the man page,
//! both generated from the clap definitions, so they cannot disagree with the binary.

use std::io::Write;

use super::Exit;

/// Writes the completion script for `shell`.
pub fn completions(shell: clap_complete::Shell, out: &mut dyn Write) -> anyhow::Result<Exit> {
    let mut command = crate::cli::command();
    clap_complete::generate(shell, &mut command, "iacwatch", out);
    out.flush()?;
    Ok(Exit::Ok)
}

/// Writes the man page (roff): the program's page with every subcommand's options in it.
pub fn man(out: &mut dyn Write) -> anyhow::Result<Exit> {
    let mut command = crate::cli::command();
    command.build();
    let man = clap_mangen::Man::new(command.clone());
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = sub.get_name();
        let sub = sub
            .clone()
            .name(format!("iacwatch {name}"))
            .bin_name(format!("iacwatch {name}"));
        writeln!(out, ".SH \"IACWATCH {}\"", name.to_uppercase())?;
        let page = clap_mangen::Man::new(sub);
        let mut body = Vec::new();
        page.render_synopsis_section(&mut body)?;
        page.render_description_section(&mut body)?;
        page.render_options_section(&mut body)?;
        // The subcommand's sections sit inside the program's page: its headings are subheadings.
        for line in String::from_utf8_lossy(&body).lines() {
            match line.strip_prefix(".SH ") {
                Some(heading) => writeln!(out, ".SS {heading}")?,
                None => writeln!(out, "{line}")?,
            }
        }
    }
    man.render_version_section(out)?;
    out.flush()?;
    Ok(Exit::Ok)
}
