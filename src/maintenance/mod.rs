//! Maintenance of an account's store and keys, run beside or instead of a mount: garbage
//! collection ([`gc`]), the full check ([`fsck`]) and the key rotations a command owes
//! ([`rotation`]: the record of them, and running them through the daemon or here). A
//! library module, like restic's prune in its repository package: the CLI only draws the
//! progress these report through callbacks and prints their typed reports and errors.

pub mod fsck;
pub mod gc;
mod gc_views;
pub mod rotation;
pub mod web_releases;

pub use crate::account::{open_for_inspection, open_for_inspection_in};

/// The volume's test categories, under the name this module's tests use.
#[cfg(test)]
pub(crate) use crate::volume::testing;
