//! Key files: the node's identity key in its data dir, and wallet keys for the CLI. A key file holds
//! the 32-byte Ed25519 seed as hex and is written with mode 0600.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use protocol::crypto::{Keypair, sha256_parts};

pub const NODE_KEY_FILE: &str = "node_key";

pub fn generate() -> Keypair {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).expect("the OS random source is available");
    Keypair::from_seed(&seed)
}

pub fn read_key(path: &Path) -> anyhow::Result<Keypair> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading key file {}", path.display()))?;
    let seed = protocol::crypto::decode_hex::<32>("key file", text.trim())
        .with_context(|| format!("key file {} must hold 64 hex characters", path.display()))?;
    Ok(Keypair::from_seed(&seed))
}

/// Write a new key file; refuses to overwrite an existing one.
pub fn write_key(path: &Path, key: &Keypair) -> anyhow::Result<()> {
    write_secret_file(path, format!("{}\n", hex::encode(key.seed())).as_bytes())
}

/// Create `path` with mode 0600 (readable by its owner only), write `contents` and sync; refuses
/// to overwrite an existing file. Every file holding a secret is written through here.
pub fn write_secret_file(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path).with_context(|| format!("creating key file {} (it must not exist yet)", path.display()))?;
    f.write_all(contents)?;
    f.sync_all()?;
    Ok(())
}

pub fn node_key_path(data_dir: &Path) -> PathBuf {
    data_dir.join(NODE_KEY_FILE)
}

pub fn load_or_create_node_key(data_dir: &Path) -> anyhow::Result<Keypair> {
    let path = node_key_path(data_dir);
    if path.exists() {
        return read_key(&path);
    }
    if !data_dir.exists() {
        bail!("data dir {} does not exist", data_dir.display());
    }
    let key = generate();
    write_key(&path, &key)?;
    tracing::info!(path = %path.display(), public_key = %hex::encode(key.public()), "generated a new node key");
    Ok(key)
}

/// The secret that authenticates challenge nonces, derived from the node key.
pub fn nonce_secret(key: &Keypair) -> [u8; 32] {
    sha256_parts("rustchain/nonce-secret/v1", &[&key.seed()])
}
