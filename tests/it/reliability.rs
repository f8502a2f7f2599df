//! Reliability and hostile input against a running `iacwatch serve`: the canary secret never comes
//! out anywhere, HTTP abuse (slowloris, idle connections, oversized requests, path tricks, odd
//! methods) is answered or cut off, and faults on disk (in-place rewrites, killed writers, bursts,
//! renames, vanishing roots, unreadable directories, symlink loops) leave the daemon up and right.
//!
//! The long runs have a short mode (the default, for CI) and a full mode: `IACWATCH_TORTURE=full
//! cargo test --test it reliability::`.

mod canary;
mod disk;
mod http_abuse;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
