//! The registry root vectors of docs/PROTOCOL.md §11 (its ```` ```vectors ```` blocks, names
//! `registry.*`), recomputed from the document's ids with `crdt::BucketDigest`: the digest every
//! vote signs (§12) and every `INV_EPOCH` carries (§10.2). Editing any byte of them fails here.

#[path = "../../protocol/tests/doc_vectors/mod.rs"]
mod doc_vectors;

use crdt::{BucketDigest, bucket_of};
use doc_vectors::expect_hex;
use protocol::Hash32;
use protocol::crypto::sha256;

#[test]
fn registry_root() {
    let v = doc_vectors::parse(include_str!("../../docs/PROTOCOL.md"));
    let mut ids: Vec<Hash32> = v.all_hex("registry.id").into_iter().map(|id| id.try_into().expect("ids are 32 bytes")).collect();
    assert!(ids.len() >= 3, "a few ids");
    ids.sort_unstable();
    let d = BucketDigest::from_sorted_ids(&ids);
    assert_eq!(d.count, v.uint("registry.count"));
    assert!(d.buckets.len() < ids.len(), "the vector has two ids in one bucket");
    for (bucket, hash) in &d.buckets {
        // §11: one part, the bucket's ids concatenated in ascending order.
        let ids_of: Vec<u8> = ids.iter().filter(|id| bucket_of(id) == *bucket).flatten().copied().collect();
        expect_hex(&v, &format!("registry.bucket.{bucket}"), hash);
        assert_eq!(*hash, protocol::crypto::sha256_parts("rustchain/registry-bucket/v1", &[&ids_of]));
    }
    // §11: two parts, u64be(count) and every (u16be(bucket) ‖ bucket hash) concatenated, written
    // out by hand as §3 frames them.
    let mut pairs = Vec::new();
    for (bucket, hash) in &d.buckets {
        pairs.extend_from_slice(&bucket.to_be_bytes());
        pairs.extend_from_slice(hash);
    }
    let domain = b"rustchain/registry-root/v1";
    let mut preimage = Vec::new();
    for part in [&domain[..], &d.count.to_be_bytes(), &pairs] {
        preimage.extend_from_slice(&(part.len() as u64).to_be_bytes());
        preimage.extend_from_slice(part);
    }
    expect_hex(&v, "registry.root_preimage", &preimage);
    assert_eq!(sha256(&preimage), d.root());
    expect_hex(&v, "registry.root", &d.root());
    expect_hex(&v, "registry.empty_root", &BucketDigest::from_sorted_ids(&[]).root());
    assert_eq!(v.unread("registry."), Vec::<String>::new(), "vectors the test does not read");
}
