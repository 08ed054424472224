//! `cirrus adp on|off`: Advanced Data Protection. On: Backup, Drive, Notes, Photos,
//! Reminders, Bookmarks, Shortcuts, Voice Memos and Passes move to end-to-end encryption
//! with new keys (re-encrypted online if mounted); the key service keeps no key that
//! opens them. Off: their keys are handed back to the key service.

use super::{PasscodeArgs, rotate, unlock};
use crate::daemon;
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
            // Before any category turns end-to-end: its inbox is never read after.
            super::web::take_web_changes_first(&home, "adp on")?;
            let lock = daemon::lock_home(&home).ok();
            let mut acct = unlock(Home::new(home.root.clone()), &pass)?;
            if lock.is_some() {
                // Not mounted: this command takes in what the web changed, itself.
                let n = crate::maintenance::rotation::take_in_web_changes_here(&acct)
                    .map_err(|e| format!("adp on: {e}"))?;
                if n > 0 {
                    println!("Took in {n} changes made on the web first.");
                }
            }
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
    /// key (re-encrypted, online if mounted) that the key service never sees. Does
    /// nothing when Backup is off already.
    Off {
        #[command(flatten)]
        pass: PasscodeArgs,
    },
    /// Show whether Backup is on, and the Messages key version it covers.
    Status {
        #[command(flatten)]
        pass: PasscodeArgs,
    },
}

pub fn backup(home: Home, cmd: BackupCmd) -> super::CliResult {
    match cmd {
        BackupCmd::On { pass } => {
            let mut acct = unlock(home, &pass)?;
            let changed = acct
                .enable_backup()
                .map_err(|e| format!("backup on: {e}"))?;
            if !changed {
                println!("Backup is already on; nothing changed.");
                return Ok(0);
            }
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
            let messages = crate::account::backup::MESSAGES;
            // An earlier `backup off` that stopped before Messages had its new key left it
            // owed: finish that rather than say there is nothing to do.
            let owed = crate::maintenance::rotation::is_pending(&home, messages)
                .map_err(|e| format!("backup off: {e}"))?;
            if !owed
                && !acct
                    .backup_to_turn_off()
                    .map_err(|e| format!("backup off: {e}"))?
            {
                println!(
                    "Backup is already off; nothing changed (Messages keeps key version {}).",
                    acct.backup_state()
                        .map_err(|e| format!("backup off: {e}"))?
                        .messages_key_version
                );
                return Ok(0);
            }
            // Owed before the copy goes: a crash in between must not leave Messages under
            // a key the key service could have opened, with Backup showing off.
            crate::maintenance::rotation::add_pending(&home, messages)
                .map_err(|e| e.to_string())?;
            acct.disable_backup()
                .map_err(|e| format!("backup off: {e}"))?;
            let jobs = [rotate::Job {
                category: messages.to_string(),
                class: None,
            }];
            let lines = rotate::rotate_many(
                &home,
                &pass,
                &jobs,
                crate::account::DEFAULT_BATCH,
                lock.map(|l| (acct, l)),
            )?;
            crate::maintenance::rotation::remove_pending(&home, messages)
                .map_err(|e| e.to_string())?;
            for l in lines {
                println!("{l}");
            }
            println!("Backup is off; Messages has a new key that the key service never saw.");
            Ok(0)
        }
        BackupCmd::Status { pass } => {
            let acct = unlock(home, &pass)?;
            let s = acct
                .backup_state()
                .map_err(|e| format!("backup status: {e}"))?;
            let v = s.messages_key_version;
            if !s.on {
                println!("Backup: off");
                println!(
                    "Messages (key version {v}) has no copy under Backup: the data recovery \
                     service cannot restore it."
                );
                return Ok(0);
            }
            println!("Backup: on");
            if !s.copy_current {
                println!(
                    "Messages (key version {v}) has no current copy under Backup: run `{}` to \
                     make one.",
                    crate::hint::cmd_hint("backup on")
                );
            } else if s.backup_class == Class::E2e {
                println!(
                    "Messages (key version {v}) is kept under the Backup key, which is \
                     end-to-end (Advanced Data Protection): only your devices and recovery \
                     methods can restore it."
                );
            } else {
                println!(
                    "Messages (key version {v}) is kept under the Backup key ({}): the data \
                     recovery service can restore it.",
                    s.backup_class.name()
                );
            }
            Ok(0)
        }
    }
}
