//! `cirrus serve`: runs the key service in the foreground (a service manager keeps it
//! running) and prints the one line a client needs: its URL and certificate fingerprint.

use crate::keyservice::server::{
    Front, ServeLimits, ServeOptions, ServiceConfig, Signup, StoreOptions, TrustedProxies,
    WebConfig, parse_cidr,
};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct ServeArgs {
    #[command(subcommand)]
    admin: Option<AdminCmd>,
    /// Address and port to listen on, e.g. 0.0.0.0:8443 (port 0: the system picks one).
    #[arg(long, required = true)]
    listen: Option<SocketAddr>,
    /// Directory of the service's own files: the SQLite database (unless --database), the
    /// master key (unless --master-key-file), the self-signed TLS certificate. A directory
    /// from before the database (JSON files) is imported into it at the first start, the
    /// files kept in DATA/json-backup.
    #[arg(long, required = true)]
    data: Option<PathBuf>,
    /// PostgreSQL database for several replicas, e.g. postgres://cirrus@db.internal/cirrus
    /// (default: SQLite in DATA). Every replica names the same database, master key and
    /// certificate.
    #[arg(long, value_name = "URL")]
    database: Option<String>,
    /// The master key file (32 bytes; default DATA/master.key, made at the first start).
    /// A replica whose key does not open the database's check value refuses to start.
    #[arg(long, value_name = "FILE")]
    master_key_file: Option<PathBuf>,
    /// PEM certificate (chain) to present instead of the self-signed one made in DATA/tls.
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    /// PEM private key of --cert.
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
    /// Memory cost in KiB of the Argon2id verifier the server keeps per account.
    #[arg(long, default_value_t = ServiceConfig::default().verifier_memory_kib)]
    verifier_memory_kib: u32,
    /// Time cost (iterations) of that verifier.
    #[arg(long, default_value_t = ServiceConfig::default().verifier_time)]
    verifier_time: u32,
    /// Seconds a login session stays valid.
    #[arg(long, default_value_t = ServiceConfig::default().session_ttl.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    session_ttl: u64,
    /// Failed logins (or password resets) allowed per account within --login-window;
    /// more get HTTP 429.
    #[arg(long, default_value_t = ServiceConfig::default().login_attempts,
          value_parser = clap::value_parser!(u32).range(1..))]
    login_attempts: u32,
    /// Failed logins, resets and escrow proofs allowed per source address within
    /// --login-window.
    #[arg(long, default_value_t = ServiceConfig::default().ip_attempts,
          value_parser = clap::value_parser!(u32).range(1..))]
    ip_attempts: u32,
    /// Length of the rate-limit window, in seconds.
    #[arg(long, default_value_t = ServiceConfig::default().login_window.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    login_window: u64,
    /// Wrong escrow proofs after which an account's escrow record is destroyed.
    #[arg(long, default_value_t = ServiceConfig::default().escrow_attempts,
          value_parser = clap::value_parser!(u32).range(1..))]
    escrow_attempts: u32,
    /// Seconds a data-recovery reset waits after a right TOTP code before a second request
    /// with a new code can complete it; the account's trusted devices are told at once and
    /// can cancel it (`cirrus account cancel-reset`). Default one day.
    #[arg(long, default_value_t = ServiceConfig::default().reset_wait.as_secs())]
    reset_wait: u64,
    /// Seconds per TOTP step, for the test suite only (refused without
    /// CIRRUS_INSECURE_TEST_KDF=1): authenticator apps assume 30.
    #[arg(long, hide = true, value_parser = clap::value_parser!(u64).range(1..=30))]
    insecure_test_totp_period: Option<u64>,
    /// Who may create accounts: anyone (`open`, at most --signup-per-ip an hour per source
    /// address) or only holders of an invitation from `cirrus serve account create`
    /// (`closed`; advised for a service reachable from the internet).
    #[arg(long, value_enum, default_value_t = Signup::Open)]
    signup: Signup,
    /// Account creations allowed per source address per hour.
    #[arg(long, default_value_t = ServiceConfig::default().signup_per_ip,
          value_parser = clap::value_parser!(u32).range(1..))]
    signup_per_ip: u32,
    /// Seconds a login or `reauth` that proved every factor lets a session change
    /// credentials or recovery (password, TOTP, data recovery, escrow, retiring service
    /// keys, revoking devices).
    #[arg(long, default_value_t = ServiceConfig::default().reauth_window.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    reauth_window: u64,
    /// Open connections allowed in all; more are closed as soon as they are accepted.
    /// Default: the descriptor limit (ulimit -n) less 64; a larger value is lowered to
    /// that.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    max_connections: Option<u64>,
    /// Open connections allowed from one source address (an IPv6 /64 counts as one);
    /// more are closed as soon as they are accepted. Raise it for many clients behind
    /// one NAT.
    #[arg(long, default_value_t = ServeLimits::default().max_connections_per_ip as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    max_connections_per_ip: u64,
    /// Seconds a request may take from the end of its headers to the answer (its body,
    /// the wait for an Argon2 slot, the work); past it: HTTP 408 or 503.
    #[arg(long, default_value_t = ServeLimits::default().request_timeout.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    request_timeout: u64,
    /// Seconds a connection may wait for the complete headers of its next request (the
    /// first one too) before it is closed; also how long a client may leave an answer
    /// unread.
    #[arg(long, default_value_t = ServeLimits::default().idle_timeout.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    idle_timeout: u64,
    /// A load balancer or reverse proxy in front of the service (CIDR block or address;
    /// repeat for several). From such a peer, the caller's address for the per-source
    /// limits and the log is the rightmost X-Forwarded-For entry that is not itself a
    /// trusted proxy; from any other peer the header is ignored. The connection caps
    /// stay per TCP peer: raise --max-connections-per-ip for the proxy.
    #[arg(long = "trusted-proxy", value_name = "CIDR", value_parser = parse_cidr)]
    trusted_proxies: Vec<ipnet::IpNet>,
    /// Also serve Prometheus metrics at http://ADDR/metrics, in plain HTTP without
    /// authentication: ADDR must be a loopback address (e.g. 127.0.0.1:9100). The log
    /// names the address (port 0: the system picks one). Off by default.
    #[arg(long, value_name = "ADDR")]
    admin_listen: Option<SocketAddr>,
    #[command(flatten)]
    web: WebArgs,
}

/// The web front (`--web-listen`): accounts' drives in a browser, read with server-held
/// keys. Off unless --web-listen is given.
#[derive(clap::Args)]
struct WebArgs {
    /// Serve the web front on ADDR (HTTPS, its own certificate), e.g. 0.0.0.0:443.
    #[arg(long, value_name = "ADDR")]
    web_listen: Option<SocketAddr>,
    /// PEM certificate (chain) of the web front, one browsers trust; renewed on its own
    /// schedule (devices pin the API's certificate, never this one). Default: a
    /// self-signed one made in DATA/web-tls.
    #[arg(
        long,
        requires = "web_key",
        requires = "web_listen",
        value_name = "FILE"
    )]
    web_cert: Option<PathBuf>,
    /// PEM private key of --web-cert.
    #[arg(long, requires = "web_cert", value_name = "FILE")]
    web_key: Option<PathBuf>,
    /// A store location the web front may read, as ENDPOINT/BUCKET/PREFIX/ (e.g.
    /// https://s3.example.com/cirrus/); repeat for several. None by default: every `cirrus
    /// web on` is refused until the admin allows the stores it names.
    #[arg(
        long = "web-store-allow",
        value_name = "PREFIX",
        requires = "web_listen"
    )]
    web_store_allow: Vec<String>,
    /// Seconds a web session lasts after its last request.
    #[arg(long, default_value_t = WebConfig::default().idle.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    web_idle: u64,
    /// Seconds a web session lasts in all.
    #[arg(long, default_value_t = WebConfig::default().max.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    web_max: u64,
    /// Seconds the server keeps a category key a trusted device released to a web
    /// session under ADP (`cirrus web approve`, `web release`): at most the hour devices
    /// count before they rotate it.
    #[arg(long, default_value_t = WebConfig::default().release_ttl.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    release_ttl: u64,
    /// Bytes of changes made on the web (uploads, new folders, deletes) that may wait in
    /// an account's store until one of its devices takes them in; more is refused.
    #[arg(long, default_value_t = WebConfig::default().pending_quota,
          value_parser = clap::value_parser!(u64).range(1..))]
    web_pending_quota: u64,
}

impl WebArgs {
    /// The service's web settings and the front to run, if --web-listen was given.
    fn build(self) -> Result<Option<(WebConfig, crate::web::WebOptions)>, String> {
        let Some(listen) = self.web_listen else {
            return Ok(None);
        };
        let mut store_allow = Vec::new();
        for p in self.web_store_allow {
            // A prefix ends at a path boundary, so .../cirrus/ never allows .../cirrus-other.
            let p = if p.ends_with('/') { p } else { format!("{p}/") };
            if !(p.starts_with("https://") || p.starts_with("http://")) {
                return Err(format!(
                    "serve: --web-store-allow {p}: expected ENDPOINT/BUCKET/PREFIX/, e.g. \
                     https://s3.example.com/cirrus/"
                ));
            }
            store_allow.push(p);
        }
        let cfg = WebConfig {
            store_allow,
            idle: Duration::from_secs(self.web_idle),
            max: Duration::from_secs(self.web_max),
            release_ttl: Duration::from_secs(self.release_ttl),
            pending_quota: self.web_pending_quota,
        };
        let opts = crate::web::WebOptions {
            listen,
            cert: self.web_cert.zip(self.web_key),
        };
        Ok(Some((cfg, opts)))
    }
}

/// A count from the command line as a usize (a count past it means "no cap" anyway).
fn saturate(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// Administration of a key service's database (works while it runs).
#[derive(clap::Subcommand)]
enum AdminCmd {
    /// Accounts: invitations for a service that runs with `--signup closed`.
    #[command(subcommand)]
    Account(AccountAdminCmd),
    /// Copy the SQLite database of DATA into an empty PostgreSQL database (stop the
    /// service first), so replicas can share it.
    Migrate {
        /// The service's DATA directory (its SQLite database and master key).
        #[arg(long)]
        data: PathBuf,
        /// The PostgreSQL database to fill, e.g. postgres://cirrus@db.internal/cirrus.
        #[arg(long, value_name = "URL")]
        to: String,
        /// The master key file, if not DATA/master.key.
        #[arg(long, value_name = "FILE")]
        master_key_file: Option<PathBuf>,
    },
}

#[derive(clap::Subcommand)]
enum AccountAdminCmd {
    /// Make a one-time invitation for account NAME and print its code. Its owner passes
    /// it to `cirrus init --server ... --account NAME --invite CODE` (or `cirrus account
    /// move ... --invite CODE`), choosing the password there: the admin never knows it.
    Create {
        /// The account name (1 to 64 of A-Z a-z 0-9 . _ @ -).
        name: String,
        /// The service's DATA directory.
        #[arg(long)]
        data: PathBuf,
        /// The service's PostgreSQL database, if it runs with --database.
        #[arg(long, value_name = "URL")]
        database: Option<String>,
        /// The service's master key file, if not DATA/master.key.
        #[arg(long, value_name = "FILE")]
        master_key_file: Option<PathBuf>,
        /// Days the invitation stays valid.
        #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u64).range(1..=365))]
        valid_days: u64,
    },
}

fn admin(cmd: AdminCmd) -> super::CliResult {
    match cmd {
        AdminCmd::Account(AccountAdminCmd::Create {
            name,
            data,
            database,
            master_key_file,
            valid_days,
        }) => {
            let store = StoreOptions {
                data,
                database,
                master_key_file,
            };
            let code = crate::keyservice::server::invite(
                &store,
                &name,
                Duration::from_secs(valid_days * 86400),
            )
            .map_err(|e| format!("serve account create: {e}"))?;
            println!(
                "Invitation for account {name}, valid for {valid_days} days (shown once):\n\n    {}\n\n\
                 Its owner runs: cirrus init --server URL --fingerprint SHA256:... --account {name} --invite CODE",
                code.as_str()
            );
            Ok(0)
        }
        AdminCmd::Migrate {
            data,
            to,
            master_key_file,
        } => {
            super::init_stderr_logging_level("info");
            let from = StoreOptions {
                data,
                database: None,
                master_key_file,
            };
            let copied = crate::keyservice::server::migrate(&from, &to)
                .map_err(|e| format!("serve migrate: {e}"))?;
            println!(
                "Copied {copied} into {}. Start the replicas with --database URL \
                 --master-key-file FILE --cert FILE --key FILE.",
                crate::keyservice::server::redact_url(&to)
            );
            Ok(0)
        }
    }
}

pub fn run(args: ServeArgs) -> super::CliResult {
    if let Some(cmd) = args.admin {
        return admin(cmd);
    }
    let (Some(listen), Some(data)) = (args.listen, args.data) else {
        return Err("serve: --listen and --data are required".into());
    };
    // A server's log is its record of logins and key changes: info by default.
    super::init_stderr_logging_level("info,rustls=warn");
    let totp_period = match args.insecure_test_totp_period {
        None => crate::keyservice::server::totp::PERIOD,
        Some(p) if crate::keys::floor::insecure_test_opt_in() => {
            log::warn!("TOTP steps of {p} s: a test server, not for authenticator apps");
            p
        }
        Some(_) => {
            return Err(format!(
                "serve: --insecure-test-totp-period is for the test suite (set {}=1)",
                crate::keys::floor::INSECURE_TEST_ENV
            ));
        }
    };
    let web = args.web.build()?;
    let mut fronts: Vec<Box<dyn Front>> = Vec::new();
    if let Some((_, w)) = &web {
        fronts.push(Box::new(crate::web::WebFront::new(w.clone())));
    }
    let opts = ServeOptions {
        fronts,
        listen,
        store: StoreOptions {
            data,
            database: args.database,
            master_key_file: args.master_key_file,
        },
        cert: args.cert.zip(args.key),
        config: ServiceConfig {
            verifier_memory_kib: args.verifier_memory_kib,
            verifier_time: args.verifier_time,
            session_ttl: Duration::from_secs(args.session_ttl),
            login_attempts: args.login_attempts,
            ip_attempts: args.ip_attempts,
            login_window: Duration::from_secs(args.login_window),
            escrow_attempts: args.escrow_attempts,
            reset_wait: Duration::from_secs(args.reset_wait),
            signup: args.signup,
            signup_per_ip: args.signup_per_ip,
            reauth_window: Duration::from_secs(args.reauth_window),
            totp_period,
            web: web.map(|(cfg, _)| cfg),
        },
        limits: ServeLimits {
            max_connections: args.max_connections.map(saturate),
            max_connections_per_ip: saturate(args.max_connections_per_ip),
            request_timeout: Duration::from_secs(args.request_timeout),
            idle_timeout: Duration::from_secs(args.idle_timeout),
        },
        trusted_proxies: TrustedProxies::new(args.trusted_proxies),
        admin_listen: args.admin_listen,
    };
    crate::keyservice::server::serve(opts, |started| {
        // One line per listener on stdout, the key service's first: scripts and the
        // first-contact prompt read it.
        let mut out = std::io::stdout().lock();
        for s in started {
            let _ = writeln!(
                out,
                "cirrus {} listening on https://{} fingerprint {}",
                s.name, s.addr, s.fingerprint
            );
        }
        let _ = out.flush();
    })
    .map_err(|e| format!("serve: {e}"))?;
    Ok(0)
}
