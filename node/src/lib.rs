//! The RustChain node daemon. `protocol` decides; this crate does (I/O, timers, HTTP). The command
//! line tools (and the `rustchain` binary) are the `rustchain-cli` crate.
//!
//! One folder per concern; what each may call is in its `//!` header. A record's path:
//! `api` -> `admission` -> `store` (write) -> `replication` (announce) -> `net` (gossip); a peer's
//! announcement: `net` -> `replication` (fetch, verify, store); an epoch: `consensus::settler`
//! (settle) -> `consensus` (vote, tally, certificate) -> `store` (apply) -> `anchoring`.
//! `runtime` starts and stops it all; `context::Node` is what they share; `clock` is the only clock.

pub mod admission;
pub mod anchoring;
pub mod api;
pub mod clock;
pub mod config;
pub mod consensus;
pub mod context;
pub mod events;
pub mod keys;
pub mod metrics;
pub mod net;
pub mod replication;
pub mod runtime;
pub mod store;
