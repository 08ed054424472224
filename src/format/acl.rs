//! POSIX ACLs as Linux passes them through `system.posix_acl_access` and
//! `system.posix_acl_default`: the xattr value layout (FORMAT.md, "POSIX ACLs") and the
//! kernel's rules that tie an ACL to a file's mode (fs/posix_acl.c), which a FUSE
//! filesystem with `FUSE_POSIX_ACL` must apply itself. No crate does this without
//! linking libacl, and the layout is five fields.

use super::codec::FormatError;

/// `system.posix_acl_access`: the ACL checked on access.
pub const ACCESS: &[u8] = b"system.posix_acl_access";
/// `system.posix_acl_default`: a directory's ACL given to what is created in it.
pub const DEFAULT: &[u8] = b"system.posix_acl_default";

/// `POSIX_ACL_XATTR_VERSION`.
const VERSION: u32 = 2;
const HEADER: usize = 4;
const ENTRY: usize = 8;
/// The id stored with entries that name no one (`ACL_UNDEFINED_ID`).
const UNDEFINED_ID: u32 = u32::MAX;
/// The most entries an xattr value can hold ((XATTR_SIZE_MAX - 4) / 8).
const MAX_ENTRIES: usize = 8191;

/// An entry's kind, with the kernel's values (which also give the required order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tag {
    UserObj = 0x01,
    User = 0x02,
    GroupObj = 0x04,
    Group = 0x08,
    Mask = 0x10,
    Other = 0x20,
}

impl Tag {
    fn from_u16(v: u16) -> Option<Tag> {
        Some(match v {
            0x01 => Tag::UserObj,
            0x02 => Tag::User,
            0x04 => Tag::GroupObj,
            0x08 => Tag::Group,
            0x10 => Tag::Mask,
            0x20 => Tag::Other,
            _ => return None,
        })
    }
}

/// One entry: kind, permission bits (r=4, w=2, x=1) and, for named entries, the id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub tag: Tag,
    pub perm: u16,
    pub id: u32,
}

/// A valid ACL (the checks of the kernel's `posix_acl_valid`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acl(Vec<Entry>);

impl Acl {
    /// Parses an xattr value. `Ok(None)` is the empty ACL (a header alone), which the
    /// kernel treats as removal.
    pub fn parse(b: &[u8]) -> Result<Option<Acl>, FormatError> {
        let bad = FormatError::Invalid;
        if b.len() < HEADER || !(b.len() - HEADER).is_multiple_of(ENTRY) {
            return Err(bad("POSIX ACL: length is not a header plus whole entries"));
        }
        let version = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        if version != VERSION {
            return Err(bad("POSIX ACL: version is not 2"));
        }
        let n = (b.len() - HEADER) / ENTRY;
        if n > MAX_ENTRIES {
            return Err(bad("POSIX ACL: too many entries"));
        }
        if n == 0 {
            return Ok(None);
        }
        let mut entries = Vec::with_capacity(n);
        for e in b[HEADER..].chunks_exact(ENTRY) {
            let tag = Tag::from_u16(u16::from_le_bytes([e[0], e[1]]))
                .ok_or(bad("POSIX ACL: unknown entry tag"))?;
            let perm = u16::from_le_bytes([e[2], e[3]]);
            if perm & !7 != 0 {
                return Err(bad("POSIX ACL: permission bits beyond rwx"));
            }
            let id = u32::from_le_bytes([e[4], e[5], e[6], e[7]]);
            let id = if matches!(tag, Tag::User | Tag::Group) {
                id
            } else {
                UNDEFINED_ID
            };
            entries.push(Entry { tag, perm, id });
        }
        Acl::new(entries).map(Some)
    }

    /// Checks the entries as `posix_acl_valid` does: ordered by tag, exactly one owner,
    /// group and other entry, at most one mask, and a mask whenever there is a named
    /// entry. (Like the kernel, not the order of named entries' ids: libacl sorts them,
    /// a raw setxattr need not.)
    pub fn new(entries: Vec<Entry>) -> Result<Acl, FormatError> {
        let bad = FormatError::Invalid;
        let mut prev: Option<&Entry> = None;
        let (mut named, mut mask) = (false, 0);
        for e in &entries {
            if let Some(p) = prev {
                let ordered =
                    p.tag < e.tag || (p.tag == e.tag && matches!(e.tag, Tag::User | Tag::Group));
                if !ordered {
                    return Err(bad("POSIX ACL: entries out of order or repeated"));
                }
            }
            named |= matches!(e.tag, Tag::User | Tag::Group);
            mask += (e.tag == Tag::Mask) as u32;
            prev = Some(e);
        }
        let has = |t| entries.iter().any(|e| e.tag == t);
        if !has(Tag::UserObj) || !has(Tag::GroupObj) || !has(Tag::Other) {
            return Err(bad("POSIX ACL: owner, group or other entry missing"));
        }
        if named && mask == 0 {
            return Err(bad("POSIX ACL: named entries without a mask"));
        }
        Ok(Acl(entries))
    }

    pub fn entries(&self) -> &[Entry] {
        &self.0
    }

    /// The xattr value.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER + ENTRY * self.0.len());
        out.extend_from_slice(&VERSION.to_le_bytes());
        for e in &self.0 {
            out.extend_from_slice(&(e.tag as u16).to_le_bytes());
            out.extend_from_slice(&e.perm.to_le_bytes());
            out.extend_from_slice(&e.id.to_le_bytes());
        }
        out
    }

    /// Whether the mode bits say all this ACL says (owner, group and other entries
    /// only), and the mode that carries it: `posix_acl_equiv_mode`. With a mask, the
    /// group bits are the mask's.
    pub fn equiv_mode(&self, mode: u32) -> (bool, u32) {
        let mut bits = 0u32;
        let mut equiv = true;
        for e in &self.0 {
            let p = e.perm as u32;
            match e.tag {
                Tag::UserObj => bits |= p << 6,
                Tag::GroupObj => bits |= p << 3,
                Tag::Other => bits |= p,
                Tag::Mask => {
                    bits = (bits & !0o070) | (p << 3);
                    equiv = false;
                }
                Tag::User | Tag::Group => equiv = false,
            }
        }
        (equiv, (mode & !0o777) | bits)
    }

    /// The ACL a new node gets from its directory's default ACL, and the node's mode:
    /// `posix_acl_create_masq`. The requested mode limits the owner, other and mask (or
    /// group) entries, and those entries limit the mode. `None` when the result says no
    /// more than the mode (nothing to store).
    pub fn create_masq(&self, mode: u32) -> (Option<Acl>, u32) {
        let mut entries = self.0.clone();
        let mut m = mode & 0o777;
        let mut equiv = true;
        let (mut group_obj, mut mask) = (None, None);
        for (i, e) in entries.iter_mut().enumerate() {
            match e.tag {
                Tag::UserObj => {
                    e.perm &= ((m >> 6) & 7) as u16;
                    m &= ((e.perm as u32) << 6) | !0o700;
                }
                Tag::User | Tag::Group => equiv = false,
                Tag::GroupObj => group_obj = Some(i),
                Tag::Other => {
                    e.perm &= (m & 7) as u16;
                    m &= (e.perm as u32) | !0o007;
                }
                Tag::Mask => {
                    mask = Some(i);
                    equiv = false;
                }
            }
        }
        // A valid ACL has a group entry, so one of the two is there.
        if let Some(i) = mask.or(group_obj) {
            entries[i].perm &= ((m >> 3) & 7) as u16;
            m &= ((entries[i].perm as u32) << 3) | !0o070;
        }
        let mode = (mode & !0o777) | m;
        (if equiv { None } else { Some(Acl(entries)) }, mode)
    }

    /// The ACL after a chmod to `mode`: the owner and other entries and the mask (the
    /// group entry when there is no mask) take the mode's bits (`__posix_acl_chmod`).
    pub fn chmod(&self, mode: u32) -> Acl {
        let mut entries = self.0.clone();
        let has_mask = entries.iter().any(|e| e.tag == Tag::Mask);
        for e in &mut entries {
            match e.tag {
                Tag::UserObj => e.perm = ((mode >> 6) & 7) as u16,
                Tag::Other => e.perm = (mode & 7) as u16,
                Tag::Mask => e.perm = ((mode >> 3) & 7) as u16,
                Tag::GroupObj if !has_mask => e.perm = ((mode >> 3) & 7) as u16,
                _ => {}
            }
        }
        Acl(entries)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn e(tag: Tag, perm: u16, id: u32) -> Entry {
        Entry { tag, perm, id }
    }

    /// `u::rw-,u:1000:r--,g::r-x,m::rwx,o::---` as the kernel sends it (the bytes
    /// `setfacl` makes through libacl, written out by hand from FORMAT.md).
    const VECTOR: [u8; 44] = [
        2, 0, 0, 0, //
        1, 0, 6, 0, 0xff, 0xff, 0xff, 0xff, //
        2, 0, 4, 0, 0xe8, 0x03, 0, 0, //
        4, 0, 5, 0, 0xff, 0xff, 0xff, 0xff, //
        0x10, 0, 7, 0, 0xff, 0xff, 0xff, 0xff, //
        0x20, 0, 0, 0, 0xff, 0xff, 0xff, 0xff,
    ];

    #[test]
    fn parses_and_writes_the_kernel_layout() {
        let acl = Acl::parse(&VECTOR).unwrap().unwrap();
        assert_eq!(
            acl.entries(),
            &[
                e(Tag::UserObj, 6, UNDEFINED_ID),
                e(Tag::User, 4, 1000),
                e(Tag::GroupObj, 5, UNDEFINED_ID),
                e(Tag::Mask, 7, UNDEFINED_ID),
                e(Tag::Other, 0, UNDEFINED_ID),
            ]
        );
        assert_eq!(acl.to_bytes(), VECTOR);
        assert_eq!(Acl::parse(&[2, 0, 0, 0]).unwrap(), None);
    }

    #[test]
    fn refuses_what_posix_acl_valid_refuses() {
        let mut v = VECTOR;
        v[0] = 1; // version
        assert!(Acl::parse(&v).is_err());
        assert!(Acl::parse(&VECTOR[..43]).is_err()); // torn entry
        let mut v = VECTOR.to_vec();
        v.extend_from_slice(&[0x20, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);
        assert!(Acl::parse(&v).is_err(), "two other entries");
        let mut v = VECTOR;
        v[6] = 8; // perm beyond rwx
        assert!(Acl::parse(&v).is_err());
        let mut v = VECTOR;
        v[28] = 0x40; // unknown tag
        assert!(Acl::parse(&v).is_err());
        // Named entry without a mask; missing other; out of order; repeated user id.
        let base = [e(Tag::UserObj, 6, 0), e(Tag::GroupObj, 4, 0)];
        let no_mask = [&base[..], &[e(Tag::User, 4, 7), e(Tag::Other, 0, 0)]].concat();
        assert!(Acl::new(no_mask).is_err());
        assert!(Acl::new(base.to_vec()).is_err());
        let ordered = vec![
            e(Tag::UserObj, 6, 0),
            e(Tag::User, 4, 7),
            e(Tag::User, 4, 9),
            e(Tag::GroupObj, 4, 0),
            e(Tag::Mask, 4, 0),
            e(Tag::Other, 0, 0),
        ];
        assert!(Acl::new(ordered.clone()).is_ok());
        let mut swapped = ordered.clone();
        swapped.swap(1, 3);
        assert!(Acl::new(swapped).is_err(), "a named user after the group");
        // Named ids in any order, as the kernel accepts them.
        let mut unsorted = ordered;
        unsorted.swap(1, 2);
        assert!(Acl::new(unsorted).is_ok());
    }

    #[test]
    fn mode_rules_follow_the_kernel() {
        let acl = Acl::parse(&VECTOR).unwrap().unwrap();
        // With a mask the group bits are the mask's (set-id bits stay); named entries are
        // not equivalent.
        assert_eq!(acl.equiv_mode(0o104644), (false, 0o104670));
        let three = Acl::new(vec![
            e(Tag::UserObj, 7, UNDEFINED_ID),
            e(Tag::GroupObj, 5, UNDEFINED_ID),
            e(Tag::Other, 1, UNDEFINED_ID),
        ])
        .unwrap();
        assert_eq!(three.equiv_mode(0o100000), (true, 0o100751));
        // A default ACL given to a file created with 0666: the mask and owner entries
        // lose what the mode lacks, and the mode takes the mask's group bits.
        let (child, mode) = acl.create_masq(0o100666);
        assert_eq!(mode, 0o100660);
        let child = child.unwrap();
        assert_eq!(child.entries()[0].perm, 6);
        assert_eq!(child.entries()[3], e(Tag::Mask, 6, UNDEFINED_ID));
        // The named entry keeps its own bits; the mask limits it.
        assert_eq!(child.entries()[1], e(Tag::User, 4, 1000));
        // Three entries only: the mode is all there is to store.
        assert_eq!(three.create_masq(0o040777), (None, 0o040751));
        // chmod moves the owner, other and mask entries, not the group or named ones.
        let c = acl.chmod(0o100741);
        assert_eq!(
            c.entries(),
            &[
                e(Tag::UserObj, 7, UNDEFINED_ID),
                e(Tag::User, 4, 1000),
                e(Tag::GroupObj, 5, UNDEFINED_ID),
                e(Tag::Mask, 4, UNDEFINED_ID),
                e(Tag::Other, 1, UNDEFINED_ID),
            ]
        );
        assert_eq!(three.chmod(0o600).equiv_mode(0), (true, 0o600));
    }
}
