//! Clients whose sockets are made inside a namespace (so they leave from
//! there); once made, the sockets can be used from any thread. Every call
//! is bounded by its timeout.

use std::{
    io::{Read, Write},
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket},
    os::fd::FromRawFd,
    thread,
    time::{Duration, Instant},
};

use anyhow::{anyhow, bail, Context, Result};

use crate::{netns::Netns, servers::find, servers::is_timeout};

fn connect(ns: &Netns, addr: SocketAddr, timeout: Duration) -> Result<TcpStream> {
    let stream = ns
        .enter(|| TcpStream::connect_timeout(&addr, timeout))?
        .with_context(|| format!("connecting to {addr} from {}", ns.name()))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    Ok(stream)
}

/// `GET /` with `Connection: close`; returns the body of a 200 answer.
pub fn http_get(ns: &Netns, addr: SocketAddr, timeout: Duration) -> Result<String> {
    let mut conn = HttpConn::connect(ns, addr, timeout)?;
    conn.request("/", false)
}

/// One HTTP/1.1 connection for several keep-alive requests.
pub struct HttpConn {
    stream: TcpStream,
    host: SocketAddr,
    buf: Vec<u8>,
}

impl HttpConn {
    pub fn connect(ns: &Netns, addr: SocketAddr, timeout: Duration) -> Result<HttpConn> {
        Ok(HttpConn {
            stream: connect(ns, addr, timeout)?,
            host: addr,
            buf: Vec::new(),
        })
    }

    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.stream.local_addr()?)
    }

    /// `GET path` keeping the connection open; returns the body.
    pub fn get(&mut self, path: &str) -> Result<String> {
        self.request(path, true)
    }

    fn request(&mut self, path: &str, keep_alive: bool) -> Result<String> {
        let conn = if keep_alive { "keep-alive" } else { "close" };
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: lvs-lab\r\nConnection: {conn}\r\n\r\n",
            self.host
        );
        self.stream.write_all(req.as_bytes())?;
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i;
            }
            self.more("response head")?;
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        let status = head.split(' ').nth(1).unwrap_or("");
        let length = head.split("\r\n").skip(1).find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        });
        let body_start = head_end + 4;
        let body_end = match length {
            Some(n) => {
                while self.buf.len() < body_start + n {
                    self.more("response body")?;
                }
                body_start + n
            }
            None if !keep_alive => {
                while self.more("response body").is_ok() {}
                self.buf.len()
            }
            None => bail!("response from {} has no Content-Length:\n{head}", self.host),
        };
        let body = String::from_utf8_lossy(&self.buf[body_start..body_end]).into_owned();
        self.buf.drain(..body_end);
        if status != "200" {
            bail!("{} answered {status}: {body}", self.host);
        }
        Ok(body)
    }

    fn more(&mut self, what: &str) -> Result<()> {
        let mut chunk = [0u8; 4096];
        match self.stream.read(&mut chunk) {
            Ok(0) => bail!("{} closed the connection before the {what}", self.host),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
            Err(e) => Err(anyhow!("reading {what} from {}: {e}", self.host)),
        }
    }
}

/// A TCP connection held open, sending lines and reading line answers (see
/// [`crate::servers::line`]).
pub struct TcpConn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl TcpConn {
    pub fn connect(ns: &Netns, addr: SocketAddr, timeout: Duration) -> Result<TcpConn> {
        Ok(TcpConn {
            stream: connect(ns, addr, timeout)?,
            buf: Vec::new(),
        })
    }

    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.stream.local_addr()?)
    }

    /// Sends `line` and returns the next line received (without newline).
    pub fn ask(&mut self, line: &str) -> Result<String> {
        self.stream.write_all(format!("{line}\n").as_bytes())?;
        let mut chunk = [0u8; 1024];
        loop {
            if let Some(nl) = self.buf.iter().position(|&b| b == b'\n') {
                let answer: Vec<u8> = self.buf.drain(..=nl).collect();
                return Ok(String::from_utf8_lossy(&answer).trim_end().to_owned());
            }
            match self.stream.read(&mut chunk)? {
                0 => bail!("connection closed"),
                n => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }
}

/// A UDP socket bound inside a namespace; reusing it keeps the source port.
pub struct UdpClient {
    sock: UdpSocket,
}

impl UdpClient {
    /// Binds to `local` (port 0 for any).
    pub fn bind(ns: &Netns, local: SocketAddr) -> Result<UdpClient> {
        let sock = ns
            .enter(|| UdpSocket::bind(local))?
            .with_context(|| format!("binding {local} in {}", ns.name()))?;
        Ok(UdpClient { sock })
    }

    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.sock.local_addr()?)
    }

    /// Sends `payload` once and returns the first answer from `to`.
    pub fn request(&self, to: SocketAddr, payload: &str, timeout: Duration) -> Result<String> {
        self.sock.send_to(payload.as_bytes(), to)?;
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 2048];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!("no answer from udp {to} within {timeout:?}");
            }
            self.sock.set_read_timeout(Some(left))?;
            match self.sock.recv_from(&mut buf) {
                Ok((n, from)) if from == to => {
                    return Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
                }
                Ok(_) => {}
                Err(e) if is_timeout(&e) => {}
                Err(e) => return Err(e).context(format!("udp {to}")),
            }
        }
    }
}

/// One datagram to `to` from an ephemeral port; returns the answer.
pub fn udp_request(ns: &Netns, to: SocketAddr, payload: &str, timeout: Duration) -> Result<String> {
    let any: IpAddr = match to {
        SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    UdpClient::bind(ns, SocketAddr::new(any, 0))?.request(to, payload, timeout)
}

/// ICMP echo (v4 or v6) from inside `ns`; returns the round-trip time.
/// Uses ping sockets, which every lab namespace allows.
pub fn ping(ns: &Netns, dst: IpAddr, timeout: Duration) -> Result<Duration> {
    ns.enter(|| ping_here(dst, timeout))?
        .with_context(|| format!("ping {dst} from {}", ns.name()))
}

fn ping_here(dst: IpAddr, timeout: Duration) -> Result<Duration> {
    let (domain, proto, request, reply) = match dst {
        IpAddr::V4(_) => (libc::AF_INET, libc::IPPROTO_ICMP, 8u8, 0u8),
        IpAddr::V6(_) => (libc::AF_INET6, libc::IPPROTO_ICMPV6, 128, 129),
    };
    // SAFETY: plain socket(2); the fd is owned by the UdpSocket from here on.
    let fd = unsafe { libc::socket(domain, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, proto) };
    if fd < 0 {
        bail!("ICMP socket: {}", std::io::Error::last_os_error());
    }
    // A ping socket speaks datagrams like UDP; the kernel fills in the ICMP
    // id and checksum and only hands us our own replies.
    let sock = unsafe { UdpSocket::from_raw_fd(fd) };
    const SEQ: u16 = 1;
    let mut packet = vec![request, 0, 0, 0, 0, 0];
    packet.extend_from_slice(&SEQ.to_be_bytes());
    packet.extend_from_slice(b"lvs-lab ping");
    let start = Instant::now();
    sock.send_to(&packet, SocketAddr::new(dst, 0))?;
    let mut buf = [0u8; 1500];
    loop {
        let left = timeout.saturating_sub(start.elapsed());
        if left.is_zero() {
            bail!("no echo reply within {timeout:?}");
        }
        sock.set_read_timeout(Some(left))?;
        match sock.recv_from(&mut buf) {
            Ok((n, _)) if n >= 8 && buf[0] == reply && buf[6..8] == SEQ.to_be_bytes() => {
                return Ok(start.elapsed())
            }
            Ok(_) => {}
            Err(e) if is_timeout(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Waits until something accepts TCP connections on `addr` as seen from
/// `ns` (for servers that print no readiness line, like nginx).
pub fn wait_tcp(ns: &Netns, addr: SocketAddr, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let attempt = ns.enter(|| TcpStream::connect_timeout(&addr, Duration::from_millis(500)))?;
        match attempt {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() >= deadline => {
                bail!(
                    "{addr} not accepting connections in {} after {timeout:?}: {e}",
                    ns.name()
                )
            }
            Err(_) => {
                crate::interrupt::check()?;
                thread::sleep(Duration::from_millis(50));
            }
        }
    }
}
