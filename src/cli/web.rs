//! `cirrus web ...`: web access to the account (the key service's web front) from this
//! trusted device: on, off, status, the web sessions and ending them; under ADP, approving
//! a sign-in and releasing category keys to it, and rotating those keys once the session
//! is over (here, and after `cirrus sync` on a mounted drive).

use super::{PasscodeArgs, unlock};
use crate::account::{Released, Unlocked, WebSignIn};
use crate::home::Home;
use crate::maintenance::rotation::Job;
use crate::maintenance::web_releases;
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
    /// Approve a web sign-in that waits for a trusted device (web access turned on under
    /// Advanced Data Protection), and release the keys of the categories named to that
    /// browser session for the server's release time (an hour at most). The device checks that the code belongs to the
    /// session's key before it releases anything. Only Photos, Drive, Notes, Reminders,
    /// Bookmarks, Shortcuts, Voice Memos and Passes can be released; once the session is
    /// over, this device rotates their keys.
    Approve {
        /// The code the sign-in page shows (XXXX-XXXX-XXXX-XXXX).
        code: String,
        /// Categories to open in that session, e.g. --category Photos,Notes (none: only
        /// the sign-in is approved, which opens Calendars, Contacts and Mail).
        #[arg(long, value_delimiter = ',', value_name = "NAME")]
        category: Vec<String>,
        /// Do not rotate the released keys after the session: they then stay good until
        /// each category's next rotation, whatever the server does.
        #[arg(long)]
        no_rotate_after: bool,
        /// Do not ask for confirmation on the terminal.
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        pass: PasscodeArgs,
    },
    /// Release one more category to a web session this device approved (within its hour).
    Release {
        /// The web session's id (from `cirrus web sessions`).
        #[arg(long, value_name = "ID")]
        session: String,
        /// Categories to open in that session.
        #[arg(long, value_delimiter = ',', value_name = "NAME", required = true)]
        category: Vec<String>,
        /// Do not rotate the released keys after the session (see `web approve`).
        #[arg(long)]
        no_rotate_after: bool,
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
            passcode_command: None,
            password_command: None,
            ambient: false,
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
            if st.approvals {
                println!(
                    "Advanced Data Protection is on: each web sign-in waits until a trusted \
                     device approves it with the code its page shows (cirrus web approve CODE \
                     --category Photos)."
                );
            }
            rotate_released(&home_of(&acct), &pass, acct)?;
            Ok(0)
        }
        WebCmd::Off { pass } => {
            let acct = connected(home, &pass)?;
            acct.web_off().map_err(|e| format!("web off: {e}"))?;
            println!("Web access is off; every web session ended.");
            rotate_released(&home_of(&acct), &pass, acct)?;
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
                if st.approvals {
                    println!("sign-ins: each needs a trusted device's approval (ADP)");
                }
            } else {
                println!("web access: off");
            }
            rotate_released(&home_of(&acct), &pass, acct)?;
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
                    "{}  started {}  last used {}  from {}  {}{}",
                    crate::keyservice::client::printable(&s.id),
                    when(s.started),
                    when(s.last_used),
                    crate::keyservice::client::printable(&s.from),
                    crate::keyservice::client::printable(&s.agent),
                    match s.approval.as_deref() {
                        Some("waiting") => "  (waiting for approval)",
                        Some("approved") => "  (approved)",
                        _ => "",
                    }
                );
            }
            rotate_released(&home_of(&acct), &pass, acct)?;
            Ok(0)
        }
        WebCmd::Revoke { id, all, pass } => {
            let acct = connected(home, &pass)?;
            let n = acct
                .web_revoke(if all { None } else { id.as_deref() })
                .map_err(|e| format!("web revoke: {e}"))?;
            println!("{n} web session(s) ended.");
            rotate_released(&home_of(&acct), &pass, acct)?;
            Ok(0)
        }
        WebCmd::Approve {
            code,
            category,
            no_rotate_after,
            yes,
            pass,
        } => approve(home, &code, &category, !no_rotate_after, yes, &pass),
        WebCmd::Release {
            session,
            category,
            no_rotate_after,
            pass,
        } => release_more(home, &session, &category, !no_rotate_after, &pass),
    }
}

/// `web approve CODE --category ...`.
fn approve(
    home: Home,
    code: &str,
    category: &[String],
    rotate: bool,
    yes: bool,
    pass: &PasscodeArgs,
) -> super::CliResult {
    let code = crate::keys::join::JoinCode::parse(code).map_err(|e| format!("web approve: {e}"))?;
    let acct = connected(home, pass)?;
    acct.web_release_check(category)
        .map_err(|e| format!("web approve: {e}"))?;
    let to = acct
        .web_find_sign_in(&code)
        .map_err(|e| format!("web approve: {e}"))?;
    println!(
        "Approving web sign-in {} from {} ({}), started {}.",
        crate::keyservice::client::printable(&to.session.id),
        crate::keyservice::client::printable(&to.session.from),
        crate::keyservice::client::printable(&to.session.agent),
        when(to.session.started)
    );
    if !yes && !confirmed()? {
        return Err("web approve: not approved; nothing was sent".into());
    }
    release(&acct, &to, category, rotate)?;
    rotate_released(&home_of(&acct), pass, acct)?;
    Ok(0)
}

/// On a terminal, asks before approving: a page that relays a real sign-in (phishing)
/// shows a real code, so the person checks where the sign-in comes from. Elsewhere
/// (scripts), the command itself is the consent.
fn confirmed() -> Result<bool, String> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return Ok(true);
    }
    eprint!(
        "Approve only a code from a page you opened yourself, from the place above. \
         Approve? [y/N] "
    );
    std::io::stderr().flush().map_err(|e| e.to_string())?;
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("web approve: reading the answer: {e}"))?;
    Ok(matches!(line.trim().to_lowercase().as_str(), "y" | "yes"))
}

/// `web release --session ID --category ...`: for a session this device approved.
fn release_more(
    home: Home,
    session: &str,
    category: &[String],
    rotate: bool,
    pass: &PasscodeArgs,
) -> super::CliResult {
    let acct = connected(home, pass)?;
    acct.web_release_check(category)
        .map_err(|e| format!("web release: {e}"))?;
    let home = home_of(&acct);
    let known = web_releases::load(&home).map_err(|e| format!("web release: {e}"))?;
    let hex32 = |h: &str| {
        hex::decode(h)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
    };
    let Some((pk, proof)) = known
        .iter()
        .find(|r| r.session == session)
        .and_then(|r| Some((hex32(&r.public_key)?, hex32(&r.proof)?)))
    else {
        return Err(format!(
            "web release: this device did not approve web session {} (approve it \
             with the code its page shows: cirrus web approve CODE --category ...)",
            crate::keyservice::client::printable(session)
        ));
    };
    let info = acct
        .web_sessions()
        .map_err(|e| format!("web release: {e}"))?
        .into_iter()
        .find(|s| s.id == session)
        .ok_or_else(|| {
            format!(
                "web release: web session {} has ended",
                crate::keyservice::client::printable(session)
            )
        })?;
    let to = WebSignIn {
        session: info,
        public_key: pk,
        approved: true,
        proof,
    };
    release(&acct, &to, category, rotate)?;
    rotate_released(&home, pass, acct)?;
    Ok(0)
}

fn home_of(acct: &Unlocked) -> Home {
    Home::new(acct.home.root.clone())
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Approves `to` and releases `categories` to it, recording each e2e one for the rotation
/// owed after the session.
fn release(
    acct: &Unlocked,
    to: &WebSignIn,
    categories: &[String],
    rotate: bool,
) -> Result<(), String> {
    let home = home_of(acct);
    let e2e: Vec<String> = categories
        .iter()
        .filter(|c| {
            acct.table()
                .find(c)
                .is_some_and(|e| e.class == crate::format::table::Class::E2e)
        })
        .cloned()
        .collect();
    let pk = hex::encode(to.public_key);
    let start = now();
    let before =
        web_releases::expires_of(&home, &to.session.id).map_err(|e| format!("web approve: {e}"))?;
    // Recorded before the keys leave (a crash in between leaves a rotation owed, never
    // a release forgotten), and even with no e2e category: `web release` finds the
    // session's key here.
    web_releases::add(
        &home,
        &to.session.id,
        &pk,
        &hex::encode(to.proof),
        &e2e,
        start,
        start + web_releases::MAX_RELEASE_SECS,
        rotate,
    )
    .map_err(|e| format!("web approve: {e}"))?;
    let (released, expires) = acct
        .web_release(to, categories)
        .map_err(|e| format!("web approve: {e}"))?;
    let until = before.max(expires.min(start + web_releases::MAX_RELEASE_SECS));
    web_releases::set_expires(&home, &to.session.id, until)
        .map_err(|e| format!("web approve: {e}"))?;
    if !to.approved {
        println!(
            "Approved: the session sees {} now.",
            crate::format::web::STAY_STANDARD.join(", ")
        );
    }
    for r in &released {
        match r {
            Released::Key { name, version } => println!(
                "Released {name} (key version {version}) to web session {} until {}.",
                to.session.id,
                when(expires)
            ),
            Released::NoKeyNeeded { name } => {
                println!("{name} is not end-to-end encrypted: the web shows it without a release.")
            }
        }
    }
    if !e2e.is_empty() {
        if rotate {
            println!(
                "Once the session is over, this device rotates the key of {} (while \
                 mounted, or at the next `cirrus sync` or `cirrus web` command).",
                e2e.join(", ")
            );
        } else {
            eprintln!(
                "warning: --no-rotate-after: the released key of {} stays good until its \
                 next rotation (`cirrus rotate --category NAME`), whatever the server does \
                 after the hour.",
                e2e.join(", ")
            );
        }
    }
    Ok(())
}

/// Rotates the categories released to web sessions that are over (expired, or no longer
/// listed by the server), then forgets those releases.
fn rotate_released(home: &Home, pass: &PasscodeArgs, acct: Unlocked) -> Result<(), String> {
    let list = web_releases::load(home).map_err(|e| e.to_string())?;
    if list.is_empty() {
        return Ok(());
    }
    let live: Option<Vec<String>> = acct
        .web_sessions()
        .ok()
        .map(|v| v.into_iter().map(|s| s.id).collect());
    let over = web_releases::over(&list, now(), live.as_deref());
    rotate_over(home, pass, &over, Some(acct))
}

fn rotate_over(
    home: &Home,
    pass: &PasscodeArgs,
    over: &[web_releases::WebRelease],
    acct: Option<Unlocked>,
) -> Result<(), String> {
    if over.is_empty() {
        return Ok(());
    }
    let Some(_lock) = web_releases::try_lock(home).map_err(|e| e.to_string())? else {
        // Another command, or the mount's watcher, is rotating them now.
        return Ok(());
    };
    // What is still owed under the lock (the other may have just finished).
    let left: Vec<String> = web_releases::load(home)
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|r| r.session)
        .collect();
    let over: Vec<web_releases::WebRelease> = over
        .iter()
        .filter(|r| left.contains(&r.session))
        .cloned()
        .collect();
    let owed = web_releases::owed(&over);
    if !owed.is_empty() {
        eprintln!(
            "Web session(s) {} are over: rotating the keys released to them ({}).",
            over.iter()
                .map(|r| r.session.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            owed.join(", ")
        );
        let jobs: Vec<Job> = owed.iter().map(|c| Job::keep_class(c)).collect();
        // Not mounted: rotate here under the daemon lock with the account at hand;
        // mounted: the daemon does it.
        let held = match (acct, crate::daemon::lock_home(home)) {
            (Some(a), Ok(lock)) => Some((a, lock)),
            _ => None,
        };
        let lines =
            super::rotate::rotate_many(home, pass, &jobs, crate::account::DEFAULT_BATCH, held)
                .map_err(|e| format!("rotating the keys released to the web: {e}"))?;
        for l in lines {
            eprintln!("{l}");
        }
    }
    let done: Vec<String> = over.iter().map(|r| r.session.clone()).collect();
    web_releases::forget(home, &done).map_err(|e| e.to_string())
}

/// In a mounted drive's daemon process: every `every`, rotates (through the daemon's
/// control socket, as `cirrus sync` does) the keys released to web sessions whose time is
/// up, so a device that stays mounted keeps its promise without a command. The thread
/// ends with the process.
pub fn start_release_watcher(home: &Home, every: std::time::Duration) {
    let home = Home::new(home.root.clone());
    let spawned = std::thread::Builder::new()
        .name("web-releases".into())
        .spawn(move || {
            loop {
                std::thread::sleep(every);
                let due = web_releases::load(&home)
                    .map(|l| !web_releases::over(&l, now(), None).is_empty())
                    .unwrap_or(false);
                if due {
                    rotate_released_mounted(&home);
                }
            }
        });
    if let Err(e) = spawned {
        log::warn!("cannot watch the keys released to the web: {e}");
    }
}

/// After `cirrus sync` on a mounted drive: rotates, through the daemon, the keys released
/// to web sessions whose hour is up. Reported on stderr; a failure is a warning (the
/// record keeps the rotation owed).
pub fn rotate_released_mounted(home: &Home) {
    let list = match web_releases::load(home) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("warning: {e}");
            return;
        }
    };
    let over = web_releases::over(&list, now(), None);
    let pass = PasscodeArgs {
        passcode_file: None,
        password_file: None,
        totp: None,
        passcode_command: None,
        password_command: None,
        ambient: false,
    };
    if let Err(e) = rotate_over(home, &pass, &over, None) {
        eprintln!("warning: {e}; it is tried again at the next sync");
    }
}

/// Changes made on the web wait sealed under a category's current key, and only standard
/// and transit categories take them (FORMAT.md §9f). So before a rotation or `adp on`
/// changes either, they are taken in first. A mounted drive polls through its daemon,
/// which applies them; without a mount the command takes them in itself, under the
/// daemon lock (`maintenance::rotation`), and stops if one cannot be.
pub(super) fn take_web_changes_first(home: &Home, what: &str) -> Result<(), String> {
    use crate::daemon::control;
    let mounted = crate::daemon::lock_home(home).is_err() && control::socket_exists(home);
    if mounted {
        let req = control::Request {
            op: "sync".into(),
            wait: Some(false),
            ..Default::default()
        };
        // Offline, the poll takes nothing in and says so; the command goes on (what
        // waits is taken in once the store is back, or refused if no key opens it).
        match control::exchange(home, &req, &mut |_| {}) {
            Ok(r) if r.error.is_none() => {}
            Ok(r) => log::warn!(
                "{what}: changes made on the web not taken in: {:?}",
                r.error
            ),
            Err(e) => log::warn!("{what}: changes made on the web not taken in: {e}"),
        }
    }
    Ok(())
}
