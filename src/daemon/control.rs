//! The daemon's control channel: a Unix socket, `HOME/run/control.sock` (mode 0600, made
//! by the daemon and removed when it exits), taking one JSON request line per connection
//! and answering with JSON lines. Work on a mounted drive that must not have a second
//! writer beside the daemon (a key rotation commits heads) is asked for through it.
//! Only the daemon's own user is served (SO_PEERCRED); a request line is bounded in size
//! and time, at most [`MAX_CONNECTIONS`] are served at once, and stopping cuts every
//! connection, so no client can hold the daemon's memory, threads or exit.
//!
//! Protocol (docs/FORMAT.md §6a): request `{"op":"rotate","category":"Photos"}`; replies
//! `{"done":N,"total":N}` (progress, any number) then exactly one final `{"ok":true,
//! "message":".."}` or `{"error":".."}`. A client that goes away cancels its request.

use crate::home::Home;
use log::{info, warn};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::TrySendError;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The longest request line the daemon reads (requests are a few dozen bytes).
pub const MAX_REQUEST: u64 = 64 << 10;
/// The time a client has to send its whole request line.
const REQUEST_DEADLINE: Duration = Duration::from_secs(10);
/// The time one reply line may take to reach a client that reads slowly or not at all.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Requests served at once; a connection beyond them gets a "busy" error.
pub const MAX_CONNECTIONS: usize = 8;

/// One request, one line of JSON.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Request {
    pub op: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Rotation: file bytes re-encrypted between two commits (default 64 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_bytes: Option<u64>,
    /// Rotation: the protection class the new key version gets, "e2e" (what `adp on`
    /// sends). Not trusted: the engine refuses every change `adp on` would not make.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// Sync: wait until the upload queue is drained, sending progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<bool>,
    /// Sync: stop waiting after this many seconds without upload progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stall_secs: Option<u64>,
}

/// One reply line: progress (`done`, `total`), or the final `ok` / `error`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Reply {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ok: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Sync: the upload queue's state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<crate::store::writeback::SyncStatus>,
    /// Sync: what the poll of the other devices' heads did, per category.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull: Option<crate::sync::PollReport>,
    /// Status: the report `cirrus status` prints (`crate::report::StatusReport`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<serde_json::Value>,
}

impl Reply {
    pub fn progress(done: u64, total: u64) -> Self {
        Reply {
            done: Some(done),
            total: Some(total),
            ..Default::default()
        }
    }
    pub fn ok(message: String) -> Self {
        Reply {
            ok: Some(true),
            message: Some(message),
            ..Default::default()
        }
    }
    pub fn error(e: String) -> Self {
        Reply {
            error: Some(e),
            ..Default::default()
        }
    }
}

pub fn socket_path(home: &Home) -> PathBuf {
    home.run_dir().join("control.sock")
}

/// Sends `req` to the daemon of `home` and waits for the final reply, calling `progress`
/// for each progress line. `Ok(message)` or `Err(the daemon's error)`.
pub fn request(
    home: &Home,
    req: &Request,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<String, String> {
    let r = exchange(home, req, &mut |r| {
        if let (Some(d), Some(t)) = (r.done, r.total) {
            progress(d, t);
        }
    })?;
    match r.error {
        Some(e) => Err(e),
        None => Ok(r.message.unwrap_or_default()),
    }
}

/// Sends `req` and returns the final reply (ok or error), handing every other line to
/// `each`.
pub fn exchange(home: &Home, req: &Request, each: &mut dyn FnMut(&Reply)) -> Result<Reply, String> {
    let path = socket_path(home);
    let stream = UnixStream::connect(&path).map_err(|e| {
        format!(
            "the drive is mounted but its daemon does not answer on {} ({e})",
            path.display()
        )
    })?;
    let mut w = stream
        .try_clone()
        .map_err(|e| format!("control socket: {e}"))?;
    let mut line = serde_json::to_string(req).map_err(|e| e.to_string())?;
    line.push('\n');
    w.write_all(line.as_bytes())
        .map_err(|e| format!("cannot send to the daemon: {e}"))?;
    for l in BufReader::new(stream).lines() {
        let l = l.map_err(|e| format!("lost the daemon: {e}"))?;
        let r: Reply = serde_json::from_str(&l)
            .map_err(|e| format!("unexpected reply from the daemon ({e}): {l}"))?;
        if r.error.is_some() || r.ok == Some(true) {
            return Ok(r);
        }
        each(&r);
    }
    Err("the daemon closed the connection before finishing (did it exit? see the log)".into())
}

/// What the daemon does with a request: `send` streams progress replies, `cancel` is set
/// when the client went away or the daemon is stopping. Returns the final reply.
pub type Handler = dyn Fn(&Request, &AtomicBool, &mut dyn FnMut(&Reply)) -> Reply + Send + Sync;

/// The listening side, run by the daemon.
pub struct Server {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl Server {
    /// Binds the socket (replacing a stale one: the caller holds the daemon lock, so no
    /// other daemon can be using it) and serves requests in threads of their own.
    pub fn start(home: &Home, handler: Arc<Handler>) -> Result<Server, String> {
        let path = socket_path(home);
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)
            .map_err(|e| format!("cannot create the control socket {}: {e}", path.display()))?;
        // The run directory is private (0700, checked at daemon start), so nobody else can
        // reach the socket between bind and chmod; the socket is private too, explicitly.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("cannot restrict {}: {e}", path.display()))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("control socket: {e}"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        let accept = std::thread::Builder::new()
            .name("control".into())
            .spawn(move || accept_loop(listener, handler, st))
            .map_err(|e| format!("cannot start the control thread: {e}"))?;
        info!("control socket at {}", path.display());
        Ok(Server {
            path,
            stop,
            accept: Some(accept),
        })
    }

    /// Cancels running requests, waits for them to end (a rotation stops after its
    /// current batch, which is committed) and removes the socket.
    pub fn shutdown(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.accept.is_some() {
            self.stop.store(true, Ordering::Relaxed);
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// One request being served: its thread, its cancel flag and a handle on its socket, so
/// stopping can cut the connection instead of waiting on a client that stalls.
struct Conn {
    cancel: Arc<AtomicBool>,
    stream: UnixStream,
    thread: JoinHandle<()>,
}

fn accept_loop(listener: UnixListener, handler: Arc<Handler>, stop: Arc<AtomicBool>) {
    let mut conns: Vec<Conn> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                // Finished requests leave the list (it would otherwise grow per connection).
                conns.retain(|c| !c.thread.is_finished());
                if let Some(conn) = admit(stream, conns.len(), &handler) {
                    conns.push(conn);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => {
                warn!("control: accept failed: {e}");
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
    // Cut every connection: a client that stalls (or sends a byte now and then) must not
    // keep the daemon from exiting. Work in progress sees `cancel` and stops after its
    // current batch, which is committed.
    for c in &conns {
        c.cancel.store(true, Ordering::Relaxed);
        let _ = c.stream.shutdown(Shutdown::Both);
    }
    for c in conns {
        let _ = c.thread.join();
    }
}

/// Starts serving `stream` in a thread of its own, unless its peer is another user or
/// `running` requests already take every slot (the client is told why).
fn admit(stream: UnixStream, running: usize, handler: &Arc<Handler>) -> Option<Conn> {
    match peer_uid(&stream) {
        // SAFETY: geteuid has no preconditions.
        Ok(uid) if uid == unsafe { libc::geteuid() } => {}
        Ok(uid) => {
            warn!("control: refused a connection from uid {uid}");
            refuse(
                stream,
                "the control socket serves only the user running the daemon",
            );
            return None;
        }
        Err(e) => {
            warn!("control: cannot identify a peer ({e}); refused");
            return None;
        }
    }
    if running >= MAX_CONNECTIONS {
        refuse(
            stream,
            &format!("the daemon is busy ({MAX_CONNECTIONS} requests running); retry later"),
        );
        return None;
    }
    let cancel = Arc::new(AtomicBool::new(false));
    let handle = stream.try_clone().ok()?;
    let (h, c) = (handler.clone(), cancel.clone());
    match std::thread::Builder::new()
        .name("control-request".into())
        .spawn(move || serve_one(stream, &*h, &c))
    {
        Ok(thread) => Some(Conn {
            cancel,
            stream: handle,
            thread,
        }),
        Err(e) => {
            warn!("control: cannot start a request thread: {e}");
            None
        }
    }
}

/// Answers `why` without blocking the accept loop (one short line fits any socket
/// buffer) and closes the connection.
fn refuse(stream: UnixStream, why: &str) {
    let _ = stream.set_nonblocking(true);
    let _ = write_reply(&stream, &Reply::error(why.to_string()));
}

/// The uid of the process at the other end of `s` (SO_PEERCRED: what the kernel recorded
/// when it connected, not what it claims).
fn peer_uid(s: &UnixStream) -> std::io::Result<u32> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are valid for writes and `len` is their size.
    let r = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(cred.uid)
}

fn serve_one(stream: UnixStream, handler: &Handler, cancel: &AtomicBool) {
    // The accepted socket inherits non-blocking mode on some systems; requests block.
    let _ = stream.set_nonblocking(false);
    // A client that stops reading cannot hold a write (and the daemon's exit) for longer.
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    match read_request(&stream) {
        Ok(None) => {}
        Ok(Some(req)) => run_request(&stream, handler, &req, cancel),
        Err(e) => {
            let _ = write_reply(&stream, &Reply::error(e.to_string()));
        }
    }
    // The accept loop keeps a handle on this socket until it prunes it: end the
    // connection now, so a client reading to the end sees it.
    let _ = stream.shutdown(Shutdown::Both);
}

/// Why a request line could not be read.
#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error("request longer than {} KiB", MAX_REQUEST >> 10)]
    TooLong,
    #[error("the request did not arrive within {}s", REQUEST_DEADLINE.as_secs())]
    TooSlow,
    #[error("cannot read the request: {0}")]
    Io(std::io::Error),
    #[error("bad request: {0}")]
    Bad(serde_json::Error),
}

/// Reads the one request line: at most [`MAX_REQUEST`] bytes, all of it within
/// [`REQUEST_DEADLINE`] (a per-read timeout alone lets a client send a byte every few
/// seconds forever). `None`: the client closed without sending anything.
fn read_request(mut stream: &UnixStream) -> Result<Option<Request>, ReadError> {
    let deadline = Instant::now() + REQUEST_DEADLINE;
    let mut line = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let left = deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or(ReadError::TooSlow)?;
        stream.set_read_timeout(Some(left)).map_err(ReadError::Io)?;
        let n = match stream.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(ReadError::TooSlow);
            }
            Err(e) => return Err(ReadError::Io(e)),
        };
        if n == 0 && line.is_empty() {
            return Ok(None);
        }
        let end = chunk[..n].iter().position(|b| *b == b'\n');
        line.extend_from_slice(&chunk[..end.unwrap_or(n)]);
        if line.len() as u64 > MAX_REQUEST {
            return Err(ReadError::TooLong);
        }
        if n == 0 || end.is_some() {
            break;
        }
    }
    serde_json::from_slice(&line)
        .map(Some)
        .map_err(ReadError::Bad)
}

/// Runs `req`, its replies going out through a writer thread: the handler never blocks on
/// a client that does not read (it may hold the account lock, which the sync hooks need).
/// Progress lines are dropped while the writer is behind (each one is a whole state); the
/// final reply waits for room, at most a write timeout per line ahead of it.
fn run_request(stream: &UnixStream, handler: &Handler, req: &Request, cancel: &AtomicBool) {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Reply>(16);
    std::thread::scope(|s| {
        let writer = std::thread::Builder::new()
            .name("control-reply".into())
            .spawn_scoped(s, || {
                for r in rx {
                    if write_reply(stream, &r).is_err() {
                        // The client is gone (Ctrl-C) or stalled: stop its work at the next
                        // batch.
                        cancel.store(true, Ordering::Relaxed);
                        break;
                    }
                }
            });
        if let Err(e) = writer {
            warn!("control: cannot start a reply thread: {e}");
            let _ = write_reply(stream, &Reply::error("the daemon is out of threads".into()));
            return;
        }
        let mut send = |rep: &Reply| {
            if let Err(TrySendError::Disconnected(_)) = tx.try_send(rep.clone()) {
                cancel.store(true, Ordering::Relaxed);
            }
        };
        let reply = handler(req, cancel, &mut send);
        let _ = tx.send(reply);
        drop(tx);
    });
}

fn write_reply(mut w: &UnixStream, r: &Reply) -> std::io::Result<()> {
    let mut s = serde_json::to_string(r).map_err(std::io::Error::other)?;
    s.push('\n');
    w.write_all(s.as_bytes())
}

/// Whether a daemon control socket exists for `home` (not whether it answers).
pub fn socket_exists(home: &Home) -> bool {
    Path::new(&socket_path(home)).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_format_is_plain_json_lines() {
        let req = Request {
            op: "rotate".into(),
            category: Some("Photos".into()),
            ..Default::default()
        };
        let s = serde_json::to_string(&req).unwrap();
        assert_eq!(s, r#"{"op":"rotate","category":"Photos"}"#);
        assert_eq!(serde_json::from_str::<Request>(&s).unwrap(), req);
        assert_eq!(
            serde_json::to_string(&Reply::progress(5, 10)).unwrap(),
            r#"{"done":5,"total":10}"#
        );
        assert_eq!(
            serde_json::to_string(&Reply::error("no".into())).unwrap(),
            r#"{"error":"no"}"#
        );
    }

    #[test]
    fn a_request_round_trips_through_a_socket() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path().to_path_buf());
        std::fs::create_dir_all(home.run_dir()).unwrap();
        let handler: Arc<Handler> = Arc::new(|req, _cancel, send| {
            send(&Reply::progress(1, 2));
            send(&Reply::progress(2, 2));
            Reply::ok(format!("did {}", req.op))
        });
        let server = Server::start(&home, handler).unwrap();
        let mode = std::fs::metadata(socket_path(&home))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let mut seen = Vec::new();
        let req = Request {
            op: "ping".into(),
            category: None,
            ..Default::default()
        };
        let r = request(&home, &req, &mut |d, t| seen.push((d, t)));
        assert_eq!(r, Ok("did ping".into()));
        assert_eq!(seen, vec![(1, 2), (2, 2)]);
        server.shutdown();
        assert!(!socket_exists(&home));
    }

    /// A server over a fresh home with `handler`.
    fn serve(handler: Arc<Handler>) -> (tempfile::TempDir, Home, Server) {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path().to_path_buf());
        std::fs::create_dir_all(home.run_dir()).unwrap();
        let server = Server::start(&home, handler).unwrap();
        (dir, home, server)
    }

    fn reply_line(s: &UnixStream) -> Reply {
        let mut l = String::new();
        BufReader::new(s).read_line(&mut l).unwrap();
        serde_json::from_str(&l).unwrap()
    }

    #[test]
    fn a_request_line_is_bounded_in_size() {
        let (_d, home, server) = serve(Arc::new(|_, _, _| Reply::ok("done".into())));
        let mut s = UnixStream::connect(socket_path(&home)).unwrap();
        // No newline ever: the daemon must stop reading, not buffer it all.
        let _ = s.write_all(&vec![b'x'; (MAX_REQUEST as usize) * 2]);
        let r = reply_line(&s);
        assert!(
            r.error.as_deref().unwrap().contains("longer than 64 KiB"),
            "{r:?}"
        );
        server.shutdown();
    }

    #[test]
    fn a_client_that_drips_bytes_does_not_hold_the_daemon() {
        let (_d, home, server) = serve(Arc::new(|_, _, _| Reply::ok("done".into())));
        let mut s = UnixStream::connect(socket_path(&home)).unwrap();
        let drip = std::thread::spawn(move || {
            for _ in 0..30 {
                if s.write_all(b" ").is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        });
        std::thread::sleep(Duration::from_millis(700));
        let t = Instant::now();
        server.shutdown();
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        drip.join().unwrap();
    }

    #[test]
    fn a_client_that_does_not_read_does_not_block_the_handler() {
        let (tx, rx) = std::sync::mpsc::channel();
        let tx = std::sync::Mutex::new(tx);
        // Far more progress than a socket buffer holds, as a long rotation sends.
        let (_d, home, server) = serve(Arc::new(move |_, _, send| {
            for i in 0..200_000 {
                send(&Reply::progress(i, 200_000));
            }
            let _ = tx.lock().unwrap().send(());
            Reply::ok("done".into())
        }));
        let mut s = UnixStream::connect(socket_path(&home)).unwrap();
        s.write_all(b"{\"op\":\"rotate\"}\n").unwrap();
        rx.recv_timeout(Duration::from_secs(20))
            .expect("the handler blocked on a client that does not read");
        let t = Instant::now();
        server.shutdown();
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        drop(s);
    }

    #[test]
    fn connections_beyond_the_cap_are_told_the_daemon_is_busy() {
        let (_d, home, server) = serve(Arc::new(|_, _, _| Reply::ok("done".into())));
        let idle: Vec<UnixStream> = (0..MAX_CONNECTIONS)
            .map(|_| UnixStream::connect(socket_path(&home)).unwrap())
            .collect();
        std::thread::sleep(Duration::from_millis(500));
        let ping = Request {
            op: "ping".into(),
            ..Default::default()
        };
        let e = request(&home, &ping, &mut |_, _| {}).unwrap_err();
        assert!(e.contains("busy"), "{e}");
        // Finished connections free their slots (and leave the server's list).
        drop(idle);
        std::thread::sleep(Duration::from_millis(500));
        for _ in 0..MAX_CONNECTIONS * 2 {
            assert_eq!(request(&home, &ping, &mut |_, _| {}), Ok("done".into()));
        }
        server.shutdown();
    }

    #[test]
    fn the_connection_ends_after_the_final_reply() {
        let (_d, home, server) = serve(Arc::new(|_, _, _| Reply::ok("done".into())));
        let mut s = UnixStream::connect(socket_path(&home)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"{\"op\":\"ping\"}\n").unwrap();
        let mut all = String::new();
        s.read_to_string(&mut all)
            .expect("the daemon kept the connection open");
        assert_eq!(all, "{\"ok\":true,\"message\":\"done\"}\n");
        server.shutdown();
    }

    #[test]
    fn the_peer_is_known_by_its_uid() {
        let (a, _b) = UnixStream::pair().unwrap();
        // SAFETY: geteuid has no preconditions.
        assert_eq!(peer_uid(&a).unwrap(), unsafe { libc::geteuid() });
    }
}
