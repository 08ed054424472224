//! Harness for the POSIX integration suite (`tests/posix_*.rs`).
//!
//! Target selection (environment):
//! - `CIRRUS_TEST_TARGET=plain`: every test runs in a fresh plain directory (a stand-in for
//!   a category folder). This validates the tests themselves: they must all pass there.
//!   The directory is created under `CIRRUS_TEST_PLAIN_DIR`, else `/dev/shm` (tmpfs: it
//!   takes 64 KiB xattr values, which ext4 without `ea_inode` does not), else `$TMPDIR`.
//! - unset (or `cirrus`): every test gets its own real Cirrus drive: a fresh home, `cirrus
//!   init` with a cheap KDF, `cirrus mount`, and `cirrus umount` when the [`Drive`] drops.
//!
//! Other knobs: `CIRRUS_BIN` (binary to test; default: the one cargo built),
//! `CIRRUS_TEST_TIMEOUT` (seconds a mount may live before the watchdog aborts the FUSE
//! connection so a hung test fails instead of hanging CI; default 300), `CIRRUS_FSX`
//! (path of the `fsx` binary; default `<target>/test-tools/bin/fsx`, where
//! `scripts/setup-test-deps` installs it).
//!
//! The helpers are split by concern (each file says why it exists); every item is
//! re-exported here, so tests name them `common::foo` (or `use common::*`) wherever they
//! live.
#![allow(dead_code)]

pub mod accounts;
pub mod data;
pub mod devices;
pub mod drive;
pub mod keyserver;
pub mod mounts;
pub mod postgres;
pub mod process;
pub mod rss;
pub mod seaweed;
pub mod sources;
pub mod status;
pub mod store_view;
pub mod syscalls;
pub mod tree;
pub mod user;
pub mod wait;
pub mod web;
pub mod xattr;

// Every helper by its plain name; each test binary uses only some of them.
#[allow(unused_imports)]
pub use self::{
    data::*, devices::*, drive::*, mounts::*, process::*, rss::*, sources::*, store_view::*,
    syscalls::*, tree::*, user::*, wait::*, xattr::*,
};
