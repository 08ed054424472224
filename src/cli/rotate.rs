//! `cirrus rotate --category NAME`: re-encrypt a category under a new key version and
//! destroy the old one. While the drive is mounted the daemon does the work (it is the
//! only writer of the category's head) and this shows its progress; otherwise the same
//! engine runs here. Running it again after an interruption resumes the rotation.

use super::{PasscodeArgs, mount::parse_size, unlock};
use crate::account::RotateOptions;
use crate::cache::ChunkCache;
use crate::daemon::{self, control};
use crate::format::table::Class;
use crate::home::Home;
use crate::volume::{Category, HeadWitness, VolumeOptions};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Arc;

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
    let jobs = [Job {
        category,
        class: None,
    }];
    for line in rotate_many(&home, &args.pass, &jobs, args.batch, None)? {
        println!("{line}");
    }
    Ok(0)
}

/// One category to rotate, optionally into another protection class.
pub struct Job {
    pub category: String,
    pub class: Option<Class>,
}

/// Rotations a command still owes (one category name per line), so running the command
/// again after a crash finishes them instead of forgetting them.
pub fn pending_path(home: &Home) -> std::path::PathBuf {
    home.device_dir().join("pending-rotations")
}

pub fn save_pending(home: &Home, jobs: &[Job]) -> Result<(), String> {
    let text: String = jobs.iter().map(|j| format!("{}\n", j.category)).collect();
    crate::home::write_atomic(&pending_path(home), text.as_bytes()).map_err(|e| e.to_string())
}

pub fn load_pending(home: &Home) -> Vec<Job> {
    std::fs::read_to_string(pending_path(home))
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| Job {
            category: l.to_string(),
            class: None,
        })
        .collect()
}

/// Whether `category` is among the rotations owed.
pub fn is_pending(home: &Home, category: &str) -> bool {
    load_pending(home).iter().any(|j| j.category == category)
}

/// Adds `category` to the rotations owed, keeping the others.
pub fn add_pending(home: &Home, category: &str) -> Result<(), String> {
    let mut jobs = load_pending(home);
    if !jobs.iter().any(|j| j.category == category) {
        jobs.push(Job {
            category: category.to_string(),
            class: None,
        });
    }
    save_pending(home, &jobs)
}

/// Takes `category` off the rotations owed (the record goes when none is left).
pub fn remove_pending(home: &Home, category: &str) -> Result<(), String> {
    let jobs: Vec<Job> = load_pending(home)
        .into_iter()
        .filter(|j| j.category != category)
        .collect();
    if jobs.is_empty() {
        return match std::fs::remove_file(pending_path(home)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(format!(
                "cannot remove {}: {e}",
                pending_path(home).display()
            )),
            _ => Ok(()),
        };
    }
    save_pending(home, &jobs)
}

/// [`rotate_many`] that records what is left in [`pending_path`] as it goes.
pub fn rotate_owed(
    home: &Home,
    pass: &PasscodeArgs,
    jobs: Vec<Job>,
    acct: Option<(crate::account::Unlocked, std::fs::File)>,
) -> Result<Vec<String>, String> {
    save_pending(home, &jobs)?;
    let mut out = Vec::new();
    let mut acct = acct;
    let mut failed: Vec<Job> = Vec::new();
    let mut why = Vec::new();
    for (i, job) in jobs.iter().enumerate() {
        let one = [Job {
            category: job.category.clone(),
            class: job.class,
        }];
        // One category that cannot be rotated here (locked on this device, say) must not
        // leave the others unrotated: note it, go on, and keep it owed.
        let res = match acct.take() {
            Some((a, lock)) => {
                let mut a = a;
                let r = offline_with(&mut a, &one, crate::account::DEFAULT_BATCH);
                acct = Some((a, lock));
                r
            }
            None => rotate_many(home, pass, &one, crate::account::DEFAULT_BATCH, None),
        };
        match res {
            Ok(lines) => out.extend(lines),
            Err(e) => {
                why.push(format!("{}: {e}", job.category));
                failed.push(Job {
                    category: job.category.clone(),
                    class: job.class,
                });
            }
        }
        let mut left: Vec<Job> = failed
            .iter()
            .map(|j| Job {
                category: j.category.clone(),
                class: j.class,
            })
            .collect();
        left.extend(jobs[i + 1..].iter().map(|j| Job {
            category: j.category.clone(),
            class: j.class,
        }));
        save_pending(home, &left)?;
    }
    if !why.is_empty() {
        for l in &out {
            println!("{l}");
        }
        return Err(format!(
            "{} categories could not be re-encrypted here (run the command again on a device \
             that can read them): {}",
            why.len(),
            why.join("; ")
        ));
    }
    let _ = std::fs::remove_file(pending_path(home));
    Ok(out)
}

/// Rotates each category in turn: through the daemon when the drive is mounted (it is
/// the only writer of heads), else here. `acct`: an account already unlocked by the
/// caller (offline only; it must hold the daemon lock). Returns one line per category.
pub fn rotate_many(
    home: &Home,
    pass: &PasscodeArgs,
    jobs: &[Job],
    batch: u64,
    acct: Option<(crate::account::Unlocked, std::fs::File)>,
) -> Result<Vec<String>, String> {
    if !home.exists() {
        return Err(format!(
            "no Cirrus account in {} (run `{}`, or pass --home)",
            home.root.display(),
            crate::hint::cmd_hint("init")
        ));
    }
    if let Some((acct, _lock)) = acct {
        return offline(acct, jobs, batch);
    }
    match daemon::lock_home(home) {
        // Not mounted: nobody else can write heads while we hold the lock.
        Ok(_lock) => {
            let acct = unlock(Home::new(home.root.clone()), pass)?;
            offline(acct, jobs, batch)
        }
        Err(_) if control::socket_exists(home) => {
            jobs.iter().map(|j| online(home, j, batch)).collect()
        }
        Err(e) => Err(e.to_string()),
    }
}

fn online(home: &Home, job: &Job, batch: u64) -> Result<String, String> {
    let req = control::Request {
        op: "rotate".into(),
        category: Some(job.category.clone()),
        batch_bytes: Some(batch),
        class: job.class.map(|c| c.name().to_string()),
        ..Default::default()
    };
    let mut p = Progress::new(&job.category);
    let res = control::request(home, &req, &mut |d, t| p.update(d, t));
    p.finish();
    res
}

fn offline(
    mut acct: crate::account::Unlocked,
    jobs: &[Job],
    batch: u64,
) -> Result<Vec<String>, String> {
    offline_with(&mut acct, jobs, batch)
}

fn offline_with(
    acct: &mut crate::account::Unlocked,
    jobs: &[Job],
    batch: u64,
) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for job in jobs {
        let setup = acct
            .category_setups()
            .into_iter()
            .find(|(e, _)| e.name == job.category)
            .ok_or_else(|| {
                format!(
                    "unknown category {:?} (see `{}`)",
                    job.category,
                    crate::hint::cmd_hint("category list")
                )
            })?
            .1
            .map_err(|e| format!("category {}: {e}", job.category))?;
        // SAFETY: getuid/getgid have no preconditions.
        let owner = unsafe { (libc::getuid(), libc::getgid()) };
        let witness: Arc<dyn HeadWitness> = acct.seen.clone();
        let cat = Category::open(
            setup,
            acct.store.clone(),
            Arc::new(ChunkCache::new(8 << 20)),
            witness,
            VolumeOptions {
                dirty_limit: 32 << 20,
                owner,
                dirty_total: Default::default(),
                heads: acct.head_signer(),
                device_slot: acct.device_slot(),
            },
        );
        let mut p = Progress::new(&job.category);
        let opts = RotateOptions {
            batch_bytes: batch,
            stop: None,
            class: job.class,
        };
        let res = acct.rotate_category(&job.category, &cat, &opts, &mut |r| {
            p.update(r.done, r.total)
        });
        p.finish();
        let report = res.map_err(|e| e.to_string())?;
        out.push(crate::daemon::describe_rotation(&job.category, &report));
    }
    Ok(out)
}
