//! Data Integrity proofs with the `eddsa-jcs-2022` cryptosuite (W3C "Data Integrity
//! EdDSA Cryptosuites v1.0", §3.3): Ed25519 over the SHA-256 hashes of the
//! JCS-canonical proof configuration and document, and Ed25519 public keys in the W3C
//! Multikey form, so any conforming verifier accepts what this service signs.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::jcs::canonicalize;

/// The proof type and cryptosuite this module produces and checks.
pub const PROOF_TYPE: &str = "DataIntegrityProof";
pub const CRYPTOSUITE: &str = "eddsa-jcs-2022";

/// Multicodec prefix of an Ed25519 public key (0xed, varint-encoded).
const ED25519_PUB: [u8; 2] = [0xed, 0x01];
/// Multicodec prefix of an Ed25519 private key (0x1300, varint-encoded).
const ED25519_PRIV: [u8; 2] = [0x80, 0x26];

/// An Ed25519 public key as a Multikey `publicKeyMultibase` ("z6Mk…").
pub fn public_key_multibase(key: &VerifyingKey) -> String {
    let mut bytes = ED25519_PUB.to_vec();
    bytes.extend_from_slice(key.as_bytes());
    format!("z{}", bs58::encode(bytes).into_string())
}

/// Reads a Multikey `publicKeyMultibase`.
pub fn parse_public_key(multibase: &str) -> Result<VerifyingKey, String> {
    let bytes = multibase_bytes(multibase, ED25519_PUB)?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| "not a valid Ed25519 public key".to_string())
}

/// Reads a Multikey `secretKeyMultibase` (how the W3C test vectors give their key).
pub fn parse_secret_key(multibase: &str) -> Result<SigningKey, String> {
    Ok(SigningKey::from_bytes(&multibase_bytes(
        multibase,
        ED25519_PRIV,
    )?))
}

fn multibase_bytes(multibase: &str, prefix: [u8; 2]) -> Result<[u8; 32], String> {
    let encoded = multibase
        .strip_prefix('z')
        .ok_or("must be base58btc multibase (start with 'z')")?;
    let bytes = bs58::decode(encoded)
        .into_vec()
        .map_err(|_| "is not valid base58btc".to_string())?;
    match bytes.split_first_chunk::<2>() {
        Some((p, key)) if *p == prefix && key.len() == 32 => {
            Ok(key.try_into().expect("length checked"))
        }
        _ => Err("is not an Ed25519 Multikey".into()),
    }
}

/// What a new proof says besides its signature.
#[derive(Debug, Clone)]
pub struct ProofOptions {
    /// URL of the key, `{controller}#{key id}`.
    pub verification_method: String,
    /// When the proof was made, `YYYY-MM-DDThh:mm:ssZ`.
    pub created: String,
}

/// `document` (a JSON object without `proof`) with an `eddsa-jcs-2022` proof by `key`
/// added (spec §3.3.1 "Create Proof").
pub fn sign(document: &Map<String, Value>, options: &ProofOptions, key: &SigningKey) -> Value {
    let mut proof = Map::new();
    proof.insert("type".into(), PROOF_TYPE.into());
    proof.insert("cryptosuite".into(), CRYPTOSUITE.into());
    proof.insert("created".into(), options.created.clone().into());
    proof.insert(
        "verificationMethod".into(),
        options.verification_method.clone().into(),
    );
    proof.insert("proofPurpose".into(), "assertionMethod".into());
    if let Some(context) = document.get("@context") {
        proof.insert("@context".into(), context.clone());
    }
    let signature = key.sign(&hash_data(&proof, document));
    proof.insert(
        "proofValue".into(),
        format!("z{}", bs58::encode(signature.to_bytes()).into_string()).into(),
    );
    let mut secured = document.clone();
    secured.insert("proof".into(), Value::Object(proof));
    Value::Object(secured)
}

/// SHA-256 of the canonical proof configuration followed by SHA-256 of the canonical
/// document (spec §3.3.4 "Hashing"): 64 bytes, the message Ed25519 signs.
fn hash_data(proof_config: &Map<String, Value>, document: &Map<String, Value>) -> Vec<u8> {
    let config = canonicalize(&Value::Object(proof_config.clone()));
    let doc = canonicalize(&Value::Object(document.clone()));
    let mut out = Sha256::digest(config.as_bytes()).to_vec();
    out.extend_from_slice(&Sha256::digest(doc.as_bytes()));
    out
}

/// Why a document's proof does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The document or its proof is not what the cryptosuite expects.
    #[error("malformed: {0}")]
    Malformed(String),
    /// The proof names a key the verifier does not know.
    #[error("unknown key {0}")]
    UnknownKey(String),
    /// The signature does not match the content: something was changed.
    #[error("the signature does not match the content")]
    BadSignature,
}

/// A proof that held: the key it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub verification_method: String,
}

/// Checks the `eddsa-jcs-2022` proof of `secured` (spec §3.3.2 "Verify Proof"),
/// resolving its `verificationMethod` through `key_for`.
pub fn verify(
    secured: &Value,
    key_for: impl Fn(&str) -> Option<VerifyingKey>,
) -> Result<Verified, ProofError> {
    let malformed = |what: &str| ProofError::Malformed(what.to_string());
    let mut document = secured
        .as_object()
        .ok_or_else(|| malformed("the document is not a JSON object"))?
        .clone();
    let proof = match document.remove("proof") {
        Some(Value::Object(p)) => p,
        Some(_) => return Err(malformed("`proof` is not a single proof object")),
        None => return Err(malformed("the document has no `proof`")),
    };
    let text = |name: &str| proof.get(name).and_then(Value::as_str);
    if text("type") != Some(PROOF_TYPE) || text("cryptosuite") != Some(CRYPTOSUITE) {
        return Err(malformed(
            "the proof is not a DataIntegrityProof with cryptosuite eddsa-jcs-2022",
        ));
    }
    let method = text("verificationMethod")
        .ok_or_else(|| malformed("the proof has no verificationMethod"))?
        .to_string();
    let proof_value = text("proofValue")
        .ok_or_else(|| malformed("the proof has no proofValue"))?
        .to_string();
    let mut options = proof;
    options.remove("proofValue");
    if let Some(context) = options.get("@context") {
        // The suite lets a holder append contexts after signing; this issuer signs its
        // documents whole, and an appended context could give a signed statement's
        // terms another meaning while the proof still held. So the contexts must be
        // the proof's exactly.
        if document.get("@context") != Some(context) {
            return Err(malformed(
                "the document's @context is not exactly the proof's",
            ));
        }
    }
    let key = key_for(&method).ok_or_else(|| ProofError::UnknownKey(method.clone()))?;
    // Checked before decoding: base58 decodes in time quadratic in its length, and
    // anyone may send a document (64 bytes are at most 88 characters).
    let signature = proof_value
        .strip_prefix('z')
        .filter(|s| s.len() <= MAX_SIGNATURE_BASE58)
        .and_then(|s| bs58::decode(s).into_vec().ok())
        .and_then(|b| <[u8; 64]>::try_from(b).ok())
        .map(|b| Signature::from_bytes(&b))
        .ok_or_else(|| malformed("proofValue is not a base58btc Ed25519 signature"))?;
    key.verify(&hash_data(&options, &document), &signature)
        .map_err(|_| ProofError::BadSignature)?;
    Ok(Verified {
        verification_method: method,
    })
}

/// The longest base58 text of a 64-byte Ed25519 signature.
const MAX_SIGNATURE_BASE58: usize = 88;

#[cfg(test)]
mod tests {
    use super::*;

    /// The signed credential and key pair the W3C specification publishes as its
    /// eddsa-jcs-2022 test vector (w3c/vc-di-eddsa, TestVectors/).
    const SIGNED: &str = include_str!("../../tests/vectors/eddsa-jcs-2022/signedJCS.json");
    const KEY_PAIR: &str = include_str!("../../tests/vectors/eddsa-jcs-2022/keyPair.json");

    fn vector_keys() -> (SigningKey, VerifyingKey, String) {
        let pair: Value = serde_json::from_str(KEY_PAIR).unwrap();
        let public = pair["publicKeyMultibase"].as_str().unwrap().to_string();
        let secret = parse_secret_key(pair["privateKeyMultibase"].as_str().unwrap()).unwrap();
        (secret, parse_public_key(&public).unwrap(), public)
    }

    #[test]
    fn the_w3c_test_vector_verifies() {
        let (_, public, multibase) = vector_keys();
        let doc: Value = serde_json::from_str(SIGNED).unwrap();
        let verified = verify(&doc, |m| m.ends_with(&multibase).then_some(public)).unwrap();
        assert!(verified.verification_method.ends_with(&multibase));
    }

    #[test]
    fn signing_the_w3c_test_document_reproduces_its_proof_value() {
        // Ed25519 is deterministic: same key, same hashes, same signature.
        let (secret, _, multibase) = vector_keys();
        assert_eq!(public_key_multibase(&secret.verifying_key()), multibase);
        let mut doc: Value = serde_json::from_str(SIGNED).unwrap();
        let expected = doc["proof"]["proofValue"].clone();
        let proof = doc.as_object_mut().unwrap().remove("proof").unwrap();
        let options = ProofOptions {
            verification_method: proof["verificationMethod"].as_str().unwrap().into(),
            created: proof["created"].as_str().unwrap().into(),
        };
        let signed = sign(doc.as_object().unwrap(), &options, &secret);
        assert_eq!(signed["proof"]["proofValue"], expected);
    }

    #[test]
    fn any_change_breaks_the_proof_and_unknown_keys_are_named() {
        let (_, public, _) = vector_keys();
        let mut doc: Value = serde_json::from_str(SIGNED).unwrap();
        doc["credentialSubject"]["alumniOf"] = "The School of Exampels".into();
        assert_eq!(
            verify(&doc, |_| Some(public)),
            Err(ProofError::BadSignature)
        );
        let doc: Value = serde_json::from_str(SIGNED).unwrap();
        assert!(matches!(
            verify(&doc, |_| None),
            Err(ProofError::UnknownKey(_))
        ));
        let mut doc: Value = serde_json::from_str(SIGNED).unwrap();
        doc["proof"]["cryptosuite"] = "eddsa-rdfc-2022".into();
        assert!(matches!(
            verify(&doc, |_| Some(public)),
            Err(ProofError::Malformed(_))
        ));
        // A proofValue far longer than any signature is refused before decoding
        // (decoding takes time quadratic in its length).
        let mut doc: Value = serde_json::from_str(SIGNED).unwrap();
        doc["proof"]["proofValue"] = format!("z{}", "z".repeat(250_000)).into();
        assert!(matches!(
            verify(&doc, |_| Some(public)),
            Err(ProofError::Malformed(_))
        ));
        // A context appended after signing.
        let mut doc: Value = serde_json::from_str(SIGNED).unwrap();
        doc["@context"]
            .as_array_mut()
            .unwrap()
            .push("https://evil.example/ctx".into());
        assert!(matches!(
            verify(&doc, |_| Some(public)),
            Err(ProofError::Malformed(_))
        ));
    }

    #[test]
    fn multikeys_round_trip_and_reject_other_codecs() {
        let (secret, public, _) = vector_keys();
        let text = public_key_multibase(&public);
        assert!(text.starts_with("z6Mk"));
        assert_eq!(parse_public_key(&text).unwrap(), public);
        let secret_as_public = {
            let mut b = ED25519_PRIV.to_vec();
            b.extend_from_slice(&secret.to_bytes());
            format!("z{}", bs58::encode(b).into_string())
        };
        assert!(parse_public_key(&secret_as_public).is_err());
        assert!(parse_public_key("u6Mk").is_err());
    }
}
