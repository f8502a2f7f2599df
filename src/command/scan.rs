//! `iacwatch scan`: one pass over the roots, printed as a table or as the API's JSON document.

use std::collections::BTreeSet;
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use anyhow::Context;
use chrono::Utc;
use rayon::prelude::*;

use super::Exit;
use crate::config::{Format, ScanConfig};
use crate::report::{self, Counts, WorkspaceView, WorkspacesDocument};
use crate::source::local::liveness::SystemProbe;
use crate::source::local::read::STREAM_ABOVE;
use crate::source::local::scan::{ScanResult, Scanner};
use crate::workspace::ScanProblem;

/// Runs a scan and writes its output to `out`.
pub fn run(config: &ScanConfig, out: &mut dyn Write) -> anyhow::Result<Exit> {
    let probe = match &config.common.hostname {
        Some(host) => SystemProbe::with_host(host),
        None => SystemProbe::new(),
    };
    let read = Arc::new(AtomicUsize::new(0));
    let scanner = Scanner {
        discover: config.common.discover.clone(),
        policy: config.common.policy,
        probe: Box::new(probe),
        stream_above: STREAM_ABOVE,
        progress: Some(read.clone()),
    };
    let now = config.now.unwrap_or_else(Utc::now);
    let (mut result, errors) = with_progress(&read, || scanner.scan(&config.common.roots, now));
    if let Some(err) = errors.into_iter().next() {
        return Err(err.into());
    }
    if config.now.is_none() {
        scanner.settle(&config.common.roots, &mut result);
    }
    let down = scan_remote(config, &mut result)?;
    crate::shard::Shard::retain(config.common.shard, &mut result.workspaces);
    let generated_at = config.now.unwrap_or_else(Utc::now);
    let counts = Counts::of(result.workspaces.iter().map(|w| w.verdict.status));
    let tripped = result
        .workspaces
        .iter()
        .any(|w| config.fail_on.contains(&w.verdict.status));
    // The views on every thread (in order): on a large tree they are a part of the scan's end.
    let shown: Vec<WorkspaceView> = result
        .workspaces
        .par_iter()
        .filter(|w| config.status.is_empty() || config.status.contains(&w.verdict.status))
        .map(|w| WorkspaceView::new(w, None))
        .collect();
    let mut doc = report::document(generated_at, counts, shown, &result.problems);
    match write(config, &mut doc, out) {
        // The reader has gone (`| head`): end quietly; the gate still answers with its code.
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => {}
        other => other.context("writing the output")?,
    }
    if !down.is_empty() {
        // As for a directory that cannot be read: exit 1; the other roots are still printed.
        for problem in &down {
            eprintln!("iacwatch: {}: {}", problem.root, problem.message);
        }
        return Ok(Exit::Code(1));
    }
    Ok(if tripped { Exit::GateTripped } else { Exit::Ok })
}

/// One poll of every `s3://` root into `result`, then the state of every directory whose backend
/// is S3 from its bucket; the roots that could not be read are returned.
fn scan_remote(config: &ScanConfig, result: &mut ScanResult) -> anyhow::Result<Vec<ScanProblem>> {
    use crate::source::s3::directory;
    let common = &config.common;
    let dirs = directory::backed_dirs(&result.workspaces, |label, path| {
        let root = common.roots.iter().find(|r| r.label == label)?;
        Some(if path == "." {
            root.path.clone()
        } else {
            root.path.join(path)
        })
    });
    if common.remote.is_empty() && dirs.is_empty() {
        return Ok(Vec::new());
    }
    let env = crate::source::s3::AwsEnvironment::from_process();
    let remote = crate::source::s3::watch::scan(
        &common.remote,
        &env,
        &common.discover.exclude,
        &common.policy,
        config.now,
        common.shard,
    )
    .context("starting the S3 client")?;
    result.workspaces.extend(remote.workspaces);
    result.problems.extend(remote.problems);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the S3 client")?;
    let now = config.now.unwrap_or_else(Utc::now);
    directory::read(
        &runtime,
        &dirs,
        &env,
        &common.policy,
        now,
        &mut result.workspaces,
        &mut result.problems,
    );
    Ok(remote.down)
}

fn write(config: &ScanConfig, doc: &mut WorkspacesDocument, out: &mut dyn Write) -> std::io::Result<()> {
    match config.format {
        Format::Json => {
            // Buffered here: a locked stdout is line-buffered, one write(2) a line of the output.
            let mut buffered = std::io::BufWriter::with_capacity(1 << 16, &mut *out);
            report::write_pretty(doc, &mut buffered)?;
            writeln!(buffered)?;
            buffered.flush()?;
        }
        Format::Table => {
            let colours = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            let roots: BTreeSet<_> = config.common.labels().into_iter().collect();
            out.write_all(report::table(doc, colours, roots.len() > 1).as_bytes())?;
            if !config.status.is_empty() {
                // The counts follow the root and search filters, never the status filter (as the
                // API's do): say so where the two numbers meet.
                let statuses: Vec<&str> = config.status.iter().map(|s| s.as_str()).collect();
                writeln!(
                    out,
                    "{} listed (--status {}); the counts above cover every status",
                    doc.workspaces.len(),
                    statuses.join(",")
                )?;
            }
        }
    }
    out.flush()
}

/// Runs `work`; on a terminal, a scan that takes more than a moment shows how many workspace
/// directories have been read so far (on stderr, erased when done).
fn with_progress<T>(read: &AtomicUsize, work: impl FnOnce() -> T) -> T {
    if !std::io::stderr().is_terminal() {
        return work();
    }
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let started = std::time::Instant::now();
            let mut shown = false;
            while !done.load(Ordering::Acquire) {
                std::thread::sleep(std::time::Duration::from_millis(100));
                if started.elapsed() > std::time::Duration::from_millis(500) {
                    eprint!(
                        "\rscanning: {} workspace directories read",
                        read.load(Ordering::Relaxed)
                    );
                    shown = true;
                }
            }
            if shown {
                eprint!("\r\x1b[2K");
            }
        });
        let value = work();
        done.store(true, Ordering::Release);
        value
    })
}
