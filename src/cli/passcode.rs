//! Getting the passcode and the account password without ever echoing them, from the
//! first source that is there, in a documented order (USER-GUIDE "Passcode sources"):
//!
//! 1. `--passcode-file FILE` (first line)
//! 2. `--passcode-command CMD` (run by `/bin/sh -c`; first line of its output; like
//!    gocryptfs `-extpass`)
//! 3. `CIRRUS_PASSCODE_FILE`
//! 4. a systemd credential: `$CREDENTIALS_DIRECTORY/passcode` (`LoadCredential=`)
//! 5. the terminal
//!
//! The account password the same way (`--password-file`, `--password-command`,
//! `CIRRUS_PASSWORD_FILE`, `$CREDENTIALS_DIRECTORY/password`). With no source and no
//! terminal it fails at once, naming the sources: a mount at boot must never hang on a
//! prompt. Sources 3 and 4 are ambient: they stand for this device's passcode (and the
//! account's password), also when `init` or `device add` sets it up, but never for the
//! new secret of a change (`passcode change`, `account password`, a web password), which
//! comes only from the file flag that command names for it or the terminal.

use super::PasscodeArgs;
use crate::keys::Passcode;
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// The most a secret file or command may give: a secret is one line, and a command that
/// pours out more must not fill memory.
const MAX_SECRET_BYTES: u64 = 64 * 1024;

/// How long a passcode command may take to exit once it has printed its line (its exit
/// status decides whether the line counts).
const COMMAND_EXIT_WAIT: Duration = Duration::from_secs(10);

/// Which secret: names its flags, variable and credential.
#[derive(Clone, Copy)]
struct Kind {
    what: &'static str,
    file_flag: &'static str,
    command_flag: &'static str,
    env: &'static str,
    credential: &'static str,
    prompt: &'static str,
    repeat: &'static str,
}

const PASSCODE: Kind = Kind {
    what: "passcode",
    file_flag: "--passcode-file",
    command_flag: "--passcode-command",
    env: "CIRRUS_PASSCODE_FILE",
    credential: "passcode",
    prompt: "Cirrus passcode: ",
    repeat: "Repeat passcode: ",
};

const PASSWORD: Kind = Kind {
    what: "account password",
    file_flag: "--password-file",
    command_flag: "--password-command",
    env: "CIRRUS_PASSWORD_FILE",
    credential: "password",
    prompt: "Account password: ",
    repeat: "Repeat password: ",
};

/// What the process can see besides its flags (a parameter, so the order is tested
/// without touching the real environment).
pub(super) struct Ambient {
    pub env_file: Option<PathBuf>,
    pub credentials_dir: Option<PathBuf>,
    pub terminal: bool,
}

impl Ambient {
    fn of(kind: Kind) -> Ambient {
        let var = |n: &str| {
            std::env::var_os(n)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        Ambient {
            env_file: var(kind.env),
            credentials_dir: var("CREDENTIALS_DIRECTORY"),
            terminal: std::io::stdin().is_terminal(),
        }
    }
}

/// Where the secret was found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Source {
    File(PathBuf),
    Command(String),
    EnvFile(PathBuf),
    Credential(PathBuf),
    Terminal,
}

/// The first source there is, in the documented order; `ambient` says whether sources 3
/// and 4 stand for this secret.
pub(super) fn pick(
    file: Option<&Path>,
    command: Option<&str>,
    ambient: Option<&Ambient>,
    kind_credential: &str,
) -> Option<Source> {
    if let Some(f) = file {
        return Some(Source::File(f.to_path_buf()));
    }
    if let Some(c) = command {
        return Some(Source::Command(c.to_string()));
    }
    let a = ambient?;
    if let Some(f) = &a.env_file {
        return Some(Source::EnvFile(f.clone()));
    }
    if let Some(dir) = &a.credentials_dir {
        let p = dir.join(kind_credential);
        if p.exists() {
            return Some(Source::Credential(p));
        }
    }
    a.terminal.then_some(Source::Terminal)
}

/// The passcode this command unlocks with (or, `confirm`, sets).
pub fn read(args: &PasscodeArgs, confirm: bool) -> Result<Passcode, String> {
    let pc = obtain(
        PASSCODE,
        args.passcode_file.as_deref(),
        args.passcode_command.as_deref(),
        args.ambient,
        confirm,
    )?;
    if pc.expose().is_empty() {
        return Err("the passcode is empty".into());
    }
    Ok(pc)
}

/// The account password of a key service account, from the same kind of sources.
pub fn read_password(args: &PasscodeArgs, confirm: bool) -> Result<Passcode, String> {
    obtain(
        PASSWORD,
        args.password_file.as_deref(),
        args.password_command.as_deref(),
        args.ambient,
        confirm,
    )
}

/// Whether the account password comes from a source other than the terminal: the
/// commands that log in only when given one (`mount`, `status`, ...) ask this, never the
/// terminal.
pub fn password_given(args: &PasscodeArgs) -> bool {
    let amb = args.ambient.then(|| Ambient {
        terminal: false,
        ..Ambient::of(PASSWORD)
    });
    pick(
        args.password_file.as_deref(),
        args.password_command.as_deref(),
        amb.as_ref(),
        PASSWORD.credential,
    )
    .is_some()
}

fn obtain(
    kind: Kind,
    file: Option<&Path>,
    command: Option<&str>,
    ambient: bool,
    confirm: bool,
) -> Result<Passcode, String> {
    let amb = ambient.then(|| Ambient::of(kind));
    let terminal = amb
        .as_ref()
        .map_or_else(|| std::io::stdin().is_terminal(), |a| a.terminal);
    let Some(source) = pick(file, command, amb.as_ref(), kind.credential)
        .or_else(|| terminal.then_some(Source::Terminal))
    else {
        return Err(no_source(kind, ambient));
    };
    match source {
        Source::File(p) | Source::EnvFile(p) | Source::Credential(p) => from_file(kind, &p),
        Source::Command(c) => from_command(kind, &c),
        Source::Terminal => from_terminal(kind, confirm),
    }
}

fn no_source(kind: Kind, ambient: bool) -> String {
    // A new secret's flag depends on the command (`--new-passcode-file`, ...): its --help
    // names it.
    if ambient {
        format!(
            "no {what}: give {file} FILE or {cmd} CMD, set {env}, pass a systemd credential \
             named {cred} (LoadCredential=), or run in a terminal",
            what = kind.what,
            file = kind.file_flag,
            cmd = kind.command_flag,
            env = kind.env,
            cred = kind.credential,
        )
    } else {
        format!(
            "no new {what} given, and no terminal to ask for it (the command's --help names \
             the flag that gives it)",
            what = kind.what,
        )
    }
}

/// The first line of `r`, read up to its newline (a command may keep its output open
/// after it) and kept in zeroized memory throughout; a first line of more than
/// [`MAX_SECRET_BYTES`] is refused (a secret is one line).
fn first_line(mut r: impl Read) -> std::io::Result<Passcode> {
    let mut buf = Zeroizing::new(Vec::with_capacity(MAX_SECRET_BYTES as usize + 4096));
    let mut piece = Zeroizing::new([0u8; 4096]);
    while !buf.contains(&b'\n') {
        if buf.len() as u64 > MAX_SECRET_BYTES {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "more than 64 KiB without a newline (a secret is one line)",
            ));
        }
        let n = match r.read(&mut piece[..]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        buf.extend_from_slice(&piece[..n]);
    }
    let end = buf.iter().position(|b| *b == b'\n').unwrap_or(buf.len());
    let line = std::str::from_utf8(&buf[..end])
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8"))?;
    Ok(Passcode::new(line.to_string()))
}

fn from_file(kind: Kind, p: &Path) -> Result<Passcode, String> {
    let f = std::fs::File::open(p)
        .map_err(|e| format!("cannot read {} file {}: {e}", kind.what, p.display()))?;
    let pc = first_line(f)
        .map_err(|e| format!("cannot read {} file {}: {e}", kind.what, p.display()))?;
    if pc.expose().is_empty() {
        return Err(format!("{} file {} is empty", kind.what, p.display()));
    }
    Ok(pc)
}

/// Runs `cmd` with `/bin/sh -c`, stdin and stderr the terminal's (a command may prompt),
/// and takes the first line of its output. Neither the command, its output nor the
/// secret ever reaches a message; its exit status does.
fn from_command(kind: Kind, cmd: &str) -> Result<Passcode, String> {
    run_command(kind, cmd, COMMAND_EXIT_WAIT)
}

fn run_command(kind: Kind, cmd: &str, exit_wait: Duration) -> Result<Passcode, String> {
    // The command is not shown: it may hold a secret itself (`echo ...`).
    let fail = |why: String| format!("{}: {why}", kind.command_flag);
    let mut child = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(cmd)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("cannot run it: {e}")))?;
    let out = child
        .stdout
        .take()
        .ok_or_else(|| fail("no output pipe".into()))?;
    let read = first_line(out);
    // The pipe is closed now: whatever the command still writes goes nowhere. Its exit
    // status decides, but a command that does not exit (`echo pw; sleep 1d`) must not
    // hold a mount at boot: it gets COMMAND_EXIT_WAIT, then it is killed.
    let deadline = Instant::now()
        + if read.is_ok() {
            exit_wait
        } else {
            Duration::ZERO
        };
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                read.map_err(|e| fail(format!("its output: {e}")))?;
                return Err(fail(format!(
                    "it did not exit within {:.1} s of printing a line; nothing was unlocked",
                    exit_wait.as_secs_f64()
                )));
            }
            Err(e) => return Err(fail(format!("cannot wait for it: {e}"))),
        }
    };
    let pc = read.map_err(|e| fail(format!("its output: {e}")))?;
    if !status.success() {
        return Err(fail(format!("it failed ({status}); nothing was unlocked")));
    }
    if pc.expose().is_empty() {
        return Err(fail(format!(
            "its first line of output is empty (no {})",
            kind.what
        )));
    }
    Ok(pc)
}

fn from_terminal(kind: Kind, confirm: bool) -> Result<Passcode, String> {
    let a = rpassword::prompt_password(kind.prompt)
        .map_err(|e| format!("cannot read the {}: {e}", kind.what))?;
    if confirm {
        let b = rpassword::prompt_password(kind.repeat)
            .map_err(|e| format!("cannot read the {}: {e}", kind.what))?;
        if a != b {
            return Err(format!("the {}s differ; nothing was changed", kind.what));
        }
    }
    Ok(Passcode::new(a))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn amb(env: bool, cred: Option<&Path>, terminal: bool) -> Ambient {
        Ambient {
            env_file: env.then(|| PathBuf::from("/env/file")),
            credentials_dir: cred.map(Path::to_path_buf),
            terminal,
        }
    }

    /// The documented order: flag file, command, variable, credential, terminal; the
    /// ambient sources only for the secret a command unlocks with.
    #[test]
    fn sources_are_taken_in_the_documented_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("passcode"), "from credential\n").unwrap();
        let f = Path::new("/flag/file");
        let all = amb(true, Some(dir.path()), true);
        assert_eq!(
            pick(Some(f), Some("cmd"), Some(&all), "passcode"),
            Some(Source::File(f.into()))
        );
        assert_eq!(
            pick(None, Some("cmd"), Some(&all), "passcode"),
            Some(Source::Command("cmd".into()))
        );
        assert_eq!(
            pick(None, None, Some(&all), "passcode"),
            Some(Source::EnvFile("/env/file".into()))
        );
        let no_env = amb(false, Some(dir.path()), true);
        assert_eq!(
            pick(None, None, Some(&no_env), "passcode"),
            Some(Source::Credential(dir.path().join("passcode")))
        );
        // A credentials directory without this secret's credential: the next source.
        assert_eq!(
            pick(None, None, Some(&no_env), "password"),
            Some(Source::Terminal)
        );
        let nothing = amb(false, None, false);
        assert_eq!(pick(None, None, Some(&nothing), "passcode"), None);
        // Not ambient (a new secret): the variable and credential do not count.
        assert_eq!(pick(None, None, None, "passcode"), None);
    }

    #[test]
    fn a_command_gives_its_first_line_and_its_failure_is_an_error_without_output() {
        let pc = from_command(PASSCODE, "printf 'first line\\nsecond\\n'").unwrap();
        assert_eq!(pc.expose(), "first line");
        let e = from_command(PASSCODE, "echo s3cret-output; exit 3")
            .err()
            .unwrap();
        assert!(
            e.contains("--passcode-command") && e.contains("exit status: 3"),
            "{e}"
        );
        assert!(
            !e.contains("s3cret-output"),
            "the output must not reach a message: {e}"
        );
        let e = from_command(PASSWORD, "true").err().unwrap();
        assert!(e.contains("empty") && e.contains("account password"), "{e}");
        // A command that pours out far more than a secret without a newline, without end:
        // refused, and not waited out.
        let e = from_command(PASSCODE, "tr -d '\\n' < /dev/zero")
            .err()
            .unwrap();
        assert!(e.contains("more than 64 KiB"), "{e}");
        // Lines after the first are never read: a command that keeps printing gets
        // SIGPIPE (so its shell exits with 141, or it dies of the signal), which is a
        // failure like any other.
        let e = from_command(PASSCODE, "yes long-secret").err().unwrap();
        assert!(e.contains("it failed"), "{e}");
        // A command that prints its line and does not exit: killed, refused.
        let t = Instant::now();
        let e = run_command(
            PASSCODE,
            "echo pw; exec sleep 30",
            Duration::from_millis(300),
        )
        .err()
        .unwrap();
        assert!(e.contains("did not exit within 0.3 s"), "{e}");
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "it must not wait for the command"
        );
    }

    #[test]
    fn a_file_gives_its_first_line_and_an_empty_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pc");
        std::fs::write(&p, "line one\r\nline two\n").unwrap();
        assert_eq!(from_file(PASSCODE, &p).unwrap().expose(), "line one");
        std::fs::write(&p, "\nnot the first line\n").unwrap();
        assert!(from_file(PASSCODE, &p).err().unwrap().contains("is empty"));
        let e = from_file(PASSCODE, &dir.path().join("missing"))
            .err()
            .unwrap();
        assert!(e.contains("cannot read passcode file"), "{e}");
    }

    #[test]
    fn with_no_source_the_message_names_every_source() {
        let e = no_source(PASSCODE, true);
        for s in [
            "--passcode-file",
            "--passcode-command",
            "CIRRUS_PASSCODE_FILE",
            "LoadCredential",
            "terminal",
        ] {
            assert!(e.contains(s), "{s} missing from: {e}");
        }
        let e = no_source(PASSWORD, true);
        assert!(e.contains("--password-command") && e.contains("CIRRUS_PASSWORD_FILE"));
    }
}
