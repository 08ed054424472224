//! Reading an archive back: listing its entries, or extracting them into a fresh directory.
//! The tar crate parses; creating files is done here, so that every entry is checked to stay
//! inside the target (no `..`, no absolute path, no path through a symlink), FIFOs and
//! device nodes are made as what they are, and exact mtimes and xattrs are restored on
//! every kind of entry. How far the archive's permissions are trusted (set-ID bits, device
//! nodes) is the caller's choice, a [`Permissions`]. Reads the archive once, front to back, with bounded memory
//! (one copy buffer, plus the metadata of directories, applied at the end).

use super::ExportError;
use crate::format::export::parse_pax_time;
use std::ffi::{CString, OsStr};
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use tar::{Archive, EntryType};

/// Copy buffer for file content.
const COPY_BUF: usize = 256 * 1024;
/// Warnings kept for the report; more are counted.
const MAX_WARNINGS: usize = 20;

/// One archive entry as listed.
#[derive(Debug, Clone)]
pub struct Listed {
    /// `d` directory, `-` file, `l` symlink, `h` hard link, `p` FIFO, `c`/`b` devices.
    pub kind: char,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub size: u64,
    pub mtime: (i64, u32),
    pub path: Vec<u8>,
    /// Symlink target or hard link target.
    pub link: Option<Vec<u8>>,
    pub device: Option<(u32, u32)>,
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

fn kind_char(t: EntryType) -> Option<char> {
    Some(match t {
        EntryType::Directory => 'd',
        EntryType::Regular | EntryType::Continuous => '-',
        EntryType::Symlink => 'l',
        EntryType::Link => 'h',
        EntryType::Fifo => 'p',
        EntryType::Char => 'c',
        EntryType::Block => 'b',
        _ => return None,
    })
}

fn describe<R: Read>(e: &mut tar::Entry<R>) -> Result<Option<Listed>, ExportError> {
    let h = e.header();
    let t = h.entry_type();
    let path = e.path_bytes().into_owned();
    let bad = |why: String| ExportError::BadEntry {
        path: String::from_utf8_lossy(&path).into_owned(),
        why,
    };
    if t == EntryType::XGlobalHeader {
        return Ok(None);
    }
    let kind = kind_char(t).ok_or_else(|| bad(format!("unsupported tar entry type {:?}", t)))?;
    let mode = h.mode().map_err(|e| bad(e.to_string()))?;
    let uid = h.uid().map_err(|e| bad(e.to_string()))?;
    let gid = h.gid().map_err(|e| bad(e.to_string()))?;
    let mtime_secs = h.mtime().map_err(|e| bad(e.to_string()))?;
    let device = match t {
        EntryType::Char | EntryType::Block => Some((
            h.device_major()
                .map_err(|e| bad(e.to_string()))?
                .unwrap_or(0),
            h.device_minor()
                .map_err(|e| bad(e.to_string()))?
                .unwrap_or(0),
        )),
        _ => None,
    };
    let link = match t {
        EntryType::Symlink | EntryType::Link => Some(
            e.link_name_bytes()
                .ok_or_else(|| bad("link without a target".into()))?
                .into_owned(),
        ),
        _ => None,
    };
    let size = e.size();
    let mut mtime = (i64::try_from(mtime_secs).unwrap_or(i64::MAX), 0u32);
    let mut xattrs = Vec::new();
    if let Some(pax) = e.pax_extensions().map_err(ExportError::reading)? {
        for rec in pax {
            let rec = rec.map_err(|e| bad(format!("bad PAX record: {e}")))?;
            let key = rec.key_bytes();
            if key == b"mtime" {
                mtime =
                    parse_pax_time(rec.value_bytes()).ok_or_else(|| bad("bad PAX mtime".into()))?;
            } else if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                xattrs.push((name.to_vec(), rec.value_bytes().to_vec()));
            }
        }
    }
    Ok(Some(Listed {
        kind,
        mode,
        uid,
        gid,
        size,
        mtime,
        path,
        link,
        device,
        xattrs,
    }))
}

/// Reads what is left after the tar end-of-archive blocks, so an encrypted archive is
/// verified to its final segment (and refused if that is missing or followed by more).
fn drain<R: Read>(mut r: R) -> Result<(), ExportError> {
    io::copy(&mut r, &mut io::sink()).map_err(ExportError::reading)?;
    Ok(())
}

/// Calls `each` for every entry, in archive order; returns the number of entries.
pub fn list<R: Read>(reader: R, each: &mut dyn FnMut(&Listed)) -> Result<u64, ExportError> {
    let mut ar = Archive::new(reader);
    let mut n = 0;
    for e in ar.entries().map_err(ExportError::reading)? {
        let mut e = e.map_err(ExportError::reading)?;
        if let Some(l) = describe(&mut e)? {
            each(&l);
            n += 1;
        }
    }
    drain(ar.into_inner())?;
    Ok(n)
}

/// How far an extraction trusts the permissions an archive holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permissions {
    /// As in the archive: set-user-ID, set-group-ID and sticky bits kept, device nodes
    /// made (by root; skipped with a warning otherwise).
    Same,
    /// For an archive anyone could have written: set-user-ID and set-group-ID dropped
    /// (and the sticky bit on non-directories, where it means nothing useful), device
    /// nodes refused, and only `user.*` extended attributes restored. A directory keeps
    /// set-group-ID and sticky: they grant no privilege.
    Restricted,
}

impl Permissions {
    /// The mode to give an entry of `kind` whose archive mode is `mode`.
    fn mode(self, kind: char, mode: u32) -> u32 {
        let mode = mode & 0o7777;
        match (self, kind) {
            (Permissions::Same, _) => mode,
            (Permissions::Restricted, 'd') => mode & !libc::S_ISUID,
            (Permissions::Restricted, _) => mode & !(libc::S_ISUID | libc::S_ISGID | libc::S_ISVTX),
        }
    }

    /// Whether the extended attribute `name` is restored. Outside `user.*`, attributes
    /// carry privilege or policy (`security.capability` is file capabilities,
    /// `security.selinux` a label, `trusted.*` is root's), which an archive anyone could
    /// have written must not grant, any more than a set-user-ID bit.
    pub fn keeps_xattr(self, name: &[u8]) -> bool {
        match self {
            Permissions::Same => true,
            Permissions::Restricted => name.starts_with(b"user."),
        }
    }
}

/// What an extraction did, and what it could not restore.
#[derive(Debug, Default)]
pub struct ExtractReport {
    pub entries: u64,
    pub bytes: u64,
    /// Entries whose set-user-ID, set-group-ID or sticky bit was dropped
    /// ([`Permissions::Restricted`]).
    pub special_bits_dropped: u64,
    /// Extended attributes outside `user.*` not restored ([`Permissions::Restricted`]).
    pub xattrs_skipped: u64,
    pub warnings: Vec<String>,
    /// Warnings beyond the ones kept.
    pub more_warnings: u64,
}

impl ExtractReport {
    fn warn(&mut self, w: String) {
        log::warn!("{w}");
        if self.warnings.len() < MAX_WARNINGS {
            self.warnings.push(w);
        } else {
            self.more_warnings += 1;
        }
    }
}

/// A directory's attributes, applied after everything inside it was created (a read-only
/// directory would refuse its own content, and creating entries changes its mtime).
struct DirMeta {
    path: PathBuf,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: (i64, u32),
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Extracts every entry under `dest`, an existing empty directory, trusting the archive's
/// permissions as far as `perms` says. On an error the file being written is removed;
/// what was extracted before stays, and the error says why.
pub fn extract<R: Read>(
    reader: R,
    dest: &Path,
    perms: Permissions,
) -> Result<ExtractReport, ExportError> {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let mut x = Extractor {
        dest: dest.to_path_buf(),
        root,
        perms,
        report: ExtractReport::default(),
        dirs: Vec::new(),
        buf: vec![0u8; COPY_BUF],
    };
    let mut ar = Archive::new(reader);
    for e in ar.entries().map_err(ExportError::reading)? {
        let mut e = e.map_err(ExportError::reading)?;
        x.entry(&mut e)?;
    }
    drain(ar.into_inner())?;
    x.finish_dirs()?;
    Ok(x.report)
}

struct Extractor {
    dest: PathBuf,
    /// Only root can give files away, so ownership is restored only then (as tar does).
    root: bool,
    perms: Permissions,
    report: ExtractReport,
    dirs: Vec<DirMeta>,
    buf: Vec<u8>,
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> ExportError + '_ {
    move |source| ExportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn cstr(p: &Path) -> Result<CString, ExportError> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| ExportError::UnsafePath(p.display().to_string()))
}

fn timespec((sec, nsec): (i64, u32)) -> libc::timespec {
    libc::timespec {
        tv_sec: sec as libc::time_t,
        tv_nsec: nsec as libc::c_long,
    }
}

fn check(ret: libc::c_int) -> io::Result<()> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// An archive path as a relative path with only normal components; leading slashes are
/// dropped (as tar does), `..` is refused. `None` for the archive root itself (`./`).
fn relative(bytes: &[u8]) -> Result<Option<PathBuf>, ExportError> {
    let mut p = PathBuf::new();
    for c in bytes.split(|b| *b == b'/') {
        match c {
            b"" | b"." => continue,
            b".." => {
                return Err(ExportError::UnsafePath(
                    String::from_utf8_lossy(bytes).into(),
                ));
            }
            c if c.contains(&0) => {
                return Err(ExportError::UnsafePath(
                    String::from_utf8_lossy(bytes).into(),
                ));
            }
            c => p.push(OsStr::from_bytes(c)),
        }
    }
    Ok((!p.as_os_str().is_empty()).then_some(p))
}

impl Extractor {
    /// `dest/rel`, after checking (or creating, mode 0700) each parent as a real directory:
    /// a parent that is a symlink could lead outside `dest`.
    fn place(&self, rel: &Path, create: bool) -> Result<PathBuf, ExportError> {
        let mut cur = self.dest.clone();
        let parts: Vec<_> = rel.components().collect();
        for c in &parts[..parts.len().saturating_sub(1)] {
            cur.push(c);
            match fs::symlink_metadata(&cur) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(ExportError::BadEntry {
                        path: rel.display().to_string(),
                        why: format!("{} is not a directory", cur.display()),
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                    DirBuilder::new()
                        .mode(0o700)
                        .create(&cur)
                        .map_err(io_at(&cur))?;
                }
                Err(e) => return Err(io_at(&cur)(e)),
            }
        }
        Ok(self.dest.join(rel))
    }

    fn fresh(&self, rel: &Path, target: &Path) -> Result<(), ExportError> {
        match fs::symlink_metadata(target) {
            Ok(_) => Err(ExportError::Duplicate(rel.display().to_string())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_at(target)(e)),
        }
    }

    fn entry<R: Read>(&mut self, e: &mut tar::Entry<R>) -> Result<(), ExportError> {
        let Some(mut m) = describe(e)? else {
            return Ok(());
        };
        if matches!(m.kind, 'c' | 'b') && self.perms == Permissions::Restricted {
            // Refused before anything is created for it: a device node is access to
            // hardware (a disk, memory) for whoever may open it.
            return Err(ExportError::DeviceRefused(
                String::from_utf8_lossy(&m.path).into(),
            ));
        }
        let mode = self.perms.mode(m.kind, m.mode);
        if m.kind != 'l' && m.kind != 'h' && mode != m.mode & 0o7777 {
            self.report.special_bits_dropped += 1;
        }
        m.mode = mode;
        let before = m.xattrs.len();
        m.xattrs.retain(|(name, _)| self.perms.keeps_xattr(name));
        self.report.xattrs_skipped += (before - m.xattrs.len()) as u64;
        let Some(rel) = relative(&m.path)? else {
            if m.kind == 'd' {
                return Ok(());
            }
            return Err(ExportError::UnsafePath(
                String::from_utf8_lossy(&m.path).into(),
            ));
        };
        let target = self.place(&rel, true)?;
        match m.kind {
            'd' => {
                match fs::symlink_metadata(&target) {
                    Ok(md) if md.is_dir() => {}
                    Ok(_) => return Err(ExportError::Duplicate(rel.display().to_string())),
                    Err(_) => DirBuilder::new()
                        .mode(0o700)
                        .create(&target)
                        .map_err(io_at(&target))?,
                }
                self.dirs.push(DirMeta {
                    path: target,
                    mode: m.mode,
                    uid: m.uid,
                    gid: m.gid,
                    mtime: m.mtime,
                    xattrs: m.xattrs,
                });
            }
            '-' => {
                self.fresh(&rel, &target)?;
                let r = self.file(e, &m, &target);
                if r.is_err() {
                    // Never leave a half-written file behind: its content would look whole.
                    let _ = fs::remove_file(&target);
                }
                r?;
            }
            'l' => {
                self.fresh(&rel, &target)?;
                let link = m.link.as_deref().unwrap_or_default();
                if link.is_empty() {
                    return Err(ExportError::BadEntry {
                        path: rel.display().to_string(),
                        why: "symlink with an empty target".into(),
                    });
                }
                std::os::unix::fs::symlink(OsStr::from_bytes(link), &target)
                    .map_err(io_at(&target))?;
                self.path_meta(&target, &m, false)?;
            }
            'h' => {
                self.fresh(&rel, &target)?;
                let to = m.link.as_deref().unwrap_or_default();
                let src_rel = relative(to)?
                    .ok_or_else(|| ExportError::UnsafePath(String::from_utf8_lossy(to).into()))?;
                let src = self.place(&src_rel, false)?;
                match fs::symlink_metadata(&src) {
                    Ok(md) if !md.is_dir() => {}
                    _ => {
                        return Err(ExportError::BadEntry {
                            path: rel.display().to_string(),
                            why: format!(
                                "hard link to {}, which is not an earlier file in the archive",
                                src_rel.display()
                            ),
                        });
                    }
                }
                // link(2) does not follow a symlink at `src`: the link is to the symlink.
                fs::hard_link(&src, &target).map_err(io_at(&target))?;
            }
            'p' | 'c' | 'b' => {
                self.fresh(&rel, &target)?;
                let (fmt, dev) = match (m.kind, m.device) {
                    ('c', Some((a, b))) => (libc::S_IFCHR, libc::makedev(a, b)),
                    ('b', Some((a, b))) => (libc::S_IFBLK, libc::makedev(a, b)),
                    _ => (libc::S_IFIFO, 0),
                };
                let c = cstr(&target)?;
                // SAFETY: a valid C string; mknod creates one node.
                let made = check(unsafe { libc::mknod(c.as_ptr(), fmt | 0o600, dev) });
                match made {
                    Ok(()) => self.path_meta(&target, &m, true)?,
                    Err(err) if err.raw_os_error() == Some(libc::EPERM) => {
                        self.report.warn(format!(
                            "{}: device node not created (only root can make one)",
                            rel.display()
                        ));
                        return Ok(());
                    }
                    Err(err) => return Err(io_at(&target)(err)),
                }
            }
            k => {
                return Err(ExportError::BadEntry {
                    path: rel.display().to_string(),
                    why: format!("unsupported entry kind {k}"),
                });
            }
        }
        self.report.entries += 1;
        Ok(())
    }

    fn file<R: Read>(
        &mut self,
        e: &mut tar::Entry<R>,
        m: &Listed,
        target: &Path,
    ) -> Result<(), ExportError> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(target)
            .map_err(io_at(target))?;
        loop {
            let n = e.read(&mut self.buf).map_err(ExportError::reading)?;
            if n == 0 {
                break;
            }
            f.write_all(&self.buf[..n]).map_err(io_at(target))?;
            self.report.bytes += n as u64;
        }
        self.fd_meta(&f, target, m.mode, m.uid, m.gid, m.mtime, &m.xattrs)
    }

    /// Sets each extended attribute through `fd`; one that cannot be set is reported.
    fn restore_xattrs(&mut self, fd: i32, path: &Path, xattrs: &[(Vec<u8>, Vec<u8>)]) {
        for (name, value) in xattrs {
            let Ok(n) = CString::new(name.clone()) else {
                continue;
            };
            // SAFETY: valid fd, C string and buffer.
            let r = check(unsafe {
                libc::fsetxattr(fd, n.as_ptr(), value.as_ptr().cast(), value.len(), 0)
            });
            if let Err(err) = r {
                self.report.warn(format!(
                    "{}: extended attribute {} not restored: {err}",
                    path.display(),
                    String::from_utf8_lossy(name)
                ));
            }
        }
    }

    /// Restores xattrs, owner (root only), mode and times through an open descriptor. Not
    /// root: xattrs first (they need write permission, which the mode may take away).
    /// Root: owner first, since a chown drops set-user-ID and a file capability
    /// (`security.capability`), then xattrs; the mode always comes after the chown.
    #[allow(clippy::too_many_arguments)]
    fn fd_meta(
        &mut self,
        f: &File,
        path: &Path,
        mode: u32,
        uid: u64,
        gid: u64,
        mtime: (i64, u32),
        xattrs: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<(), ExportError> {
        let fd = f.as_raw_fd();
        if !self.root {
            self.restore_xattrs(fd, path, xattrs);
        }
        if self.root {
            // SAFETY: valid fd.
            check(unsafe { libc::fchown(fd, uid as libc::uid_t, gid as libc::gid_t) })
                .map_err(io_at(path))?;
        }
        if self.root {
            self.restore_xattrs(fd, path, xattrs);
        }
        // SAFETY: valid fd.
        check(unsafe { libc::fchmod(fd, (mode & 0o7777) as libc::mode_t) }).map_err(io_at(path))?;
        let t = [timespec(mtime), timespec(mtime)];
        // SAFETY: valid fd and two timespecs.
        check(unsafe { libc::futimens(fd, t.as_ptr()) }).map_err(io_at(path))
    }

    /// The same for entries that cannot be opened (symlinks, FIFOs, devices), by path
    /// without following a final symlink. Symlinks have no mode of their own.
    fn path_meta(&mut self, path: &Path, m: &Listed, chmod: bool) -> Result<(), ExportError> {
        let c = cstr(path)?;
        for (name, value) in &m.xattrs {
            let Ok(n) = CString::new(name.clone()) else {
                continue;
            };
            // SAFETY: valid C strings and buffer.
            let r = check(unsafe {
                libc::lsetxattr(
                    c.as_ptr(),
                    n.as_ptr(),
                    value.as_ptr().cast(),
                    value.len(),
                    0,
                )
            });
            if let Err(err) = r {
                self.report.warn(format!(
                    "{}: extended attribute {} not restored: {err}",
                    path.display(),
                    String::from_utf8_lossy(name)
                ));
            }
        }
        if self.root {
            // SAFETY: valid C string.
            check(unsafe { libc::lchown(c.as_ptr(), m.uid as libc::uid_t, m.gid as libc::gid_t) })
                .map_err(io_at(path))?;
        }
        if chmod {
            // SAFETY: valid C string; the entry was just created and is not a symlink.
            check(unsafe { libc::chmod(c.as_ptr(), (m.mode & 0o7777) as libc::mode_t) })
                .map_err(io_at(path))?;
        }
        let t = [timespec(m.mtime), timespec(m.mtime)];
        // SAFETY: valid C string and two timespecs.
        check(unsafe {
            libc::utimensat(
                libc::AT_FDCWD,
                c.as_ptr(),
                t.as_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            )
        })
        .map_err(io_at(path))
    }

    /// Applies directory attributes deepest first, so a parent's mtime and mode are set
    /// after its children exist.
    fn finish_dirs(&mut self) -> Result<(), ExportError> {
        let mut dirs = std::mem::take(&mut self.dirs);
        dirs.sort_by(|a, b| {
            b.path
                .as_os_str()
                .as_bytes()
                .cmp(a.path.as_os_str().as_bytes())
        });
        for d in dirs {
            let f = OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&d.path)
                .map_err(io_at(&d.path))?;
            self.fd_meta(&f, &d.path, d.mode, d.uid, d.gid, d.mtime, &d.xattrs)?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "read_tests.rs"]
mod tests;
