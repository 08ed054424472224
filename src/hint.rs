//! Hints that name a command to run next on this device ("run `cirrus sync`"): they carry
//! the `--home DIR` the user gave on the command line, so that the hint, copied as shown,
//! reaches the same home. The CLI records that home once at start ([`set_home_flag`]);
//! every message that names a command for this device builds it with [`cmd_hint`].
//!
//! A leaf module (it uses nothing of the crate), so any layer may name a command. Hints for
//! another device (`device approve CODE` on the trusted one, a contact's `recovery-contact
//! accept`) or for the server's admin stay plain `cirrus ...` text: this home is not theirs.

use std::path::Path;
use std::sync::OnceLock;

/// The `--home` argument as the shell needs it, when this run was given one.
static HOME_FLAG: OnceLock<String> = OnceLock::new();

/// Records that this run was given `--home DIR` on the command line (not through
/// `CIRRUS_HOME`, which the next command inherits anyway) for a home other than the
/// default. Later calls are ignored.
pub fn set_home_flag(home: &Path) {
    let _ = HOME_FLAG.set(shell_word(&home.to_string_lossy()));
}

/// The command `cirrus` with ARGS, and with `--home DIR` before them when this run was
/// given one (see [`set_home_flag`]).
pub fn cmd_hint(args: &str) -> String {
    match HOME_FLAG.get() {
        Some(h) => format!("cirrus --home {h} {args}"),
        None => format!("cirrus {args}"),
    }
}

/// `s` as one shell word: as is when it holds only characters no shell treats specially,
/// else in single quotes.
fn shell_word(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@%".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Bytes as a person reads them: `512 B`, `3.4 MiB` (in hints and in every message that
/// counts bytes, from the daemon's log to the commands' output).
pub fn human(n: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < units.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", units[i])
    }
}

#[cfg(test)]
mod tests {
    use super::shell_word;

    #[test]
    fn homes_are_quoted_only_when_the_shell_needs_it() {
        assert_eq!(shell_word("/tmp/a-b_c.d"), "/tmp/a-b_c.d");
        assert_eq!(shell_word("/tmp/my home"), "'/tmp/my home'");
        assert_eq!(shell_word("/tmp/it's"), r"'/tmp/it'\''s'");
    }
}
