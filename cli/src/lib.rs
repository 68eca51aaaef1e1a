//! The `rustchain` command line tools around the node daemon (`rustchain_node`): measure and submit
//! a miner's attestation (`attest`, `collect`), hold wallet keys and send transfers (`wallet`,
//! `wallet_cli`), operate a node's database (`db`), and run local networks and load
//! (`testnet`, `sim`, `netcheck`). The daemon itself is `rustchain node` (`rustchain_node::service`).
//! Nothing in the daemon library depends on this crate.

pub mod attest;
pub mod collect;
pub mod db;
pub mod netcheck;
pub mod sim;
pub mod testnet;
pub mod verify;
pub mod wallet;
pub mod wallet_cli;
