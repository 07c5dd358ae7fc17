//! Opening a checker's TCP connection: from `bindto`/`bind_port` if set,
//! to `connect_ip`/`connect_port` (the real server's own address by
//! default: DR and TUN servers are checked directly, never via the VIP).

use std::net::SocketAddr;

use tokio::net::{TcpSocket, TcpStream};

use crate::keepalived::model::Checker;

pub async fn tcp(c: &Checker) -> std::io::Result<TcpStream> {
    let sock = match c.connect {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    if c.bind.is_some() || c.bind_port.is_some() {
        let ip = c.bind.unwrap_or(match c.connect {
            SocketAddr::V4(_) => std::net::Ipv4Addr::UNSPECIFIED.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
        });
        sock.bind(SocketAddr::new(ip, c.bind_port.unwrap_or(0)))?;
    }
    let s = sock.connect(c.connect).await?;
    // Health checks are small: nothing gains from Nagle's delay.
    let _ = s.set_nodelay(true);
    Ok(s)
}

/// The local address of a UDP checker's socket.
pub fn udp_local(c: &Checker) -> SocketAddr {
    let ip = c.bind.unwrap_or(match c.connect {
        SocketAddr::V4(_) => std::net::Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
    });
    SocketAddr::new(ip, c.bind_port.unwrap_or(0))
}
