//! `rustchain wallet` end to end, through the binary: new -> address -> import of the same words
//! gives the same address; the key file is private; secrets stay off stdout unless asked for.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn wallet(args: &[&str], passphrase: Option<&str>, stdin: &str) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rustchain"));
    cmd.arg("wallet").args(args).env_remove("RUSTCHAIN_WALLET").env_remove("RUSTCHAIN_WALLET_PASSPHRASE");
    if let Some(p) = passphrase {
        cmd.env("RUSTCHAIN_WALLET_PASSPHRASE", p);
    }
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn ok(out: Output) -> String {
    assert!(out.status.success(), "failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn field<'a>(stdout: &'a str, name: &str) -> &'a str {
    stdout.lines().find_map(|l| l.strip_prefix(name)).unwrap_or_else(|| panic!("no {name} in {stdout}")).trim()
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn new_then_address_then_import_gives_the_same_address() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.json"), dir.path().join("b.json"));

    let created = ok(wallet(&["new", "--wallet", path_str(&a), "--show-mnemonic"], Some("pw one"), ""));
    let address = field(&created, "address:").to_owned();
    let words = field(&created, "mnemonic:").to_owned();
    assert!(address.starts_with("RTC") && address.len() == 43, "{address}");
    assert_eq!(words.split_whitespace().count(), 24);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&a).unwrap().permissions().mode() & 0o777, 0o600);
    }
    // The file holds no word in clear.
    let text = std::fs::read_to_string(&a).unwrap();
    assert!(words.split_whitespace().all(|w| !text.contains(&format!("\"{w}\""))));

    assert_eq!(ok(wallet(&["address", "--wallet", path_str(&a)], None, "")).trim(), address);

    // Import from stdin, with the passphrase from a file this time.
    let pass_file = dir.path().join("pass");
    std::fs::write(&pass_file, "pw two\n").unwrap();
    let imported = ok(wallet(&["import", "--wallet", path_str(&b), "--passphrase-file", path_str(&pass_file)], None,
                             &format!("{}\n", words.to_uppercase())));
    assert_eq!(field(&imported, "address:"), address);
    assert!(!imported.contains(&words), "import does not echo the words");
    assert_eq!(ok(wallet(&["address", "--wallet", path_str(&b)], None, "")).trim(), address);

    // Showing the words needs the right passphrase.
    let shown = ok(wallet(&["address", "--wallet", path_str(&b), "--show-mnemonic"], Some("pw two"), ""));
    assert_eq!(field(&shown, "mnemonic:"), words);
    let wrong = wallet(&["address", "--wallet", path_str(&b), "--show-mnemonic"], Some("pw one"), "");
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("wrong passphrase"));
}

#[test]
fn secrets_are_not_printed_and_mistakes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.json");
    let created = ok(wallet(&["new", "--wallet", path_str(&a)], Some("pw"), ""));
    assert!(!created.contains("mnemonic"), "{created}");
    assert_eq!(created.lines().count(), 3, "{created}");

    // No overwrite, no empty passphrase, no passphrase without a terminal, no bad words.
    let again = wallet(&["new", "--wallet", path_str(&a)], Some("pw"), "");
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let b = dir.path().join("b.json");
    let empty = wallet(&["new", "--wallet", path_str(&b)], Some(""), "");
    assert!(String::from_utf8_lossy(&empty.stderr).contains("must not be empty"));
    let none = wallet(&["new", "--wallet", path_str(&b)], None, "");
    assert!(String::from_utf8_lossy(&none.stderr).contains("RUSTCHAIN_WALLET_PASSPHRASE"));
    let bad = wallet(&["import", "--wallet", path_str(&b)], Some("pw"), "abandon abandon abandon\n");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not valid BIP39"));
    assert!(!b.exists());
}

#[test]
fn sign_transfer_prints_a_body_the_protocol_verifier_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.json");
    let address = field(&ok(wallet(&["new", "--wallet", path_str(&a)], Some("pw"), "")), "address:").to_owned();
    let to = "RTCabababababababababababababababababababab";
    let out = ok(wallet(&["sign-transfer", "--wallet", path_str(&a), "--to", to, "--amount", "1.005", "--nonce", "42",
                          "--memo", "rent", "--chain-id", "devnet"], Some("pw"), ""));
    let spec = protocol::ChainSpec::builtin("devnet").unwrap();
    let t = protocol::transfer::parse_transfer(&spec, out.trim().as_bytes()).unwrap();
    assert_eq!((t.from_address.as_str(), t.to_address.as_str(), t.nonce, t.memo.as_str()), (address.as_str(), to, 42, "rent"));
    assert_eq!(t.amount_i64, 1_004_999, "floor(1.005 * 1e6) as the reference computes it");
    assert_eq!(t.chain_id.as_deref(), Some("devnet"));
    // Signed for devnet: another network refuses it.
    let main = protocol::ChainSpec::builtin("mainnet").unwrap();
    assert_eq!(protocol::transfer::parse_transfer(&main, out.trim().as_bytes()).unwrap_err().code(), "WRONG_CHAIN_ID");
    // Too small an amount and a wrong passphrase are refused before anything is printed.
    let small = wallet(&["sign-transfer", "--wallet", path_str(&a), "--to", to, "--amount", "0.0000001", "--nonce", "1"], Some("pw"), "");
    assert!(!small.status.success() && small.stdout.is_empty());
    let wrong = wallet(&["sign-transfer", "--wallet", path_str(&a), "--to", to, "--amount", "1", "--nonce", "1"], Some("nope"), "");
    assert!(!wrong.status.success() && String::from_utf8_lossy(&wrong.stderr).contains("wrong passphrase"));
}
