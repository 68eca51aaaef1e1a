//! The field miners' routes: `/attest/challenge`, `/attest/submit`, `/epoch`, `/epoch/enroll`.

use super::*;

pub(super) async fn challenge(State(node): State<Arc<Node>>, body: Result<Bytes, BytesRejection>) -> ApiResult {
    let body = json_object(&body_bytes(body)?)?;
    let bound = match body.get("miner_id") {
        None | Some(canonical_json::Value::Null) => None,
        Some(canonical_json::Value::Str(s)) if attestation::valid_miner_id(s) => Some(s.as_str()),
        Some(_) => return Err(ApiError::bad_request("INVALID_FIELD", "miner_id must match ^[A-Za-z0-9._:-]{1,128}$")),
    };
    let now = node.clock.now_unix();
    let issued = node.challenges.issue(now, bound);
    Ok(Json(json!({"nonce": issued.nonce, "expires_at": issued.expires_at, "bound_miner": bound, "server_time": now}))
        .into_response())
}

pub(super) async fn submit(State(node): State<Arc<Node>>, body: Result<Bytes, BytesRejection>) -> ApiResult {
    let outcome = submit_attestation(&node, body).await;
    match &outcome {
        Ok((_, true)) => node.metrics.attestation("accepted", None),
        Ok((_, false)) => node.metrics.attestation("fingerprint_failed", None),
        Err(e) if e.status == StatusCode::SERVICE_UNAVAILABLE => node.metrics.attestation("error", Some(e.code)),
        Err(e) => node.metrics.attestation("rejected", Some(e.code)),
    }
    outcome.map(|(r, _)| r)
}

/// Validate, evaluate and store one attestation; the response and whether its fingerprint passed.
pub(super) async fn submit_attestation(node: &Node, body: Result<Bytes, BytesRejection>) -> Result<(Response, bool), ApiError> {
    let body = body_bytes(body)?;
    // Signature checks and canonical JSON are CPU work: keep them off the async workers' hot path.
    let sub = tokio::task::spawn_blocking(move || attestation::parse_submission(&body))
        .await
        .map_err(|_| ApiError::unavailable("validation task failed"))??;
    let now = node.clock.now_unix();
    let nonce_expires = node.challenges.check(&sub.nonce, &sub.miner_id, now).map_err(|e| match e {
        ChallengeError::IdentityMismatch => ApiError::new(StatusCode::FORBIDDEN, "NONCE_IDENTITY_MISMATCH", e.to_string()),
        ChallengeError::Invalid | ChallengeError::Expired => {
            ApiError::new(StatusCode::CONFLICT, "CHALLENGE_INVALID", e.to_string())
        }
    })?;
    let slot = node.spec.slot_at(now);
    let epoch = node.spec.epoch_of_slot(slot);
    let payload = sub.payload();
    let receipt = Receipt::sign(&node.spec, &node.key, &payload.payload_id(), slot, &sub.nonce);
    let (new, eval) = admission::attestation(&node.spec, &sub, AttestationRecord { payload, receipt }, Origin::Miner, nonce_expires, epoch);
    let (id, claim) = (new.id, new.claim.clone());
    let outcome = node.writer.attest(new).await.map_err(|e| ApiError::unavailable(e.to_string()))?;
    match outcome {
        Ok(stored) => {
            node.announce(id);
            if stored.new {
                crate::events::attestation_accepted(&node.events, &id, epoch, &claim, "here");
            }
        }
        Err(r) => return Err(refused(r)),
    }
    if !eval.verdict.passed {
        tracing::info!(miner = %sub.miner, miner_id = %sub.miner_id, reasons = ?eval.verdict.reasons, "attestation accepted; fingerprint failed");
    } else {
        tracing::debug!(miner = %sub.miner, miner_id = %sub.miner_id, epoch, "attestation accepted");
    }
    let d = &eval.device;
    let response = Json(json!({
        "ok": true,
        "status": "accepted",
        "ticket_id": format!("ticket_{}", &hex::encode(id)[..32]),
        "record_id": hex::encode(id),
        "miner": sub.miner,
        "miner_id": sub.miner_id,
        "epoch": epoch,
        "slot": slot,
        "device": {"family": d.family, "arch": d.arch, "model": d.model, "cpu": d.cpu, "cores": d.cores,
                   "machine": d.machine, "serial_hash": eval.serial_hash},
        "fingerprint_passed": eval.verdict.passed,
        "fingerprint_reasons": eval.verdict.reasons,
        "weight": eval.weight,
        "hw_weight": eval.hw_weight,
    }))
    .into_response();
    Ok((response, eval.verdict.passed))
}

pub(super) async fn epoch_info(State(node): State<Arc<Node>>) -> ApiResult {
    let now = node.clock.now_unix();
    let slot = node.spec.slot_at(now);
    let epoch = node.spec.epoch_of_slot(slot);
    let enrolled = node.enrolled_count(epoch)?;
    Ok(Json(json!({
        "epoch": epoch,
        "slot": slot,
        "epoch_pot": rtc_f64(node.spec.epoch_pot_urtc),
        "epoch_pot_urtc": node.spec.epoch_pot_urtc,
        "enrolled_miners": enrolled,
        "blocks_per_epoch": node.spec.slots_per_epoch,
        "slot_seconds": node.spec.slot_seconds,
        "total_supply_rtc": node.spec.total_supply_urtc / URTC_PER_RTC,
        "network_id": node.spec.network_id,
        "epoch_ends_at": node.spec.epoch_end_unix(epoch),
    }))
    .into_response())
}

/// `POST /epoch/enroll`: the miner confirms, with the key it attested with, that it takes part in
/// the current epoch. Enrollment itself comes from the epoch's attestations (see
/// docs/ARCHITECTURE.md), so this checks the signature and reports the enrollment.
pub(super) async fn enroll(State(node): State<Arc<Node>>, body: Result<Bytes, BytesRejection>) -> ApiResult {
    let body = json_object(&body_bytes(body)?)?;
    let field = |k: &'static str| -> Result<&str, ApiError> {
        body.get(k).and_then(canonical_json::Value::as_str).ok_or_else(|| {
            ApiError::bad_request("MISSING_FIELD", format!("`{k}` is required and must be a string"))
        })
    };
    let wallet = field("miner_pubkey")?;
    canonical_address(wallet)?;
    let miner_id = field("miner_id")?;
    let sig = protocol::crypto::decode_hex::<64>("signature", field("signature")?)
        .map_err(|e| ApiError::bad_request("INVALID_SIGNATURE", e.to_string()))?;
    let pk = protocol::crypto::decode_hex::<32>("public_key", field("public_key")?)
        .map_err(|e| ApiError::bad_request("INVALID_SIGNATURE", e.to_string()))?;
    let now = node.clock.now_unix();
    let epoch = node.spec.epoch_at(now);
    let msg = format!("{wallet}|{miner_id}|{epoch}");
    protocol::crypto::verify(&pk, msg.as_bytes(), &sig)
        .map_err(|e| ApiError::bad_request("INVALID_SIGNATURE", format!("{e} (signed message is \"{{miner_pubkey}}|{{miner_id}}|{{epoch}}\" with the current epoch)")))?;
    let row = store::enrollment(&*node.db()?, epoch, wallet)?.ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "ATTESTATION_REQUIRED",
            format!("{wallet} has no accepted attestation in epoch {epoch}; POST /attest/submit first (an attestation enrolls)"),
        )
    })?;
    if row.miner_id != miner_id {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "MINER_ID_MISMATCH",
            format!("{wallet} is enrolled in epoch {epoch} through miner_id {}, not {miner_id}", row.miner_id),
        ));
    }
    let record = store::record(&*node.db()?, &row.id)?.ok_or_else(|| ApiError::unavailable("enrollment without its record"))?;
    if record.payload.public_key != pk {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "KEY_MISMATCH", "public_key is not the key this miner attested with"));
    }
    Ok(Json(json!({
        "ok": true, "epoch": epoch, "miner_pubkey": wallet, "miner_id": row.miner_id, "weight": row.weight,
        "hw_weight": row.hw_weight, "fingerprint_passed": row.fingerprint_passed, "enrolled_at_slot": row.slot,
    }))
    .into_response())
}
