//! Shared by the fuzz harnesses (protocol/tests/fuzz_decoders.rs, node/tests/fuzz_node_decoders.rs):
//! the case count and the mutations of valid inputs.
#![allow(dead_code)]

use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::json;

/// Cases per target: `FUZZ_CASES` (default 256, so the normal test run stays fast).
pub fn cases() -> u32 {
    std::env::var("FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256)
}

pub fn config() -> Config {
    Config { cases: cases(), failure_persistence: None, ..Config::default() }
}

// ---------------------------------------------------------------------------------------------
// Mutations.

#[derive(Clone, Debug)]
pub enum ByteEdit {
    Flip(usize, u8),
    Set(usize, u8),
    Insert(usize, Vec<u8>),
    Remove(usize, usize),
    Duplicate(usize, usize, usize),
    Truncate(usize),
}

pub fn byte_edit() -> impl Strategy<Value = ByteEdit> {
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(i, m)| ByteEdit::Flip(i, m)),
        (any::<usize>(), prop_oneof![any::<u8>(), Just(b'"'), Just(b'\\'), Just(b'{'), Just(b']'), Just(0xff), Just(0x00)])
            .prop_map(|(i, b)| ByteEdit::Set(i, b)),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16)).prop_map(|(i, v)| ByteEdit::Insert(i, v)),
        (any::<usize>(), 1usize..64).prop_map(|(i, n)| ByteEdit::Remove(i, n)),
        (any::<usize>(), 1usize..64, any::<usize>()).prop_map(|(i, n, at)| ByteEdit::Duplicate(i, n, at)),
        any::<usize>().prop_map(ByteEdit::Truncate),
    ]
}

pub fn apply(mut bytes: Vec<u8>, edits: &[ByteEdit]) -> Vec<u8> {
    for e in edits {
        let len = bytes.len();
        if len == 0 {
            bytes.push(b'{');
            continue;
        }
        match e {
            ByteEdit::Flip(i, m) => bytes[i % len] ^= m,
            ByteEdit::Set(i, b) => bytes[i % len] = *b,
            ByteEdit::Insert(i, v) => {
                let at = i % (len + 1);
                bytes.splice(at..at, v.iter().copied());
            }
            ByteEdit::Remove(i, n) => {
                let at = i % len;
                let end = (at + n).min(len);
                bytes.drain(at..end);
            }
            ByteEdit::Duplicate(i, n, to) => {
                let at = i % len;
                let chunk: Vec<u8> = bytes[at..(at + n).min(len)].to_vec();
                let to = to % (len + 1);
                bytes.splice(to..to, chunk);
            }
            ByteEdit::Truncate(i) => bytes.truncate(i % len),
        }
    }
    bytes
}

/// Arbitrary JSON values, including the awkward ones: big and negative integers, floats of
/// arbitrary bit patterns, non-ASCII and control characters, deep nesting.
pub fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        any::<u64>().prop_map(|i| json!(i)),
        any::<f64>().prop_filter_map("finite", |f| f.is_finite().then(|| json!(f))),
        prop_oneof![Just(0.0f64), Just(-0.0), Just(1e16), Just(1e-5), Just(0.0001), Just(f64::MIN_POSITIVE), Just(f64::MAX), Just(5e-324)]
            .prop_map(|f| json!(f)),
        ".{0,12}".prop_map(serde_json::Value::String),
        "[\\x00-\\x1f\"\\\\\u{80}-\u{10ffff}]{0,6}".prop_map(serde_json::Value::String),
    ];
    leaf.prop_recursive(6, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

