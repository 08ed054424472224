//! The mount daemon's life: build the stack, mount, commit periodically, and on a signal or
//! unmount flush everything and exit. Also `cirrus umount`, which drives that from outside.

use super::control;
use super::mount::{MountArgs, absolute, is_mounted};
use crate::account::Unlocked;
use crate::cache::ChunkCache;
use crate::fs::{CirrusFs, FsOptions};
use crate::home::Home;
use crate::store::writeback::WriteBack;
use crate::volume::{Category, HeadWitness, VolumeOptions};
use log::{error, info, warn};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

fn pidfile(home: &Home, mp: &Path) -> PathBuf {
    let h = blake3::hash(mp.as_os_str().as_encoded_bytes());
    home.run_dir()
        .join(format!("mount-{}.pid", &h.to_hex()[..16]))
}

fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path)
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

/// Whether the daemon still runs. A zombie (exited, not yet reaped by whoever inherited
/// it) counts as gone.
fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence and permission.
    if pid <= 0 || unsafe { libc::kill(pid, 0) } != 0 {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_none_or(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => true,
    }
}

/// FUSE capabilities to request. Defaults from measurements (docs/BENCH.md): readdirplus
/// and parallel directory operations help `ls -lR` and untar; KILLPRIV_V2 (we clear
/// set-user/group-ID bits ourselves) spares the kernel's getxattr("security.capability")
/// round trip before every write; writeback caching and kernel POSIX ACLs did not pay
/// for their semantic risk.
fn capabilities(spec: &str) -> Vec<fuser::InitFlags> {
    use fuser::InitFlags as F;
    let mut v = Vec::new();
    for name in spec.split(',').map(str::trim) {
        match name {
            "readdirplus" => v.push(F::FUSE_DO_READDIRPLUS | F::FUSE_READDIRPLUS_AUTO),
            "parallel-dirops" => v.push(F::FUSE_PARALLEL_DIROPS),
            "writeback" => v.push(F::FUSE_WRITEBACK_CACHE),
            "posix-acl" => v.push(F::FUSE_POSIX_ACL),
            "killpriv" => v.push(F::FUSE_HANDLE_KILLPRIV_V2),
            "" | "none" => {}
            other => warn!("--fuse-caps: unknown capability {other:?} ignored"),
        }
    }
    v
}

/// Raises the kernel's read-ahead window of our mount (measured: 0.88 GB/s with the
/// default 128 KiB, 1.4 GB/s with 4 MiB for a cold sequential read). Needs root; other
/// users keep the default.
fn set_readahead(mp: &Path, kib: u32) {
    let Some(dev) = super::mount::mount_device(mp) else {
        warn!(
            "cannot find the device of {} to tune read-ahead",
            mp.display()
        );
        return;
    };
    let knob = format!("/sys/class/bdi/{dev}/read_ahead_kb");
    match std::fs::write(&knob, kib.to_string()) {
        Ok(()) => info!("read-ahead set to {kib} KiB ({knob})"),
        Err(e) => info!("read-ahead left at the kernel default ({knob}: {e})"),
    }
}

/// A small plaintext report for `cirrus status` (no names, no keys: counts only).
fn write_status(path: &Path, mp: &Path, cache: &ChunkCache, cats: &[Arc<Category>]) {
    let (used, cap) = cache.usage();
    let unsynced = cats.iter().filter(|c| c.is_dirty()).count();
    let text = format!(
        "{}\nat {}\nmemory cache {} of {} MiB\n{} categories with uncommitted changes\n",
        std::process::id(),
        mp.display(),
        used >> 20,
        cap >> 20,
        unsynced
    );
    let _ = crate::home::write_atomic(path, text.as_bytes());
}

/// One daemon per home: two would race on the same heads and lose each other's commits.
pub(crate) fn lock_home(home: &Home) -> Result<std::fs::File, String> {
    let run = home.run_dir();
    std::fs::create_dir_all(&run).map_err(|e| format!("cannot create {}: {e}", run.display()))?;
    let p = run.join("daemon.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .map_err(|e| format!("cannot open {}: {e}", p.display()))?;
    // Held for the daemon's lifetime (released when `f` is dropped). Only "held by
    // someone else" means another daemon; any other failure is reported as itself.
    match f.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(format!(
                "this account ({}) is already mounted by another cirrus daemon; unmount it first",
                home.root.display()
            ));
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(format!("cannot lock {}: {e}", p.display()));
        }
    }
    Ok(f)
}

/// Keeps secrets out of core dumps and, where allowed, out of swap.
fn harden_process() {
    super::no_core_dumps();
    // SAFETY: plain syscalls with valid arguments.
    unsafe {
        // Memory: chunk buffers (256 KiB) stay in the heap, where same-sized blocks are
        // reused; a fixed threshold keeps glibc from raising it (it would otherwise move
        // every large buffer into the heap after the first free and fragment it). One
        // arena: with one per thread, blocks freed by the other thread (cache evictions)
        // stay resident in an arena that no longer allocates them. Measured in
        // tests/memory_bound.rs: 143 MiB RSS with glibc defaults, 72 MiB with these.
        libc::mallopt(libc::M_MMAP_THRESHOLD, 512 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 1);
        // Keep up to 8 MiB free at the heap top instead of returning and refaulting it
        // for every chunk buffer.
        libc::mallopt(libc::M_TRIM_THRESHOLD, 8 << 20);
        if libc::geteuid() == 0 {
            let inf = libc::rlimit {
                rlim_cur: libc::RLIM_INFINITY,
                rlim_max: libc::RLIM_INFINITY,
            };
            libc::setrlimit(libc::RLIMIT_MEMLOCK, &inf);
            if libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE | libc::MCL_ONFAULT) != 0 {
                warn!(
                    "mlockall failed ({}); keys may reach swap",
                    std::io::Error::last_os_error()
                );
            }
        } else {
            info!("not root: memory is not locked, keys may reach swap if swap is enabled");
        }
    }
}

/// Unmounts with the kernel (root) or fusermount3 (users). `lazy` detaches a dead mount.
pub fn unmount_path(mp: &Path, lazy: bool) -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let c = std::ffi::CString::new(mp.as_os_str().as_encoded_bytes())
            .map_err(|_| "mountpoint contains NUL".to_string())?;
        let flags = if lazy { libc::MNT_DETACH } else { 0 };
        // SAFETY: c is a valid NUL-terminated path.
        if unsafe { libc::umount2(c.as_ptr(), flags) } != 0 {
            let e = std::io::Error::last_os_error();
            return Err(if e.raw_os_error() == Some(libc::EBUSY) {
                format!(
                    "{} is busy: close the programs using it (see `fuser -vm {}`) and retry",
                    mp.display(),
                    mp.display()
                )
            } else {
                format!("cannot unmount {}: {e}", mp.display())
            });
        }
        Ok(())
    } else {
        let flag = if lazy { "-uz" } else { "-u" };
        let out = std::process::Command::new("fusermount3")
            .arg(flag)
            .arg(mp)
            .output()
            .map_err(|e| format!("cannot run fusermount3 (install fuse3): {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "cannot unmount {}: {}",
                mp.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }
}

/// Reads the key service's notices at every poll while mounted, and logs each new one
/// (and a pending password reset, once per reset) as a warning. No password is needed:
/// the remembered-device token is enough.
fn start_notice_watch(acct: &Unlocked, every: Duration, stop: Arc<AtomicBool>) {
    let watch = match acct.notice_watch() {
        Ok(w) => w,
        Err(e) => {
            warn!("key service notices will not be read while mounted: {e}");
            return;
        }
    };
    let spawned = std::thread::Builder::new()
        .name("notices".into())
        .spawn(move || {
            let mut last_id: Option<u64> = None;
            let mut warned_pending: Option<u64> = None;
            let mut next = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                if Instant::now() >= next {
                    next = Instant::now() + every;
                    match watch.fetch() {
                        Ok(r) => {
                            // At mount, only what happened in the last week.
                            let week_ago = std::time::SystemTime::now()
                                .duration_since(std::time::UNIX_EPOCH)
                                .map(|d| d.as_secs().saturating_sub(7 * 86400))
                                .unwrap_or(0);
                            let new = |n: &&crate::keyservice::api::Notice| match last_id {
                                Some(l) => n.id > l,
                                None => n.at >= week_ago,
                            };
                            for n in r.notices.iter().filter(new) {
                                warn!(
                                    "key service notice: {}",
                                    crate::account::notices::describe(n)
                                );
                            }
                            last_id = r.notices.last().map(|n| n.id).or(last_id);
                            if r.pending_reset != warned_pending {
                                if let Some(w) = crate::account::notices::pending_warning(&r) {
                                    warn!("{w}");
                                }
                                warned_pending = r.pending_reset;
                            }
                        }
                        Err(e) => log::debug!("cannot read the key service's notices: {e}"),
                    }
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        });
    if let Err(e) = spawned {
        warn!("cannot start the notice thread: {e}");
    }
}

pub fn serve(
    acct: Unlocked,
    mp: &Path,
    args: &MountArgs,
    notify: &mut Option<std::fs::File>,
) -> super::CliResult {
    harden_process();
    let _home_lock = lock_home(&acct.home)?;
    if let Some(why) = acct.no_session() {
        warn!("{}", super::mount::held_keys_warning(why));
    }
    // The budget: unsealed writes, one pack buffer being filled and the clean-chunk cache
    // together stay within --memory-cache.
    let mem = args.memory_cache as usize;
    let dirty_limit = (mem / 8).clamp(4 << 20, 64 << 20);
    let pack_buf = crate::format::PACK_TARGET + crate::format::CHUNK_SIZE as usize;
    // With a remote store, each uploader thread holds one pack on its way out and each
    // kernel-request thread may hold one pack on its way in: both come out of the budget.
    let transfer_bufs = if acct.sync.is_some() {
        (args.upload_threads as usize + args.threads) * (pack_buf + 4096)
    } else {
        0
    };
    let cache_bytes = mem
        .saturating_sub(dirty_limit + pack_buf + transfer_bufs)
        .max(4 << 20);
    let cache = Arc::new(ChunkCache::new(cache_bytes));
    // SAFETY: getuid/getgid have no preconditions.
    let owner = unsafe { (libc::getuid(), libc::getgid()) };
    let vopts = VolumeOptions {
        dirty_limit,
        owner,
        dirty_total: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
        heads: acct.head_signer(),
        device_slot: acct.device_slot(),
    };
    let witness: Arc<dyn HeadWitness> = acct.seen.clone();
    let mut cats: Vec<Arc<Category>> = Vec::new();
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
    let notice_stop = Arc::new(AtomicBool::new(false));
    if acct.config.server.is_some() {
        start_notice_watch(
            &acct,
            Duration::from_secs(args.poll_interval),
            notice_stop.clone(),
        );
    }
    let store = acct.store.clone();
    let home = Home::new(acct.home.root.clone());
    let wb = acct.sync.clone();
    if let Some(wb) = &wb {
        wb.set_limits(args.disk_cache, args.journal_max);
        wb.start(args.upload_threads as usize);
    }
    let no_wait = Arc::new(AtomicBool::new(false));
    let device_name = acct.config.device_name.clone();
    let acct = Arc::new(std::sync::Mutex::new(acct));
    let (key_acct, ack_acct, release_acct, heads_acct) =
        (acct.clone(), acct.clone(), acct.clone(), acct.clone());
    let release_cats = cats.clone();
    let syncer = wb.as_ref().map(|wb| {
        Arc::new(crate::sync::Syncer::new(
            cats.clone(),
            wb.clone(),
            device_name,
            crate::sync::AccountHooks {
                keys: Box::new(move |cat, version| {
                    account_if_free(&key_acct)?
                        .newer_category_key(cat, version)
                        .map_err(hook_error)
                }),
                // A rotation holds the account for minutes and may wait for this
                // thread to merge: the hooks skip a busy account (the next poll retries).
                ack: Box::new(move |floors, heads, published| {
                    account_if_free(&ack_acct)?
                        .write_ack(floors, heads, published)
                        .map_err(hook_error)
                }),
                acked_heads: Box::new(move || {
                    account_if_free(&heads_acct)?
                        .acked_heads()
                        .map_err(hook_error)
                }),
                release: Box::new(move |floors| {
                    account_if_free(&release_acct)?
                        .destroy_released_keys(floors, &release_cats)
                        .map_err(hook_error)
                }),
            },
        ))
    });
    let stop_sync = Arc::new(AtomicBool::new(false));
    let sync_thread = match (&syncer, &wb) {
        (Some(sy), Some(wb)) => {
            wb.set_merging(true);
            let (sy, wb, stop) = (sy.clone(), wb.clone(), stop_sync.clone());
            let every = Duration::from_secs(args.poll_interval);
            std::thread::Builder::new()
                .name("sync".into())
                .spawn(move || {
                    let mut last = Instant::now() - every;
                    let mut last_usage: Option<Instant> = None;
                    while !stop.load(Ordering::Relaxed) {
                        if last.elapsed() >= every || wb.has_conflicts() {
                            last = Instant::now();
                            sy.poll(false);
                        }
                        // What `df` shows: the store's bytes, listed every 10 minutes.
                        if last_usage.is_none_or(|t| t.elapsed() > Duration::from_secs(600)) {
                            last_usage = Some(Instant::now());
                            if let Err(e) = wb.refresh_usage() {
                                log::debug!("cannot list the store for its usage: {e}");
                            }
                        }
                        std::thread::sleep(Duration::from_millis(200));
                    }
                })
                .map_err(|e| warn!("cannot start the sync thread: {e}"))
                .ok()
        }
        _ => None,
    };
    let ctl_syncer = syncer.clone();
    let ctl_cats = cats.clone();
    let ctl_wb = wb.clone();
    let ctl_no_wait = no_wait.clone();
    let ctl_home = Home::new(home.root.clone());
    let busy = std::sync::Mutex::new(());
    let handler: Arc<control::Handler> = Arc::new(move |req, cancel, send| match req.op.as_str() {
        "rotate" => super::rotate::serve_request(&acct, &ctl_cats, &busy, req, cancel, send),
        "sync" => sync_request(
            &ctl_home,
            &ctl_cats,
            ctl_wb.as_deref(),
            ctl_syncer.as_deref(),
            req,
            cancel,
            send,
        ),
        "no-wait" => {
            ctl_no_wait.store(true, Ordering::Relaxed);
            control::Reply::ok("the daemon will not wait for uploads when it stops".into())
        }
        other => control::Reply::error(format!("unknown request {other:?}")),
    });
    let fs = CirrusFs::new(
        cats.clone(),
        FsOptions {
            ttl: Duration::from_secs_f64(args.attr_timeout),
            owner,
            max_write: args.max_write_kib.clamp(4, 16 * 1024) * 1024,
            capabilities: capabilities(&args.fuse_caps),
        },
        Box::new(move || store.usage()),
    );
    let mut options = vec![
        fuser::MountOption::FSName("cirrus".into()),
        fuser::MountOption::Subtype("cirrus".into()),
        fuser::MountOption::DefaultPermissions,
    ];
    let acl = if args.allow_other {
        fuser::SessionACL::All
    } else {
        fuser::SessionACL::Owner
    };
    if args.allow_other {
        options.push(fuser::MountOption::CUSTOM("allow_other".into()));
    }
    let mut config = fuser::Config::default();
    config.mount_options = options;
    config.acl = acl;
    config.n_threads = Some(args.threads);
    config.clone_fd = true;
    let session = fuser::Session::new(fs, mp, &config)
        .map_err(|e| format!("cannot mount at {}: {e}", mp.display()))?;
    let bg = session
        .spawn()
        .map_err(|e| format!("cannot start serving {}: {e}", mp.display()))?;
    if args.readahead_kib > 0 {
        set_readahead(mp, args.readahead_kib);
    }
    // Before telling the parent we are mounted, so `cirrus rotate` right after finds it.
    let control = match control::Server::start(&home, handler) {
        Ok(c) => Some(c),
        Err(e) => {
            warn!(
                "{e}; `{}` cannot reach this mount",
                crate::hint::cmd_hint("rotate")
            );
            None
        }
    };
    let pf = pidfile(&home, mp);
    let _ = std::fs::write(&pf, format!("{}\n{}\n", std::process::id(), mp.display()));
    info!(
        "mounted {} with {} categories (memory cache {} MiB)",
        mp.display(),
        cats.len(),
        mem >> 20
    );
    // Dropping the pipe's write end tells the waiting parent we are mounted.
    if let Some(mut n) = notify.take() {
        let mut msg = String::from("OK");
        for l in &locked {
            msg.push_str("\nnot shown: ");
            msg.push_str(l);
        }
        let _ = n.write_all(msg.as_bytes());
    }

    let status_path = home.run_dir().join("status");
    write_status(&status_path, mp, &cache, &cats);
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
    let interval = Duration::from_secs(args.commit_interval.max(1));
    let mut last_commit = Instant::now();
    let mut last_sync_status = Instant::now() - Duration::from_secs(10);
    let mut unmount_requested = false;
    while !bg.guard.is_finished() {
        std::thread::sleep(Duration::from_millis(100));
        if term.load(Ordering::Relaxed) && !unmount_requested {
            info!("signal received: flushing and unmounting");
            for c in &cats {
                if let Err(e) = c.commit() {
                    error!("category {}: commit failed: {e}", c.name);
                }
            }
            match unmount_path(mp, false) {
                Ok(()) => unmount_requested = true,
                Err(e) => {
                    error!("{e}; still serving");
                    term.store(false, Ordering::Relaxed);
                }
            }
        }
        if let Some(wb) = &wb
            && last_sync_status.elapsed() >= Duration::from_secs(1)
        {
            last_sync_status = Instant::now();
            super::sync::write_status(&home, &wb.status());
        }
        if last_commit.elapsed() >= interval {
            last_commit = Instant::now();
            write_status(&status_path, mp, &cache, &cats);
            for c in &cats {
                if c.is_dirty()
                    && let Err(e) = c.commit()
                {
                    error!("category {}: periodic commit failed: {e}", c.name);
                }
            }
        }
    }
    // The session ended (unmounted): fuser has called destroy(), which committed.
    if let Err(e) = bg.join() {
        warn!("session ended with: {e}");
    }
    // A running rotation stops after its current batch (committed; resumable).
    if let Some(c) = control {
        c.shutdown();
    }
    let mut clean = true;
    for c in &cats {
        if c.is_dirty()
            && let Err(e) = c.commit()
        {
            error!("category {}: final commit failed: {e}", c.name);
            clean = false;
        }
    }
    stop_sync.store(true, Ordering::Relaxed);
    notice_stop.store(true, Ordering::Relaxed);
    if let Some(t) = sync_thread {
        let _ = t.join();
    }
    if let Some(wb) = &wb {
        finish_uploads(&home, wb, syncer.as_deref(), &no_wait);
    }
    let _ = std::fs::remove_file(&pf);
    let _ = std::fs::remove_file(&status_path);
    let _ = std::fs::remove_file(super::sync::status_path(&home));
    if clean {
        info!("unmounted {} cleanly", mp.display());
        Ok(0)
    } else {
        Err("unmounted, but some data could not be committed (see the log)".into())
    }
}

/// Before the daemon exits: sends the upload queue, unless told not to wait, or the store
/// made no progress for a minute (offline: the journal keeps it for the next mount).
fn finish_uploads(
    home: &Home,
    wb: &WriteBack,
    syncer: Option<&crate::sync::Syncer>,
    no_wait: &AtomicBool,
) {
    let mut last_log = Instant::now();
    let mut s = wait_uploads(home, wb, no_wait, &mut last_log);
    // Another device published meanwhile: merge, then send the merged head too.
    for _ in 0..3 {
        match syncer {
            Some(sy) if !s.conflicts.is_empty() && !no_wait.load(Ordering::Relaxed) => {
                sy.poll(true);
                s = wait_uploads(home, wb, no_wait, &mut last_log);
            }
            _ => break,
        }
    }
    wb.stop();
    if s.pending_objects > 0 {
        warn!(
            "{} in {} objects are not in the store yet; they stay in the journal and are sent at the next mount or `{}`",
            super::human(s.pending_bytes),
            s.pending_objects,
            crate::hint::cmd_hint("sync")
        );
    } else {
        info!("upload queue empty: everything is in the store");
    }
}

fn wait_uploads(
    home: &Home,
    wb: &WriteBack,
    no_wait: &AtomicBool,
    last_log: &mut Instant,
) -> crate::store::writeback::SyncStatus {
    wb.wait_drained(
        Some(Duration::from_secs(60)),
        &|| no_wait.load(Ordering::Relaxed),
        &mut |s| {
            super::sync::write_status(home, s);
            if s.pending_objects > 0 && last_log.elapsed() > Duration::from_secs(10) {
                *last_log = Instant::now();
                info!(
                    "uploading before exit: {} in {} objects left",
                    super::human(s.pending_bytes),
                    s.pending_objects
                );
            }
        },
    )
}

/// `cirrus sync` while mounted: commit every category, then push (and optionally wait).
fn sync_request(
    home: &Home,
    cats: &[Arc<Category>],
    wb: Option<&WriteBack>,
    syncer: Option<&crate::sync::Syncer>,
    req: &control::Request,
    cancel: &AtomicBool,
    send: &mut dyn FnMut(&control::Reply),
) -> control::Reply {
    let commit_all = || {
        let mut failed = Vec::new();
        for c in cats {
            if let Err(e) = c.commit() {
                failed.push(format!("{}: {e}", c.name));
            }
        }
        failed
    };
    if let Some(wb) = wb {
        wb.kick();
    }
    let mut failed = commit_all();
    if let (false, Some(wb)) = (failed.is_empty(), wb) {
        // A full journal: let the queue drain, then commit what is left.
        wb.wait_drained(
            Some(Duration::from_secs(120)),
            &|| cancel.load(Ordering::Relaxed),
            &mut |_| {},
        );
        failed = commit_all();
    }
    if !failed.is_empty() {
        for f in &failed {
            error!("commit for sync failed: {f}");
        }
        return control::Reply::error(format!("commit failed: {}", failed.join("; ")));
    }
    let Some(wb) = wb else {
        return control::Reply::ok("Committed; the store is local, so it is up to date.".into());
    };
    let pulled = match syncer {
        Some(sy) => {
            let r = sy.poll(true);
            if !r.errors.is_empty() {
                return control::Reply::error(r.errors.join("; "));
            }
            let refused = if r.refused.is_empty() {
                String::new()
            } else {
                format!(
                    "Refused changes of a removed device in {} (replaced by this device's). ",
                    r.refused.join(", ")
                )
            };
            let pulled = if let Some(u) = &r.unreachable {
                format!("Could not look for other devices' changes ({u}). ")
            } else if r.pulled.is_empty() {
                String::new()
            } else {
                format!(
                    "Took in changes from other devices in {} ({} conflict copies). ",
                    r.pulled.join(", "),
                    r.copies
                )
            };
            refused + &pulled
        }
        None => String::new(),
    };
    if req.wait != Some(true) {
        let s = wb.status();
        return control::Reply::ok(format!(
            "{pulled}Committed; {} in {} objects queued for upload.",
            super::human(s.pending_bytes),
            s.pending_objects
        ));
    }
    let s = wb.wait_drained(
        Some(Duration::from_secs(req.stall_secs.unwrap_or(120))),
        &|| cancel.load(Ordering::Relaxed),
        &mut |s| {
            send(&control::Reply {
                sync: Some(s.clone()),
                ..Default::default()
            })
        },
    );
    super::sync::write_status(home, &s);
    control::Reply {
        ok: Some(true),
        message: Some(pulled),
        sync: Some(s),
        ..Default::default()
    }
}

pub fn umount(home: &Home, mp: PathBuf, timeout: u64, no_wait: bool) -> super::CliResult {
    let mp = absolute(&mp);
    let pf = pidfile(home, &mp);
    let pid = read_pid(&pf).filter(|p| alive(*p));
    let mounted = is_mounted(&mp);
    if !mounted && pid.is_none() {
        let _ = std::fs::remove_file(&pf);
        return Err(format!("{} is not mounted", mp.display()));
    }
    if mounted {
        if pid.is_none() {
            unmount_path(&mp, true)?;
            let _ = std::fs::remove_file(&pf);
            println!(
                "Cleaned up a stale mount at {} (its daemon was not running). Run `{}` to check the store.",
                mp.display(),
                crate::hint::cmd_hint("fsck")
            );
            return Ok(0);
        }
        if no_wait && control::socket_exists(home) {
            let req = control::Request {
                op: "no-wait".into(),
                ..Default::default()
            };
            if let Err(e) = control::request(home, &req, &mut |_, _| {}) {
                warn!("cannot tell the daemon not to wait for uploads: {e}");
            }
        }
        unmount_path(&mp, false)?;
    } else if let Some(p) = pid {
        // Mount already gone but the daemon is still finishing: ask it to stop.
        // SAFETY: plain signal to a pid we read from our own pidfile.
        unsafe {
            libc::kill(p, libc::SIGTERM);
        }
    }
    if let Some(p) = pid {
        let start = Instant::now();
        let mut said = false;
        let mut progress: Option<super::sync::Progress> = None;
        while alive(p) {
            if let Some(s) = super::sync::read_status(home).filter(|s| s.pending_objects > 0) {
                progress
                    .get_or_insert_with(|| super::sync::Progress::new("uploading"))
                    .update(&s);
                said = true;
            }
            if start.elapsed() > Duration::from_secs(timeout) {
                return Err(format!(
                    "unmounted, but the daemon (pid {p}) is still flushing after {timeout}s; see {}",
                    home.log_path().display()
                ));
            }
            if !said && start.elapsed() > Duration::from_secs(2) {
                eprintln!("Waiting for Cirrus to finish writing...");
                said = true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if let Some(p) = progress {
            p.finish();
        }
    }
    println!("Unmounted {}", mp.display());
    let journal = crate::account::queued_uploads(home);
    if journal.0 > 0 {
        println!(
            "{} in {} objects are not in the store yet (see `{}`); they are sent at the next \
             mount or `{}`.",
            super::human(journal.1),
            journal.0,
            crate::hint::cmd_hint("status"),
            crate::hint::cmd_hint("sync")
        );
    }
    Ok(0)
}

/// The account, unless another thread (a rotation) holds it.
fn account_if_free(
    acct: &std::sync::Mutex<crate::account::Unlocked>,
) -> Result<std::sync::MutexGuard<'_, crate::account::Unlocked>, crate::sync::HookError> {
    match acct.try_lock() {
        Ok(g) => Ok(g),
        Err(std::sync::TryLockError::Poisoned(p)) => Ok(p.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => Err(crate::sync::HookError::Busy),
    }
}

/// What the syncer is told when an account hook fails: whether this device was removed
/// is decided on the error's variant, not on its message.
fn hook_error(e: crate::account::AccountError) -> crate::sync::HookError {
    if e.removes_this_device() {
        crate::sync::HookError::DeviceRemoved(e.to_string())
    } else {
        crate::sync::HookError::Failed(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::AccountError;
    use crate::sync::HookError;

    #[test]
    fn both_removals_reach_the_syncer_as_device_removed() {
        assert!(matches!(
            hook_error(AccountError::DeviceRemoved),
            HookError::DeviceRemoved(_)
        ));
        let e = AccountError::RemovedByDataRecovery {
            by: "laptop".into(),
            ago: "5 min".into(),
        };
        let msg = e.to_string();
        assert!(matches!(hook_error(e), HookError::DeviceRemoved(m) if m == msg));
        // Text that merely reads like a removal is not one (the old prefix test took
        // this for a removal).
        let lookalike = AccountError::BadCode("this device was removed from the account".into());
        assert!(matches!(hook_error(lookalike), HookError::Failed(_)));
    }

    #[test]
    fn a_second_daemon_lock_on_the_same_home_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let home = Home::new(d.path().to_path_buf());
        let held = lock_home(&home).unwrap();
        let e = lock_home(&home).unwrap_err();
        assert!(e.contains("already mounted"), "{e}");
        drop(held);
        assert!(lock_home(&home).is_ok());
    }
}
