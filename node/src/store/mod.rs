//! The node's redb database: table layout, schema check, and the read and write operations on it.
//! Writes happen only in the writer task (`store/writer.rs`); everything here that takes a
//! `WriteTransaction` is called from there.

pub mod ops;
pub mod writer;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use protocol::admin::{self, AdminRecord};
use protocol::attestation::AttestationRecord;
use protocol::consensus::{EpochCertificate, Equivocation, Vote};
use protocol::enrollment::{self, BindingKind, Bindings, Claim};
use protocol::entropy::{Profile, ProfileIndex};
use protocol::settlement::{self, Account, PendingTransfer, Settlement, TransferInput, TransferResult};
use protocol::transfer::TransferRecord;
use protocol::{ChainSpec, Hash32};
use redb::{
    Builder, Database, Key, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition, TableHandle,
    WriteTransaction,
};
use serde::{Deserialize, Serialize};

/// Bump when the layout changes; a database with another version is refused, except version 3,
/// which is migrated in place (see [`open`]).
/// Version 2: settlement records of version 2 (transfers), the transfer tables.
/// Version 4: admin pin changes (`admin_records`, `epoch_admin`, `key_log`).
pub const SCHEMA_VERSION: u64 = 5;

/// `schema_version`, `network_id`, `first_epoch`, `ledger_seq`, and `settled_through` once the epoch
/// manager has settled an epoch ([`resume_epoch`]).
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// record id -> `AttestationRecord` (CBOR).
const RECORDS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("records");
/// (epoch, record id) -> `StoredClaim` (CBOR): what the record claims, evaluated at acceptance.
const EPOCH_CLAIMS: TableDefinition<(u64, &[u8]), &[u8]> = TableDefinition::new("epoch_claims");
/// (epoch, wallet) -> `EnrollmentRow` (CBOR): the claim that currently enrolls the wallet.
const ENROLLMENTS: TableDefinition<(u64, &str), &[u8]> = TableDefinition::new("enrollments");
/// (kind, key) -> `StoredBinding` (CBOR): what applied (certified) settlements bound: a serial hash
/// to a wallet, a machine to its entropy profile (PROTOCOL.md §7). The earliest epoch's binding
/// wins. Wallet-name pins are in `KEY_LOG` (schema 3 kept them here; the migration copies them).
const BINDINGS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("bindings");
/// (epoch, kind, key) -> `EpochFirst` (CBOR): the earliest claim on a serial or a wallet name among
/// the records of an epoch, for the HTTP path's refusals (settlement derives it again).
const EPOCH_FIRST: TableDefinition<(u64, &str, &str), &[u8]> = TableDefinition::new("epoch_first_claims");
/// (profile key, machine) -> profile text: the certified `profile` bindings by `Profile::key`, so a
/// collision check reads one small range (PROTOCOL.md §7.1).
const PROFILE_CELLS: TableDefinition<(u64, &str), &str> = TableDefinition::new("profile_cells");
/// (payload id, receipt node key) -> receipt slot: every receipt seen for a miner payload. One payload
/// under two receipts is two records; one key at two slots is an equivocating receipt signer.
const PAYLOAD_RECEIPTS: TableDefinition<(&[u8], &[u8]), u64> = TableDefinition::new("payload_receipts");
/// (node key, payload id) -> `ReceiptEquivocation` (CBOR): evidence of a key that signed two receipts
/// for one payload at different slots.
const RECEIPT_EVIDENCE: TableDefinition<(&[u8], &[u8]), &[u8]> = TableDefinition::new("receipt_evidence");
/// nonce -> expiry (unix s): nonces already used by an accepted attestation.
const USED_NONCES: TableDefinition<&str, u64> = TableDefinition::new("used_nonces");
/// wallet -> `MinerSummary` (CBOR).
const MINERS: TableDefinition<&str, &[u8]> = TableDefinition::new("miners");
/// epoch -> `Settlement` (CBOR): provisional until the epoch has a certificate, then the certified one.
const SETTLEMENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("settlements");
/// (epoch, round, validator) -> `Vote` (CBOR): the first vote seen from each validator per round.
const VOTES: TableDefinition<(u64, u32, &[u8]), &[u8]> = TableDefinition::new("votes");
/// epoch -> `EpochCertificate` (CBOR).
const CERTIFICATES: TableDefinition<u64, &[u8]> = TableDefinition::new("certificates");
/// epoch -> () once the certified settlement has been credited to balances.
const APPLIED: TableDefinition<u64, ()> = TableDefinition::new("applied");
/// (epoch, validator) -> `Equivocation` (CBOR): two different signed hashes in one round.
const EVIDENCE: TableDefinition<(u64, &[u8]), &[u8]> = TableDefinition::new("evidence");
/// wallet -> confirmed balance (uRTC).
const BALANCES: TableDefinition<&str, u64> = TableDefinition::new("balances");
/// (epoch, seq) -> `LedgerEntry` (CBOR): every balance change, in the order applied.
const LEDGER: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("ledger");

/// epoch -> `AnchorRecord` (CBOR): where this node anchored the epoch's certified hash.
const ANCHORS: TableDefinition<u64, &[u8]> = TableDefinition::new("anchors");

/// record id -> `TransferRecord` (CBOR): every verified transfer record (one per receipt).
const TRANSFER_RECORDS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("transfer_records");
/// (epoch of the receipt, record id) -> `StoredTransfer` (CBOR): the registry's transfer side.
const EPOCH_TRANSFERS: TableDefinition<(u64, &[u8]), &[u8]> = TableDefinition::new("epoch_transfers");
/// tx hash -> `StoredTransfer` (CBOR, earliest receipt): transfers no applied settlement judged yet.
const PENDING: TableDefinition<&str, &[u8]> = TableDefinition::new("pending_transfers");
/// (address, tx hash) -> (): pending transfers by sender and by recipient.
const PENDING_OUT: TableDefinition<(&str, &str), ()> = TableDefinition::new("pending_out");
const PENDING_IN: TableDefinition<(&str, &str), ()> = TableDefinition::new("pending_in");
/// tx hash -> `JudgedTransfer` (CBOR): what an applied settlement decided.
const JUDGED: TableDefinition<&str, &[u8]> = TableDefinition::new("judged_transfers");
/// address -> nonce of its last applied transfer.
const LAST_NONCES: TableDefinition<&str, u64> = TableDefinition::new("last_nonces");
/// (address, ledger seq) -> `LedgerEntry` (CBOR): the ledger by wallet, for history.
const HISTORY: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("wallet_history");
/// record id -> `AdminRecord` (CBOR): every verified admin pin change (PROTOCOL.md §7.2).
const ADMIN_RECORDS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("admin_records");
/// (epoch the change names, record id) -> (): the registry's admin side.
const EPOCH_ADMIN: TableDefinition<(u64, &[u8]), &[u8]> = TableDefinition::new("epoch_admin");
/// (wallet name, epoch, kind) -> owner: every `wallet_key` pin and `admin_key` change applied
/// (certified) settlements made, from which `enrollment::key_in_force` says who holds a name.
const KEY_LOG: TableDefinition<(&str, u64, &str), &str> = TableDefinition::new("key_log");

/// (wallet, epoch) -> (): the epochs in which a wallet holds an enrolling claim here, written with
/// `ENROLLMENTS` (a miner's history without a scan of every epoch).
const MINER_EPOCHS: TableDefinition<(&str, u64), ()> = TableDefinition::new("miner_epochs");

/// The tables schema version 4 added (a schema-3 database is migrated when a node opens it).
const ADDED_IN_4: [&str; 3] = ["admin_records", "epoch_admin", "key_log"];
/// The table schema version 5 added (built from `enrollments` when a node opens an older database).
const ADDED_IN_5: [&str; 1] = ["miner_epochs"];

/// Every table of the schema. A backup copies exactly these; `check` wants all of them.
pub const TABLE_NAMES: [&str; 31] = [
    "meta", "records", "epoch_claims", "enrollments", "bindings", "profile_cells", "epoch_first_claims", "payload_receipts",
    "receipt_evidence", "used_nonces", "miners", "settlements", "balances", "ledger", "votes", "certificates",
    "applied", "evidence", "anchors", "transfer_records", "epoch_transfers", "pending_transfers", "pending_out",
    "pending_in", "judged_transfers", "last_nonces", "wallet_history", "admin_records", "epoch_admin", "key_log",
    "miner_epochs",
];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] redb::Error),
    #[error(
        "database schema version {found} is not the {expected} this node understands; \
         it was written by another version of rustchain (restore a backup or use a matching binary)"
    )]
    Schema { found: u64, expected: u64 },
    #[error("database belongs to network {found:?}, but the chain spec is {expected:?}; use another --data-dir")]
    Network { found: String, expected: String },
    #[error("corrupt {0} in the database")]
    Corrupt(&'static str),
    #[error("the database is closed while it is being reopened after a storage failure")]
    Closed,
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(impl From<$t> for StoreError { fn from(e: $t) -> Self { StoreError::Db(e.into()) } })*};
}
from_redb!(redb::DatabaseError, redb::TransactionError, redb::TableError, redb::StorageError, redb::CommitError);

fn cbor<T: Serialize>(v: &T) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(v, &mut out).expect("writing CBOR to a Vec cannot fail");
    out
}

fn uncbor<T: for<'de> Deserialize<'de>>(bytes: &[u8], what: &'static str) -> Result<T, StoreError> {
    ciborium::from_reader(bytes).map_err(|_| StoreError::Corrupt(what))
}

/// What an accepted record claims, as evaluated when it was accepted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredClaim {
    pub wallet: String,
    /// The miner's public key (hex): a free-form wallet name is pinned to the first key (§7).
    pub key: String,
    pub miner_id: String,
    pub slot: u64,
    pub weight: u64,
    pub hw_weight: u64,
    pub fingerprint_passed: bool,
    pub serial_hash: Option<String>,
    pub family: String,
    pub arch: String,
    /// The fingerprint's entropy profile (PROTOCOL.md §7.1).
    pub profile: [u16; 5],
}

impl StoredClaim {
    /// What a verified submission claims at `slot`, as evaluated there.
    pub fn new(sub: &protocol::attestation::Submission, eval: &protocol::attestation::Evaluation, slot: u64) -> StoredClaim {
        StoredClaim {
            wallet: sub.miner.clone(),
            key: hex::encode(sub.public_key),
            miner_id: sub.miner_id.clone(),
            slot,
            weight: eval.weight,
            hw_weight: eval.hw_weight,
            fingerprint_passed: eval.verdict.passed,
            serial_hash: eval.serial_hash.clone(),
            family: eval.device.family.clone(),
            arch: eval.device.arch.clone(),
            profile: eval.profile.0,
        }
    }

    pub fn to_claim(&self, id: Hash32) -> Claim {
        Claim {
            wallet: self.wallet.clone(),
            key: self.key.clone(),
            slot: self.slot,
            id,
            weight: self.weight,
            serial_hash: self.serial_hash.clone(),
            profile: Profile(self.profile),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollmentRow {
    pub slot: u64,
    #[serde(with = "serde_bytes")]
    pub id: Hash32,
    pub weight: u64,
    pub miner_id: String,
    pub hw_weight: u64,
    pub fingerprint_passed: bool,
}

/// A certified binding: its owner, and the epoch whose settlement made it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct StoredBinding {
    owner: String,
    epoch: u64,
}

/// The earliest claim on a serial or a wallet name within one epoch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct EpochFirst {
    owner: String,
    slot: u64,
    #[serde(with = "serde_bytes")]
    id: Hash32,
}

/// A receipt signer that put one payload at two slots.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptEquivocation {
    #[serde(with = "serde_bytes")]
    pub payload_id: Hash32,
    pub slots: (u64, u64),
}

/// The latest state of one wallet's miner, for `/api/miners`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MinerSummary {
    pub miner: String,
    pub miner_id: String,
    pub family: String,
    pub arch: String,
    pub last_slot: u64,
    pub last_epoch: u64,
    pub fingerprint_passed: bool,
    pub weight: u64,
    pub attestations: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    pub epoch: u64,
    pub wallet: String,
    pub amount_urtc: u64,
    /// `reward`, `transfer_in` or `transfer_out` (which the balance loses).
    pub kind: String,
    /// The transfer, for `transfer_in` / `transfer_out`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tx_hash: Option<String>,
    /// The other side of a transfer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counterparty: Option<String>,
}

impl LedgerEntry {
    /// What the entry did to the balance.
    pub fn signed_amount(&self) -> i128 {
        if self.kind == "transfer_out" { -(self.amount_urtc as i128) } else { self.amount_urtc as i128 }
    }
}

/// A verified transfer as the settlement needs it, with the slot its record makes it count from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredTransfer {
    pub tx_hash: String,
    pub from: String,
    pub to: String,
    pub amount_urtc: u64,
    pub nonce: u64,
    /// `protocol::transfer::counted_slot`: the receipt's slot, never before the signed time.
    pub slot: u64,
    pub memo: String,
}

impl StoredTransfer {
    /// `t` under a receipt at `receipt_slot`.
    pub fn new(spec: &ChainSpec, t: &protocol::transfer::Transfer, receipt_slot: u64) -> StoredTransfer {
        StoredTransfer {
            tx_hash: t.tx_hash(),
            from: t.from_address.clone(),
            to: t.to_address.clone(),
            amount_urtc: t.amount_i64 as u64,
            nonce: t.nonce as u64,
            slot: protocol::transfer::counted_slot(spec, t.nonce, receipt_slot),
            memo: t.memo.clone(),
        }
    }

    pub fn pending(&self) -> PendingTransfer {
        PendingTransfer { tx_hash: self.tx_hash.as_str().into(), from: self.from.as_str().into(), to: self.to.as_str().into(), amount_urtc: self.amount_urtc, nonce: self.nonce }
    }
}

/// A transfer an applied (certified) settlement judged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JudgedTransfer {
    pub epoch: u64,
    pub result: TransferResult,
    pub transfer: StoredTransfer,
}

/// A transfer on its way to disk.
#[derive(Clone, Debug)]
pub struct NewTransfer {
    pub origin: Origin,
    pub id: Hash32,
    pub epoch: u64,
    pub record: TransferRecord,
    pub transfer: StoredTransfer,
}

/// Where a transfer stands at this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxState {
    Pending(StoredTransfer),
    Judged(JudgedTransfer),
}

/// Where a record came from: the HTTP path refuses what a relayed record only records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Accepted here from a miner: nonce replays, serial conflicts and settled epochs are refused.
    Miner,
    /// Fetched from a peer and verified: stored once by id; a serial or wallet name claimed by
    /// another party is kept as evidence (it does not enroll); a record for an epoch that is final
    /// here, or older than this node's first epoch, is kept for history (it changes nothing).
    Peer,
}

/// An accepted attestation on its way to disk.
#[derive(Clone, Debug)]
pub struct NewAttestation {
    pub origin: Origin,
    pub record: AttestationRecord,
    pub id: Hash32,
    pub epoch: u64,
    pub claim: StoredClaim,
    pub nonce_expires: u64,
    /// From a peer: the oldest epoch whose records this node still takes while it is not final
    /// here (the epochs it works on). Older epochs' records are refused unless final or before
    /// this node's first epoch. Ignored for `Origin::Miner`.
    pub oldest_open_epoch: u64,
}

/// Why a write was refused; the HTTP layer maps these to status codes.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refusal {
    #[error("nonce already used")]
    NonceReplay,
    #[error("hardware serial is already bound to wallet {0}")]
    DuplicateHardware(String),
    #[error("wallet {wallet} belongs to another key ({owner}); sign with that key or use the RTC address of yours")]
    KeyMismatch { wallet: String, owner: String },
    #[error("{reason}: {detail}")]
    HardwareBinding { reason: &'static str, detail: String },
    #[error("receipt slot {slot} is in epoch {epoch}, which is no longer open here and not final")]
    StaleReceipt { slot: u64, epoch: u64 },
    #[error("epoch {0} is already settled")]
    EpochSettled(u64),
    #[error("nonce {nonce} is not above the sender's last nonce {last}")]
    StaleNonce { nonce: u64, last: u64 },
    #[error("insufficient balance: {available} uRTC available (confirmed minus pending), {amount} uRTC asked")]
    InsufficientBalance { available: u64, amount: u64 },
    #[error("transfer {0} was already submitted")]
    DuplicateTransfer(String),
    #[error("epoch {0} is no longer open here and not final")]
    StaleEpoch(u64),
}

/// Open (or create) the node's database file. Every page checksum is verified on open, so a file
/// damaged on disk is refused here rather than trusted (a plain open may panic on one).
pub fn open_file(path: &Path) -> Result<Database, StoreError> {
    open_file_with_cache(path, DEFAULT_CACHE_BYTES)
}

/// redb's page cache (its default is 1 GiB, which a node would fill with old records and keep
/// resident). Recent pages are what the writer and the reads touch.
pub const DEFAULT_CACHE_BYTES: usize = 32 << 20;

/// [`open_file`] with a page cache of `cache_bytes`.
pub fn open_file_with_cache(path: &Path, cache_bytes: usize) -> Result<Database, StoreError> {
    Ok(Builder::new().set_check_integrity_on_open(true).set_cache_size(cache_bytes).create(path)?)
}

pub fn open(path: &Path, spec: &ChainSpec, current_epoch: u64, cache_bytes: usize) -> Result<Database, StoreError> {
    init(open_file_with_cache(path, cache_bytes)?, spec, current_epoch)
}

/// Create the schema in a new database, or check an existing one's schema version and network.
pub fn init(db: Database, spec: &ChainSpec, current_epoch: u64) -> Result<Database, StoreError> {
    let w = db.begin_write()?;
    let existing = {
        let meta = w.open_table(META)?;
        meta.get("schema_version")?.map(|v| v.value().to_vec())
    };
    match existing {
        None => {
            // First start: every table and the metadata in one transaction.
            {
                let mut meta = w.open_table(META)?;
                meta.insert("schema_version", SCHEMA_VERSION.to_be_bytes().as_slice())?;
                meta.insert("network_id", spec.network_id.as_bytes())?;
                meta.insert("first_epoch", current_epoch.to_be_bytes().as_slice())?;
                meta.insert("ledger_seq", 0u64.to_be_bytes().as_slice())?;
            }
            w.open_table(RECORDS)?;
            w.open_table(EPOCH_CLAIMS)?;
            w.open_table(ENROLLMENTS)?;
            w.open_table(BINDINGS)?;
            w.open_table(PROFILE_CELLS)?;
            w.open_table(EPOCH_FIRST)?;
            w.open_table(PAYLOAD_RECEIPTS)?;
            w.open_table(RECEIPT_EVIDENCE)?;
            w.open_table(USED_NONCES)?;
            w.open_table(MINERS)?;
            w.open_table(SETTLEMENTS)?;
            w.open_table(BALANCES)?;
            w.open_table(LEDGER)?;
            w.open_table(VOTES)?;
            w.open_table(CERTIFICATES)?;
            w.open_table(APPLIED)?;
            w.open_table(EVIDENCE)?;
            w.open_table(ANCHORS)?;
            w.open_table(TRANSFER_RECORDS)?;
            w.open_table(EPOCH_TRANSFERS)?;
            w.open_table(PENDING)?;
            w.open_table(PENDING_OUT)?;
            w.open_table(PENDING_IN)?;
            w.open_table(JUDGED)?;
            w.open_table(LAST_NONCES)?;
            w.open_table(HISTORY)?;
            w.open_table(ADMIN_RECORDS)?;
            w.open_table(EPOCH_ADMIN)?;
            w.open_table(KEY_LOG)?;
            w.open_table(MINER_EPOCHS)?;
            w.commit()?;
        }
        Some(v) => {
            let found = be_u64(&v).ok_or(StoreError::Corrupt("schema version"))?;
            if !(3..=SCHEMA_VERSION).contains(&found) {
                return Err(StoreError::Schema { found, expected: SCHEMA_VERSION });
            }
            // The network first: a database of another network is refused as it is, not migrated.
            let network = w.open_table(META)?.get("network_id")?.map(|v| v.value().to_vec()).unwrap_or_default();
            let network = String::from_utf8_lossy(&network).into_owned();
            if network != spec.network_id {
                return Err(StoreError::Network { found: network, expected: spec.network_id.clone() });
            }
            if found < SCHEMA_VERSION {
                if found == 3 {
                    migrate_3_to_4(&w)?;
                }
                let n = migrate_4_to_5(&w)?;
                w.commit()?;
                tracing::info!(
                    from = found, to = SCHEMA_VERSION, miner_epochs = n,
                    "database migrated (4: admin pin changes; 5: the miners' epoch index); an older binary can no longer open it"
                );
            } else {
                w.abort()?;
            }
        }
    }
    Ok(db)
}

/// Version 3 to 4: the new tables, and every certified `wallet_key` binding copied into the key log.
fn migrate_3_to_4(w: &WriteTransaction) -> Result<(), StoreError> {
    w.open_table(ADMIN_RECORDS)?;
    w.open_table(EPOCH_ADMIN)?;
    let mut log = w.open_table(KEY_LOG)?;
    for row in w.open_table(BINDINGS)?.range((BindingKind::WalletKey.as_str(), "")..)? {
        let (k, v) = row?;
        let (kind, wallet) = k.value();
        if kind != BindingKind::WalletKey.as_str() {
            break;
        }
        let b: StoredBinding = uncbor(v.value(), "binding")?;
        log.insert((wallet, b.epoch, kind), b.owner.as_str())?;
    }
    w.open_table(META)?.insert("schema_version", SCHEMA_VERSION.to_be_bytes().as_slice())?;
    Ok(())
}

/// Whether a database of schema `version` may lack table `t` (one a later version added).
fn may_lack(version: Option<u64>, t: &str) -> bool {
    (version == Some(3) && ADDED_IN_4.contains(&t)) || (version.is_some_and(|v| v < 5) && ADDED_IN_5.contains(&t))
}

/// Version 4 to 5: the miners' epoch index, from the enrollments. Returns how many rows it wrote.
fn migrate_4_to_5(w: &WriteTransaction) -> Result<u64, StoreError> {
    let n = build_miner_epochs(w)?;
    w.open_table(META)?.insert("schema_version", SCHEMA_VERSION.to_be_bytes().as_slice())?;
    Ok(n)
}

/// (Re)build the miners' epoch index from the enrollments, from scratch.
fn build_miner_epochs(w: &WriteTransaction) -> Result<u64, StoreError> {
    w.delete_table(MINER_EPOCHS)?;
    let mut index = w.open_table(MINER_EPOCHS)?;
    let mut n = 0;
    for row in w.open_table(ENROLLMENTS)?.iter()? {
        let (k, _) = row?;
        let (epoch, wallet) = k.value();
        index.insert((wallet, epoch), ())?;
        n += 1;
    }
    Ok(n)
}

/// `rustchain db reindex`: rebuild the read indexes that are derived from other tables (today the
/// miners' epoch index) in one transaction. Returns the rows written per index.
pub fn reindex(db: &Database) -> Result<Vec<(&'static str, u64)>, StoreError> {
    let w = db.begin_write()?;
    let n = build_miner_epochs(&w)?;
    w.commit()?;
    Ok(vec![("miner_epochs", n)])
}

/// The key `wallet` is pinned to for claims of `epoch`, by the certified pins and admin changes
/// (`enrollment::key_in_force`).
fn pinned_key(log: &impl ReadableTable<(&'static str, u64, &'static str), &'static str>, wallet: &str, epoch: u64) -> Result<Option<String>, StoreError> {
    let mut entries = Vec::new();
    for row in log.range((wallet, 0, "")..(wallet, epoch, ""))? {
        let (k, v) = row?;
        let (_, e, kind) = k.value();
        let kind = BindingKind::parse(kind).ok_or(StoreError::Corrupt("key log kind"))?;
        entries.push((e, kind, v.value().to_owned()));
    }
    Ok(enrollment::key_in_force(entries.iter().map(|(e, k, o)| (*e, *k, o.as_str())), epoch))
}

fn be_u64(b: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(b.try_into().ok()?))
}

fn meta_bytes(r: &ReadTransaction, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
    let t = r.open_table(META)?;
    Ok(t.get(key)?.map(|v| v.value().to_vec()))
}

/// The network a database belongs to, if its metadata says.
pub fn network_id(db: &Database) -> Result<Option<String>, StoreError> {
    Ok(meta_bytes(&db.begin_read()?, "network_id")?.map(|b| String::from_utf8_lossy(&b).into_owned()))
}

pub fn first_epoch(db: &Database) -> Result<u64, StoreError> {
    let v = meta_bytes(&db.begin_read()?, "first_epoch")?.ok_or(StoreError::Corrupt("first_epoch"))?;
    be_u64(&v).ok_or(StoreError::Corrupt("first_epoch"))
}

/// The open database, shared by the readers and the writer. After a storage failure (a full disk)
/// redb refuses further use of the handle until the database is reopened; the writer does that
/// through [`reopen`](Self::reopen), and readers get [`StoreError::Closed`] meanwhile.
pub struct DbHandle {
    current: RwLock<Option<Arc<Database>>>,
    opener: Box<dyn Fn() -> Result<Database, StoreError> + Send + Sync>,
}

impl DbHandle {
    pub fn new(db: Database, opener: impl Fn() -> Result<Database, StoreError> + Send + Sync + 'static) -> DbHandle {
        DbHandle { current: RwLock::new(Some(Arc::new(db))), opener: Box::new(opener) }
    }

    /// The database, unless it is being reopened.
    pub fn get(&self) -> Result<Arc<Database>, StoreError> {
        self.current.read().expect("db lock").clone().ok_or(StoreError::Closed)
    }

    pub fn is_closed(&self) -> bool {
        self.current.read().expect("db lock").is_none()
    }

    /// Close the database (waiting up to `wait` for readers to finish with it) and open it again.
    /// On failure the handle stays closed and a later call tries again.
    pub fn reopen(&self, wait: Duration) -> Result<(), StoreError> {
        let mut slot = self.current.write().expect("db lock");
        if let Some(mut db) = slot.take() {
            let deadline = Instant::now() + wait;
            loop {
                match Arc::try_unwrap(db) {
                    Ok(db) => {
                        drop(db);
                        break;
                    }
                    Err(still_shared) if Instant::now() < deadline => {
                        db = still_shared;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(still_shared) => {
                        *slot = Some(still_shared);
                        return Err(StoreError::Closed);
                    }
                }
            }
        }
        *slot = Some(Arc::new((self.opener)()?));
        Ok(())
    }
}

impl DbHandle {
    /// Close the database for good (at shutdown), waiting up to `wait` for readers.
    pub fn close(&self, wait: Duration) -> Result<(), StoreError> {
        let mut slot = self.current.write().expect("db lock");
        let Some(mut db) = slot.take() else { return Ok(()) };
        let deadline = Instant::now() + wait;
        loop {
            match Arc::try_unwrap(db) {
                Ok(db) => return Ok(db.close()?),
                Err(shared) if Instant::now() < deadline => {
                    db = shared;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(shared) => {
                    *slot = Some(shared);
                    return Err(StoreError::Closed);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Writes (writer task only)

/// What an accepted insert changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Inserted {
    /// The record was not stored before (a relayed record may already be here).
    pub new: bool,
    /// The wallet was not enrolled in the record's epoch before (for the in-memory tallies).
    pub new_enrollment: bool,
    /// The receipt's signer had already put the same payload at another slot: the key of an
    /// equivocating receipt signer (evidence stored in `receipt_evidence`).
    pub equivocating_signer: Option<[u8; 32]>,
}

/// Whether `epoch` is final here: its certified settlement applied.
fn is_final(w: &WriteTransaction, epoch: u64) -> Result<bool, StoreError> {
    Ok(w.open_table(APPLIED)?.get(epoch)?.is_some())
}

/// Whether a peer's record of `epoch` is refused as stale: an epoch this node no longer works on
/// (older than `oldest_open_epoch`) that is neither final here nor before this node's first epoch.
/// Those two are history: kept, and they change nothing (the epoch's settlement is the certified
/// one, and bindings come only from certified settlements).
fn stale_for_peers(w: &WriteTransaction, epoch: u64, oldest_open_epoch: u64) -> Result<bool, StoreError> {
    if epoch >= oldest_open_epoch {
        return Ok(false);
    }
    let history = is_final(w, epoch)? || meta_u64(w, "first_epoch")?.is_some_and(|f| epoch < f);
    Ok(!history)
}

fn meta_u64(w: &WriteTransaction, key: &str) -> Result<Option<u64>, StoreError> {
    Ok(w.open_table(META)?.get(key)?.and_then(|v| be_u64(v.value())))
}

/// The certified profiles (bound by epochs before `epoch`) equal to any of `claims`' profiles:
/// every one a collision check of theirs could find.
fn certified_profiles_near(w: &WriteTransaction, claims: &[Claim], epoch: u64) -> Result<ProfileIndex, StoreError> {
    let cells = w.open_table(PROFILE_CELLS)?;
    let bindings = w.open_table(BINDINGS)?;
    let mut wanted: Vec<u64> = claims.iter().filter(|c| c.profile.is_complete()).map(|c| c.profile.key()).collect();
    wanted.sort_unstable();
    wanted.dedup();
    let mut index = ProfileIndex::default();
    for cell in wanted {
        for row in cells.range((cell, "")..(cell + 1, ""))? {
            let (k, v) = row?;
            let machine = k.value().1;
            let bound_in = match bindings.get((BindingKind::Profile.as_str(), machine))? {
                Some(b) => uncbor::<StoredBinding>(b.value(), "binding")?.epoch,
                None => continue,
            };
            if let (true, Some(p)) = (bound_in < epoch, Profile::from_text(v.value())) {
                index.insert(p, machine.to_owned());
            }
        }
    }
    Ok(index)
}

/// What the entropy rule says of a new claim at the HTTP door, against the certified bindings:
/// its machine's own profile (mismatch) and every other machine's (collision).
fn entropy_refusal(w: &WriteTransaction, epoch: u64, claim: &Claim) -> Result<Option<Refusal>, StoreError> {
    if !claim.profile.is_complete() {
        return Ok(None);
    }
    let machine = claim.machine();
    if let Some((own, None)) = holder(w, epoch, BindingKind::Profile, &machine)?
        && Profile::from_text(&own).is_some_and(|own| claim.profile.mismatches(&own)) {
        return Ok(Some(Refusal::HardwareBinding { reason: "entropy_mismatch", detail: "the cache timings are not the ones this serial bound (suspected: serial_spoofing_or_hardware_swap)".into() }));
    }
    let near = certified_profiles_near(w, std::slice::from_ref(claim), epoch)?;
    if let Some((other, _)) = near.collision(&claim.profile, &machine) {
        return Ok(Some(Refusal::HardwareBinding {
            reason: "entropy_collision",
            detail: format!("this hardware entropy matches an existing registration (collision {}; suspected: serial_spoofing)", other.short_hash()),
        }));
    }
    Ok(None)
}

/// The holder of a binding, and the `(slot, id)` of the claim that holds it when no certified
/// epoch bound it yet.
type Holder = (String, Option<(u64, Hash32)>);

/// Who holds `(kind, key)` for a claim of `epoch`: the certified binding of an earlier epoch, or
/// the earliest claim among the epoch's records. `None`: nobody yet.
fn holder(w: &WriteTransaction, epoch: u64, kind: BindingKind, key: &str) -> Result<Option<Holder>, StoreError> {
    if kind == BindingKind::WalletKey {
        // Pinned names come from the key log (an admin may have changed or cleared the pin).
        if let Some(owner) = pinned_key(&w.open_table(KEY_LOG)?, key, epoch)? {
            return Ok(Some((owner, None)));
        }
    } else if let Some(v) = w.open_table(BINDINGS)?.get((kind.as_str(), key))? {
        let b: StoredBinding = uncbor(v.value(), "binding")?;
        if b.epoch < epoch {
            return Ok(Some((b.owner, None)));
        }
    }
    Ok(match w.open_table(EPOCH_FIRST)?.get((epoch, kind.as_str(), key))? {
        Some(v) => {
            let f: EpochFirst = uncbor(v.value(), "epoch first claim")?;
            Some((f.owner, Some((f.slot, f.id))))
        }
        None => None,
    })
}

/// Record `claim` as a claim on `(kind, key)` by `owner` in `epoch`, if it is the earliest.
fn note_first(w: &WriteTransaction, epoch: u64, kind: BindingKind, key: &str, owner: &str, claim: &Claim) -> Result<(), StoreError> {
    let mut t = w.open_table(EPOCH_FIRST)?;
    let earlier = match t.get((epoch, kind.as_str(), key))? {
        Some(v) => {
            let f: EpochFirst = uncbor(v.value(), "epoch first claim")?;
            (f.slot, f.id) <= (claim.slot, claim.id)
        }
        None => false,
    };
    if !earlier {
        t.insert((epoch, kind.as_str(), key), cbor(&EpochFirst { owner: owner.to_owned(), slot: claim.slot, id: claim.id }).as_slice())?;
    }
    Ok(())
}

/// What the bindings in force say of `claim`: who else holds its wallet name or its serial.
/// Refusing is always safe, so a claim is refused whenever another party holds what it claims,
/// even one of the open epoch that it would outrank (a receipt slot tie, broken by id, which a
/// client could grind).
fn binding_refusal(w: &WriteTransaction, epoch: u64, claim: &Claim) -> Result<Option<Refusal>, StoreError> {
    if claim.pins_key()
        && let Some((owner, _)) = holder(w, epoch, BindingKind::WalletKey, &claim.wallet)?
        && owner != claim.key {
        return Ok(Some(Refusal::KeyMismatch { wallet: claim.wallet.clone(), owner }));
    }
    if let Some(serial) = &claim.serial_hash
        && let Some((owner, _)) = holder(w, epoch, BindingKind::Serial, serial)?
        && owner != claim.wallet {
        return Ok(Some(Refusal::DuplicateHardware(owner)));
    }
    Ok(None)
}

/// Store one accepted attestation. From a miner (HTTP) it is refused if its payload was already
/// receipted (here or by any node), its nonce was used, its epoch is settled, or its wallet name or
/// serial is held by another party. From a peer it is stored (whoever holds what is decided by the
/// enrollment rule, PROTOCOL.md §7), unless its epoch is one this node no longer works on and is
/// not final here. Checks first, then writes, so a refusal leaves nothing behind.
pub fn insert_attestation(w: &WriteTransaction, a: &NewAttestation) -> Result<Result<Inserted, Refusal>, StoreError> {
    let mut records = w.open_table(RECORDS)?;
    if records.get(a.id.as_slice())?.is_some() {
        return Ok(match a.origin {
            Origin::Miner => Err(Refusal::NonceReplay),
            Origin::Peer => Ok(Inserted::default()),
        });
    }
    let payload_id = a.record.payload.payload_id();
    let signer = a.record.receipt.node_key;
    let mut receipts = w.open_table(PAYLOAD_RECEIPTS)?;
    let mut equivocating_signer = None;
    let claim = a.claim.to_claim(a.id);
    match a.origin {
        Origin::Miner => {
            // A payload another node already receipted is a replay here, whatever our nonce table says.
            let seen = receipts.range((payload_id.as_slice(), &[][..])..)?.next().transpose()?.is_some_and(|(k, _)| k.value().0 == payload_id.as_slice());
            if seen || w.open_table(USED_NONCES)?.get(a.record.receipt.nonce.as_str())?.is_some() {
                return Ok(Err(Refusal::NonceReplay));
            }
            if w.open_table(SETTLEMENTS)?.get(a.epoch)?.is_some() {
                return Ok(Err(Refusal::EpochSettled(a.epoch)));
            }
            if let Some(refusal) = binding_refusal(w, a.epoch, &claim)? {
                return Ok(Err(refusal));
            }
            if let Some(refusal) = entropy_refusal(w, a.epoch, &claim)? {
                return Ok(Err(refusal));
            }
        }
        Origin::Peer => {
            // A relayed record of a final epoch (or of one before this node's first epoch) is kept
            // as history: the epoch's settlement is the certified one, and bindings come only from
            // certified settlements, so it changes nothing. Any other epoch must still be open here.
            if stale_for_peers(w, a.epoch, a.oldest_open_epoch)? {
                return Ok(Err(Refusal::StaleReceipt { slot: a.record.receipt.slot, epoch: a.epoch }));
            }
            if let Some(other) = receipts.get((payload_id.as_slice(), signer.as_slice()))?.map(|v| v.value())
                && other != a.record.receipt.slot {
                let evidence = ReceiptEquivocation { payload_id, slots: (other.min(a.record.receipt.slot), other.max(a.record.receipt.slot)) };
                w.open_table(RECEIPT_EVIDENCE)?.insert((signer.as_slice(), payload_id.as_slice()), cbor(&evidence).as_slice())?;
                equivocating_signer = Some(signer);
            }
        }
    }
    if receipts.get((payload_id.as_slice(), signer.as_slice()))?.is_none() {
        receipts.insert((payload_id.as_slice(), signer.as_slice()), a.record.receipt.slot)?;
    }
    drop(receipts);
    if a.origin == Origin::Miner {
        w.open_table(USED_NONCES)?.insert(a.record.receipt.nonce.as_str(), a.nonce_expires)?;
    }
    // The read index shows the claim that enrolls the wallet as far as this node can tell now (a
    // miner's claim that a binding refuses was refused above).
    let counts = match a.origin {
        Origin::Miner => true,
        Origin::Peer => binding_refusal(w, a.epoch, &claim)?.is_none(),
    };
    if claim.pins_key() {
        note_first(w, a.epoch, BindingKind::WalletKey, &claim.wallet, &claim.key, &claim)?;
    }
    if let Some(serial) = &claim.serial_hash {
        note_first(w, a.epoch, BindingKind::Serial, serial, &claim.wallet, &claim)?;
    }
    records.insert(a.id.as_slice(), a.record.to_cbor().as_slice())?;
    w.open_table(EPOCH_CLAIMS)?.insert((a.epoch, a.id.as_slice()), cbor(&a.claim).as_slice())?;

    let mut enrollments = w.open_table(ENROLLMENTS)?;
    let key = (a.epoch, claim.wallet.as_str());
    let current = match enrollments.get(key)? {
        Some(v) => Some(uncbor::<EnrollmentRow>(v.value(), "enrollment")?),
        None => None,
    };
    let new_enrollment = counts && current.is_none();
    if counts && current.as_ref().is_none_or(|c| (claim.slot, claim.id) < (c.slot, c.id)) {
        let row = EnrollmentRow {
            slot: claim.slot,
            id: claim.id,
            weight: claim.weight,
            miner_id: a.claim.miner_id.clone(),
            hw_weight: a.claim.hw_weight,
            fingerprint_passed: a.claim.fingerprint_passed,
        };
        enrollments.insert(key, cbor(&row).as_slice())?;
        w.open_table(MINER_EPOCHS)?.insert((claim.wallet.as_str(), a.epoch), ())?;
    }

    let mut miners = w.open_table(MINERS)?;
    let previous = match miners.get(claim.wallet.as_str())? {
        Some(v) => Some(uncbor::<MinerSummary>(v.value(), "miner")?),
        None => None,
    };
    let count = previous.as_ref().map_or(0, |p| p.attestations);
    let newest = previous.as_ref().filter(|p| p.last_slot > a.claim.slot);
    let summary = MinerSummary {
        miner: a.claim.wallet.clone(),
        miner_id: a.claim.miner_id.clone(),
        family: a.claim.family.clone(),
        arch: a.claim.arch.clone(),
        last_slot: a.claim.slot,
        last_epoch: a.epoch,
        fingerprint_passed: a.claim.fingerprint_passed,
        weight: a.claim.weight,
        attestations: count + 1,
    };
    // Relayed records can arrive out of order: the summary describes the latest one.
    let summary = match newest {
        Some(p) => MinerSummary { attestations: count + 1, ..p.clone() },
        None => summary,
    };
    miners.insert(claim.wallet.as_str(), cbor(&summary).as_slice())?;
    Ok(Ok(Inserted { new: true, new_enrollment, equivocating_signer }))
}

/// The pending transfers an index (`PENDING_OUT` or `PENDING_IN`) lists for `address`, in a read
/// or a write transaction.
fn pending_listed(
    index: &impl ReadableTable<(&'static str, &'static str), ()>,
    pending: &impl ReadableTable<&'static str, &'static [u8]>,
    address: &str,
) -> Result<Vec<StoredTransfer>, StoreError> {
    let mut out = Vec::new();
    for row in index.range((address, "")..)? {
        let (k, _) = row?;
        let (a, tx) = k.value();
        if a != address {
            break;
        }
        if let Some(v) = pending.get(tx)? {
            out.push(uncbor::<StoredTransfer>(v.value(), "pending transfer")?);
        }
    }
    Ok(out)
}

/// Store one verified transfer record. From a wallet (HTTP), it must carry a nonce above the
/// sender's last (applied or pending) and an amount within its confirmed balance minus what it has
/// pending out; a peer's record is stored whatever it says (the settlement judges it). The
/// transfer is pending until an applied settlement judges it; it counts from its earliest receipt.
pub fn insert_transfer(w: &WriteTransaction, t: &NewTransfer) -> Result<Result<bool, Refusal>, StoreError> {
    let mut records = w.open_table(TRANSFER_RECORDS)?;
    let tx = &*t.transfer.tx_hash;
    if records.get(t.id.as_slice())?.is_some() {
        // The same wallet request twice in one slot makes the same record (signatures are deterministic).
        return Ok(match t.origin {
            Origin::Miner => Err(Refusal::DuplicateTransfer(tx.to_owned())),
            Origin::Peer => Ok(false),
        });
    }
    let judged = w.open_table(JUDGED)?.get(tx)?.is_some();
    let mut pending = w.open_table(PENDING)?;
    let earlier = match pending.get(tx)? {
        Some(v) => Some(uncbor::<StoredTransfer>(v.value(), "pending transfer")?),
        None => None,
    };
    if t.origin == Origin::Miner {
        if judged || earlier.is_some() {
            return Ok(Err(Refusal::DuplicateTransfer(tx.to_owned())));
        }
        let outgoing = pending_listed(&w.open_table(PENDING_OUT)?, &pending, &t.transfer.from)?;
        let applied = w.open_table(LAST_NONCES)?.get(&*t.transfer.from)?.map(|v| v.value());
        let last = applied.max(outgoing.iter().map(|o| o.nonce).max());
        if let Some(last) = last.filter(|l| t.transfer.nonce <= *l) {
            return Ok(Err(Refusal::StaleNonce { nonce: t.transfer.nonce, last }));
        }
        let balance = w.open_table(BALANCES)?.get(&*t.transfer.from)?.map_or(0, |v| v.value());
        let out = outgoing.iter().fold(0u64, |sum, o| sum.saturating_add(o.amount_urtc));
        let available = balance.saturating_sub(out);
        if t.transfer.amount_urtc > available {
            return Ok(Err(Refusal::InsufficientBalance { available, amount: t.transfer.amount_urtc }));
        }
    }
    records.insert(t.id.as_slice(), t.record.to_cbor().as_slice())?;
    w.open_table(EPOCH_TRANSFERS)?.insert((t.epoch, t.id.as_slice()), cbor(&t.transfer).as_slice())?;
    if !judged && earlier.as_ref().is_none_or(|e| t.transfer.slot < e.slot) {
        pending.insert(tx, cbor(&t.transfer).as_slice())?;
        w.open_table(PENDING_OUT)?.insert((&*t.transfer.from, tx), ())?;
        w.open_table(PENDING_IN)?.insert((&*t.transfer.to, tx), ())?;
    }
    Ok(Ok(true))
}

/// An admin pin change on its way to disk.
#[derive(Clone, Debug)]
pub struct NewAdmin {
    /// `Miner`: made by this node's admin API; `Peer`: fetched from a peer and verified.
    pub origin: Origin,
    pub id: Hash32,
    pub record: AdminRecord,
    /// The oldest epoch this node still settles (see `NewAttestation::oldest_open_epoch`).
    pub oldest_open_epoch: u64,
}

/// Store one verified admin pin change under the epoch it names. From this node's API, that epoch
/// must not be settled yet. From a peer, as an attestation: a change of a final epoch (or of one
/// before this node's first) is kept as history; any other epoch must still be open here.
pub fn insert_admin(w: &WriteTransaction, a: &NewAdmin) -> Result<Result<bool, Refusal>, StoreError> {
    let mut records = w.open_table(ADMIN_RECORDS)?;
    if records.get(a.id.as_slice())?.is_some() {
        return Ok(Ok(false));
    }
    let epoch = a.record.epoch;
    match a.origin {
        Origin::Miner => {
            if w.open_table(SETTLEMENTS)?.get(epoch)?.is_some() {
                return Ok(Err(Refusal::EpochSettled(epoch)));
            }
        }
        Origin::Peer => {
            if stale_for_peers(w, epoch, a.oldest_open_epoch)? {
                return Ok(Err(Refusal::StaleEpoch(epoch)));
            }
        }
    }
    records.insert(a.id.as_slice(), a.record.to_cbor().as_slice())?;
    w.open_table(EPOCH_ADMIN)?.insert((epoch, a.id.as_slice()), [].as_slice())?;
    Ok(Ok(true))
}

/// The admin records of `epoch`, with their ids.
fn epoch_admin_records(w: &WriteTransaction, epoch: u64) -> Result<Vec<(Hash32, AdminRecord)>, StoreError> {
    let records = w.open_table(ADMIN_RECORDS)?;
    let mut out = Vec::new();
    for row in w.open_table(EPOCH_ADMIN)?.range((epoch, &[][..])..(epoch + 1, &[][..]))? {
        let (k, _) = row?;
        let id = k.value().1;
        let v = records.get(id)?.ok_or(StoreError::Corrupt("admin record missing"))?;
        let r = AdminRecord::from_cbor(v.value()).map_err(|_| StoreError::Corrupt("admin record"))?;
        out.push((id.try_into().map_err(|_| StoreError::Corrupt("admin record id"))?, r));
    }
    Ok(out)
}

/// What became of an admin change stored here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeState {
    /// Its epoch is not certified here yet.
    Pending,
    /// The certified settlement of its epoch made this change.
    Applied,
    /// Its epoch was certified without it (it reached the validators too late, or a later change
    /// of the same name in that epoch won): nothing changed; make it again.
    NotApplied,
}

/// One admin change of a wallet name stored here.
#[derive(Debug, Clone, Serialize)]
pub struct PinChange {
    pub epoch: u64,
    pub key: String,
    pub note: String,
    pub state: ChangeState,
}

/// What `POST /admin/attest/key` with `status` reports of a wallet name.
#[derive(Debug, Serialize)]
pub struct PinStatus {
    /// The key the certified pins and changes say claims of epoch `epoch` must be signed with
    /// (a name no certified epoch pinned may still be claimed earlier in the open epoch).
    pub pinned_key: Option<String>,
    pub epoch: u64,
    /// Every certified pin and admin change of the name: (epoch, kind, owner).
    pub history: Vec<(u64, String, String)>,
    /// The admin changes of the name this node holds (not those of epochs before its history).
    pub changes: Vec<PinChange>,
}

pub fn pin_status(db: &Database, wallet: &str, epoch: u64) -> Result<PinStatus, StoreError> {
    let r = db.begin_read()?;
    let log = r.open_table(KEY_LOG)?;
    let pinned_key = pinned_key(&log, wallet, epoch)?;
    let mut history = Vec::new();
    for row in log.range((wallet, 0, "")..=(wallet, u64::MAX, "\u{10ffff}"))? {
        let (k, v) = row?;
        let (_, e, kind) = k.value();
        history.push((e, kind.to_owned(), v.value().to_owned()));
    }
    let first_epoch = meta_bytes(&r, "first_epoch")?.and_then(|b| be_u64(&b)).unwrap_or(0);
    let applied = r.open_table(APPLIED)?;
    let records = r.open_table(ADMIN_RECORDS)?;
    let mut changes = Vec::new();
    // Admin changes are few: a scan of them all is cheap.
    for row in r.open_table(EPOCH_ADMIN)?.range((first_epoch, &[][..])..)? {
        let (k, _) = row?;
        let (e, id) = k.value();
        let Some(v) = records.get(id)? else { continue };
        let a = AdminRecord::from_cbor(v.value()).map_err(|_| StoreError::Corrupt("admin record"))?;
        if a.wallet != wallet {
            continue;
        }
        let state = if applied.get(e)?.is_none() {
            ChangeState::Pending
        } else if log.get((wallet, e, BindingKind::AdminKey.as_str()))?.is_some_and(|o| o.value() == a.key) {
            ChangeState::Applied
        } else {
            ChangeState::NotApplied
        };
        changes.push(PinChange { epoch: e, key: a.key, note: a.note, state });
    }
    Ok(PinStatus { pinned_key, epoch, history, changes })
}

/// The admin changes of `epoch` this node holds that its certified settlement did not make.
fn admin_changes_not_applied(w: &WriteTransaction, epoch: u64, chosen: &Settlement) -> Result<Vec<AdminRecord>, StoreError> {
    let made: BTreeMap<&str, &str> = chosen
        .bindings
        .iter()
        .filter(|b| b.kind == BindingKind::AdminKey.as_str())
        .map(|b| (b.key.as_str(), b.owner.as_str()))
        .collect();
    Ok(epoch_admin_records(w, epoch)?
        .into_iter()
        .map(|(_, r)| r)
        .filter(|r| made.get(r.wallet.as_str()) != Some(&r.key.as_str()))
        .collect())
}

/// The input of `epoch`'s settlement: pending transfers whose earliest receipt is in `epoch` or
/// before, and their senders' accounts.
fn transfer_input(w: &WriteTransaction, spec: &ChainSpec, epoch: u64) -> Result<TransferInput, StoreError> {
    let mut input = TransferInput::default();
    let balances = w.open_table(BALANCES)?;
    let nonces = w.open_table(LAST_NONCES)?;
    for row in w.open_table(PENDING)?.iter()? {
        let t: StoredTransfer = uncbor(row?.1.value(), "pending transfer")?;
        if spec.epoch_of_slot(t.slot) > epoch {
            continue;
        }
        if !input.accounts.contains_key(t.from.as_str()) {
            let balance_urtc = balances.get(&*t.from)?.map_or(0, |v| v.value());
            let last_nonce = nonces.get(&*t.from)?.map(|v| v.value());
            if balance_urtc > 0 || last_nonce.is_some() {
                input.accounts.insert(t.from.as_str().into(), Account { balance_urtc, last_nonce });
            }
        }
        let p = t.pending();
        input.pending.insert(p.tx_hash.clone(), p);
    }
    Ok(input)
}

/// Compute `epoch`'s settlement from its claims (the protocol's enrollment rule) and store it as
/// the provisional settlement, unless the epoch is final (its certified settlement applied). Returns the settlement and
/// whether it is new or changed. Nothing is credited here: balances move only with a certificate.
pub fn settle_epoch(w: &WriteTransaction, spec: &ChainSpec, epoch: u64) -> Result<(Settlement, bool), StoreError> {
    let mut settlements = w.open_table(SETTLEMENTS)?;
    let previous = match settlements.get(epoch)? {
        Some(v) => Some(uncbor::<Settlement>(v.value(), "settlement")?),
        None => None,
    };
    if let Some(p) = &previous
        && is_final(w, epoch)? {
        return Ok((p.clone(), false));
    }
    // The chain: the certified settlement of the epoch before, if this node knows it.
    let prev_hash = match epoch.checked_sub(1) {
        Some(e) => match w.open_table(CERTIFICATES)?.get(e)? {
            Some(c) => uncbor::<EpochCertificate>(c.value(), "certificate")?.settlement_hash,
            None => [0; 32],
        },
        None => [0; 32],
    };
    let mut claims = Vec::new();
    for row in w.open_table(EPOCH_CLAIMS)?.range((epoch, &[][..])..(epoch + 1, &[][..]))? {
        let (k, v) = row?;
        let id: Hash32 = k.value().1.try_into().map_err(|_| StoreError::Corrupt("claim id"))?;
        claims.push(uncbor::<StoredClaim>(v.value(), "claim")?.to_claim(id));
    }
    // The bindings certified settlements of earlier epochs made, for what these claims name.
    let table = w.open_table(BINDINGS)?;
    let log = w.open_table(KEY_LOG)?;
    let mut certified = Bindings::new();
    for c in &claims {
        let machine = c.machine();
        if c.pins_key()
            && !certified.contains_key(&(BindingKind::WalletKey, c.wallet.clone()))
            && let Some(owner) = pinned_key(&log, &c.wallet, epoch)? {
            certified.insert((BindingKind::WalletKey, c.wallet.clone()), owner);
        }
        let keys = [(BindingKind::Serial, c.serial_hash.as_ref()), (BindingKind::Profile, Some(&machine))];
        for (kind, key) in keys {
            let Some(key) = key else { continue };
            if let Some(v) = table.get((kind.as_str(), key.as_str()))? {
                let b: StoredBinding = uncbor(v.value(), "binding")?;
                if b.epoch < epoch {
                    certified.insert((kind, key.clone()), b.owner);
                }
            }
        }
    }
    drop((table, log));
    let profiles = certified_profiles_near(w, &claims, epoch)?;
    let e = enrollment::enroll(&claims, &certified, &profiles);
    let input = transfer_input(w, spec, epoch)?;
    // The epoch's admin pin changes join what it binds (PROTOCOL.md §7.2).
    let mut bindings = e.new_bindings;
    bindings.extend(admin::changes(epoch_admin_records(w, epoch)?.iter().map(|(id, r)| (r, *id))));
    let s = settlement::settle(spec, epoch, prev_hash, &enrollment::weights(&e.enrolled), &bindings, &input)
        .map_err(|_| StoreError::Corrupt("weights or balances"))?;
    let changed = previous.as_ref() != Some(&s);
    if changed {
        settlements.insert(epoch, s.canonical_bytes().as_slice())?;
    }
    Ok((s, changed))
}

/// What storing a vote found.
#[derive(Debug, Default)]
pub struct VoteOutcome {
    pub new: bool,
    pub equivocation: Option<Equivocation>,
}

/// Keep the first vote of each validator per (epoch, round); a second, different one is evidence.
pub fn store_vote(w: &WriteTransaction, vote: &Vote) -> Result<VoteOutcome, StoreError> {
    let mut votes = w.open_table(VOTES)?;
    let key = (vote.epoch, vote.round, vote.validator.as_slice());
    let existing = match votes.get(key)? {
        Some(v) => Some(uncbor::<Vote>(v.value(), "vote")?),
        None => None,
    };
    match existing {
        None => {
            votes.insert(key, vote.to_cbor().as_slice())?;
            Ok(VoteOutcome { new: true, equivocation: None })
        }
        Some(first) if first.settlement_hash == vote.settlement_hash => Ok(VoteOutcome::default()),
        Some(first) => {
            let mut evidence = w.open_table(EVIDENCE)?;
            let ekey = (vote.epoch, vote.validator.as_slice());
            let known = evidence.get(ekey)?.is_some();
            let e = Equivocation { first, second: vote.clone() };
            if !known {
                evidence.insert(ekey, cbor(&e).as_slice())?;
            }
            Ok(VoteOutcome { new: !known, equivocation: Some(e) })
        }
    }
}

/// What applying a certificate did.
#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    /// Credited now: this much was added to balances.
    Now { distributed_urtc: u64 },
    /// Already credited earlier.
    Before,
    /// The certificate is stored, but this node's settlement has another hash (or none): nothing
    /// was credited. `ours` is the local hash, if any.
    Mismatch { ours: Option<Hash32> },
    /// The certified record judges a transfer that an applied settlement of another epoch judged
    /// too: crediting it would judge the transfer twice. Nothing was credited. Only an epoch
    /// settled before the one before it was certified can cause this (PROTOCOL.md §12, Chaining).
    Conflict { tx_hash: String, judged_in: u64 },
}

/// Store `cert` (already verified) and, if the settlement with its hash is at hand (`offered`, e.g.
/// fetched from a peer, or the local provisional one), make it the epoch's settlement and credit
/// it: balances and ledger, in this transaction. Idempotent.
pub fn apply_certificate(w: &WriteTransaction, cert: &EpochCertificate, offered: Option<&Settlement>) -> Result<Applied, StoreError> {
    let epoch = cert.epoch;
    {
        let mut certs = w.open_table(CERTIFICATES)?;
        if certs.get(epoch)?.is_none() {
            certs.insert(epoch, cbor(cert).as_slice())?;
        }
    }
    if is_final(w, epoch)? {
        return Ok(Applied::Before);
    }
    let mut settlements = w.open_table(SETTLEMENTS)?;
    let local = match settlements.get(epoch)? {
        Some(v) => Some(uncbor::<Settlement>(v.value(), "settlement")?),
        None => None,
    };
    let chosen = match (offered, &local) {
        (Some(o), _) if o.hash() == cert.settlement_hash && o.epoch == epoch => o.clone(),
        (_, Some(l)) if l.hash() == cert.settlement_hash => l.clone(),
        _ => return Ok(Applied::Mismatch { ours: local.map(|l| l.hash()) }),
    };
    // One settlement judges a transfer, once.
    {
        let judged = w.open_table(JUDGED)?;
        for t in &chosen.transfers {
            if let Some(v) = judged.get(&*t.tx_hash)? {
                let earlier: JudgedTransfer = uncbor(v.value(), "judged transfer")?;
                if earlier.epoch != epoch {
                    return Ok(Applied::Conflict { tx_hash: t.tx_hash.to_string(), judged_in: earlier.epoch });
                }
            }
        }
    }
    let mut balances = w.open_table(BALANCES)?;
    // Balances after the epoch; a debit that does not fit means an earlier epoch's settlement is
    // not applied here yet (certificates arrived out of order): wait for it, credit nothing now.
    let changes = chosen.balance_changes();
    let mut after = Vec::with_capacity(changes.len());
    for c in &changes {
        let before = balances.get(&*c.address)?.map_or(0, |v| v.value());
        match before.checked_add(c.credit_urtc).and_then(|b| b.checked_sub(c.debit_urtc)) {
            Some(b) => after.push((&*c.address, b)),
            None => return Ok(Applied::Mismatch { ours: local.map(|l| l.hash()) }),
        }
    }
    settlements.insert(epoch, chosen.canonical_bytes().as_slice())?;
    for (address, b) in after {
        balances.insert(address, b)?;
    }
    let mut ledger = w.open_table(LEDGER)?;
    let mut history = w.open_table(HISTORY)?;
    let mut meta = w.open_table(META)?;
    let mut seq = meta.get("ledger_seq")?.and_then(|v| be_u64(v.value())).ok_or(StoreError::Corrupt("ledger_seq"))?;
    let mut entries: Vec<LedgerEntry> = chosen
        .entries
        .iter()
        .filter(|e| e.share_urtc > 0)
        .map(|e| LedgerEntry { epoch, wallet: e.miner.clone(), amount_urtc: e.share_urtc, kind: "reward".into(), tx_hash: None, counterparty: None })
        .collect();
    let mut judged = w.open_table(JUDGED)?;
    let mut pending = w.open_table(PENDING)?;
    let mut pending_out = w.open_table(PENDING_OUT)?;
    let mut pending_in = w.open_table(PENDING_IN)?;
    let mut nonces = w.open_table(LAST_NONCES)?;
    for t in &chosen.transfers {
        let stored = match pending.remove(&*t.tx_hash)? {
            Some(v) => uncbor::<StoredTransfer>(v.value(), "pending transfer")?,
            // Judged by a settlement taken from a peer before this node saw the transfer.
            None => StoredTransfer { tx_hash: t.tx_hash.to_string(), from: t.from.to_string(), to: t.to.to_string(), amount_urtc: t.amount_urtc, nonce: t.nonce, slot: 0, memo: String::new() },
        };
        pending_out.remove((&*t.from, &*t.tx_hash))?;
        pending_in.remove((&*t.to, &*t.tx_hash))?;
        judged.insert(&*t.tx_hash, cbor(&JudgedTransfer { epoch, result: t.result, transfer: stored }).as_slice())?;
        if t.result == TransferResult::Applied {
            // Certified epochs may be applied out of order here: a last nonce only moves up.
            let last = nonces.get(&*t.from)?.map(|v| v.value());
            nonces.insert(&*t.from, last.map_or(t.nonce, |n| n.max(t.nonce)))?;
            let tx_hash = Some(t.tx_hash.to_string());
            entries.push(LedgerEntry { epoch, wallet: t.from.to_string(), amount_urtc: t.amount_urtc, kind: "transfer_out".into(), tx_hash: tx_hash.clone(), counterparty: Some(t.to.to_string()) });
            entries.push(LedgerEntry { epoch, wallet: t.to.to_string(), amount_urtc: t.amount_urtc, kind: "transfer_in".into(), tx_hash, counterparty: Some(t.from.to_string()) });
        }
    }
    for entry in entries {
        let bytes = cbor(&entry);
        ledger.insert((epoch, seq), bytes.as_slice())?;
        history.insert((entry.wallet.as_str(), seq), bytes.as_slice())?;
        seq += 1;
    }
    meta.insert("ledger_seq", seq.to_be_bytes().as_slice())?;
    // What the epoch bound holds from now on; certified epochs may be applied out of order, and
    // the earliest epoch's binding wins.
    let mut bindings = w.open_table(BINDINGS)?;
    let mut log = w.open_table(KEY_LOG)?;
    for b in &chosen.bindings {
        let Some(kind) = BindingKind::parse(&b.kind) else { return Err(StoreError::Corrupt("binding kind")) };
        // Pins and admin changes of wallet names go to the key log, which keeps them all (and is
        // the only place they are read from).
        if matches!(kind, BindingKind::WalletKey | BindingKind::AdminKey) {
            log.insert((b.key.as_str(), epoch, kind.as_str()), b.owner.as_str())?;
            continue;
        }
        let later = match bindings.get((kind.as_str(), b.key.as_str()))? {
            Some(v) => uncbor::<StoredBinding>(v.value(), "binding")?.epoch > epoch,
            None => true,
        };
        if later {
            let old = bindings.insert((kind.as_str(), b.key.as_str()), cbor(&StoredBinding { owner: b.owner.clone(), epoch }).as_slice())?;
            if kind == BindingKind::Profile {
                let old = old.map(|v| uncbor::<StoredBinding>(v.value(), "binding")).transpose()?;
                let mut cells = w.open_table(PROFILE_CELLS)?;
                if let Some(p) = old.and_then(|o| Profile::from_text(&o.owner)) {
                    cells.remove((p.key(), b.key.as_str()))?;
                }
                let Some(p) = Profile::from_text(&b.owner) else { return Err(StoreError::Corrupt("profile binding")) };
                cells.insert((p.key(), b.key.as_str()), b.owner.as_str())?;
            }
        }
    }
    for r in admin_changes_not_applied(w, epoch, &chosen)? {
        tracing::warn!(epoch, wallet = %r.wallet, key = %r.key, "ADMIN CHANGE NOT APPLIED: epoch {epoch} was certified without this pin change (it reached the validators too late, or a later change of the name won); make it again");
    }
    w.open_table(APPLIED)?.insert(epoch, ())?;
    Ok(Applied::Now { distributed_urtc: chosen.distributed_urtc })
}

/// Forget used nonces that have expired: an expired nonce is refused before it is looked up.
pub fn prune_nonces(w: &WriteTransaction, now_unix: u64) -> Result<usize, StoreError> {
    let mut t = w.open_table(USED_NONCES)?;
    let removed = t.extract_if(|_, expires| expires < now_unix)?.count();
    Ok(removed)
}

// ---------------------------------------------------------------------------------------------
// Reads

pub fn balance(db: &Database, wallet: &str) -> Result<u64, StoreError> {
    let r = db.begin_read()?;
    Ok(r.open_table(BALANCES)?.get(wallet)?.map_or(0, |v| v.value()))
}

pub fn settlement(db: &Database, epoch: u64) -> Result<Option<Settlement>, StoreError> {
    let r = db.begin_read()?;
    match r.open_table(SETTLEMENTS)?.get(epoch)? {
        Some(v) => Ok(Some(uncbor(v.value(), "settlement")?)),
        None => Ok(None),
    }
}

/// A page of items keyed by epoch, and the epoch the next page starts at.
pub type EpochPage<T> = (Vec<T>, Option<u64>);

/// Recorded anchors, newest first, from `from` (inclusive) down, at most `limit`; and the epoch the
/// next page starts at.
pub fn anchors_page(db: &Database, from: Option<u64>, limit: usize) -> Result<EpochPage<(u64, AnchorRecord)>, StoreError> {
    let r = db.begin_read()?;
    let t = r.open_table(ANCHORS)?;
    let mut out = Vec::with_capacity(limit + 1);
    for row in t.range(..=from.unwrap_or(u64::MAX))?.rev() {
        let (k, v) = row?;
        out.push((k.value(), uncbor(v.value(), "anchor record")?));
        if out.len() > limit {
            break;
        }
    }
    let next = if out.len() > limit { out.pop().map(|(e, _)| e) } else { None };
    Ok((out, next))
}

/// The epoch whose certificate (held here) is for `hash`: a scan of the certificates, newest
/// first, stopping after `max` (a search, not an index).
pub fn epoch_certified_as(db: &Database, hash: &Hash32, max: usize) -> Result<Option<u64>, StoreError> {
    let r = db.begin_read()?;
    for row in r.open_table(CERTIFICATES)?.iter()?.rev().take(max) {
        let (k, v) = row?;
        if uncbor::<EpochCertificate>(v.value(), "certificate")?.settlement_hash == *hash {
            return Ok(Some(k.value()));
        }
    }
    Ok(None)
}

/// The kind of record `id` is here (`attestation`, `transfer`, `admin`), if this node holds it.
pub fn record_kind(db: &Database, id: &Hash32) -> Result<Option<&'static str>, StoreError> {
    let r = db.begin_read()?;
    let tables = [r.open_table(RECORDS)?, r.open_table(TRANSFER_RECORDS)?, r.open_table(ADMIN_RECORDS)?];
    for (kind, t) in RECORD_KINDS.iter().zip(&tables) {
        if t.get(id.as_slice())?.is_some() {
            return Ok(Some(kind));
        }
    }
    Ok(None)
}

/// Whether `wallet` has ever attested here.
pub fn is_miner(db: &Database, wallet: &str) -> Result<bool, StoreError> {
    Ok(db.begin_read()?.open_table(MINERS)?.get(wallet)?.is_some())
}

/// Whether this node holds a settlement of `epoch` (without decoding it).
pub fn has_settlement(db: &Database, epoch: u64) -> Result<bool, StoreError> {
    Ok(db.begin_read()?.open_table(SETTLEMENTS)?.get(epoch)?.is_some())
}

pub fn votes_for(db: &Database, epoch: u64) -> Result<Vec<Vote>, StoreError> {
    let r = db.begin_read()?;
    let t = r.open_table(VOTES)?;
    let mut out = Vec::new();
    for row in t.range((epoch, 0u32, &[][..])..(epoch + 1, 0u32, &[][..]))? {
        out.push(uncbor(row?.1.value(), "vote")?);
    }
    Ok(out)
}

pub fn certificate(db: &Database, epoch: u64) -> Result<Option<EpochCertificate>, StoreError> {
    let r = db.begin_read()?;
    match r.open_table(CERTIFICATES)?.get(epoch)? {
        Some(v) => Ok(Some(uncbor(v.value(), "certificate")?)),
        None => Ok(None),
    }
}

pub fn is_applied(db: &Database, epoch: u64) -> Result<bool, StoreError> {
    let r = db.begin_read()?;
    Ok(r.open_table(APPLIED)?.get(epoch)?.is_some())
}

pub fn evidence_for(db: &Database, epoch: u64) -> Result<Vec<Equivocation>, StoreError> {
    let r = db.begin_read()?;
    let t = r.open_table(EVIDENCE)?;
    let mut out = Vec::new();
    for row in t.range((epoch, &[][..])..(epoch + 1, &[][..]))? {
        out.push(uncbor(row?.1.value(), "evidence")?);
    }
    Ok(out)
}

/// The highest certified epoch, if any.
pub fn last_certified(db: &Database) -> Result<Option<u64>, StoreError> {
    let r = db.begin_read()?;
    let t = r.open_table(CERTIFICATES)?;
    Ok(t.last()?.map(|(k, _)| k.value()))
}

/// Settled epochs from `from` on that are not final yet: no certificate, or a certificate whose
/// settlement record this node does not hold (a mismatch still being resolved).
pub fn unfinished_settled(db: &Database, from: u64) -> Result<Vec<u64>, StoreError> {
    let r = db.begin_read()?;
    let applied = r.open_table(APPLIED)?;
    let mut out = Vec::new();
    for row in r.open_table(SETTLEMENTS)?.range(from..)? {
        let e = row?.0.value();
        if applied.get(e)?.is_none() {
            out.push(e);
        }
    }
    Ok(out)
}

/// An epoch's certified hash as this node anchored it externally (see `anchoring/ergo.rs`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnchorRecord {
    #[serde(with = "serde_bytes")]
    pub settlement_hash: Hash32,
    pub tx_id: String,
    pub anchored_at: u64,
}

pub fn record_anchor(w: &WriteTransaction, epoch: u64, rec: &AnchorRecord) -> Result<(), StoreError> {
    w.open_table(ANCHORS)?.insert(epoch, cbor(rec).as_slice())?;
    Ok(())
}

pub fn anchor_record(db: &Database, epoch: u64) -> Result<Option<AnchorRecord>, StoreError> {
    let r = db.begin_read()?;
    match r.open_table(ANCHORS)?.get(epoch)? {
        Some(v) => Ok(Some(uncbor(v.value(), "anchor record")?)),
        None => Ok(None),
    }
}

/// Certified epochs from `from` on that have no anchor record, oldest first, with their hash.
pub fn unanchored_certified(db: &Database, from: u64) -> Result<Vec<(u64, Hash32)>, StoreError> {
    let r = db.begin_read()?;
    let anchors = r.open_table(ANCHORS)?;
    let mut out = Vec::new();
    for row in r.open_table(CERTIFICATES)?.range(from..)? {
        let (k, v) = row?;
        if anchors.get(k.value())?.is_none() {
            let cert: EpochCertificate = uncbor(v.value(), "certificate")?;
            out.push((k.value(), cert.settlement_hash));
        }
    }
    Ok(out)
}

/// The highest settled epoch, if any.
pub fn last_settled(db: &Database) -> Result<Option<u64>, StoreError> {
    let r = db.begin_read()?;
    let t = r.open_table(SETTLEMENTS)?;
    Ok(t.last()?.map(|(k, _)| k.value()))
}

/// Record that the epoch manager settled every epoch through `epoch` (it settles in order).
pub fn mark_settled_through(w: &WriteTransaction, epoch: u64) -> Result<(), StoreError> {
    let mut meta = w.open_table(META)?;
    let through = meta.get("settled_through")?.and_then(|v| be_u64(v.value()));
    if through.is_none_or(|t| t < epoch) {
        meta.insert("settled_through", epoch.to_be_bytes().as_slice())?;
    }
    Ok(())
}

/// The newest epoch the epoch manager settled here, where it resumes (+ 1) after a restart. Not
/// the newest settlement stored: a later epoch's certified record applied from a peer (or settled
/// to resolve a peer's certificate) before this node settled the ones in between must not make it
/// skip them. A database without the mark (written before it existed, or whose epoch manager has
/// not settled anything yet) counts the unbroken run of settlements from its first epoch.
pub fn resume_epoch(db: &Database) -> Result<Option<u64>, StoreError> {
    let r = db.begin_read()?;
    if let Some(v) = meta_bytes(&r, "settled_through")? {
        return Ok(Some(be_u64(&v).ok_or(StoreError::Corrupt("settled_through"))?));
    }
    let first = first_epoch(db)?;
    let mut next = first;
    for row in r.open_table(SETTLEMENTS)?.range(first..)? {
        if row?.0.value() != next {
            break;
        }
        next += 1;
    }
    Ok(next.checked_sub(1).filter(|_| next > first))
}

pub fn ledger_for_epoch(db: &Database, epoch: u64) -> Result<Vec<LedgerEntry>, StoreError> {
    let r = db.begin_read()?;
    let t = r.open_table(LEDGER)?;
    let mut out = Vec::new();
    for row in t.range((epoch, 0)..(epoch + 1, 0))? {
        out.push(uncbor(row?.1.value(), "ledger entry")?);
    }
    Ok(out)
}

pub fn enrollment(db: &Database, epoch: u64, wallet: &str) -> Result<Option<EnrollmentRow>, StoreError> {
    let r = db.begin_read()?;
    match r.open_table(ENROLLMENTS)?.get((epoch, wallet))? {
        Some(v) => Ok(Some(uncbor(v.value(), "enrollment")?)),
        None => Ok(None),
    }
}

/// What `GET /api/epochs/{n}/miners` shows of one enrolled wallet: the settlement's line, and the
/// claim that enrolled it as this node holds it (none for an epoch it only applied).
#[derive(Debug, Serialize)]
pub struct EpochMiner {
    pub miner: String,
    pub weight: u64,
    pub share_urtc: u64,
    pub miner_id: Option<String>,
    pub record_id: Option<String>,
    pub family: Option<String>,
    pub arch: Option<String>,
    pub fingerprint_passed: Option<bool>,
}

/// The settlement's entries of `epoch` after wallet `after` (in wallet order), at most `limit`,
/// each with the claim that enrolled it; and the cursor of the next page. `None`: not settled here.
#[allow(clippy::type_complexity)]
pub fn epoch_miners_page(db: &Database, epoch: u64, after: Option<&str>, limit: usize) -> Result<Option<(Vec<EpochMiner>, Option<String>)>, StoreError> {
    let Some(s) = settlement(db, epoch)? else { return Ok(None) };
    let r = db.begin_read()?;
    let (enrollments, claims) = (r.open_table(ENROLLMENTS)?, r.open_table(EPOCH_CLAIMS)?);
    let start = after.map_or(0, |a| s.entries.partition_point(|e| e.miner.as_str() <= a));
    let mut out = Vec::with_capacity(limit);
    for e in s.entries.iter().skip(start).take(limit) {
        let row: Option<EnrollmentRow> = enrollments.get((epoch, e.miner.as_str()))?.map(|v| uncbor(v.value(), "enrollment")).transpose()?;
        let claim: Option<StoredClaim> = match &row {
            Some(row) => claims.get((epoch, row.id.as_slice()))?.map(|v| uncbor(v.value(), "claim")).transpose()?,
            None => None,
        };
        out.push(EpochMiner {
            miner: e.miner.clone(),
            weight: e.weight,
            share_urtc: e.share_urtc,
            miner_id: row.as_ref().map(|r| r.miner_id.clone()),
            record_id: row.as_ref().map(|r| hex::encode(r.id)),
            family: claim.as_ref().map(|c| c.family.clone()),
            arch: claim.as_ref().map(|c| c.arch.clone()),
            fingerprint_passed: claim.as_ref().map(|c| c.fingerprint_passed),
        });
    }
    let next = (start + limit < s.entries.len()).then(|| out.last().map(|m| m.miner.clone())).flatten();
    Ok(Some((out, next)))
}

/// A miner's history: the epochs it held an enrolling claim in, newest first from `from`
/// (inclusive), at most `limit`, each with that claim and its reward here (if the epoch is
/// certified and applied); and the epoch the next page starts at.
pub fn miner_history(db: &Database, wallet: &str, from: Option<u64>, limit: usize) -> Result<EpochPage<MinerEpoch>, StoreError> {
    let r = db.begin_read()?;
    let (index, enrollments, claims) = (r.open_table(MINER_EPOCHS)?, r.open_table(ENROLLMENTS)?, r.open_table(EPOCH_CLAIMS)?);
    let mut epochs = Vec::with_capacity(limit + 1);
    for row in index.range((wallet, 0)..=(wallet, from.unwrap_or(u64::MAX)))?.rev() {
        epochs.push(row?.0.value().1);
        if epochs.len() > limit {
            break;
        }
    }
    let next = if epochs.len() > limit { epochs.pop() } else { None };
    let rewards = rewards_of(&r, wallet)?;
    let mut out = Vec::with_capacity(epochs.len());
    for epoch in epochs {
        let Some(v) = enrollments.get((epoch, wallet))? else { continue };
        let row: EnrollmentRow = uncbor(v.value(), "enrollment")?;
        let claim: Option<StoredClaim> = claims.get((epoch, row.id.as_slice()))?.map(|v| uncbor(v.value(), "claim")).transpose()?;
        out.push(MinerEpoch {
            epoch,
            weight: row.weight,
            miner_id: row.miner_id,
            record_id: hex::encode(row.id),
            arch: claim.as_ref().map(|c| c.arch.clone()),
            family: claim.as_ref().map(|c| c.family.clone()),
            fingerprint_passed: row.fingerprint_passed,
            reward_urtc: rewards.get(&epoch).copied(),
        });
    }
    Ok((out, next))
}

/// Per epoch, what a wallet was paid as a reward (from its ledger).
fn rewards_of(r: &ReadTransaction, wallet: &str) -> Result<BTreeMap<u64, u64>, StoreError> {
    let mut out = BTreeMap::new();
    for row in r.open_table(HISTORY)?.range((wallet, 0)..=(wallet, u64::MAX))? {
        let e: LedgerEntry = uncbor(row?.1.value(), "ledger entry")?;
        if e.kind == "reward" {
            *out.entry(e.epoch).or_default() += e.amount_urtc;
        }
    }
    Ok(out)
}

/// One epoch of a miner's history (`GET /api/miner/{wallet}/history`).
#[derive(Debug, Serialize)]
pub struct MinerEpoch {
    pub epoch: u64,
    /// The weight the enrolling claim carried when accepted (the settlement's may differ: the
    /// entropy rule, PROTOCOL.md §7.1).
    pub weight: u64,
    pub miner_id: String,
    pub record_id: String,
    pub arch: Option<String>,
    pub family: Option<String>,
    pub fingerprint_passed: bool,
    /// Paid for the epoch, once it is certified and applied here.
    pub reward_urtc: Option<u64>,
}

/// A miner at a glance (`GET /api/miner/{wallet}`).
#[derive(Debug, Serialize)]
pub struct MinerOverview {
    /// `None` while it holds no enrolling claim here (its claims were all refused).
    pub first_epoch: Option<u64>,
    pub last_epoch: Option<u64>,
    pub epochs_enrolled: u64,
    pub total_earned_urtc: u64,
    pub latest: MinerSummary,
}

/// `None` when the wallet never attested here.
pub fn miner_overview(db: &Database, wallet: &str) -> Result<Option<MinerOverview>, StoreError> {
    let r = db.begin_read()?;
    let Some(latest) = r.open_table(MINERS)?.get(wallet)?.map(|v| uncbor::<MinerSummary>(v.value(), "miner")).transpose()? else { return Ok(None) };
    let index = r.open_table(MINER_EPOCHS)?;
    let (mut first, mut last, mut n) = (None, None, 0u64);
    for row in index.range((wallet, 0)..=(wallet, u64::MAX))? {
        let e = row?.0.value().1;
        first.get_or_insert(e);
        last = Some(e);
        n += 1;
    }
    let total = rewards_of(&r, wallet)?.values().sum();
    Ok(Some(MinerOverview { first_epoch: first, last_epoch: last, epochs_enrolled: n, total_earned_urtc: total, latest }))
}

/// Number of wallets enrolled in `epoch`.
pub fn enrolled_count(db: &Database, epoch: u64) -> Result<u64, StoreError> {
    let r = db.begin_read()?;
    let t = r.open_table(ENROLLMENTS)?;
    let mut n = 0;
    for row in t.range((epoch, "")..(epoch + 1, ""))? {
        row?;
        n += 1;
    }
    Ok(n)
}

/// Enrolled wallets per epoch, for every epoch from `from` on.
pub fn enrolled_counts_from(db: &Database, from: u64) -> Result<BTreeMap<u64, u64>, StoreError> {
    let r = db.begin_read()?;
    let t = r.open_table(ENROLLMENTS)?;
    let mut out = BTreeMap::new();
    for row in t.range((from, "")..)? {
        *out.entry(row?.0.value().0).or_insert(0) += 1;
    }
    Ok(out)
}

pub fn miners(db: &Database, offset: usize, limit: usize) -> Result<(u64, Vec<MinerSummary>), StoreError> {
    let r = db.begin_read()?;
    let t = r.open_table(MINERS)?;
    let total = t.len()?;
    let mut out = Vec::new();
    for row in t.iter()?.skip(offset).take(limit) {
        out.push(uncbor(row?.1.value(), "miner")?);
    }
    Ok((total, out))
}

/// For each of `ids`, whether this node holds it: one read transaction for the lot.
pub fn have_records(db: &Database, ids: &[Hash32]) -> Result<Vec<bool>, StoreError> {
    let r = db.begin_read()?;
    let (a, t, x) = (r.open_table(RECORDS)?, r.open_table(TRANSFER_RECORDS)?, r.open_table(ADMIN_RECORDS)?);
    ids.iter()
        .map(|id| Ok(a.get(id.as_slice())?.is_some() || t.get(id.as_slice())?.is_some() || x.get(id.as_slice())?.is_some()))
        .collect()
}

/// Records of every kind, as a `GET_ATTESTATION` answer carries them.
#[derive(Debug, Default)]
pub struct Records {
    pub attestations: Vec<AttestationRecord>,
    pub transfers: Vec<TransferRecord>,
    pub admin: Vec<AdminRecord>,
}

impl Records {
    pub fn len(&self) -> usize {
        self.attestations.len() + self.transfers.len() + self.admin.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The records among `ids` that this node has (attestations, transfers, admin changes), up to
/// `max_records` in all and about `max_bytes` of CBOR.
pub fn records_by_ids(db: &Database, ids: &[Hash32], max_records: usize, max_bytes: usize) -> Result<Records, StoreError> {
    let r = db.begin_read()?;
    let (attestations, transfers, admin) = (r.open_table(RECORDS)?, r.open_table(TRANSFER_RECORDS)?, r.open_table(ADMIN_RECORDS)?);
    let (mut out, mut bytes) = (Records::default(), 0usize);
    for id in ids {
        if out.len() >= max_records {
            break;
        }
        let (a, t, x) = (attestations.get(id.as_slice())?, transfers.get(id.as_slice())?, admin.get(id.as_slice())?);
        let len = a.as_ref().or(t.as_ref()).or(x.as_ref()).map_or(0, |v| v.value().len());
        if len > 0 && bytes + len > max_bytes && !out.is_empty() {
            break;
        }
        bytes += len;
        if let Some(v) = a {
            out.attestations.push(AttestationRecord::from_cbor(v.value()).map_err(|_| StoreError::Corrupt("record"))?);
        } else if let Some(v) = t {
            out.transfers.push(TransferRecord::from_cbor(v.value()).map_err(|_| StoreError::Corrupt("transfer record"))?);
        } else if let Some(v) = x {
            out.admin.push(AdminRecord::from_cbor(v.value()).map_err(|_| StoreError::Corrupt("admin record"))?);
        }
    }
    Ok(out)
}

/// A page of `(epoch, id)` and the cursor of the next page, if any.
pub type IdPage = (Vec<(u64, Hash32)>, Option<(u64, Hash32)>);

/// Record ids of epochs `from..=to` in (epoch, id) order, strictly after `after`; and the cursor
/// of the next page when there is more.
pub fn epoch_ids_page(
    db: &Database,
    from: u64,
    to: u64,
    after: Option<(u64, Hash32)>,
    limit: usize,
) -> Result<IdPage, StoreError> {
    let r = db.begin_read()?;
    let start = after.map_or((from, [0u8; 32]), |a| a);
    let end = to.saturating_add(1);
    // Up to limit + 1 keys from each index; their merge in (epoch, id) order is the page.
    let mut keys = Vec::with_capacity(3 * limit + 3);
    for def in [EPOCH_CLAIMS, EPOCH_TRANSFERS, EPOCH_ADMIN] {
        let t = r.open_table(def)?;
        let mut n = 0;
        for row in t.range((start.0, start.1.as_slice())..(end, &[][..]))? {
            let (k, _) = row?;
            let (epoch, id) = k.value();
            let id: Hash32 = id.try_into().map_err(|_| StoreError::Corrupt("record id"))?;
            if after == Some((epoch, id)) || epoch < from {
                continue;
            }
            keys.push((epoch, id));
            n += 1;
            if n > limit {
                break;
            }
        }
    }
    keys.sort_unstable();
    if keys.len() > limit {
        keys.truncate(limit);
        let last = *keys.last().expect("limit >= 1");
        return Ok((keys, Some(last)));
    }
    Ok((keys, None))
}

/// The kind of a record of the registry, as the history API names it.
pub const RECORD_KINDS: [&str; 3] = ["attestation", "transfer", "admin"];

/// One page of an epoch's records of every kind in id order, strictly after `after`: (kind, id,
/// stored CBOR); and the cursor of the next page when there is more (`GET /api/epochs/{n}/records`).
#[allow(clippy::type_complexity)]
pub fn epoch_records_page(
    db: &Database,
    epoch: u64,
    after: Option<Hash32>,
    limit: usize,
) -> Result<(Vec<(&'static str, Hash32, Vec<u8>)>, Option<Hash32>), StoreError> {
    let (ids, next) = epoch_ids_page(db, epoch, epoch, after.map(|a| (epoch, a)), limit)?;
    let r = db.begin_read()?;
    let tables = [r.open_table(RECORDS)?, r.open_table(TRANSFER_RECORDS)?, r.open_table(ADMIN_RECORDS)?];
    let mut out = Vec::with_capacity(ids.len());
    for (_, id) in ids {
        let mut found = None;
        for (kind, t) in RECORD_KINDS.iter().zip(&tables) {
            if let Some(v) = t.get(id.as_slice())? {
                found = Some((*kind, id, v.value().to_vec()));
                break;
            }
        }
        out.push(found.ok_or(StoreError::Corrupt("an epoch index names a record that is not stored"))?);
    }
    Ok((out, next.map(|(_, id)| id)))
}

/// Settled epochs, a page of at most `limit` from `from` (inclusive; the newest or oldest when
/// `None`), newest first unless `ascending`; and the first epoch of the next page, if any.
pub fn settled_epochs_page(db: &Database, from: Option<u64>, limit: usize, ascending: bool) -> Result<EpochPage<u64>, StoreError> {
    let r = db.begin_read()?;
    let t = r.open_table(SETTLEMENTS)?;
    let mut out = Vec::with_capacity(limit + 1);
    if ascending {
        for row in t.range(from.unwrap_or(0)..)? {
            out.push(row?.0.value());
            if out.len() > limit {
                break;
            }
        }
    } else {
        for row in t.range(..=from.unwrap_or(u64::MAX))?.rev() {
            out.push(row?.0.value());
            if out.len() > limit {
                break;
            }
        }
    }
    let next = if out.len() > limit { out.pop() } else { None };
    Ok((out, next))
}

/// The oldest and newest epochs this node holds a settlement of.
pub fn settled_range(db: &Database) -> Result<Option<(u64, u64)>, StoreError> {
    let r = db.begin_read()?;
    let t = r.open_table(SETTLEMENTS)?;
    Ok(match (t.first()?, t.last()?) {
        (Some(a), Some(b)) => Some((a.0.value(), b.0.value())),
        _ => None,
    })
}

/// The record ids (attestations, transfers, admin changes) this node holds for an epoch, ascending.
pub fn epoch_ids(db: &Database, epoch: u64) -> Result<Vec<Hash32>, StoreError> {
    let r = db.begin_read()?;
    let mut ids = Vec::new();
    for def in [EPOCH_CLAIMS, EPOCH_TRANSFERS, EPOCH_ADMIN] {
        for row in r.open_table(def)?.range((epoch, &[][..])..(epoch + 1, &[][..]))? {
            let (k, _) = row?;
            ids.push(<Hash32>::try_from(k.value().1).map_err(|_| StoreError::Corrupt("record id"))?);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// The registry's bucket digest of an epoch (`crdt::BucketDigest`).
pub fn epoch_digest(db: &Database, epoch: u64) -> Result<crdt::BucketDigest, StoreError> {
    Ok(crdt::BucketDigest::from_sorted_ids(&epoch_ids(db, epoch)?))
}

pub fn record(db: &Database, id: &Hash32) -> Result<Option<AttestationRecord>, StoreError> {
    let r = db.begin_read()?;
    match r.open_table(RECORDS)?.get(id.as_slice())? {
        Some(v) => Ok(Some(AttestationRecord::from_cbor(v.value()).map_err(|_| StoreError::Corrupt("record"))?)),
        None => Ok(None),
    }
}

pub fn transfer_record(db: &Database, id: &Hash32) -> Result<Option<TransferRecord>, StoreError> {
    let r = db.begin_read()?;
    match r.open_table(TRANSFER_RECORDS)?.get(id.as_slice())? {
        Some(v) => Ok(Some(TransferRecord::from_cbor(v.value()).map_err(|_| StoreError::Corrupt("transfer record"))?)),
        None => Ok(None),
    }
}

/// Where a transfer stands here: judged by an applied settlement, pending, or unknown.
pub fn tx_state(db: &Database, tx_hash: &str) -> Result<Option<TxState>, StoreError> {
    let r = db.begin_read()?;
    if let Some(v) = r.open_table(JUDGED)?.get(tx_hash)? {
        return Ok(Some(TxState::Judged(uncbor(v.value(), "judged transfer")?)));
    }
    match r.open_table(PENDING)?.get(tx_hash)? {
        Some(v) => Ok(Some(TxState::Pending(uncbor(v.value(), "pending transfer")?))),
        None => Ok(None),
    }
}

/// A wallet's pending transfers: (incoming, outgoing), oldest receipt first.
pub fn pending_for(db: &Database, address: &str) -> Result<(Vec<StoredTransfer>, Vec<StoredTransfer>), StoreError> {
    let r = db.begin_read()?;
    let pending = r.open_table(PENDING)?;
    let mut sides = [pending_listed(&r.open_table(PENDING_IN)?, &pending, address)?, pending_listed(&r.open_table(PENDING_OUT)?, &pending, address)?];
    for side in &mut sides {
        side.sort_by_key(|t| (t.slot, t.nonce));
    }
    let [incoming, outgoing] = sides;
    Ok((incoming, outgoing))
}

/// The nonce of the wallet's last applied transfer.
pub fn last_applied_nonce(db: &Database, address: &str) -> Result<Option<u64>, StoreError> {
    let r = db.begin_read()?;
    Ok(r.open_table(LAST_NONCES)?.get(address)?.map(|v| v.value()))
}

/// A wallet's confirmed ledger entries, newest first, and how many it has.
pub fn history(db: &Database, address: &str, offset: usize, limit: usize) -> Result<(u64, Vec<LedgerEntry>), StoreError> {
    let r = db.begin_read()?;
    let t = r.open_table(HISTORY)?;
    let range = t.range((address, 0u64)..=(address, u64::MAX))?;
    let mut out = Vec::new();
    let mut total = 0u64;
    for row in range.rev() {
        let (_, v) = row?;
        if total as usize >= offset && out.len() < limit {
            out.push(uncbor(v.value(), "ledger entry")?);
        }
        total += 1;
    }
    Ok((total, out))
}

/// Counts for `/api/stats`.
#[derive(Debug, Default, Serialize)]
pub struct Stats {
    pub attestations: u64,
    pub miners: u64,
    pub settled_epochs: u64,
    pub wallets_with_balance: u64,
    pub total_balance_urtc: u64,
}

pub fn stats(db: &Database) -> Result<Stats, StoreError> {
    let r = db.begin_read()?;
    let mut total = 0u64;
    let balances = r.open_table(BALANCES)?;
    for row in balances.iter()? {
        total += row?.1.value();
    }
    Ok(Stats {
        attestations: r.open_table(RECORDS)?.len()?,
        miners: r.open_table(MINERS)?.len()?,
        settled_epochs: r.open_table(SETTLEMENTS)?.len()?,
        wallets_with_balance: balances.len()?,
        total_balance_urtc: total,
    })
}

// ---------------------------------------------------------------------------------------------
// Backups and checks

fn copy_table<K: Key + 'static, V: redb::Value + 'static>(
    r: &ReadTransaction,
    w: &WriteTransaction,
    def: TableDefinition<K, V>,
) -> Result<u64, StoreError> {
    let mut dst = w.open_table(def)?;
    // An older schema's backup lacks the tables later versions added (`copy_snapshot` allows no
    // other missing table): nothing to copy.
    let src = match r.open_table(def) {
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(0),
        t => t?,
    };
    let mut n = 0;
    for row in src.iter()? {
        let (k, v) = row?;
        dst.insert(k.value(), v.value())?;
        n += 1;
    }
    Ok(n)
}

/// Copy every table of the snapshot `r` into the empty database `dst`, in one transaction.
/// Returns the number of rows copied. Refuses a source with tables this version does not know.
pub fn copy_snapshot(r: &ReadTransaction, dst: &Database) -> Result<u64, StoreError> {
    let names: Vec<String> = r.list_tables()?.map(|t| t.name().to_owned()).collect();
    if names.iter().any(|n| !TABLE_NAMES.contains(&n.as_str())) {
        return Err(StoreError::Corrupt("table unknown to this version"));
    }
    let version = meta_bytes(r, "schema_version")?.as_deref().and_then(be_u64);
    if TABLE_NAMES.iter().any(|t| !names.iter().any(|n| n == t) && !may_lack(version, t)) {
        return Err(StoreError::Corrupt("a table of its schema is missing"));
    }
    let w = dst.begin_write()?;
    let mut n = 0;
    n += copy_table(r, &w, META)?;
    n += copy_table(r, &w, RECORDS)?;
    n += copy_table(r, &w, EPOCH_CLAIMS)?;
    n += copy_table(r, &w, ENROLLMENTS)?;
    n += copy_table(r, &w, BINDINGS)?;
    n += copy_table(r, &w, PROFILE_CELLS)?;
    n += copy_table(r, &w, EPOCH_FIRST)?;
    n += copy_table(r, &w, PAYLOAD_RECEIPTS)?;
    n += copy_table(r, &w, RECEIPT_EVIDENCE)?;
    n += copy_table(r, &w, USED_NONCES)?;
    n += copy_table(r, &w, MINERS)?;
    n += copy_table(r, &w, SETTLEMENTS)?;
    n += copy_table(r, &w, BALANCES)?;
    n += copy_table(r, &w, LEDGER)?;
    n += copy_table(r, &w, VOTES)?;
    n += copy_table(r, &w, CERTIFICATES)?;
    n += copy_table(r, &w, APPLIED)?;
    n += copy_table(r, &w, EVIDENCE)?;
    n += copy_table(r, &w, ANCHORS)?;
    n += copy_table(r, &w, TRANSFER_RECORDS)?;
    n += copy_table(r, &w, EPOCH_TRANSFERS)?;
    n += copy_table(r, &w, PENDING)?;
    n += copy_table(r, &w, PENDING_OUT)?;
    n += copy_table(r, &w, PENDING_IN)?;
    n += copy_table(r, &w, JUDGED)?;
    n += copy_table(r, &w, LAST_NONCES)?;
    n += copy_table(r, &w, HISTORY)?;
    n += copy_table(r, &w, ADMIN_RECORDS)?;
    n += copy_table(r, &w, EPOCH_ADMIN)?;
    n += copy_table(r, &w, KEY_LOG)?;
    n += copy_table(r, &w, MINER_EPOCHS)?;
    w.commit()?;
    Ok(n)
}

/// What `rustchain db check` found beyond redb's own page checks.
#[derive(Debug, Default, Serialize)]
pub struct CheckReport {
    pub network_id: String,
    pub schema_version: u64,
    pub attestations: u64,
    pub transfer_records: u64,
    pub admin_records: u64,
    pub epoch_claims: u64,
    pub enrollments: u64,
    pub settlements: u64,
    pub last_settled_epoch: Option<u64>,
    pub wallets_with_balance: u64,
    pub total_balance_urtc: u64,
    pub ledger_entries: u64,
    pub signatures_verified: bool,
    /// Everything wrong, in words. Empty means consistent.
    pub problems: Vec<String>,
}

/// Check the schema and the consistency of the stored data: metadata, that every row decodes,
/// record ids, the settlement hash chain, balances against the ledger; with `spec`, also the
/// network and every record's signatures (miner and receipt).
pub fn check_consistency(db: &Database, spec: Option<&ChainSpec>) -> Result<CheckReport, StoreError> {
    let r = db.begin_read()?;
    let mut rep = CheckReport::default();
    fn problem(rep: &mut CheckReport, p: String) {
        if rep.problems.len() < 100 {
            rep.problems.push(p);
        }
    }
    let names: Vec<String> = r.list_tables()?.map(|t| t.name().to_owned()).collect();
    // A schema-3 or -4 database (or backup) lacks only the tables later versions added; a node
    // migrates it when it opens it.
    let version = meta_bytes(&r, "schema_version")?.as_deref().and_then(be_u64);
    for t in TABLE_NAMES {
        let allowed_missing = may_lack(version, t);
        if !allowed_missing && !names.iter().any(|n| n == t) {
            problem(&mut rep, format!("table {t} is missing"));
        }
    }
    for n in &names {
        if !TABLE_NAMES.contains(&n.as_str()) {
            problem(&mut rep, format!("unknown table {n} (written by another version?)"));
        }
    }
    if !rep.problems.is_empty() {
        return Ok(rep);
    }
    match meta_bytes(&r, "schema_version")?.as_deref().and_then(be_u64) {
        Some(v) => {
            rep.schema_version = v;
            if !(3..=SCHEMA_VERSION).contains(&v) {
                problem(&mut rep, format!("schema version {v}, this binary understands {SCHEMA_VERSION}"));
            }
        }
        None => problem(&mut rep, "meta.schema_version is missing or malformed".into()),
    }
    rep.network_id = String::from_utf8_lossy(&meta_bytes(&r, "network_id")?.unwrap_or_default()).into_owned();
    if let Some(spec) = spec
        && rep.network_id != spec.network_id
    {
        let msg = format!("network {:?}, but the chain spec is {:?}", rep.network_id, spec.network_id);
        problem(&mut rep, msg);
    }
    if meta_bytes(&r, "first_epoch")?.as_deref().and_then(be_u64).is_none() {
        problem(&mut rep, "meta.first_epoch is missing or malformed".into());
    }
    let ledger_seq = meta_bytes(&r, "ledger_seq")?.as_deref().and_then(be_u64);
    if ledger_seq.is_none() {
        problem(&mut rep, "meta.ledger_seq is missing or malformed".into());
    }

    /// A stored record: it decodes, sits under its own id and (with a spec) verifies.
    fn check_record(rep: &mut CheckReport, kind: &str, key: &[u8], decoded: Result<(Hash32, Option<String>), String>) {
        let key_hex = hex::encode(key);
        match decoded {
            Ok((id, invalid)) => {
                if id.as_slice() != key {
                    problem(rep, format!("{kind} {key_hex} is stored under another id"));
                }
                if let Some(e) = invalid {
                    problem(rep, format!("{kind} {key_hex} does not verify: {e}"));
                }
            }
            Err(e) => problem(rep, format!("{kind} {key_hex} does not decode: {e}")),
        }
    }
    let records = r.open_table(RECORDS)?;
    for row in records.iter()? {
        let (k, v) = row?;
        rep.attestations += 1;
        let decoded = AttestationRecord::from_cbor(v.value())
            .map(|rec| (rec.id(), spec.and_then(|s| rec.verify(s).err()).map(|e| e.to_string())))
            .map_err(|e| e.to_string());
        check_record(&mut rep, "record", k.value(), decoded);
    }
    for row in r.open_table(TRANSFER_RECORDS)?.iter()? {
        let (k, v) = row?;
        rep.transfer_records += 1;
        let decoded = TransferRecord::from_cbor(v.value())
            .map(|rec| (rec.id(), spec.and_then(|s| rec.verify(s).err()).map(|e| e.to_string())));
        check_record(&mut rep, "transfer record", k.value(), decoded);
    }
    for row in (if version == Some(3) { None } else { Some(r.open_table(ADMIN_RECORDS)?) }).iter().flat_map(|t| t.iter().into_iter().flatten()) {
        let (k, v) = row?;
        rep.admin_records += 1;
        // Its admin key is checked where it is verified (it depends on the node's own key when the
        // spec lists none); here: that it decodes, is signed, and is stored under its id.
        let decoded = AdminRecord::from_cbor(v.value())
            .map(|rec| (rec.id(), spec.and_then(|s| rec.verify(s, &[rec.admin_key]).err()).map(|e| e.to_string())))
            .map_err(|e| e.to_string());
        check_record(&mut rep, "admin record", k.value(), decoded);
    }
    rep.signatures_verified = spec.is_some();
    for row in r.open_table(EPOCH_CLAIMS)?.iter()? {
        let (k, v) = row?;
        rep.epoch_claims += 1;
        let (epoch, id) = k.value();
        if uncbor::<StoredClaim>(v.value(), "claim").is_err() {
            problem(&mut rep, format!("claim ({epoch}, {}) does not decode", hex::encode(id)));
        }
        if records.get(id)?.is_none() {
            problem(&mut rep, format!("claim ({epoch}, {}) has no record", hex::encode(id)));
        }
    }
    // The miners' epoch index (schema 5) holds exactly the enrollments' (epoch, wallet) pairs.
    let index = if version.is_some_and(|v| v >= 5) { Some(r.open_table(MINER_EPOCHS)?) } else { None };
    for row in r.open_table(ENROLLMENTS)?.iter()? {
        let (k, v) = row?;
        rep.enrollments += 1;
        let (epoch, wallet) = k.value();
        if uncbor::<EnrollmentRow>(v.value(), "enrollment").is_err() {
            problem(&mut rep, format!("enrollment ({epoch}, {wallet}) does not decode"));
        }
        if let Some(index) = &index
            && index.get((wallet, epoch))?.is_none() {
            problem(&mut rep, format!("enrollment ({epoch}, {wallet}) is missing from the miner_epochs index (rustchain db reindex rebuilds it)"));
        }
    }
    if let Some(index) = &index {
        let enrollments = r.open_table(ENROLLMENTS)?;
        for row in index.iter()? {
            let (k, _) = row?;
            let (wallet, epoch) = k.value();
            if enrollments.get((epoch, wallet))?.is_none() {
                problem(&mut rep, format!("the miner_epochs index names ({epoch}, {wallet}), which is not enrolled (rustchain db reindex rebuilds it)"));
            }
        }
    }
    let mut paid = 0u128;
    let certificates = r.open_table(CERTIFICATES)?;
    let applied = r.open_table(APPLIED)?;
    let certified_hash = |e: u64| -> Result<Option<Hash32>, StoreError> {
        Ok(match certificates.get(e)? {
            Some(c) => Some(uncbor::<EpochCertificate>(c.value(), "certificate")?.settlement_hash),
            None => None,
        })
    };
    for row in r.open_table(SETTLEMENTS)?.iter()? {
        let (k, v) = row?;
        rep.settlements += 1;
        let epoch = k.value();
        rep.last_settled_epoch = Some(epoch);
        match Settlement::from_cbor(v.value()) {
            Ok(s) => {
                if s.epoch != epoch {
                    problem(&mut rep, format!("settlement stored as epoch {epoch} says epoch {}", s.epoch));
                }
                if s.canonical_bytes() != v.value() {
                    problem(&mut rep, format!("settlement {epoch} is not in canonical form"));
                }
                // Only credited (certified) settlements are final: they must match their
                // certificate, chain to the certified epoch before, and are what the ledger pays.
                if applied.get(epoch)?.is_some() {
                    match certified_hash(epoch)? {
                        Some(h) if h == s.hash() => {}
                        _ => problem(&mut rep, format!("credited settlement {epoch} does not match its certificate")),
                    }
                    if let Some(p) = epoch.checked_sub(1).map(certified_hash).transpose()?.flatten()
                        && s.prev_settlement_hash != p {
                        problem(&mut rep, format!("settlement {epoch} does not chain to the certified epoch before it"));
                    }
                    paid += s.entries.iter().map(|e| e.share_urtc as u128).sum::<u128>();
                }
            }
            Err(e) => problem(&mut rep, format!("settlement {epoch} does not decode: {e}")),
        }
    }
    let mut balance_sum = 0u128;
    for row in r.open_table(BALANCES)?.iter()? {
        balance_sum += row?.1.value() as u128;
        rep.wallets_with_balance += 1;
    }
    rep.total_balance_urtc = u64::try_from(balance_sum).unwrap_or(u64::MAX);
    let mut ledger_sum = 0i128;
    for row in r.open_table(LEDGER)?.iter()? {
        let (k, v) = row?;
        rep.ledger_entries += 1;
        let (epoch, seq) = k.value();
        if ledger_seq.is_some_and(|next| seq >= next) {
            problem(&mut rep, format!("ledger entry ({epoch}, {seq}) is beyond meta.ledger_seq"));
        }
        match uncbor::<LedgerEntry>(v.value(), "ledger entry") {
            Ok(e) => ledger_sum += e.signed_amount(),
            Err(_) => problem(&mut rep, format!("ledger entry ({epoch}, {seq}) does not decode")),
        }
    }
    let balance_sum = balance_sum as i128;
    let paid = paid as i128;
    if balance_sum != ledger_sum {
        problem(&mut rep, format!("balances sum to {balance_sum} uRTC but the ledger to {ledger_sum}"));
    }
    if ledger_sum != paid {
        problem(&mut rep, format!("the ledger pays {ledger_sum} uRTC but the settlements {paid}"));
    }
    Ok(rep)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A new devnet database whose first epoch is 3, in `dir`.
    fn devnet_db(dir: &tempfile::TempDir) -> (ChainSpec, Database) {
        let spec = ChainSpec::builtin("devnet").unwrap();
        let db = open(&dir.path().join("a.redb"), &spec, 3, DEFAULT_CACHE_BYTES).unwrap();
        (spec, db)
    }

    /// A database of schema 3 (before admin pin changes) opens as schema 4 with every certified
    /// wallet-name pin in the key log, so pins keep holding after the upgrade.
    #[test]
    fn a_version_3_database_is_migrated_and_keeps_its_wallet_pins() {
        let dir = tempfile::tempdir().unwrap();
        let (spec, db) = devnet_db(&dir);
        let w = db.begin_write().unwrap();
        {
            let mut b = w.open_table(BINDINGS).unwrap();
            b.insert((BindingKind::WalletKey.as_str(), "name"), cbor(&StoredBinding { owner: "k1".into(), epoch: 2 }).as_slice()).unwrap();
            b.insert((BindingKind::Serial.as_str(), "s"), cbor(&StoredBinding { owner: "name".into(), epoch: 2 }).as_slice()).unwrap();
            b.insert((BindingKind::WalletKey.as_str(), "other"), cbor(&StoredBinding { owner: "k2".into(), epoch: 5 }).as_slice()).unwrap();
        }
        assert!(w.delete_table(KEY_LOG).unwrap() && w.delete_table(ADMIN_RECORDS).unwrap() && w.delete_table(EPOCH_ADMIN).unwrap());
        w.open_table(META).unwrap().insert("schema_version", 3u64.to_be_bytes().as_slice()).unwrap();
        w.commit().unwrap();
        let report = check_consistency(&db, Some(&spec)).unwrap();
        assert_eq!(report.problems, Vec::<String>::new(), "a schema-3 database checks clean (it is migrated on open)");
        assert_eq!(report.schema_version, 3);
        drop(db);
        // Another network's database is refused as it is, not migrated first.
        let mut other = spec.clone();
        other.network_id = "othernet".into();
        assert!(matches!(open(&dir.path().join("a.redb"), &other, 3, DEFAULT_CACHE_BYTES), Err(StoreError::Network { .. })));
        let untouched = open_file(&dir.path().join("a.redb")).unwrap();
        assert_eq!(meta_bytes(&untouched.begin_read().unwrap(), "schema_version").unwrap(), Some(3u64.to_be_bytes().to_vec()));
        drop(untouched);
        let db = open(&dir.path().join("a.redb"), &spec, 3, DEFAULT_CACHE_BYTES).unwrap();
        assert_eq!(meta_bytes(&db.begin_read().unwrap(), "schema_version").unwrap(), Some(SCHEMA_VERSION.to_be_bytes().to_vec()));
        assert_eq!(pin_status(&db, "name", 3).unwrap().pinned_key.as_deref(), Some("k1"));
        assert_eq!(pin_status(&db, "name", 2).unwrap().pinned_key, None, "a pin holds from the epoch after");
        assert_eq!(pin_status(&db, "other", 6).unwrap().pinned_key.as_deref(), Some("k2"));
        assert_eq!(pin_status(&db, "s", 6).unwrap().history, vec![], "only wallet names are in the key log");
        assert!(check_consistency(&db, Some(&spec)).unwrap().problems.is_empty());
    }

    /// A schema-4 database opens as schema 5 with the miners' epoch index built from its
    /// enrollments; `db check` finds the index out of step both ways, and `reindex` rebuilds it.
    #[test]
    fn a_version_4_database_gets_the_miner_epoch_index() {
        let dir = tempfile::tempdir().unwrap();
        let (spec, db) = devnet_db(&dir);
        let w = db.begin_write().unwrap();
        {
            let mut e = w.open_table(ENROLLMENTS).unwrap();
            let row = |id: u8| cbor(&EnrollmentRow { slot: 1, id: [id; 32], weight: 7, miner_id: "m".into(), hw_weight: 7, fingerprint_passed: true });
            e.insert((3u64, "alice"), row(1).as_slice()).unwrap();
            e.insert((5u64, "alice"), row(2).as_slice()).unwrap();
            e.insert((5u64, "bob"), row(3).as_slice()).unwrap();
            w.open_table(MINERS).unwrap().insert("alice", cbor(&MinerSummary {
                miner: "alice".into(), miner_id: "m".into(), family: "PowerPC".into(), arch: "G4".into(), last_slot: 1,
                last_epoch: 5, fingerprint_passed: true, weight: 7, attestations: 2,
            }).as_slice()).unwrap();
        }
        assert!(w.delete_table(MINER_EPOCHS).unwrap());
        w.open_table(META).unwrap().insert("schema_version", 4u64.to_be_bytes().as_slice()).unwrap();
        w.commit().unwrap();
        assert_eq!(check_consistency(&db, Some(&spec)).unwrap().problems, Vec::<String>::new(), "a schema-4 database checks clean");
        drop(db);
        let db = open(&dir.path().join("a.redb"), &spec, 3, DEFAULT_CACHE_BYTES).unwrap();
        assert_eq!(meta_bytes(&db.begin_read().unwrap(), "schema_version").unwrap(), Some(SCHEMA_VERSION.to_be_bytes().to_vec()));
        let (page, next) = miner_history(&db, "alice", None, 10).unwrap();
        assert_eq!((page.iter().map(|m| m.epoch).collect::<Vec<_>>(), next), (vec![5, 3], None));
        let (page, next) = miner_history(&db, "alice", None, 1).unwrap();
        assert_eq!((page.len(), next), (1, Some(3)), "a page of one, then the next starts at epoch 3");
        let o = miner_overview(&db, "alice").unwrap().unwrap();
        assert_eq!((o.first_epoch, o.last_epoch, o.epochs_enrolled), (Some(3), Some(5), 2));
        // A damaged or emptied index is rebuilt by `db reindex`, the stale rows gone.
        let w = db.begin_write().unwrap();
        {
            let mut index = w.open_table(MINER_EPOCHS).unwrap();
            index.remove(("alice", 5u64)).unwrap();
            index.insert(("ghost", 9u64), ()).unwrap();
        }
        w.commit().unwrap();
        assert_eq!(miner_history(&db, "alice", None, 10).unwrap().0.len(), 1);
        let problems = check_consistency(&db, Some(&spec)).unwrap().problems;
        assert!(problems.iter().any(|p| p.contains("(5, alice) is missing from the miner_epochs index")), "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("names (9, ghost), which is not enrolled")), "{problems:?}");
        assert_eq!(reindex(&db).unwrap(), vec![("miner_epochs", 3)]);
        assert!(check_consistency(&db, Some(&spec)).unwrap().problems.is_empty());
        assert_eq!(miner_history(&db, "alice", None, 10).unwrap().0.len(), 2);
        assert!(db.begin_read().unwrap().open_table(MINER_EPOCHS).unwrap().get(("ghost", 9u64)).unwrap().is_none());
        assert!(miner_overview(&db, "carol").unwrap().is_none());
        assert!(check_consistency(&db, Some(&spec)).unwrap().problems.is_empty());
    }

    #[test]
    fn a_relayed_record_of_a_final_epoch_is_kept_and_changes_nothing_settled() {
        use protocol::attestation::{self, Receipt};
        let dir = tempfile::tempdir().unwrap();
        let (spec, db) = devnet_db(&dir);
        let w = db.begin_write().unwrap();
        let (settled, _) = settle_epoch(&w, &spec, 3).unwrap();
        let cert = EpochCertificate { epoch: 3, round: 0, settlement_hash: settled.hash(), votes: vec![] };
        assert!(matches!(apply_certificate(&w, &cert, None).unwrap(), Applied::Now { .. }));
        w.commit().unwrap();

        // A record accepted elsewhere in epoch 3 reaches this node only now.
        let key = protocol::crypto::Keypair::from_seed(&[91; 32]);
        let sub = attestation::parse_submission(&protocol::testkit::linux_miner_body(&key, 91, "late-1", "late-nonce", "LATESN")).unwrap();
        let slot = spec.first_slot(3) + 1;
        let eval = attestation::evaluate(&spec, &sub, slot);
        let payload = sub.payload();
        let receipt = Receipt::sign(&spec, &protocol::crypto::Keypair::from_seed(&[92; 32]), &payload.payload_id(), slot, &sub.nonce);
        let record = AttestationRecord { payload, receipt };
        let id = record.id();
        let late = NewAttestation {
            origin: Origin::Peer,
            record,
            id,
            epoch: 3,
            claim: StoredClaim::new(&sub, &eval, slot),
            nonce_expires: 0,
            oldest_open_epoch: 3,
        };
        let w = db.begin_write().unwrap();
        assert!(insert_attestation(&w, &late).unwrap().unwrap().new);
        let (again, changed) = settle_epoch(&w, &spec, 3).unwrap();
        w.commit().unwrap();
        assert_eq!(have_records(&db, &[id]).unwrap(), [true], "the registry holds the late record");
        assert_eq!(epoch_digest(&db, 3).unwrap().count, 1);
        assert_eq!((again.hash(), changed), (settled.hash(), false), "the final settlement stays the certified one");
        assert_eq!(settlement(&db, 3).unwrap().unwrap().hash(), settled.hash());
        assert!(check_consistency(&db, Some(&spec)).unwrap().problems.is_empty());
    }

    /// A certified record of `epoch` built on `prev`, paying `alice` the pot and judging one
    /// transfer `tx` of hers (1,000 uRTC to bob, `nonce`).
    fn certified_with_transfer(spec: &ChainSpec, epoch: u64, prev: Hash32, tx: &str, nonce: u64) -> (EpochCertificate, Settlement) {
        use protocol::settlement::{PendingTransfer, TransferInput};
        let t = PendingTransfer { tx_hash: tx.into(), from: "alice".into(), to: "bob".into(), amount_urtc: 1_000, nonce };
        let input = TransferInput { pending: [(t.tx_hash.clone(), t)].into_iter().collect(), accounts: BTreeMap::new() };
        let s = settlement::settle(spec, epoch, prev, &[("alice".to_owned(), 1_000_000_000)].into_iter().collect(), &Bindings::new(), &input).unwrap();
        (EpochCertificate { epoch, round: 0, settlement_hash: s.hash(), votes: vec![] }, s)
    }

    fn bob(w: &WriteTransaction) -> Option<u64> {
        w.open_table(BALANCES).unwrap().get("bob").unwrap().map(|v| v.value())
    }

    #[test]
    fn certified_epochs_applied_out_of_order_add_up_and_keep_the_highest_nonce() {
        let dir = tempfile::tempdir().unwrap();
        let (spec, db) = devnet_db(&dir);
        let (cert3, s3) = certified_with_transfer(&spec, 3, [0; 32], "t3", 3);
        let (cert4, s4) = certified_with_transfer(&spec, 4, cert3.settlement_hash, "t5", 5);
        let w = db.begin_write().unwrap();
        assert!(matches!(apply_certificate(&w, &cert4, Some(&s4)).unwrap(), Applied::Now { .. }));
        assert!(matches!(apply_certificate(&w, &cert3, Some(&s3)).unwrap(), Applied::Now { .. }));
        assert_eq!(bob(&w), Some(2_000));
        assert_eq!(w.open_table(LAST_NONCES).unwrap().get("alice").unwrap().map(|v| v.value()), Some(5));
        w.commit().unwrap();
    }

    #[test]
    fn a_certified_record_that_judges_a_transfer_again_is_not_applied() {
        let dir = tempfile::tempdir().unwrap();
        let (spec, db) = devnet_db(&dir);
        let (cert3, s3) = certified_with_transfer(&spec, 3, [0; 32], "t1", 1);
        // Settled by a quorum that never saw 3's certificate: t1 is judged in 4 as well.
        let (cert4, s4) = certified_with_transfer(&spec, 4, [0; 32], "t1", 1);
        let w = db.begin_write().unwrap();
        assert!(matches!(apply_certificate(&w, &cert3, Some(&s3)).unwrap(), Applied::Now { .. }));
        assert_eq!(bob(&w), Some(1_000));
        assert_eq!(apply_certificate(&w, &cert4, Some(&s4)).unwrap(), Applied::Conflict { tx_hash: "t1".into(), judged_in: 3 });
        assert!(!is_applied_in(&w, 4));
        assert_eq!(bob(&w), Some(1_000), "bob is not paid twice");
        w.commit().unwrap();
    }

    #[test]
    fn the_epoch_manager_resumes_after_its_own_progress_not_after_a_record_applied_out_of_order() {
        let dir = tempfile::tempdir().unwrap();
        let (spec, db) = devnet_db(&dir);
        let w = db.begin_write().unwrap();
        // Epoch 5's certified record arrives from a peer before this node settled 4.
        let (cert5, s5) = certified_with_transfer(&spec, 5, [0; 32], "t1", 1);
        assert!(matches!(apply_certificate(&w, &cert5, Some(&s5)).unwrap(), Applied::Now { .. }));
        w.commit().unwrap();
        assert_eq!(last_settled(&db).unwrap(), Some(5));
        assert_eq!(resume_epoch(&db).unwrap(), None, "without the mark: no settlement of the first epoch (3) yet");
        let w = db.begin_write().unwrap();
        settle_epoch(&w, &spec, 3).unwrap();
        w.commit().unwrap();
        assert_eq!(resume_epoch(&db).unwrap(), Some(3), "without the mark: the unbroken run from the first epoch");
        let w = db.begin_write().unwrap();
        mark_settled_through(&w, 3).unwrap();
        w.commit().unwrap();
        assert_eq!(resume_epoch(&db).unwrap(), Some(3), "epoch 4 is still to settle here");
        let w = db.begin_write().unwrap();
        mark_settled_through(&w, 4).unwrap();
        mark_settled_through(&w, 2).unwrap();
        w.commit().unwrap();
        assert_eq!(resume_epoch(&db).unwrap(), Some(4), "the mark only moves up");
    }

    /// A miner (`miner_seed`) attesting for `wallet` with hardware `serial`, receipted by
    /// `signer_seed`'s key at `slot`: the write a node makes of it, from a miner or from a peer.
    fn attestation_at(spec: &ChainSpec, miner_seed: u8, wallet: &str, serial: &str, signer_seed: u8, slot: u64, origin: Origin) -> NewAttestation {
        use protocol::attestation;
        let key = protocol::crypto::Keypair::from_seed(&[miner_seed; 32]);
        let nonce = format!("n-{miner_seed}-{wallet}-{serial}-{}", spec.epoch_of_slot(slot));
        let mut req = serde_json::json!({
            "miner": wallet, "miner_id": format!("{wallet}-box"), "nonce": nonce,
            "device": {"family": "x86_64", "arch": "modern", "model": "Ryzen", "cpu": "AMD Ryzen 7", "serial": serial},
            "signals": {"hostname": "box"},
            "fingerprint": {"checks": {
                "anti_emulation": {"passed": true, "data": {"vm_indicators": []}},
                "clock_drift": {"passed": true, "data": {"cv": 0.02, "samples": 200}}}},
        });
        attestation::sign_request(&key, req.as_object_mut().unwrap());
        received(spec, &serde_json::to_vec(&req).unwrap(), signer_seed, slot, origin)
    }

    /// The write a node makes of the signed `body`, receipted by `signer_seed`'s key at `slot`.
    fn received(spec: &ChainSpec, body: &[u8], signer_seed: u8, slot: u64, origin: Origin) -> NewAttestation {
        use protocol::attestation::{self, Receipt};
        let sub = attestation::parse_submission(body).unwrap();
        let eval = attestation::evaluate(spec, &sub, slot);
        let payload = sub.payload();
        let signer = protocol::crypto::Keypair::from_seed(&[signer_seed; 32]);
        let receipt = Receipt::sign(spec, &signer, &payload.payload_id(), slot, &sub.nonce);
        let record = AttestationRecord { payload, receipt };
        NewAttestation {
            origin,
            id: record.id(),
            epoch: spec.epoch_of_slot(slot),
            claim: StoredClaim::new(&sub, &eval, slot),
            record,
            nonce_expires: u64::MAX,
            oldest_open_epoch: spec.epoch_of_slot(slot),
        }
    }

    /// Settle `epoch` and apply its own settlement as certified.
    fn certify(w: &WriteTransaction, spec: &ChainSpec, epoch: u64) -> Settlement {
        let (s, _) = settle_epoch(w, spec, epoch).unwrap();
        let cert = EpochCertificate { epoch, round: 0, settlement_hash: s.hash(), votes: vec![] };
        assert!(matches!(apply_certificate(w, &cert, None).unwrap(), Applied::Now { .. }));
        s
    }

    fn insert(w: &WriteTransaction, a: &NewAttestation) -> Result<Inserted, Refusal> {
        insert_attestation(w, a).unwrap()
    }

    /// Issue 13 (2): a hostile relay backdates a claim on a victim's serial into an epoch that is
    /// already certified (or before this node's history). Before, the earliest slot ever bound the
    /// serial, so the victim got 409 everywhere from then on; now bindings come only from certified
    /// settlements, and the backdated records change nothing.
    #[test]
    fn a_backdated_receipt_cannot_take_a_serial_bound_by_a_certified_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let (spec, db) = devnet_db(&dir);
        let w = db.begin_write().unwrap();
        let victim = attestation_at(&spec, 1, "victim", "SN-1", 10, spec.first_slot(3) + 5, Origin::Miner);
        insert(&w, &victim).unwrap();
        let s3 = certify(&w, &spec, 3);
        assert_eq!(s3.bindings.iter().map(|b| (b.kind.as_str(), b.owner.as_str())).filter(|b| b.0 == "serial").collect::<Vec<_>>(), [("serial", "victim")]);
        // Backdated into the certified epoch 3, and to slot 0 (before this node's first epoch).
        for slot in [spec.first_slot(3), 0] {
            let thief = attestation_at(&spec, 2, "thief", "SN-1", 66, slot, Origin::Peer);
            assert!(insert(&w, &thief).unwrap().new, "kept as history");
        }
        // In epoch 4 the thief's claim comes first, the victim attests later: the victim still
        // holds the serial at the HTTP door and in the settlement.
        let thief = attestation_at(&spec, 2, "thief", "SN-1", 66, spec.first_slot(4), Origin::Peer);
        insert(&w, &thief).unwrap();
        let victim = attestation_at(&spec, 1, "victim", "SN-1", 10, spec.first_slot(4) + 3, Origin::Miner);
        insert(&w, &victim).expect("the victim keeps its serial");
        let over_http = attestation_at(&spec, 3, "thief-2", "SN-1", 10, spec.first_slot(4) + 4, Origin::Miner);
        assert_eq!(insert(&w, &over_http), Err(Refusal::DuplicateHardware("victim".into())));
        let (s4, _) = settle_epoch(&w, &spec, 4).unwrap();
        assert_eq!(s4.entries.iter().map(|e| e.miner.as_str()).collect::<Vec<_>>(), ["victim"]);
        w.commit().unwrap();
        assert!(check_consistency(&db, Some(&spec)).unwrap().problems.is_empty());
    }

    /// Issue 13 (1): one payload under two receipts (one key at two slots, as two relays sharing a
    /// key with clocks apart do) is two records; nodes that received them in either order compute
    /// the same settlement, and the signer is reported as equivocating.
    #[test]
    fn two_receipts_of_one_payload_are_two_records_and_settle_the_same_in_any_order() {
        let spec = ChainSpec::builtin("devnet").unwrap();
        let early = attestation_at(&spec, 1, "w1", "SN-9", 7, spec.first_slot(3) + 1, Origin::Peer);
        let late = attestation_at(&spec, 1, "w1", "SN-9", 7, spec.first_slot(3) + 4, Origin::Peer);
        assert_ne!(early.id, late.id);
        assert_eq!(early.record.payload, late.record.payload);
        let mut hashes = Vec::new();
        for order in [[&early, &late], [&late, &early]] {
            let dir = tempfile::tempdir().unwrap();
            let (_, db) = devnet_db(&dir);
            let w = db.begin_write().unwrap();
            assert_eq!(insert(&w, order[0]).unwrap().equivocating_signer, None);
            let second = insert(&w, order[1]).unwrap();
            assert!(second.new);
            assert_eq!(second.equivocating_signer, Some(early.record.receipt.node_key));
            let (s, _) = settle_epoch(&w, &spec, 3).unwrap();
            assert_eq!(s.entries[0].weight, early.claim.weight, "the earlier receipt counts");
            // The same payload offered over HTTP here afterwards is a replay.
            let again = NewAttestation { origin: Origin::Miner, ..attestation_at(&spec, 1, "w1", "SN-9", 8, spec.first_slot(3) + 5, Origin::Miner) };
            assert_eq!(insert(&w, &again), Err(Refusal::NonceReplay));
            w.commit().unwrap();
            hashes.push(s.hash());
            assert_eq!(epoch_ids(&db, 3).unwrap().len(), 2);
        }
        assert_eq!(hashes[0], hashes[1]);
    }

    #[test]
    fn a_peer_record_of_an_epoch_no_longer_worked_on_is_refused_unless_final_or_history() {
        let dir = tempfile::tempdir().unwrap();
        let (spec, db) = devnet_db(&dir);
        let w = db.begin_write().unwrap();
        let mut old = attestation_at(&spec, 1, "w1", "SN-1", 7, spec.first_slot(4) + 1, Origin::Peer);
        old.oldest_open_epoch = 6;
        assert_eq!(insert(&w, &old), Err(Refusal::StaleReceipt { slot: spec.first_slot(4) + 1, epoch: 4 }));
        certify(&w, &spec, 4);
        assert!(insert(&w, &old).unwrap().new, "a final epoch's record is history");
        w.commit().unwrap();
    }

    /// Issue 13 (3): a free-form wallet name belongs to the first key that earns for it.
    #[test]
    fn a_wallet_name_is_pinned_to_its_first_key() {
        let dir = tempfile::tempdir().unwrap();
        let (spec, db) = devnet_db(&dir);
        let w = db.begin_write().unwrap();
        let first = attestation_at(&spec, 1, "scott-g4", "SN-1", 7, spec.first_slot(3) + 1, Origin::Miner);
        insert(&w, &first).unwrap();
        // Another key, later in the same epoch: over HTTP refused; from a peer kept, but it does not enroll.
        let hijack = attestation_at(&spec, 2, "scott-g4", "SN-2", 7, spec.first_slot(3) + 3, Origin::Miner);
        assert!(matches!(insert(&w, &hijack), Err(Refusal::KeyMismatch { .. })));
        insert(&w, &attestation_at(&spec, 2, "scott-g4", "SN-2", 66, spec.first_slot(3) + 4, Origin::Peer)).unwrap();
        let s3 = certify(&w, &spec, 3);
        assert_eq!((s3.entries.len(), s3.entries[0].weight), (1, first.claim.weight));
        let hijack = attestation_at(&spec, 2, "scott-g4", "SN-2", 7, spec.first_slot(4), Origin::Miner);
        assert!(matches!(insert(&w, &hijack), Err(Refusal::KeyMismatch { .. })));
        let from_peer = attestation_at(&spec, 2, "scott-g4", "SN-2", 66, spec.first_slot(4), Origin::Peer);
        insert(&w, &from_peer).unwrap();
        insert(&w, &attestation_at(&spec, 1, "scott-g4", "SN-1", 7, spec.first_slot(4) + 6, Origin::Miner)).expect("the owner attests");
        let (s4, _) = settle_epoch(&w, &spec, 4).unwrap();
        let owner = attestation_at(&spec, 1, "scott-g4", "SN-1", 7, spec.first_slot(4) + 6, Origin::Miner);
        assert_eq!(s4.entries.len(), 1);
        assert_eq!(s4.entries[0].weight, owner.claim.weight);
        w.commit().unwrap();
    }

    /// A Linux field miner's full fingerprint (the testkit body: five measured fields), for the
    /// machine `i`, signed by `miner_seed`'s key (its own wallet and serial), receipted at `slot`.
    fn field_miner_at(spec: &ChainSpec, miner_seed: u8, i: usize, slot: u64, origin: Origin) -> NewAttestation {
        let key = protocol::crypto::Keypair::from_seed(&[miner_seed; 32]);
        let body = protocol::testkit::linux_miner_body(&key, i, "box", &format!("n-{miner_seed}-{slot}"), "SN");
        received(spec, &body, 7, slot, origin)
    }

    /// Issue 21: one machine's measurements under three serials and wallets earn once, in the
    /// epoch they arrive (by the rule) and in every epoch after (at the HTTP door too).
    #[test]
    fn a_copied_fingerprint_under_other_serials_earns_once() {
        let dir = tempfile::tempdir().unwrap();
        let (spec, db) = devnet_db(&dir);
        let w = db.begin_write().unwrap();
        let first = field_miner_at(&spec, 1, 0, spec.first_slot(3) + 1, Origin::Miner);
        assert!(first.claim.fingerprint_passed && first.claim.weight > 1);
        insert(&w, &first).unwrap();
        // The copies arrive from peers (a relay accepted them): stored, and capped by the rule.
        for seed in [2, 3] {
            let copy = field_miner_at(&spec, seed, 0, spec.first_slot(3) + 1 + u64::from(seed), Origin::Peer);
            assert_ne!(copy.claim.serial_hash, first.claim.serial_hash);
            assert_eq!(copy.claim.profile, first.claim.profile);
            insert(&w, &copy).unwrap();
        }
        let s3 = certify(&w, &spec, 3);
        let weights: Vec<u64> = s3.entries.iter().map(|e| e.weight).collect();
        let full = first.claim.weight;
        assert_eq!(weights.iter().filter(|w| **w == full).count(), 1, "{weights:?}");
        assert_eq!(weights.iter().filter(|w| **w == 1).count(), 2, "{weights:?}");
        assert!(s3.bindings.iter().any(|b| b.kind == "profile" && b.key == *first.claim.serial_hash.as_ref().unwrap()));
        // Next epoch: a copy over HTTP is refused with the reference's code; the owner, slightly
        // drifted (another clock cv), keeps attesting at full weight.
        let copy = field_miner_at(&spec, 2, 0, spec.first_slot(4), Origin::Miner);
        match insert(&w, &copy) {
            Err(Refusal::HardwareBinding { reason: "entropy_collision", .. }) => {}
            other => panic!("{other:?}"),
        }
        let drifted = field_miner_at(&spec, 1, 1, spec.first_slot(4) + 2, Origin::Miner);
        assert_ne!(drifted.claim.profile, first.claim.profile);
        insert(&w, &drifted).expect("normal drift keeps the binding");
        let (s4, _) = settle_epoch(&w, &spec, 4).unwrap();
        assert_eq!(s4.entries.len(), 1);
        assert_eq!(s4.entries[0].weight, drifted.claim.weight);
        w.commit().unwrap();
    }

    /// `t` as node `signer_seed` stores it under its receipt at `slot`, relayed (no balance check).
    fn relayed_transfer(spec: &ChainSpec, t: &protocol::transfer::Transfer, signer_seed: u8, slot: u64) -> NewTransfer {
        let record = TransferRecord::accept(spec, &protocol::crypto::Keypair::from_seed(&[signer_seed; 32]), t, slot);
        let t = record.verify(spec).unwrap();
        NewTransfer { origin: Origin::Peer, id: record.id(), epoch: spec.epoch_of_slot(slot), transfer: StoredTransfer::new(spec, &t, slot), record }
    }

    /// Issue 13 (9): a relay's receipt backdated into the epoch before the one its sender signed
    /// in (the nonce is the signing time in ms) is stored, but the transfer still counts from the
    /// signed slot: the earlier epoch's settlement does not judge it, whichever record came first.
    #[test]
    fn a_backdated_relay_receipt_does_not_move_a_transfer_into_the_epoch_before() {
        use protocol::{crypto::Keypair, transfer::TransferOrder};
        let spec = ChainSpec::builtin("devnet").unwrap();
        let signed_slot = spec.first_slot(5);
        let order = TransferOrder {
            to_address: Keypair::from_seed(&[2; 32]).address(),
            amount_rtc: 0.5,
            memo: String::new(),
            nonce: ((spec.genesis_unix + signed_slot * spec.slot_seconds) * 1_000) as i64,
            chain_id: Some(spec.network_id.clone()),
        };
        let body = serde_json::to_vec(&order.sign(&Keypair::from_seed(&[1; 32]))).unwrap();
        let t = protocol::transfer::parse_transfer(&spec, &body).unwrap();
        let (honest, hostile) = (relayed_transfer(&spec, &t, 10, signed_slot + 1), relayed_transfer(&spec, &t, 11, signed_slot - 1));
        assert_eq!(hostile.epoch, 4, "the hostile receipt is in epoch 4");
        for records in [[&hostile, &honest], [&honest, &hostile]] {
            let dir = tempfile::tempdir().unwrap();
            let (spec, db) = devnet_db(&dir);
            let w = db.begin_write().unwrap();
            for r in records {
                assert_eq!(insert_transfer(&w, r).unwrap(), Ok(true));
            }
            let (four, _) = settle_epoch(&w, &spec, 4).unwrap();
            let (five, _) = settle_epoch(&w, &spec, 5).unwrap();
            w.commit().unwrap();
            assert!(four.transfers.is_empty(), "moved into epoch 4: {:?}", four.transfers);
            assert_eq!(five.transfers.iter().map(|x| &*x.tx_hash).collect::<Vec<_>>(), [t.tx_hash().as_str()]);
            assert_eq!(epoch_digest(&db, 4).unwrap().count, 1, "the backdated record is kept in its receipt's epoch");
            match tx_state(&db, &t.tx_hash()).unwrap() {
                Some(TxState::Pending(p)) => assert_eq!(p.slot, signed_slot),
                other => panic!("{other:?}"),
            }
        }
    }

    fn is_applied_in(w: &WriteTransaction, epoch: u64) -> bool {
        w.open_table(APPLIED).unwrap().get(epoch).unwrap().is_some()
    }

    #[test]
    fn a_new_database_is_consistent_and_copies_whole() {
        let dir = tempfile::tempdir().unwrap();
        let (spec, db) = devnet_db(&dir);
        {
            let w = db.begin_write().unwrap();
            settle_epoch(&w, &spec, 3).unwrap();
            w.commit().unwrap();
        }
        let rep = check_consistency(&db, Some(&spec)).unwrap();
        assert!(rep.problems.is_empty(), "{:?}", rep.problems);
        assert_eq!((rep.settlements, rep.last_settled_epoch), (1, Some(3)));
        let copy = Database::create(dir.path().join("b.redb")).unwrap();
        let rows = copy_snapshot(&db.begin_read().unwrap(), &copy).unwrap();
        assert_eq!(rows, 5, "4 meta rows and 1 settlement");
        assert!(check_consistency(&copy, Some(&spec)).unwrap().problems.is_empty());
        let other = ChainSpec { network_id: "other".into(), ..spec };
        assert_eq!(check_consistency(&copy, Some(&other)).unwrap().problems.len(), 1);
    }
}
