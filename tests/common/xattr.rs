//! Extended attributes through the raw syscalls (no-follow variants where it matters),
//! so a test sees ERANGE, ENODATA and the sizes the kernel reports.

use super::*;
use std::ffi::CString;
use std::io;
use std::path::Path;

pub fn set_xattr(p: &Path, name: &str, value: &[u8], flags: libc::c_int) -> io::Result<()> {
    let c = cpath(p);
    let n = CString::new(name).expect("xattr name");
    // SAFETY: valid pointers and lengths.
    cvt(unsafe {
        libc::setxattr(
            c.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            flags,
        )
    })
    .map(drop)
}

pub fn lset_xattr(p: &Path, name: &str, value: &[u8], flags: libc::c_int) -> io::Result<()> {
    let c = cpath(p);
    let n = CString::new(name).expect("xattr name");
    // SAFETY: valid pointers and lengths.
    cvt(unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            flags,
        )
    })
    .map(drop)
}

/// getxattr with a caller-sized buffer (to observe ERANGE); `cap == 0` asks for the size.
pub fn get_xattr_sized(p: &Path, name: &str, cap: usize) -> io::Result<(usize, Vec<u8>)> {
    let c = cpath(p);
    let n = CString::new(name).expect("xattr name");
    let mut buf = vec![0u8; cap];
    let ptr = if cap == 0 {
        std::ptr::null_mut()
    } else {
        buf.as_mut_ptr().cast()
    };
    // SAFETY: buffer of `cap` bytes (or NULL with size 0).
    let r = cvt_size(unsafe { libc::getxattr(c.as_ptr(), n.as_ptr(), ptr, cap) })?;
    buf.truncate(r.min(cap));
    Ok((r, buf))
}

fn get_xattr_impl(p: &Path, name: &str, follow: bool) -> io::Result<Vec<u8>> {
    let c = cpath(p);
    let n = CString::new(name).expect("xattr name");
    let call = |buf: *mut libc::c_void, len: usize| -> io::Result<usize> {
        // SAFETY: valid pointers; `buf` has `len` bytes.
        cvt_size(unsafe {
            if follow {
                libc::getxattr(c.as_ptr(), n.as_ptr(), buf, len)
            } else {
                libc::lgetxattr(c.as_ptr(), n.as_ptr(), buf, len)
            }
        })
    };
    loop {
        let size = call(std::ptr::null_mut(), 0)?;
        let mut buf = vec![0u8; size.max(1)];
        match call(buf.as_mut_ptr().cast(), buf.len()) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(e) if e.raw_os_error() == Some(libc::ERANGE) => continue,
            Err(e) => return Err(e),
        }
    }
}

pub fn get_xattr(p: &Path, name: &str) -> io::Result<Vec<u8>> {
    get_xattr_impl(p, name, true)
}

pub fn lget_xattr(p: &Path, name: &str) -> io::Result<Vec<u8>> {
    get_xattr_impl(p, name, false)
}

fn list_xattr_impl(p: &Path, follow: bool) -> io::Result<Vec<String>> {
    let c = cpath(p);
    let call = |buf: *mut libc::c_char, len: usize| -> io::Result<usize> {
        // SAFETY: valid pointers; `buf` has `len` bytes.
        cvt_size(unsafe {
            if follow {
                libc::listxattr(c.as_ptr(), buf, len)
            } else {
                libc::llistxattr(c.as_ptr(), buf, len)
            }
        })
    };
    loop {
        let size = call(std::ptr::null_mut(), 0)?;
        if size == 0 {
            return Ok(Vec::new());
        }
        let mut buf = vec![0u8; size];
        match call(buf.as_mut_ptr().cast(), buf.len()) {
            Ok(n) => {
                buf.truncate(n);
                let mut names: Vec<String> = buf
                    .split(|b| *b == 0)
                    .filter(|s| !s.is_empty())
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect();
                names.sort();
                return Ok(names);
            }
            Err(e) if e.raw_os_error() == Some(libc::ERANGE) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Sorted xattr names (all namespaces).
pub fn list_xattr(p: &Path) -> io::Result<Vec<String>> {
    list_xattr_impl(p, true)
}

pub fn llist_xattr(p: &Path) -> io::Result<Vec<String>> {
    list_xattr_impl(p, false)
}

/// Sorted `user.*` xattr names.
pub fn user_xattrs(p: &Path) -> Vec<String> {
    list_xattr(p)
        .unwrap_or_else(|e| panic!("listxattr {}: {e}", p.display()))
        .into_iter()
        .filter(|n| n.starts_with("user."))
        .collect()
}

pub fn remove_xattr(p: &Path, name: &str) -> io::Result<()> {
    let c = cpath(p);
    let n = CString::new(name).expect("xattr name");
    // SAFETY: valid C strings.
    cvt(unsafe { libc::removexattr(c.as_ptr(), n.as_ptr()) }).map(drop)
}
