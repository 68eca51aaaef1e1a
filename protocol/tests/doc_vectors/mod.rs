//! Reads the test vectors of docs/PROTOCOL.md: every fenced block opened by ```` ```vectors ````.
//! Shared by `protocol/tests/protocol_md_vectors.rs` and `crdt/tests/protocol_md_vectors.rs`.
//!
//! The format (docs/PROTOCOL.md, introduction): one `name: value` a line; a line that starts with
//! a space continues the value of the line before (the pieces are joined without the leading
//! spaces); `#` starts a comment line. A value is hex bytes, a decimal integer, text between the
//! line's first and last double quote (taken literally, no escapes), or a JSON value. The name
//! says which; a name may appear once, except where a test reads it as a list.

#![allow(dead_code)] // each test binary uses part of it

use std::cell::RefCell;
use std::collections::BTreeSet;

pub struct Vectors {
    entries: Vec<(String, String)>,
    read: RefCell<BTreeSet<String>>,
}

pub fn parse(doc: &str) -> Vectors {
    let mut entries: Vec<(String, String)> = Vec::new();
    let mut inside = false;
    for (n, line) in doc.lines().enumerate() {
        let n = n + 1;
        if !inside {
            inside = line.trim_end() == "```vectors";
            continue;
        }
        if line.starts_with("```") {
            inside = false;
            continue;
        }
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with(' ') {
            let last = entries.last_mut().unwrap_or_else(|| panic!("line {n}: a continuation with nothing before it"));
            last.1.push_str(line.trim());
            continue;
        }
        let (name, value) = line.split_once(": ").unwrap_or_else(|| panic!("line {n}: not `name: value`: {line}"));
        assert!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || "._".contains(c)),
            "line {n}: bad vector name {name:?}"
        );
        entries.push((name.to_owned(), value.trim().to_owned()));
    }
    assert!(!inside, "an unclosed ```vectors block");
    Vectors { entries, read: RefCell::new(BTreeSet::new()) }
}

impl Vectors {
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(n, _)| n.as_str())
    }

    /// Every value named `name`, in document order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.read.borrow_mut().insert(name.to_owned());
        self.entries.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect()
    }

    /// The one value named `name`.
    pub fn raw(&self, name: &str) -> &str {
        match self.all(name)[..] {
            [v] => v,
            [] => panic!("docs/PROTOCOL.md has no vector {name}"),
            _ => panic!("docs/PROTOCOL.md names vector {name} more than once"),
        }
    }

    pub fn text(&self, name: &str) -> String {
        let v = self.raw(name);
        assert!(v.len() >= 2 && v.starts_with('"') && v.ends_with('"'), "{name}: text must be in double quotes");
        v[1..v.len() - 1].to_owned()
    }

    pub fn uint(&self, name: &str) -> u64 {
        let v = self.raw(name);
        v.parse().unwrap_or_else(|_| panic!("{name}: {v:?} is not a decimal integer"))
    }

    pub fn hex(&self, name: &str) -> Vec<u8> {
        decode(name, self.raw(name))
    }

    pub fn hex_n<const N: usize>(&self, name: &str) -> [u8; N] {
        let v = self.hex(name);
        v.clone().try_into().unwrap_or_else(|_| panic!("{name}: {} bytes, {N} expected", v.len()))
    }

    pub fn all_hex(&self, name: &str) -> Vec<Vec<u8>> {
        self.all(name).into_iter().map(|v| decode(name, v)).collect()
    }

    /// Names with `prefix` that no test read: a vector nobody checks is a failure too.
    pub fn unread(&self, prefix: &str) -> Vec<String> {
        let read = self.read.borrow();
        self.names().filter(|n| n.starts_with(prefix) && !read.contains(*n)).map(str::to_owned).collect()
    }
}

fn decode(name: &str, v: &str) -> Vec<u8> {
    assert!(v.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "{name}: hex must be lower-case: {v}");
    hex::decode(v).unwrap_or_else(|e| panic!("{name}: not hex ({e}): {v}"))
}

/// Compare a computed value with the document's; on a difference, say both.
pub fn expect_hex(v: &Vectors, name: &str, computed: &[u8]) {
    let documented = v.hex(name);
    assert!(
        documented == computed,
        "docs/PROTOCOL.md vector {name} differs from what the code computes\n  document: {}\n  computed: {}",
        hex::encode(&documented),
        hex::encode(computed)
    );
}
