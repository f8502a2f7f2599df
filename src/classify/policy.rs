//! The knobs of the status model: when a lock is stale, how long an unreadable state may settle.

use std::time::Duration;

/// The knobs of the status model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// A lock older than this is stale (default 2 h).
    pub stale_lock_after: Duration,
    /// An unreadable state younger than this is presumed mid-write (default 2 s).
    pub settle_time: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            stale_lock_after: Duration::from_secs(2 * 60 * 60),
            settle_time: Duration::from_secs(2),
        }
    }
}
