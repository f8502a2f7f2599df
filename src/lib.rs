//! iacwatch: finds Terraform and OpenTofu workspaces under root directories, reads what Terraform
//! and pipelines leave there, and tells for each workspace which of seven statuses it is in, and
//! why.
//!
//! Data flows one way:
//!
//! ```text
//! roots --discover--> workspace dirs --read--> evidence --classify--> status + reasons --report--> output
//! ```
//!
//! Layout, by layer (which layer may import which: `ARCHITECTURE.md`; the unit test in
//! `src/layers.rs` checks it):
//! - core, pure: `model` (statuses, flags, reason codes), `artifact` (parsers, bytes in,
//!   metadata out), `evidence` (what was read about one workspace), `classify` (evidence + now +
//!   policy -> verdict), `telemetry` (the daemon's own counters: scans, events, artifact errors),
//!   `workspace` (the workspace record, its key and id, scan problems, and the
//!   batch a source hands to a `Sink`).
//! - sources, siblings that import only the core: `source::local` (the local file system:
//!   `layout`, `discover`, `read`, `liveness`, `scan`, `watch`).
//! - `store`: one `Writer`, many `Reader`s of one published snapshot; imports the core.
//! - outputs, which read the store and the core and never a source: `report` (JSON views and the
//!   table), `http/` (router and server, the JSON API, the Prometheus exposition `http::metrics`,
//!   the overview page `http::page`, the web configuration `http::web`).
//! - commands, which wire everything: `cli`, `config`, `command`, `wrapper`; `logging`: the daemon's
//!   log lines (logfmt or JSON).

pub mod artifact;
pub mod build_info;
pub mod classify;
pub mod cli;
pub mod command;
pub mod config;
pub mod evidence;
pub mod history;
pub mod http;
pub mod logging;
pub mod model;
pub mod report;
pub mod shard;
pub mod source;
pub mod store;
pub mod telemetry;
pub mod workspace;
pub mod wrapper;

#[cfg(test)]
mod layers;

/// The unit tests allocate as the binary does: the store's kept records apart (`store::kept`).
#[cfg(test)]
#[global_allocator]
static ALLOCATOR: store::kept::Allocator = store::kept::Allocator;
