//! Which chain heads the audit writer signs. A checkpoint vouches for every entry up to
//! it, so the writer signs only a head it chained itself from a point it trusts, or one
//! whose entries since that point it has read back and checked: that they continue the
//! chain, each hash over its content and the previous hash. Signing whatever head it
//! last read would vouch for a corrupt or broken chain. The check cannot tell who wrote
//! an entry: the hashes are unkeyed, so whoever holds the database's credentials can
//! append well-formed entries after the last checkpoint (or delete the newest entries
//! with their checkpoints), and a later checkpoint then covers them. What the signed
//! checkpoints protect is everything before them, as README says.
//! Another replica's entries are checked the same way, a page at a time.

use std::future::Future;
use std::pin::Pin;

use ed25519_dalek::{Signer, SigningKey};

use super::public_key_hex;
use crate::domain::audit::{Checkpoint, GENESIS_HASH};
use crate::store::{now_millis, Store};

/// An entry of the chain: its sequence number and hash.
pub(super) type Point = (i64, String);

/// A check of the entries between two points, running beside the writer's appends:
/// the point it proved, or `None` when it could not.
pub(super) type Walk = Pin<Box<dyn Future<Output = Option<Point>> + Send>>;

/// The writer's knowledge of the chain head.
#[derive(Debug, Default)]
pub(super) struct Head {
    /// The last entry as this writer knows it; `None` when it must read it again.
    known: Option<Point>,
    /// The head as last read from the database: `known` is it plus this writer's own
    /// groups since.
    anchor: Option<Point>,
    /// Whether `known` continues from `verified` through this writer's groups alone.
    trusted: bool,
    /// The newest entry known to continue the chain from a trusted start: a checkpoint
    /// signed with this writer's key (whose entries a verification walked then), or
    /// the chain's beginning.
    verified: Option<Point>,
}

impl Head {
    /// The head to chain the next group after, when known.
    pub(super) fn known(&self) -> Option<&Point> {
        self.known.as_ref()
    }

    /// The head as just read from the database: trusted only if it is the point
    /// already verified.
    pub(super) fn read(&mut self, head: Point) {
        self.trusted = self.verified.as_ref() == Some(&head);
        self.anchor = Some(head.clone());
        self.known = Some(head);
    }

    /// This writer chained a group after the known head, ending at `head`.
    pub(super) fn advanced(&mut self, head: Point) {
        if self.trusted {
            self.verified = Some(head.clone());
        }
        self.known = Some(head);
    }

    /// The head is no longer known (another process appended, or an append failed).
    pub(super) fn lost(&mut self) {
        self.known = None;
        self.anchor = None;
        self.trusted = false;
    }

    /// The entries to check before the known head can be signed: from the verified
    /// point (`None`: the writer's start, still to be found) to the head last read.
    fn unchecked(&self) -> Option<(Option<Point>, Point)> {
        match (&self.anchor, self.trusted) {
            (Some(anchor), false) => Some((self.verified.clone(), anchor.clone())),
            _ => None,
        }
    }

    /// A walk proved the chain up to `point`.
    fn checked(&mut self, point: Point) {
        if self.anchor.as_ref() == Some(&point) && self.known.is_some() {
            self.trusted = true;
            self.verified = self.known.clone();
        } else if self.verified.as_ref().is_none_or(|v| v.0 < point.0) {
            self.verified = Some(point);
        }
    }
}

/// Signs checkpoints of the verified head.
pub(super) struct Checkpoints {
    key: SigningKey,
    public_key: String,
    /// The newest entry this writer has signed.
    signed: i64,
}

impl Checkpoints {
    pub(super) fn new(key: SigningKey) -> Self {
        Checkpoints {
            public_key: public_key_hex(&key),
            key,
            signed: 0,
        }
    }

    /// The check that must pass before the head can be signed, if one is due.
    pub(super) fn walk(&self, store: &Store, head: &Head) -> Option<Walk> {
        let (from, to) = head.unchecked()?;
        let store = store.clone();
        let public_key = self.public_key.clone();
        Some(Box::pin(async move {
            walk(&store, &public_key, from, to).await
        }))
    }

    /// Takes in what a walk proved, and signs.
    pub(super) async fn walked(&mut self, store: &Store, head: &mut Head, proved: Option<Point>) {
        if let Some(point) = proved {
            head.checked(point);
        }
        self.sign(store, head).await;
    }

    /// Signs and stores the verified head if it moved since the last checkpoint.
    pub(super) async fn sign(&mut self, store: &Store, head: &Head) {
        let Some((seq, hash)) = &head.verified else {
            return;
        };
        if *seq <= self.signed {
            return;
        }
        let time = now_millis();
        let cp = Checkpoint {
            seq: *seq,
            hash: hash.clone(),
            time,
            public_key: self.public_key.clone(),
            signature: hex::encode(
                self.key
                    .sign(&Checkpoint::message(*seq, hash, time))
                    .to_bytes(),
            ),
        };
        match store.add_audit_checkpoint(&cp).await {
            Ok(()) => self.signed = *seq,
            Err(e) => {
                tracing::warn!(error = ?e, "audit checkpoint could not be stored; will retry")
            }
        }
    }
}

/// Checks the entries from `from` (or from this key's newest valid checkpoint, or the
/// chain's beginning) to `to`: the point proved, or `None`.
async fn walk(store: &Store, public_key: &str, from: Option<Point>, to: Point) -> Option<Point> {
    let from = match from {
        Some(from) => from,
        None => match store.latest_audit_checkpoint_by(public_key, to.0).await {
            Ok(Some(cp)) if cp.signature_holds() => (cp.seq, cp.hash),
            Ok(_) => (0, GENESIS_HASH.to_string()),
            Err(e) => {
                tracing::warn!(error = ?e, "cannot read the last audit checkpoint; will retry");
                return None;
            }
        },
    };
    match store.audit_continues(&from, &to).await {
        Ok(Ok(())) => Some(to),
        Ok(Err(broken)) => {
            tracing::error!(
                %broken,
                checked_up_to = from.0,
                "the audit chain does not hold after the last entry this writer checked; \
                 no checkpoint is signed past it until the chain is repaired (run \
                 `credit-hub audit verify`)"
            );
            None
        }
        Err(e) => {
            tracing::warn!(error = ?e, "cannot read audit entries to check before signing; will retry");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(seq: i64) -> Point {
        (seq, format!("h{seq}"))
    }

    #[test]
    fn a_head_read_from_the_database_is_checked_before_it_is_signed() {
        let mut head = Head::default();
        head.read(p(10));
        assert_eq!(head.unchecked(), Some((None, p(10))));
        head.advanced(p(12));
        assert!(
            head.verified.is_none(),
            "its own groups after an unchecked head"
        );
        head.checked(p(10));
        assert_eq!(head.verified, Some(p(12)));
        head.advanced(p(15));
        assert_eq!(head.verified, Some(p(15)));
        assert_eq!(head.unchecked(), None);
    }

    #[test]
    fn another_writers_entries_make_the_head_unchecked_again() {
        let mut head = Head::default();
        head.read(p(10));
        head.checked(p(10));
        head.advanced(p(11));
        head.lost();
        head.read(p(20));
        head.advanced(p(21));
        assert_eq!(head.verified, Some(p(11)));
        assert_eq!(head.unchecked(), Some((Some(p(11)), p(20))));
        // Read again before the walk ended: the walk's point is kept, not the head.
        head.lost();
        head.read(p(30));
        head.checked(p(20));
        assert_eq!(head.verified, Some(p(20)));
        assert_eq!(head.unchecked(), Some((Some(p(20)), p(30))));
    }

    #[test]
    fn reading_the_verified_head_again_trusts_it() {
        let mut head = Head::default();
        head.read(p(5));
        head.checked(p(5));
        head.lost();
        head.read(p(5));
        head.advanced(p(6));
        assert_eq!(head.verified, Some(p(6)));
    }
}
