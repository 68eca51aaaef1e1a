//! RustChain consensus rules. Pure: no I/O, no clock, no floats in anything that is settled.
//! The node feeds these functions the current slot and the stored records; they decide.

pub mod admin;
pub mod attestation;
pub mod canonical_json;
pub mod consensus;
pub mod crypto;
pub mod enrollment;
pub mod entropy;
pub mod fingerprint;
pub mod multiplier;
pub mod settlement;
pub mod spec;
pub mod testkit;
pub mod transfer;
pub mod wire;

pub use crypto::Hash32;
pub use spec::ChainSpec;
