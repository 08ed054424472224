//! What the daemon does for a request on its control socket: `rotate` (a key rotation,
//! which must run here because the daemon is the only writer of heads), `sync` (commit,
//! pull, push, optionally wait for the queue) and `no-wait`.

use super::control::{Handler, Reply, Request};
use crate::account::{RotateOptions, RotateReport, Unlocked};
use crate::format::table::Class;
use crate::home::Home;
use crate::store::writeback::WriteBack;
use crate::sync::{PollReport, Syncer};
use crate::volume::Category;
use log::error;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the request handler works on: the mount's parts it shares with the daemon loop.
pub(super) struct Served {
    pub home: Home,
    pub acct: Arc<Mutex<Unlocked>>,
    pub cats: Vec<Arc<Category>>,
    pub wb: Option<Arc<WriteBack>>,
    pub syncer: Option<Arc<Syncer>>,
    pub no_wait: Arc<AtomicBool>,
    pub read_only: bool,
    /// The daemon's report on itself, for `status`.
    pub mount_status: Box<dyn Fn() -> crate::report::MountStatus + Send + Sync>,
}

/// How many times `sync --wait` merges again when another device's head beat this
/// device's to the store, before it reports the conflict.
const HEAD_RACE_ROUNDS: u32 = 5;

/// How long a `status` request waits for the account while another request holds it.
const STATUS_WAIT: Duration = Duration::from_secs(3);

/// The control socket's handler over `s`.
pub(super) fn handler(s: Served) -> Arc<Handler> {
    let busy = Mutex::new(());
    Arc::new(move |req, cancel, send| match req.op.as_str() {
        "rotate" | "sync" if s.read_only => Reply::error(format!(
            "the drive is mounted read-only, so it cannot {}; unmount it and mount it \
             without --read-only",
            if req.op == "rotate" {
                "rotate keys"
            } else {
                "sync"
            }
        )),
        "rotate" => rotate_request(&s.acct, &s.cats, &busy, req, cancel, send),
        "sync" => sync_request(
            &s.home,
            &s.cats,
            s.wb.as_deref(),
            s.syncer.as_deref(),
            req,
            cancel,
            send,
        ),
        "status" => status_request(&s, cancel),
        "no-wait" => {
            s.no_wait.store(true, Ordering::Relaxed);
            Reply::ok("the daemon will not wait for uploads when it stops".into())
        }
        other => Reply::error(format!("unknown request {other:?}")),
    })
}

/// The daemon's side of `cirrus status`: the same report the command builds, from this
/// mount's unlocked account (so no passcode is asked) and its live figures.
fn status_request(s: &Served, cancel: &AtomicBool) -> Reply {
    // The account is held for minutes by a rotation: wait a little, not for it (the
    // command then unlocks by itself). Holding it while the report is built keeps the
    // sync hooks out meanwhile; they try again at the next poll.
    let deadline = std::time::Instant::now() + STATUS_WAIT;
    let acct = loop {
        match s.acct.try_lock() {
            Ok(a) => break a,
            Err(std::sync::TryLockError::Poisoned(p)) => break p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => {
                if cancel.load(Ordering::Relaxed) || std::time::Instant::now() >= deadline {
                    return Reply::error(
                        "the daemon is busy with the account (a key rotation?); not waiting".into(),
                    );
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    let report = {
        let no_session = acct.no_session().map(|w| w.to_string());
        crate::report::report(&acct, no_session, &|_| {
            (
                Some((s.mount_status)()),
                s.wb.as_ref().map(|wb| wb.status()),
            )
        })
    };
    drop(acct);
    match serde_json::to_value(&report) {
        Ok(v) => Reply {
            ok: Some(true),
            status: Some(v),
            ..Reply::default()
        },
        Err(e) => Reply::error(format!("cannot encode the status report: {e}")),
    }
}

/// The line a finished rotation of category `name` reports, mounted or not.
pub fn describe_rotation(name: &str, r: &RotateReport) -> String {
    if r.unchanged {
        return format!("{name}: nothing to do (already protected as asked).");
    }
    let old = if r.kept_for.is_empty() {
        format!("key version {} is destroyed.", r.from)
    } else {
        format!(
            "key version {} is kept until {} has synced (it may still hold data under it); \
             a later sync destroys it.",
            r.from,
            r.kept_for.join(", ")
        )
    };
    format!(
        "{} the key of {name}: everything is now sealed under key version {}; {old}",
        if r.resumed {
            "Finished rotating"
        } else {
            "Rotated"
        },
        r.to,
    )
}

/// The daemon's side of a `rotate` request.
fn rotate_request(
    acct: &Mutex<Unlocked>,
    cats: &[Arc<Category>],
    busy: &Mutex<()>,
    req: &Request,
    cancel: &AtomicBool,
    send: &mut dyn FnMut(&Reply),
) -> Reply {
    let Some(name) = req.category.as_deref() else {
        return Reply::error("rotate: no category given".into());
    };
    let Some(cat) = cats.iter().find(|c| c.name == name) else {
        return Reply::error(format!(
            "category {name:?} is not part of this mount (unknown, retired, added after \
             mounting, or its key could not be unlocked)"
        ));
    };
    // One rotation at a time: each walks a whole category and fills the dirty budget.
    let Ok(_one) = busy.try_lock() else {
        return Reply::error("another key rotation is running on this drive".into());
    };
    let class = match req.class.as_deref().map(Class::parse) {
        None => None,
        Some(Some(c)) => Some(c),
        Some(None) => return Reply::error("rotate: unknown protection class".into()),
    };
    // Held for the whole rotation; `send` only queues (control.rs's writer thread talks
    // to the client), so a client that stops reading cannot keep the sync hooks out.
    // The class asked for is checked by the engine (`adp::class_change_refusal`).
    let mut acct = acct.lock().unwrap_or_else(|p| p.into_inner());
    let opts = RotateOptions {
        batch_bytes: req.batch_bytes.unwrap_or(crate::account::DEFAULT_BATCH),
        stop: Some(cancel),
        class,
    };
    match acct.rotate_category(name, cat, &opts, &mut |p| {
        send(&Reply::progress(p.done, p.total))
    }) {
        Ok(r) => Reply::ok(describe_rotation(name, &r)),
        Err(e) => {
            error!("category {name}: key rotation: {e}");
            Reply::error(e.to_string())
        }
    }
}

/// Commits every category; the failures as "NAME: ERROR".
fn commit_all(cats: &[Arc<Category>]) -> Vec<String> {
    let mut failed = Vec::new();
    for c in cats {
        if let Err(e) = c.commit() {
            failed.push(format!("{}: {e}", c.name));
        }
    }
    failed
}

/// `cirrus sync` while mounted: commit every category, then push (and optionally wait).
fn sync_request(
    home: &Home,
    cats: &[Arc<Category>],
    wb: Option<&WriteBack>,
    syncer: Option<&Syncer>,
    req: &Request,
    cancel: &AtomicBool,
    send: &mut dyn FnMut(&Reply),
) -> Reply {
    if let Some(wb) = wb {
        wb.kick();
    }
    let mut failed = commit_all(cats);
    if let (false, Some(wb)) = (failed.is_empty(), wb) {
        // A full journal: let the queue drain, then commit what is left.
        wb.wait_drained(
            Some(Duration::from_secs(120)),
            &|| cancel.load(Ordering::Relaxed),
            &mut |_| {},
        );
        failed = commit_all(cats);
    }
    if !failed.is_empty() {
        for f in &failed {
            error!("commit for sync failed: {f}");
        }
        return Reply::error(format!("commit failed: {}", failed.join("; ")));
    }
    let Some(wb) = wb else {
        return Reply::ok("Committed; the store is local, so it is up to date.".into());
    };
    let pull = syncer.map(|sy| {
        let mut r = sy.poll(true);
        r.add_unchanged(cats.iter().map(|c| c.name.as_str()));
        r
    });
    if let Some(r) = pull.as_ref().filter(|r| !r.errors().is_empty()) {
        return Reply {
            error: Some(r.errors().join("; ")),
            pull: Some(r.clone()),
            ..Default::default()
        };
    }
    let pulled = pull.as_ref().map(describe_pull).unwrap_or_default();
    if req.wait != Some(true) {
        let s = wb.status();
        return Reply {
            ok: Some(true),
            message: Some(format!(
                "{pulled}Committed; {} in {} objects queued for upload.",
                crate::hint::human(s.pending_bytes),
                s.pending_objects
            )),
            sync: Some(s),
            pull,
            ..Default::default()
        };
    }
    let stall = Some(Duration::from_secs(req.stall_secs.unwrap_or(120)));
    let cancelled = || cancel.load(Ordering::Relaxed);
    let mut s = wb.wait_drained(stall, &cancelled, &mut |s| {
        send(&Reply {
            sync: Some(s.clone()),
            ..Default::default()
        })
    });
    // Another device may publish between this poll and the upload of this device's
    // head (both upload in the background): the head is then held back as a conflict
    // until a poll merges it. Merge and send again, a bounded number of times.
    let mut pull = pull;
    let mut rounds = 0;
    while !s.conflicts.is_empty() && rounds < HEAD_RACE_ROUNDS && !cancelled() {
        rounds += 1;
        let Some(sy) = syncer else { break };
        log::info!("sync: a head lost a race to another device's; merging again (round {rounds})");
        let again = sy.poll(true);
        if !again.errors().is_empty() {
            return Reply {
                error: Some(again.errors().join("; ")),
                pull: Some(again),
                ..Default::default()
            };
        }
        match pull.as_mut() {
            Some(p) => p.absorb(again),
            None => pull = Some(again),
        }
        s = wb.wait_drained(stall, &cancelled, &mut |s| {
            send(&Reply {
                sync: Some(s.clone()),
                ..Default::default()
            })
        });
    }
    let pulled = pull.as_ref().map(describe_pull).unwrap_or_default();
    // Everything of a merge is in the store now: acknowledge its revival at once (the
    // daemon may stop before its next poll).
    if s.pending_objects == 0
        && let Some(sy) = syncer
    {
        sy.acknowledge_revival();
    }
    super::status::write_sync_status(home, &s);
    Reply {
        ok: Some(true),
        message: Some(pulled),
        sync: Some(s),
        pull,
        ..Default::default()
    }
}

/// What a poll without errors took in, as the start of the reply's message.
fn describe_pull(r: &PollReport) -> String {
    let refused = if r.refused().is_empty() {
        String::new()
    } else {
        format!(
            "Refused changes of a removed device in {} (replaced by this device's). ",
            r.refused().join(", ")
        )
    };
    let pulled = if let Some(u) = &r.unreachable {
        format!("Could not look for other devices' changes ({u}). ")
    } else if r.pulled().is_empty() {
        String::new()
    } else {
        format!(
            "Took in changes from other devices in {} ({} conflict copies). ",
            r.pulled().join(", "),
            r.copies()
        )
    };
    let web: Vec<String> = r
        .categories
        .iter()
        .filter(|c| c.web_changes > 0)
        .map(|c| format!("{} in {}", c.web_changes, c.name))
        .collect();
    let web = if web.is_empty() {
        String::new()
    } else {
        format!("Took in changes made on the web: {}. ", web.join(", "))
    };
    refused + &pulled + &web
}
