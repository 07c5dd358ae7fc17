//! The sync daemons' multicast sockets, set up as the kernel's sync
//! threads set theirs (`make_send_sock`, `make_receive_sock`): the master
//! sends on the given link only, with the given TTL, without looping its
//! own messages back, to the group and port; the backup binds the group
//! and port on that link, address reuse on, and joins the group there.

use std::{
    io,
    net::{IpAddr, SocketAddr, UdpSocket},
};

use anyhow::{anyhow, Context, Result};
use socket2::{Domain, InterfaceIndexOrAddress, Protocol, SockAddr, Socket, Type};

use super::config::Effective;

/// The link's index, or the kernel's ENODEV ("No such device").
pub fn ifindex(name: &str) -> Result<u32> {
    let c = std::ffi::CString::new(name).map_err(|_| no_device())?;
    // SAFETY: a NUL-terminated string that outlives the call.
    match unsafe { libc::if_nametoindex(c.as_ptr()) } {
        0 => Err(no_device()),
        i => Ok(i),
    }
}

fn no_device() -> anyhow::Error {
    anyhow!(io::Error::from_raw_os_error(libc::ENODEV))
}

/// The link's MTU (`SIOCGIFMTU`, which, unlike sysfs, answers for the
/// caller's network namespace).
pub fn mtu(name: &str) -> Result<u32> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, None)?;
    // SAFETY: ifreq is plain data; the name is copied NUL-terminated.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, b) in req
        .ifr_name
        .iter_mut()
        .zip(name.bytes().take(libc::IFNAMSIZ - 1))
    {
        *d = b as libc::c_char;
    }
    use std::os::fd::AsRawFd;
    // SAFETY: SIOCGIFMTU reads the name and writes ifru_mtu of `req`.
    let r = unsafe { libc::ioctl(s.as_raw_fd(), libc::SIOCGIFMTU, &mut req) };
    if r < 0 {
        return Err(io::Error::last_os_error()).context("SIOCGIFMTU");
    }
    // SAFETY: the kernel filled the union's mtu member.
    Ok(unsafe { req.ifr_ifru.ifru_mtu } as u32)
}

fn domain(a: &IpAddr) -> Domain {
    if a.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    }
}

/// The master's socket, connected to the group.
pub fn sender(cfg: &Effective) -> Result<UdpSocket> {
    let idx = ifindex(&cfg.ifname)?;
    let s = Socket::new(domain(&cfg.group), Type::DGRAM, Some(Protocol::UDP))?;
    s.bind_device(Some(cfg.ifname.as_bytes()))
        .context("binding the sync socket to its link")?;
    match cfg.group {
        IpAddr::V4(_) => {
            s.set_multicast_loop_v4(false)?;
            s.set_multicast_ttl_v4(cfg.ttl as u32)?;
        }
        IpAddr::V6(_) => {
            s.set_multicast_if_v6(idx)?;
            s.set_multicast_loop_v6(false)?;
            s.set_multicast_hops_v6(cfg.ttl as u32)?;
        }
    }
    s.connect(&SockAddr::from(SocketAddr::new(cfg.group, cfg.port)))
        .context("connecting the sync socket to its group")?;
    Ok(s.into())
}

/// The backup's socket, joined to the group on its link, non-blocking.
pub fn receiver(cfg: &Effective) -> Result<UdpSocket> {
    let idx = ifindex(&cfg.ifname)?;
    let s = Socket::new(domain(&cfg.group), Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.bind_device(Some(cfg.ifname.as_bytes()))
        .context("binding the sync socket to its link")?;
    s.bind(&SockAddr::from(SocketAddr::new(cfg.group, cfg.port)))
        .context("binding the sync group and port")?;
    match cfg.group {
        IpAddr::V4(g) => s.join_multicast_v4_n(&g, &InterfaceIndexOrAddress::Index(idx))?,
        IpAddr::V6(g) => s.join_multicast_v6(&g, idx)?,
    }
    s.set_nonblocking(true)?;
    Ok(s.into())
}
