//! Small servers running as threads inside a namespace, stopped when their
//! handle drops. Sockets wait at most [`TICK`] at a time so that a stop
//! request is noticed promptly, however idle the peer.

use std::{
    collections::VecDeque,
    io::{ErrorKind, Read, Write},
    net::{SocketAddr, TcpListener, TcpStream, UdpSocket},
    os::fd::AsRawFd,
    sync::{
        atomic::{AtomicBool, AtomicU16, AtomicU64, AtomicUsize, Ordering},
        mpsc, Arc, Mutex,
    },
    thread::{self, JoinHandle},
    time::Duration,
};

use anyhow::{anyhow, Result};

use crate::netns::Netns;

const TICK: Duration = Duration::from_millis(50);
const MAX_REQUEST: usize = 64 * 1024;
const PEERS_KEPT: usize = 1024;

#[derive(Default)]
struct Stats {
    requests: AtomicU64,
    active: AtomicUsize,
    peers: Mutex<VecDeque<SocketAddr>>,
}

impl Stats {
    fn served(&self, peer: SocketAddr) {
        self.requests.fetch_add(1, Ordering::SeqCst);
        let mut peers = self.peers.lock().unwrap();
        if peers.len() == PEERS_KEPT {
            peers.pop_front();
        }
        peers.push_back(peer);
    }
}

/// A running server; dropping it stops it (and joins its threads).
pub struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    stats: Arc<Stats>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// The bound address (the real port when asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Requests answered so far (HTTP requests, datagrams, lines).
    pub fn requests(&self) -> u64 {
        self.stats.requests.load(Ordering::SeqCst)
    }

    /// Open TCP connections right now.
    pub fn active(&self) -> usize {
        self.stats.active.load(Ordering::SeqCst)
    }

    /// Source addresses of the latest requests, oldest first (NAT keeps the
    /// client's address; DR/TUN too).
    pub fn peers(&self) -> Vec<SocketAddr> {
        self.stats.peers.lock().unwrap().iter().copied().collect()
    }

    pub fn stop(self) {}
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// HTTP/1.1 on `addr` answering every request with `200` and `body`;
/// keep-alive unless the client says `Connection: close` (or speaks 1.0).
pub fn http(ns: &Netns, addr: SocketAddr, body: &str) -> Result<Server> {
    http_in(Some(ns), addr, body)
}

/// [`http`] in the calling thread's own namespace (for a process that was
/// started inside one, like `cargo xtask serve-http`).
pub fn http_here(addr: SocketAddr, body: &str) -> Result<Server> {
    http_in(None, addr, body)
}

fn http_in(ns: Option<&Netns>, addr: SocketAddr, body: &str) -> Result<Server> {
    let body: Arc<str> = body.into();
    tcp_server(ns, "http", addr, move |stream, stop, stats| {
        serve_http(stream, stop, stats, &body)
    })
}

/// [`http`] whose answer to `path` has the status `status` holds at the
/// time (200 or 500, say), while every other path keeps answering 200:
/// a health URL that can fail while the port still serves.
pub fn http_health(
    ns: &Netns,
    addr: SocketAddr,
    body: &str,
    path: &str,
    status: Arc<AtomicU16>,
) -> Result<Server> {
    let body: Arc<str> = body.into();
    let path: Arc<str> = path.into();
    tcp_server(Some(ns), "http-health", addr, move |stream, stop, stats| {
        let status_of = |p: &str| {
            if p == &*path {
                status.load(Ordering::SeqCst)
            } else {
                200
            }
        };
        serve_http_with(stream, stop, stats, &body, &status_of)
    })
}

/// TCP on `addr` that keeps each connection open and answers every line
/// with `name`: for long-lived connection tests.
pub fn line(ns: &Netns, addr: SocketAddr, name: &str) -> Result<Server> {
    let name: Arc<str> = name.into();
    tcp_server(Some(ns), "line", addr, move |stream, stop, stats| {
        serve_lines(stream, stop, stats, &name)
    })
}

/// [`line`], answering every line with `name`, a space and the line
/// itself: clients check that what comes back is what they sent.
pub fn echo_line(ns: &Netns, addr: SocketAddr, name: &str) -> Result<Server> {
    let name: Arc<str> = name.into();
    tcp_server(Some(ns), "echo", addr, move |stream, stop, stats| {
        serve_echo(stream, stop, stats, &name)
    })
}

/// UDP on `addr` answering each datagram with `name`.
pub fn udp(ns: &Netns, addr: SocketAddr, name: &str) -> Result<Server> {
    let name = name.to_owned();
    start(Some(ns), "udp", move |stop, stats, ready| {
        let sock = match UdpSocket::bind(addr).and_then(|s| {
            s.set_read_timeout(Some(TICK))?;
            Ok(s)
        }) {
            Ok(s) => s,
            Err(e) => return drop(ready.send(Err(bind_error(addr, e)))),
        };
        let _ = ready.send(sock.local_addr());
        let mut buf = [0u8; 2048];
        while !stop.load(Ordering::SeqCst) {
            match sock.recv_from(&mut buf) {
                Ok((_, peer)) => {
                    // Counted before answering: a client that has its answer
                    // must find itself counted.
                    stats.served(peer);
                    let _ = sock.send_to(name.as_bytes(), peer);
                }
                Err(e) if is_timeout(&e) => {}
                Err(_) => thread::sleep(TICK),
            }
        }
    })
}

type Ready = mpsc::Sender<std::io::Result<SocketAddr>>;

/// Runs `body` on a thread in `ns` (else in the caller's namespace); it
/// reports the bound address (or the bind error) through `ready` before
/// serving.
fn start<F>(ns: Option<&Netns>, kind: &str, body: F) -> Result<Server>
where
    F: FnOnce(Arc<AtomicBool>, Arc<Stats>, Ready) + Send + 'static,
{
    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(Stats::default());
    let (tx, rx) = mpsc::channel();
    let thread = {
        let (stop, stats) = (stop.clone(), stats.clone());
        let run = move || body(stop, stats, tx);
        match ns {
            Some(ns) => ns.spawn_thread(kind, run)?,
            None => thread::Builder::new().name(kind.to_owned()).spawn(run)?,
        }
    };
    let place = ns.map_or("this namespace", |ns| ns.name());
    let mut server = Server {
        addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        stop,
        stats,
        thread: Some(thread),
    };
    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(Ok(addr)) => {
            server.addr = addr;
            Ok(server)
        }
        Ok(Err(e)) => Err(anyhow!("{kind} server in {place}: {e}")),
        Err(_) => Err(anyhow!("{kind} server in {place} did not start")),
    }
}

fn tcp_server<H>(
    ns: Option<&Netns>,
    kind: &'static str,
    addr: SocketAddr,
    handler: H,
) -> Result<Server>
where
    H: Fn(TcpStream, &AtomicBool, &Stats) + Send + Sync + 'static,
{
    let handler = Arc::new(handler);
    start(ns, kind, move |stop, stats, ready| {
        let listener = match TcpListener::bind(addr) {
            Ok(l) => l,
            Err(e) => return drop(ready.send(Err(bind_error(addr, e)))),
        };
        let _ = ready.send(listener.local_addr());
        let mut conns: Vec<JoinHandle<()>> = Vec::new();
        while !stop.load(Ordering::SeqCst) {
            if !readable(&listener, TICK) {
                continue;
            }
            let Ok((stream, _)) = listener.accept() else {
                continue;
            };
            conns.retain(|h| !h.is_finished());
            // Counted here rather than in the new thread, so `active()`
            // never lags behind `accept`.
            stats.active.fetch_add(1, Ordering::SeqCst);
            let (stop2, stats2, handler) = (stop.clone(), stats.clone(), handler.clone());
            let conn = thread::Builder::new()
                .name(format!("{kind}-conn"))
                .spawn(move || {
                    if stream.set_read_timeout(Some(TICK)).is_ok() {
                        handler(stream, &stop2, &stats2);
                    }
                    stats2.active.fetch_sub(1, Ordering::SeqCst);
                });
            match conn {
                Ok(conn) => conns.push(conn),
                Err(_) => {
                    stats.active.fetch_sub(1, Ordering::SeqCst);
                }
            }
        }
        for c in conns {
            let _ = c.join();
        }
    })
}

fn bind_error(addr: SocketAddr, e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("binding {addr}: {e}"))
}

fn readable(fd: &impl AsRawFd, timeout: Duration) -> bool {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut pfd, 1, timeout.as_millis() as libc::c_int) > 0 }
}

pub(crate) fn is_timeout(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// Reads more into `buf`; `false` once the peer is gone, the server stops,
/// or the peer sends more than any test needs.
fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>, stop: &AtomicBool) -> bool {
    let mut chunk = [0u8; 4096];
    loop {
        if stop.load(Ordering::SeqCst) || buf.len() > MAX_REQUEST {
            return false;
        }
        match stream.read(&mut chunk) {
            Ok(0) => return false,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                return true;
            }
            Err(e) if is_timeout(&e) || e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
}

fn serve_http(stream: TcpStream, stop: &AtomicBool, stats: &Stats, body: &str) {
    serve_http_with(stream, stop, stats, body, &|_| 200)
}

/// The reason phrase of the few statuses the test servers answer with.
fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        404 => "Not Found",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

fn serve_http_with(
    mut stream: TcpStream,
    stop: &AtomicBool,
    stats: &Stats,
    body: &str,
    status_of: &dyn Fn(&str) -> u16,
) {
    let Ok(peer) = stream.peer_addr() else { return };
    let mut buf = Vec::new();
    loop {
        let Some(head_end) = find(&buf, b"\r\n\r\n") else {
            if fill(&mut stream, &mut buf, stop) {
                continue;
            }
            return;
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let (keep_alive, content_length) = parse_request_head(&head);
        let total = head_end + 4 + content_length;
        if buf.len() < total {
            if fill(&mut stream, &mut buf, stop) {
                continue;
            }
            return;
        }
        buf.drain(..total);
        let path = head.split(' ').nth(1).unwrap_or("/");
        let status = status_of(path);
        let response = format!(
            "HTTP/1.1 {status} {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n{body}",
            reason(status),
            body.len(),
            if keep_alive { "keep-alive" } else { "close" },
        );
        stats.served(peer);
        if stream.write_all(response.as_bytes()).is_err() {
            return;
        }
        if !keep_alive {
            return;
        }
    }
}

/// (keep-alive?, request body length) from a request head.
fn parse_request_head(head: &str) -> (bool, usize) {
    let mut lines = head.split("\r\n");
    let http10 = lines.next().is_some_and(|l| l.ends_with("HTTP/1.0"));
    let mut keep_alive = !http10;
    let mut content_length = 0;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("connection") {
            keep_alive = value.eq_ignore_ascii_case("keep-alive")
                || (!http10 && !value.eq_ignore_ascii_case("close"));
        } else if name.eq_ignore_ascii_case("content-length") {
            content_length = value.parse().unwrap_or(0);
        }
    }
    (keep_alive, content_length)
}

fn serve_lines(mut stream: TcpStream, stop: &AtomicBool, stats: &Stats, name: &str) {
    let Ok(peer) = stream.peer_addr() else { return };
    let mut buf = Vec::new();
    loop {
        while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
            buf.drain(..=nl);
            stats.served(peer);
            if stream.write_all(format!("{name}\n").as_bytes()).is_err() {
                return;
            }
        }
        if !fill(&mut stream, &mut buf, stop) {
            return;
        }
    }
}

fn serve_echo(mut stream: TcpStream, stop: &AtomicBool, stats: &Stats, name: &str) {
    let Ok(peer) = stream.peer_addr() else { return };
    let mut buf = Vec::new();
    loop {
        while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=nl).collect();
            stats.served(peer);
            let mut answer = format!("{name} ").into_bytes();
            answer.extend_from_slice(&line);
            if stream.write_all(&answer).is_err() {
                return;
            }
        }
        if !fill(&mut stream, &mut buf, stop) {
            return;
        }
    }
}

pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_heads() {
        assert_eq!(parse_request_head("GET / HTTP/1.1\r\nHost: x"), (true, 0));
        assert_eq!(
            parse_request_head("GET / HTTP/1.1\r\nConnection: close"),
            (false, 0)
        );
        assert_eq!(parse_request_head("GET / HTTP/1.0\r\nHost: x"), (false, 0));
        assert_eq!(
            parse_request_head("GET / HTTP/1.0\r\nConnection: Keep-Alive"),
            (true, 0)
        );
        assert_eq!(
            parse_request_head("POST / HTTP/1.1\r\ncontent-length: 5"),
            (true, 5)
        );
    }
}
