//! Getting the passcode: from a file (scripts) or the terminal (people), never echoed.

use super::PasscodeArgs;
use crate::keys::Passcode;
use std::io::IsTerminal;

pub fn read(args: &PasscodeArgs, confirm: bool) -> Result<Passcode, String> {
    if let Some(p) = &args.passcode_file {
        let text = std::fs::read_to_string(p)
            .map_err(|e| format!("cannot read passcode file {}: {e}", p.display()))?;
        let first = text.lines().next().unwrap_or("").to_string();
        let pc = Passcode::new(first);
        if pc.expose().is_empty() {
            return Err(format!("passcode file {} is empty", p.display()));
        }
        return Ok(pc);
    }
    if !std::io::stdin().is_terminal() {
        return Err(
            "no passcode: pass --passcode-file FILE (or CIRRUS_PASSCODE_FILE), or run in a terminal"
                .into(),
        );
    }
    let a = rpassword::prompt_password("Cirrus passcode: ")
        .map_err(|e| format!("cannot read the passcode: {e}"))?;
    if confirm {
        let b = rpassword::prompt_password("Repeat passcode: ")
            .map_err(|e| format!("cannot read the passcode: {e}"))?;
        if a != b {
            return Err("the passcodes differ; nothing was created".into());
        }
    }
    let pc = Passcode::new(a);
    if pc.expose().is_empty() {
        return Err("the passcode is empty".into());
    }
    Ok(pc)
}

/// The account password of a key service account: from `--password-file`, else asked.
pub fn read_password(args: &PasscodeArgs, confirm: bool) -> Result<Passcode, String> {
    if let Some(p) = &args.password_file {
        let text = std::fs::read_to_string(p)
            .map_err(|e| format!("cannot read password file {}: {e}", p.display()))?;
        let pw = Passcode::new(text.lines().next().unwrap_or("").to_string());
        if pw.expose().is_empty() {
            return Err(format!("password file {} is empty", p.display()));
        }
        return Ok(pw);
    }
    if !std::io::stdin().is_terminal() {
        return Err(
            "no account password: pass --password-file FILE (or CIRRUS_PASSWORD_FILE)".into(),
        );
    }
    let a = rpassword::prompt_password("Account password: ")
        .map_err(|e| format!("cannot read the password: {e}"))?;
    if confirm {
        let b = rpassword::prompt_password("Repeat password: ")
            .map_err(|e| format!("cannot read the password: {e}"))?;
        if a != b {
            return Err("the passwords differ".into());
        }
    }
    Ok(Passcode::new(a))
}
