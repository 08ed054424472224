//! Real programs on the file system: cp, tar, diff, git, sqlite3, editor-style saves, fsx.
// A panic is how a test fails: unwrap and expect are its assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// A scratch directory outside the drive (same machine, ordinary file system).
fn outside() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("cirrus-outside-")
        .tempdir()
        .expect("tempdir")
}

fn diff_r(a: &Path, b: &Path) {
    // FIFOs and devices are compared through the manifest (diff would try to read them).
    run_ok(
        Command::new(require_tool("diff"))
            .args(["-r", "--no-dereference", "-x", "fifo", "-x", "chardev"])
            .arg(a)
            .arg(b),
    );
}

#[test]
fn cp_a_tree_round_trip() {
    let d = Drive::mount();
    let out = outside();
    let src = out.path().join("src");
    fs::create_dir(&src).expect("mkdir");
    build_sample_tree(
        &src,
        SampleTree {
            specials: true,
            sparse: true,
        },
    );
    let want = manifest(&src);
    let copy = d.notes().join("copy");
    run_ok(
        Command::new(require_tool("cp"))
            .arg("-a")
            .arg(&src)
            .arg(&copy),
    );
    diff_r(&src, &copy);
    assert_manifest_eq(&manifest(&copy), &want, "cp -a into the drive");
    let back = out.path().join("back");
    run_ok(
        Command::new(require_tool("cp"))
            .arg("-a")
            .arg(&copy)
            .arg(&back),
    );
    diff_r(&src, &back);
    assert_manifest_eq(&manifest(&back), &want, "cp -a back out of the drive");
}

fn tar_cmd() -> Command {
    let mut c = Command::new(require_tool("tar"));
    c.args(["--xattrs", "--xattrs-include=user.*", "--numeric-owner"]);
    c
}

#[test]
fn tar_round_trip_preserves_metadata() {
    let d = Drive::mount();
    let out = outside();
    let src = d.notes().join("src");
    fs::create_dir(&src).expect("mkdir");
    build_sample_tree(
        &src,
        SampleTree {
            specials: true,
            sparse: true,
        },
    );
    let want = manifest(&src);
    let a = out.path().join("a.tar");
    let b = out.path().join("b.tar");
    run_ok(
        tar_cmd()
            .args(["--format=posix", "--sort=name", "-C"])
            .arg(&src)
            .arg("-cf")
            .arg(&a)
            .arg("."),
    );
    let dst = d.notes().join("dst");
    fs::create_dir(&dst).expect("mkdir");
    run_ok(
        tar_cmd()
            .args(["--same-owner", "-p", "-C"])
            .arg(&dst)
            .arg("-xf")
            .arg(&a),
    );
    run_ok(
        tar_cmd()
            .args(["--format=posix", "--sort=name", "-C"])
            .arg(&dst)
            .arg("-cf")
            .arg(&b)
            .arg("."),
    );
    let list = |t: &Path| run_ok(tar_cmd().args(["--full-time", "-tvf"]).arg(t));
    let (la, lb) = (list(&a), list(&b));
    assert!(la.lines().count() > 30, "archive listing too short:\n{la}");
    assert_eq!(
        lb, la,
        "tar listing of the extracted tree differs from the original"
    );
    diff_r(&src, &dst);
    assert_manifest_eq(&manifest(&dst), &want, "tar x into the drive");
}

fn git(repo: &Path, home: &Path, args: &[&str]) -> String {
    let mut c = Command::new(require_tool("git"));
    c.args(args)
        .current_dir(repo)
        .env("HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Cirrus Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.invalid")
        .env("GIT_COMMITTER_NAME", "Cirrus Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.invalid");
    run_ok(&mut c)
}

#[test]
fn git_init_commit_log_gc_fsck_clone() {
    let mut d = Drive::mount();
    let home = outside();
    let h = home.path();
    let repo = d.notes().join("repo");
    fs::create_dir(&repo).expect("mkdir");
    git(&repo, h, &["-c", "init.defaultBranch=main", "init", "-q"]);
    fs::write(repo.join("README"), b"hello git\n").expect("write");
    fs::create_dir(repo.join("src")).expect("mkdir");
    fs::write(repo.join("src/data.bin"), pseudo_random(CHUNK + 99, 1)).expect("write");
    git(&repo, h, &["add", "-A"]);
    git(&repo, h, &["commit", "-q", "-m", "first"]);
    fs::write(repo.join("README"), b"hello git, again\n").expect("write");
    git(&repo, h, &["commit", "-q", "-a", "-m", "second"]);
    git(&repo, h, &["mv", "src/data.bin", "src/renamed.bin"]);
    git(&repo, h, &["commit", "-q", "-m", "third"]);
    let log = git(&repo, h, &["log", "--format=%s"]);
    assert_eq!(log, "third\nsecond\nfirst\n");
    assert_eq!(
        git(&repo, h, &["status", "--porcelain"]),
        "",
        "work tree must be clean"
    );
    git(&repo, h, &["gc", "-q", "--aggressive", "--prune=now"]);
    git(&repo, h, &["fsck", "--full", "--strict", "--no-progress"]);
    // A local clone hard-links objects.
    git(&d.notes(), h, &["clone", "-q", "repo", "clone"]);
    let clone = d.notes().join("clone");
    assert_eq!(
        git(&clone, h, &["log", "--format=%s"]),
        "third\nsecond\nfirst\n"
    );
    assert_bytes_eq(
        &read_all(&clone.join("src/renamed.bin")),
        &pseudo_random(CHUNK + 99, 1),
        "cloned file",
    );
    d.remount();
    let repo = d.notes().join("repo");
    git(&repo, h, &["fsck", "--full", "--strict", "--no-progress"]);
    assert_eq!(
        git(&repo, h, &["status", "--porcelain"]),
        "",
        "clean after remount"
    );
    assert_eq!(
        git(&repo, h, &["show", "HEAD:README"]),
        "hello git, again\n"
    );
}

fn sqlite(db: &Path, sql: &str) -> String {
    run_ok(
        Command::new(require_tool("sqlite3"))
            .args(["-batch", "-bail"])
            .arg(db)
            .arg(sql),
    )
}

fn sqlite_workload(d: &mut Drive, journal_mode: &str) {
    let db = d.notes().join("test.db");
    let mode = sqlite(&db, &format!("PRAGMA journal_mode={journal_mode};"));
    assert_eq!(mode.trim(), journal_mode.to_lowercase(), "journal mode");
    let mut sql =
        String::from("CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT NOT NULL, payload BLOB);\n");
    for tx in 0..10 {
        sql.push_str("BEGIN;\n");
        for i in 0..100 {
            let id = tx * 100 + i + 1;
            sql.push_str(&format!(
                "INSERT INTO t VALUES({id}, 'row {id}', randomblob(3000));\n"
            ));
        }
        sql.push_str("COMMIT;\n");
    }
    sql.push_str("SELECT count(*), sum(id) FROM t;\n");
    assert_eq!(sqlite(&db, &sql).trim(), "1000|500500");
    assert_eq!(sqlite(&db, "PRAGMA integrity_check;").trim(), "ok");
    // Updates, deletes and a VACUUM (rewrites and shrinks the file).
    let out = sqlite(
        &db,
        "UPDATE t SET name = name || ' updated' WHERE id % 2 = 0;\n\
         DELETE FROM t WHERE id > 900;\n\
         VACUUM;\n\
         SELECT count(*), count(CASE WHEN name LIKE '%updated' THEN 1 END) FROM t;",
    );
    assert_eq!(out.trim(), "900|450");
    d.remount();
    let db = d.notes().join("test.db");
    assert_eq!(
        sqlite(&db, "PRAGMA integrity_check;").trim(),
        "ok",
        "after remount"
    );
    assert_eq!(
        sqlite(&db, "SELECT count(*), sum(length(payload)) FROM t;").trim(),
        "900|2700000"
    );
}

#[test]
fn sqlite_rollback_journal() {
    let mut d = Drive::mount();
    sqlite_workload(&mut d, "DELETE");
}

#[test]
fn sqlite_wal_mode() {
    let mut d = Drive::mount();
    sqlite_workload(&mut d, "WAL");
}

#[test]
fn editor_style_save_via_rename() {
    let d = Drive::mount();
    let dir = d.notes();
    let doc = dir.join("doc.txt");
    fs::write(&doc, b"version one\n").expect("write");
    chmod(&doc, 0o640);
    let old_ino = lstat(&doc).ino();
    let mut held = File::open(&doc).expect("open old version");
    // vim/gedit style: write a temp file, sync it, rename it over the original.
    sh_ok(
        &dir,
        "set -e\n\
         printf 'version two\\n' > .doc.txt.swp\n\
         chmod 640 .doc.txt.swp\n\
         sync .doc.txt.swp\n\
         mv -f .doc.txt.swp doc.txt\n",
    );
    assert_eq!(read_all(&doc), b"version two\n");
    assert_ne!(lstat(&doc).ino(), old_ino);
    assert_eq!(perm_bits(&lstat(&doc)), 0o640);
    assert_eq!(
        list_names(&dir),
        vec!["doc.txt".to_string()],
        "no temp file left behind"
    );
    let mut old = String::new();
    held.read_to_string(&mut old).expect("read held fd");
    assert_eq!(
        old, "version one\n",
        "an fd opened before the save still sees the old file"
    );
    // emacs style: keep a backup by renaming, then write a new file.
    sh_ok(
        &dir,
        "set -e\n\
         mv doc.txt doc.txt~\n\
         printf 'version three\\n' > doc.txt\n\
         cmp -s doc.txt~ doc.txt && exit 1\n\
         rm doc.txt~\n",
    );
    assert_eq!(read_all(&doc), b"version three\n");
    assert_eq!(list_names(&dir), vec!["doc.txt".to_string()]);
    // Append with >> and rewrite in place with a shell redirection.
    sh_ok(&dir, "set -e\nprintf 'more\\n' >> doc.txt\n");
    assert_eq!(read_all(&doc), b"version three\nmore\n");
}

fn run_fsx(d: &Drive, config: Option<&str>, numops: u64, seed: u64) {
    let fsx = fsx_bin();
    let artifacts = outside();
    let target = d.notes().join("fsx.dat");
    let mut cmd = Command::new(&fsx);
    if let Some(conf) = config {
        let path = artifacts.path().join("fsx.toml");
        fs::write(&path, conf).expect("write fsx config");
        cmd.arg("-f").arg(path);
    }
    cmd.arg("-N")
        .arg(numops.to_string())
        .arg("-S")
        .arg(seed.to_string())
        .arg("-P")
        .arg(artifacts.path())
        .arg(&target)
        .current_dir(artifacts.path());
    let log = artifacts.path().join("fsx.out");
    let (status, out) = run_logged(&mut cmd, Duration::from_secs(600), &log);
    if !status.success() {
        let tail: Vec<&str> = out.lines().rev().take(80).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        // Keep the artifacts (fsx.dat.fsxgood / .fsxlog) for inspection.
        let kept = artifacts.keep();
        panic!(
            "fsx {cmd:?} failed ({status}); artifacts in {}:\n{}",
            kept.display(),
            tail.join("\n")
        );
    }
}

#[test]
fn fsx_default_operations() {
    // pread/pwrite/mmap read/mmap write/truncate on a file of up to 256 KiB.
    let d = Drive::mount();
    run_fsx(&d, None, 20_000, 42);
}

#[test]
fn fsx_multi_chunk_file_with_reopen_and_sync() {
    // A 1 MiB file (4 chunks), operations up to 300 KB that straddle chunk boundaries,
    // plus close/reopen, fsync/fdatasync, msync(MS_INVALIDATE), copy_file_range, sendfile.
    let d = Drive::mount();
    let conf = "flen = 1048576\n\
                [opsize]\n\
                max = 300000\n\
                min = 1\n\
                [weights]\n\
                close_open = 2\n\
                read = 10\n\
                write = 10\n\
                mapread = 5\n\
                mapwrite = 5\n\
                truncate = 4\n\
                invalidate = 1\n\
                fsync = 1\n\
                fdatasync = 1\n\
                copy_file_range = 2\n\
                sendfile = 2\n";
    run_fsx(&d, Some(conf), 10_000, 7);
}
