//! Sources: where readings of workspaces come from. Each source is one sibling folder that
//! imports only the core (`model`, `artifact`, `evidence`, `classify`, `workspace`) and hands its
//! batches (`workspace::Update`) to a `workspace::Sink`; it never sees the store, the outputs or
//! another source. `local/` reads directory trees on this machine.

pub mod local;
