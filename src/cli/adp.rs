//! `cirrus adp on|off`: Advanced Data Protection. On: Backup, Drive, Notes, Photos,
//! Reminders, Bookmarks, Shortcuts, Voice Memos and Passes move to end-to-end encryption
//! with new keys (re-encrypted online if mounted); the key service keeps no key that
//! opens them. Off: their keys are handed back to the key service.

use super::{PasscodeArgs, daemon, rotate, unlock};
use crate::format::table::Class;
use crate::home::Home;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum AdpCmd {
    /// Turn Advanced Data Protection on. Needs a recovery key (or recovery contact), since
    /// nobody else can recover these categories afterwards. Works while mounted; run it
    /// again to resume after an interruption.
    On {
        #[command(flatten)]
        pass: PasscodeArgs,
        /// File bytes re-encrypted between two commits (each commit makes progress durable).
        #[arg(long, default_value = "64M", value_parser = super::mount::parse_size, hide = true)]
        batch: u64,
    },
    /// Turn it off: the key service holds these categories' keys again (the data recovery
    /// service can restore them, unless a recovery key turned it off).
    Off {
        #[command(flatten)]
        pass: PasscodeArgs,
    },
    /// Show whether Advanced Data Protection is on and each affected category's class.
    Status {
        #[command(flatten)]
        pass: PasscodeArgs,
    },
}

pub fn run(home: Home, cmd: AdpCmd) -> super::CliResult {
    match cmd {
        AdpCmd::On { pass, batch } => {
            let lock = daemon::lock_home(&home).ok();
            let mut acct = unlock(Home::new(home.root.clone()), &pass)?;
            let targets = acct.begin_adp().map_err(|e| format!("adp on: {e}"))?;
            println!(
                "Advanced Data Protection is on. Moving {} categories to end-to-end \
                 encryption under new keys...",
                targets.len()
            );
            let jobs: Vec<rotate::Job> = targets
                .into_iter()
                .map(|category| rotate::Job {
                    category,
                    class: Some(Class::E2e),
                })
                .collect();
            let lines = rotate::rotate_many(&home, &pass, &jobs, batch, lock.map(|l| (acct, l)))?;
            for l in lines {
                println!("{l}");
            }
            println!("Done: the key service holds no key to these categories any more.");
            Ok(0)
        }
        AdpCmd::Off { pass } => {
            let mut acct = unlock(home, &pass)?;
            let moved = acct.adp_off().map_err(|e| format!("adp off: {e}"))?;
            println!(
                "Advanced Data Protection is off. The key service holds the keys of: {}",
                if moved.is_empty() {
                    "(none)".to_string()
                } else {
                    moved.join(", ")
                }
            );
            Ok(0)
        }
        AdpCmd::Status { pass } => {
            let acct = unlock(home, &pass)?;
            println!(
                "Advanced Data Protection: {}",
                if acct.adp_on() { "on" } else { "off" }
            );
            for e in acct.table().active() {
                if crate::account::adp::ADP_CATEGORIES.contains(&e.name.as_str()) {
                    println!("  {:<14} {}", e.name, e.class.name());
                }
            }
            Ok(0)
        }
    }
}

#[derive(Subcommand)]
pub enum BackupCmd {
    /// Turn Backup on: with Backup under standard protection, the Messages key is also
    /// kept under the Backup key, so the data recovery service can restore Messages.
    On {
        #[command(flatten)]
        pass: PasscodeArgs,
    },
    /// Turn Backup off: the copy of the Messages key is deleted and Messages gets a new
    /// key (re-encrypted, online if mounted) that the key service never sees.
    Off {
        #[command(flatten)]
        pass: PasscodeArgs,
    },
}

pub fn backup(home: Home, cmd: BackupCmd) -> super::CliResult {
    match cmd {
        BackupCmd::On { pass } => {
            let mut acct = unlock(home, &pass)?;
            acct.enable_backup()
                .map_err(|e| format!("backup on: {e}"))?;
            println!(
                "Backup is on. The Messages key is kept under the Backup key{}.",
                if acct.adp_on() {
                    " (end-to-end, as Backup is under Advanced Data Protection)"
                } else {
                    ", so the data recovery service can restore Messages"
                }
            );
            Ok(0)
        }
        BackupCmd::Off { pass } => {
            let lock = daemon::lock_home(&home).ok();
            let mut acct = unlock(Home::new(home.root.clone()), &pass)?;
            acct.disable_backup()
                .map_err(|e| format!("backup off: {e}"))?;
            let jobs = [rotate::Job {
                category: crate::account::backup::MESSAGES.to_string(),
                class: None,
            }];
            let lines = rotate::rotate_many(
                &home,
                &pass,
                &jobs,
                crate::account::DEFAULT_BATCH,
                lock.map(|l| (acct, l)),
            )?;
            for l in lines {
                println!("{l}");
            }
            println!("Backup is off; Messages has a new key that the key service never saw.");
            Ok(0)
        }
    }
}
