//! Sources: where readings of workspaces come from. Each source is one sibling folder that
//! imports only the core (`model`, `artifact`, `evidence`, `classify`, `workspace`) and hands its
//! batches (`workspace::Update`) to a `workspace::Sink`; it never sees the store, the outputs or
//! another source. `local/` reads directory trees on this machine; `s3/` reads S3 buckets
//! (`docs/remote-state.md`).

pub mod local;
pub mod s3;
