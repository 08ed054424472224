//! Mount options the Linux way: `cirrus mount -o KEY[=VALUE],...`, and mount(8)'s helper
//! convention (`mount -t fuse.cirrus HOME MOUNTPOINT -o OPTIONS` runs
//! `mount.fuse.cirrus HOME MOUNTPOINT [-sfnv] -o OPTIONS`, a link to this binary). Both
//! are rewritten into `cirrus mount`'s own flags before the command line is parsed, so an
//! fstab line accepts exactly what `cirrus mount --help` lists, with the same checks.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

/// The names this binary answers to as mount(8)'s helper for type `fuse.cirrus`.
const HELPER_NAMES: [&str; 2] = ["mount.fuse.cirrus", "mount.cirrus"];

/// Options mount(8) and fstab use for themselves, or that only restate Cirrus's defaults
/// (default_permissions: the kernel always checks permissions on a Cirrus drive; async:
/// the default; rw, exec, acl, nosuid and nodev are the defaults too, and cancel an `ro`,
/// `noexec`, `noacl`, `suid` or `dev` before them).
const ACCEPTED: [&str; 17] = [
    "acl",
    "defaults",
    "auto",
    "noauto",
    "nofail",
    "_netdev",
    "user",
    "users",
    "nouser",
    "owner",
    "group",
    "rw",
    "exec",
    "async",
    "nosuid",
    "nodev",
    "default_permissions",
];

/// Options with a name of their own, and the flag each stands for.
const RENAMED: [(&str, &str); 4] = [
    ("ro", "--read-only"),
    ("relatime", "--atime=relatime"),
    ("noatime", "--atime=noatime"),
    ("strictatime", "--atime=strictatime"),
];

/// Flags that are not options: the option list itself, and what is not about the mount
/// (the home is the source of an fstab line).
const NOT_OPTIONS: [&str; 4] = ["options", "help", "version", "home"];

/// What the command line turned into.
pub enum Argv {
    /// Parse these arguments as usual.
    Run(Vec<OsString>),
    /// mount(8)'s `-f` (fake): everything checked, nothing to do.
    Fake,
}

/// Rewrites the process's arguments: the helper's calling convention into `cirrus
/// --home HOME mount MOUNTPOINT`, and each `-o` list into the flags it names.
pub fn rewrite(argv: Vec<OsString>, mount_cmd: &clap::Command) -> Result<Argv, String> {
    let invoked_as = argv
        .first()
        .map(|a| std::path::Path::new(a).file_name().unwrap_or(a.as_os_str()))
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if HELPER_NAMES.contains(&invoked_as.as_str()) {
        return helper(&argv[1..], mount_cmd);
    }
    let Some(at) = mount_position(&argv) else {
        return Ok(Argv::Run(argv));
    };
    let (flags, rest) = take_options(&argv[at + 1..], mount_cmd, false)?;
    let mut out = argv[..=at].to_vec();
    // The -o flags first: a flag given as itself comes later and wins.
    out.extend(flags);
    out.extend(rest);
    Ok(Argv::Run(out))
}

/// The index of the `mount` subcommand, if that is the command.
fn mount_position(argv: &[OsString]) -> Option<usize> {
    let mut i = 1;
    while i < argv.len() {
        let a = argv[i].as_bytes();
        if a == b"--home" {
            i += 2;
            continue;
        }
        if a.starts_with(b"-") {
            i += 1;
            continue;
        }
        return (a == b"mount").then_some(i);
    }
    None
}

/// `mount.fuse.cirrus HOME MOUNTPOINT [-s] [-f] [-n] [-v] [-N NS] [-o OPTIONS] [-t TYPE]`.
fn helper(args: &[OsString], mount_cmd: &clap::Command) -> Result<Argv, String> {
    let usage = "usage: mount.fuse.cirrus HOME MOUNTPOINT [-sfnv] [-o OPTIONS] \
                 (as run by `mount -t fuse.cirrus HOME MOUNTPOINT -o OPTIONS`)";
    let mut positional = Vec::new();
    let mut options = Vec::new();
    let (mut sloppy, mut fake) = (false, false);
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_bytes();
        match a {
            b"-o" | b"-t" | b"-N" => {
                let v = args.get(i + 1).ok_or(format!(
                    "{} needs a value; {usage}",
                    args[i].to_string_lossy()
                ))?;
                match a {
                    b"-o" => options.push(v.clone()),
                    b"-N" => return Err("mount namespaces (-N) are not supported".into()),
                    _ => {}
                }
                i += 2;
                continue;
            }
            _ if a.starts_with(b"-o") => options.push(OsStr::from_bytes(&a[2..]).to_os_string()),
            _ if a.starts_with(b"-") && a.len() > 1 => {
                for &c in &a[1..] {
                    match c {
                        b's' => sloppy = true,
                        b'f' => fake = true,
                        b'n' | b'v' => {}
                        _ => return Err(format!("unknown flag -{}; {usage}", c as char)),
                    }
                }
            }
            _ => positional.push(args[i].clone()),
        }
        i += 1;
    }
    let [home, mountpoint] =
        <[OsString; 2]>::try_from(positional).map_err(|_| usage.to_string())?;
    let mut listed = Vec::new();
    for o in options {
        listed.push(OsString::from("-o"));
        listed.push(o);
    }
    let (flags, _) = take_options(&listed, mount_cmd, sloppy)?;
    if fake {
        return Ok(Argv::Fake);
    }
    let mut out = vec![
        OsString::from("cirrus"),
        OsString::from("--home"),
        home,
        OsString::from("mount"),
    ];
    out.extend(flags);
    out.push(OsString::from("--"));
    out.push(mountpoint);
    Ok(Argv::Run(out))
}

/// Splits `args` (what follows `mount`) into the flags its `-o` lists stand for and
/// the other arguments, in their order.
fn take_options(
    args: &[OsString],
    mount_cmd: &clap::Command,
    sloppy: bool,
) -> Result<(Vec<OsString>, Vec<OsString>), String> {
    let mut flags = Vec::new();
    let mut rest = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_bytes();
        let list: &OsStr = if a == b"--" {
            rest.extend_from_slice(&args[i..]);
            break;
        } else if a == b"-o" || a == b"--options" {
            i += 1;
            args.get(i)
                .ok_or("-o needs a list of options, e.g. -o ro,memory_cache=256M")?
        } else if let Some(v) = a.strip_prefix(b"--options=") {
            OsStr::from_bytes(v)
        } else if let Some(v) = a.strip_prefix(b"-o") {
            OsStr::from_bytes(v)
        } else {
            rest.push(args[i].clone());
            // A flag's separate value is not an option list, even when it reads "-o".
            if let Some(long) = a.strip_prefix(b"--")
                && !long.contains(&b'=')
                && takes_value(mount_cmd, &String::from_utf8_lossy(long))
                && let Some(v) = args.get(i + 1)
            {
                rest.push(v.clone());
                i += 1;
            }
            i += 1;
            continue;
        };
        let list = list
            .to_str()
            .ok_or("mount options must be valid UTF-8")?
            .to_string();
        for opt in split(&list)? {
            // As in mount(8), the later of ro/rw and noexec/exec wins.
            let cancels = match opt.as_str() {
                "rw" => Some("--read-only"),
                "exec" => Some("--noexec"),
                "acl" => Some("--noacl"),
                "nosuid" => Some("--suid"),
                "nodev" => Some("--dev"),
                _ => None,
            };
            if let Some(c) = cancels {
                flags.retain(|f| f != c);
            }
            flags.extend(flag_for(&opt, mount_cmd, sloppy)?);
        }
        i += 1;
    }
    Ok((flags, rest))
}

fn takes_value(cmd: &clap::Command, long: &str) -> bool {
    cmd.get_arguments()
        .find(|a| a.get_long() == Some(long))
        .is_some_and(|a| a.get_action().takes_values())
}

/// Splits an option list at commas outside double quotes (`passcode_command="a, b"`), as
/// mount(8) reads fstab's fourth field; quotes around a whole value are dropped, others
/// kept (`passcode_command=sh -c "x y"`).
fn split(list: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in list.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    if quoted {
        return Err(format!("unbalanced quote in mount options {list:?}"));
    }
    out.push(cur);
    Ok(out
        .into_iter()
        .filter(|o| !o.is_empty())
        .map(|o| match o.split_once('=') {
            Some((k, v)) if v.len() >= 2 && v.starts_with('"') && v.ends_with('"') => {
                format!("{k}={}", &v[1..v.len() - 1])
            }
            _ => o,
        })
        .collect())
}

/// The flags one option stands for: `memory_cache=256M` is `--memory-cache 256M`,
/// `allow_other` is `--allow-other`, `ro` is `--read-only`; fstab's own options are
/// accepted and dropped.
fn flag_for(opt: &str, mount_cmd: &clap::Command, sloppy: bool) -> Result<Vec<OsString>, String> {
    let (key, value) = match opt.split_once('=') {
        Some((k, v)) => (k, Some(v)),
        None => (opt, None),
    };
    if ACCEPTED.contains(&key) || key.starts_with("x-") || key == "comment" {
        return Ok(Vec::new());
    }
    if let Some((_, flag)) = RENAMED.iter().find(|(o, _)| *o == key) {
        return match value {
            None => Ok(vec![OsString::from(*flag)]),
            Some(_) => Err(format!("mount option {key} takes no value")),
        };
    }
    let long = key.replace('_', "-");
    let arg = mount_cmd
        .get_arguments()
        .filter(|a| !a.is_hide_set() && !NOT_OPTIONS.contains(&a.get_long().unwrap_or("")))
        .find(|a| a.get_long() == Some(long.as_str()) && !key.contains('-'));
    let Some(arg) = arg else {
        if sloppy {
            // No logger exists yet this early: straight to stderr.
            eprintln!("cirrus: ignoring unknown mount option {key:?} (mount -s)");
            return Ok(Vec::new());
        }
        return Err(format!(
            "unknown mount option {key:?}: the options are `cirrus mount`'s flags with _ \
             for - (memory_cache=256M, passcode_file=PATH, allow_other, ...), ro, uid, gid, \
             noexec, noacl, suid, dev, noatime, relatime, strictatime, nodiratime and fstab's own (noauto, nofail, _netdev, x-*); see `{}`",
            crate::hint::cmd_hint("mount --help")
        ));
    };
    let flag = OsString::from(format!("--{long}"));
    match (arg.get_action().takes_values(), value) {
        // One argument, so a value that starts with "-" stays a value.
        (true, Some(v)) => Ok(vec![OsString::from(format!("--{long}={v}"))]),
        (true, None) => Err(format!("mount option {key} needs a value ({key}=VALUE)")),
        (false, None) => Ok(vec![flag]),
        (false, Some(_)) => Err(format!("mount option {key} takes no value")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn mount_cmd() -> clap::Command {
        let mut cli = crate::cli::Cli::command();
        cli.build();
        cli.find_subcommand("mount").cloned().unwrap()
    }

    fn args(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    fn run(v: &[&str]) -> Result<Vec<String>, String> {
        match rewrite(args(v), &mount_cmd())? {
            Argv::Run(a) => Ok(a.iter().map(|s| s.to_string_lossy().into_owned()).collect()),
            Argv::Fake => Ok(vec!["FAKE".into()]),
        }
    }

    #[test]
    fn every_visible_mount_flag_is_an_option() {
        let cmd = mount_cmd();
        for a in cmd.get_arguments() {
            let Some(long) = a.get_long() else { continue };
            if a.is_hide_set() || NOT_OPTIONS.contains(&long) {
                continue;
            }
            let key = long.replace('-', "_");
            let opt = if a.get_action().takes_values() {
                format!("{key}=1")
            } else {
                key.clone()
            };
            let flags = flag_for(&opt, &cmd, false).unwrap_or_else(|e| panic!("{opt}: {e}"));
            let flag = flags[0].to_string_lossy();
            assert!(
                flag == format!("--{long}") || flag == format!("--{long}=1"),
                "{opt}: {flag}"
            );
        }
    }

    #[test]
    fn options_become_flags_before_the_given_ones() {
        assert_eq!(
            run(&[
                "cirrus",
                "--home",
                "mount",
                "mount",
                "/m",
                "-o",
                "ro,memory_cache=64M",
                "--threads",
                "3"
            ])
            .unwrap(),
            [
                "cirrus",
                "--home",
                "mount",
                "mount",
                "--read-only",
                "--memory-cache=64M",
                "/m",
                "--threads",
                "3"
            ]
        );
        // Attached forms, and a flag's value that reads like -o.
        assert_eq!(
            run(&[
                "cirrus",
                "mount",
                "-oallow_other",
                "--passcode-command",
                "-o",
                "--options=noexec"
            ])
            .unwrap(),
            [
                "cirrus",
                "mount",
                "--allow-other",
                "--noexec",
                "--passcode-command",
                "-o"
            ]
        );
        // Other commands are left alone.
        assert_eq!(
            run(&["cirrus", "status", "-o", "x"]).unwrap(),
            ["cirrus", "status", "-o", "x"]
        );
    }

    #[test]
    fn fstab_options_are_accepted_and_unknown_ones_named() {
        let got = run(&["cirrus", "mount", "-o", "noauto,nofail,_netdev,x-systemd.automount,defaults,rw,nosuid,nodev,default_permissions,user"]).unwrap();
        assert_eq!(got, ["cirrus", "mount"]);
        assert_eq!(
            run(&["cirrus", "mount", "-o", "noatime,nodiratime,strictatime"]).unwrap(),
            [
                "cirrus",
                "mount",
                "--atime=noatime",
                "--nodiratime",
                "--atime=strictatime"
            ]
        );
        assert!(run(&["cirrus", "mount", "-o", "noatime=1"]).is_err());
        let e = run(&["cirrus", "mount", "-o", "ro,bogus=1"]).unwrap_err();
        assert!(e.contains("unknown mount option \"bogus\""), "{e}");
        let e = run(&["cirrus", "mount", "-o", "memory_cache"]).unwrap_err();
        assert!(e.contains("memory_cache needs a value"), "{e}");
        let e = run(&["cirrus", "mount", "-o", "allow_other=1"]).unwrap_err();
        assert!(e.contains("takes no value"), "{e}");
        // Hidden (benchmark) flags and flag spellings are not options.
        assert!(run(&["cirrus", "mount", "-o", "fuse_caps=none"]).is_err());
        assert!(run(&["cirrus", "mount", "-o", "memory-cache=1G"]).is_err());
        assert!(run(&["cirrus", "mount", "-o", "help"]).is_err());
        assert!(run(&["cirrus", "mount", "-o", "home=/x"]).is_err());
    }

    #[test]
    fn quoted_values_keep_their_commas() {
        assert_eq!(
            run(&[
                "cirrus",
                "mount",
                "-o",
                "passcode_command=\"pass show a,b\",ro"
            ])
            .unwrap(),
            [
                "cirrus",
                "mount",
                "--passcode-command=pass show a,b",
                "--read-only"
            ]
        );
        assert!(run(&["cirrus", "mount", "-o", "passcode_command=\"x"]).is_err());
        // Quotes inside a value stay; a value may start with "-".
        assert_eq!(
            run(&[
                "cirrus",
                "mount",
                "-o",
                "passcode_command=sh -c \"a,b\"",
                "-o",
                "totp=-1"
            ])
            .unwrap(),
            [
                "cirrus",
                "mount",
                "--passcode-command=sh -c \"a,b\"",
                "--totp=-1"
            ]
        );
        // The later of ro/rw and noexec/exec wins.
        assert_eq!(
            run(&["cirrus", "mount", "-o", "ro,noexec,rw"]).unwrap(),
            ["cirrus", "mount", "--noexec"]
        );
        assert_eq!(
            run(&["cirrus", "mount", "-o", "rw,ro,noexec,exec"]).unwrap(),
            ["cirrus", "mount", "--read-only"]
        );
        assert_eq!(
            run(&["cirrus", "mount", "-o", "noacl,acl"]).unwrap(),
            ["cirrus", "mount"]
        );
        assert_eq!(
            run(&["cirrus", "mount", "-o", "acl,noacl"]).unwrap(),
            ["cirrus", "mount", "--noacl"]
        );
        // fstab's `user` implies nosuid,nodev after the options: they win.
        assert_eq!(
            run(&["cirrus", "mount", "-o", "suid,dev,nosuid,nodev"]).unwrap(),
            ["cirrus", "mount"]
        );
        assert_eq!(
            run(&["cirrus", "mount", "-o", "nodev,suid,dev"]).unwrap(),
            ["cirrus", "mount", "--suid", "--dev"]
        );
    }

    #[test]
    fn the_helper_convention_becomes_a_mount_of_that_home() {
        assert_eq!(
            run(&[
                "/sbin/mount.fuse.cirrus",
                "/h",
                "/m",
                "-n",
                "-v",
                "-o",
                "rw,uid=7,passcode_file=/p"
            ])
            .unwrap(),
            [
                "cirrus",
                "--home",
                "/h",
                "mount",
                "--uid=7",
                "--passcode-file=/p",
                "--",
                "/m"
            ]
        );
        assert_eq!(
            run(&["mount.cirrus", "/h", "/m", "-f", "-o", "ro"]).unwrap(),
            ["FAKE"]
        );
        assert!(run(&["mount.fuse.cirrus", "/h", "/m", "-f", "-o", "nope"]).is_err());
        assert_eq!(
            run(&["mount.fuse.cirrus", "/h", "/m", "-s", "-o", "nope,ro"]).unwrap(),
            ["cirrus", "--home", "/h", "mount", "--read-only", "--", "/m"]
        );
        assert!(
            run(&["mount.fuse.cirrus", "/h"])
                .unwrap_err()
                .contains("usage")
        );
        assert!(run(&["mount.fuse.cirrus", "/h", "/m", "-x"]).is_err());
    }
}
