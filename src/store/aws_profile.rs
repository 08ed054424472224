//! Finds an S3 store's keys and region the way the AWS tools do: the environment first,
//! then the shared files `~/.aws/credentials` and `~/.aws/config` (named profiles).
//!
//! The files are INI in the dialect botocore reads (Python `configparser`, strict): `[name]`
//! sections, `key = value` (or `key: value`) lines, `#`/`;` comment lines, and indented
//! lines that continue the previous key (the nested `s3 =` block of the config file). The
//! parser is written here, not taken from a crate: no INI crate is in this machine's
//! package lists or cargo cache, and a generic one would still need these AWS rules on top
//! (continuation lines, `[profile NAME]` in one file but `[NAME]` in the other, no inline
//! comments in values, which a secret may contain). It is one pure function over `&str`.
//!
//! Everything is looked up through an `env` function, not `std::env`, so tests can pass
//! their own environment instead of changing the process-wide one.

use super::StoreError;
use rusty_s3::Credentials;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// Reads one environment variable; `None` when unset.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// A variable that is set and not blank (the AWS SDKs treat blank as unset, so a caller
/// can mask an inherited variable with an empty one).
fn var(env: Env, name: &str) -> Option<String> {
    env(name).filter(|v| !v.trim().is_empty())
}

/// One section's keys (lowercased, as `configparser` does) and values. Values are zeroized
/// on drop: in the credentials file they are secrets.
type Section = BTreeMap<String, Zeroizing<String>>;

/// A parsed INI file: section name (as written, trimmed) to its keys. No `Debug`: it holds
/// secrets.
pub struct IniFile {
    sections: BTreeMap<String, Section>,
}

impl IniFile {
    /// Parses `text`. The error is `line N: what` and never quotes the line, which may hold
    /// a secret.
    pub fn parse(text: &str) -> Result<IniFile, String> {
        let mut sections: BTreeMap<String, Section> = BTreeMap::new();
        let mut current: Option<String> = None;
        // Whether an indented line may continue a value (there is a key just above it).
        let mut in_value = false;
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        for (i, raw) in text.lines().enumerate() {
            let n = i + 1;
            let line = raw.trim();
            if line.is_empty() {
                continue;
            }
            if line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if raw.starts_with([' ', '\t']) && in_value {
                // A continuation of the key above (a nested block such as `s3 =`): not a
                // key of the section itself.
                continue;
            }
            if let Some(rest) = line.strip_prefix('[') {
                let Some((name, after)) = rest.split_once(']') else {
                    return Err(format!("line {n}: `[` without a closing `]`"));
                };
                let after = after.trim();
                if !(after.is_empty() || after.starts_with('#') || after.starts_with(';')) {
                    return Err(format!("line {n}: text after a section header"));
                }
                let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
                if name.is_empty() {
                    return Err(format!("line {n}: empty section name"));
                }
                if sections.contains_key(&name) {
                    return Err(format!("line {n}: section [{name}] appears twice"));
                }
                sections.insert(name.clone(), Section::new());
                current = Some(name);
                in_value = false;
                continue;
            }
            // `key = value` or `key: value`, split at whichever delimiter comes first (a
            // value may hold either, as in an endpoint URL).
            let Some(at) = line.find(['=', ':']) else {
                return Err(format!("line {n}: expected `key = value` or `[section]`"));
            };
            let key = line[..at].trim().to_ascii_lowercase();
            if key.is_empty() {
                return Err(format!("line {n}: a value without a key"));
            }
            let Some(section) = current.as_ref().and_then(|s| sections.get_mut(s)) else {
                return Err(format!("line {n}: `{key}` before any [section]"));
            };
            if section.contains_key(&key) {
                return Err(format!("line {n}: `{key}` appears twice in its section"));
            }
            section.insert(key, Zeroizing::new(line[at + 1..].trim().to_string()));
            in_value = true;
        }
        Ok(IniFile { sections })
    }

    fn section(&self, name: &str) -> Option<&Section> {
        self.sections.get(name)
    }

    /// The section names, for an error that lists what a file does hold.
    fn names(&self) -> Vec<&str> {
        self.sections.keys().map(String::as_str).collect()
    }
}

/// Which of the shared files.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// `~/.aws/credentials`: sections are bare profile names.
    Credentials,
    /// `~/.aws/config`: `[default]` and `[profile NAME]`.
    Config,
}

impl Kind {
    /// The section names that hold `profile`, in the order they are tried.
    fn section_names(self, profile: &str) -> Vec<String> {
        match (self, profile) {
            (Kind::Credentials, p) => vec![p.to_string()],
            // The AWS CLI takes `[profile default]` too.
            (Kind::Config, "default") => vec!["default".into(), "profile default".into()],
            (Kind::Config, p) => vec![format!("profile {p}")],
        }
    }
}

/// One shared file: where it is, whether the user named it, and its contents if it exists.
struct Shared {
    path: PathBuf,
    file: Option<IniFile>,
    kind: Kind,
}

fn origin(profile: &str, path: &Path) -> String {
    format!("AWS profile {profile:?} in {}", path.display())
}

fn expand_home(path: &str, env: Env) -> PathBuf {
    match (path.strip_prefix("~/"), var(env, "HOME")) {
        (Some(rest), Some(home)) => Path::new(&home).join(rest),
        _ => PathBuf::from(path),
    }
}

impl Shared {
    /// Reads the file named by `var_name`, else `~/.aws/NAME`. A missing default file is
    /// no file; a missing file the user named is an error (a typo must not fall back to
    /// nothing and leave the store unsigned).
    fn load(env: Env, var_name: &str, default: &str, kind: Kind) -> Result<Shared, StoreError> {
        let named = var(env, var_name);
        let path = match &named {
            Some(p) => expand_home(p, env),
            None => match var(env, "HOME") {
                Some(home) => Path::new(&home).join(".aws").join(default),
                None => {
                    return Ok(Shared {
                        path: PathBuf::from("~/.aws").join(default),
                        file: None,
                        kind,
                    });
                }
            },
        };
        let failed = |why: String| StoreError::AwsSettings {
            origin: path.display().to_string(),
            why,
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => Zeroizing::new(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && named.is_none() => {
                return Ok(Shared {
                    path,
                    file: None,
                    kind,
                });
            }
            Err(e) => {
                return Err(failed(match named {
                    Some(_) => format!("cannot read it ({var_name} names it): {e}"),
                    None => format!("cannot read it: {e}"),
                }));
            }
        };
        let file = IniFile::parse(&text).map_err(|why| failed(format!("malformed: {why}")))?;
        Ok(Shared {
            path,
            file: Some(file),
            kind,
        })
    }

    fn section(&self, profile: &str) -> Option<&Section> {
        let file = self.file.as_ref()?;
        self.kind
            .section_names(profile)
            .iter()
            .find_map(|n| file.section(n))
    }

    /// The keys of `profile` in this file: `Ok(None)` when it has none at all (no such
    /// section, or a section without keys, such as a config profile with only a region).
    fn credentials(&self, profile: &str) -> Result<Option<Credentials>, StoreError> {
        let Some(s) = self.section(profile) else {
            return Ok(None);
        };
        let get = |k: &str| s.get(k).map(|v| v.as_str()).filter(|v| !v.is_empty());
        let key = get("aws_access_key_id");
        let secret = get("aws_secret_access_key");
        let token = get("aws_session_token");
        let missing = |what: &str| StoreError::AwsSettings {
            origin: origin(profile, &self.path),
            why: format!("{what} is missing"),
        };
        match (key, secret) {
            (Some(k), Some(sec)) => Ok(Some(match token {
                Some(t) => Credentials::new_with_token(k, sec, t),
                None => Credentials::new(k, sec),
            })),
            (Some(_), None) => Err(missing("aws_secret_access_key")),
            (None, Some(_)) => Err(missing("aws_access_key_id")),
            (None, None) => Ok(None),
        }
    }
}

/// What the environment and the shared files say for one store.
pub struct Resolved {
    /// `None`: no credentials anywhere and none asked for by name (`open_url` then refuses
    /// to go on unsigned).
    pub credentials: Option<Credentials>,
    /// `None`: no region anywhere (the caller's default applies).
    pub region: Option<String>,
}

/// Resolves credentials and region, in the AWS tools' order:
/// - credentials: `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`),
///   then the profile's keys in the credentials file (`AWS_SHARED_CREDENTIALS_FILE`,
///   default `~/.aws/credentials`), then in the config file (`AWS_CONFIG_FILE`, default
///   `~/.aws/config`). A profile named in the store URL (`url_profile`) is an explicit
///   choice for this store and skips the environment's keys, as `--profile` does for the
///   AWS CLI.
/// - the profile: `url_profile`, else `AWS_PROFILE`, else `default`. A profile asked for by
///   name that holds no keys is an error, never an unsigned store.
/// - region (only when `need_region`, i.e. the URL gave none): `AWS_REGION`, then
///   `AWS_DEFAULT_REGION`, then `region` in the profile's section of the config file.
///
/// Files are read only when the step before them found nothing.
pub fn resolve(
    env: Env,
    url_profile: Option<&str>,
    need_region: bool,
) -> Result<Resolved, StoreError> {
    let named = url_profile
        .map(str::to_string)
        .or_else(|| var(env, "AWS_PROFILE"));
    let profile = named.clone().unwrap_or_else(|| "default".to_string());
    // Read at most once, and only if a step needs it.
    let mut config: Option<Shared> = None;

    let from_env = if url_profile.is_none() {
        match (
            var(env, "AWS_ACCESS_KEY_ID"),
            var(env, "AWS_SECRET_ACCESS_KEY"),
        ) {
            (Some(k), Some(s)) => Some(match var(env, "AWS_SESSION_TOKEN") {
                Some(t) => Credentials::new_with_token(k, s, t),
                None => Credentials::new(k, s),
            }),
            (None, None) => None,
            // Half a key pair is a mistake; falling through to a file could sign as some
            // other identity without a word.
            (Some(_), None) | (None, Some(_)) => {
                return Err(StoreError::AwsSettings {
                    origin: "the environment".into(),
                    why: "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together".into(),
                });
            }
        }
    } else {
        None
    };

    let credentials = match from_env {
        Some(c) => Some(c),
        None => {
            let creds = Shared::load(
                env,
                "AWS_SHARED_CREDENTIALS_FILE",
                "credentials",
                Kind::Credentials,
            )?;
            match creds.credentials(&profile)? {
                Some(c) => Some(c),
                None => {
                    let cfg = config_file(&mut config, env)?;
                    match cfg.credentials(&profile)? {
                        Some(c) => Some(c),
                        None if named.is_some() => {
                            return Err(missing_profile(&profile, &creds, cfg));
                        }
                        None => None,
                    }
                }
            }
        }
    };

    let region = if !need_region {
        None
    } else if let Some(r) = var(env, "AWS_REGION").or_else(|| var(env, "AWS_DEFAULT_REGION")) {
        Some(r)
    } else {
        config_file(&mut config, env)?
            .section(&profile)
            .and_then(|s| s.get("region"))
            .map(|r| r.trim().to_string())
            .filter(|r| !r.is_empty())
    };
    Ok(Resolved {
        credentials,
        region,
    })
}

/// The config file, read on first use.
fn config_file<'a>(slot: &'a mut Option<Shared>, env: Env) -> Result<&'a Shared, StoreError> {
    Ok(match slot.take() {
        Some(s) => slot.insert(s),
        None => slot.insert(Shared::load(
            env,
            "AWS_CONFIG_FILE",
            "config",
            Kind::Config,
        )?),
    })
}

/// The error for a profile asked for by name that neither file gives keys for: names the
/// credentials file and what it does hold.
fn missing_profile(profile: &str, creds: &Shared, config: &Shared) -> StoreError {
    let why = match &creds.file {
        None => format!(
            "no such file (and no keys for it in {} either)",
            config.path.display()
        ),
        Some(_) if creds.section(profile).is_some() => format!(
            "the profile has no aws_access_key_id / aws_secret_access_key (SSO, role and \
             process credentials are not supported; nor are there keys in {})",
            config.path.display()
        ),
        Some(f) => {
            let names = f.names();
            format!(
                "no such profile (profiles there: {}; none with keys in {} either)",
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                },
                config.path.display()
            )
        }
    };
    StoreError::AwsSettings {
        origin: origin(profile, &creds.path),
        why,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn parses_the_aws_dialect() {
        let f = IniFile::parse(
            "\u{feff}# comment\n[default]\naws_access_key_id = AKIA1\n\
             AWS_Secret_Access_Key=se/cr+et#1;x\n\n; other\n[ profile  work ] # why\n\
             region: eu-west-3\ns3 =\n  aws_access_key_id = nested\n  addressing_style = path\n\
             endpoint_url = http://h:9000\n",
        )
        .unwrap();
        let d = f.section("default").unwrap();
        assert_eq!(d["aws_access_key_id"].as_str(), "AKIA1");
        // no inline comments in values: a secret may contain `#` or `;`
        assert_eq!(d["aws_secret_access_key"].as_str(), "se/cr+et#1;x");
        let w = f.section("profile work").unwrap();
        assert_eq!(w["region"].as_str(), "eu-west-3");
        assert_eq!(w["s3"].as_str(), "");
        // the indented lines belong to `s3`, not to the profile
        assert!(!w.contains_key("aws_access_key_id"));
        assert_eq!(w["endpoint_url"].as_str(), "http://h:9000");
        assert_eq!(f.names(), ["default", "profile work"]);
    }

    #[test]
    fn malformed_files_say_which_line_and_not_its_text() {
        for (text, want) in [
            ("key = v\n", "line 1: `key` before any [section]"),
            ("[a]\nx = 1\n[a]\n", "line 3: section [a] appears twice"),
            ("[a]\nx = 1\nx = 2\n", "line 3: `x` appears twice"),
            ("[a\n", "line 1: `[` without a closing `]`"),
            ("[]\n", "line 1: empty section name"),
            (
                "[a]\nsecret-without-equals\n",
                "line 2: expected `key = value`",
            ),
            ("[a]\n= v\n", "line 2: a value without a key"),
            ("[a] x\n", "line 1: text after a section header"),
        ] {
            let e = IniFile::parse(text).err().unwrap();
            assert!(e.starts_with(want), "{text:?}: {e}");
            assert!(!e.contains("secret-without"), "{e}");
        }
    }

    /// A temp dir with `credentials` holding two profiles and a `config`.
    fn files() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("credentials"),
            "[default]\naws_access_key_id = DEFKEY\naws_secret_access_key = defsecret\n\n\
             [work]\naws_access_key_id = WORKKEY\naws_secret_access_key = worksecret\n\
             aws_session_token = worktoken\n\n[half]\naws_access_key_id = HALF\n\n\
             [sso]\nsso_session = x\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("config"),
            "[default]\nregion = eu-west-1\n[profile work]\nregion = ap-south-2\n\
             [profile cfgonly]\naws_access_key_id = CFGKEY\naws_secret_access_key = cfgsecret\n",
        )
        .unwrap();
        d
    }

    fn resolve_with(
        pairs: &[(&str, &str)],
        url_profile: Option<&str>,
    ) -> Result<Resolved, StoreError> {
        let env = env_of(pairs);
        resolve(&env, url_profile, true)
    }

    #[test]
    fn profiles_come_from_the_files() {
        let d = files();
        let home = d.path().join("nohome");
        let c = d.path().join("credentials").display().to_string();
        let k = d.path().join("config").display().to_string();
        let base = [
            ("HOME", home.to_str().unwrap()),
            ("AWS_SHARED_CREDENTIALS_FILE", c.as_str()),
            ("AWS_CONFIG_FILE", k.as_str()),
        ];
        // default profile
        let r = resolve_with(&base, None).unwrap();
        let cr = r.credentials.unwrap();
        assert_eq!(
            (cr.key(), cr.secret(), cr.token()),
            ("DEFKEY", "defsecret", None)
        );
        assert_eq!(r.region.as_deref(), Some("eu-west-1"));
        // AWS_PROFILE picks the other one, with its token and its region
        let mut e = base.to_vec();
        e.push(("AWS_PROFILE", "work"));
        let r = resolve_with(&e, None).unwrap();
        let cr = r.credentials.unwrap();
        assert_eq!(
            (cr.key(), cr.secret(), cr.token()),
            ("WORKKEY", "worksecret", Some("worktoken"))
        );
        assert_eq!(r.region.as_deref(), Some("ap-south-2"));
        // the URL's profile beats AWS_PROFILE
        let r = resolve_with(&e, Some("default")).unwrap();
        assert_eq!(r.credentials.unwrap().key(), "DEFKEY");
        // keys in the config file when the credentials file has none for the profile
        let r = resolve_with(&base, Some("cfgonly")).unwrap();
        assert_eq!(r.credentials.unwrap().key(), "CFGKEY");
        assert_eq!(r.region, None);
        // `~/` in a named file is the home
        let tilde = [
            ("HOME", d.path().to_str().unwrap()),
            ("AWS_SHARED_CREDENTIALS_FILE", "~/credentials"),
        ];
        assert_eq!(
            resolve_with(&tilde, None)
                .unwrap()
                .credentials
                .unwrap()
                .key(),
            "DEFKEY"
        );
        // the default place is HOME/.aws
        std::fs::create_dir(d.path().join(".aws")).unwrap();
        std::fs::copy(&c, d.path().join(".aws/credentials")).unwrap();
        std::fs::copy(&k, d.path().join(".aws/config")).unwrap();
        let h = [
            ("HOME", d.path().to_str().unwrap()),
            ("AWS_PROFILE", "work"),
        ];
        let r = resolve_with(&h, None).unwrap();
        assert_eq!(r.credentials.unwrap().key(), "WORKKEY");
        assert_eq!(r.region.as_deref(), Some("ap-south-2"));
    }

    #[test]
    fn the_environment_comes_first() {
        let d = files();
        let c = d.path().join("credentials").display().to_string();
        let k = d.path().join("config").display().to_string();
        let e = [
            ("AWS_SHARED_CREDENTIALS_FILE", c.as_str()),
            ("AWS_CONFIG_FILE", k.as_str()),
            ("AWS_PROFILE", "work"),
            ("AWS_ACCESS_KEY_ID", "ENVKEY"),
            ("AWS_SECRET_ACCESS_KEY", "envsecret"),
            ("AWS_DEFAULT_REGION", "us-west-2"),
        ];
        let r = resolve_with(&e, None).unwrap();
        let cr = r.credentials.unwrap();
        assert_eq!((cr.key(), cr.token()), ("ENVKEY", None));
        assert_eq!(r.region.as_deref(), Some("us-west-2"));
        let mut e2 = e.to_vec();
        e2.push(("AWS_REGION", "ca-central-1"));
        assert_eq!(
            resolve_with(&e2, None).unwrap().region.as_deref(),
            Some("ca-central-1")
        );
        // a profile named in the URL is this store's own choice
        assert_eq!(
            resolve_with(&e, Some("work"))
                .unwrap()
                .credentials
                .unwrap()
                .key(),
            "WORKKEY"
        );
        // blank variables count as unset (how a caller masks an inherited one)
        // (`env_of` keeps the last value of a name)
        let mut e3 = e.to_vec();
        e3.extend([("AWS_ACCESS_KEY_ID", " "), ("AWS_SECRET_ACCESS_KEY", "")]);
        assert_eq!(
            resolve_with(&e3, None).unwrap().credentials.unwrap().key(),
            "WORKKEY"
        );
        // half a pair in the environment is an error, not a fall-through
        let e4 = [
            ("AWS_SHARED_CREDENTIALS_FILE", c.as_str()),
            ("AWS_ACCESS_KEY_ID", "ENVKEY"),
        ];
        let err = resolve_with(&e4, None).err().unwrap().to_string();
        assert!(err.contains("must be set together"), "{err}");
        // with no file at all and nothing named: no credentials, no error
        let none = [("HOME", "/nonexistent-cirrus-home")];
        let r = resolve_with(&none, None).unwrap();
        assert!(r.credentials.is_none() && r.region.is_none());
    }

    #[test]
    fn a_missing_profile_or_file_is_a_clear_error() {
        let d = files();
        let c = d.path().join("credentials").display().to_string();
        let k = d.path().join("config").display().to_string();
        let base = [
            ("AWS_SHARED_CREDENTIALS_FILE", c.as_str()),
            ("AWS_CONFIG_FILE", k.as_str()),
        ];
        let msg = |pairs: &[(&str, &str)], p: Option<&str>| {
            let e = resolve_with(pairs, p).err().unwrap();
            assert!(matches!(e, StoreError::AwsSettings { .. }), "{e:?}");
            e.to_string()
        };
        let mut e = base.to_vec();
        e.push(("AWS_PROFILE", "nope"));
        let m = msg(&e, None);
        assert!(
            m.contains("\"nope\"")
                && m.contains(&c)
                && m.contains("no such profile")
                && m.contains("default, half, sso, work"),
            "{m}"
        );
        let m = msg(&base, Some("nope"));
        assert!(m.contains("\"nope\"") && m.contains(&c), "{m}");
        // half a key pair, and a profile without keys
        let m = msg(&base, Some("half"));
        assert!(m.contains("aws_secret_access_key is missing"), "{m}");
        assert!(!m.contains("HALF"), "{m}");
        let m = msg(&base, Some("sso"));
        assert!(m.contains("not supported"), "{m}");
        // a named file that is not there
        let gone = d.path().join("gone").display().to_string();
        let m = msg(&[("AWS_SHARED_CREDENTIALS_FILE", gone.as_str())], None);
        assert!(
            m.contains(&gone) && m.contains("AWS_SHARED_CREDENTIALS_FILE"),
            "{m}"
        );
        // a malformed file: its path and line, never its text
        let bad = d.path().join("bad");
        std::fs::write(&bad, "[default]\naws_secret_access_key topsecret\n").unwrap();
        let b = bad.display().to_string();
        let m = msg(&[("AWS_SHARED_CREDENTIALS_FILE", b.as_str())], None);
        assert!(m.contains(&b) && m.contains("line 2"), "{m}");
        assert!(!m.contains("topsecret"), "{m}");
        // a malformed config file, when it is read for the region
        let m = msg(
            &[
                ("AWS_ACCESS_KEY_ID", "K"),
                ("AWS_SECRET_ACCESS_KEY", "S"),
                ("AWS_CONFIG_FILE", b.as_str()),
            ],
            None,
        );
        assert!(m.contains(&b) && m.contains("malformed"), "{m}");
    }
}
