//! Attestation challenges without server-side state: a nonce carries its own expiry and optional
//! miner binding, authenticated by a keyed hash with the node's secret, so challenges survive a
//! restart and an attacker cannot fill memory by asking for them. Used nonces are recorded in the
//! database (see `store::USED_NONCES`) until they expire.

use protocol::crypto::sha256_parts;

/// 32 bytes, written as 64 hex characters: flags (1) | expires_at (8, big-endian) | random (7) | tag (16).
pub const NONCE_BYTES: usize = 32;
const BOUND: u8 = 1;

#[derive(Clone)]
pub struct Challenges {
    secret: [u8; 32],
    ttl_seconds: u64,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Issued {
    pub nonce: String,
    pub expires_at: u64,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeError {
    #[error("nonce was not issued by this node")]
    Invalid,
    #[error("nonce expired; request a new one from POST /attest/challenge")]
    Expired,
    #[error("nonce is bound to another miner_id")]
    IdentityMismatch,
}

impl Challenges {
    pub fn new(secret: [u8; 32], ttl_seconds: u64) -> Self {
        Challenges { secret, ttl_seconds }
    }

    fn tag(&self, head: &[u8], bound_miner: &str) -> [u8; 16] {
        let h = sha256_parts("rustchain/nonce/v1", &[&self.secret, head, bound_miner.as_bytes()]);
        h[..16].try_into().expect("16 of 32 bytes")
    }

    pub fn issue(&self, now_unix: u64, bound_miner: Option<&str>) -> Issued {
        let expires_at = now_unix + self.ttl_seconds;
        let mut n = [0u8; NONCE_BYTES];
        n[0] = if bound_miner.is_some() { BOUND } else { 0 };
        n[1..9].copy_from_slice(&expires_at.to_be_bytes());
        getrandom::fill(&mut n[9..16]).expect("the OS random source is available");
        let tag = self.tag(&n[..16], bound_miner.unwrap_or(""));
        n[16..].copy_from_slice(&tag);
        Issued { nonce: hex::encode(n), expires_at }
    }

    /// Check a nonce presented by `miner_id`; returns its expiry.
    pub fn check(&self, nonce: &str, miner_id: &str, now_unix: u64) -> Result<u64, ChallengeError> {
        // Only the exact text issued (lower-case hex): used nonces are recorded by their text, so an
        // upper-case spelling of a used nonce must not pass as a new one.
        if nonce.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(ChallengeError::Invalid);
        }
        let mut n = [0u8; NONCE_BYTES];
        hex::decode_to_slice(nonce, &mut n).map_err(|_| ChallengeError::Invalid)?;
        let bound = match n[0] {
            0 => false,
            BOUND => true,
            _ => return Err(ChallengeError::Invalid),
        };
        let tag: &[u8] = &n[16..];
        if bound {
            if self.tag(&n[..16], miner_id) != tag {
                // Either bound to someone else or forged; both are refused.
                return Err(ChallengeError::IdentityMismatch);
            }
        } else if self.tag(&n[..16], "") != tag {
            return Err(ChallengeError::Invalid);
        }
        let expires_at = u64::from_be_bytes(n[1..9].try_into().expect("8 bytes"));
        if now_unix > expires_at {
            return Err(ChallengeError::Expired);
        }
        Ok(expires_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_and_check() {
        let c = Challenges::new([5; 32], 300);
        let free = c.issue(1000, None);
        assert_eq!(free.expires_at, 1300);
        assert_eq!(free.nonce.len(), 64);
        assert_eq!(c.check(&free.nonce, "anyone", 1100), Ok(1300));
        assert_eq!(c.check(&free.nonce, "anyone", 1301), Err(ChallengeError::Expired));

        let bound = c.issue(1000, Some("box-1"));
        assert_eq!(c.check(&bound.nonce, "box-1", 1000), Ok(1300));
        assert_eq!(c.check(&bound.nonce, "box-2", 1000), Err(ChallengeError::IdentityMismatch));

        let other = Challenges::new([6; 32], 300);
        assert_eq!(other.check(&free.nonce, "anyone", 1000), Err(ChallengeError::Invalid));
        assert_ne!(c.issue(1000, None).nonce, free.nonce);
    }

    #[test]
    fn tampering_is_detected() {
        let c = Challenges::new([5; 32], 300);
        let n = c.issue(1000, None).nonce;
        // Push the expiry forward: the tag no longer matches.
        let mut b = hex::decode(&n).unwrap();
        b[8] ^= 0x10;
        assert_eq!(c.check(&hex::encode(&b), "x", 1000), Err(ChallengeError::Invalid));
        for bad in ["", "zz", &"00".repeat(31), &n[..63], &n.to_uppercase()] {
            assert_eq!(c.check(bad, "x", 1000), Err(ChallengeError::Invalid));
        }
    }
}
