//! Admission: the one place a verified record becomes the write the store judges, whichever door
//! it came through: a miner or a wallet over HTTP (this node signs the receipt), or a peer (the
//! record carries another node's receipt, already verified). Both doors evaluate the attestation
//! at its receipt slot and count a transfer from the slot its record makes it count from with the
//! same code here; what differs (the challenge nonce, which only the accepting node can check; the
//! stored state, which `store::insert_attestation` and `store::insert_transfer` judge by
//! `Origin`) is named where it differs. Depends on `store` and `protocol` only.

use protocol::ChainSpec;
use protocol::admin::AdminRecord;
use protocol::attestation::{self, AttestationRecord, Evaluation, Submission};
use protocol::transfer::{Transfer, TransferRecord};

use crate::store::{NewAdmin, NewAttestation, NewTransfer, Origin, StoredClaim, StoredTransfer};

/// An attestation `record` of the verified submission `sub`: evaluated at its receipt slot.
/// `nonce_expires` is when the challenge it used expires (this node's own challenges only: a peer's
/// record carries another node's nonce, which only that node can check, so 0).
pub fn attestation(spec: &ChainSpec, sub: &Submission, record: AttestationRecord, origin: Origin, nonce_expires: u64, oldest_open_epoch: u64) -> (NewAttestation, Evaluation) {
    let slot = record.receipt.slot;
    let eval = attestation::evaluate(spec, sub, slot);
    let claim = StoredClaim::new(sub, &eval, slot);
    let new = NewAttestation { origin, id: record.id(), epoch: spec.epoch_of_slot(slot), claim, record, nonce_expires, oldest_open_epoch };
    (new, eval)
}

/// A transfer `record` of the verified transfer `t`: in the registry of its receipt's epoch,
/// counted from the slot its record makes it count from (never before the time its sender signed).
pub fn transfer(spec: &ChainSpec, t: &Transfer, record: TransferRecord, origin: Origin) -> NewTransfer {
    let slot = record.receipt.slot;
    NewTransfer { origin, id: record.id(), epoch: spec.epoch_of_slot(slot), transfer: StoredTransfer::new(spec, t, slot), record }
}

/// A verified admin change: in the registry of the epoch it names.
pub fn admin(record: AdminRecord, origin: Origin, oldest_open_epoch: u64) -> NewAdmin {
    NewAdmin { origin, id: record.id(), record, oldest_open_epoch }
}
