//! The chain spec: every consensus parameter, and the slot/epoch arithmetic derived from it.
//! The built-in specs are the TOML files in `bootstrap/`, embedded at compile time.

use serde::{Deserialize, Serialize};

/// Consensus parameters shared by every node of one network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainSpec {
    /// Short name, `[a-z0-9-]{1,32}`; part of every protocol id and signature domain.
    pub network_id: String,
    /// Unix time (s) at which slot 0 begins.
    pub genesis_unix: u64,
    pub slot_seconds: u64,
    pub slots_per_epoch: u64,
    /// Reward split among an epoch's enrolled miners, in micro-RTC.
    pub epoch_pot_urtc: u64,
    pub total_supply_urtc: u64,
    /// Slots to wait after an epoch ends before settling it, so late records can still arrive.
    pub settlement_grace_slots: u64,
    /// Lifetime of an attestation challenge nonce.
    pub nonce_ttl_seconds: u64,
    /// libp2p multiaddrs (with `/p2p/<peer id>`) of the network's bootstrap nodes.
    #[serde(default)]
    pub bootnodes: Vec<String>,
    /// Public keys (hex) of the validators whose votes certify settlements. Empty: every node is
    /// its own validator set (a lone node certifies its own settlements).
    #[serde(default)]
    pub validators: Vec<String>,
    /// Whether a signed transfer without `chain_id` is valid here. Only mainnet, where today's field
    /// wallets send none; every other network refuses such a transfer (`CHAIN_ID_REQUIRED`), so a
    /// transfer signed for one network cannot be replayed on another (PROTOCOL.md §13.1).
    #[serde(default)]
    pub transfers_without_chain_id: bool,
    /// Other `chain_id`s a transfer signed for this network may carry besides `network_id`: the
    /// reference node's and its wallets' name of the network (`rustchain-mainnet-v2` on mainnet).
    /// Each network's names are its own, so replay across networks stays impossible.
    #[serde(default)]
    pub chain_id_aliases: Vec<String>,
    #[serde(default)]
    pub admin: AdminSettings,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSettings {
    /// Whether `POST /admin/settle-epoch` may settle an ended epoch before its grace period is over.
    #[serde(default = "yes")]
    pub manual_settlement: bool,
    /// Public keys (hex) of the nodes that may change a wallet name's pinned key
    /// (`POST /admin/attest/key`, PROTOCOL.md §7.2). Empty: nobody can.
    #[serde(default)]
    pub keys: Vec<String>,
}

fn yes() -> bool {
    true
}

impl Default for AdminSettings {
    fn default() -> Self {
        AdminSettings { manual_settlement: true, keys: Vec::new() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("chain spec TOML: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("chain spec: {0}")]
    Invalid(&'static str),
    #[error("unknown built-in chain spec {0:?} (built in: mainnet, devnet)")]
    UnknownBuiltin(String),
}

pub const MAINNET_TOML: &str = include_str!("../../bootstrap/mainnet.toml");
pub const DEVNET_TOML: &str = include_str!("../../bootstrap/devnet.toml");

/// Micro-RTC per RTC.
pub const URTC_PER_RTC: u64 = 1_000_000;

/// uRTC as RTC for display (the `*_rtc` fields of HTTP answers, metrics). Never used in consensus.
pub fn rtc_f64(urtc: u64) -> f64 {
    urtc as f64 / URTC_PER_RTC as f64
}

impl ChainSpec {
    pub fn builtin(name: &str) -> Result<ChainSpec, SpecError> {
        match name {
            "mainnet" => ChainSpec::from_toml(MAINNET_TOML),
            "devnet" => ChainSpec::from_toml(DEVNET_TOML),
            other => Err(SpecError::UnknownBuiltin(other.to_owned())),
        }
    }

    pub fn from_toml(text: &str) -> Result<ChainSpec, SpecError> {
        let spec: ChainSpec = toml::from_str(text)?;
        spec.check()?;
        Ok(spec)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("a chain spec always serializes")
    }

    fn check(&self) -> Result<(), SpecError> {
        let id_ok = !self.network_id.is_empty()
            && self.network_id.len() <= 32
            && self.network_id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !id_ok {
            return Err(SpecError::Invalid("network_id must match [a-z0-9-]{1,32}"));
        }
        if self.slot_seconds == 0 || self.slot_seconds > 86_400 {
            return Err(SpecError::Invalid("slot_seconds must be in 1..=86400"));
        }
        if self.slots_per_epoch == 0 || self.slots_per_epoch > 1_000_000 {
            return Err(SpecError::Invalid("slots_per_epoch must be in 1..=1000000"));
        }
        if self.epoch_pot_urtc > self.total_supply_urtc {
            return Err(SpecError::Invalid("epoch_pot_urtc exceeds total_supply_urtc"));
        }
        if self.nonce_ttl_seconds == 0 {
            return Err(SpecError::Invalid("nonce_ttl_seconds must be positive"));
        }
        for v in &self.validators {
            if v.len() != 64 || !v.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(SpecError::Invalid("validators must be 64-hex-character Ed25519 public keys"));
            }
        }
        let distinct: std::collections::BTreeSet<String> = self.validators.iter().map(|v| v.to_ascii_lowercase()).collect();
        if distinct.len() != self.validators.len() {
            return Err(SpecError::Invalid("validators must be distinct"));
        }
        for k in &self.admin.keys {
            if k.len() != 64 || !k.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                return Err(SpecError::Invalid("admin.keys must be 64-lower-case-hex-character Ed25519 public keys"));
            }
        }
        if self.genesis_unix > 1 << 40 {
            return Err(SpecError::Invalid("genesis_unix is not a plausible unix time"));
        }
        // What field wallets sign without naming a network is mainnet's alone: a spec copied from
        // mainnet's under another network id must not accept mainnet's transfers (nor they its).
        if self.network_id != "mainnet" && (self.transfers_without_chain_id || !self.chain_id_aliases.is_empty()) {
            return Err(SpecError::Invalid("transfers_without_chain_id and chain_id_aliases are mainnet's only"));
        }
        Ok(())
    }

    /// The slot containing unix time `now` (slot 0 before genesis).
    pub fn slot_at(&self, now_unix: u64) -> u64 {
        now_unix.saturating_sub(self.genesis_unix) / self.slot_seconds
    }

    pub fn epoch_of_slot(&self, slot: u64) -> u64 {
        slot / self.slots_per_epoch
    }

    pub fn epoch_at(&self, now_unix: u64) -> u64 {
        self.epoch_of_slot(self.slot_at(now_unix))
    }

    pub fn first_slot(&self, epoch: u64) -> u64 {
        epoch.saturating_mul(self.slots_per_epoch)
    }

    /// Unix time at which `epoch` ends (the first second of the next epoch).
    pub fn epoch_end_unix(&self, epoch: u64) -> u64 {
        self.genesis_unix
            .saturating_add(self.first_slot(epoch.saturating_add(1)).saturating_mul(self.slot_seconds))
    }

    /// Unix time from which `epoch` may be settled: its end plus the grace period.
    pub fn settle_at_unix(&self, epoch: u64) -> u64 {
        self.epoch_end_unix(epoch).saturating_add(self.settlement_grace_slots.saturating_mul(self.slot_seconds))
    }

    /// Chain age at the start of `slot`, in seconds.
    pub fn age_seconds(&self, slot: u64) -> u64 {
        slot.saturating_mul(self.slot_seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_parse() {
        let m = ChainSpec::builtin("mainnet").unwrap();
        assert_eq!((m.genesis_unix, m.slot_seconds, m.slots_per_epoch, m.epoch_pot_urtc), (1764706927, 600, 144, 1_500_000));
        let d = ChainSpec::builtin("devnet").unwrap();
        assert_eq!(d.slot_seconds * d.slots_per_epoch, 20);
        assert!(ChainSpec::builtin("nope").is_err());
        // Only mainnet takes transfers signed without a chain id (field wallets send none).
        assert!(m.transfers_without_chain_id && !d.transfers_without_chain_id);
        assert_eq!(ChainSpec::from_toml(&d.to_toml()).unwrap(), d);
        // Mainnet's spec copied under another network id keeps none of what is mainnet's alone.
        let copied = m.to_toml().replace("network_id = \"mainnet\"", "network_id = \"my-mainnet-copy\"");
        assert!(copied.contains("my-mainnet-copy"));
        assert!(matches!(ChainSpec::from_toml(&copied), Err(SpecError::Invalid(_))));
    }

    #[test]
    fn vector_v9_slot_and_epoch() {
        let m = ChainSpec::builtin("mainnet").unwrap();
        assert_eq!((m.slot_at(1764706927), m.epoch_at(1764706927)), (0, 0));
        assert_eq!((m.slot_at(1795379528), m.epoch_at(1795379528)), (51121, 355));
        assert_eq!(m.slot_at(0), 0);
    }

    #[test]
    fn epoch_boundaries() {
        let d = ChainSpec::builtin("devnet").unwrap();
        let e = d.epoch_at(d.genesis_unix + 1000);
        assert_eq!(e, 50);
        assert_eq!(d.epoch_end_unix(e), d.genesis_unix + 1020);
        assert_eq!(d.epoch_at(d.epoch_end_unix(e) - 1), e);
        assert_eq!(d.epoch_at(d.epoch_end_unix(e)), e + 1);
        assert_eq!(d.settle_at_unix(e), d.genesis_unix + 1024);
    }

    #[test]
    fn bad_specs_are_refused() {
        let good = ChainSpec::builtin("devnet").unwrap().to_toml();
        for (from, to) in [("slot_seconds = 2", "slot_seconds = 0"), ("network_id = \"devnet\"", "network_id = \"Dev Net\""),
                           ("epoch_pot_urtc = 1500000", "epoch_pot_urtc = 99999999999999999")] {
            let bad = good.replace(from, to);
            assert_ne!(bad, good, "replacement {from} must apply");
            assert!(ChainSpec::from_toml(&bad).is_err(), "{to}");
        }
        assert!(ChainSpec::from_toml(&format!("{good}\nsurprise = 1\n")).is_err());
    }
}
