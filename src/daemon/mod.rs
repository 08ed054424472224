//! The mount runtime: the daemon's life (build the stack, mount, commit periodically, and
//! on a signal or unmount flush everything and exit), its control socket, its background
//! jobs and the files it publishes, and the runtime of `cirrus umount`, which drives that
//! from outside. A library module, so the CLI only parses arguments and prints: it calls
//! [`serve`] and [`umount`] with typed options and gets [`DaemonError`]s back.

pub mod control;
mod jobs;
mod mountpoint;
mod notify;
mod process;
mod requests;
mod status;
mod umount;

pub use mountpoint::{absolute, is_mounted, unmount_path};
pub use process::{lock_home, no_core_dumps};
pub use requests::describe_rotation;
pub use status::{
    MountStatus, mount_status_path, read_mount_status, read_sync_status, sync_status_path,
    write_sync_status,
};
pub use umount::{UmountProgress, Unmounted, umount};

use crate::account::Unlocked;
use crate::account::remote::NoSession;
use crate::cache::ChunkCache;
use crate::fs::{CirrusFs, FsOptions, Invalidator};
use crate::home::Home;
use crate::store::writeback::WriteBack;
use crate::sync::Syncer;
use crate::volume::{Category, HeadWitness, VolumeOptions};
use log::{error, info, warn};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How the daemon serves a mount (`cirrus mount`'s flags, already checked).
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    /// Bytes of RAM for decrypted data (chunk cache, unsealed writes, transfer buffers).
    pub memory_cache: u64,
    pub allow_other: bool,
    /// Seconds between automatic commits.
    pub commit_interval: u64,
    /// Seconds the kernel may cache names and attributes.
    pub attr_timeout: f64,
    /// FUSE capabilities to request, a comma list (see `mountpoint::capabilities`).
    pub fuse_caps: String,
    /// Kernel read-ahead in KiB (0: the kernel's default).
    pub readahead_kib: u32,
    pub max_write_kib: u32,
    /// Threads serving kernel requests.
    pub threads: usize,
    /// Remote stores: disk cache and journal limits, in bytes.
    pub disk_cache: u64,
    pub journal_max: u64,
    /// Seconds between polls of the store and of the key service's notices.
    pub poll_interval: u64,
    pub upload_threads: u32,
    /// Never write the store: the kernel refuses changes (EROFS), no commit, upload,
    /// sync or key acknowledgement is made, and the drive shows the account as it was
    /// when mounted.
    pub read_only: bool,
    /// Programs on the drive cannot be executed.
    pub noexec: bool,
    /// Honour set-user-ID and set-group-ID bits (root's own mounts only; `cli::mount`
    /// checks).
    pub suid: bool,
    /// Let device nodes be opened (as `suid`: root's own mounts only).
    pub dev: bool,
    /// When reads update access times (`noatime`, `relatime`, `strictatime`).
    pub atime: crate::volume::Atime,
    /// Whether listing a directory updates its access time (off: `nodiratime`).
    pub dir_atime: bool,
}

/// What goes wrong in the mount runtime. The CLI prints the message.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(
        "this account ({}) is already mounted by another cirrus daemon; unmount it first",
        home.display()
    )]
    AlreadyMounted { home: PathBuf },
    #[error("cannot create {}: {source}", path.display())]
    RunDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{} must be yours alone (owner uid {owner}, mode {mode:o}): it holds the daemon's \
         control socket; run `chmod 700 {}`",
        path.display(),
        path.display()
    )]
    NotPrivate {
        path: PathBuf,
        owner: u32,
        mode: u32,
    },
    #[error("cannot open {}: {source}", path.display())]
    OpenLock {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot lock {}: {source}", path.display())]
    Lock {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot mount at {}: {source}", mountpoint.display())]
    Mount {
        mountpoint: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start serving {}: {source}", mountpoint.display())]
    Serve {
        mountpoint: PathBuf,
        source: std::io::Error,
    },
    /// The session ended, but a category's last commit failed (the log says which).
    #[error("unmounted, but some data could not be committed (see the log)")]
    Uncommitted,
    #[error("{} is not mounted", mountpoint.display())]
    NotMounted { mountpoint: PathBuf },
    #[error(
        "{} is busy: close the programs using it (see `fuser -vm {}`) and retry",
        mountpoint.display(),
        mountpoint.display()
    )]
    Busy { mountpoint: PathBuf },
    #[error("mountpoint contains NUL")]
    NulInMountpoint,
    #[error("cannot unmount {}: {reason}", mountpoint.display())]
    Unmount { mountpoint: PathBuf, reason: String },
    #[error("cannot start the sealing threads: {0}")]
    Threads(std::io::Error),
    #[error("cannot run fusermount3 (install fuse3): {0}")]
    NoFusermount(std::io::Error),
    #[error(
        "unmounted, but the daemon (pid {pid}) is still flushing after {}s; see {}",
        timeout.as_secs(),
        log.display()
    )]
    StillFlushing {
        pid: i32,
        timeout: Duration,
        log: PathBuf,
    },
}

/// What a mount says when it goes on without the key service. The drive does not log in
/// again by itself: it would have to keep the account password in memory.
pub fn held_keys_warning(why: &NoSession) -> String {
    format!(
        "not logged in to the key service: {why}. The drive opens with the keys this device \
         holds; the categories that need the key service are not shown (`cirrus status` \
         lists them as locked) until a mount that logs in"
    )
}

/// How `--memory-cache` is split.
struct Budget {
    /// Unsealed writes across the mount's categories.
    dirty_limit: usize,
    /// The clean-chunk cache: what is left.
    cache_bytes: usize,
}

impl Budget {
    /// Unsealed writes, one pack buffer being filled and the clean-chunk cache together
    /// stay within the memory cache. With a remote store, each uploader thread holds one
    /// pack on its way out and each kernel-request thread may hold one pack on its way
    /// in: both come out of the budget too.
    fn of(opts: &DaemonOptions, remote: bool) -> Budget {
        let mem = opts.memory_cache as usize;
        let dirty_limit = (mem / 8).clamp(4 << 20, 64 << 20);
        let pack_buf = crate::format::PACK_TARGET + crate::format::CHUNK_SIZE as usize;
        // Each sealing thread fills a pack of its own (volume/sealer.rs).
        let sealing_bufs = sealer_threads(opts.memory_cache) * pack_buf;
        let transfer_bufs = if remote {
            (opts.upload_threads as usize + opts.threads) * (pack_buf + 4096)
        } else {
            0
        };
        let cache_bytes = mem
            .saturating_sub(dirty_limit + pack_buf + sealing_bufs + transfer_bufs)
            .max(4 << 20);
        Budget {
            dirty_limit,
            cache_bytes,
        }
    }
}

/// Sealing threads of a mount: one per core (up to 8), and one per 64 MiB of
/// `memory_cache` (each keeps a pack buffer of 8.25 MiB out of it). The kernel's
/// requests take less than half a core while writing; with one sealer per core fewer, a
/// stream of writes on two cores reached 650 MB/s, with one per core 740 (docs/BENCH.md).
fn sealer_threads(memory_cache: u64) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let affordable = (memory_cache / (64 << 20)) as usize;
    cores.min(affordable).clamp(1, 8)
}

/// Opens every category the account can unlock. Returns them and, for the others,
/// "NAME: WHY" (they are not shown).
fn open_categories(
    acct: &Unlocked,
    cache: &Arc<ChunkCache>,
    vopts: &VolumeOptions,
) -> (Vec<Arc<Category>>, Vec<String>) {
    // The daemon's commits record their heads behind them (its shutdown flushes them).
    acct.seen.allow_write_behind();
    let witness: Arc<dyn HeadWitness> = acct.seen.clone();
    let mut cats = Vec::new();
    let mut locked = Vec::new();
    for (entry, setup) in acct.category_setups() {
        match setup {
            Ok(setup) => cats.push(Category::open(
                setup,
                acct.store.clone(),
                cache.clone(),
                witness.clone(),
                vopts.clone(),
            )),
            Err(e) => {
                error!(
                    "category {} cannot be unlocked and is not shown: {e}",
                    entry.name
                );
                locked.push(format!("{}: {e}", entry.name));
            }
        }
    }
    for c in &cats {
        if let (_, _, _, Some(why)) = c.stats() {
            warn!("category {} is unavailable: {why}", c.name);
        }
    }
    (cats, locked)
}

/// The running mount's parts that the daemon loop and its shutdown need.
struct Running {
    home: Home,
    acct: Arc<Mutex<Unlocked>>,
    mp: PathBuf,
    cache: Arc<ChunkCache>,
    cats: Vec<Arc<Category>>,
    wb: Option<Arc<WriteBack>>,
    syncer: Option<Arc<Syncer>>,
    no_wait: Arc<AtomicBool>,
    /// Stops the sync and notice threads.
    stop_jobs: Arc<AtomicBool>,
    sync_thread: Option<JoinHandle<()>>,
}

/// Serves the account's categories at `mp` until unmounted or signalled. `ready` is called
/// once the drive is mounted, with the categories not shown ("NAME: WHY").
pub fn serve(
    mut acct: Unlocked,
    mp: &Path,
    opts: &DaemonOptions,
    ready: &mut dyn FnMut(&[String]),
) -> Result<(), DaemonError> {
    process::harden_process();
    if opts.read_only {
        // Without the write-back there is no uploader, no syncer and so no merge or
        // acknowledgement to publish; reads still go through its journal and disk cache.
        // (`account::unlock_read_only` wrapped the store already; a second wrap costs
        // nothing and holds whoever unlocked otherwise.)
        acct.store = Arc::new(crate::store::ReadOnlyStore::new(acct.store.clone()));
        if let Some(wb) = acct.sync.take() {
            wb.set_limits(opts.disk_cache, opts.journal_max);
        }
    }
    let _home_lock = lock_home(&acct.home)?;
    process::check_private(&acct.home)?;
    if let Some(why) = acct.no_session() {
        warn!("{}", held_keys_warning(why));
    }
    let budget = Budget::of(opts, acct.sync.is_some());
    let cache = Arc::new(ChunkCache::new(budget.cache_bytes));
    // SAFETY: getuid/getgid have no preconditions.
    let owner = unsafe { (libc::getuid(), libc::getgid()) };
    let vopts = VolumeOptions {
        dirty_limit: budget.dirty_limit,
        owner,
        dirty_total: Arc::new(AtomicUsize::new(0)),
        heads: acct.head_signer(),
        device_slot: acct.device_slot(),
        sealer: Some(
            crate::volume::Sealer::start(sealer_threads(opts.memory_cache))
                .map_err(DaemonError::Threads)?,
        ),
        read_only: opts.read_only,
        atime: opts.atime,
        dir_atime: opts.dir_atime,
    };
    let (cats, locked) = open_categories(&acct, &cache, &vopts);
    // Before any job runs: what a poll changes from now on reaches the kernel.
    for c in &cats {
        c.watch_for_kernel();
    }
    let store = acct.store.clone();
    let mut run = start_jobs(acct, mp, opts, cache, cats);
    let handler = requests::handler(requests::Served {
        home: Home::new(run.home.root.clone()),
        acct: run.acct.clone(),
        cats: run.cats.clone(),
        wb: run.wb.clone(),
        syncer: run.syncer.clone(),
        no_wait: run.no_wait.clone(),
        read_only: opts.read_only,
        mount_status: {
            let (mp, cache, cats) = (run.mp.clone(), run.cache.clone(), run.cats.clone());
            let read_only = opts.read_only;
            Box::new(move || status::mount_status(&mp, &cache, &cats, read_only))
        },
    });
    let fs = CirrusFs::new(
        run.cats.clone(),
        FsOptions {
            ttl: Duration::from_secs_f64(opts.attr_timeout),
            owner,
            max_write: opts.max_write_kib.clamp(4, 16 * 1024) * 1024,
            capabilities: mountpoint::capabilities(&opts.fuse_caps),
        },
        Box::new(move || store.usage()),
    );
    let kernel = fs.kernel_link();
    let bg = mount_session(fs, mp, opts)?;
    let _ = kernel.set(Invalidator::new(bg.notifier()));
    if let Some(sy) = &run.syncer {
        let kernel = Invalidator::new(bg.notifier());
        sy.tell_kernel_with(Box::new(move |cat, stale| kernel.tell(cat, stale)));
    }
    // Before telling the parent we are mounted, so `cirrus rotate` right after finds it.
    let control = match control::Server::start(&run.home, handler) {
        Ok(c) => Some(c),
        Err(e) => {
            warn!(
                "{e}; `{}` cannot reach this mount",
                crate::hint::cmd_hint("rotate")
            );
            None
        }
    };
    let pf = umount::pidfile(&run.home, mp);
    let _ = std::fs::write(&pf, format!("{}\n{}\n", std::process::id(), mp.display()));
    info!(
        "mounted {} with {} categories (memory cache {} MiB)",
        mp.display(),
        run.cats.len(),
        opts.memory_cache >> 20
    );
    // Before anyone is told the drive is mounted: a SIGTERM right after READY must
    // unmount cleanly, not find the default action (death, a stale mount).
    let term = catch_stop_signals();
    ready(&locked);
    notify::ready(&format!("mounted at {}", mp.display()));
    run_until_unmounted(&run, &bg.guard, opts, &term);
    notify::stopping();
    // The session ended (unmounted): fuser has called destroy(), which committed.
    if let Err(e) = bg.join() {
        warn!("session ended with: {e}");
    }
    // A running rotation stops after its current batch (committed; resumable).
    if let Some(c) = control {
        c.shutdown();
    }
    let clean = shut_down(&mut run);
    let _ = std::fs::remove_file(&pf);
    if clean {
        info!("unmounted {} cleanly", mp.display());
        Ok(())
    } else {
        Err(DaemonError::Uncommitted)
    }
}

/// Starts the background jobs: the notice watch (with a key service), the write-back's
/// uploaders and the syncer's thread (with a remote store). From here on the account is
/// shared with the syncer's hooks and the control requests.
fn start_jobs(
    acct: Unlocked,
    mp: &Path,
    opts: &DaemonOptions,
    cache: Arc<ChunkCache>,
    cats: Vec<Arc<Category>>,
) -> Running {
    let stop_jobs = Arc::new(AtomicBool::new(false));
    let every = Duration::from_secs(opts.poll_interval);
    if acct.config.server.is_some() {
        jobs::start_notice_watch(&acct, every, stop_jobs.clone());
    }
    let home = Home::new(acct.home.root.clone());
    let wb = acct.sync.clone();
    if let Some(wb) = &wb {
        wb.set_limits(opts.disk_cache, opts.journal_max);
        wb.start(opts.upload_threads as usize);
    }
    let device_name = acct.config.device_name.clone();
    let acct = Arc::new(Mutex::new(acct));
    let syncer = wb
        .as_ref()
        .map(|wb| jobs::syncer(&cats, wb, device_name, &acct));
    let sync_thread = match (&syncer, &wb) {
        (Some(sy), Some(wb)) => {
            jobs::start_sync_thread(sy.clone(), wb.clone(), every, stop_jobs.clone())
        }
        _ => None,
    };
    Running {
        home,
        acct,
        mp: mp.to_path_buf(),
        cache,
        cats,
        wb,
        syncer,
        no_wait: Arc::new(AtomicBool::new(false)),
        stop_jobs,
        sync_thread,
    }
}

/// Mounts `fs` at `mp` and starts serving it in fuser's threads.
fn mount_session(
    fs: CirrusFs,
    mp: &Path,
    opts: &DaemonOptions,
) -> Result<fuser::BackgroundSession, DaemonError> {
    let mut options = vec![
        fuser::MountOption::FSName("cirrus".into()),
        fuser::MountOption::Subtype("cirrus".into()),
        fuser::MountOption::DefaultPermissions,
    ];
    let acl = if opts.allow_other {
        fuser::SessionACL::All
    } else {
        fuser::SessionACL::Owner
    };
    if opts.allow_other {
        options.push(fuser::MountOption::CUSTOM("allow_other".into()));
    }
    if opts.read_only {
        options.push(fuser::MountOption::RO);
    }
    if opts.noexec {
        options.push(fuser::MountOption::NoExec);
    }
    // Without these fuser mounts nosuid,nodev.
    if opts.suid {
        options.push(fuser::MountOption::Suid);
    }
    if opts.dev {
        options.push(fuser::MountOption::Dev);
    }
    // Shown in /proc/mounts; the daemon itself keeps the times (FUSE inodes are
    // S_NOATIME to the kernel).
    if opts.atime == crate::volume::Atime::Never {
        options.push(fuser::MountOption::NoAtime);
    }
    let mut config = fuser::Config::default();
    config.mount_options = options;
    config.acl = acl;
    config.n_threads = Some(opts.threads);
    config.clone_fd = true;
    let session = fuser::Session::new(fs, mp, &config).map_err(|source| DaemonError::Mount {
        mountpoint: mp.to_path_buf(),
        source,
    })?;
    let bg = session.spawn().map_err(|source| DaemonError::Serve {
        mountpoint: mp.to_path_buf(),
        source,
    })?;
    if opts.readahead_kib > 0 {
        mountpoint::set_readahead(mp, opts.readahead_kib);
    }
    Ok(bg)
}

/// SIGTERM, SIGINT and SIGHUP set the returned flag instead of ending the process: the
/// daemon loop then commits and unmounts.
fn catch_stop_signals() -> Arc<AtomicBool> {
    let term = Arc::new(AtomicBool::new(false));
    for sig in [
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGHUP,
    ] {
        if let Err(e) = signal_hook::flag::register(sig, term.clone()) {
            warn!("cannot install handler for signal {sig}: {e}");
        }
    }
    term
}

/// The daemon loop, until the session ends: a signal commits and unmounts; every second
/// the upload state is published; every commit interval the status file is rewritten and
/// dirty categories are committed.
fn run_until_unmounted(
    run: &Running,
    session: &JoinHandle<std::io::Result<()>>,
    opts: &DaemonOptions,
    term: &AtomicBool,
) {
    let status_path = mount_status_path(&run.home);
    status::write_mount_status(&status_path, run, opts.read_only);
    let interval = Duration::from_secs(opts.commit_interval.max(1));
    let mut last_commit = Instant::now();
    // None: not written yet (no `Instant` arithmetic that could go below boot time).
    let mut last_sync_status: Option<Instant> = None;
    let mut unmount_requested = false;
    let mut last_notified: Option<String> = None;
    while !session.is_finished() {
        std::thread::sleep(Duration::from_millis(100));
        if term.load(Ordering::Relaxed) && !unmount_requested {
            info!("signal received: flushing and unmounting");
            notify::stopping();
            for c in &run.cats {
                if let Err(e) = c.commit() {
                    error!("category {}: commit failed: {e}", c.name);
                }
            }
            match unmount_path(&run.mp, false) {
                Ok(()) => unmount_requested = true,
                Err(e) => {
                    error!("{e}; still serving");
                    term.store(false, Ordering::Relaxed);
                }
            }
        }
        if let Some(wb) = &run.wb
            && last_sync_status.is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
        {
            last_sync_status = Some(Instant::now());
            let st = wb.status();
            write_sync_status(&run.home, &st);
            let line = notify::sync_line(&st);
            if last_notified.as_deref() != Some(line.as_str()) {
                notify::status(&line);
                last_notified = Some(line);
            }
        }
        if last_commit.elapsed() >= interval {
            last_commit = Instant::now();
            status::write_mount_status(&status_path, run, opts.read_only);
            for c in &run.cats {
                if c.is_dirty()
                    && let Err(e) = c.commit()
                {
                    error!("category {}: periodic commit failed: {e}", c.name);
                }
            }
        }
    }
}

/// After the session: the final commits, the jobs stopped, the upload queue sent (or
/// left in the journal), the published files removed. Whether every commit succeeded.
fn shut_down(run: &mut Running) -> bool {
    let mut clean = true;
    for c in &run.cats {
        if c.is_dirty()
            && let Err(e) = c.commit()
        {
            error!("category {}: final commit failed: {e}", c.name);
            clean = false;
        }
    }
    run.stop_jobs.store(true, Ordering::Relaxed);
    if let Some(t) = run.sync_thread.take() {
        let _ = t.join();
    }
    if let Some(wb) = &run.wb {
        jobs::finish_uploads(&run.home, wb, run.syncer.as_deref(), &run.no_wait);
    }
    // Commits record their heads behind them, and the last ones (the final commits, the
    // sync's last merge) may be on their way: the process exits without dropping the
    // record. The categories share it.
    if let Some(c) = run.cats.first() {
        c.flush_witness();
    }
    let _ = std::fs::remove_file(mount_status_path(&run.home));
    let _ = std::fs::remove_file(sync_status_path(&run.home));
    clean
}
