//! The RustChain node daemon: storage, the writer, replication, consensus rounds, the epoch
//! manager, anchoring and the HTTP API. `protocol` decides; this crate does (I/O, timers, HTTP).
//! The command line tools (and the `rustchain` binary) are the `rustchain-cli` crate.

pub mod anchor;
pub mod anchoring;
pub mod api;
pub mod config;
pub mod consensus;
pub mod dbops;
pub mod epoch;
pub mod keys;
pub mod limits;
pub mod metrics;
pub mod network;
pub mod nonce;
pub mod p2p;
pub mod relay;
pub mod service;
pub mod store;
pub mod writer;
