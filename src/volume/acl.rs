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
/// parse: a damaged one must not block the node, and [`for_kernel`] never hands it out.
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

/// The ACL the kernel is given to check access with: the stored one brought in step
/// with the mode (as a chmod here would have), since a record written by another build
/// or device may hold an ACL whose owner, mask or other entries say more than the mode
/// (the kernel checks an ACL it reads only for its tags, and then goes by it instead of
/// the mode's group and other bits). An access ACL the mode says in full, or one that
/// does not parse, is no ACL.
pub(super) fn for_kernel(r: &Record, kind: AclKind) -> Option<Vec<u8>> {
    let a = stored(&r.xattrs, kind)?;
    match kind {
        AclKind::Default => Some(a.to_bytes()),
        AclKind::Access => {
            let a = a.chmod(r.attr.mode);
            (!a.equiv_mode(r.attr.mode).0).then(|| a.to_bytes())
        }
    }
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
                    // (The kernel answers EACCES before asking.)
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

    /// Gives `ino` the permissions of `old` (its mode bits without set-id, its group, and
    /// its access ACL, or none): a web upload that replaces a file must not open it wider than the
    /// file it replaces, which a fresh node's default mode or inherited ACL could.
    pub(super) fn keep_permissions(&self, old: &NodeInfo, ino: u64) -> VolResult<()> {
        let mut s = self.lock();
        self.ensure_leaf(&mut s, old.ino)?;
        let acl = s
            .tree
            .records
            .get(&old.ino)
            .and_then(|r| r.xattrs.get(acl::ACCESS).cloned());
        self.ensure_leaf(&mut s, ino)?;
        let r = s.tree.records.get_mut(&ino).ok_or(VolError::NotFound)?;
        r.attr.mode = (r.attr.mode & libc::S_IFMT) | (old.attr.mode & 0o777);
        // The group too: the mode's group bits were meant for the old file's group.
        r.attr.gid = old.attr.gid;
        match acl {
            Some(v) => r.xattrs.insert(acl::ACCESS.to_vec(), v),
            None => r.xattrs.remove(acl::ACCESS),
        };
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::format::acl::{Entry, Tag};
    use crate::store::MemStore;
    use crate::volume::testing;

    fn acl(other: u16, named: Option<u16>) -> Vec<u8> {
        let e = |tag, perm, id| Entry { tag, perm, id };
        let mut v = vec![e(Tag::UserObj, 6, u32::MAX)];
        if let Some(p) = named {
            v.push(e(Tag::User, p, 1000));
        }
        v.push(e(Tag::GroupObj, 4, u32::MAX));
        if named.is_some() {
            v.push(e(Tag::Mask, 7, u32::MAX));
        }
        v.push(e(Tag::Other, other, u32::MAX));
        Acl::new(v).unwrap().to_bytes()
    }

    /// What the kernel is given never says more than the mode: a record from another
    /// build whose ACL a chmod did not follow is brought in step, one that does not
    /// parse or that the mode says in full is no ACL, and none of it blocks the node.
    #[test]
    fn the_kernel_gets_acls_in_step_with_the_mode() {
        let store: Arc<dyn Store> = Arc::new(MemStore::new());
        let c = testing::open(&store, 3);
        let ino = testing::write_file(&c, "f", b"x");
        c.set_acl(ino, AclKind::Access, &acl(4, Some(7)), true)
            .unwrap();
        assert_eq!(c.getattr(ino).unwrap().attr.mode & 0o777, 0o674);
        // As an older build's chmod 640 would leave it: mode changed, ACL not.
        let tamper = |mode: u32, value: Option<Vec<u8>>| {
            let mut s = c.lock();
            let r = s.tree.records.get_mut(&ino).unwrap();
            r.attr.mode = libc::S_IFREG | mode;
            if let Some(v) = value {
                r.xattrs.insert(acl::ACCESS.to_vec(), v);
            }
        };
        tamper(0o640, None);
        let given = Acl::parse(&c.getxattr(ino, acl::ACCESS).unwrap())
            .unwrap()
            .unwrap();
        let perm = |t| given.entries().iter().find(|e| e.tag == t).unwrap().perm;
        assert_eq!((perm(Tag::Mask), perm(Tag::Other)), (4, 0));
        assert_eq!(
            perm(Tag::User),
            7,
            "the named entry stays, limited by the mask"
        );
        // Three entries only: the mode is the whole answer, and the name is not listed.
        tamper(0o640, Some(acl(4, None)));
        assert!(matches!(
            c.getxattr(ino, acl::ACCESS),
            Err(VolError::NoAttr)
        ));
        assert!(c.listxattr(ino).unwrap().is_empty());
        // Garbage: no ACL, and the node still reads.
        tamper(0o640, Some(vec![2, 0, 0, 0, 9]));
        assert!(matches!(
            c.getxattr(ino, acl::ACCESS),
            Err(VolError::NoAttr)
        ));
        assert_eq!(c.read(ino, 0, 1).unwrap(), b"x");
        // Removing what is not there succeeds; a default ACL is for folders only.
        c.remove_acl(ino, AclKind::Default).unwrap();
        assert!(
            c.set_acl(ino, AclKind::Default, &acl(0, None), true)
                .is_err()
        );
    }

    /// Set-group-ID goes when the caller is outside the file's group, and stays when not.
    #[test]
    fn setting_an_acl_drops_setgid_only_for_outsiders() {
        let store: Arc<dyn Store> = Arc::new(MemStore::new());
        let c = testing::open(&store, 3);
        let ino = testing::write_file(&c, "f", b"x");
        let chmod = |m| {
            c.setattr(
                ino,
                crate::volume::SetAttr {
                    mode: Some(m),
                    ..Default::default()
                },
            )
            .unwrap()
        };
        chmod(0o2770);
        c.set_acl(ino, AclKind::Access, &acl(0, Some(4)), true)
            .unwrap();
        assert_eq!(c.getattr(ino).unwrap().attr.mode & 0o7777, 0o2670);
        c.set_acl(ino, AclKind::Access, &acl(0, Some(4)), false)
            .unwrap();
        assert_eq!(c.getattr(ino).unwrap().attr.mode & 0o7777, 0o670);
    }
}
