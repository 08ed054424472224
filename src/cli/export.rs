//! `cirrus export` and `cirrus export-read`: a local backup archive of the drive, and
//! reading one back. Here: arguments, passwords, choosing the categories (end-to-end ones
//! only into an encrypted archive), the `.partial` file and directory dance, progress and
//! the report. The streaming itself is `crate::export`.

use super::{CliResult, PasscodeArgs, unlock};
use crate::cache::ChunkCache;
use crate::crypto;
use crate::export::{self, ExportError, Listed, OpeningReader, SealingWriter, Source, WriteReport};
use crate::format::export::{
    ArchiveKind, EXPORT_HEADER_LEN, ExportHeader, SALT_LEN, TAR_BLOCK, check_costs, detect,
};
use crate::format::table::{CategoryEntry, Class};
use crate::home::Home;
use crate::keys::{KdfParams, Passcode};
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::HashSet;
use std::ffi::{CString, OsString};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Cursor, IsTerminal, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(clap::Args)]
pub struct ExportArgs {
    /// The archive file to write. It appears only once complete (it is written as
    /// FILE.partial, synced, then renamed).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Encrypt the archive with the password in this file (first line). This is the
    /// archive's own password, neither your Cirrus passcode nor your account password.
    /// Needed for end-to-end categories.
    #[arg(long, value_name = "FILE", conflicts_with = "unencrypted")]
    archive_password_file: Option<PathBuf>,
    /// Write a plain tar archive that any tar can read. End-to-end categories (Health,
    /// Keychain, Messages, ...) are then left out.
    #[arg(long)]
    unencrypted: bool,
    /// Export only this category (repeat for several). Default: every category.
    #[arg(long = "category", value_name = "NAME")]
    categories: Vec<String>,
    /// Replace FILE if it exists.
    #[arg(long)]
    force: bool,
    /// Argon2id memory cost in KiB for the archive password.
    #[arg(long, default_value_t = KdfParams::default().memory_kib)]
    kdf_memory: u32,
    /// Argon2id time cost (iterations) for the archive password.
    #[arg(long, default_value_t = KdfParams::default().time)]
    kdf_time: u32,
    // `--password-file` here is the account password, as in every command. It used to be
    // the archive's password: given on the command line with neither
    // --archive-password-file nor --unencrypted, it still is, with a warning, on an
    // account without a key service; refused on one with (`archive_password`).
    #[command(flatten)]
    pass: PasscodeArgs,
    /// `--password-file` was on the command line (CIRRUS_PASSWORD_FILE only ever means the
    /// account password); set by `cli::main`.
    #[arg(skip)]
    password_file_on_command_line: bool,
}

impl ExportArgs {
    /// Records whether `--password-file` was given on the command line.
    pub(super) fn note_spelling(&mut self, on_command_line: bool) {
        self.password_file_on_command_line = on_command_line;
    }

    /// The archive's password file, and the account's passcode arguments with
    /// `--password-file` taken out when it was the old spelling of the archive's. On an
    /// account with a key service (`uses_key_service`) that spelling is refused: there it
    /// may as well be the account password (as `--help` says), and either reading leaks
    /// one password to the other's use (an archive that is an offline guessing oracle for
    /// the account password, or an archive password sent to the key service).
    fn archive_password(
        &self,
        uses_key_service: bool,
    ) -> Result<(Option<PathBuf>, PasscodeArgs), String> {
        let mut pass = self.pass.clone();
        if self.archive_password_file.is_some() || self.unencrypted {
            return Ok((self.archive_password_file.clone(), pass));
        }
        if !self.password_file_on_command_line {
            return Ok((None, pass));
        }
        let Some(old) = pass.password_file.take() else {
            return Ok((None, pass));
        };
        if uses_key_service {
            return Err(
                "export: this account uses a key service, so --password-file is its account                  password, and no archive password was given: pass the archive's own password                  with --archive-password-file FILE (the old meaning of --password-file here),                  or --unencrypted. Nothing was written"
                    .into(),
            );
        }
        eprintln!(
            "cirrus: warning: `export --password-file` for the archive's password is \
             deprecated: use --archive-password-file FILE (--password-file is the account \
             password, as in the other commands)"
        );
        // The archive's password never goes to the key service; the account's may still
        // come from its other sources (the environment among them: `cli::passcode`).
        Ok((Some(old), pass))
    }
}

#[derive(clap::Args)]
pub struct ExportReadArgs {
    /// An archive written by `cirrus export`.
    archive: PathBuf,
    /// The archive's password, from this file (first line); asked on a terminal otherwise.
    #[arg(long, value_name = "FILE")]
    archive_password_file: Option<PathBuf>,
    /// The old spelling of --archive-password-file (deprecated; warns).
    #[arg(
        long,
        value_name = "FILE",
        hide = true,
        conflicts_with = "archive_password_file"
    )]
    password_file: Option<PathBuf>,
    /// List the entries (verifying every segment of an encrypted archive).
    #[arg(long, conflicts_with = "extract", required_unless_present = "extract")]
    list: bool,
    /// Extract into this new directory. It is built as DIR.partial and renamed to DIR only
    /// when the whole archive was read and verified.
    #[arg(long, value_name = "DIR")]
    extract: Option<PathBuf>,
    /// For a plain tar archive: keep set-user-ID, set-group-ID and sticky bits as in the
    /// archive, and create device nodes (only root can; others get a warning). Without it
    /// those bits are dropped and a device node fails the extraction, since anyone can
    /// write a plain tar. An encrypted archive, authenticated by its password, always
    /// keeps them.
    #[arg(long, requires = "extract")]
    same_permissions: bool,
}

/// The archive password: from a file (first line) or the terminal, never echoed.
fn read_password(file: Option<&Path>, confirm: bool, missing: &str) -> Result<Passcode, String> {
    if let Some(p) = file {
        let text = fs::read_to_string(p)
            .map_err(|e| format!("cannot read password file {}: {e}", p.display()))?;
        let pw = Passcode::new(text.lines().next().unwrap_or("").to_string());
        if pw.expose().is_empty() {
            return Err(format!("password file {} is empty", p.display()));
        }
        return Ok(pw);
    }
    if !io::stdin().is_terminal() {
        return Err(missing.to_string());
    }
    let a = rpassword::prompt_password("Archive password: ")
        .map_err(|e| format!("cannot read the password: {e}"))?;
    let a = Passcode::new(a);
    if confirm {
        let b = Passcode::new(
            rpassword::prompt_password("Repeat archive password: ")
                .map_err(|e| format!("cannot read the password: {e}"))?,
        );
        if a.expose() != b.expose() {
            return Err("the passwords differ; nothing was written".into());
        }
    }
    if a.expose().is_empty() {
        return Err("the password is empty".into());
    }
    Ok(a)
}

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s: OsString = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn parent_dir(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Renames `from` to `to`, failing if `to` exists (renameat2 RENAME_NOREPLACE; a check
/// and rename on file systems without it).
fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    let a = CString::new(from.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let b = CString::new(to.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // SAFETY: two valid C strings.
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if r == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOSYS)) {
        if fs::symlink_metadata(to).is_ok() {
            return Err(io::Error::from(io::ErrorKind::AlreadyExists));
        }
        return fs::rename(from, to);
    }
    Err(e)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

use super::human;

/// A byte progress bar on a terminal, nothing otherwise (scripts, logs) nor when there is
/// nothing to count (a bar of 0 B / 0 B would show full from the start).
fn bytes_bar(total: u64) -> ProgressBar {
    let pb = if io::stderr().is_terminal() && total > 0 {
        ProgressBar::new(total)
    } else {
        ProgressBar::hidden()
    };
    pb.set_style(
        ProgressStyle::with_template(
            "{msg:>12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb
}

/// Which categories go in, and why the others do not.
struct Selection {
    entries: Vec<CategoryEntry>,
    /// End-to-end categories an unencrypted export leaves out.
    left_out: Vec<String>,
}

fn select(
    table: &crate::format::table::CategoryTable,
    names: &[String],
    encrypted: bool,
) -> Result<Selection, String> {
    let mut sel = Selection {
        entries: Vec::new(),
        left_out: Vec::new(),
    };
    let wanted: Vec<&CategoryEntry> = if names.is_empty() {
        table.active().collect()
    } else {
        let mut seen = HashSet::new();
        let mut v = Vec::new();
        for n in names {
            let e = table.find(n).ok_or_else(|| {
                format!(
                    "unknown category {n:?} (see `{}`)",
                    crate::hint::cmd_hint("category list")
                )
            })?;
            if seen.insert(e.id) {
                v.push(e);
            }
        }
        v
    };
    for e in wanted {
        if e.class == Class::E2e && !encrypted {
            if !names.is_empty() {
                return Err(format!(
                    "{} is end-to-end encrypted: it goes only into an encrypted export \
                     (pass --archive-password-file instead of --unencrypted)",
                    e.name
                ));
            }
            sel.left_out.push(e.name.clone());
        } else {
            sel.entries.push(e.clone());
        }
    }
    Ok(sel)
}

/// The selected categories, opened for reading, and those that stay out (locked: no
/// key here; unavailable: their head failed verification), each with why. None open
/// is an error that lists why.
struct Opened {
    open: Vec<(String, Arc<crate::volume::Category>)>,
    locked: Vec<(String, String)>,
    unavailable: Vec<(String, String)>,
}

fn open_selected(
    acct: &crate::account::Unlocked,
    ids: &HashSet<u32>,
    cache: &Arc<ChunkCache>,
) -> Result<Opened, String> {
    // Category::open verifies each head; a category that fails stays out, and says why.
    let mut open = Vec::new();
    let mut locked = Vec::new();
    let mut unavailable = Vec::new();
    for (entry, setup) in acct.category_setups() {
        if !ids.contains(&entry.id) {
            continue;
        }
        match setup {
            Err(why) => locked.push((entry.name, why)),
            Ok(s) => {
                let c = super::open_for_inspection(acct, s, cache);
                match c.stats().3 {
                    Some(why) => unavailable.push((entry.name, why)),
                    None => open.push((entry.name, c)),
                }
            }
        }
    }
    if open.is_empty() {
        let mut why = String::from("nothing to export");
        for (n, w) in locked.iter().chain(&unavailable) {
            why.push_str(&format!("\n  {n}: {w}"));
        }
        return Err(why);
    }
    Ok(Opened {
        open,
        locked,
        unavailable,
    })
}

pub fn run(home: Home, a: ExportArgs) -> CliResult {
    let out = a.out.clone();
    if let Ok(m) = fs::symlink_metadata(&out) {
        if m.is_dir() {
            return Err(format!(
                "{} is a directory; --out names the archive file",
                out.display()
            ));
        }
        if !a.force {
            return Err(format!(
                "{} exists; pass --force to replace it",
                out.display()
            ));
        }
    }
    let partial = with_suffix(&out, ".partial");
    check_costs(a.kdf_memory, a.kdf_time).map_err(|e| format!("--kdf-memory/--kdf-time: {e}"))?;
    let uses_key_service = home.load_config().is_ok_and(|c| c.server.is_some());
    let (archive_password_file, pass) = a.archive_password(uses_key_service)?;
    let password = if a.unencrypted {
        None
    } else {
        Some(read_password(
            archive_password_file.as_deref(),
            true,
            "no archive password: pass --archive-password-file FILE for an encrypted export, \
             or --unencrypted for a plain tar (end-to-end categories are then left out)",
        )?)
    };
    let acct = unlock(home, &pass)?;
    let sel = select(acct.table(), &a.categories, password.is_some())?;
    let ids: HashSet<u32> = sel.entries.iter().map(|e| e.id).collect();

    let cache = Arc::new(ChunkCache::new(4 << 20));
    let Opened {
        open,
        locked,
        unavailable,
    } = open_selected(&acct, &ids, &cache)?;
    let sources: Vec<Source> = open
        .iter()
        .map(|(n, c)| Source {
            name: n,
            category: c,
        })
        .collect();
    let total: u64 = open.iter().map(|(_, c)| c.stats().0).sum();

    if a.force {
        let _ = fs::remove_file(&partial);
    }
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)
        .map_err(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                format!(
                    "{} exists (left by an interrupted export?); remove it or pass --force",
                    partial.display()
                )
            } else {
                format!("cannot create {}: {e}", partial.display())
            }
        })?;
    let encrypted = password.is_some();
    let pb = bytes_bar(total);
    pb.set_message("exporting");
    let kdf = (a.kdf_memory, a.kdf_time);
    let written = write_archive(file, &sources, password.as_ref(), kdf, &pb);
    pb.finish_and_clear();
    drop(password);
    let finish =
        |r: Result<(File, WriteReport), ExportError>| -> Result<(u64, WriteReport), String> {
            let (file, report) = r.map_err(|e| e.to_string())?;
            file.sync_all()
                .map_err(|e| format!("syncing {}: {e}", partial.display()))?;
            let size = file.metadata().map(|m| m.len()).unwrap_or(0);
            drop(file);
            if a.force {
                fs::rename(&partial, &out)
            } else {
                rename_noreplace(&partial, &out)
            }
            .map_err(|e| format!("renaming {} to {}: {e}", partial.display(), out.display()))?;
            sync_dir(&parent_dir(&out))
                .map_err(|e| format!("syncing the directory of {}: {e}", out.display()))?;
            Ok((size, report))
        };
    let (size, report) = match finish(written) {
        Ok(v) => v,
        Err(e) => {
            let _ = fs::remove_file(&partial);
            return Err(format!("export failed: {e}\nNo archive was written."));
        }
    };

    let names: Vec<&str> = open.iter().map(|(n, _)| n.as_str()).collect();
    println!(
        "Wrote {} ({}): {} categories ({}), {} files ({} of content), {} directories, \
         {} symlinks, {} hard links, {} special files.",
        out.display(),
        human(size),
        names.len(),
        names.join(", "),
        report.files,
        human(report.bytes),
        report.directories,
        report.symlinks,
        report.hard_links,
        report.specials
    );
    if !encrypted {
        if !sel.left_out.is_empty() {
            println!(
                "Left out: {} (end-to-end encrypted: they go only into an encrypted export, \
                 made with --archive-password-file).",
                sel.left_out.join(", ")
            );
        }
        println!(
            "This archive is NOT encrypted: anyone who can read {} can read every file in it.",
            out.display()
        );
    } else {
        println!(
            "Encrypted with the archive password (Argon2id, {} KiB, time cost {}). Without \
             that password nobody can read it, you included.",
            kdf.0, kdf.1
        );
    }
    for (n, why) in &locked {
        println!("Not exported, locked on this device: {n}: {why}");
    }
    for (n, why) in &unavailable {
        println!(
            "Not exported, unavailable: {n}: {why} (run `{}`)",
            crate::hint::cmd_hint("fsck")
        );
    }
    for s in &report.skipped {
        println!("Not in the archive: {s}");
    }
    if crate::daemon::read_mount_status(&acct.home).is_some() {
        println!(
            "The drive is mounted: the archive holds what each category had committed when \
             it was read (writes of the last few seconds may be missing)."
        );
    }
    Ok(0)
}

fn write_archive(
    file: File,
    sources: &[Source],
    password: Option<&Passcode>,
    (memory_kib, time): (u32, u32),
    pb: &ProgressBar,
) -> Result<(File, WriteReport), ExportError> {
    let progress = |n: u64| pb.inc(n);
    match password {
        Some(pw) => {
            let mut salt = [0u8; SALT_LEN];
            crypto::random_bytes(&mut salt)?;
            let header = ExportHeader {
                salt,
                memory_kib,
                time,
            };
            let key = export::archive_key(pw, &header)?;
            let mut file = file;
            file.write_all(&header.encode())
                .map_err(ExportError::Write)?;
            // Each sealed segment goes to the file in one write: no buffer needed.
            let w = SealingWriter::new(file, key);
            let (w, report) = export::write_tar(w, sources, &progress)?;
            let (file, _) = w.finish().map_err(ExportError::Write)?;
            Ok((file, report))
        }
        None => {
            let w = BufWriter::with_capacity(1 << 20, file);
            let (w, report) = export::write_tar(w, sources, &progress)?;
            let file = w
                .into_inner()
                .map_err(|e| ExportError::Write(e.into_error()))?;
            Ok((file, report))
        }
    }
}

pub fn run_read(a: ExportReadArgs) -> CliResult {
    let (password_file, spelled) = match (&a.archive_password_file, &a.password_file) {
        (Some(p), _) => (Some(p.as_path()), "--archive-password-file"),
        (None, Some(p)) => {
            eprintln!(
                "cirrus: warning: `export-read --password-file` is deprecated: use \
                 --archive-password-file FILE"
            );
            (Some(p.as_path()), "--password-file")
        }
        (None, None) => (None, "--archive-password-file"),
    };
    let mut f =
        File::open(&a.archive).map_err(|e| format!("cannot open {}: {e}", a.archive.display()))?;
    let mut prefix = Vec::with_capacity(TAR_BLOCK);
    (&mut f)
        .take(TAR_BLOCK as u64)
        .read_to_end(&mut prefix)
        .map_err(|e| format!("cannot read {}: {e}", a.archive.display()))?;
    match detect(&prefix) {
        ArchiveKind::Encrypted => {
            let header = ExportHeader::decode(&prefix[..prefix.len().min(EXPORT_HEADER_LEN)])
                .map_err(|e| ExportError::Header(e).to_string())?;
            let pw = read_password(
                password_file,
                false,
                "this archive is encrypted: pass --archive-password-file FILE (or run in a \
                 terminal)",
            )?;
            let key = export::archive_key(&pw, &header).map_err(|e| e.to_string())?;
            drop(pw);
            let rest = Cursor::new(prefix[EXPORT_HEADER_LEN..].to_vec()).chain(f);
            let mut r = OpeningReader::new(BufReader::with_capacity(1 << 16, rest), key);
            let res = act(&mut r, &a, true);
            if res.is_ok() {
                eprintln!("Verified all {} segment(s) of the archive.", r.segments());
            }
            res
        }
        ArchiveKind::Tar => {
            if password_file.is_some() {
                return Err(format!(
                    "{} is not encrypted (a plain tar archive), but {spelled} was given: \
                     refusing it, since an encrypted export may have been swapped for a plain \
                     one. Drop {spelled} to read it anyway.",
                    a.archive.display()
                ));
            }
            act(
                BufReader::with_capacity(1 << 16, Cursor::new(prefix).chain(f)),
                &a,
                false,
            )
        }
        ArchiveKind::Unknown => Err(format!(
            "{}: {}",
            a.archive.display(),
            ExportError::NotAnArchive
        )),
    }
}

fn act<R: Read>(reader: R, a: &ExportReadArgs, encrypted: bool) -> CliResult {
    let Some(dest) = &a.extract else {
        let mut out = io::stdout().lock();
        let mut failed = None;
        let n = export::list(reader, &mut |l| {
            if failed.is_none()
                && let Err(e) = writeln!(out, "{}", list_line(l))
            {
                failed = Some(e);
            }
        })
        .map_err(|e| e.to_string())?;
        if let Some(e) = failed {
            return Err(format!("writing the listing: {e}"));
        }
        eprintln!("{n} entries.");
        return Ok(0);
    };
    if fs::symlink_metadata(dest).is_ok() {
        return Err(format!(
            "{} exists; extract into a new directory",
            dest.display()
        ));
    }
    let partial = with_suffix(dest, ".partial");
    if fs::symlink_metadata(&partial).is_ok() {
        return Err(format!(
            "{} exists (left by an interrupted extraction?); remove it first",
            partial.display()
        ));
    }
    // 0700 until the end: extracted files are plaintext.
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&partial)
        .map_err(|e| format!("cannot create {}: {e}", partial.display()))?;
    // A plain tar may come from anyone; an encrypted one was sealed under its password.
    let perms = if encrypted || a.same_permissions {
        export::Permissions::Same
    } else {
        export::Permissions::Restricted
    };
    let report = match export::extract(reader, &partial, perms) {
        Ok(r) => r,
        Err(e) => {
            // Only an empty directory is removed: nothing came out of the archive.
            if fs::remove_dir(&partial).is_ok() {
                return Err(format!("{e}\nNothing was extracted."));
            }
            return Err(format!(
                "{e}\n{} was not created. {} holds the entries extracted before the error{}; \
                 the file being written when it happened was removed.",
                dest.display(),
                partial.display(),
                if encrypted {
                    " (each from segments that were verified)"
                } else {
                    ""
                }
            ));
        }
    };
    let synced = File::open(&partial).and_then(|d| {
        // SAFETY: a valid open descriptor.
        if unsafe { libc::syncfs(d.as_raw_fd()) } < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    });
    synced.map_err(|e| format!("syncing {}: {e}", partial.display()))?;
    rename_noreplace(&partial, dest)
        .map_err(|e| format!("renaming {} to {}: {e}", partial.display(), dest.display()))?;
    println!(
        "Extracted {} entries ({} of file content) into {}.",
        report.entries,
        human(report.bytes),
        dest.display()
    );
    if report.special_bits_dropped > 0 {
        println!(
            "Dropped set-user-ID/set-group-ID/sticky bits on {} entries (--same-permissions keeps them).",
            report.special_bits_dropped
        );
    }
    if report.xattrs_skipped > 0 {
        println!(
            "Skipped {} extended attributes outside user.* (--same-permissions restores them).",
            report.xattrs_skipped
        );
    }
    for w in &report.warnings {
        println!("Warning: {w}");
    }
    if report.more_warnings > 0 {
        println!(
            "... and {} more warnings (see the log with RUST_LOG=warn)",
            report.more_warnings
        );
    }
    Ok(0)
}

/// One `tar -tv`-like line: type and permissions, owner, size, mtime (UTC), path.
fn list_line(l: &Listed) -> String {
    let size = match l.device {
        Some((a, b)) => format!("{a},{b}"),
        None => l.size.to_string(),
    };
    let mut s = format!(
        "{} {}/{} {:>10} {} {}",
        mode_string(l.kind, l.mode),
        l.uid,
        l.gid,
        size,
        utc(l.mtime.0),
        String::from_utf8_lossy(&l.path)
    );
    match (l.kind, &l.link) {
        ('l', Some(t)) => s.push_str(&format!(" -> {}", String::from_utf8_lossy(t))),
        ('h', Some(t)) => s.push_str(&format!(" link to {}", String::from_utf8_lossy(t))),
        _ => {}
    }
    s
}

fn mode_string(kind: char, mode: u32) -> String {
    let mut s = String::with_capacity(10);
    s.push(kind);
    let special = [
        (libc::S_ISUID, 's', 'S'),
        (libc::S_ISGID, 's', 'S'),
        (libc::S_ISVTX, 't', 'T'),
    ];
    for (i, (bit, on, off)) in special.iter().enumerate() {
        let shift = 6 - 3 * i as u32;
        let p = (mode >> shift) & 7;
        s.push(if p & 4 != 0 { 'r' } else { '-' });
        s.push(if p & 2 != 0 { 'w' } else { '-' });
        s.push(match (p & 1 != 0, mode & bit != 0) {
            (true, true) => *on,
            (false, true) => *off,
            (true, false) => 'x',
            (false, false) => '-',
        });
    }
    s
}

/// Seconds since the epoch as `YYYY-MM-DD HH:MM:SS` UTC.
fn utc(secs: i64) -> String {
    match jiff::Timestamp::from_second(secs) {
        Ok(t) => t.strftime("%Y-%m-%d %H:%M:%S").to_string(),
        // Outside jiff's range (years -9999..=9999): an archive may say anything.
        Err(_) => format!("{secs} s from 1970"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13:20");
        assert_eq!(utc(-1), "1969-12-31 23:59:59");
    }

    #[test]
    fn mode_strings() {
        assert_eq!(mode_string('-', 0o644), "-rw-r--r--");
        assert_eq!(mode_string('d', 0o1777), "drwxrwxrwt");
        assert_eq!(mode_string('-', 0o4755), "-rwsr-xr-x");
        assert_eq!(mode_string('-', 0o2644), "-rw-r-Sr--");
    }
}
