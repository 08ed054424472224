//! `cirrus rotate --category NAME`: re-encrypt a category under a new key version and
//! destroy the old one. While the drive is mounted the daemon does the work (it is the
//! only writer of the category's head) and this shows its progress; otherwise the same
//! engine runs here. Running it again after an interruption resumes the rotation.

use super::{PasscodeArgs, mount::parse_size, unlock};
use crate::home::Home;
pub use crate::maintenance::rotation::Job;
use crate::maintenance::rotation::{self, RotationDisplay, RotationError};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

#[derive(clap::Args)]
#[command(group(
    clap::ArgGroup::new("what")
        .required(true)
        .args(["category", "account", "service"])
))]
pub struct RotateArgs {
    /// The category whose key to replace (e.g. Photos): every block is re-encrypted
    /// under a new key version, online if mounted, then the old version is destroyed.
    #[arg(long)]
    pub category: Option<String>,
    /// Replace the account key (the key that wraps end-to-end category keys): granted
    /// anew to every trusted device and recovery method.
    #[arg(long)]
    pub account: bool,
    /// Replace the key service's service key for this account (needs `cirrus serve` and
    /// --password-file): every standard and transit key is re-wrapped under the new one,
    /// then the old one is destroyed on the server.
    #[arg(long)]
    pub service: bool,
    #[command(flatten)]
    pub pass: PasscodeArgs,
    /// File bytes re-encrypted between two commits; each commit makes progress durable.
    #[arg(long, default_value = "64M", value_parser = parse_size, hide = true)]
    pub batch: u64,
}

/// Progress on a terminal: a bar with bytes, rate and ETA. Elsewhere (scripts, tests):
/// one plain line per update on stderr.
struct Progress {
    bar: Option<ProgressBar>,
    started: bool,
    what: String,
}

impl Progress {
    fn new(what: &str) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let pb = super::sync::bar_drawn_once_sized();
            pb.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            pb.set_message(format!("rotating {what}"));
            pb
        });
        Progress {
            bar,
            started: false,
            what: what.to_string(),
        }
    }

    fn update(&mut self, done: u64, total: u64) {
        match &self.bar {
            Some(pb) => {
                super::sync::size_bar(pb, total);
                pb.set_position(done);
                if !self.started {
                    // A resumed rotation starts part-way: the rate counts from here.
                    pb.reset_eta();
                }
            }
            None if total == 0 => {}
            None => {
                // One line per committed batch (64 MiB by default): few enough for a log.
                let pct = (done * 100).checked_div(total).unwrap_or(100);
                eprintln!("progress: {done} of {total} bytes ({pct}%) {}", self.what);
            }
        }
        self.started = true;
    }

    fn finish(&self) {
        if let Some(pb) = &self.bar {
            pb.finish_and_clear();
        }
    }
}

pub fn run(home: Home, args: RotateArgs) -> super::CliResult {
    if args.service {
        let acct = unlock(home, &args.pass)?;
        if acct.config.server.is_none() {
            return Err(
                "rotate --service needs an account on a key service (`cirrus serve`); the \
                 embedded key service lives on this device"
                    .into(),
            );
        }
        let (v, n) = acct.rotate_service_key().map_err(|e| {
            super::failed_with_hint("rotate --service", &e, "pass --password-file?")
        })?;
        println!(
            "Rotated the service key: version {v} now wraps {n} standard and transit keys; \
             older versions are destroyed on the server."
        );
        return Ok(0);
    }
    let Some(category) = args.category.clone() else {
        let mut acct = unlock(home, &args.pass)?;
        acct.rotate_account_key()
            .map_err(|e| format!("rotate --account: {e}"))?;
        println!(
            "Rotated the account key: every trusted device and recovery method holds the new \
             version; the old one is destroyed."
        );
        return Ok(0);
    };
    super::web::take_web_changes_first(&home, "rotate")?;
    let jobs = [Job {
        category,
        class: None,
    }];
    for line in rotate_many(&home, &args.pass, &jobs, args.batch, None)? {
        println!("{line}");
    }
    Ok(0)
}

/// Draws a rotation's progress: a fresh bar (or plain lines) per category.
#[derive(Default)]
struct Display(Option<Progress>);

impl RotationDisplay for Display {
    fn start(&mut self, category: &str) {
        self.0 = Some(Progress::new(category));
    }
    fn update(&mut self, done: u64, total: u64) {
        if let Some(p) = &mut self.0 {
            p.update(done, total);
        }
    }
    fn finish(&mut self) {
        if let Some(p) = self.0.take() {
            p.finish();
        }
    }
}

/// The error of a rotation, as printed; categories that were rotated before another
/// failed are printed first.
fn failed(e: RotationError) -> String {
    if let RotationError::SomeFailed { done, .. } = &e {
        for l in done {
            println!("{l}");
        }
    }
    e.to_string()
}

/// [`rotation::rotate_owed`] with this command's passcode and progress display.
pub fn rotate_owed(
    home: &Home,
    pass: &PasscodeArgs,
    jobs: Vec<Job>,
    acct: Option<rotation::Held>,
) -> Result<Vec<String>, String> {
    let open = || unlock(Home::new(home.root.clone()), pass);
    rotation::rotate_owed(home, &open, jobs, acct, &mut Display::default()).map_err(failed)
}

/// [`rotation::rotate_many`] with this command's passcode and progress display.
pub fn rotate_many(
    home: &Home,
    pass: &PasscodeArgs,
    jobs: &[Job],
    batch: u64,
    acct: Option<rotation::Held>,
) -> Result<Vec<String>, String> {
    let open = || unlock(Home::new(home.root.clone()), pass);
    rotation::rotate_many(home, &open, jobs, batch, acct, &mut Display::default()).map_err(failed)
}
