//! Hashes, keys, signatures and addresses: the one place where bytes become identities.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

/// A 32-byte SHA-256 digest.
pub type Hash32 = [u8; 32];

pub fn sha256(data: &[u8]) -> Hash32 {
    Sha256::digest(data).into()
}

/// SHA-256 of what a serializer writes, without holding the bytes: `write` feeds the hash.
/// Wrap it in a `std::io::BufWriter` when the writes are small (CBOR writes one header at a time).
#[derive(Default)]
pub struct HashWriter(Sha256);

impl HashWriter {
    pub fn finish(self) -> Hash32 {
        self.0.finalize().into()
    }
}

impl std::io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// SHA-256 over several parts, each prefixed by its length so that part boundaries are unambiguous.
pub fn sha256_parts(domain: &str, parts: &[&[u8]]) -> Hash32 {
    let mut h = Sha256::new();
    h.update((domain.len() as u64).to_be_bytes());
    h.update(domain.as_bytes());
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    h.finalize().into()
}

/// `"RTC" + hex(sha256(pubkey))[:40]`: the wallet address of an Ed25519 public key.
pub fn address_of(public_key: &[u8; 32]) -> String {
    let h = sha256(public_key);
    format!("RTC{}", &hex::encode(h)[..40])
}

#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum KeyError {
    #[error("{what} must be {len} hex characters")]
    BadHex { what: &'static str, len: usize },
    #[error("public key is not a valid Ed25519 point")]
    BadPoint,
    #[error("public key is a weak (small-order) key")]
    WeakKey,
    #[error("signature does not verify")]
    BadSignature,
}

/// Decode exactly `N` bytes of hex (either case).
pub fn decode_hex<const N: usize>(what: &'static str, s: &str) -> Result<[u8; N], KeyError> {
    let mut out = [0u8; N];
    hex::decode_to_slice(s, &mut out).map_err(|_| KeyError::BadHex { what, len: N * 2 })?;
    Ok(out)
}

/// Parse a public key, refusing small-order keys.
pub fn public_key(bytes: &[u8; 32]) -> Result<VerifyingKey, KeyError> {
    let vk = VerifyingKey::from_bytes(bytes).map_err(|_| KeyError::BadPoint)?;
    if vk.is_weak() {
        return Err(KeyError::WeakKey);
    }
    Ok(vk)
}

/// The one acceptance rule for signatures everywhere in the protocol: `verify_strict`.
pub fn verify(public_key_bytes: &[u8; 32], msg: &[u8], signature: &[u8; 64]) -> Result<(), KeyError> {
    let vk = public_key(public_key_bytes)?;
    let sig = Signature::from_bytes(signature);
    vk.verify_strict(msg, &sig).map_err(|_| KeyError::BadSignature)
}

/// An Ed25519 key pair (a node key or a wallet key).
#[derive(Clone)]
pub struct Keypair(SigningKey);

impl Keypair {
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Keypair(SigningKey::from_bytes(seed))
    }
    pub fn seed(&self) -> [u8; 32] {
        self.0.to_bytes()
    }
    pub fn public(&self) -> [u8; 32] {
        self.0.verifying_key().to_bytes()
    }
    pub fn address(&self) -> String {
        address_of(&self.public())
    }
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.0.sign(msg).to_bytes()
    }
}

impl std::fmt::Debug for Keypair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keypair(public={})", hex::encode(self.public()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_v6_key_address_and_signature() {
        let seed = decode_hex::<32>("seed", "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f").unwrap();
        let kp = Keypair::from_seed(&seed);
        assert_eq!(hex::encode(kp.public()), "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8");
        assert_eq!(kp.address(), "RTC56475aa75463474c0285df5dbf2bcab73da65135");
        let msg = "{\"amount\":0.25,\"fee\":0.0,\"from\":\"RTC56475aa75463474c0285df5dbf2bcab73da65135\",\"memo\":\"hi\",\"nonce\":\"1700000000\",\"to\":\"RTCabababababababababababababababababababab\"}";
        let sig = kp.sign(msg.as_bytes());
        assert_eq!(hex::encode(sig), "56263fe74ea50e2c967b102b9d0dbfc70b1cad5ce684e7c79dce09127bf38b9dffdc737004dfac92a1c7c1d7c68e51a096810347f1a1e5847d53fd3b352f890e");
        verify(&kp.public(), msg.as_bytes(), &sig).unwrap();
        let mut bad = sig;
        bad[0] ^= 1;
        assert_eq!(verify(&kp.public(), msg.as_bytes(), &bad), Err(KeyError::BadSignature));
        // tx_hash = hex(sha256(message_bytes + signature_bytes))[:32]
        let mut m = msg.as_bytes().to_vec();
        m.extend_from_slice(&sig);
        assert_eq!(&hex::encode(sha256(&m))[..32], "62212b16bf6172e1a77ceb77b18fc40b");
    }

    #[test]
    fn weak_keys_and_bad_hex_are_refused() {
        // The identity point (small order).
        let mut ident = [0u8; 32];
        ident[0] = 1;
        assert_eq!(public_key(&ident).err(), Some(KeyError::WeakKey));
        assert!(decode_hex::<32>("public_key", "zz").is_err());
        assert!(decode_hex::<32>("public_key", &"ab".repeat(31)).is_err());
    }
}
