//! `cirrus fsck`: authenticate every head, leaf and chunk; report damage with exit code 1.

use super::{PasscodeArgs, unlock};
use crate::cache::ChunkCache;
use crate::format::names;
use crate::home::Home;
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::HashSet;
use std::io::IsTerminal;
use std::sync::Arc;

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
    let cache = Arc::new(ChunkCache::new(1 << 20));
    let mut problems: Vec<String> = Vec::new();
    let mut referenced: HashSet<[u8; 32]> = HashSet::new();
    let (mut files, mut chunks) = (0u64, 0u64);
    for (entry, setup) in acct.category_setups() {
        let setup = match setup {
            Ok(s) => s,
            Err(e) => {
                problems.push(format!("{}: key cannot be unlocked: {e}", entry.name));
                continue;
            }
        };
        let c = super::open_for_inspection(&acct, setup, &cache);
        let pb = bar(c.chunk_count(), "chunks");
        pb.set_message(entry.name.clone());
        let rep = c.verify(&|n| pb.inc(n));
        pb.finish_and_clear();
        files += rep.inodes;
        chunks += rep.chunks;
        referenced.extend(rep.packs.iter().copied());
        for p in rep.problems {
            problems.push(format!("{}: {p}", entry.name));
        }
    }
    let mut unreferenced = 0;
    match acct.store.list("packs/") {
        Ok(list) => {
            let pb = bar(list.len() as u64, "packs");
            for name in list {
                pb.inc(1);
                let Some(id) = names::parse_pack(&name) else {
                    problems.push(format!("unexpected object {name} in packs/"));
                    continue;
                };
                if !referenced.contains(&id) {
                    unreferenced += 1;
                }
                // Every pack, referenced or not: its name is the hash of its content.
                match acct.store.get(&name) {
                    Ok(bytes) => {
                        if crate::crypto::hash(&bytes) != id {
                            problems.push(format!(
                                "pack {name}: content does not match its name (corrupted or replaced)"
                            ));
                        } else if let Err(e) = crate::format::pack::check_header(&bytes) {
                            problems.push(format!("pack {name}: {e}"));
                        }
                    }
                    Err(e) => problems.push(format!("pack {name}: {e}")),
                }
            }
            pb.finish_and_clear();
        }
        Err(e) => problems.push(format!("cannot list the store: {e}")),
    }
    println!("checked {files} inodes and {chunks} chunks");
    if unreferenced > 0 {
        println!(
            "{unreferenced} packs are not referenced by any head (garbage from deleted or rewritten data, or an interrupted write; harmless, reclaimed by a future garbage collector)"
        );
    }
    if problems.is_empty() {
        println!("no damage found");
        Ok(0)
    } else {
        println!("{} problems found:", problems.len());
        for p in &problems {
            println!("  {p}");
        }
        Ok(1)
    }
}
