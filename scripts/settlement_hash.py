#!/usr/bin/env python3
"""Recompute a RustChain settlement hash from the record's JSON form, with the Python standard
library only, following docs/PROTOCOL.md ("Settlement record and hash"). An independent check of
the Rust implementation and of the spec.

  scripts/settlement_hash.py record.json          # the record, or {"record": ..., "settlement_hash": ...}
  curl -s localhost:8099/api/epoch/N/settlement | scripts/settlement_hash.py -

Prints the canonical CBOR as hex and the SHA-256; exits 1 if the input carries a settlement_hash that
does not match.
"""
import hashlib
import json
import sys


def head(major, n):
    """CBOR head: major type and argument in the shortest form (RFC 8949 section 3)."""
    if n < 24:
        return bytes([major << 5 | n])
    for info, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if n < 1 << (8 * size):
            return bytes([major << 5 | info]) + n.to_bytes(size, "big")
    raise ValueError("integer too large")


def uint(n):
    assert isinstance(n, int) and 0 <= n < 1 << 64
    return head(0, n)


def text(s):
    b = s.encode("utf-8")
    return head(3, len(b)) + b


def bstr(b):
    return head(2, len(b)) + b


def fields(pairs):
    """A map with text keys, in the given order."""
    out = head(5, len(pairs))
    for k, v in pairs:
        out += text(k) + v
    return out


def canonical(record):
    entries = head(4, len(record["entries"]))
    for e in record["entries"]:
        entries += fields([("miner", text(e["miner"])), ("weight", uint(e["weight"])),
                           ("share_urtc", uint(e["share_urtc"]))])
    transfers = head(4, len(record["transfers"]))
    for t in record["transfers"]:
        transfers += fields([("tx_hash", text(t["tx_hash"])), ("from", text(t["from"])), ("to", text(t["to"])),
                             ("amount_urtc", uint(t["amount_urtc"])), ("nonce", uint(t["nonce"])),
                             ("result", text(t["result"]))])
    changes = head(4, len(record["transfer_changes"]))
    for c in record["transfer_changes"]:
        changes += fields([("address", text(c["address"])), ("credit_urtc", uint(c["credit_urtc"])),
                           ("debit_urtc", uint(c["debit_urtc"]))])
    bindings = head(4, len(record["bindings"]))
    for b in record["bindings"]:
        bindings += fields([("kind", text(b["kind"])), ("key", text(b["key"])), ("owner", text(b["owner"]))])
    return fields([
        ("version", uint(record["version"])),
        ("network_id", text(record["network_id"])),
        ("epoch", uint(record["epoch"])),
        ("pot_urtc", uint(record["pot_urtc"])),
        ("prev_settlement_hash", bstr(bytes.fromhex(record["prev_settlement_hash"]))),
        ("total_weight", uint(record["total_weight"])),
        ("distributed_urtc", uint(record["distributed_urtc"])),
        ("entries", entries),
        ("transfers", transfers),
        ("transfer_changes", changes),
        ("bindings", bindings),
    ])


def main():
    src = sys.stdin if len(sys.argv) < 2 or sys.argv[1] == "-" else open(sys.argv[1])
    doc = json.load(src)
    record = doc.get("record", doc)
    assert record["version"] == 3, "this script knows settlement record version 3"
    cbor = canonical(record)
    digest = hashlib.sha256(cbor).hexdigest()
    print("cbor", cbor.hex())
    print("settlement_hash", digest)
    claimed = doc.get("settlement_hash")
    if claimed is not None and claimed != digest:
        print(f"MISMATCH: document says {claimed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
