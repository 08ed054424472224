//! The daemon's control channel: a Unix socket, `HOME/run/control.sock` (mode 0600, made
//! by the daemon and removed when it exits), taking one JSON request line per connection
//! and answering with JSON lines. Work on a mounted drive that must not have a second
//! writer beside the daemon (a key rotation commits heads) is asked for through it.
//!
//! Protocol (docs/FORMAT.md §6a): request `{"op":"rotate","category":"Photos"}`; replies
//! `{"done":N,"total":N}` (progress, any number) then exactly one final `{"ok":true,
//! "message":".."}` or `{"error":".."}`. A client that goes away cancels its request.

use crate::home::Home;
use log::{info, warn};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// One request, one line of JSON.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Request {
    pub op: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Rotation: file bytes re-encrypted between two commits (default 64 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_bytes: Option<u64>,
    /// Rotation: the protection class the new key version gets (ADP), e.g. "e2e".
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
        // The run directory is private already; the socket is too, explicitly.
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

fn accept_loop(listener: UnixListener, handler: Arc<Handler>, stop: Arc<AtomicBool>) {
    let cancels: Arc<Mutex<Vec<Arc<AtomicBool>>>> = Arc::default();
    let mut workers: Vec<JoinHandle<()>> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                let cancel = Arc::new(AtomicBool::new(false));
                lock(&cancels).push(cancel.clone());
                let h = handler.clone();
                match std::thread::Builder::new()
                    .name("control-request".into())
                    .spawn(move || serve_one(stream, &*h, &cancel))
                {
                    Ok(t) => workers.push(t),
                    Err(e) => warn!("control: cannot start a request thread: {e}"),
                }
                workers.retain(|t| !t.is_finished());
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
    for c in lock(&cancels).iter() {
        c.store(true, Ordering::Relaxed);
    }
    for t in workers {
        let _ = t.join();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn serve_one(stream: UnixStream, handler: &Handler, cancel: &AtomicBool) {
    // The accepted socket inherits non-blocking mode on some systems; requests block.
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let Ok(mut w) = stream.try_clone() else {
        return;
    };
    let mut line = String::new();
    let mut r = BufReader::new(stream);
    let reply = match r.read_line(&mut line) {
        Ok(0) => return,
        Ok(_) => match serde_json::from_str::<Request>(line.trim_end()) {
            Ok(req) => {
                let mut send = |rep: &Reply| {
                    if write_reply(&mut w, rep).is_err() {
                        // The client is gone (Ctrl-C): stop its work at the next batch.
                        cancel.store(true, Ordering::Relaxed);
                    }
                };
                handler(&req, cancel, &mut send)
            }
            Err(e) => Reply::error(format!("bad request: {e}")),
        },
        Err(e) => Reply::error(format!("cannot read the request: {e}")),
    };
    let _ = write_reply(&mut w, &reply);
}

fn write_reply(w: &mut UnixStream, r: &Reply) -> std::io::Result<()> {
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
}
