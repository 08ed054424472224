//! `cirrus fsck`: authenticate every head, leaf and chunk (`maintenance::fsck`); draw its
//! progress, print the damage, exit with code 1 when there is any.

use super::{PasscodeArgs, unlock};
use crate::home::Home;
use crate::maintenance::fsck::{self, FsckStep};
use indicatif::{ProgressBar, ProgressStyle};
use std::cell::RefCell;
use std::io::IsTerminal;

/// A progress bar on a terminal, nothing otherwise (scripts, logs) nor when there is
/// nothing to count (a bar of 0 / 0 would show full from the start).
fn bar(total: u64, unit: &str) -> ProgressBar {
    let pb = if std::io::stderr().is_terminal() && total > 0 {
        ProgressBar::new(total)
    } else {
        ProgressBar::hidden()
    };
    let template = format!("{{msg:>22}} [{{bar:30}}] {{pos}}/{{len}} {unit} {{eta}}");
    pb.set_style(
        ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb
}

pub fn run(home: Home, pass: &PasscodeArgs) -> super::CliResult {
    let acct = unlock(home, pass)?;
    let pb = RefCell::new(ProgressBar::hidden());
    let rep = fsck::check_account(&acct, &|step| match step {
        FsckStep::Category { name, chunks } => {
            let b = bar(chunks, "chunks");
            b.set_message(name.to_string());
            *pb.borrow_mut() = b;
        }
        FsckStep::Packs { total } => *pb.borrow_mut() = bar(total, "packs"),
        FsckStep::Chunks(n) => pb.borrow().inc(n),
        FsckStep::Pack => pb.borrow().inc(1),
        FsckStep::CategoryDone | FsckStep::PacksDone => pb.borrow().finish_and_clear(),
    });
    println!("checked {} inodes and {} chunks", rep.inodes, rep.chunks);
    if rep.unreferenced > 0 {
        println!(
            "{} packs are not referenced by any head (garbage from deleted or rewritten data, or an interrupted write; harmless, reclaimed by a future garbage collector)",
            rep.unreferenced
        );
    }
    if rep.web_pending > 0 {
        println!(
            "{} changes made on the web wait for a device to take them in (a mounted drive does at its next sync)",
            rep.web_pending
        );
    }
    if rep.problems.is_empty() {
        println!("no damage found");
        Ok(0)
    } else {
        println!("{} problems found:", rep.problems.len());
        for p in &rep.problems {
            println!("  {p}");
        }
        Ok(1)
    }
}
