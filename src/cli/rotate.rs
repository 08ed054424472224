//! `cirrus rotate --category NAME`: re-encrypt a category under a new key version and
//! destroy the old one. While the drive is mounted the daemon does the work (it is the
//! only writer of the category's head) and this shows its progress; otherwise the same
//! engine runs here. Running it again after an interruption resumes the rotation.

use super::{PasscodeArgs, control, daemon, mount::parse_size, unlock};
use crate::account::{RotateOptions, RotateReport};
use crate::cache::ChunkCache;
use crate::home::Home;
use crate::volume::{Category, HeadWitness, VolumeOptions};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Arc;

#[derive(clap::Args)]
pub struct RotateArgs {
    /// The category whose key to replace (e.g. Photos).
    #[arg(long)]
    pub category: String,
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
}

impl Progress {
    fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let pb = ProgressBar::new(0);
            pb.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            pb.set_message("rotating");
            pb
        });
        Progress {
            bar,
            started: false,
        }
    }

    fn update(&mut self, done: u64, total: u64) {
        match &self.bar {
            Some(pb) => {
                pb.set_length(total);
                pb.set_position(done);
                if !self.started {
                    // A resumed rotation starts part-way: the rate counts from here.
                    pb.reset_eta();
                }
            }
            None => {
                // One line per committed batch (64 MiB by default): few enough for a log.
                let pct = (done * 100).checked_div(total).unwrap_or(100);
                eprintln!("progress: {done} of {total} bytes ({pct}%)");
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

fn describe(name: &str, r: &RotateReport) -> String {
    format!(
        "{} the key of {name}: everything is now sealed under key version {}; key version {} \
         is destroyed.",
        if r.resumed {
            "Finished rotating"
        } else {
            "Rotated"
        },
        r.to,
        r.from
    )
}

pub fn run(home: Home, args: RotateArgs) -> super::CliResult {
    if !home.exists() {
        return Err(format!(
            "no Cirrus account in {} (run `cirrus init`, or pass --home)",
            home.root.display()
        ));
    }
    match daemon::lock_home(&home) {
        // Not mounted: nobody else can write heads while we hold the lock.
        Ok(lock) => offline(home, args, lock),
        Err(_) if control::socket_exists(&home) => online(&home, &args),
        Err(e) => Err(e),
    }
}

fn online(home: &Home, args: &RotateArgs) -> super::CliResult {
    let req = control::Request {
        op: "rotate".into(),
        category: Some(args.category.clone()),
        batch_bytes: Some(args.batch),
    };
    let mut p = Progress::new();
    let res = control::request(home, &req, &mut |d, t| p.update(d, t));
    p.finish();
    let msg = res?;
    println!("{msg}");
    Ok(0)
}

fn offline(home: Home, args: RotateArgs, _lock: std::fs::File) -> super::CliResult {
    let mut acct = unlock(home, &args.pass)?;
    let setup = acct
        .category_setups()
        .into_iter()
        .find(|(e, _)| e.name == args.category)
        .ok_or_else(|| {
            format!(
                "unknown category {:?} (see `cirrus category list`)",
                args.category
            )
        })?
        .1
        .map_err(|e| format!("category {}: {e}", args.category))?;
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
        },
    );
    let mut p = Progress::new();
    let opts = RotateOptions {
        batch_bytes: args.batch,
        stop: None,
    };
    let res = acct.rotate_category(&args.category, &cat, &opts, &mut |r| {
        p.update(r.done, r.total)
    });
    p.finish();
    let report = res.map_err(|e| e.to_string())?;
    println!("{}", describe(&args.category, &report));
    Ok(0)
}

/// The daemon's side of a `rotate` request.
pub(crate) fn serve_request(
    acct: &std::sync::Mutex<crate::account::Unlocked>,
    cats: &[Arc<Category>],
    busy: &std::sync::Mutex<()>,
    req: &control::Request,
    cancel: &std::sync::atomic::AtomicBool,
    send: &mut dyn FnMut(&control::Reply),
) -> control::Reply {
    let Some(name) = req.category.as_deref() else {
        return control::Reply::error("rotate: no category given".into());
    };
    let Some(cat) = cats.iter().find(|c| c.name == name) else {
        return control::Reply::error(format!(
            "category {name:?} is not part of this mount (unknown, retired, added after \
             mounting, or its key could not be unlocked)"
        ));
    };
    // One rotation at a time: each walks a whole category and fills the dirty budget.
    let Ok(_one) = busy.try_lock() else {
        return control::Reply::error("another key rotation is running on this drive".into());
    };
    let mut acct = acct.lock().unwrap_or_else(|p| p.into_inner());
    let opts = RotateOptions {
        batch_bytes: req.batch_bytes.unwrap_or(crate::account::DEFAULT_BATCH),
        stop: Some(cancel),
    };
    match acct.rotate_category(name, cat, &opts, &mut |p| {
        send(&control::Reply::progress(p.done, p.total))
    }) {
        Ok(r) => control::Reply::ok(describe(name, &r)),
        Err(e) => {
            log::error!("category {name}: key rotation: {e}");
            control::Reply::error(e.to_string())
        }
    }
}
