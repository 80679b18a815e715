//! The audit log's rules: what an entry records, how each entry's hash covers the one
//! before it, what a signed checkpoint says, and how a chain is checked end to end.
//! Storage, signing keys and the writer live in `store::audit` and `crate::audit`.

use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

use super::codes::Purpose;

/// The `previous_hash` of the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What one call did, as the audit log keeps it. Subjects are resource names
/// (`enterprises/{uscc}`, `persons/{person_key}`), never an ID number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// Milliseconds since the Unix epoch.
    pub time: i64,
    /// The calling agency's id; empty when the caller was not identified.
    pub agency: String,
    /// Full gRPC method, `/package.Service/Method`.
    pub method: String,
    pub request_id: String,
    pub subjects: Vec<String>,
    pub purpose: Option<Purpose>,
    pub case_reference: String,
    /// gRPC status code name, e.g. `OK`, `PERMISSION_DENIED`.
    pub outcome: String,
    /// Items returned or written.
    pub result_count: i64,
}

/// An event at its place in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub seq: i64,
    pub event: AuditEvent,
    pub previous_hash: String,
    pub hash: String,
}

impl AuditEvent {
    /// The bytes an entry's hash covers besides the previous hash: a JSON array of every
    /// field in a fixed order (serde_json writes it the same way every time).
    fn canonical(&self, seq: i64) -> String {
        // A tuple serializes as the same compact JSON array a `json!` array would, without
        // copying every subject into a `Value` first (a cross-check names 10,000).
        serde_json::to_string(&(
            seq,
            self.time,
            &self.agency,
            &self.method,
            &self.request_id,
            &self.subjects,
            self.purpose.map(Purpose::code),
            &self.case_reference,
            &self.outcome,
            self.result_count,
        ))
        .expect("strings and numbers always serialize")
    }
}

/// SHA-256 over the previous hash, a newline and the entry's canonical content, in
/// lowercase hex.
pub fn entry_hash(seq: i64, event: &AuditEvent, previous_hash: &str) -> String {
    let mut h = Sha256::new();
    h.update(previous_hash.as_bytes());
    h.update(b"\n");
    h.update(event.canonical(seq).as_bytes());
    hex::encode(h.finalize())
}

/// A signed statement that the chain's entry `seq` had hash `hash` at `time`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub seq: i64,
    pub hash: String,
    /// Milliseconds since the Unix epoch.
    pub time: i64,
    /// Ed25519 public key of the signer, lowercase hex.
    pub public_key: String,
    /// Ed25519 signature over [`Checkpoint::message`], lowercase hex.
    pub signature: String,
}

impl Checkpoint {
    /// The bytes a checkpoint's signature covers.
    pub fn message(seq: i64, hash: &str, time: i64) -> Vec<u8> {
        format!("credit-hub audit checkpoint\n{seq}\n{hash}\n{time}").into_bytes()
    }

    /// Whether the signature is valid for the stated public key.
    pub fn signature_holds(&self) -> bool {
        let key = hex::decode(&self.public_key)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .and_then(|b| VerifyingKey::from_bytes(&b).ok());
        let sig = hex::decode(&self.signature)
            .ok()
            .and_then(|b| <[u8; 64]>::try_from(b).ok())
            .map(|b| Signature::from_bytes(&b));
        match (key, sig) {
            (Some(key), Some(sig)) => key
                .verify(&Self::message(self.seq, &self.hash, self.time), &sig)
                .is_ok(),
            _ => false,
        }
    }
}

/// The first thing wrong with a chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    #[error("audit entry {expected} is missing (the next entry found is {found})")]
    Missing { expected: i64, found: i64 },
    #[error("audit entry {seq} was altered: its content no longer matches its hash")]
    Altered { seq: i64 },
    /// A stored value that no release writes (a time that is not a number, an unknown
    /// purpose code): altered, or written by a newer release than the one verifying.
    #[error("audit entry {seq} was altered: {why}")]
    Unreadable { seq: i64, why: String },
    #[error("audit entry {seq} does not follow entry {}: its previous_hash is wrong", seq - 1)]
    Relinked { seq: i64 },
    #[error("audit entry {seq} is missing: a checkpoint covers it but the chain ends at {head}")]
    Truncated { seq: i64, head: i64 },
    #[error("checkpoint at entry {seq} does not match the chain: {why}")]
    Checkpoint { seq: i64, why: String },
    /// The "who looked at this subject" index disagrees with the entry it points to:
    /// a search by subject would miss the entry, or find one that does not name it.
    #[error("the subject index of audit entry {seq} was altered: {why}")]
    SubjectIndex { seq: i64, why: String },
}

/// Walks a chain in sequence order, entry by entry, remembering only the head, so a
/// chain of any length is checked in constant memory.
#[derive(Debug, Clone)]
pub struct ChainCheck {
    next_seq: i64,
    head_hash: String,
}

impl Default for ChainCheck {
    fn default() -> Self {
        ChainCheck {
            next_seq: 1,
            head_hash: GENESIS_HASH.to_string(),
        }
    }
}

impl ChainCheck {
    /// A walk that continues a chain already known to hold up to entry `seq`, whose
    /// hash is `hash`.
    pub fn after(seq: i64, hash: &str) -> Self {
        ChainCheck {
            next_seq: seq + 1,
            head_hash: hash.to_string(),
        }
    }

    /// Checks the next entry.
    pub fn push(&mut self, entry: &AuditEntry) -> Result<(), ChainBreak> {
        if entry.seq != self.next_seq {
            return Err(ChainBreak::Missing {
                expected: self.next_seq,
                found: entry.seq,
            });
        }
        if entry.previous_hash != self.head_hash {
            return Err(ChainBreak::Relinked { seq: entry.seq });
        }
        if entry_hash(entry.seq, &entry.event, &entry.previous_hash) != entry.hash {
            return Err(ChainBreak::Altered { seq: entry.seq });
        }
        self.next_seq += 1;
        self.head_hash = entry.hash.clone();
        Ok(())
    }

    /// Checks that an entry whose content could not be read stands where the next entry
    /// should (an earlier gap is the first break), and reports it.
    pub fn unreadable(&self, seq: i64, why: String) -> ChainBreak {
        if seq != self.next_seq {
            ChainBreak::Missing {
                expected: self.next_seq,
                found: seq,
            }
        } else {
            ChainBreak::Unreadable { seq, why }
        }
    }

    /// The sequence number of the last entry checked (0 before any).
    pub fn head(&self) -> i64 {
        self.next_seq - 1
    }

    /// The hash of the last entry checked (where the walk started, before any).
    pub fn head_hash(&self) -> &str {
        &self.head_hash
    }

    /// Checks a checkpoint against the entry it names, given that entry's stored hash
    /// (None when the chain has no such entry), and that it is signed by one of
    /// `trusted` public keys (hex) when any are given.
    pub fn checkpoint(
        &self,
        cp: &Checkpoint,
        hash_at: Option<&str>,
        trusted: &[String],
    ) -> Result<(), ChainBreak> {
        let fail = |why: &str| ChainBreak::Checkpoint {
            seq: cp.seq,
            why: why.to_string(),
        };
        if !cp.signature_holds() {
            return Err(fail("its signature is invalid"));
        }
        if !trusted.is_empty() && !trusted.contains(&cp.public_key) {
            return Err(fail("it is signed by a key that is not trusted"));
        }
        match hash_at {
            None => Err(ChainBreak::Truncated {
                seq: cp.seq,
                head: self.head(),
            }),
            Some(h) if h != cp.hash => Err(fail("the entry's hash differs from the signed one")),
            Some(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    fn event(n: i64) -> AuditEvent {
        AuditEvent {
            time: 1_700_000_000_000 + n,
            agency: "court-1".into(),
            method: "/credithub.v1.GradeService/GetCreditGrade".into(),
            request_id: String::new(),
            subjects: vec!["enterprises/91371002MA3C8KQX1B".into()],
            purpose: Some(Purpose::JudicialEnforcement),
            case_reference: "(2026)鲁1002执123号".into(),
            outcome: "OK".into(),
            result_count: 1,
        }
    }

    fn chain(n: i64) -> Vec<AuditEntry> {
        let mut prev = GENESIS_HASH.to_string();
        (1..=n)
            .map(|i| {
                let hash = entry_hash(i, &event(i), &prev);
                let e = AuditEntry {
                    seq: i,
                    event: event(i),
                    previous_hash: prev.clone(),
                    hash,
                };
                prev = e.hash.clone();
                e
            })
            .collect()
    }

    fn check(entries: &[AuditEntry]) -> Result<(), ChainBreak> {
        let mut c = ChainCheck::default();
        entries.iter().try_for_each(|e| c.push(e))
    }

    #[test]
    fn an_intact_chain_verifies() {
        assert_eq!(check(&chain(5)), Ok(()));
    }

    #[test]
    fn an_altered_field_names_its_entry() {
        let mut c = chain(5);
        c[2].event.result_count = 2;
        assert_eq!(check(&c), Err(ChainBreak::Altered { seq: 3 }));
    }

    #[test]
    fn a_deleted_entry_is_named() {
        let mut c = chain(5);
        c.remove(3);
        assert_eq!(
            check(&c),
            Err(ChainBreak::Missing {
                expected: 4,
                found: 5
            })
        );
    }

    #[test]
    fn a_rehashed_entry_breaks_the_next_link() {
        let mut c = chain(5);
        c[1].event.outcome = "PERMISSION_DENIED".into();
        c[1].hash = entry_hash(2, &c[1].event, &c[1].previous_hash);
        assert_eq!(check(&c), Err(ChainBreak::Relinked { seq: 3 }));
    }

    #[test]
    fn checkpoints_are_checked_for_signature_key_and_hash() {
        let c = chain(3);
        let mut walk = ChainCheck::default();
        c.iter().for_each(|e| walk.push(e).unwrap());
        let key = SigningKey::from_bytes(&[7; 32]);
        let public = hex::encode(key.verifying_key().to_bytes());
        let sign = |seq: i64, hash: &str| Checkpoint {
            seq,
            hash: hash.to_string(),
            time: 1,
            public_key: public.clone(),
            signature: hex::encode(key.sign(&Checkpoint::message(seq, hash, 1)).to_bytes()),
        };
        let good = sign(2, &c[1].hash);
        assert_eq!(
            walk.checkpoint(&good, Some(&c[1].hash), std::slice::from_ref(&public)),
            Ok(())
        );
        assert!(walk
            .checkpoint(&good, Some(&c[1].hash), &["ab".repeat(32)])
            .is_err());
        assert!(walk.checkpoint(&good, Some(&c[2].hash), &[]).is_err());
        assert_eq!(
            walk.checkpoint(&sign(9, "x"), None, &[]),
            Err(ChainBreak::Truncated { seq: 9, head: 3 })
        );
        let mut forged = good.clone();
        forged.hash = c[2].hash.clone();
        assert!(walk.checkpoint(&forged, Some(&c[2].hash), &[]).is_err());
    }
}
