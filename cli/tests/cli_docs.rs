//! docs/CLI.md is generated from `--help`; it must match the binary.

use std::process::Command;

#[test]
fn cli_reference_matches_the_binary() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let committed = std::fs::read_to_string(format!("{root}/docs/CLI.md")).expect("docs/CLI.md exists");
    let tmp = tempfile::tempdir().unwrap();
    // Run the generator against this build, into a scratch copy of the repo layout.
    std::fs::create_dir_all(tmp.path().join("docs")).unwrap();
    std::fs::create_dir_all(tmp.path().join("scripts")).unwrap();
    std::fs::copy(format!("{root}/scripts/gen-cli-docs.sh"), tmp.path().join("scripts/gen-cli-docs.sh")).unwrap();
    let status = Command::new("bash")
        .arg(tmp.path().join("scripts/gen-cli-docs.sh"))
        .env("RUSTCHAIN_BIN", env!("CARGO_BIN_EXE_rustchain"))
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let fresh = std::fs::read_to_string(tmp.path().join("docs/CLI.md")).unwrap();
    assert!(fresh == committed, "docs/CLI.md is stale: run scripts/gen-cli-docs.sh and commit the result");
}
