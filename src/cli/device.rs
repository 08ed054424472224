//! `cirrus device ...`, `cirrus recovery-key ...` and `cirrus recover`: joining, approving,
//! listing devices, and getting back into the account with the recovery key.

use super::{CliResult, PasscodeArgs, passcode};
use crate::account::devices::{NewDevice, NewDeviceOptions};
use crate::home::Home;
use crate::keys::KdfParams;
use crate::keys::recovery::RecoveryKey;
use clap::Subcommand;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(clap::Args, Clone)]
pub struct NewDeviceArgs {
    /// URL of the account's store (for example file:///srv/cirrus/store, or
    /// s3://BUCKET/PREFIX?endpoint=URL&path_style=1 with AWS_* credentials in the environment).
    #[arg(long)]
    store: String,
    /// Name of this device, as shown by `cirrus device list`.
    #[arg(long)]
    device_name: Option<String>,
    /// Argon2id memory cost in KiB for this device's passcode.
    #[arg(long, default_value_t = KdfParams::default().memory_kib)]
    kdf_memory: u32,
    /// Argon2id time cost for this device's passcode.
    #[arg(long, default_value_t = KdfParams::default().time)]
    kdf_time: u32,
    /// URL of the account's key service (`cirrus serve`), if it has one.
    #[arg(long)]
    server: Option<String>,
    /// The key service's certificate fingerprint (SHA256:...).
    #[arg(long, requires = "server")]
    fingerprint: Option<String>,
    /// The account's name on the key service.
    #[arg(long, requires = "server")]
    account: Option<String>,
    // Holds --totp too: a new device must prove the second factor to log in.
    #[command(flatten)]
    pass: PasscodeArgs,
}

impl NewDeviceArgs {
    fn server_config(&self) -> Result<Option<crate::home::ServerConfig>, String> {
        let Some(url) = &self.server else {
            return Ok(None);
        };
        let (Some(fp), Some(account)) = (&self.fingerprint, &self.account) else {
            return Err("--server needs --fingerprint and --account".into());
        };
        let fingerprint: crate::keyservice::Fingerprint = fp
            .parse()
            .map_err(|_| format!("--fingerprint {fp:?} is not SHA256:<64 hex digits>"))?;
        Ok(Some(crate::home::ServerConfig {
            url: url.clone(),
            fingerprint: fingerprint.to_string(),
            account: account.clone(),
        }))
    }
}

#[derive(Subcommand)]
pub enum DeviceCmd {
    /// On a NEW device: ask to join the account. With a key service (--server ...) it
    /// first logs in with the password and --totp CODE and is remembered, so a late
    /// approval needs no new code. Prints a 16-character code; type it on a device that
    /// is already trusted: `cirrus device approve CODE`. Waits for the approval.
    Add {
        #[command(flatten)]
        new: NewDeviceArgs,
        /// Seconds to wait for the approval (run the command again to keep waiting).
        #[arg(long, default_value_t = 600)]
        timeout: u64,
    },
    /// On a TRUSTED device: approve the new device that shows CODE. It receives the
    /// account key and the category keys, and joins the signed device list. The code
    /// proves to each device that the other is the one the person is holding.
    Approve {
        /// The code the new device printed, e.g. 7K2Q-XM4T-0B9D-RW3H. Dashes and spaces do
        /// not matter: its groups may also come as separate words (7K2Q XM4T 0B9D RW3H).
        #[arg(value_name = "CODE", required = true, num_args = 1..)]
        code: Vec<String>,
        #[command(flatten)]
        pass: PasscodeArgs,
    },
    /// List the account's devices: name, state, and the first 8 bytes of each one's
    /// signing key (in hex), to tell devices of the same name apart.
    List {
        #[command(flatten)]
        pass: PasscodeArgs,
    },
    /// Rebuild this device's trust anchor (HOME/device/seen) when it is missing or
    /// damaged and unlocking fails because of it. Only a manifest in the store that this
    /// device signed itself is taken as the new anchor, and every later one is verified
    /// from there. If none exists, use `cirrus recover` instead. Do this only if you know
    /// why the anchor went (a restored backup, a damaged disk): a missing anchor can also
    /// mean someone tampered with this disk.
    Reanchor {
        #[command(flatten)]
        pass: PasscodeArgs,
    },
    /// Remove a device (lost, sold, retired). It leaves the signed device list, the
    /// account key is replaced, and every category is re-encrypted under a new key, so
    /// the removed device can read nothing written afterwards. Works while mounted.
    Remove {
        /// The device's name, as `cirrus device list` shows it.
        name: String,
        #[command(flatten)]
        pass: PasscodeArgs,
    },
}

#[derive(Subcommand)]
pub enum RecoveryKeyCmd {
    /// Create a recovery key and show it ONCE. Write it down and keep it safe: with it
    /// you can get back into your account, end-to-end data included, on a new device even
    /// if you lose every device. Creating a new one revokes the old one. With a recovery key,
    /// the data recovery service is turned off.
    Create {
        #[command(flatten)]
        pass: PasscodeArgs,
    },
}

/// A new device's login to the key service it was given (see [`log_in_first`]).
struct FirstLogin {
    server: crate::home::ServerConfig,
    session: crate::keyservice::client::Session,
}

/// Logs a new device in to the key service it was given (password and second factor)
/// and remembers it, before it asks anything of the account: a join approved after the
/// TOTP code expired, or a recovery, then needs no code afterwards. None: no key service
/// was given. A failure (wrong password or code, the service out of reach) stops the
/// command before it asks to join or recover; the caller removes what `prepare` made.
fn log_in_first(
    nd: &NewDevice,
    a: &NewDeviceArgs,
    what: &str,
) -> Result<Option<FirstLogin>, String> {
    let Some(server) = a.server_config()? else {
        return Ok(None);
    };
    let password = passcode::read_password(&a.pass, false)?;
    let session = nd
        .log_in(&server, &password, a.pass.totp.as_deref())
        .map_err(|e| match e {
            crate::account::AccountError::SecondFactorRequired(_) => format!(
                "{what}: this account has two-factor authentication: pass --totp CODE (the \
                 current code of your authenticator app). Nothing was changed"
            ),
            e => format!(
                "{what}: cannot log in to the key service ({e}). Nothing was changed: check \
                 the password, the TOTP code and that the key service can be reached, then \
                 run the command again"
            ),
        })?;
    Ok(Some(FirstLogin { server, session }))
}

/// After a join or a recovery: records the key service and keeps the session of the
/// first login (the device is remembered already).
fn attach_server(
    acct: &mut crate::account::Unlocked,
    login: Option<FirstLogin>,
) -> Result<(), String> {
    if let Some(l) = login {
        acct.set_server(l.server).map_err(|e| e.to_string())?;
        acct.use_session(l.session);
    }
    Ok(())
}

/// Whether the home at `root` holds neither an account nor an unfinished join, nor the
/// directories a new device makes there: what a failed join or recovery made can then go
/// (see [`undo_new_device`]). A `device` or `run` directory that was there before (a
/// --home that is some other directory, or what a crashed attempt left) is not ours to
/// delete.
fn fresh_home(root: &std::path::Path) -> bool {
    let h = Home::new(root.to_path_buf());
    !h.exists() && !h.join_path().exists() && !h.device_dir().exists() && !h.run_dir().exists()
}

/// Leaves nothing half-made behind a join or recovery that failed in a fresh home: a
/// retry (maybe with another store or key service) starts clean. Not once an account key
/// is on disk: the store may already trust this device (a data recovery that stopped
/// after publishing its manifest, whose only trusted device this is).
fn undo_new_device(root: &std::path::Path) {
    let h = Home::new(root.to_path_buf());
    if !h.exists() && !h.account_key_path().exists() {
        let _ = std::fs::remove_file(h.join_path());
        let _ = std::fs::remove_dir_all(h.device_dir());
        let _ = std::fs::remove_dir_all(h.run_dir());
    }
}

fn new_device_options(a: &NewDeviceArgs) -> NewDeviceOptions {
    NewDeviceOptions {
        store_url: a.store.clone(),
        device_name: a.device_name.clone().unwrap_or_else(super::hostname),
        kdf: KdfParams {
            memory_kib: a.kdf_memory,
            time: a.kdf_time,
            lanes: 1,
        },
        with_key_service: a.server.is_some(),
    }
}

/// `cirrus device add`: join the account as a new device and wait for the approval.
fn add(home: Home, new: NewDeviceArgs, timeout: u64) -> CliResult {
    let passcode = passcode::read(&new.pass, true)?;
    let root = home.root.clone();
    let fresh = fresh_home(&root);
    let mut nd = NewDevice::prepare(home, &passcode, new_device_options(&new))
        .map_err(|e| format!("device add: {e}"))?;
    let mut login = match log_in_first(&nd, &new, "device add") {
        Ok(l) => l,
        Err(e) => {
            if fresh {
                undo_new_device(&root);
            }
            return Err(e);
        }
    };
    let code = nd.request_join().map_err(|e| format!("device add: {e}"))?;
    let code = code.as_str();
    println!("Approval code: {code}");
    println!(
        "On a trusted device of the account run:  cirrus device approve {code}\n\
         The code is a secret between the two devices: type it there yourself; never \
         send it through the server or anyone else."
    );
    // The prompt must reach a reader waiting on a pipe (scripts, tests) now.
    let _ = std::io::Write::flush(&mut std::io::stdout());
    let deadline = Instant::now() + Duration::from_secs(timeout);
    loop {
        match nd
            .try_finish_join()
            .map_err(|e| format!("device add: {e}"))?
        {
            Ok(mut acct) => {
                println!(
                    "This device ({}) now belongs to the account. Mount with: {}",
                    acct.config.device_name,
                    crate::hint::cmd_hint("mount")
                );
                attach_server(&mut acct, login.take())?;
                return Ok(0);
            }
            Err(back) => nd = back,
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "not approved within {timeout} s; run `{}` again to keep waiting",
                crate::hint::cmd_hint("device add")
            ));
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

pub fn run(home: Home, cmd: DeviceCmd) -> CliResult {
    match cmd {
        DeviceCmd::Add { new, timeout } => add(home, new, timeout),
        DeviceCmd::Approve { code, pass } => {
            let mut acct = super::unlock(home, &pass)?;
            let name = acct
                .approve_device(&code.join(" "))
                .map_err(|e| format!("device approve: {e}"))?;
            println!("Approved device {name}.");
            if acct.config.server.is_none() {
                println!(
                    "Note: this account has no key service, so {name} got today's standard keys \
                     but cannot fetch new ones (after a rotation, say). Move the account to a key \
                     service with `{}` to share keys between devices.",
                    crate::hint::cmd_hint("account move --server ...")
                );
            }
            Ok(0)
        }
        DeviceCmd::Remove { name, pass } => {
            let lock = crate::daemon::lock_home(&home).ok();
            let mut acct = super::unlock(Home::new(home.root.clone()), &pass)?;
            let already = acct.devices().iter().any(|d| d.name == name && !d.active);
            let jobs = if already {
                let owed = crate::maintenance::rotation::load_pending(&home)
                    .map_err(|e| format!("device remove: {e}"))?;
                if owed.is_empty() {
                    println!("Device {name} was already removed; nothing left to do.");
                    return Ok(0);
                }
                println!("Resuming: re-encrypting {} more categories...", owed.len());
                owed
            } else {
                if lock.is_some() {
                    // Not mounted: vouch for every head now, so none is left signed only by
                    // the device about to be removed (a mounted daemon re-signs as it
                    // rotates).
                    acct.resign_heads()
                        .map_err(|e| format!("device remove: {e}"))?;
                } else if acct.sync.is_some() && crate::daemon::control::socket_exists(&home) {
                    // Mounted on a remote store: take in (and push) what every device has
                    // published while the one being removed is still trusted; after the
                    // removal its heads no longer verify and could not be merged.
                    let req = crate::daemon::control::Request {
                        op: "sync".into(),
                        wait: Some(true),
                        stall_secs: Some(120),
                        ..Default::default()
                    };
                    crate::daemon::control::exchange(&home, &req, &mut |_| {})
                        .and_then(|r| r.error.map_or(Ok(()), Err))
                        .map_err(|e| {
                            format!("device remove: syncing first failed ({e}); nothing removed")
                        })?;
                }
                // Owed before the removal is published: a crash right after it must not
                // forget the rotations.
                let owed: Vec<super::rotate::Job> = acct
                    .table()
                    .active()
                    .map(|e| super::rotate::Job {
                        category: e.name.clone(),
                        class: None,
                    })
                    .collect();
                crate::maintenance::rotation::save_pending(&home, &owed)
                    .map_err(|e| e.to_string())?;
                let cats = acct
                    .remove_device(&name)
                    .map_err(|e| format!("device remove: {e}"))?;
                println!(
                    "Removed device {name}; the account key is replaced. Re-encrypting {} \
                     categories under new keys (run this again to resume if interrupted)...",
                    cats.len()
                );
                cats.into_iter()
                    .map(|category| super::rotate::Job {
                        category,
                        class: None,
                    })
                    .collect()
            };
            let lines = super::rotate::rotate_owed(&home, &pass, jobs, lock.map(|l| (acct, l)))?;
            for l in lines {
                println!("{l}");
            }
            Ok(0)
        }
        DeviceCmd::Reanchor { pass } => {
            if !home.exists() {
                return Err(format!(
                    "no Cirrus account in {} (run `{}`, or pass --home)",
                    home.root.display(),
                    crate::hint::cmd_hint("init")
                ));
            }
            let passcode = super::passcode::read(&pass, false)?;
            let (acct, anchored) =
                crate::account::reanchor(home, &passcode).map_err(|e| e.to_string())?;
            match anchored {
                None => println!("The trust anchor is intact; nothing changed."),
                Some(c) => println!(
                    "Trust anchor rebuilt from manifest #{c}, signed by this device; the \
                     account is at manifest #{} now. Rollback checks of each category \
                     restart from what the store serves now.",
                    acct.manifest().counter
                ),
            }
            Ok(0)
        }
        DeviceCmd::List { pass } => {
            let acct = super::unlock(home, &pass)?;
            println!("{:<24} {:<8} key", "device", "state");
            for d in acct.devices() {
                println!(
                    "{:<24} {:<8} {}{}",
                    d.name,
                    if d.active { "trusted" } else { "removed" },
                    d.code,
                    if d.this_device { "  (this device)" } else { "" }
                );
            }
            Ok(0)
        }
    }
}

pub fn recovery_key(home: Home, cmd: RecoveryKeyCmd) -> CliResult {
    match cmd {
        RecoveryKeyCmd::Create { pass } => {
            let mut acct = super::unlock(home, &pass)?;
            if acct.config.server.is_some() && acct.session().is_err() {
                return Err(
                    "recovery-key create: this account is on a key service; pass \
                     --password-file so the data recovery service can be turned off"
                        .into(),
                );
            }
            // Turning data recovery off needs a recent session: found out before a new
            // recovery key replaces the old one.
            if acct.session().is_ok() {
                acct.ensure_recent()
                    .map_err(|e| format!("recovery-key create: {e}"))?;
            }
            let code = acct
                .create_recovery_key()
                .map_err(|e| format!("recovery-key create: {e}"))?;
            // Shown first: it is in force now, whatever fails after.
            println!("Your recovery key (shown only now; write it down and keep it safe):\n");
            println!("    {}\n", code.grouped().as_str());
            if let Ok(s) = acct.session() {
                s.set_drs(false).map_err(|e| {
                    format!(
                        "the recovery key above is in force, but turning off the data recovery \
                         service failed ({e}); run `{}` again later",
                        crate::hint::cmd_hint("recovery-key create")
                    )
                })?;
            }
            if acct.config.server.is_some() {
                println!(
                    "Any earlier recovery key no longer works. The data recovery service is now \
                     off: without this key, a trusted device or another recovery method, your data \
                     cannot be recovered."
                );
            } else {
                println!(
                    "Any earlier recovery key no longer works. Without this key or a trusted \
                     device, your end-to-end data cannot be recovered."
                );
            }
            Ok(0)
        }
    }
}

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("how").args([
    "recovery_key_file",
    "data_recovery",
    "escrow",
    "contact_code_file"
])))]
pub struct RecoverArgs {
    /// Read the recovery key from this file instead of the terminal.
    #[arg(long)]
    recovery_key_file: Option<PathBuf>,
    /// No recovery key and no trusted device left: reset the account password with your
    /// second factor (TOTP) and get back the categories under standard protection. The
    /// end-to-end ones (Health, Keychain, Messages, ...) cannot be recovered this way.
    #[arg(long)]
    data_recovery: bool,
    /// Recover with the passcode escrowed on the key service (give that passcode as this
    /// device's passcode). Needs --server ..., --password-file and --totp.
    #[arg(long)]
    escrow: bool,
    /// Recover with the code a recovery contact gave you (from `cirrus recovery-contact
    /// help`). Needs --server ..., --password-file and --totp.
    #[arg(long)]
    contact_code_file: Option<PathBuf>,
    /// Read the new account password from this file instead of the terminal.
    #[arg(long)]
    new_password_file: Option<PathBuf>,
    #[command(flatten)]
    new: NewDeviceArgs,
}

pub fn recover(home: Home, args: RecoverArgs) -> CliResult {
    let root = home.root.clone();
    let fresh = fresh_home(&root);
    let res = if args.data_recovery {
        data_recovery(home, args)
    } else if args.escrow || args.contact_code_file.is_some() {
        with_service_method(home, args)
    } else {
        with_recovery_key(home, args)
    };
    if res.is_err() && fresh {
        undo_new_device(&root);
    }
    res
}

fn with_recovery_key(home: Home, args: RecoverArgs) -> CliResult {
    let text = zeroize::Zeroizing::new(match &args.recovery_key_file {
        Some(p) => std::fs::read_to_string(p)
            .map_err(|e| format!("cannot read recovery key file {}: {e}", p.display()))?,
        None if std::io::IsTerminal::is_terminal(&std::io::stdin()) => {
            rpassword::prompt_password("Recovery key: ")
                .map_err(|e| format!("cannot read the recovery key: {e}"))?
        }
        None => {
            return Err(
                "no recovery key: pass --recovery-key-file FILE (or run in a terminal)".into(),
            );
        }
    });
    let code = RecoveryKey::parse(text.trim()).map_err(|e| format!("recover: {e}"))?;
    let passcode = passcode::read(&args.new.pass, true)?;
    let nd = NewDevice::prepare(home, &passcode, new_device_options(&args.new))
        .map_err(|e| format!("recover: {e}"))?;
    let login = log_in_first(&nd, &args.new, "recover")?;
    let mut acct = nd
        .recover_with_key(&code)
        .map_err(|e| format!("recover: {e}"))?;
    attach_server(&mut acct, login)?;
    let blocked: Vec<String> = acct
        .category_setups()
        .into_iter()
        .filter_map(|(e, r)| r.err().map(|_| e.name))
        .collect();
    println!(
        "Recovered: this device ({}) now belongs to the account.",
        acct.config.device_name
    );
    if !blocked.is_empty() {
        if acct.config.server.is_some() {
            println!("{}", not_available_yet(&blocked));
        } else {
            println!(
                "Not recoverable on this device: {} (no key service was given and the account \
                 does not say it has one: their keys were held by the lost device's embedded \
                 key service).",
                blocked.join(", ")
            );
        }
    }
    Ok(0)
}

/// After a recovery that logged in: the categories whose keys the key service did not give
/// back (the login worked, so it is not a matter of logging in again).
fn not_available_yet(blocked: &[String]) -> String {
    format!(
        "Not available on this device yet: {} (the key service did not give their keys back: \
         `{}` says why; a later mount with --password-file fetches them)",
        blocked.join(", "),
        crate::hint::cmd_hint("status --password-file FILE")
    )
}

fn data_recovery(home: Home, args: RecoverArgs) -> CliResult {
    let (Some(server), Some(totp)) = (args.new.server_config()?, args.new.pass.totp.clone()) else {
        return Err("--data-recovery needs --server, --fingerprint, --account and --totp".into());
    };
    let passcode = passcode::read(&args.new.pass, true)?;
    if args.new_password_file.is_none() {
        eprintln!("New account password:");
    }
    let new_password = passcode::read_password(
        &PasscodeArgs {
            passcode_file: None,
            password_file: args.new_password_file.clone(),
            totp: None,
            passcode_command: None,
            password_command: None,
            ambient: false,
        },
        true,
    )?;
    let nd = NewDevice::prepare(home, &passcode, new_device_options(&args.new))
        .map_err(|e| format!("recover: {e}"))?;
    let r = nd
        .recover_data(server, &totp, &new_password)
        .map_err(|e| format!("recover: {e}"))?;
    println!(
        "Password reset. This device ({}) is now the account's only trusted device.",
        r.account.config.device_name
    );
    println!(
        "Recovered through the data recovery service: {}",
        if r.recovered.is_empty() {
            "(nothing)".to_string()
        } else {
            r.recovered.join(", ")
        }
    );
    if !r.lost.is_empty() {
        println!(
            "NOT recovered (end-to-end encrypted: only your lost devices, a recovery key or a \
             recovery contact could open them; their folders start empty): {}",
            r.lost.join(", ")
        );
    }
    if !r.failed.is_empty() {
        println!(
            "NOT recovered (the key service did not give their keys back; see the warnings \
             above): {}",
            r.failed.join(", ")
        );
    }
    // The lost devices still hold the recovered keys: new keys for those categories, so
    // whoever has a lost device reads nothing written from now on.
    let home = Home::new(r.account.home.root.clone());
    let lock = crate::daemon::lock_home(&home).map_err(|e| e.to_string())?;
    let jobs: Vec<super::rotate::Job> = r
        .recovered
        .iter()
        .map(|c| super::rotate::Job {
            category: c.clone(),
            class: None,
        })
        .collect();
    println!(
        "Re-encrypting the {} recovered categories under new keys (the lost devices held the \
         old ones)...",
        jobs.len()
    );
    let pass = PasscodeArgs {
        passcode_file: None,
        password_file: None,
        totp: None,
        passcode_command: None,
        password_command: None,
        ambient: false,
    };
    super::rotate::rotate_owed(&home, &pass, jobs, Some((r.account, lock)))?;
    println!("Done.");
    Ok(0)
}

/// Recovery through a method that needs the key service (escrow, recovery contact).
fn with_service_method(home: Home, args: RecoverArgs) -> CliResult {
    if args.new.server_config()?.is_none() {
        return Err("this recovery needs --server, --fingerprint and --account".into());
    }
    let contact = match &args.contact_code_file {
        Some(f) => Some(
            crate::account::methods::parse_contact_code(
                &std::fs::read_to_string(f)
                    .map_err(|e| format!("cannot read {}: {e}", f.display()))?,
            )
            .ok_or("that is not a recovery contact code")?,
        ),
        None => None,
    };
    let passcode = passcode::read(&args.new.pass, true)?;
    let nd = NewDevice::prepare(home, &passcode, new_device_options(&args.new))
        .map_err(|e| format!("recover: {e}"))?;
    let login = log_in_first(&nd, &args.new, "recover")?
        .ok_or("this recovery needs --server, --fingerprint and --account")?;
    let res = match &contact {
        Some(code) => nd.recover_with_contact(&login.session, code),
        None => nd.recover_with_escrow(&login.session, &passcode),
    };
    let mut acct = res.map_err(|e| format!("recover: {e}"))?;
    attach_server(&mut acct, Some(login))?;
    // Fetch the standard keys now, while logged in: later mounts need no key service.
    let blocked: Vec<String> = acct
        .category_setups()
        .into_iter()
        .filter_map(|(e, r)| r.err().map(|_| e.name))
        .collect();
    if !blocked.is_empty() {
        println!("{}", not_available_yet(&blocked));
    }
    println!(
        "Recovered: this device ({}) now belongs to the account.",
        acct.config.device_name
    );
    Ok(0)
}
