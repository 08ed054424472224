//! `cirrus escrow ...` and `cirrus recovery-contact ...`: the recovery methods that live
//! partly on the key service, and recovering with them on a new device.

use super::{CliResult, PasscodeArgs, passcode, unlock};
use crate::account::methods::parse_contact_code;
use crate::home::Home;
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum EscrowCmd {
    /// Escrow the account key under this device's passcode with the key service. The
    /// service releases it only after a correct passcode proof and destroys it after 10
    /// wrong tries. Without a hardware security module the service's operator could still
    /// guess passcodes offline: use a long passcode if you turn this on.
    On {
        #[command(flatten)]
        pass: PasscodeArgs,
    },
    /// Remove the escrow from the key service and the account.
    Off {
        #[command(flatten)]
        pass: PasscodeArgs,
    },
}

#[derive(Subcommand)]
#[command(disable_help_subcommand = true)]
pub enum ContactCmd {
    /// Add a recovery contact (up to 5): prints a code for the contact to keep with
    /// `cirrus recovery-contact accept`. The key service keeps the other half; neither
    /// half alone opens anything.
    Add {
        name: String,
        #[command(flatten)]
        pass: PasscodeArgs,
    },
    /// Remove a recovery contact.
    Remove {
        name: String,
        #[command(flatten)]
        pass: PasscodeArgs,
    },
    /// List this account's recovery methods.
    List {
        #[command(flatten)]
        pass: PasscodeArgs,
    },
    /// On the CONTACT's device: keep the code someone gave you (sealed on this device).
    Accept {
        /// Whose code it is (their account name), to find it again.
        #[arg(long = "for")]
        account: String,
        /// File holding the code (CRC1-...).
        #[arg(long)]
        code_file: PathBuf,
        #[command(flatten)]
        pass: PasscodeArgs,
    },
    /// On the CONTACT's device: print the code that, with their account password, lets
    /// ACCOUNT's owner recover on a new device.
    Help {
        account: String,
        #[command(flatten)]
        pass: PasscodeArgs,
    },
}

pub fn escrow(home: Home, cmd: EscrowCmd) -> CliResult {
    match cmd {
        EscrowCmd::On { pass } => {
            let mut acct = unlock(home, &pass)?;
            let passcode = passcode::read(&pass, false)?;
            acct.escrow_on(&passcode).map_err(|e| {
                super::failed_with_hint(
                    "escrow on",
                    &e,
                    "an account on a key service, with --password-file",
                )
            })?;
            println!(
                "Passcode escrow is on. The key service releases the escrow only after a correct \
                 passcode and destroys it after 10 wrong ones.\nNote: without a hardware security \
                 module, whoever runs the key service could try passcodes offline at Argon2id \
                 speed; a long passcode is what protects you."
            );
            Ok(0)
        }
        EscrowCmd::Off { pass } => {
            let mut acct = unlock(home, &pass)?;
            let had = acct.escrow_off().map_err(|e| format!("escrow off: {e}"))?;
            println!(
                "{}",
                if had {
                    "Passcode escrow is off."
                } else {
                    "There was no escrow."
                }
            );
            Ok(0)
        }
    }
}

pub fn contact(home: Home, cmd: ContactCmd) -> CliResult {
    match cmd {
        ContactCmd::Add { name, pass } => {
            let mut acct = unlock(home, &pass)?;
            let code = acct
                .add_contact(&name)
                .map_err(|e| format!("recovery-contact add: {e} (pass --password-file?)"))?;
            println!("Give this code to {name} (for example in person); they keep it with");
            println!("`cirrus recovery-contact accept --for ACCOUNT --code-file FILE`:\n");
            println!("    {}\n", code.as_str());
            Ok(0)
        }
        ContactCmd::Remove { name, pass } => {
            let mut acct = unlock(home, &pass)?;
            let had = acct
                .remove_contact(&name)
                .map_err(|e| format!("recovery-contact remove: {e}"))?;
            if !had {
                return Err(format!("no recovery contact named {name:?}"));
            }
            println!("Removed recovery contact {name}.");
            Ok(0)
        }
        ContactCmd::List { pass } => {
            let acct = unlock(home, &pass)?;
            let methods = &acct.manifest().recovery;
            if methods.is_empty() {
                println!("No recovery methods.");
            }
            for r in methods {
                // Only a contact's label (its name) says more than its kind.
                match r.kind {
                    crate::format::manifest::RecoveryKind::RecoveryKey => println!("recovery key"),
                    crate::format::manifest::RecoveryKind::Contact => {
                        println!("recovery contact  {}", r.label)
                    }
                    crate::format::manifest::RecoveryKind::Escrow => println!("passcode escrow"),
                }
            }
            Ok(0)
        }
        ContactCmd::Accept {
            account,
            code_file,
            pass,
        } => {
            let text = std::fs::read_to_string(&code_file)
                .map_err(|e| format!("cannot read {}: {e}", code_file.display()))?;
            let half = parse_contact_code(&text).ok_or("that is not a recovery contact code")?;
            let acct = unlock(home, &pass)?;
            acct.keep_contact_half(&account, &half)
                .map_err(|e| e.to_string())?;
            println!("Kept the recovery code for {account}, sealed on this device.");
            Ok(0)
        }
        ContactCmd::Help { account, pass } => {
            let acct = unlock(home, &pass)?;
            let code = acct
                .contact_half_for(&account)
                .map_err(|e| format!("recovery-contact help: {e}"))?;
            println!("Recovery code for {account} (give it only to them):\n");
            println!("    {}", code.as_str());
            Ok(0)
        }
    }
}
