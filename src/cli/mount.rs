//! `cirrus mount`: checks, unlocks, then detaches a daemon that serves the drive. The
//! parent returns only once the drive is mounted (or prints why it is not).

use super::{PasscodeArgs, default_mountpoint};
use crate::daemon::{self, DaemonOptions, absolute, held_keys_warning, is_mounted};
use crate::home::Home;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(clap::Args)]
pub struct MountArgs {
    /// Where to mount the drive (default: ~/Cirrus, created if missing).
    pub mountpoint: Option<PathBuf>,
    /// Mount options, comma separated, as in /etc/fstab: each flag below with _ for -
    /// (memory_cache=256M, passcode_file=PATH, allow_other, ...), plus ro, uid=, gid=,
    /// noexec, and fstab's noauto, nofail, _netdev, x-* (accepted, for mount(8)). A flag
    /// given as itself wins over the same option. Unknown options are an error.
    #[arg(short = 'o', long = "options", value_name = "OPTIONS")]
    pub options: Vec<String>,
    /// Never write the store (a second machine, forensics, a backup job): changes fail
    /// with "read-only file system", and no key acknowledgement is published, which holds
    /// back key destruction and gc on the other devices (docs/USER-GUIDE.md). Shows the
    /// drive as it was when mounted.
    #[arg(long)]
    pub read_only: bool,
    /// Do not let programs on the drive be executed.
    #[arg(long)]
    pub noexec: bool,
    /// Honour set-user-ID and set-group-ID bits of programs on the drive (default: not,
    /// as on every FUSE mount). Root only, and not with --allow-other: any device of the
    /// account can put a set-user-ID root program on the drive.
    #[arg(long)]
    pub suid: bool,
    /// Let device nodes on the drive be opened (default: not). Root only, and not with
    /// --allow-other, for the same reason as --suid.
    #[arg(long)]
    pub dev: bool,
    /// When a read updates a file's access time: relatime (when not newer than its last
    /// change, or a day old; the default), noatime (never: no metadata write for reads,
    /// backups cannot tell what was read), strictatime (on every read).
    #[arg(long, value_name = "RULE", default_value = "relatime", value_parser = ["relatime", "noatime", "strictatime"])]
    pub atime: String,
    /// Listing a directory does not update its access time.
    #[arg(long)]
    pub nodiratime: bool,
    /// Keep no POSIX ACLs (setfacl then fails with "Operation not supported"). Saves
    /// `ls -l` one kernel round trip per file: the kernel forgets its cached ACLs
    /// whenever it lists a folder.
    #[arg(long)]
    pub noacl: bool,
    /// When started by root (an fstab line): serve the drive as this user. HOME must be
    /// theirs, and the mount is made through fusermount3 as for any user.
    #[arg(long, value_name = "UID")]
    pub uid: Option<u32>,
    /// With --uid: the group to run as (default: the user's primary group).
    #[arg(long, value_name = "GID", requires = "uid")]
    pub gid: Option<u32>,
    #[command(flatten)]
    pub pass: PasscodeArgs,
    /// Stay in the foreground and log to stderr (for systemd and debugging).
    #[arg(long)]
    pub foreground: bool,
    /// RAM for decrypted data (chunk cache and unsealed writes), e.g. 256M, 1G.
    #[arg(long, default_value = "256M", value_parser = parse_size)]
    pub memory_cache: u64,
    /// Let other users access the drive (permission checks still apply).
    #[arg(long)]
    pub allow_other: bool,
    /// Seconds between automatic commits of written data.
    #[arg(long, default_value_t = 5)]
    pub commit_interval: u64,
    /// Seconds the kernel may cache names and attributes. Safe when long: every local
    /// change goes through this daemon, and the daemon tells the kernel what each change
    /// from another device or the web made stale.
    #[arg(long, default_value_t = 60.0)]
    pub attr_timeout: f64,
    /// FUSE capabilities to request (comma list of readdirplus, parallel-dirops,
    /// killpriv, writeback, posix-acl; or none). For benchmarking.
    #[arg(
        long,
        default_value = "readdirplus,parallel-dirops,killpriv,posix-acl",
        hide = true
    )]
    pub fuse_caps: String,
    /// Kernel read-ahead for the drive in KiB (set through sysfs when running as root):
    /// larger windows let the kernel ask for the next chunks while the current ones are
    /// being decrypted. 0 keeps the kernel default.
    #[arg(long, default_value_t = 4096)]
    pub readahead_kib: u32,
    /// Largest write request the kernel may send, in KiB (for benchmarking).
    #[arg(long, default_value_t = 1024, hide = true)]
    pub max_write_kib: u32,
    /// Threads serving kernel requests.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Remote stores: disk space for clean copies of stored objects (kept across mounts,
    /// least recently used evicted first), e.g. 2G. 0 turns the disk cache off.
    #[arg(long, default_value = "2G", value_parser = parse_size)]
    pub disk_cache: u64,
    /// Remote stores: disk space for written data not yet uploaded. Never evicted; when
    /// it is full, writes fail with "no space left" until uploads catch up.
    #[arg(long, default_value = "8G", value_parser = parse_size)]
    pub journal_max: u64,
    /// Seconds between looks for changes made on the account's other devices (remote
    /// stores; `cirrus sync` looks at once) and for the key service's notices to this
    /// device (a pending password reset), which are logged as warnings.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub poll_interval: u64,
    /// Remote stores: objects uploaded in parallel.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub upload_threads: u32,
}

/// Parses sizes like 65536, 64K, 256M, 1G (powers of 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        None => (t, 1u64),
        Some((i, _)) => {
            let unit = t[i..].trim_end_matches("iB").trim_end_matches('B');
            let m = match unit.to_ascii_uppercase().as_str() {
                "" => 1,
                "K" => 1 << 10,
                "M" => 1 << 20,
                "G" => 1 << 30,
                "T" => 1 << 40,
                _ => return Err(format!("unknown size unit in {s:?} (use K, M, G)")),
            };
            (&t[..i], m)
        }
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid size {s:?} (e.g. 256M)"))?;
    n.checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} too large"))
}

fn check_mountpoint(mp: &Path, is_default: bool) -> Result<PathBuf, String> {
    match std::fs::metadata(mp) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(format!("mountpoint {} is not a directory", mp.display())),
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
            return Err(format!(
                "{} is a stale mount left by a stopped daemon: run `{}` first",
                mp.display(),
                crate::hint::cmd_hint(&format!("umount {}", mp.display()))
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && is_default => {
            std::fs::create_dir_all(mp)
                .map_err(|e| format!("cannot create mountpoint {}: {e}", mp.display()))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!(
                "mountpoint {} does not exist (create it with `mkdir -p {}`)",
                mp.display(),
                mp.display()
            ));
        }
        Err(e) => return Err(format!("cannot use mountpoint {}: {e}", mp.display())),
    }
    let abs = absolute(mp);
    if is_mounted(&abs) {
        return Err(format!(
            "{} is already mounted (unmount it first with `{}`)",
            abs.display(),
            crate::hint::cmd_hint(&format!("umount {}", abs.display()))
        ));
    }
    Ok(abs)
}

/// A FUSE capability list without kernel POSIX ACLs.
fn without_acls(caps: &str) -> String {
    caps.split(',')
        .filter(|c| c.trim() != "posix-acl")
        .collect::<Vec<_>>()
        .join(",")
}

impl MountArgs {
    /// The runtime's options (the flags, checked by [`run`]).
    fn daemon_options(&self) -> DaemonOptions {
        DaemonOptions {
            memory_cache: self.memory_cache,
            allow_other: self.allow_other,
            commit_interval: self.commit_interval,
            attr_timeout: self.attr_timeout,
            fuse_caps: if self.noacl {
                without_acls(&self.fuse_caps)
            } else {
                self.fuse_caps.clone()
            },
            readahead_kib: self.readahead_kib,
            max_write_kib: self.max_write_kib,
            threads: self.threads,
            disk_cache: self.disk_cache,
            journal_max: self.journal_max,
            poll_interval: self.poll_interval,
            upload_threads: self.upload_threads,
            read_only: self.read_only,
            noexec: self.noexec,
            suid: self.suid,
            dev: self.dev,
            atime: match self.atime.as_str() {
                "noatime" => crate::volume::Atime::Never,
                "strictatime" => crate::volume::Atime::Always,
                _ => crate::volume::Atime::Relative,
            },
            dir_atime: !self.nodiratime,
        }
    }
}

pub fn run(home: Home, args: MountArgs) -> super::CliResult {
    let is_default = args.mountpoint.is_none();
    let mp = args.mountpoint.clone().unwrap_or_else(default_mountpoint);
    if args.foreground {
        super::init_stderr_logging_level("info");
    }
    if !args.options.is_empty() {
        // `mount_options::rewrite` turns every -o into flags before parsing.
        return Err("-o must come after `mount` (cirrus [--home HOME] mount -o ...)".into());
    }
    suid_and_dev_only_for_root(&args)?;
    if args.uid.is_some() {
        run_as(args.uid, args.gid)?;
    } else {
        not_roots_mount_of_a_users_home(&home)?;
    }
    let mp = check_mountpoint(&mp, is_default)?;
    if !(args.attr_timeout.is_finite() && (0.0..=3600.0).contains(&args.attr_timeout)) {
        return Err("--attr-timeout must be between 0 and 3600 seconds".into());
    }
    if args.threads == 0 || args.threads > 64 {
        return Err("--threads must be between 1 and 64".into());
    }
    if args.memory_cache < 16 << 20 {
        return Err("--memory-cache must be at least 16M".into());
    }
    if args.journal_max < 64 << 20 {
        return Err("--journal-max must be at least 64M (one pack is 8M)".into());
    }
    let (acct, no_session) = super::unlock_holding_as(home, &args.pass, args.read_only)?;
    // The daemon logs it too (to stderr when in the foreground).
    if let Some(why) = &no_session
        && !args.foreground
    {
        eprintln!("cirrus: warning: {}", held_keys_warning(why));
    }
    let opts = args.daemon_options();
    // Keys released to web sessions (ADP) are rotated once their time is up, by the
    // mounted daemon itself (checked at the poll interval, at least every 30 s).
    let watch_every = Duration::from_secs(opts.poll_interval.clamp(1, 30));
    let watch_home = Home::new(acct.home.root.clone());
    if args.foreground {
        let mut started = false;
        daemon::serve(acct, &mp, &opts, &mut |_| {
            if !std::mem::replace(&mut started, true) && !opts.read_only {
                super::web::start_release_watcher(&watch_home, watch_every);
            }
        })
        .map_err(|e| e.to_string())?;
        return Ok(0);
    }
    let log_path = acct.home.log_path();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| format!("cannot open log file {}: {e}", log_path.display()))?;
    let mut fds = [0i32; 2];
    // SAFETY: pipe writes two fds into the array we own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(format!("pipe: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: both fds were just created and are owned here only.
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: no other threads exist yet in this process (nothing spawned before here), so
    // the child may continue running Rust code.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork: {}", std::io::Error::last_os_error()));
    }
    if pid > 0 {
        drop(wr);
        let mut msg = String::new();
        let _ = std::fs::File::from(rd).read_to_string(&mut msg);
        return if let Some(rest) = msg.strip_prefix("OK") {
            println!(
                "Cirrus drive mounted at {} (log: {})",
                mp.display(),
                log_path.display()
            );
            for l in rest.lines().filter(|l| !l.is_empty()) {
                println!("{l}");
            }
            Ok(0)
        } else if msg.is_empty() {
            Err(format!(
                "the daemon exited before mounting; see {}",
                log_path.display()
            ))
        } else {
            Err(msg)
        };
    }
    drop(rd);
    // Child: detach from the terminal; stdout/stderr go to the log.
    // SAFETY: plain syscalls on fds we own.
    unsafe {
        libc::setsid();
        // Do not keep any directory busy (it would block unmounting that filesystem).
        libc::chdir(c"/".as_ptr());
        let devnull = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if devnull >= 0 {
            libc::dup2(devnull, 0);
        }
        use std::os::fd::AsRawFd;
        libc::dup2(log.as_raw_fd(), 1);
        libc::dup2(log.as_raw_fd(), 2);
    }
    let mut notify = Some(std::fs::File::from(wr));
    super::init_file_logging(log);
    // Dropping the pipe's write end tells the waiting parent we are mounted.
    let mut ready = |locked: &[String]| {
        if let Some(mut n) = notify.take() {
            if !opts.read_only {
                super::web::start_release_watcher(&watch_home, watch_every);
            }
            let mut msg = String::from("OK");
            for l in locked {
                msg.push_str("\nnot shown: ");
                msg.push_str(l);
            }
            let _ = n.write_all(msg.as_bytes());
        }
    };
    let res = daemon::serve(acct, &mp, &opts, &mut ready);
    let code = match res {
        Ok(()) => 0,
        Err(e) => {
            log::error!("{e}");
            if let Some(mut n) = notify.take() {
                let _ = n.write_all(e.to_string().as_bytes());
            }
            1
        }
    };
    std::process::exit(code);
}

/// `--uid`/`--gid` (`-o uid=,gid=` in an fstab line mounted by root): the rest of the
/// mount runs as that user, so what the daemon writes in HOME stays theirs and the mount
/// is theirs, made through fusermount3. Not root: only one's own ids are accepted.
fn run_as(uid: Option<u32>, gid: Option<u32>) -> Result<(), String> {
    let Some(uid) = uid else { return Ok(()) };
    // SAFETY: getters without preconditions.
    let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
    if euid != 0 {
        return if uid == euid && gid.is_none_or(|g| g == egid) {
            Ok(())
        } else {
            Err(
                "uid= and gid= other than your own need root (the mount then runs as that user)"
                    .into(),
            )
        };
    }
    let user = nix_user(uid)?;
    let gid = gid.or(user.as_ref().map(|u| u.1)).ok_or(format!(
        "uid={uid} has no entry in the user database: give gid= too"
    ))?;
    // SAFETY: plain syscalls; no other thread exists yet (the daemon starts them later).
    unsafe {
        let ok = match &user {
            Some((name, _, _)) => libc::initgroups(name.as_ptr(), gid) == 0,
            None => libc::setgroups(1, &gid) == 0,
        };
        if !ok || libc::setgid(gid) != 0 || libc::setuid(uid) != 0 {
            return Err(format!(
                "cannot switch to uid {uid} gid {gid}: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    // What runs from here (a passcode command, the AWS shared files) sees the user's own
    // environment, not root's.
    if let Some((name, _, dir)) = &user {
        // SAFETY: no other thread exists yet, so nothing reads the environment meanwhile.
        unsafe {
            std::env::set_var("HOME", dir);
            std::env::set_var("USER", name.to_string_lossy().as_ref());
            std::env::set_var("LOGNAME", name.to_string_lossy().as_ref());
        }
    }
    log::info!("running as uid {uid} gid {gid}");
    Ok(())
}

/// `--suid` and `--dev` let what is on the drive act with the privileges of its owner or
/// reach hardware, and what is on the drive is whatever any device of the account wrote:
/// allowed only to a mount root makes for itself and keeps to itself (fusermount3 would
/// refuse them for a user anyway).
fn suid_and_dev_only_for_root(args: &MountArgs) -> Result<(), String> {
    let asked: Vec<&str> = [(args.suid, "suid"), (args.dev, "dev")]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
    let Some(first) = asked.first() else {
        return Ok(());
    };
    // The real uid too: fuser makes the mount the real user's (a set-user-ID install
    // run by a user would otherwise hand that user a suid mount).
    // SAFETY: geteuid and getuid have no preconditions.
    if unsafe { libc::geteuid() } != 0 || unsafe { libc::getuid() } != 0 || args.uid.is_some() {
        return Err(format!(
            "-o {first} is for a mount made by root for root (without uid=): other users' \
             mounts always have nosuid and nodev"
        ));
    }
    if args.allow_other {
        return Err(format!(
            "-o {first} with allow_other is refused: any device of the account could then \
             plant a set-user-ID program or a device node that every user of this machine \
             can use (see `{}`)",
            crate::hint::cmd_hint("mount --help")
        ));
    }
    Ok(())
}

/// Root mounting a home another user owns, without `uid=`, would leave root's files in
/// it (the journal, caches, tokens) and a drive only root can use: refused, naming the
/// option that does it right.
fn not_roots_mount_of_a_users_home(home: &Home) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(());
    }
    match std::fs::metadata(&home.root) {
        Ok(m) if m.uid() != 0 => Err(format!(
            "{} belongs to uid {}: mount it as that user, or as root with `-o uid={}` \
             (the daemon then runs as its owner)",
            home.root.display(),
            m.uid(),
            m.uid()
        )),
        _ => Ok(()),
    }
}

/// The user database's name, primary group and home directory of `uid` (None: no entry).
type UserEntry = (std::ffi::CString, u32, std::path::PathBuf);

fn nix_user(uid: u32) -> Result<Option<UserEntry>, String> {
    let mut size = 16 << 10;
    loop {
        let mut buf = vec![0u8; size];
        // SAFETY: an all-zero passwd is a valid out-parameter.
        let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: getpwuid_r writes into pw and buf, which we own and size correctly.
        let rc = unsafe {
            libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr().cast(), buf.len(), &mut found)
        };
        if rc == libc::ERANGE && size < 1 << 20 {
            size *= 4;
            continue;
        }
        if rc != 0 {
            return Err(format!(
                "cannot look up uid {uid}: {}",
                std::io::Error::from_raw_os_error(rc)
            ));
        }
        if found.is_null() {
            return Ok(None);
        }
        // SAFETY: on success both point at NUL-terminated strings inside buf.
        let (name, dir) = unsafe {
            (
                std::ffi::CStr::from_ptr(pw.pw_name).to_owned(),
                std::ffi::CStr::from_ptr(pw.pw_dir).to_owned(),
            )
        };
        let dir: std::path::PathBuf =
            <std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(dir.into_bytes())
                .into();
        return Ok(Some((name, pw.pw_gid, dir)));
    }
}

/// `cirrus umount`: unmounts through the runtime, drawing the daemon's uploads.
pub fn umount(home: &Home, mp: PathBuf, timeout: u64, no_wait: bool) -> super::CliResult {
    let mut progress: Option<super::sync::Progress> = None;
    let res = daemon::umount(
        home,
        &mp,
        std::time::Duration::from_secs(timeout),
        no_wait,
        &mut |p| match p {
            daemon::UmountProgress::Uploading(s) => progress
                .get_or_insert_with(|| super::sync::Progress::new("uploading"))
                .update(s),
            daemon::UmountProgress::StillWriting => {
                eprintln!("Waiting for Cirrus to finish writing...")
            }
        },
    );
    if let Some(p) = progress {
        p.finish();
    }
    match res.map_err(|e| e.to_string())? {
        daemon::Unmounted::Stale { mountpoint } => {
            println!(
                "Cleaned up a stale mount at {} (its daemon was not running). Run `{}` to check the store.",
                mountpoint.display(),
                crate::hint::cmd_hint("fsck")
            );
            return Ok(0);
        }
        daemon::Unmounted::Clean { mountpoint } => {
            println!("Unmounted {}", mountpoint.display());
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("65536").unwrap(), 65536);
        assert_eq!(parse_size("64K").unwrap(), 64 << 10);
        assert_eq!(parse_size("256M").unwrap(), 256 << 20);
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert!(parse_size("12X").is_err());
        assert!(parse_size("M").is_err());
        assert!(parse_size("").is_err());
    }
}
