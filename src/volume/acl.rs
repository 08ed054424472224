//! POSIX ACLs kept in a node's record, with the mode kept in step as Linux filesystems
//! do: with `FUSE_POSIX_ACL` the kernel enforces and caches ACLs but leaves to the
//! filesystem what ext4 does in `posix_acl_update_mode`, `posix_acl_create` and
//! `posix_acl_chmod` (the rules themselves are `format::acl`).

use super::*;
use crate::format::acl::{self, Acl};
use crate::format::record::{Payload, Time};
use log::warn;

/// Which of a node's two ACLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AclKind {
    /// Checked on access to the node.
    Access,
    /// A directory's, given to nodes created in it.
    Default,
}

impl AclKind {
    /// The ACL an xattr name stands for, if it is one.
    pub fn of_name(name: &[u8]) -> Option<AclKind> {
        match name {
            n if n == acl::ACCESS => Some(AclKind::Access),
            n if n == acl::DEFAULT => Some(AclKind::Default),
            _ => None,
        }
    }

    fn name(self) -> &'static [u8] {
        match self {
            AclKind::Access => acl::ACCESS,
            AclKind::Default => acl::DEFAULT,
        }
    }
}

/// A stored ACL, or `None` (with a warning) when the record holds one that does not
/// parse: a damaged one must not block the node, and the mode still guards it.
fn stored(xattrs: &BTreeMap<Vec<u8>, Vec<u8>>, kind: AclKind) -> Option<Acl> {
    let v = xattrs.get(kind.name())?;
    match Acl::parse(v) {
        Ok(a) => a,
        Err(e) => {
            warn!("ignoring a stored {kind:?} ACL that does not parse: {e}");
            None
        }
    }
}

/// Mode and ACLs of a node about to be created in a directory with `parent` xattrs:
/// with a default ACL there, the node gets it (its mode limited by the ACL, the umask
/// unused), and a directory keeps it as its own default; otherwise the umask applies.
/// Symbolic links have no ACLs.
pub(super) fn inherit(
    parent: &BTreeMap<Vec<u8>, Vec<u8>>,
    mode: u32,
    umask: u32,
) -> (u32, BTreeMap<Vec<u8>, Vec<u8>>) {
    let mut xattrs = BTreeMap::new();
    let fmt = mode & libc::S_IFMT;
    let default = (fmt != libc::S_IFLNK)
        .then(|| stored(parent, AclKind::Default))
        .flatten();
    let Some(default) = default else {
        let keep = if fmt == libc::S_IFLNK { 0o7777 } else { !umask };
        return (mode & (libc::S_IFMT | (keep & 0o7777)), xattrs);
    };
    let (access, mode) = default.create_masq(mode);
    if let Some(a) = access {
        xattrs.insert(acl::ACCESS.to_vec(), a.to_bytes());
    }
    if fmt == libc::S_IFDIR {
        xattrs.insert(acl::DEFAULT.to_vec(), default.to_bytes());
    }
    (mode, xattrs)
}

/// After a chmod to `mode`, the access ACL's owner, other and mask entries follow it.
pub(super) fn follow_chmod(xattrs: &mut BTreeMap<Vec<u8>, Vec<u8>>, mode: u32) {
    if let Some(a) = stored(xattrs, AclKind::Access) {
        xattrs.insert(acl::ACCESS.to_vec(), a.chmod(mode).to_bytes());
    }
}

impl Category {
    /// Sets an ACL from its xattr value. An access ACL also sets the mode (its group
    /// bits are the mask's), and one the mode says in full is not stored;
    /// `keep_setgid` is false when the caller is neither in the file's group nor
    /// privileged, which drops set-group-ID as `posix_acl_update_mode` does.
    pub fn set_acl(
        &self,
        ino: u64,
        kind: AclKind,
        value: &[u8],
        keep_setgid: bool,
    ) -> VolResult<()> {
        let parsed = Acl::parse(value).map_err(|_| VolError::Invalid("malformed POSIX ACL"))?;
        let mut s = self.lock();
        self.ensure_leaf(&mut s, ino)?;
        let r = s.tree.records.get_mut(&ino).ok_or(VolError::NotFound)?;
        match kind {
            AclKind::Access => {
                if matches!(r.payload, Payload::Symlink(_)) {
                    return Err(VolError::Unsupported("ACLs on symbolic links"));
                }
                let mut mode = r.attr.mode;
                let keep = match &parsed {
                    Some(a) => {
                        let (equiv, m) = a.equiv_mode(mode);
                        mode = m;
                        (!equiv).then(|| a.to_bytes())
                    }
                    None => None,
                };
                if !keep_setgid {
                    mode &= !libc::S_ISGID;
                }
                r.attr.mode = mode;
                match keep {
                    Some(v) => r.xattrs.insert(acl::ACCESS.to_vec(), v),
                    None => r.xattrs.remove(acl::ACCESS),
                };
            }
            AclKind::Default => {
                if !matches!(r.payload, Payload::Dir { .. }) {
                    return Err(VolError::NotPermitted("default ACLs are for directories"));
                }
                match parsed {
                    Some(a) => r.xattrs.insert(acl::DEFAULT.to_vec(), a.to_bytes()),
                    None => r.xattrs.remove(acl::DEFAULT),
                };
            }
        }
        r.attr.ctime = Time::now();
        s.tree.dirty_leaves.insert(Self::leaf_of(ino));
        Ok(())
    }

    /// Removes an ACL; removing one that is not there succeeds, as on ext4 and tmpfs.
    /// The mode stays as it is.
    pub fn remove_acl(&self, ino: u64, kind: AclKind) -> VolResult<()> {
        let mut s = self.lock();
        self.ensure_leaf(&mut s, ino)?;
        let r = s.tree.records.get_mut(&ino).ok_or(VolError::NotFound)?;
        if r.xattrs.remove(kind.name()).is_some() {
            r.attr.ctime = Time::now();
            s.tree.dirty_leaves.insert(Self::leaf_of(ino));
        }
        Ok(())
    }
}
