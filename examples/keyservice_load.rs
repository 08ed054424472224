//! The load generator of `scripts/bench-keyservice` (docs/BENCH.md "Key service
//! benchmark"): N client threads, each with its own connection, drive a running `cirrus
//! serve` (or several replicas, spread round-robin) for a bounded time and print one JSON
//! line per operation with throughput and latency percentiles. It lives in the project so
//! it speaks the key service's protocol through the real client library.
//!
//! Operations:
//! - `login`: a whole `KeyClient::login` (the `salt` request, the client's Argon2 with
//!   the account's KDF cost, the `login` request, whose server side runs the Argon2
//!   verifier at the server's cost). Accounts are made with a tiny client KDF, so the
//!   client's share is microseconds and the figure is the server's.
//! - `fetch`: `Session::service_unwrap` of one standard category key, the request a
//!   device makes to get a category's key (session lookup, account load, unwrap).
//!
//! Not a test: nothing in CI runs it. Build with `cargo build --release --example
//! keyservice_load`.

use cirrus::crypto::{SecretKey, random_key};
use cirrus::keys::{KdfParams, category_key_context};
use cirrus::keyservice::Fingerprint;
use cirrus::keyservice::client::{KeyClient, Password, SecondFactor, Session};
use std::error::Error;
use std::sync::Barrier;
use std::time::{Duration, Instant};

type Res<T> = Result<T, Box<dyn Error + Send + Sync>>;

/// The client's own password KDF: tiny, so a login measures the server (whose verifier
/// keeps its own, real cost). Needs `CIRRUS_INSECURE_TEST_KDF=1` or the in-process opt-in.
const CLIENT_KDF: KdfParams = KdfParams {
    memory_kib: 8,
    time: 1,
    lanes: 1,
};

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Op {
    Login,
    Fetch,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Login => "login",
            Op::Fetch => "fetch",
        }
    }
}

#[derive(clap::Parser)]
struct Args {
    /// The service's URL (https://IP:PORT); repeat it for replicas of one database.
    #[arg(long = "url", required = true)]
    urls: Vec<String>,
    /// The certificate fingerprint (SHA256:<hex>) every URL presents.
    #[arg(long)]
    fingerprint: String,
    /// Concurrent clients, each a thread with its own connection and account.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Operations to measure, one after the other, on the same accounts.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "fetch,login")]
    ops: Vec<Op>,
    /// Seconds each operation is measured for.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Requests per client at most (the loop's other bound).
    #[arg(long, default_value_t = 1_000_000)]
    max_requests: u64,
    /// Untimed requests per client before the clock starts (connections, caches).
    #[arg(long, default_value_t = 3)]
    warmup: u64,
    /// Prefix of the accounts made (one per client): unique per run on one database.
    #[arg(long, default_value = "bench")]
    prefix: String,
    /// A key service process whose CPU time is counted as "server" (repeat per replica).
    #[arg(long = "server-pid")]
    server_pids: Vec<u32>,
    /// A database server's parent process (PostgreSQL's postmaster): its CPU time, its
    /// children's and its reaped children's is counted as "db".
    #[arg(long = "db-pid")]
    db_pid: Option<u32>,
}

/// CPU seconds (user + system) of a process from `/proc/PID/stat`: its own and, with
/// `reaped`, that of its children it has waited for. `None` when it is gone.
fn cpu_seconds(pid: &str, reaped: bool) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the parenthesised command name: state is field 3, so utime (14)
    // is at index 11 here, stime 12, cutime 13, cstime 14.
    let f: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let mut t = ticks(11) + ticks(12);
    if reaped {
        t += ticks(13) + ticks(14);
    }
    // USER_HZ: 100 on every Linux architecture this runs on.
    Some(t / 100.0)
}

/// The children of `parent` (from each process's parent pid in `/proc/*/stat`).
fn children_of(parent: u32) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.parse::<u32>().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let ppid: u32 = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            (ppid == parent).then_some(name)
        })
        .collect()
}

/// CPU seconds used so far by the key service processes, the database and this process.
#[derive(Clone, Copy, Default)]
struct Cpu {
    server: f64,
    db: f64,
    client: f64,
}

impl Cpu {
    fn now(args: &Args) -> Cpu {
        let server = args
            .server_pids
            .iter()
            .filter_map(|p| cpu_seconds(&p.to_string(), false))
            .sum();
        let db = args.db_pid.map_or(0.0, |p| {
            cpu_seconds(&p.to_string(), true).unwrap_or(0.0)
                + children_of(p)
                    .iter()
                    .filter_map(|c| cpu_seconds(c, false))
                    .sum::<f64>()
        });
        Cpu {
            server,
            db,
            client: cpu_seconds("self", false).unwrap_or(0.0),
        }
    }
}

/// What one client thread did.
struct Outcome {
    latencies_us: Vec<u32>,
    errors: u64,
    first_error: Option<String>,
    finished: Instant,
}

/// One client's account: its session (for fetches) and the wrapped category key.
struct Client {
    key_client: KeyClient,
    account: String,
    session: Session,
    ctx: Vec<u8>,
    wrapped: Vec<u8>,
}

fn password(account: &str) -> Password {
    Password::new(format!("bench password of {account}"))
}

/// One account per client, made through the client's replica; each wraps one category
/// key once (what a device stores after making a standard category).
fn setup(args: &Args, pin: Fingerprint) -> Res<Vec<Client>> {
    let ctx = category_key_context(3, 1).to_bytes();
    (0..args.clients)
        .map(|i| {
            let url = &args.urls[i % args.urls.len()];
            let key_client = KeyClient::new(url, pin)?.with_min_kdf(CLIENT_KDF);
            let account = format!("{}-{i}", args.prefix);
            let session = key_client.create_account(&account, &password(&account), CLIENT_KDF)?;
            let key: SecretKey = random_key()?;
            let wrapped = session.service_wrap(&ctx, &key)?;
            // The check that the round trip is right, once, outside the timed loop.
            if session.service_unwrap(&ctx, &wrapped)?.expose() != key.expose() {
                return Err("service_unwrap returned another key".into());
            }
            Ok(Client {
                key_client,
                account,
                session,
                ctx: ctx.to_vec(),
                wrapped,
            })
        })
        .collect()
}

/// One request of `op` for client `c`.
fn request(op: Op, c: &Client, session: &Session) -> Res<()> {
    match op {
        Op::Fetch => {
            session.service_unwrap(&c.ctx, &c.wrapped)?;
        }
        Op::Login => {
            c.key_client
                .login(&c.account, &password(&c.account), SecondFactor::None, false)?;
        }
    }
    Ok(())
}

/// One client thread: warm-up, then (once every thread is warm: `start`) the timed loop
/// for `args.seconds` or `args.max_requests` requests, whichever ends first.
fn client_loop(op: Op, c: &Client, args: &Args, start: &Barrier) -> Outcome {
    // A connection of this thread's own (a `KeyClient` keeps its connections).
    let own = c.key_client.clone();
    let session = c.session.via(&own);
    let mut out = Outcome {
        latencies_us: Vec::new(),
        errors: 0,
        first_error: None,
        finished: Instant::now(),
    };
    for _ in 0..args.warmup {
        let _ = request(op, c, &session);
    }
    start.wait();
    let deadline = Instant::now() + Duration::from_secs_f64(args.seconds);
    let mut n = 0;
    while n < args.max_requests && Instant::now() < deadline {
        let t = Instant::now();
        match request(op, c, &session) {
            Ok(()) => {
                let us = t.elapsed().as_micros();
                out.latencies_us.push(u32::try_from(us).unwrap_or(u32::MAX));
            }
            Err(e) => {
                out.errors += 1;
                out.first_error.get_or_insert_with(|| e.to_string());
            }
        }
        n += 1;
    }
    out.finished = Instant::now();
    out
}

/// The nearest-rank percentile `q` (0..1] of sorted `v`, in milliseconds.
fn percentile_ms(v: &[u32], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    f64::from(v[rank - 1]) / 1000.0
}

/// Runs `op` on every client at once and prints its JSON line.
fn measure(op: Op, clients: &[Client], args: &Args) -> Res<()> {
    let barrier = Barrier::new(clients.len() + 1);
    let (started, cpu_before, outcomes) = std::thread::scope(|s| {
        let handles: Vec<_> = clients
            .iter()
            .map(|c| {
                let b = &barrier;
                s.spawn(move || client_loop(op, c, args, b))
            })
            .collect();
        barrier.wait();
        let started = Instant::now();
        let cpu = Cpu::now(args);
        let outcomes = handles
            .into_iter()
            .map(|h| h.join())
            .collect::<Result<Vec<_>, _>>();
        (started, cpu, outcomes)
    });
    let cpu_after = Cpu::now(args);
    let outcomes = outcomes.map_err(|_| "a client thread panicked")?;
    let finished = outcomes.iter().map(|o| o.finished).max().unwrap_or(started);
    let wall = finished.duration_since(started).as_secs_f64();
    let mut lat: Vec<u32> = outcomes
        .iter()
        .flat_map(|o| o.latencies_us.iter().copied())
        .collect();
    lat.sort_unstable();
    let errors: u64 = outcomes.iter().map(|o| o.errors).sum();
    let first_error = outcomes.iter().find_map(|o| o.first_error.clone());
    let per_op = |secs: f64| secs * 1e3 / lat.len().max(1) as f64;
    let mean_ms = lat.iter().map(|&u| f64::from(u)).sum::<f64>() / lat.len().max(1) as f64 / 1e3;
    let line = serde_json::json!({
        "op": op.name(),
        "clients": clients.len(),
        "replicas": args.urls.len(),
        "ok": lat.len(),
        "errors": errors,
        "first_error": first_error,
        "seconds": wall,
        "ops_per_s": if wall > 0.0 { lat.len() as f64 / wall } else { 0.0 },
        "p50_ms": percentile_ms(&lat, 0.50),
        "p99_ms": percentile_ms(&lat, 0.99),
        "mean_ms": mean_ms,
        // CPU milliseconds per successful request, by whom (a clock tick is 10 ms: read
        // it over many requests).
        "cpu_ms_per_op": {
            "server": per_op(cpu_after.server - cpu_before.server),
            "db": per_op(cpu_after.db - cpu_before.db),
            "client": per_op(cpu_after.client - cpu_before.client),
        },
        "cpu_busy": (cpu_after.server + cpu_after.db + cpu_after.client
            - cpu_before.server - cpu_before.db - cpu_before.client) / wall.max(1e-9),
    });
    println!("{line}");
    Ok(())
}

fn main() -> Res<()> {
    let args = <Args as clap::Parser>::parse();
    cirrus::keys::floor::allow_insecure_test_kdf();
    let pin: Fingerprint = args
        .fingerprint
        .parse()
        .map_err(|_| format!("bad fingerprint {:?}", args.fingerprint))?;
    if args.clients == 0 {
        return Err("--clients must be at least 1".into());
    }
    let clients = setup(&args, pin)?;
    for &op in &args.ops {
        measure(op, &clients, &args)?;
    }
    Ok(())
}
