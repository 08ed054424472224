//! Takes in the changes made on the web (FORMAT.md §9f): once per poll, one listing of
//! the store's `web/` inbox; each standard or transit category opens its changes newer
//! than its tree's `web_seq`, in order, applies them with the volume's safe rules and
//! commits, so the device signs them into its next head. Changes an uploaded head already
//! holds are deleted from the inbox. End-to-end categories never take any.

use super::{CategoryPoll, PollOutcome, PollReport, Syncer, today};
use crate::format::names;
use crate::format::table::Class;
use crate::format::web_change::{self, InboxName, WebChange, WebOp};
use crate::store::Store;
use crate::volume::{Category, RECENTLY_DELETED_KEEP_SECS, VolError, WebApplied};
use log::{info, warn};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// How far above a tree's `web_seq` a change may be numbered and still be looked at.
const MAX_SEQ_JUMP: u64 = 1 << 32;

/// How often a device looks for what Recently Deleted has kept long enough.
const PURGE_EVERY: Duration = Duration::from_secs(3600);

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
            let inbox = inbox_of(c, &names);
            if inbox.is_empty() {
                continue;
            }
            let (taken, _) =
                apply_inbox(c, &*remote, &inbox, &date, &mut |m| self.wb.report_error(m));
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

    /// Empties each category's Recently Deleted of what has been there 30 days, and
    /// commits (a category whose keys this device does not hold is left alone).
    pub(super) fn purge_recently_deleted(&self) {
        {
            let mut last = self.purged.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|t| t.elapsed() < PURGE_EVERY) {
                return;
            }
            *last = Some(Instant::now());
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        for c in &self.cats {
            if c.stats().3.is_some() {
                continue;
            }
            match c.purge_recently_deleted(now, RECENTLY_DELETED_KEEP_SECS) {
                Ok(0) => {}
                Ok(n) => {
                    info!(
                        "{}: emptied {n} entries kept 30 days from Recently Deleted",
                        c.name
                    );
                    if let Err(e) = c.commit() {
                        warn!(
                            "{}: cannot commit the emptying of Recently Deleted: {e}",
                            c.name
                        );
                    }
                }
                Err(e) => warn!("{}: cannot empty Recently Deleted: {e}", c.name),
            }
        }
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

/// Says what a change did. The device's log holds no file names (THREAT-MODEL.md,
/// "Other local users"): the change's number, id and kind at info, its name at debug.
fn log_applied(c: &Category, ch: &WebChange, a: &WebApplied) {
    let what = match ch.op {
        WebOp::Upload { .. } => "upload",
        WebOp::Mkdir => "new folder",
        WebOp::Delete { .. } => "delete",
        WebOp::Rename { .. } => "rename or move",
    };
    let how = match a {
        WebApplied::Done => "applied",
        WebApplied::ConflictCopy(_) => "applied under a conflict name",
        WebApplied::Skipped(why) => why,
    };
    info!(
        "{}: web change {} ({what}, id {}): {how}",
        c.name,
        ch.seq,
        hex::encode(ch.id)
    );
    log::debug!(
        "{}: web change {} was about {:?}",
        c.name,
        ch.seq,
        String::from_utf8_lossy(&ch.name)
    );
}

/// Applies the changes of `inbox` newer than the tree's, in order; returns how many
/// it took in (applied, or refused because what they name is damaged), and whether
/// one waits. An object
/// that does not open as a change sealed here is ignored and never moves `web_seq`
/// (anyone who can write the store could put one there). Anything that may pass
/// (the store, this device's journal or disk, a key not taken yet, a part not
/// visible) stops the category until the next poll: nothing is lost for it.
fn apply_inbox(
    c: &Category,
    remote: &dyn Store,
    inbox: &Inbox,
    date: &str,
    report: &mut dyn FnMut(String),
) -> (usize, bool) {
    let mut taken = 0;
    let from = c.web_seq().saturating_add(1);
    // A number far above the tree's is no honest server's (they count up by one).
    let to = from.saturating_add(MAX_SEQ_JUMP);
    for &seq in inbox.range(from..to) {
        let obj = match remote.get(&web_change::change_name(c.id, seq)) {
            Ok(obj) => obj,
            Err(e) => {
                warn!("{}: cannot read web change {seq}: {e}", c.name);
                return (taken, true);
            }
        };
        let ch = match c.open_web_change(seq, &obj) {
            Ok(ch) => ch,
            Err(e) => {
                if web_change::split_object(&obj).is_ok_and(|(kv, _)| kv > c.key_version()) {
                    // Sealed under a key this device has not taken yet: next poll.
                    log::debug!("{}: web change {seq} waits for key version: {e}", c.name);
                    return (taken, true);
                }
                warn!(
                    "{}: ignored inbox object {seq}, not a change sealed here: {e}",
                    c.name
                );
                continue;
            }
        };
        let mut part = |n: u64| -> Result<Vec<u8>, VolError> {
            let name = web_change::part_name(c.id, &ch.id, n);
            let obj = remote.get(&name).map_err(VolError::Store)?;
            c.open_web_part(&ch, n, &obj)
        };
        match c.apply_web_change(&ch, &mut part, date) {
            Ok(applied) => log_applied(c, &ch, &applied),
            // The change opened, but a part it names is not the one it was sealed
            // with: refused for good (the tree stays as it was), and said.
            Err(e @ VolError::Integrity { .. }) => {
                let msg = format!("{}: refused web change {seq}: {e}", c.name);
                warn!("{msg}");
                report(msg);
            }
            Err(e) => {
                warn!("{}: web change {seq} waits: {e}", c.name);
                return (taken, true);
            }
        }
        c.set_web_seq(seq);
        taken += 1;
    }
    (taken, false)
}

/// The change numbers of category `c`'s inbox among the store's `names`.
fn inbox_of(c: &Category, names: &[String]) -> Inbox {
    names
        .iter()
        .filter_map(|n| match web_change::parse_name(c.id, n) {
            Some(InboxName::Change(seq)) => Some(seq),
            _ => None,
        })
        .collect()
}

/// Takes in, here and now, the changes made on the web that wait for category `c`, and
/// commits: a command's own, with no syncer (a rotation or `adp on` on a drive that is
/// not mounted, before the category's key changes and no longer opens them). An error:
/// a change waits that could not be taken in (the caller says so).
pub fn take_in_now(c: &Category, remote: &dyn Store) -> Result<usize, String> {
    if c.class == Class::E2e {
        return Ok(0);
    }
    let names = remote
        .list(&web_change::prefix(c.id))
        .map_err(|e| format!("cannot look for changes made on the web: {e}"))?;
    let inbox = inbox_of(c, &names);
    let (taken, stalled) = apply_inbox(c, remote, &inbox, &super::today(), &mut |_| {});
    if taken > 0 {
        c.commit()
            .map_err(|e| format!("cannot commit the changes made on the web: {e}"))?;
        info!("{}: took in {taken} changes made on the web", c.name);
    }
    if stalled {
        return Err(format!(
            "{}: a change made on the web waits and could not be taken in (see the log)",
            c.name
        ));
    }
    Ok(taken)
}
