//! `cirrus account ...`: the account on its key service — second factor (TOTP) and the
//! service's view of the account.

use super::{PasscodeArgs, unlock};
use crate::home::Home;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum AccountCmd {
    /// Two-factor authentication with an authenticator app (TOTP, RFC 6238). Required
    /// before end-to-end categories can be used with a key service.
    Totp {
        #[command(subcommand)]
        cmd: TotpCmd,
    },
    /// Move an account that uses this device's embedded key service to a key service
    /// (`cirrus serve`), e.g. before adding a second device. Standard keys are re-wrapped
    /// by the service; afterwards enrol TOTP to unlock the end-to-end categories again.
    Move {
        #[command(flatten)]
        server: super::ServerArgs,
        #[command(flatten)]
        pass: PasscodeArgs,
    },
    /// Change the account password on the key service.
    Password {
        /// Read the new password from this file instead of the terminal.
        #[arg(long)]
        new_password_file: Option<std::path::PathBuf>,
        #[command(flatten)]
        pass: PasscodeArgs,
    },
    /// What the key service knows about the account: second factor, data recovery,
    /// escrow, service-key version (with --password-file), and its notices to this device
    /// (a pending password reset among them; no password needed for those).
    Status {
        #[command(flatten)]
        pass: PasscodeArgs,
    },
    /// Log in to the key service with the account password (and a TOTP code when the
    /// account has one) and remember this device, so later commands, the mounted drive
    /// and the notices need no code. The way back for a device the key service forgot
    /// (after a password change or reset).
    Login {
        #[command(flatten)]
        pass: PasscodeArgs,
    },
    /// Cancel a pending password reset through data recovery (which `cirrus status` and
    /// the mounted drive's log warn of). Needs only this device's remembered token.
    CancelReset {
        #[command(flatten)]
        pass: PasscodeArgs,
    },
}

#[derive(Subcommand)]
pub enum TotpCmd {
    /// Start enrolment: shows the otpauth:// URI to add to your authenticator app, as a QR
    /// code to scan and as text.
    Enroll {
        #[command(flatten)]
        pass: PasscodeArgs,
    },
    /// Finish enrolment with the 6-digit code the app shows now. From then on a new
    /// device needs a code to log in, and end-to-end categories unlock.
    Confirm {
        code: String,
        #[command(flatten)]
        pass: PasscodeArgs,
    },
}

fn need_server(acct: &crate::account::Unlocked) -> Result<(), String> {
    if acct.config.server.is_none() {
        return Err(
            "this account uses the embedded key service of this device (no `cirrus \
                    serve`): this device is its second factor, there is nothing to set up"
                .into(),
        );
    }
    Ok(())
}

/// The web access line of `account status` (nothing from a service without the web API).
fn print_web_status(acct: &crate::account::Unlocked) {
    if let Ok(web) = acct.web_status() {
        println!(
            "web access: {}",
            if web.enabled {
                format!("on ({} open sessions: cirrus web sessions)", web.sessions)
            } else {
                "off".into()
            }
        );
    }
}

/// `text` as a QR code in terminal characters, two modules per character cell. Light
/// modules are drawn and dark ones left as the background, so on the usual dark
/// terminal the code reads dark on light, with its quiet zone, as scanners expect. The
/// drawing carries the secret too: zeroized once printed.
fn qr_lines(text: &str) -> Result<zeroize::Zeroizing<String>, qrcode::types::QrError> {
    use qrcode::render::unicode::Dense1x2;
    let code = qrcode::QrCode::new(text.as_bytes())?;
    Ok(zeroize::Zeroizing::new(
        code.render::<Dense1x2>()
            .dark_color(Dense1x2::Light)
            .light_color(Dense1x2::Dark)
            .quiet_zone(true)
            .build(),
    ))
}

/// `account totp enroll`: the URI to scan, drawn and as text.
fn totp_enroll(home: Home, pass: &PasscodeArgs) -> super::CliResult {
    let acct = unlock(home, pass)?;
    need_server(&acct)?;
    let uri = acct
        .totp_enroll()
        .map_err(|e| super::failed_with_hint("totp enroll", &e, "pass --password-file?"))?;
    println!(
        "Add this to your authenticator app, then run `{}`:",
        crate::hint::cmd_hint("account totp confirm CODE")
    );
    // The URI comes from the server: no control characters reach the terminal.
    let shown = zeroize::Zeroizing::new(crate::keyservice::client::printable(uri.as_str()));
    match qr_lines(shown.as_str()) {
        Ok(qr) => println!("{}", qr.as_str()),
        Err(e) => eprintln!("cirrus: cannot draw the QR code ({e}); type the URI instead"),
    }
    println!("{}", shown.as_str());
    Ok(0)
}

pub fn run(home: Home, cmd: AccountCmd) -> super::CliResult {
    match cmd {
        AccountCmd::Totp {
            cmd: TotpCmd::Enroll { pass },
        } => totp_enroll(home, &pass),
        AccountCmd::Totp {
            cmd: TotpCmd::Confirm { code, pass },
        } => {
            let mut acct = unlock(home, &pass)?;
            need_server(&acct)?;
            acct.totp_confirm(&code)
                .map_err(|e| format!("totp confirm: {e}"))?;
            println!(
                "Two-factor authentication is on. End-to-end categories are available from the \
                 next mount."
            );
            Ok(0)
        }
        AccountCmd::Move { server, pass } => {
            if server.server.is_none() {
                return Err(
                    "account move needs --server URL (and --account, --fingerprint)".into(),
                );
            }
            let srv = server
                .resolve(&pass)?
                .ok_or("account move needs --server URL")?;
            let mut acct = unlock(home, &pass)?;
            let n = acct
                .move_to_server(srv)
                .map_err(|e| format!("account move: {e}"))?;
            println!(
                "Moved to the key service: {n} standard and transit keys are now wrapped by it, \
                 and this device's embedded key service is gone.\nEnd-to-end categories stay \
                 locked until you run `{}`.",
                crate::hint::cmd_hint("account totp enroll")
            );
            Ok(0)
        }
        AccountCmd::Password {
            new_password_file,
            pass,
        } => {
            let mut acct = unlock(home, &pass)?;
            need_server(&acct)?;
            if new_password_file.is_none() {
                eprintln!("New account password:");
            }
            let new = super::passcode::read_password(
                &PasscodeArgs {
                    passcode_file: None,
                    password_file: new_password_file,
                    totp: None,
                    passcode_command: None,
                    password_command: None,
                    ambient: false,
                },
                true,
            )?;
            acct.change_password(&new).map_err(|e| {
                super::failed_with_hint("account password", &e, "pass --password-file?")
            })?;
            println!("Account password changed.");
            Ok(0)
        }
        AccountCmd::Status { pass } => {
            let acct = unlock(home, &pass)?;
            need_server(&acct)?;
            let server = acct
                .config
                .server
                .as_ref()
                .map(|s| s.url.as_str())
                .unwrap_or("");
            println!("key service: {server}");
            let notices = acct.notice_watch().and_then(|w| w.fetch());
            match &notices {
                Ok(r) => {
                    if let Some(w) = crate::account::notices::pending_warning(r) {
                        println!("WARNING: {w}");
                    }
                    for n in r.notices.iter().rev().take(5) {
                        println!("notice: {}", crate::account::notices::describe(n));
                    }
                }
                Err(e) => println!("notices: cannot read them: {e}"),
            }
            let st = match acct.session() {
                Ok(s) => s.status().map_err(|e| format!("account status: {e}"))?,
                // The notices need no password; the rest does.
                Err(_) if !super::passcode::password_given(&pass) && notices.is_ok() => {
                    println!("(pass --password-file for the rest)");
                    return Ok(0);
                }
                Err(e) => return Err(format!("account status: {e} (pass --password-file?)")),
            };
            println!(
                "two-factor (TOTP): {}",
                if st.totp_enrolled { "on" } else { "off" }
            );
            println!(
                "data recovery service: {}",
                if st.drs { "on" } else { "off" }
            );
            println!("passcode escrow: {}", if st.escrow { "on" } else { "off" });
            println!("service key version: {}", st.service_version);
            print_web_status(&acct);
            Ok(0)
        }
        AccountCmd::Login { pass } => {
            let passcode = super::passcode::read(&pass, false)?;
            let mut acct = crate::account::unlock(home, &passcode).map_err(|e| e.to_string())?;
            need_server(&acct)?;
            let password = super::passcode::read_password(&pass, false)?;
            acct.connect(&password, pass.totp.as_deref())
                .map_err(|e| format!("could not log in to the key service: {e}"))?;
            println!("Logged in; this device is remembered by the key service.");
            Ok(0)
        }
        AccountCmd::CancelReset { pass } => {
            let acct = unlock(home, &pass)?;
            need_server(&acct)?;
            let cancelled = acct
                .notice_watch()
                .and_then(|w| w.cancel_reset())
                .map_err(|e| format!("account cancel-reset: {e}"))?;
            if cancelled {
                println!(
                    "The pending password reset is cancelled. If you did not ask for it, \
                     someone has your TOTP codes: change the account password and enrol TOTP \
                     again."
                );
            } else {
                println!("No password reset is pending; nothing changed.");
            }
            Ok(0)
        }
    }
}
