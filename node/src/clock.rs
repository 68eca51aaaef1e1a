//! The node's one wall clock. Every time the node acts on (slots, epochs, nonces' expiry, an admin
//! change's signing time) is read here, so tests and reasoning have one place to look.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Wall-clock time in unix seconds: the node's only clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct Clock;

impl Clock {
    pub fn now_unix(&self) -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
    }

    pub fn now_unix_ms(&self) -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
    }

    /// Time left until unix second `t` begins (zero once it has), to the millisecond, so that
    /// nodes with the same clock act at the same moment rather than up to a second apart.
    pub fn until_unix(&self, t: u64) -> Duration {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        Duration::from_secs(t).saturating_sub(now)
    }
}
