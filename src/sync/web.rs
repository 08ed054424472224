//! Takes in the changes made on the web (FORMAT.md §9f): once per poll, one listing of
//! the store's `web/` inbox; each standard or transit category opens its changes newer
//! than its tree's `web_seq`, in order, applies them with the volume's safe rules and
//! commits, so the device signs them into its next head. Changes an uploaded head already
//! holds are deleted from the inbox. End-to-end categories never take any.

use super::{CategoryPoll, PollOutcome, PollReport, Syncer, today};
use crate::format::names;
use crate::format::table::Class;
use crate::format::web_change::{self, InboxName, WebChange, WebOp};
use crate::store::{Store, StoreError};
use crate::volume::{Category, VolError, WebApplied};
use log::{info, warn};
use std::collections::BTreeSet;

/// The changes of a category's inbox, by sequence number.
type Inbox = BTreeSet<u64>;

impl Syncer {
    /// Applies the web's pending changes to every category that may take them.
    pub(super) fn take_web_changes(&self, rep: &mut PollReport) {
        let remote = self.wb.remote();
        let names = match remote.list("web/") {
            Ok(n) => n,
            Err(e) => {
                log::debug!("cannot list the web's changes: {e}");
                return;
            }
        };
        if names.is_empty() {
            return;
        }
        let date = today();
        for c in &self.cats {
            // The web never changes an end-to-end category, whatever the store holds.
            if c.class == Class::E2e || c.stats().3.is_some() {
                continue;
            }
            let inbox: Inbox = names
                .iter()
                .filter_map(|n| match web_change::parse_name(c.id, n) {
                    Some(InboxName::Change(seq)) => Some(seq),
                    _ => None,
                })
                .collect();
            if inbox.is_empty() {
                continue;
            }
            let taken = self.apply_inbox(c, &*remote, &inbox, &date);
            if taken > 0 {
                if let Err(e) = c.commit() {
                    warn!("{}: cannot commit the web's changes: {e}", c.name);
                }
                info!(
                    "sync: took in {taken} changes made on the web in {}",
                    c.name
                );
                match rep.categories.iter_mut().find(|p| p.name == c.name) {
                    Some(p) => p.web_changes += taken,
                    None => rep.categories.push(CategoryPoll {
                        name: c.name.clone(),
                        outcome: PollOutcome::Unchanged,
                        conflict_copies: 0,
                        error: None,
                        web_changes: taken,
                    }),
                }
            }
            self.clean_inbox(c, &*remote, &inbox);
        }
    }

    /// Applies the changes of `inbox` newer than the tree's, in order; returns how many
    /// it took in (applied, or refused as damaged). Stops at a store error: the next
    /// poll goes on from there.
    fn apply_inbox(&self, c: &Category, remote: &dyn Store, inbox: &Inbox, date: &str) -> usize {
        let mut taken = 0;
        for &seq in inbox.range(c.web_seq() + 1..) {
            let ch = match remote.get(&web_change::change_name(c.id, seq)) {
                Ok(obj) => c.open_web_change(seq, &obj),
                Err(e) => {
                    warn!("{}: cannot read web change {seq}: {e}", c.name);
                    break;
                }
            };
            let res = ch.and_then(|ch| {
                let mut part = |n: u64| -> Result<Vec<u8>, VolError> {
                    let name = web_change::part_name(c.id, &ch.id, n);
                    match remote.get(&name) {
                        Ok(obj) => c.open_web_part(&ch, n, &obj),
                        // The change is written after all its parts: one missing was
                        // deleted since, and the change cannot be applied.
                        Err(StoreError::NotFound(_)) => Err(VolError::Integrity {
                            what: format!("web change {seq}"),
                            why: format!("its part {n} is missing"),
                        }),
                        Err(e) => Err(VolError::Store(e)),
                    }
                };
                c.apply_web_change(&ch, &mut part, date).map(|a| (ch, a))
            });
            match res {
                Ok((ch, applied)) => log_applied(c, &ch, &applied),
                Err(VolError::Store(e)) => {
                    warn!("{}: web change {seq} waits: {e}", c.name);
                    break;
                }
                // Damaged, tampered with or not for this category: refused for good (the
                // tree stays as it was), and said.
                Err(e) => {
                    let msg = format!("{}: refused web change {seq}: {e}", c.name);
                    warn!("{msg}");
                    self.wb.report_error(msg);
                }
            }
            c.set_web_seq(seq);
            taken += 1;
        }
        taken
    }

    /// Deletes the inbox objects of changes that the head in the store holds already
    /// (so every device has them, or will with that head): each upload's parts, then
    /// the change.
    fn clean_inbox(&self, c: &Category, remote: &dyn Store, inbox: &Inbox) {
        let Some(done) = self
            .wb
            .fetch_remote_head(&names::head(c.id))
            .ok()
            .flatten()
            .and_then(|h| c.web_seq_of(&h))
        else {
            return;
        };
        for &seq in inbox.range(..=done) {
            let name = web_change::change_name(c.id, seq);
            let mut gone = Vec::new();
            if let Ok(ch) = remote.get(&name).map(|obj| c.open_web_change(seq, &obj))
                && let Ok(ch) = ch
                && let WebOp::Upload { parts, .. } = &ch.op
            {
                gone.extend(
                    (0..parts.len() as u64).map(|n| web_change::part_name(c.id, &ch.id, n)),
                );
            }
            gone.push(name);
            for name in gone {
                if let Err(e) = remote.delete(&name) {
                    log::debug!("cannot delete {name}: {e}");
                }
            }
        }
    }
}

fn log_applied(c: &Category, ch: &WebChange, a: &WebApplied) {
    let what = match ch.op {
        WebOp::Upload { .. } => "upload",
        WebOp::Mkdir => "new folder",
        WebOp::Delete { .. } => "delete",
    };
    let name = String::from_utf8_lossy(&ch.name);
    match a {
        WebApplied::Done => info!(
            "{}: web change {} ({what} of {name}) applied",
            c.name, ch.seq
        ),
        WebApplied::ConflictCopy(n) => info!(
            "{}: web change {} ({what} of {name}) applied as {}",
            c.name,
            ch.seq,
            String::from_utf8_lossy(n)
        ),
        WebApplied::Skipped(why) => info!(
            "{}: web change {} ({what} of {name}) not applied: {why}",
            c.name, ch.seq
        ),
    }
}
