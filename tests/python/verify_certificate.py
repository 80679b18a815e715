"""An independent eddsa-jcs-2022 verifier: Python `cryptography` for Ed25519, the `jcs`
package for RFC 8785 canonical JSON and `base58` for multibase, following the W3C "Data
Integrity EdDSA Cryptosuites" verification algorithm. It shares no code with the service.

Usage: verify_certificate.py CERT.json KEYS.json TAMPERED.json VECTORS_DIR
Prints one verdict line per document; exits non-zero on any unexpected verdict.
"""

import hashlib
import json
import sys

import base58
import jcs
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

ED25519_PUB = b"\xed\x01"


def public_key(multibase):
    if not multibase.startswith("z"):
        raise ValueError("not base58btc multibase")
    raw = base58.b58decode(multibase[1:])
    if raw[:2] != ED25519_PUB or len(raw) != 34:
        raise ValueError("not an Ed25519 Multikey")
    return Ed25519PublicKey.from_public_bytes(raw[2:])


def verify(document, key_for):
    """VALID, TAMPERED or UNKNOWN_KEY for a secured document."""
    document = dict(document)
    proof = dict(document.pop("proof", {}))
    if proof.get("type") != "DataIntegrityProof" or proof.get("cryptosuite") != "eddsa-jcs-2022":
        return "TAMPERED"
    proof_value = proof.pop("proofValue", "")
    # The issuer signs its documents whole: the contexts must be the proof's exactly.
    if "@context" in proof and document.get("@context") != proof["@context"]:
        return "TAMPERED"
    key = key_for(proof.get("verificationMethod", ""))
    if key is None:
        return "UNKNOWN_KEY"
    hash_data = hashlib.sha256(jcs.canonicalize(proof)).digest() + hashlib.sha256(
        jcs.canonicalize(document)
    ).digest()
    try:
        key.verify(base58.b58decode(proof_value[1:]), hash_data)
    except (InvalidSignature, ValueError):
        return "TAMPERED"
    return "VALID"


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def main():
    cert_path, keys_path, tampered_path, vectors = sys.argv[1:5]
    keys = {k["keyId"]: public_key(k["publicKeyMultibase"]) for k in load(keys_path)["keys"]}

    def issuer_key(method):
        return keys.get(method.rpartition("#")[2])

    pair = load(f"{vectors}/keyPair.json")
    vector_key = public_key(pair["publicKeyMultibase"])
    results = [
        ("w3c vector", verify(load(f"{vectors}/signedJCS.json"), lambda m: vector_key), "VALID"),
        ("certificate", verify(load(cert_path), issuer_key), "VALID"),
        ("tampered", verify(load(tampered_path), issuer_key), "TAMPERED"),
    ]
    ok = True
    for label, verdict, expected in results:
        print(f"{label}: {verdict}")
        ok = ok and verdict == expected
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
