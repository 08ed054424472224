//! `cirrus sync` and the upload queue as the user sees it: pushing what the journal holds
//! (through the daemon when mounted, in-process otherwise), the progress line shared with
//! `umount`, and the drain that a command which wrote through the journal does before it
//! exits.

use crate::daemon::control::{self, Reply, Request};
use crate::home::Home;
use crate::store::writeback::{SyncStatus, WriteBack};
use crate::sync::PollReport;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub struct SyncArgs {
    /// Wait until everything queued has reached the store (with a progress bar).
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up after this many seconds without progress.
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub stall_timeout: u64,
    /// Print one JSON object instead (fields: docs/USER-GUIDE.md, "Status and sync as
    /// JSON").
    #[arg(long)]
    pub json: bool,
}

use super::human;
use super::status::{JSON_VERSION, json_error, print_json};
pub use crate::report::Upload;

/// The lines `cirrus status` prints about the upload queue and the disk cache.
pub fn describe(s: &Upload) -> Vec<String> {
    let mut out = vec![format!(
        "upload queue: {} objects, {} pending (journal limit {}){}",
        s.pending_objects,
        human(s.pending_bytes),
        human(s.journal_max_bytes),
        if s.offline {
            "; OFFLINE: the store cannot be reached, writes are kept locally"
        } else {
            ""
        }
    )];
    out.push(format!(
        "disk cache: {} of {} ({} objects)",
        human(s.disk_cache_bytes),
        human(s.disk_cache_max_bytes),
        s.disk_cache_objects
    ));
    if let Some(e) = &s.last_error {
        let ago = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs().saturating_sub(e.at))
            .unwrap_or(0);
        out.push(format!("last sync error ({ago} s ago): {}", e.message));
    }
    for c in &s.conflicts {
        out.push(format!("conflict: {c}"));
    }
    for d in &s.damaged {
        out.push(format!("damaged journal entry: {d}"));
    }
    out
}

/// What `cirrus sync` did, for `--json` (docs/USER-GUIDE.md documents the fields).
#[derive(Debug, Serialize)]
pub struct SyncReport {
    pub version: u32,
    /// The daemon of a mounted drive did the work (commit, pull, push).
    pub mounted: bool,
    /// Waited for the queue to drain (`--wait`, and always when not mounted).
    pub waited: bool,
    /// Mounted with a remote store: what taking in the other devices' heads did.
    pub pull: Option<PollReport>,
    /// The queue when the command ended (None: a local store has none).
    pub upload: Option<Upload>,
    /// Everything is in the store (known only after waiting, or with a local store).
    pub complete: bool,
    /// Why the command failed (it then exits non-zero).
    pub error: Option<String>,
    /// The daemon's summary, as the text output prints it.
    #[serde(skip)]
    pub message: Option<String>,
}

impl SyncReport {
    fn new(mounted: bool, waited: bool) -> Self {
        SyncReport {
            version: JSON_VERSION,
            mounted,
            waited,
            pull: None,
            upload: None,
            complete: false,
            error: None,
            message: None,
        }
    }

    /// Prints the report (JSON, or the text lines) and gives the exit.
    fn finish(self, json: bool) -> super::CliResult {
        if json {
            print_json(&self)?;
        } else {
            if let Some(m) = self.message.as_deref().filter(|m| !m.is_empty()) {
                println!("{}", m.trim_end());
            }
            if self.complete && self.waited && self.upload.is_some() {
                println!("Everything is in the store.");
            }
        }
        match self.error {
            Some(e) => Err(e),
            None => Ok(0),
        }
    }
}

/// A terminal progress bar that stays undrawn until [`size_bar`] gives it a total: drawn
/// before, it would show a full bar at 0 B / 0 B.
pub(super) fn bar_drawn_once_sized() -> ProgressBar {
    ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden())
}

/// Sets the total of a bar from [`bar_drawn_once_sized`], drawing it from the first
/// non-zero total on (nothing to do shows no bar at all).
pub(super) fn size_bar(pb: &ProgressBar, total: u64) {
    if total == 0 {
        return;
    }
    pb.set_length(total);
    if pb.is_hidden() {
        pb.set_draw_target(ProgressDrawTarget::stderr());
    }
}

/// Upload progress: a bar on a terminal, else a plain line every few seconds.
pub struct Progress {
    bar: Option<ProgressBar>,
    start_pending: u64,
    last_line: Option<Instant>,
}

impl Progress {
    pub fn new(what: &str) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let pb = bar_drawn_once_sized();
            pb.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            pb.set_message(what.to_string());
            pb
        });
        Progress {
            bar,
            start_pending: 0,
            last_line: None,
        }
    }

    pub fn update(&mut self, s: &SyncStatus) {
        self.start_pending = self.start_pending.max(s.pending_bytes);
        let done = self.start_pending - s.pending_bytes;
        match &self.bar {
            Some(pb) => {
                size_bar(pb, self.start_pending);
                pb.set_position(done);
            }
            None => {
                if self
                    .last_line
                    .is_some_and(|t| t.elapsed() < Duration::from_secs(2))
                {
                    return;
                }
                self.last_line = Some(Instant::now());
                eprintln!(
                    "progress: {} uploaded, {} in {} objects left{}",
                    human(done),
                    human(s.pending_bytes),
                    s.pending_objects,
                    if s.offline { " (store offline)" } else { "" }
                );
            }
        }
    }

    pub fn finish(&self) {
        if let Some(pb) = &self.bar {
            pb.finish_and_clear();
        }
    }
}

/// Whether everything is in the store once waiting ended: the error says what is not.
fn verdict(s: &SyncStatus) -> Result<(), String> {
    let queued = s.pending_objects as usize - s.conflicts.len().min(s.pending_objects as usize);
    for c in &s.conflicts {
        eprintln!("conflict: {c}");
    }
    if queued == 0 && s.conflicts.is_empty() {
        return Ok(());
    }
    let why = s
        .last_error
        .as_ref()
        .map(|(_, e)| format!(" (last error: {e})"))
        .unwrap_or_default();
    Err(format!(
        "{} in {} objects not yet in the store{why}; they stay in the journal and are sent \
         when the store is reachable (run `{}` again, or mount)",
        human(s.pending_bytes),
        s.pending_objects,
        crate::hint::cmd_hint("sync")
    ))
}

/// Fills in the queue's state after waiting, and the verdict on it.
fn waited_for(r: &mut SyncReport, s: &SyncStatus) {
    r.upload = Some(Upload::from(s));
    match verdict(s) {
        Ok(()) => r.complete = true,
        Err(e) => r.error = Some(e),
    }
}

/// `cirrus sync` on a mounted drive: the daemon does it.
fn through_daemon(home: &Home, args: &SyncArgs) -> super::CliResult {
    let req = Request {
        op: "sync".into(),
        wait: Some(args.wait),
        stall_secs: Some(args.stall_timeout),
        ..Default::default()
    };
    let mut progress = Progress::new("uploading");
    let mut last = None;
    let reply = control::exchange(home, &req, &mut |r: &Reply| {
        if let Some(s) = &r.sync {
            progress.update(s);
            last = Some(s.clone());
        }
    });
    progress.finish();
    let reply = reply.map_err(|e| json_error(args.json, e))?;
    let mut r = SyncReport::new(true, args.wait);
    r.pull = reply.pull;
    r.message = reply.message;
    let s = reply.sync.or(last);
    if let Some(e) = reply.error {
        r.error = Some(e);
    } else if !args.wait {
        r.upload = s.as_ref().map(Upload::from);
        // A local store: committed is stored.
        r.complete = s.is_none();
    } else {
        match &s {
            Some(s) => waited_for(&mut r, s),
            None => r.complete = true,
        }
    }
    r.finish(args.json)
}

pub fn run(home: Home, args: SyncArgs) -> super::CliResult {
    if !home.exists() {
        let e = format!("no Cirrus account in {}", home.root.display());
        return Err(json_error(args.json, e));
    }
    // The daemon lock tells whether a daemon runs (a control socket may be left over
    // from a killed one).
    let lock = crate::daemon::lock_home(&home);
    if lock.is_err() && control::socket_exists(&home) {
        let r = through_daemon(&home, &args);
        // Keys released to web sessions that are over are rotated now, online.
        super::web::rotate_released_mounted(&home);
        return r;
    }
    // Not mounted: the journal can be sent without the passcode (it holds only sealed
    // objects), under the daemon lock so no mount starts meanwhile.
    let opened = lock.map_err(|e| e.to_string()).and_then(|lock| {
        let config = home.load_config().map_err(|e| e.to_string())?;
        let (_, wb) = crate::account::open_store_sync(&home, &config.store)
            .map_err(|e| format!("opening the store: {e}"))?;
        Ok((lock, config, wb))
    });
    let (_lock, config, wb) = opened.map_err(|e| json_error(args.json, e))?;
    let mut r = SyncReport::new(false, true);
    match wb {
        None => {
            r.complete = true;
            r.message = Some(format!(
                "The store ({}) is local: there is nothing to upload.",
                config.store
            ));
        }
        Some(wb) => waited_for(
            &mut r,
            &drain_status(&wb, Duration::from_secs(args.stall_timeout)),
        ),
    }
    r.finish(args.json)
}

/// Sends the journal until it is empty or stalls; the queue's state then.
fn drain_status(wb: &Arc<WriteBack>, stall: Duration) -> SyncStatus {
    wb.kick();
    wb.start(4);
    let mut progress = Progress::new("uploading");
    let s = wb.wait_drained(Some(stall), &|| false, &mut |s| progress.update(s));
    progress.finish();
    wb.stop();
    s
}

/// Write-back stores opened by this process's commands (see [`drain_queued`]).
static OPENED: Mutex<Vec<Arc<WriteBack>>> = Mutex::new(Vec::new());

pub fn remember(wb: &Arc<WriteBack>) {
    OPENED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(wb.clone());
}

/// A command that wrote through the journal (a rotation or repair while unmounted, say)
/// sends it before exiting, so the store does not lag until the next mount.
pub fn drain_queued() -> Option<String> {
    let opened: Vec<_> = std::mem::take(&mut *OPENED.lock().unwrap_or_else(|p| p.into_inner()));
    for wb in opened.iter().filter(|w| w.journaled_here()) {
        if let Err(e) = verdict(&drain_status(wb, Duration::from_secs(60))) {
            return Some(e);
        }
    }
    None
}
