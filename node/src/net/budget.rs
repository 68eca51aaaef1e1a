//! Per-peer budgets of new records (PROTOCOL.md §10.5): how fast one peer may deliver records,
//! whoever asked for them. Local policy: it decides when a record arrives, never whether it counts.

use std::time::Duration;

use libp2p::PeerId;

/// New records one peer may deliver: this many a second, after a burst of [`PEER_RECORDS_BURST`]
/// (PROTOCOL.md §10.5). Above what one node relays at the measured peak (BENCHMARKS.md: ~2,000
/// attestations a second) and far above an honest network's rate (100,000 miners attesting once
/// an epoch are a few records a second). It bounds how fast one connection can fill the disk with
/// records it minted (valid ones cost it only keys of its own); peer ids are free, so it is a bound
/// per connection (at most `--max-peers` of them), not per host.
pub const PEER_RECORDS_PER_SECOND: u32 = 5_000;
pub const PEER_RECORDS_BURST: u32 = 50_000;

/// The per-peer record budget ([`PEER_RECORDS_PER_SECOND`]).
pub type PeerBudget = governor::DefaultKeyedRateLimiter<PeerId>;

pub fn peer_budget() -> PeerBudget {
    let rate = std::num::NonZeroU32::new(PEER_RECORDS_PER_SECOND).expect("positive");
    let burst = std::num::NonZeroU32::new(PEER_RECORDS_BURST).expect("positive");
    governor::RateLimiter::keyed(governor::Quota::per_second(rate).allow_burst(burst))
}

/// Take `n` records from `peer`'s budget: `Ok` when they fit now, or how long until they do.
pub fn take_budget(budget: &PeerBudget, peer: &PeerId, n: usize) -> Result<(), Duration> {
    use governor::clock::{Clock, DefaultClock};
    let Some(n) = u32::try_from(n).ok().and_then(std::num::NonZeroU32::new) else { return Ok(()) };
    match budget.check_key_n(peer, n) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(not_until)) => Err(not_until.wait_time_from(DefaultClock::default().now()).max(Duration::from_millis(1))),
        // More than a whole burst at once: never, chunks are far smaller.
        Err(_) => Err(Duration::from_secs(1)),
    }
}
