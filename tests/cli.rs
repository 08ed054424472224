//! The command line around a mounted drive: status, one daemon per home, categories.
// A panic is how a test fails: unwrap and expect are its assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::fs;

#[test]
fn status_reports_classes_sizes_and_the_running_daemon() {
    let d = Drive::mount();
    fs::write(d.notes().join("n.txt"), vec![7u8; 300_000]).unwrap();
    let (ok, text) = out(d
        .cirrus_cmd()
        .args(["status", "--passcode-file"])
        .arg(&d.passcode_file));
    assert!(ok, "{text}");
    let line = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} line in:\n{text}"))
            .to_string()
    };
    assert!(line("Health").contains("e2e"), "{text}");
    assert!(line("Notes").contains("standard"), "{text}");
    assert!(
        line("Mail").contains("transit") && line("Mail").contains("UNENCRYPTED"),
        "{text}"
    );
    assert!(
        text.contains("mounted: at"),
        "status must see the running daemon:\n{text}"
    );
    // The write is reported once committed (fsync commits).
    fs::File::open(d.notes().join("n.txt"))
        .unwrap()
        .sync_all()
        .unwrap();
    let (_, text) = out(d
        .cirrus_cmd()
        .args(["status", "--passcode-file"])
        .arg(&d.passcode_file));
    let notes = text
        .lines()
        .find(|l| l.starts_with("Notes"))
        .unwrap()
        .to_string();
    assert!(
        notes.contains("293.0 KiB"),
        "Notes should hold 300000 bytes: {notes}"
    );
}

#[test]
fn status_and_sync_json_give_the_documented_fields_mounted_and_not() {
    let mut d = Drive::mount();
    fs::write(d.notes().join("n.txt"), vec![7u8; 300_000]).unwrap();
    fs::File::open(d.notes().join("n.txt"))
        .unwrap()
        .sync_all()
        .unwrap();
    let st = common::status::status_json(&d);
    assert!(
        st["device"]["name"].as_str().is_some_and(|n| !n.is_empty()),
        "{st:#}"
    );
    assert_eq!(
        st["device"]["id"].as_str().map(str::len),
        Some(16),
        "{st:#}"
    );
    assert!(st["account"]["id"].is_string(), "{st:#}");
    assert!(st["account"]["key_service"].is_null(), "embedded: {st:#}");
    assert_eq!(st["account"]["adp"], false);
    assert_eq!(st["account"]["backup"], false);
    assert!(st["account"]["two_factor"].is_boolean(), "{st:#}");
    assert!(st["store"]["url"].is_string() && st["store"]["dir"].is_string());
    assert!(st["store"]["objects"]["packs"].as_u64() > Some(0), "{st:#}");
    let notes = common::status::category(&st, "Notes");
    assert_eq!(notes["protection"], "standard");
    assert_eq!(notes["state"], "ok");
    assert!(notes["reason"].is_null());
    assert_eq!(notes["key_version"], 1);
    assert_eq!(notes["size_bytes"], 300_000);
    assert_eq!(notes["files"], 1);
    assert!(notes["head"].as_u64() > Some(0), "{notes}");
    assert!(notes["rotation"].is_null());
    assert_eq!(common::status::category(&st, "Health")["protection"], "e2e");
    assert_eq!(
        common::status::category(&st, "Mail")["protection"],
        "transit"
    );
    assert!(
        st["upload"].is_null(),
        "a local store has no upload queue: {st:#}"
    );
    let m = &st["mounted"];
    assert_eq!(m["mountpoint"].as_str(), d.mnt.to_str(), "{st:#}");
    assert!(m["pid"].as_u64().is_some() && m["memory_cache_max_bytes"].as_u64() > Some(0));
    assert!(m["uncommitted_categories"].is_u64(), "{st:#}");

    // `sync --json` through the daemon: committed, and a local store is up to date.
    let mut c = d.cirrus_cmd();
    c.args(["sync", "--wait"]);
    let sy = common::status::json_ok(c);
    assert_eq!(sy["mounted"], true, "{sy:#}");
    assert_eq!(sy["waited"], true);
    assert_eq!(sy["complete"], true);
    assert!(sy["error"].is_null() && sy["pull"].is_null() && sy["upload"].is_null());

    d.unmount();
    let st = common::status::status_json(&d);
    assert!(st["mounted"].is_null(), "{st:#}");
    assert_eq!(
        common::status::category(&st, "Notes")["size_bytes"],
        300_000
    );
    let mut c = d.cirrus_cmd();
    c.arg("sync");
    let sy = common::status::json_ok(c);
    assert_eq!(sy["mounted"], false, "{sy:#}");
    assert_eq!(sy["complete"], true, "{sy:#}");

    // A failure: non-zero exit, the message on stderr, and a JSON error object on stdout.
    let empty = d.root.join("no-home");
    let o = cirrus_command()
        .arg("--home")
        .arg(&empty)
        .args(["sync", "--json"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["version"], 1);
    assert!(
        v["error"].as_str().unwrap().contains("no Cirrus account"),
        "{v}"
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("no Cirrus account"));
}

#[test]
fn a_home_is_served_by_one_daemon_only() {
    let d = Drive::mount();
    let other = d.root.join("second-mnt");
    fs::create_dir(&other).unwrap();
    let (ok, text) = out(d
        .cirrus_cmd()
        .arg("mount")
        .arg(&other)
        .arg("--passcode-file")
        .arg(&d.passcode_file));
    assert!(!ok, "a second daemon on the same home must be refused");
    assert!(text.contains("already mounted"), "{text}");
    assert!(!is_fuse_mount(&other));
}

#[test]
fn categories_can_be_added_and_retired() {
    let mut d = Drive::mount();
    let (ok, text) = out(d
        .cirrus_cmd()
        .args([
            "category",
            "add",
            "Recipes",
            "--class",
            "e2e",
            "--passcode-file",
        ])
        .arg(&d.passcode_file));
    assert!(ok, "{text}");
    let (ok, text) = out(d
        .cirrus_cmd()
        .args(["category", "add", "Recipes", "--passcode-file"])
        .arg(&d.passcode_file));
    assert!(!ok && text.contains("already exists"), "{text}");
    d.remount();
    let r = d.category_path("Recipes");
    fs::write(r.join("soup.txt"), b"salt").unwrap();
    assert_eq!(fs::read(r.join("soup.txt")).unwrap(), b"salt");
    let (ok, text) = out(d
        .cirrus_cmd()
        .args(["category", "list", "--passcode-file"])
        .arg(&d.passcode_file));
    assert!(
        ok && text
            .lines()
            .any(|l| l.starts_with("Recipes") && l.contains("e2e")),
        "{text}"
    );
    let (ok, text) = out(d
        .cirrus_cmd()
        .args(["category", "remove", "Recipes", "--passcode-file"])
        .arg(&d.passcode_file));
    assert!(ok, "{text}");
    d.remount();
    assert!(
        !d.mnt.join("Recipes").exists(),
        "a retired category is not shown"
    );
    // The root itself stays read-only.
    let e = fs::create_dir(d.mnt.join("NewTopLevel")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EPERM));
    // And files cannot move between categories (separate keys).
    fs::write(d.notes().join("m.txt"), b"x").unwrap();
    let e = fs::rename(d.notes().join("m.txt"), d.health().join("m.txt")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EXDEV));
}

#[test]
fn gc_deletes_only_unreferenced_packs_and_only_while_unmounted() {
    let mut d = Drive::mount();
    let keep = pseudo_random(700_000, 1);
    let f = d.notes().join("rewritten.bin");
    fs::write(&f, pseudo_random(700_000, 2)).unwrap();
    fs::File::open(&f).unwrap().sync_all().unwrap();
    fs::write(&f, &keep).unwrap();
    fs::File::open(&f).unwrap().sync_all().unwrap();
    fs::write(d.health().join("stays.txt"), b"e2e data").unwrap();
    // refused while mounted
    let (ok, text) = out(d
        .cirrus_cmd()
        .args(["gc", "--passcode-file"])
        .arg(&d.passcode_file));
    assert!(!ok && text.contains("unmounted"), "{text}");
    d.unmount();
    // Fresh garbage is younger than the default grace period (another device might be
    // about to publish a head naming it): kept.
    let (ok, text) = out(d
        .cirrus_cmd()
        .args(["gc", "--dry-run", "--passcode-file"])
        .arg(&d.passcode_file));
    assert!(ok && text.starts_with("0 unreferenced"), "{text}");
    assert!(
        text.contains("unreferenced and old for the grace period"),
        "{text}"
    );
    // Old enough, but only now found unreferenced: marked, not deleted, until it has
    // stayed unreferenced for the grace period too (an offline device may still name it).
    std::thread::sleep(std::time::Duration::from_secs(3));
    let (ok, text) = out(d
        .cirrus_cmd()
        .args(["gc", "--grace", "2s", "--passcode-file"])
        .arg(&d.passcode_file));
    assert!(ok && text.starts_with("deleted 0 "), "{text}");
    std::thread::sleep(std::time::Duration::from_secs(3));
    let (ok, text) = out(d
        .cirrus_cmd()
        .args(["gc", "--grace", "2s", "--dry-run", "--passcode-file"])
        .arg(&d.passcode_file));
    assert!(
        ok && !text.starts_with("0 "),
        "marked long enough ago: {text}"
    );
    let (ok, text) = out(d
        .cirrus_cmd()
        .args(["gc", "--grace", "0", "--dry-run", "--passcode-file"])
        .arg(&d.passcode_file));
    assert!(ok, "{text}");
    let would: usize = text
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(would >= 1, "the rewritten data must leave garbage: {text}");
    let (ok, text) = out(d
        .cirrus_cmd()
        .args(["gc", "--grace", "0", "--passcode-file"])
        .arg(&d.passcode_file));
    assert!(ok && text.contains(&format!("deleted {would} ")), "{text}");
    let (ok, text) = out(d
        .cirrus_cmd()
        .args(["fsck", "--passcode-file"])
        .arg(&d.passcode_file));
    assert!(
        ok && text.contains("no damage") && !text.contains("not referenced"),
        "{text}"
    );
    d.mount_again();
    assert_bytes_eq(
        &fs::read(d.notes().join("rewritten.bin")).unwrap(),
        &keep,
        "after gc",
    );
    assert_eq!(fs::read(d.health().join("stays.txt")).unwrap(), b"e2e data");
}

// ---- Issue 16, point 5 (and 10): every command and flag a message or the guide names ----
//
// Here rather than in tests/key_flows.rs: these check the whole command-line surface
// against the binary's own `--help`, need no key service or mount, and run in seconds.

/// `cirrus PATH --help`, once per path.
#[derive(Default)]
struct Helps {
    cache: std::collections::HashMap<Vec<String>, Option<String>>,
}

impl Helps {
    /// The help text of a command path, or None when the binary has no such command.
    fn of(&mut self, path: &[String]) -> Option<String> {
        if let Some(h) = self.cache.get(path) {
            return h.clone();
        }
        let o = cirrus_command()
            .args(path)
            .arg("--help")
            .output()
            .expect("run cirrus --help");
        let h = o
            .status
            .success()
            .then(|| String::from_utf8_lossy(&o.stdout).into_owned());
        self.cache.insert(path.to_vec(), h.clone());
        h
    }
}

/// The subcommands a help text lists under "Commands:".
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| l.trim() != "Commands:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// Whether a help text names `flag` (as itself, not as the start of a longer flag).
fn help_names_flag(help: &str, flag: &str) -> bool {
    help.match_indices(flag).any(|(i, _)| {
        !help[i + flag.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '-')
    })
}

/// Checks the words after `cirrus` of one command a message or the guide names: each
/// subcommand must exist, and each `--flag` must be in the help of the command it goes
/// to. Returns what is wrong.
fn check_command(helps: &mut Helps, words: &[&str]) -> Vec<String> {
    let mut path: Vec<String> = Vec::new();
    let mut flags: Vec<String> = Vec::new();
    let mut descending = true;
    let mut after_flag = false;
    let mut problems = Vec::new();
    for w in words {
        if let Some(f) = w.strip_prefix("--") {
            // `--flag=VALUE`, `--flag)`, `--flag,`: the flag's name only.
            let name: String = f
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            let name = name.trim_end_matches('-');
            if !name.is_empty() {
                flags.push(format!("--{name}"));
            }
            after_flag = true;
            continue;
        }
        if descending {
            let Some(help) = helps.of(&path) else {
                problems.push(format!("`cirrus {}` does not exist", path.join(" ")));
                return problems;
            };
            let subs = subcommands(&help);
            if subs.iter().any(|s| s == w) {
                path.push(w.to_string());
                after_flag = false;
                continue;
            }
            if !after_flag && !subs.is_empty() {
                problems.push(format!(
                    "`cirrus {}` has no subcommand {w:?} (it has: {})",
                    path.join(" "),
                    subs.join(", ")
                ));
                return problems;
            }
            if !after_flag {
                descending = false;
            }
        }
        after_flag = false;
    }
    let Some(help) = helps.of(&path) else {
        problems.push(format!("`cirrus {}` does not exist", path.join(" ")));
        return problems;
    };
    for f in flags {
        if f != "--help" && !help_names_flag(&help, &f) {
            problems.push(format!(
                "`cirrus {}` has no option {f} (see `cirrus {} --help`)",
                path.join(" "),
                path.join(" ")
            ));
        }
    }
    problems
}

/// The user-facing text of a Rust source file: its string literals (escapes and `\`
/// line continuations resolved) and its `///` doc comments (clap turns them into
/// `--help`), each with the line it starts on. Plain comments and `//!` module docs are
/// left out: they are not in the binary.
fn user_texts(src: &str) -> Vec<(usize, String)> {
    let c: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut doc: Option<(usize, String)> = None;
    let (mut i, mut line) = (0, 1);
    let ident = |ch: char| ch.is_alphanumeric() || ch == '_';
    while i < c.len() {
        let ch = c[i];
        if ch == '\n' {
            line += 1;
            i += 1;
            continue;
        }
        if ch == '/' && c.get(i + 1) == Some(&'/') {
            let end = (i..c.len()).find(|&j| c[j] == '\n').unwrap_or(c.len());
            let text: String = c[i..end].iter().collect();
            if text.starts_with("///") && !text.starts_with("////") {
                let t = text[3..].trim();
                match &mut doc {
                    Some((_, d)) => {
                        d.push(' ');
                        d.push_str(t);
                    }
                    None => doc = Some((line, t.to_string())),
                }
            } else if let Some(d) = doc.take() {
                out.push(d);
            }
            i = end;
            continue;
        }
        if !ch.is_whitespace()
            && let Some(d) = doc.take()
        {
            out.push(d);
        }
        if ch == '/' && c.get(i + 1) == Some(&'*') {
            let mut j = i + 2;
            while j + 1 < c.len() && !(c[j] == '*' && c[j + 1] == '/') {
                if c[j] == '\n' {
                    line += 1;
                }
                j += 1;
            }
            i = j + 2;
            continue;
        }
        if ch == '\'' {
            // A char literal ('x', '"', '\'', '\u{..}'), else a lifetime or label.
            if c.get(i + 1) == Some(&'\\') {
                let end = (i + 2..c.len()).find(|&j| c[j] == '\'').unwrap_or(c.len());
                i = end + 1;
            } else if c.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                i += 1;
            }
            continue;
        }
        // Raw strings: r"..", r#".."#, br"..".
        if (ch == 'r' || (ch == 'b' && c.get(i + 1) == Some(&'r'))) && (i == 0 || !ident(c[i - 1]))
        {
            let mut j = if ch == 'b' { i + 2 } else { i + 1 };
            let mut hashes = 0;
            while c.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if c.get(j) == Some(&'"') {
                let start_line = line;
                let mut s = String::new();
                j += 1;
                while j < c.len() {
                    if c[j] == '"' && (1..=hashes).all(|k| c.get(j + k) == Some(&'#')) {
                        break;
                    }
                    if c[j] == '\n' {
                        line += 1;
                    }
                    s.push(c[j]);
                    j += 1;
                }
                out.push((start_line, s));
                i = j + 1 + hashes;
                continue;
            }
        }
        if ch == '"' {
            let start_line = line;
            let mut s = String::new();
            let mut j = i + 1;
            while j < c.len() && c[j] != '"' {
                if c[j] == '\n' {
                    line += 1;
                }
                if c[j] == '\\' {
                    j += 1;
                    match c.get(j) {
                        // A continuation: the newline and the next line's indent go.
                        Some('\n') => {
                            line += 1;
                            j += 1;
                            while j < c.len() && c[j].is_whitespace() {
                                if c[j] == '\n' {
                                    line += 1;
                                }
                                j += 1;
                            }
                            continue;
                        }
                        Some('n') => s.push('\n'),
                        Some('t') => s.push('\t'),
                        Some(other) => s.push(*other),
                        None => {}
                    }
                    j += 1;
                    continue;
                }
                s.push(c[j]);
                j += 1;
            }
            out.push((start_line, s));
            i = j + 1;
            continue;
        }
        i += 1;
    }
    if let Some(d) = doc {
        out.push(d);
    }
    out
}

/// The commands a text names: `` `cirrus ...` `` in backquotes, and `cirrus ...` after a
/// colon ("Mount it with: cirrus mount"), as the words after `cirrus`.
fn named_commands(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (i, _) in text.match_indices("`cirrus ") {
        let rest = &text[i + "`cirrus ".len()..];
        found.push(rest[..rest.find('`').unwrap_or(rest.len())].to_string());
    }
    for (i, _) in text.match_indices("cirrus ") {
        if !text[..i].trim_end_matches(' ').ends_with(':') || text[..i].ends_with(':') {
            continue;
        }
        let rest = &text[i + "cirrus ".len()..];
        let rest = &rest[..rest.find(['\n', '`']).unwrap_or(rest.len())];
        // Prose goes on after the command: stop at the first word that ends a clause.
        let mut words = Vec::new();
        for w in rest.split_whitespace() {
            let end = w.ends_with(['.', ',', ';', ')']);
            words.push(w.trim_end_matches(['.', ',', ';', ')']));
            if end {
                break;
            }
        }
        found.push(words.join(" "));
    }
    found
}

#[test]
fn every_command_and_flag_a_message_names_exists() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    files.sort();
    let mut helps = Helps::default();
    let (mut problems, mut checked) = (Vec::new(), 0);
    for f in &files {
        let src = fs::read_to_string(f).unwrap();
        let rel = f.strip_prefix(root).unwrap().display().to_string();
        let mut commands: Vec<(usize, String)> = Vec::new();
        for (line, text) in user_texts(&src) {
            for cmd in named_commands(&text) {
                commands.push((line, cmd));
            }
        }
        // Hints for this device are built by `cmd_hint("ARGS")` (it adds `--home`).
        for (i, _) in src.match_indices("cmd_hint(") {
            let line = src[..i].lines().count();
            let rest = &src[i + "cmd_hint(".len()..];
            let rest = rest
                .trim_start()
                .trim_start_matches("&format!(")
                .trim_start();
            if let Some(lit) = rest.strip_prefix('"') {
                commands.push((line, lit[..lit.find('"').unwrap()].to_string()));
            }
        }
        for (line, cmd) in commands {
            let words: Vec<&str> = cmd.split_whitespace().collect();
            if words.is_empty() {
                continue;
            }
            checked += 1;
            for p in check_command(&mut helps, &words) {
                problems.push(format!("{rel}:{line}: `cirrus {cmd}`: {p}"));
            }
        }
    }
    assert!(
        checked > 30,
        "only {checked} commands found: is the scan broken?"
    );
    assert!(
        problems.is_empty(),
        "messages name commands or options the binary does not have:\n{}",
        problems.join("\n")
    );
}

/// The commands the user guide shows: lines of its code blocks that start with
/// `cirrus ` or `$ cirrus ` (continued over `\` line ends, without `# comments`), and
/// the `` `cirrus ...` `` it quotes in its prose.
fn guide_commands(guide: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut fence: Option<String> = None;
    let mut pending: Option<(usize, String)> = None;
    for (n, l) in guide.lines().enumerate() {
        let t = l.trim();
        if let Some(info) = t.strip_prefix("```") {
            fence = match fence {
                Some(_) => None,
                None => Some(info.to_string()),
            };
            continue;
        }
        let Some(info) = &fence else {
            for cmd in named_commands(l) {
                out.push((n + 1, cmd));
            }
            continue;
        };
        // Output blocks (`text`) and config files (`ini`) hold no commands to run.
        if info == "text" || info == "ini" {
            continue;
        }
        let piece = match t.find(" #") {
            Some(i) => &t[..i],
            None => t,
        };
        let (start, mut cmd) = match pending.take() {
            Some((start, so_far)) => (start, so_far + " " + piece),
            None => {
                let Some(rest) = piece
                    .strip_prefix("$ cirrus ")
                    .or_else(|| piece.strip_prefix("cirrus "))
                else {
                    continue;
                };
                (n + 1, rest.to_string())
            }
        };
        if cmd.ends_with('\\') {
            cmd.pop();
            pending = Some((start, cmd));
        } else {
            out.push((start, cmd));
        }
    }
    out
}

#[test]
fn every_command_and_flag_the_user_guide_shows_exists() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let guide = fs::read_to_string(root.join("docs/USER-GUIDE.md")).unwrap();
    let mut helps = Helps::default();
    let commands = guide_commands(&guide);
    assert!(
        commands.len() > 40,
        "only {} commands found in the guide: is the scan broken?",
        commands.len()
    );
    let mut problems = Vec::new();
    for (line, cmd) in &commands {
        let words: Vec<&str> = cmd.split_whitespace().collect();
        for p in check_command(&mut helps, &words) {
            problems.push(format!("docs/USER-GUIDE.md:{line}: `cirrus {cmd}`: {p}"));
        }
    }
    assert!(
        problems.is_empty(),
        "the user guide shows commands or options the binary does not have:\n{}",
        problems.join("\n")
    );
}

// ---- Issue 16: the messages the user guide quotes are ones the binary prints ----

/// Whether `piece` can be part of what `pattern` prints, `{...}` placeholders standing
/// for any text: a glob match of `piece` against a substring of an expansion, in which at
/// least half of the piece is the pattern's fixed text (so that a bare
/// `"{what}: {e}"` does not vouch for anything).
fn could_print(pattern: &[Seg], piece: &[char]) -> bool {
    // Flatten: Some(c) a fixed character, None a placeholder (any run of characters).
    let p: Vec<Option<char>> = pattern
        .iter()
        .flat_map(|s| match s {
            Seg::Text(t) => t.chars().map(Some).collect::<Vec<_>>(),
            Seg::Any => vec![None],
        })
        .collect();
    // reach[j]: the characters of `piece` read so far can end just before p[j], with at
    // most this many of them matched by fixed text; the piece may start anywhere.
    let mut reach: Vec<Option<usize>> = vec![Some(0); p.len() + 1];
    let better = |a: Option<usize>, b: usize| Some(a.map_or(b, |a| a.max(b)));
    for &ch in piece {
        let mut next: Vec<Option<usize>> = vec![None; p.len() + 1];
        for j in 0..p.len() {
            let Some(fixed) = reach[j] else { continue };
            match p[j] {
                Some(c) if c == ch => next[j + 1] = better(next[j + 1], fixed + 1),
                Some(_) => {}
                None => {
                    next[j] = better(next[j], fixed);
                    next[j + 1] = better(next[j + 1], fixed);
                }
            }
        }
        // A placeholder may also be empty.
        for j in 0..p.len() {
            if let (Some(f), None) = (next[j], p[j]) {
                next[j + 1] = better(next[j + 1], f);
            }
        }
        if next.iter().all(Option::is_none) {
            return false;
        }
        reach = next;
    }
    let best = reach.iter().flatten().max().copied().unwrap_or(0);
    best * 2 >= piece.len()
}

enum Seg {
    Text(String),
    Any,
}

/// A message literal as fixed text and placeholders (`{}`, `{name}`, `{:<8}`).
fn segments(lit: &str) -> Vec<Seg> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut chars = lit.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                text.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                text.push('}');
            }
            '{' => {
                for d in chars.by_ref() {
                    if d == '}' {
                        break;
                    }
                }
                out.push(Seg::Text(std::mem::take(&mut text)));
                out.push(Seg::Any);
            }
            c => text.push(c),
        }
    }
    out.push(Seg::Text(text));
    out
}

/// Whether some literal could print `part`, or (`depth` > 0) `part` splits at a word into
/// two parts of three words or more that could each be printed: messages are built from
/// pieces (`S3 settings from {origin}` with the origin `AWS profile {profile:?} in {}`).
fn printed(literals: &[Vec<Seg>], part: &str, depth: u32) -> bool {
    let chars: Vec<char> = part.chars().collect();
    if literals.iter().any(|lit| could_print(lit, &chars)) {
        return true;
    }
    let words: Vec<&str> = part.split(' ').collect();
    depth > 0
        && (3..words.len().saturating_sub(2)).any(|k| {
            printed(literals, &words[..k].join(" "), depth - 1)
                && printed(literals, &words[k..].join(" "), depth - 1)
        })
}

#[test]
fn every_message_the_user_guide_quotes_is_one_the_binary_prints() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    let mut literals: Vec<Vec<Seg>> = Vec::new();
    for f in &files {
        let src = fs::read_to_string(f).unwrap();
        for (_, text) in user_texts(&src) {
            let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
            literals.push(segments(&one_line));
        }
    }
    let guide = fs::read_to_string(root.join("docs/USER-GUIDE.md")).unwrap();
    let (mut problems, mut checked) = (Vec::new(), 0);
    let mut in_table = false;
    for (n, l) in guide.lines().enumerate() {
        let t = l.trim();
        if !t.starts_with('|') {
            in_table = false;
            continue;
        }
        if t.starts_with("| message |") {
            in_table = true;
            continue;
        }
        if !in_table || t.starts_with("|---") {
            continue;
        }
        // The first cell: the message, in backquotes, "..." where the guide leaves text out.
        let cell = t.trim_start_matches('|').split(" | ").next().unwrap_or("");
        let Some(msg) = cell
            .trim()
            .strip_prefix('`')
            .and_then(|m| m.strip_suffix('`'))
        else {
            problems.push(format!(
                "USER-GUIDE.md:{}: message not in backquotes",
                n + 1
            ));
            continue;
        };
        // A message is made of parts joined by ": " (what failed: why); each part of three
        // words or more must be printable by one literal.
        for frag in msg.split("...") {
            for part in frag.split(": ") {
                let part = part.trim();
                if part.split_whitespace().count() < 3 {
                    continue;
                }
                checked += 1;
                if !printed(&literals, part, 2) {
                    problems.push(format!(
                        "USER-GUIDE.md:{}: no message in src/ prints {part:?}",
                        n + 1
                    ));
                }
            }
        }
    }
    assert!(
        checked > 15,
        "only {checked} quoted messages found: is the scan broken?"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Passcode sources (USER-GUIDE "Passcode sources"): a command, the variable and a
/// systemd credential each unlock; the flags come before the variable; a failing command
/// is an error that does not show its output; and with no source and no terminal the
/// command fails at once, naming the sources.
#[test]
fn passcode_sources_are_taken_in_order_and_none_fails_at_once() {
    let mut d = Drive::mount();
    // Unmounted: a mounted drive's `status` asks its daemon and reads no passcode.
    d.unmount();
    let good = d.passcode_file.clone();
    let wrong = d.root.join("wrong-passcode");
    fs::write(&wrong, "not the passcode\n").unwrap();
    let creds = d.root.join("credentials");
    fs::create_dir(&creds).unwrap();
    fs::copy(&good, creds.join("passcode")).unwrap();
    let status = |args: &[&str], env: &[(&str, &std::path::Path)]| {
        let mut c = d.cirrus_cmd();
        c.arg("status")
            .args(args)
            .env_remove("CIRRUS_PASSCODE_FILE")
            .env_remove("CREDENTIALS_DIRECTORY")
            .stdin(std::process::Stdio::null());
        for (k, v) in env {
            c.env(k, v);
        }
        out(c)
    };
    let cat = |p: &std::path::Path| format!("cat '{}'", p.display());
    let (ok, text) = status(&["--passcode-command", &cat(&good)], &[]);
    assert!(ok && text.contains("Notes"), "--passcode-command:\n{text}");
    let (ok, text) = status(&[], &[("CIRRUS_PASSCODE_FILE", &good)]);
    assert!(ok, "CIRRUS_PASSCODE_FILE:\n{text}");
    let (ok, text) = status(&[], &[("CREDENTIALS_DIRECTORY", &creds)]);
    assert!(ok, "systemd credential:\n{text}");
    // Order: the flag file before the command, the command before the variable.
    let (ok, text) = status(
        &[
            "--passcode-file",
            good.to_str().unwrap(),
            "--passcode-command",
            &cat(&wrong),
        ],
        &[],
    );
    assert!(
        ok,
        "--passcode-file must win over --passcode-command:\n{text}"
    );
    let (ok, text) = status(
        &["--passcode-command", &cat(&wrong)],
        &[
            ("CIRRUS_PASSCODE_FILE", &good),
            ("CREDENTIALS_DIRECTORY", &creds),
        ],
    );
    assert!(
        !ok,
        "--passcode-command must win over the variable:\n{text}"
    );
    let (ok, text) = status(
        &[],
        &[
            ("CIRRUS_PASSCODE_FILE", &wrong),
            ("CREDENTIALS_DIRECTORY", &creds),
        ],
    );
    assert!(!ok, "the variable must win over the credential:\n{text}");
    // A failing command: its status, never its output.
    let (ok, text) = status(&["--passcode-command", "echo leaked-output; exit 7"], &[]);
    assert!(!ok && text.contains("exit status: 7"), "{text}");
    assert!(!text.contains("leaked-output"), "{text}");
    // No source, no terminal: an error at once that names every source.
    let t = std::time::Instant::now();
    let (ok, text) = status(&[], &[]);
    assert!(!ok, "{text}");
    for s in [
        "--passcode-file",
        "--passcode-command",
        "CIRRUS_PASSCODE_FILE",
        "LoadCredential",
        "terminal",
    ] {
        assert!(text.contains(s), "the error must name {s}:\n{text}");
    }
    assert!(
        t.elapsed() < std::time::Duration::from_secs(20),
        "it must not wait for a prompt"
    );
}

/// `scripts/man` (what the package ships): a man page for cirrus and for every command
/// `--help` lists, each rendered by `man -l` without a warning (the script checks), and
/// completion scripts for bash (which bash parses), zsh and fish that know the commands.
#[test]
fn man_pages_and_completions_cover_every_command_and_render_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let bin = cirrus_bin();
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let (ok, text) = out(std::process::Command::new("bash")
        .arg(repo.join("scripts/man"))
        .arg("--cirrus")
        .arg(&bin)
        .arg(dir.path()));
    assert!(ok, "scripts/man:\n{text}");
    let pages = dir.path().join("man/man1");
    let (_, help) = out(cirrus_command().arg("--help"));
    let commands = subcommands(&help);
    assert!(commands.len() > 15, "{help}");
    for c in commands.iter().filter(|c| *c != "help") {
        assert!(
            pages.join(format!("cirrus-{c}.1")).is_file(),
            "no man page for {c}"
        );
    }
    assert!(pages.join("cirrus.1").is_file());
    assert!(
        pages.join("cirrus-device-add.1").is_file(),
        "nested commands get pages"
    );
    assert!(
        !pages.join("cirrus-manpages.1").exists(),
        "the hidden command gets none"
    );
    let comp = dir.path().join("completions");
    let bash = fs::read_to_string(comp.join("cirrus.bash")).unwrap();
    let (ok, text) = out(std::process::Command::new("bash")
        .arg("-n")
        .arg(comp.join("cirrus.bash")));
    assert!(ok, "bash cannot parse the completion script:\n{text}");
    let zsh = fs::read_to_string(comp.join("_cirrus")).unwrap();
    let fish = fs::read_to_string(comp.join("cirrus.fish")).unwrap();
    assert!(
        zsh.starts_with("#compdef cirrus"),
        "{}",
        &zsh[..zsh.len().min(200)]
    );
    for c in ["mount", "status", "passcode", "rotate"] {
        assert!(
            bash.contains(c) && zsh.contains(c) && fish.contains(c),
            "{c} missing"
        );
    }
    assert!(fish.contains("complete -c cirrus"));
    assert!(
        bash.contains("--passcode-command"),
        "flags are completed too"
    );
}

/// `cirrus mount --foreground` under a service manager (`Type=notify`): READY=1 with a
/// status once mounted, STOPPING=1 on SIGTERM, then a clean unmount and exit 0. The
/// test binds the datagram socket systemd would, as NOTIFY_SOCKET.
#[test]
fn a_foreground_mount_speaks_the_notify_protocol() {
    use std::os::unix::net::UnixDatagram;
    let mut d = Drive::mount();
    if d.is_plain() {
        return;
    }
    d.unmount();
    let sock_path = d.root.join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    let log_path = d.root.join("foreground.log");
    let log = fs::File::create(&log_path).unwrap();
    let mut child = d
        .cirrus_cmd()
        .arg("mount")
        .arg(&d.mnt)
        .arg("--foreground")
        .arg("--passcode-file")
        .arg(&d.passcode_file)
        .env("NOTIFY_SOCKET", &sock_path)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let recv = |what: &str| -> String {
        let mut buf = [0u8; 4096];
        loop {
            // A receive with a timeout is never restarted after a signal (signal(7)):
            // EINTR from a signal caught elsewhere in the test process is no answer.
            let n = match sock.recv(&mut buf) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                r => r.unwrap_or_else(|e| {
                    let log = fs::read_to_string(&log_path).unwrap_or_default();
                    panic!("no {what} from the daemon ({e}); its output:\n{log}")
                }),
            };
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            if msg.contains(what) {
                return msg;
            }
        }
    };
    let ready = recv("READY=1");
    assert!(ready.contains("STATUS=mounted at "), "{ready}");
    d.mark_mounted();
    fs::write(d.notes().join("before-stop.txt"), b"kept").unwrap();
    // SAFETY: kill with a pid we spawned.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let stopping = recv("STOPPING=1");
    assert!(stopping.contains("STOPPING=1"), "{stopping}");
    let status = child.wait().unwrap();
    assert!(status.success(), "the daemon exited with {status}");
    d.mark_unmounted();
    assert!(!is_fuse_mount(&d.mnt), "still mounted after SIGTERM");
    d.mount_again();
    assert_eq!(
        fs::read(d.notes().join("before-stop.txt")).unwrap(),
        b"kept"
    );
}

/// The systemd units shipped in scripts/systemd pass `systemd-analyze verify` with the
/// binary's path filled in, as scripts/package installs them (the test machines do not
/// run systemd as PID 1: the units are verified, not started; the notify protocol has a
/// test of its own above).
#[test]
fn the_systemd_units_verify_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let bin = cirrus_bin();
    for unit in ["cirrus-mount@.service", "cirrus-serve.service"] {
        let text = fs::read_to_string(repo.join("scripts/systemd").join(unit)).unwrap();
        assert!(
            text.contains("@CIRRUS@"),
            "{unit} names the binary as @CIRRUS@"
        );
        let filled = text.replace("@CIRRUS@", bin.to_str().unwrap());
        fs::write(dir.path().join(unit), filled).unwrap();
    }
    for (unit, user) in [
        ("cirrus-mount@srv-drive.service", true),
        ("cirrus-serve.service", false),
    ] {
        let mut c = std::process::Command::new("systemd-analyze");
        if user {
            c.arg("--user");
        }
        c.args(["verify", "--man=no"])
            .arg(dir.path().join(unit))
            .env("XDG_RUNTIME_DIR", dir.path())
            .current_dir(dir.path());
        let (ok, text) = out(c);
        assert!(
            ok && text.trim().is_empty(),
            "systemd-analyze verify {unit}:\n{text}"
        );
    }
}

/// `scripts/package` builds a Debian package that installs the binary, its man pages,
/// completions, systemd units and docs, runs from /usr/bin, and is removed cleanly.
/// (It refuses to touch a machine that already has a cirrus package installed.)
#[test]
fn the_debian_package_installs_and_removes_cleanly() {
    let installed = std::process::Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", "cirrus"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&installed.stdout).contains("installed"),
        "a cirrus package is installed on this machine already: this test would replace it"
    );
    let dir = tempfile::tempdir().unwrap();
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let o = std::process::Command::new("bash")
        .arg(repo.join("scripts/package"))
        .arg("--cirrus")
        .arg(cirrus_bin())
        .arg("--out")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "scripts/package:\n{}", text(&o));
    let deb = String::from_utf8_lossy(&o.stdout).trim().to_string();
    let (ok, contents) = out(std::process::Command::new("dpkg-deb").args(["--contents", &deb]));
    assert!(ok, "{contents}");
    for f in [
        "./usr/bin/cirrus",
        "./usr/share/man/man1/cirrus.1.gz",
        "./usr/share/man/man1/cirrus-mount.1.gz",
        "./usr/share/bash-completion/completions/cirrus",
        "./usr/share/zsh/vendor-completions/_cirrus",
        "./usr/share/fish/vendor_completions.d/cirrus.fish",
        "./usr/lib/systemd/user/cirrus-mount@.service",
        "./usr/lib/systemd/system/cirrus-serve.service",
        "./usr/share/doc/cirrus/USER-GUIDE.md.gz",
    ] {
        assert!(
            contents.contains(f),
            "{f} missing from the package:\n{contents}"
        );
    }
    let (ok, info) = out(std::process::Command::new("dpkg-deb").args(["--field", &deb, "Depends"]));
    assert!(ok && info.contains("fuse3"), "{info}");
    let (ok, text) = out(std::process::Command::new("dpkg").args(["-i", &deb]));
    assert!(ok, "dpkg -i:\n{text}");
    let (ok, version) = out(std::process::Command::new("/usr/bin/cirrus").arg("--version"));
    let unit = fs::read_to_string("/usr/lib/systemd/system/cirrus-serve.service");
    let mounted = mount_through_fstab();
    let (removed, rtext) = out(std::process::Command::new("dpkg").args(["-r", "cirrus"]));
    mounted.unwrap();
    assert!(ok && version.starts_with("cirrus "), "{version}");
    assert!(unit.unwrap().contains("ExecStart=/usr/bin/cirrus serve"));
    assert!(removed, "dpkg -r:\n{rtext}");
    assert!(
        !std::path::Path::new("/usr/bin/cirrus").exists(),
        "the binary stays"
    );
    assert!(!std::path::Path::new("/usr/share/man/man1/cirrus.1.gz").exists());
    assert!(!std::path::Path::new("/usr/sbin/mount.fuse.cirrus").exists());
}

/// With the package installed: a drive mounted by `mount --fstab FILE -a` through an fstab
/// line of its own (never the machine's /etc/fstab), through the installed helper, and
/// unmounted with `umount`, keeping what was written.
fn mount_through_fstab() -> Result<(), String> {
    let mut d = Drive::mount();
    if d.is_plain() {
        return Ok(());
    }
    d.unmount();
    let fstab = d.root.join("fstab");
    let line = format!(
        "{} {} fuse.cirrus nofail,_netdev,x-systemd.automount,memory_cache=64M,\
         commit_interval=3600,passcode_file={} 0 0\n",
        d.home.display(),
        d.mnt.display(),
        d.passcode_file.display()
    );
    fs::write(&fstab, line).unwrap();
    let mount_all = || {
        out(std::process::Command::new("mount")
            .arg("--fstab")
            .arg(&fstab)
            .arg("-a")
            .env_remove("CIRRUS_HOME"))
    };
    let (ok, t) = mount_all();
    if !ok || !is_fuse_mount(&d.mnt) {
        return Err(format!("mount --fstab FILE -a:\n{t}"));
    }
    d.mark_mounted();
    let pid = daemon_pid(&d);
    fs::write(d.notes().join("from-fstab.txt"), b"fstab").unwrap();
    let (ok, t) = out(std::process::Command::new("umount").arg(&d.mnt));
    if !ok {
        return Err(format!("umount:\n{t}"));
    }
    wait_exited(pid);
    d.mark_unmounted();
    // Mounted again through the same line: the file was committed by the unmount.
    let (ok, t) = mount_all();
    if !ok {
        return Err(format!("mount --fstab FILE -a, again:\n{t}"));
    }
    d.mark_mounted();
    let back = fs::read(d.notes().join("from-fstab.txt")).map_err(|e| e.to_string())?;
    d.unmount();
    (back == b"fstab")
        .then_some(())
        .ok_or("the file written before umount was lost".to_string())
}

/// Waits until process `pid` is gone (a daemon finishing its last commit after an
/// unmount made by the system's tools).
fn wait_exited(pid: i32) {
    // SAFETY: existence check only.
    eventually(
        "the daemon exits",
        std::time::Duration::from_secs(120),
        || unsafe { libc::kill(pid, 0) != 0 },
    );
}

/// `cirrus mount -o` with fstab's syntax; the system's `umount` and `fusermount3 -u` each
/// leave nothing uncommitted (the commit interval is an hour: only the unmount commits);
/// `-o ro` serves the drive, refuses every change with EROFS, writes nothing to the store
/// and says so in `status`, which a mounted drive answers without its passcode.
#[test]
fn mount_options_system_unmounts_and_read_only() {
    let mut d = Drive::mount();
    if d.is_plain() {
        return;
    }
    d.unmount();
    let mount = |d: &Drive, opts: &str| {
        out(d
            .cirrus_cmd()
            .arg("mount")
            .arg(&d.mnt)
            .args(["-o", opts])
            .stdin(std::process::Stdio::null()))
    };
    let (ok, t) = mount(&d, "memory_cache=64M,bogus_opt=1");
    assert!(
        !ok && t.contains("unknown mount option \"bogus_opt\""),
        "{t}"
    );
    assert!(!is_fuse_mount(&d.mnt));
    let opts = format!(
        "passcode_file={},commit_interval=3600,memory_cache=64M,nofail,_netdev",
        d.passcode_file.display()
    );
    for tool in [&["umount"][..], &["fusermount3", "-u"][..]] {
        let (ok, t) = mount(&d, &opts);
        assert!(ok, "{t}");
        d.mark_mounted();
        let pid = daemon_pid(&d);
        fs::write(d.notes().join(format!("by-{}.txt", tool[0])), tool[0]).unwrap();
        let (ok, t) = out(std::process::Command::new(tool[0])
            .args(&tool[1..])
            .arg(&d.mnt));
        assert!(ok, "{tool:?}: {t}");
        wait_exited(pid);
        d.mark_unmounted();
    }
    let store = d.home.join("store");
    let before = accounts::snapshot(&store);
    let (ok, t) = mount(&d, &format!("ro,{opts}"));
    assert!(ok, "{t}");
    d.mark_mounted();
    for tool in ["umount", "fusermount3"] {
        assert_eq!(
            fs::read_to_string(d.notes().join(format!("by-{tool}.txt"))).unwrap(),
            tool,
            "what was written before `{tool}` was not committed"
        );
    }
    let refused = [
        fs::write(d.notes().join("new.txt"), b"x").unwrap_err(),
        fs::write(d.notes().join("by-umount.txt"), b"x").unwrap_err(),
        fs::create_dir(d.notes().join("dir")).unwrap_err(),
        fs::remove_file(d.notes().join("by-umount.txt")).unwrap_err(),
    ];
    for e in refused {
        assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{e}");
    }
    // A mounted drive's status needs no passcode: the daemon answers on its socket (no
    // passcode source here, and no terminal: an unlock would fail at once).
    let no_passcode = |args: &[&str]| {
        let mut c = d.cirrus_cmd();
        c.args(args)
            .env_remove("CIRRUS_PASSCODE_FILE")
            .env_remove("CREDENTIALS_DIRECTORY")
            .stdin(std::process::Stdio::null());
        run_ok(&mut c)
    };
    let status = no_passcode(&["status"]);
    assert!(
        status.contains("(read-only: nothing is written"),
        "{status}"
    );
    assert!(status.contains("Notes "), "{status}");
    let json: serde_json::Value =
        serde_json::from_str(&no_passcode(&["status", "--json"])).unwrap();
    assert_eq!(json["mounted"]["read_only"], true, "{json}");
    let notes = json["categories"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "Notes")
        .unwrap();
    assert_eq!(notes["files"], 2, "{json}");
    let (ok, t) = out(d.cirrus_cmd().arg("sync"));
    assert!(!ok && t.contains("mounted read-only"), "{t}");
    d.unmount();
    assert!(
        accounts::snapshot(&store) == before,
        "a read-only mount changed the store"
    );
}

/// `-o uid=` in a root-started mount (an fstab line at boot): the daemon runs as that
/// user, the mount is theirs, what it writes in the home stays theirs, and their
/// programs use the drive while root (without allow_other) cannot.
#[test]
fn a_root_mount_with_uid_serves_the_drive_as_that_user() {
    use std::os::unix::fs::MetadataExt;
    let mut d = Drive::blank();
    if d.is_plain() {
        return;
    }
    // Never mounted before: the categories' folders are made by the first mount, as the
    // user it runs as.
    d.init();
    let user = test_user();
    for p in [&d.home, &d.mnt, &d.passcode_file] {
        let (ok, t) = out(std::process::Command::new("chown")
            .arg("-R")
            .arg(format!("{}:{}", user.uid, user.gid))
            .arg(p));
        assert!(ok, "{t}");
    }
    let (ok, t) = out(d
        .cirrus_cmd()
        .arg("mount")
        .arg(&d.mnt)
        .arg("-o")
        .arg(format!(
            "uid={},passcode_file={},memory_cache=64M",
            user.uid,
            d.passcode_file.display()
        ))
        .stdin(std::process::Stdio::null()));
    assert!(ok, "{t}");
    d.mark_mounted();
    let pid = daemon_pid(&d);
    let proc_status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let ids = |key: &str| {
        proc_status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap()
            .split_whitespace()
            .map(|n| n.parse::<u32>().unwrap())
            .collect::<Vec<_>>()
    };
    assert!(ids("Uid:").iter().all(|&u| u == user.uid), "{proc_status}");
    assert!(ids("Gid:").iter().all(|&g| g == user.gid), "{proc_status}");
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap();
    let line = mounts
        .lines()
        .find(|l| l.contains(d.mnt.to_str().unwrap()))
        .unwrap();
    assert!(line.contains(&format!("user_id={}", user.uid)), "{line}");
    // Not `d.notes()`: root cannot even look (checked below).
    let file = d.mnt.join("Notes").join("theirs.txt");
    let (ok, t) = out(runuser(&user, "sh").arg("-c").arg(format!(
        "echo mine > '{}' && cat '{}'",
        file.display(),
        file.display()
    )));
    assert!(ok && t.contains("mine"), "{t}");
    // Root is not let in: the mount is the user's alone.
    assert!(fs::read_dir(&d.mnt).is_err());
    for e in fs::read_dir(d.home.join("run")).unwrap() {
        let e = e.unwrap();
        assert_eq!(
            e.metadata().unwrap().uid(),
            user.uid,
            "{}",
            e.path().display()
        );
    }
    assert_eq!(
        fs::metadata(d.home.join("cirrus.log")).unwrap().uid(),
        user.uid
    );
    let (ok, t) = out(std::process::Command::new("umount").arg(&d.mnt));
    assert!(ok, "{t}");
    wait_exited(pid);
    d.mark_unmounted();
    // Root without uid=: refused, it would leave root's files in the user's home.
    let (ok, t) = out(d
        .cirrus_cmd()
        .arg("mount")
        .arg(&d.mnt)
        .arg("--passcode-file")
        .arg(&d.passcode_file)
        .stdin(std::process::Stdio::null()));
    assert!(
        !ok && t.contains(&format!("belongs to uid {}", user.uid)),
        "{t}"
    );
    assert!(!is_fuse_mount(&d.mnt));
    // Not root: another user's ids are refused.
    let (ok, t) = out(runuser(&user, cirrus_bin())
        .arg("--home")
        .arg(&d.home)
        .args(["mount", "-o", "uid=0"])
        .arg(&d.mnt));
    assert!(!ok && t.contains("need root"), "{t}");
}
