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

/// A TCP connection to `addr` from source address `local` (an address of
/// one of `ns`'s links; the port is chosen at connect time), made inside
/// `ns`: for tests that need many client addresses from one namespace.
pub fn connect_from(
    ns: &Netns,
    local: IpAddr,
    addr: SocketAddr,
    timeout: Duration,
) -> Result<TcpStream> {
    let stream = ns
        .enter(|| connect_bound(local, addr, timeout))?
        .with_context(|| format!("connecting to {addr} from {local} in {}", ns.name()))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    Ok(stream)
}

/// `struct sockaddr_in`/`sockaddr_in6` of `a`, with its length.
fn sockaddr(a: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match a {
        SocketAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(v4.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than sockaddr_in.
            unsafe { std::ptr::write(&mut ss as *mut _ as *mut libc::sockaddr_in, sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: v6.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.ip().octets(),
                },
                sin6_scope_id: v6.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than sockaddr_in6.
            unsafe { std::ptr::write(&mut ss as *mut _ as *mut libc::sockaddr_in6, sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

/// socket(2), bind(2) to `local` (port left to connect(2), so that only
/// the whole 4-tuple must be unique), connect(2) within `timeout`.
fn connect_bound(local: IpAddr, addr: SocketAddr, timeout: Duration) -> std::io::Result<TcpStream> {
    use std::io::Error;
    let domain = match addr {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    // SAFETY: plain socket(2); the fd is owned by the TcpStream from here on.
    let fd = unsafe { libc::socket(domain, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(Error::last_os_error());
    }
    let stream = unsafe { TcpStream::from_raw_fd(fd) };
    let one: libc::c_int = 1;
    // IP_BIND_ADDRESS_NO_PORT (24): the port is picked at connect time.
    // SAFETY: an int option on our own socket.
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_IP,
            24,
            &one as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    let (ss, len) = sockaddr(SocketAddr::new(local, 0));
    // SAFETY: `ss` holds a valid sockaddr of `len` bytes.
    if unsafe { libc::bind(fd, &ss as *const _ as *const libc::sockaddr, len) } != 0 {
        return Err(Error::last_os_error());
    }
    // A blocking connect(2) waits at most SO_SNDTIMEO, then fails with
    // EINPROGRESS.
    stream.set_write_timeout(Some(timeout.max(Duration::from_millis(1))))?;
    let (ss, len) = sockaddr(addr);
    // SAFETY: as above.
    if unsafe { libc::connect(fd, &ss as *const _ as *const libc::sockaddr, len) } != 0 {
        let e = Error::last_os_error();
        if e.raw_os_error() == Some(libc::EINPROGRESS) {
            return Err(Error::new(
                std::io::ErrorKind::TimedOut,
                format!("connect timed out after {timeout:?}"),
            ));
        }
        return Err(e);
    }
    Ok(stream)
}

/// [`http_get`] from source address `local` (see [`connect_from`]).
pub fn http_get_from(
    ns: &Netns,
    local: IpAddr,
    addr: SocketAddr,
    timeout: Duration,
) -> Result<String> {
    let mut conn = HttpConn::connect_from(ns, local, addr, timeout)?;
    conn.request("/", false)
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

    /// [`HttpConn::connect`] from source address `local` (see
    /// [`connect_from`]).
    pub fn connect_from(
        ns: &Netns,
        local: IpAddr,
        addr: SocketAddr,
        timeout: Duration,
    ) -> Result<HttpConn> {
        Ok(HttpConn {
            stream: connect_from(ns, local, addr, timeout)?,
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

    /// Sends `GET path` keeping the connection open, without waiting for
    /// the answer: [`HttpConn::answer`] reads it (a request whose packets
    /// are dropped for a while is answered once TCP's retransmission gets
    /// through).
    pub fn send(&mut self, path: &str) -> Result<()> {
        self.send_request(path, true)
    }

    /// The body of the answer to the request [`HttpConn::send`] sent,
    /// waiting at most `wait` for each read (the connection's timeout is
    /// restored after).
    pub fn answer(&mut self, wait: Duration) -> Result<String> {
        let before = self.stream.read_timeout()?;
        self.stream.set_read_timeout(Some(wait))?;
        let got = self.read_answer(true);
        self.stream.set_read_timeout(before)?;
        got
    }

    fn send_request(&mut self, path: &str, keep_alive: bool) -> Result<()> {
        let conn = if keep_alive { "keep-alive" } else { "close" };
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: lvs-lab\r\nConnection: {conn}\r\n\r\n",
            self.host
        );
        self.stream.write_all(req.as_bytes())?;
        Ok(())
    }

    fn request(&mut self, path: &str, keep_alive: bool) -> Result<String> {
        self.send_request(path, keep_alive)?;
        self.read_answer(keep_alive)
    }

    fn read_answer(&mut self, keep_alive: bool) -> Result<String> {
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
            // A signal (the demo's Ctrl-C handler, say) interrupts a read
            // with a timeout even under SA_RESTART: the callers read again.
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Ok(()),
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

    /// [`TcpConn::connect`] from source address `local` (see
    /// [`connect_from`]).
    pub fn connect_from(
        ns: &Netns,
        local: IpAddr,
        addr: SocketAddr,
        timeout: Duration,
    ) -> Result<TcpConn> {
        Ok(TcpConn {
            stream: connect_from(ns, local, addr, timeout)?,
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
    ns.enter(|| ping_here(None, dst, timeout))?
        .with_context(|| format!("ping {dst} from {}", ns.name()))
}

/// [`ping`] from source address `src` (an address of one of `ns`'s links).
/// Also makes the peer resolve `src`'s MAC address, as its reply goes there.
pub fn ping_from(ns: &Netns, src: IpAddr, dst: IpAddr, timeout: Duration) -> Result<Duration> {
    ns.enter(|| ping_here(Some(src), dst, timeout))?
        .with_context(|| format!("ping {dst} from {src} in {}", ns.name()))
}

fn ping_here(src: Option<IpAddr>, dst: IpAddr, timeout: Duration) -> Result<Duration> {
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
    if let Some(src) = src {
        let (ss, len) = sockaddr(SocketAddr::new(src, 0));
        // SAFETY: `ss` holds a valid sockaddr of `len` bytes.
        if unsafe { libc::bind(fd, &ss as *const _ as *const libc::sockaddr, len) } != 0 {
            bail!("binding {src}: {}", std::io::Error::last_os_error());
        }
    }
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
