//! The RustChain node: storage, the writer, the epoch manager, the HTTP API and the CLI commands.
//! `protocol` decides; this crate does (I/O, timers, HTTP).

pub mod anchor;
pub mod anchoring;
pub mod api;
pub mod attest;
pub mod collect;
pub mod config;
pub mod consensus;
pub mod dbops;
pub mod epoch;
pub mod keys;
pub mod limits;
pub mod metrics;
pub mod netcheck;
pub mod network;
pub mod nonce;
pub mod p2p;
pub mod relay;
pub mod service;
pub mod sim;
pub mod store;
pub mod testnet;
pub mod wallet;
pub mod wallet_cli;
pub mod writer;
