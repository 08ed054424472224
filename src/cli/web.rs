//! `cirrus web ...`: web access to the account (the key service's web front) from this
//! trusted device: on, off, status, the web sessions and ending them.

use super::{PasscodeArgs, unlock};
use crate::home::Home;
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum WebCmd {
    /// Turn web access on: the key service's web front may then show this account's
    /// standard and transit categories in a browser, after a sign-in with the web
    /// password and a TOTP code. End-to-end categories stay locked. Needs a fresh second
    /// factor (--password-file and --totp CODE).
    On {
        /// The account's store as the server should open it, e.g.
        /// s3://BUCKET/PREFIX?endpoint=https://s3.example.com (default: this device's
        /// store). The server's admin must allow it (cirrus serve --web-store-allow).
        #[arg(long, value_name = "URL")]
        store: Option<String>,
        /// Read the new web password from this file instead of the terminal (at least 10
        /// characters; not the account password).
        #[arg(long, value_name = "FILE")]
        web_password_file: Option<PathBuf>,
        #[command(flatten)]
        pass: PasscodeArgs,
    },
    /// Turn web access off and end every web session.
    Off {
        #[command(flatten)]
        pass: PasscodeArgs,
    },
    /// Whether web access is on, for which store, and how many web sessions are open.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        pass: PasscodeArgs,
    },
    /// The open web sessions: id, when started and last used, from where, which browser.
    Sessions {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        pass: PasscodeArgs,
    },
    /// End a web session by its id (from `cirrus web sessions`), or all of them.
    Revoke {
        /// The session's id.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        /// End every web session of the account.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        pass: PasscodeArgs,
    },
}

/// The web password: from the file's first line, else asked twice on the terminal.
fn web_password(file: Option<PathBuf>) -> Result<zeroize::Zeroizing<String>, String> {
    if file.is_none() {
        eprintln!("New web password (at least 10 characters, not the account password):");
    }
    let pw = super::passcode::read_password(
        &PasscodeArgs {
            passcode_file: None,
            password_file: file,
            totp: None,
        },
        true,
    )?;
    Ok(zeroize::Zeroizing::new(pw.expose().to_string()))
}

fn when(secs: u64) -> String {
    jiff::Timestamp::from_second(i64::try_from(secs).unwrap_or(0))
        .map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|_| "?".into())
}

fn connected(home: Home, pass: &PasscodeArgs) -> Result<crate::account::Unlocked, String> {
    let acct = unlock(home, pass)?;
    if acct.config.server.is_none() {
        return Err(
            "web access needs a key service (`cirrus serve` with --web-listen); this account \
             uses the embedded one of this device"
                .into(),
        );
    }
    Ok(acct)
}

pub fn run(home: Home, cmd: WebCmd) -> super::CliResult {
    match cmd {
        WebCmd::On {
            store,
            web_password_file,
            pass,
        } => {
            let mut acct = connected(home, &pass)?;
            let store = store.unwrap_or_else(|| acct.config.store.clone());
            let pw = web_password(web_password_file)?;
            let st = acct
                .web_on(&store, &pw)
                .map_err(|e| super::failed_with_hint("web on", &e, "pass --password-file?"))?;
            println!(
                "Web access is on for {} (store {}). Sign in on the key service's web front \
                 with the account name, the web password and a TOTP code.",
                acct.session()
                    .map(|s| s.account().to_string())
                    .unwrap_or_default(),
                st.store.as_deref().unwrap_or("?")
            );
            Ok(0)
        }
        WebCmd::Off { pass } => {
            let acct = connected(home, &pass)?;
            acct.web_off().map_err(|e| format!("web off: {e}"))?;
            println!("Web access is off; every web session ended.");
            Ok(0)
        }
        WebCmd::Status { json, pass } => {
            let acct = connected(home, &pass)?;
            let st = acct.web_status().map_err(|e| format!("web status: {e}"))?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&st).map_err(|e| e.to_string())?
                );
            } else if st.enabled {
                println!(
                    "web access: on\nstore: {}\nturned on: {} by {}\nopen sessions: {}",
                    st.store.as_deref().unwrap_or("?"),
                    st.registered_at.map(when).unwrap_or_default(),
                    crate::keyservice::client::printable(st.device.as_deref().unwrap_or("?")),
                    st.sessions
                );
            } else {
                println!("web access: off");
            }
            Ok(0)
        }
        WebCmd::Sessions { json, pass } => {
            let acct = connected(home, &pass)?;
            let list = acct
                .web_sessions()
                .map_err(|e| format!("web sessions: {e}"))?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&list).map_err(|e| e.to_string())?
                );
                return Ok(0);
            }
            if list.is_empty() {
                println!("No open web session.");
            }
            for s in list {
                println!(
                    "{}  started {}  last used {}  from {}  {}",
                    crate::keyservice::client::printable(&s.id),
                    when(s.started),
                    when(s.last_used),
                    crate::keyservice::client::printable(&s.from),
                    crate::keyservice::client::printable(&s.agent)
                );
            }
            Ok(0)
        }
        WebCmd::Revoke { id, all, pass } => {
            let acct = connected(home, &pass)?;
            let n = acct
                .web_revoke(if all { None } else { id.as_deref() })
                .map_err(|e| format!("web revoke: {e}"))?;
            println!("{n} web session(s) ended.");
            Ok(0)
        }
    }
}
