//! The `cirrus` command line: argument parsing, and one function per command that builds
//! the stack it needs. Errors are reported as one line naming the problem and the fix.

mod account_cmd;
mod adp;
mod device;
mod export;
mod fsck;
mod gc;
mod methods;
mod mount;
mod mount_options;
mod passcode;
mod rotate;
#[cfg(feature = "server")]
mod serve;
mod status;
mod sync;
mod web;

use crate::account::{self, InitOptions};
use crate::format::table::Class;
use crate::home::Home;
use crate::keys::KdfParams;
use clap::parser::ValueSource;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "cirrus",
    version,
    about = "Cirrus: an encrypted cloud drive. Each top-level folder is a data category \
             (Photos, Notes, Health, ...) whose files are encrypted with its own key.",
    long_about = "Cirrus: an encrypted cloud drive.\n\n\
        Set up once with `cirrus init`, then `cirrus mount` the drive and use it with any \
        program. Each top-level folder is a data category with a protection class:\n  \
        e2e       keys only on your devices (Health, Keychain, Messages, ...)\n  \
        standard  keys also held by the key service, so data can be recovered\n  \
        transit   stored readable by the server (Mail), still integrity-protected\n\n\
        The passcode comes from, first found: --passcode-file FILE, --passcode-command \
        CMD, CIRRUS_PASSCODE_FILE, a systemd credential named passcode, the terminal \
        (the account password likewise: --password-file, --password-command, \
        CIRRUS_PASSWORD_FILE, credential password).\n\n\
        Keys in short: one machine alone needs nothing more. With a key service \
        (`cirrus serve`), create the account with `init --server`, turn on two-factor \
        authentication (`account totp`), add devices with `device add` + `device approve`, \
        set a recovery key before turning on Advanced Data Protection (`adp on`), and use \
        `recover` when no trusted device is left. docs/USER-GUIDE.md walks through each."
)]
pub struct Cli {
    /// Directory holding this device's account, keys, store and log.
    #[arg(long, global = true, env = "CIRRUS_HOME")]
    home: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args, Clone)]
pub struct PasscodeArgs {
    /// Read the passcode from this file (first line). Sources, first found wins:
    /// --passcode-file, --passcode-command, $CIRRUS_PASSCODE_FILE,
    /// $CREDENTIALS_DIRECTORY/passcode (a systemd credential), the terminal.
    #[arg(long, value_name = "FILE")]
    passcode_file: Option<PathBuf>,
    /// Run CMD with /bin/sh -c and take the first line it prints as the passcode (like
    /// gocryptfs -extpass); a non-zero exit is an error.
    #[arg(long, value_name = "CMD")]
    passcode_command: Option<String>,
    /// Accounts on a key service (`cirrus serve`): read the account password from this
    /// file and log in, for what needs the service (its keys, TOTP, escrow, contacts).
    /// Sources as for the passcode: --password-file, --password-command,
    /// $CIRRUS_PASSWORD_FILE, $CREDENTIALS_DIRECTORY/password, the terminal.
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// Run CMD with /bin/sh -c and take the first line it prints as the account password.
    #[arg(long, value_name = "CMD")]
    password_command: Option<String>,
    /// Whether $CIRRUS_PASSCODE_FILE, $CIRRUS_PASSWORD_FILE and the systemd credentials
    /// stand for these secrets: yes for what a command unlocks with, no for a new secret
    /// it asks for (`cli::passcode`).
    #[arg(skip = true)]
    ambient: bool,
    /// The current 6-digit code of your authenticator app, to log in to the key service
    /// with it instead of this device's remembered token. A new device needs it, so does
    /// every device after a password change, and so do the commands that change the
    /// account's credentials or recovery (account password, escrow, recovery-contact
    /// remove, recovery-key create, rotate --service) on an account with TOTP: a
    /// remembered device alone may not make those changes.
    #[arg(long, value_name = "CODE")]
    totp: Option<String>,
}

/// S3 options of `--store s3://BUCKET/PREFIX`, kept in the store URL's query string.
#[derive(clap::Args, Clone, Default)]
pub struct S3Args {
    /// S3 endpoint URL (SeaweedFS, MinIO, Ceph RGW, Garage, ...); default: AWS.
    #[arg(long)]
    endpoint: Option<String>,
    /// S3 region.
    #[arg(long)]
    region: Option<String>,
    /// Address buckets as ENDPOINT/BUCKET (most self-hosted servers) instead of
    /// BUCKET.ENDPOINT. Implied by an endpoint given as an IP address.
    #[arg(long)]
    path_style: bool,
    /// Allow a plain-http endpoint (otherwise refused: keys and metadata are encrypted,
    /// but object names, sizes and timing would travel in clear).
    #[arg(long)]
    allow_http: bool,
    /// PEM file of the CA that signed the endpoint's certificate (a private CA).
    #[arg(long)]
    ca_file: Option<PathBuf>,
}

impl S3Args {
    fn any(&self) -> bool {
        self.endpoint.is_some()
            || self.region.is_some()
            || self.path_style
            || self.allow_http
            || self.ca_file.is_some()
    }

    /// The store URL with these options in its query string.
    fn apply(&self, store: Option<String>) -> Result<Option<String>, String> {
        if !self.any() {
            return Ok(store);
        }
        let Some(url) = store.filter(|u| u.starts_with("s3://")) else {
            return Err(
                "--endpoint, --region, --path-style, --allow-http and --ca-file go with \
                        --store s3://BUCKET/PREFIX"
                    .into(),
            );
        };
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        if let Some(e) = &self.endpoint {
            q.append_pair("endpoint", e);
        }
        if let Some(r) = &self.region {
            q.append_pair("region", r);
        }
        if self.path_style {
            q.append_pair("path_style", "1");
        }
        if self.allow_http {
            q.append_pair("allow_http", "1");
        }
        if let Some(c) = &self.ca_file {
            let abs =
                std::fs::canonicalize(c).map_err(|e| format!("--ca-file {}: {e}", c.display()))?;
            q.append_pair("ca_file", &abs.to_string_lossy());
        }
        let sep = if url.contains('?') { '&' } else { '?' };
        Ok(Some(format!("{url}{sep}{}", q.finish())))
    }
}

/// Where the key service is, for commands that set up a device.
#[derive(clap::Args, Clone, Default)]
pub struct ServerArgs {
    /// URL of the key service (`cirrus serve`), e.g. https://keys.example.org:8443. Without
    /// it, this device runs an embedded key service of its own (one device only).
    #[arg(long)]
    pub server: Option<String>,
    /// The key service's certificate fingerprint (`SHA256:...`, printed by `cirrus serve`
    /// at start), checked like an SSH host key. Without it you are asked on the terminal.
    #[arg(long, requires = "server")]
    fingerprint: Option<String>,
    /// The account's name on the key service.
    #[arg(long, requires = "server")]
    account: Option<String>,
    /// The invitation code its admin gave you, when the key service creates accounts only
    /// by invitation (`cirrus serve --signup closed`).
    #[arg(long, requires = "server")]
    invite: Option<String>,
}

impl ServerArgs {
    /// The server to use, with its fingerprint confirmed, or None for the embedded one.
    pub(crate) fn resolve(
        &self,
        pass: &PasscodeArgs,
    ) -> Result<Option<crate::account::remote::ServerInit>, String> {
        let Some(url) = &self.server else {
            return Ok(None);
        };
        let account = self
            .account
            .clone()
            .ok_or("--server needs --account NAME (your account on the key service)")?;
        let fingerprint: crate::keyservice::Fingerprint = match &self.fingerprint {
            Some(f) => f
                .parse()
                .map_err(|_| format!("--fingerprint {f:?} is not SHA256:<64 hex digits>"))?,
            None => {
                let seen = crate::keyservice::client::probe(url).map_err(|e| e.to_string())?;
                if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                    return Err(format!(
                        "the key service at {url} presents {seen}; check it with its admin, \
                         then pass --fingerprint {seen}"
                    ));
                }
                eprintln!(
                    "The key service at {url} presents the certificate fingerprint\n  {seen}"
                );
                eprint!("Is this the fingerprint its admin gave you? [y/N] ");
                let mut line = String::new();
                std::io::stdin()
                    .read_line(&mut line)
                    .map_err(|e| e.to_string())?;
                if !line.trim().eq_ignore_ascii_case("y") {
                    return Err("not trusted; nothing was changed".into());
                }
                seen
            }
        };
        let password = passcode::read_password(pass, true)?;
        Ok(Some(crate::account::remote::ServerInit {
            url: url.clone(),
            fingerprint,
            account,
            password,
            invite: self.invite.clone().map(zeroize::Zeroizing::new),
        }))
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Create an account on this device: keys, the category table and the store.
    Init {
        #[command(flatten)]
        pass: PasscodeArgs,
        /// Store URL (default: a local store inside the home, file://HOME/store), or
        /// s3://BUCKET/PREFIX[?endpoint=URL&region=R&path_style=1&allow_http=1&ca_file=PEM]
        /// with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment.
        #[arg(long)]
        store: Option<String>,
        /// Argon2id memory cost in KiB for the passcode.
        #[arg(long, default_value_t = KdfParams::default().memory_kib)]
        kdf_memory: u32,
        /// Argon2id time cost (iterations).
        #[arg(long, default_value_t = KdfParams::default().time)]
        kdf_time: u32,
        /// Name of this device.
        #[arg(long)]
        device_name: Option<String>,
        #[command(flatten)]
        s3: S3Args,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Mount the drive and serve it in the background (logs to HOME/cirrus.log). Also
    /// run by `mount -t fuse.cirrus HOME MOUNTPOINT -o OPTIONS` and fstab lines, through
    /// the link mount.fuse.cirrus (docs/USER-GUIDE.md, "Mount at boot").
    #[command(args_override_self = true)]
    Mount(mount::MountArgs),
    /// Flush everything and unmount; also cleans up a mount left by a killed daemon.
    /// With a remote store, waits until the upload queue has reached the store.
    Umount {
        /// The mountpoint (default: ~/Cirrus).
        mountpoint: Option<PathBuf>,
        /// Seconds to wait for the daemon to flush, upload and exit.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
        /// Do not wait for uploads: what is queued stays in the journal and is sent at the
        /// next mount or `cirrus sync`.
        #[arg(long)]
        no_wait: bool,
    },
    /// Exchange changes with the store now: when mounted, commit, take in what other
    /// devices published, then upload the queue; unmounted, upload the queue (no passcode
    /// needed).
    Sync(sync::SyncArgs),
    /// Print a shell completion script for cirrus: `cirrus completions bash >
    /// /etc/bash_completion.d/cirrus` (zsh: into a directory of $fpath as _cirrus; fish:
    /// ~/.config/fish/completions/cirrus.fish).
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Write a man page for cirrus and each of its commands into DIR (cirrus.1,
    /// cirrus-mount.1, ...); scripts/man calls it.
    #[command(hide = true)]
    Manpages {
        /// Directory to write the pages into (created if missing).
        dir: PathBuf,
    },
    /// Show each category, its protection class, sizes, object counts and cache use.
    Status {
        #[command(flatten)]
        pass: PasscodeArgs,
        /// Print one JSON object instead (fields: docs/USER-GUIDE.md, "Status and sync as
        /// JSON").
        #[arg(long)]
        json: bool,
    },
    /// Verify every object and tree in the store; exit code 1 when anything is damaged.
    Fsck {
        #[command(flatten)]
        pass: PasscodeArgs,
    },
    /// Delete pack objects no category references any more (rewritten or deleted data).
    ///
    /// Runs only while the drive is not mounted, and refuses if any tree cannot be read.
    Gc {
        #[command(flatten)]
        pass: PasscodeArgs,
        /// Only report what would be deleted.
        #[arg(long)]
        dry_run: bool,
        /// Keep unreferenced packs younger than this (e.g. 30m, 12h, 3d): another device
        /// may have uploaded them for a head it has not published yet.
        #[arg(long, default_value = "3d", value_parser = gc::parse_duration)]
        grace: std::time::Duration,
    },
    /// Replace keys: a category's (re-encrypted online), the account key, or the service key.
    ///
    /// With --category the drive may stay mounted and in use. If the rotation is interrupted, run the
    /// same command again: it continues where it stopped.
    Rotate(rotate::RotateArgs),
    /// List, add or retire data categories (top-level folders).
    Category {
        #[command(subcommand)]
        cmd: CategoryCmd,
    },
    /// Trusted devices: add a new device (it shows a code), approve it from a device you
    /// already use, list or remove them.
    Device {
        #[command(subcommand)]
        cmd: device::DeviceCmd,
    },
    /// Create a recovery key: a 28-character code that gets you back into your account,
    /// end-to-end data included, if you lose all your devices.
    RecoveryKey {
        #[command(subcommand)]
        cmd: device::RecoveryKeyCmd,
    },
    /// Set up this (new) device when no trusted device is left: with the recovery key, a
    /// recovery contact's code, the passcode escrow, or the data recovery service.
    Recover(device::RecoverArgs),
    /// Backup on or off (with Backup on, Messages can be restored by data recovery).
    Backup {
        #[command(subcommand)]
        cmd: adp::BackupCmd,
    },
    /// Passcode escrow with the key service (opt-in recovery method).
    Escrow {
        #[command(subcommand)]
        cmd: methods::EscrowCmd,
    },
    /// Recovery contacts: people who can help you back into your account (up to 5).
    RecoveryContact {
        #[command(subcommand)]
        cmd: methods::ContactCmd,
    },
    /// The account on its key service: two-factor authentication (TOTP), status.
    Account {
        #[command(subcommand)]
        cmd: account_cmd::AccountCmd,
    },
    /// Advanced Data Protection: end-to-end encryption for Backup, Drive, Notes, Photos
    /// and more, so the key service cannot decrypt them.
    Adp {
        #[command(subcommand)]
        cmd: adp::AdpCmd,
    },
    /// Web access: the account's standard categories in a browser, on the key service's
    /// web front (on, off, status, sessions, revoke).
    Web {
        #[command(subcommand)]
        cmd: web::WebCmd,
    },
    /// Change this device's passcode (the one `mount` asks for).
    ///
    /// Only this device's files are re-sealed; other devices keep their own passcodes.
    Passcode {
        #[command(subcommand)]
        cmd: PasscodeCmd,
    },
    /// Run the key service (the server side): accounts, TOTP, service keys, escrow.
    ///
    /// It keeps, for each account, the keys that let `standard` categories be recovered,
    /// the password check and second factor (TOTP), and small records such as an escrowed
    /// key. It speaks HTTPS; clients trust it by the
    /// certificate fingerprint it prints at start. Runs in the foreground (use a service
    /// manager) until SIGTERM or Ctrl-C.
    ///
    /// Only in a build with the cargo feature `server` (the default): a device-only build
    /// (`--no-default-features`) has no `serve` command.
    #[cfg(feature = "server")]
    Serve(Box<serve::ServeArgs>),
    /// Back up the drive to a local archive file (a tar stream), e.g. on a USB disk.
    ///
    /// End-to-end categories (Health, Keychain, Messages, ...) go only into an encrypted
    /// export (--archive-password-file); an --unencrypted export is a plain tar that leaves them
    /// out and names them. Works while mounted (it reads what was last committed).
    Export(export::ExportArgs),
    /// List or extract an archive made by `cirrus export`.
    ///
    /// An encrypted one is checked
    /// segment by segment with its password, and damage stops it with an error. Needs no
    /// account on this device.
    ExportRead(export::ExportReadArgs),
}

impl Cmd {
    /// `mount` and `serve` run until stopped and set up their own logging.
    fn long_running(&self) -> bool {
        match self {
            Cmd::Mount(_) => true,
            #[cfg(feature = "server")]
            Cmd::Serve(_) => true,
            _ => false,
        }
    }
}

#[derive(Subcommand)]
enum PasscodeCmd {
    /// Change the passcode: asks for the current one, then the new one twice.
    Change {
        #[command(flatten)]
        pass: PasscodeArgs,
        /// Read the new passcode from this file instead of the terminal.
        #[arg(long)]
        new_passcode_file: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum CategoryCmd {
    /// List the categories and their protection classes.
    List {
        #[command(flatten)]
        pass: PasscodeArgs,
    },
    /// Add a category (appears as a folder at the next mount).
    Add {
        name: String,
        /// Protection class: e2e, standard or transit.
        #[arg(long, default_value = "e2e")]
        class: String,
        #[command(flatten)]
        pass: PasscodeArgs,
    },
    /// Retire a category: its folder disappears; its data stays in the store.
    Remove {
        name: String,
        #[command(flatten)]
        pass: PasscodeArgs,
    },
}

pub(crate) fn default_home() -> PathBuf {
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| home_dir().join(".local/share"));
    base.join("cirrus")
}

pub(crate) fn home_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"))
}

pub(crate) fn default_mountpoint() -> PathBuf {
    home_dir().join("Cirrus")
}

type CliResult = Result<i32, String>;

pub fn main() -> i32 {
    // Parsed through the matches, which also tell where a value came from (the command
    // line, or the environment): hints and `export --password-file` depend on it.
    let mut command = <Cli as clap::CommandFactory>::command();
    command.build();
    let argv = match command.find_subcommand("mount") {
        Some(m) => mount_options::rewrite(std::env::args_os().collect(), m),
        None => Ok(mount_options::Argv::Run(std::env::args_os().collect())),
    };
    let matches = match argv {
        Ok(mount_options::Argv::Run(argv)) => command.get_matches_from(argv),
        Ok(mount_options::Argv::Fake) => return 0,
        Err(e) => {
            eprintln!("cirrus: {e}");
            return 1;
        }
    };
    let mut cli = match <Cli as clap::FromArgMatches>::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    let from_command_line =
        |m: &clap::ArgMatches, id: &str| m.value_source(id) == Some(ValueSource::CommandLine);
    if let Cmd::Export(a) = &mut cli.cmd {
        a.note_spelling(
            matches
                .subcommand_matches("export")
                .is_some_and(|m| from_command_line(m, "password_file")),
        );
    }
    crate::daemon::no_core_dumps();
    // Long-running commands set up their own logging, and keep Rust's ignored SIGPIPE so
    // a closed log pipe cannot kill them.
    if !cli.cmd.long_running() {
        // Short-lived commands die quietly on a closed pipe (`cirrus status | head`)
        // instead of panicking in println!.
        // SAFETY: resetting a signal disposition before any thread exists.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
        init_stderr_logging();
    }
    let mut root = cli.home.clone().unwrap_or_else(default_home);
    if root.is_relative() {
        // The daemon changes directory to /, so every path it keeps must be absolute.
        root = std::env::current_dir().unwrap_or_default().join(root);
    }
    if from_command_line(&matches, "home") && root != default_home() {
        // A hint to run another command must reach this home too.
        crate::hint::set_home_flag(&root);
    }
    let home = Home::new(root);
    let daemon_like = cli.cmd.long_running();
    let mut res = run(cli.cmd, home);
    if !daemon_like
        && let Some(e) = sync::drain_queued()
        && res.is_ok()
    {
        res = Err(e);
    }
    match res {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("cirrus: {msg}");
            1
        }
    }
}

pub(crate) fn init_stderr_logging() {
    let _ = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .try_init();
}

fn run(cmd: Cmd, home: Home) -> CliResult {
    match cmd {
        Cmd::Init {
            pass,
            store,
            kdf_memory,
            kdf_time,
            device_name,
            s3,
            server,
        } => {
            let store = s3.apply(store)?;
            let passcode = passcode::read(&pass, true)?;
            let server = server.resolve(&pass)?;
            let remote = server.is_some();
            let device_name = device_name.unwrap_or_else(hostname);
            let kdf = KdfParams {
                memory_kib: kdf_memory,
                time: kdf_time,
                lanes: 1,
            };
            account::init(
                &home,
                &passcode,
                InitOptions {
                    store_url: store,
                    kdf,
                    device_name,
                    server,
                },
            )
            .map_err(|e| match e {
                account::AccountError::Store(crate::store::StoreError::Missing(dir)) => format!(
                    "init failed: the store directory {dir} does not exist: create it first \
                     (`mkdir -p {dir}`), or leave --store out to keep the store in the home"
                ),
                e => format!("init failed: {e}"),
            })?;
            println!(
                "Created a Cirrus account in {} (store: {}).\nMount it with: {}",
                home.root.display(),
                home.load_config().map(|c| c.store).unwrap_or_default(),
                crate::hint::cmd_hint("mount")
            );
            if remote {
                println!(
                    "End-to-end categories (Health, Keychain, ...) stay locked until the account \
                     has a second factor: run `{}`.",
                    crate::hint::cmd_hint("account totp enroll")
                );
            }
            Ok(0)
        }
        Cmd::Mount(args) => mount::run(home, args),
        Cmd::Umount {
            mountpoint,
            timeout,
            no_wait,
        } => mount::umount(
            &home,
            mountpoint.unwrap_or_else(default_mountpoint),
            timeout,
            no_wait,
        ),
        Cmd::Sync(args) => sync::run(home, args),
        Cmd::Status { pass, json } => status::run(home, &pass, json),
        Cmd::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "cirrus", &mut std::io::stdout());
            Ok(0)
        }
        Cmd::Manpages { dir } => {
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            clap_mangen::generate_to(<Cli as clap::CommandFactory>::command(), &dir)
                .map_err(|e| format!("cannot write the man pages into {}: {e}", dir.display()))?;
            Ok(0)
        }
        Cmd::Fsck { pass } => fsck::run(home, &pass),
        Cmd::Gc {
            pass,
            dry_run,
            grace,
        } => gc::run(home, &pass, dry_run, grace),
        Cmd::Rotate(args) => rotate::run(home, args),
        Cmd::Category { cmd } => category(home, cmd),
        Cmd::Device { cmd } => device::run(home, cmd),
        Cmd::RecoveryKey { cmd } => device::recovery_key(home, cmd),
        Cmd::Recover(args) => device::recover(home, args),
        Cmd::Adp { cmd } => adp::run(home, cmd),
        Cmd::Account { cmd } => account_cmd::run(home, cmd),
        Cmd::Web { cmd } => web::run(home, cmd),
        Cmd::Escrow { cmd } => methods::escrow(home, cmd),
        Cmd::Backup { cmd } => adp::backup(home, cmd),
        Cmd::RecoveryContact { cmd } => methods::contact(home, cmd),
        Cmd::Passcode {
            cmd:
                PasscodeCmd::Change {
                    pass,
                    new_passcode_file,
                },
        } => {
            // A mounted daemon keeps the old device key and would re-seal its files under
            // it: the drive must not be mounted.
            let _lock = crate::daemon::lock_home(&home).map_err(|_| {
                format!(
                    "unmount the drive first (`{}`): a mounted daemon still uses the old \
                     passcode's key",
                    crate::hint::cmd_hint("umount")
                )
            })?;
            let mut acct = unlock(home, &pass)?;
            if new_passcode_file.is_none() {
                eprintln!("New passcode:");
            }
            let new = passcode::read(
                &PasscodeArgs {
                    passcode_file: new_passcode_file,
                    password_file: None,
                    totp: None,
                    passcode_command: None,
                    password_command: None,
                    ambient: false,
                },
                true,
            )?;
            acct.change_passcode(&new)
                .map_err(|e| format!("passcode change: {e}"))?;
            println!("Passcode changed for this device.");
            Ok(0)
        }
        #[cfg(feature = "server")]
        Cmd::Serve(args) => serve::run(*args),
        Cmd::Export(args) => export::run(home, args),
        Cmd::ExportRead(args) => export::run_read(args),
    }
}

/// "WHAT: ERROR (HINT)", without the hint (about logging in at all) when the error says
/// itself what to pass: a change that needs a fresh second factor, a login that needs a
/// TOTP code, a command that needs the account password.
fn failed_with_hint(what: &str, e: &account::AccountError, hint: &str) -> String {
    match e {
        account::AccountError::ReauthRequired
        | account::AccountError::SecondFactorRequired(_)
        | account::AccountError::NoKeyService => format!("{what}: {e}"),
        _ => format!("{what}: {e} ({hint})"),
    }
}

fn unlock(home: Home, pass: &PasscodeArgs) -> Result<account::Unlocked, String> {
    let mut acct = unlock_device(home, pass, false)?;
    if acct.config.server.is_some() && passcode::password_given(pass) {
        let password = passcode::read_password(pass, false)?;
        acct.connect(&password, pass.totp.as_deref())
            .map_err(|e| format!("logging in to the key service: {e}"))?;
    }
    Ok(acct)
}

/// [`unlock`] for the commands that can go on with the keys this device holds (`mount`,
/// `status`): when the key service cannot be reached or refuses the login, they go on
/// and show why (returned); the categories that need the service stay locked. Any other
/// failure of the login (a server with another certificate) still stops them.
fn unlock_holding(
    home: Home,
    pass: &PasscodeArgs,
) -> Result<(account::Unlocked, Option<account::remote::NoSession>), String> {
    unlock_holding_as(home, pass, false)
}

/// [`unlock_holding`], over a store that refuses writes when `read_only` (a read-only
/// mount: `account::unlock_read_only`).
fn unlock_holding_as(
    home: Home,
    pass: &PasscodeArgs,
    read_only: bool,
) -> Result<(account::Unlocked, Option<account::remote::NoSession>), String> {
    let mut acct = unlock_device(home, pass, read_only)?;
    let mut why = None;
    if acct.config.server.is_some() && passcode::password_given(pass) {
        let password = passcode::read_password(pass, false)?;
        why = acct
            .connect_or_hold(&password, pass.totp.as_deref())
            .map_err(|e| format!("logging in to the key service: {e}"))?;
    }
    Ok((acct, why))
}

/// Opens this device's account with its passcode (no key service yet).
fn unlock_device(
    home: Home,
    pass: &PasscodeArgs,
    read_only: bool,
) -> Result<account::Unlocked, String> {
    if !home.exists() {
        return Err(format!(
            "no Cirrus account in {} (run `{}`, or pass --home)",
            home.root.display(),
            crate::hint::cmd_hint("init")
        ));
    }
    let passcode = passcode::read(pass, false)?;
    let config = home.config_path();
    let unlocked = if read_only {
        account::unlock_read_only(home, &passcode)
    } else {
        account::unlock(home, &passcode)
    };
    let acct = unlocked.map_err(|e| match e {
        account::AccountError::Store(crate::store::StoreError::Missing(_)) => {
            format!("{e} (the store URL is `store` in {})", config.display())
        }
        e => e.to_string(),
    })?;
    if let Some(wb) = &acct.sync {
        sync::remember(wb);
    }
    Ok(acct)
}

fn category(home: Home, cmd: CategoryCmd) -> CliResult {
    match cmd {
        CategoryCmd::List { pass } => {
            let acct = unlock(home, &pass)?;
            println!("{:<24} {:<9} id", "category", "class");
            for e in acct.table().active() {
                println!("{:<24} {:<9} {}", e.name, e.class.name(), e.id);
            }
            Ok(0)
        }
        CategoryCmd::Add { name, class, pass } => {
            let class = Class::parse(&class).ok_or_else(|| {
                format!("unknown protection class {class:?}: use e2e, standard or transit")
            })?;
            let mut acct = unlock(home, &pass)?;
            acct.add_category(&name, class).map_err(|e| e.to_string())?;
            println!(
                "Added category {name} ({}). It appears at the next mount.",
                class.name()
            );
            Ok(0)
        }
        CategoryCmd::Remove { name, pass } => {
            let mut acct = unlock(home, &pass)?;
            acct.remove_category(&name).map_err(|e| e.to_string())?;
            println!("Retired category {name}; its data stays in the store.");
            Ok(0)
        }
    }
}

pub(crate) use crate::hint::human;
pub(crate) use crate::maintenance::open_for_inspection;

pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "device".into())
}

pub(crate) fn init_stderr_logging_level(level: &str) {
    let filter = format!("{level},fuser=error");
    let _ = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(filter))
        .try_init();
}

/// Daemon logging: to the log file, info by default (RUST_LOG overrides).
pub(crate) fn init_file_logging(file: std::fs::File) {
    let _ = env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or("info,fuser=error"),
    )
    .target(env_logger::Target::Pipe(Box::new(file)))
    .try_init();
}
