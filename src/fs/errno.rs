//! The one place where errors of the layers below become errno values for the kernel.

use crate::volume::VolError;
use fuser::Errno;
use log::{error, warn};

pub fn errno(e: &VolError, op: &str) -> Errno {
    match e {
        VolError::NotFound => Errno::ENOENT,
        VolError::Exists => Errno::EEXIST,
        VolError::NotDir => Errno::ENOTDIR,
        VolError::IsDir => Errno::EISDIR,
        VolError::NotEmpty => Errno::ENOTEMPTY,
        VolError::Invalid(_) => Errno::EINVAL,
        VolError::NameTooLong => Errno::ENAMETOOLONG,
        VolError::NotPermitted(_) => Errno::EPERM,
        VolError::NoAttr => Errno::NO_XATTR,
        VolError::AttrTooBig => Errno::E2BIG,
        VolError::Unsupported(_) => Errno::EOPNOTSUPP,
        VolError::TooBig => Errno::EFBIG,
        VolError::TooManyLinks => Errno::EMLINK,
        VolError::NoSpace(_) => {
            warn!("{op}: {e}");
            Errno::ENOSPC
        }
        VolError::Integrity { .. } | VolError::Unavailable { .. } | VolError::Store(_) => {
            error!("{op}: {e}; returning EIO");
            Errno::EIO
        }
    }
}
