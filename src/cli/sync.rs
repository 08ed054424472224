//! `cirrus sync` and the upload queue as the user sees it: pushing what the journal holds
//! (through the daemon when mounted, in-process otherwise), the progress line shared with
//! `umount`, and the drain that a command which wrote through the journal does before it
//! exits.

use crate::daemon::control::{self, Reply, Request};
use crate::home::Home;
use crate::store::writeback::{SyncStatus, WriteBack};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
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
}

use super::human;

/// The lines `cirrus status` prints about the upload queue and the disk cache.
pub fn describe(s: &SyncStatus) -> Vec<String> {
    let mut out = vec![format!(
        "upload queue: {} objects, {} pending (journal limit {}){}",
        s.pending_objects,
        human(s.pending_bytes),
        human(s.journal_max),
        if s.offline {
            "; OFFLINE: the store cannot be reached, writes are kept locally"
        } else {
            ""
        }
    )];
    out.push(format!(
        "disk cache: {} of {} ({} objects)",
        human(s.cache_bytes),
        human(s.cache_max),
        s.cache_objects
    ));
    if let Some((t, e)) = &s.last_error {
        let ago = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs().saturating_sub(*t))
            .unwrap_or(0);
        out.push(format!("last sync error ({ago} s ago): {e}"));
    }
    for c in &s.conflicts {
        out.push(format!("conflict: {c}"));
    }
    for d in &s.damaged {
        out.push(format!("damaged journal entry: {d}"));
    }
    out
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

/// The outcome line and exit code once waiting ended.
fn verdict(s: &SyncStatus) -> super::CliResult {
    let queued = s.pending_objects as usize - s.conflicts.len().min(s.pending_objects as usize);
    if !s.conflicts.is_empty() {
        for c in &s.conflicts {
            eprintln!("conflict: {c}");
        }
    }
    if queued == 0 && s.conflicts.is_empty() {
        println!("Everything is in the store.");
        return Ok(0);
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

pub fn run(home: Home, args: SyncArgs) -> super::CliResult {
    if !home.exists() {
        return Err(format!("no Cirrus account in {}", home.root.display()));
    }
    // The daemon lock tells whether a daemon runs (a control socket may be left over
    // from a killed one).
    let lock = crate::daemon::lock_home(&home);
    if lock.is_err() && control::socket_exists(&home) {
        let req = Request {
            op: "sync".into(),
            wait: Some(args.wait),
            stall_secs: Some(args.stall_timeout),
            ..Default::default()
        };
        let mut progress = Progress::new("uploading");
        let mut last = None;
        let reply = control::exchange(&home, &req, &mut |r: &Reply| {
            if let Some(s) = &r.sync {
                progress.update(s);
                last = Some(s.clone());
            }
        });
        progress.finish();
        let reply = reply?;
        if let Some(e) = reply.error {
            return Err(e);
        }
        if let Some(m) = reply.message.as_deref().filter(|m| !m.is_empty()) {
            println!("{}", m.trim_end());
        }
        if !args.wait {
            return Ok(0);
        }
        return match reply.sync.or(last) {
            Some(s) => verdict(&s),
            None => Ok(0),
        };
    }
    // Not mounted: the journal can be sent without the passcode (it holds only sealed
    // objects), under the daemon lock so no mount starts meanwhile.
    let _lock = lock.map_err(|e| e.to_string())?;
    let config = home.load_config().map_err(|e| e.to_string())?;
    let (_, wb) = crate::account::open_store_sync(&home, &config.store)
        .map_err(|e| format!("opening the store: {e}"))?;
    let Some(wb) = wb else {
        println!(
            "The store ({}) is local: there is nothing to upload.",
            config.store
        );
        return Ok(0);
    };
    drain(&wb, Duration::from_secs(args.stall_timeout))
}

fn drain(wb: &Arc<WriteBack>, stall: Duration) -> super::CliResult {
    wb.kick();
    wb.start(4);
    let mut progress = Progress::new("uploading");
    let s = wb.wait_drained(Some(stall), &|| false, &mut |s| progress.update(s));
    progress.finish();
    wb.stop();
    verdict(&s)
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
        if let Err(e) = drain(wb, Duration::from_secs(60)) {
            return Some(e);
        }
    }
    None
}
