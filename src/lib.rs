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
//! Layout:
//! - `model`: statuses, flags, reason codes (the vocabulary).
//! - `artifact`: pure parsers, bytes in, metadata out (state, plan, Terraform lock, pipeline markers,
//!   backend configuration).
//! - `evidence`: what was read about one workspace, as plain data.
//! - `classify`: the pure classifier (evidence + now + policy -> verdict).
//! - `discover`, `read`, `liveness`: the edge that does IO (walking, reading, asking the OS who
//!   holds a lock).
//! - `scan`: discover + read + classify over all roots, in parallel.
//! - `report`: the JSON views and the table.
//! - `store`: the one shared snapshot the daemon serves; `watch` keeps it current.
//! - `http`, `metrics`: the endpoints and the Prometheus exposition.
//! - `cli`, `config`, `command`: the command line, its validation, and the commands.

pub mod artifact;
pub mod build_info;
pub mod classify;
pub mod cli;
pub mod command;
pub mod config;
pub mod discover;
pub mod evidence;
pub mod http;
pub mod liveness;
pub mod metrics;
pub mod model;
pub mod page;
pub mod read;
pub mod report;
pub mod scan;
pub mod source;
pub mod store;
pub mod watch;
pub mod web;
pub mod wrapper;
