//! UDP_CHECK: send `payload` to the server. With `require_reply` the
//! answer must begin with it; without, the server is up unless the
//! network says the port is closed (an ICMP port unreachable, which a
//! connected UDP socket reports as ECONNREFUSED) before the check ends.

use std::time::Duration;

use tokio::net::UdpSocket;

use super::probe::Probe;
use crate::keepalived::model::{Checker, UdpCheck};

pub async fn check(c: &Checker, u: &UdpCheck, budget: Duration) -> Probe {
    let sock = match UdpSocket::bind(super::connect::udp_local(c)).await {
        Ok(s) => s,
        Err(e) => return Probe::down(format!("bind: {e}")),
    };
    if let Err(e) = sock.connect(c.connect).await {
        return Probe::down(format!("connect: {e}"));
    }
    if let Err(e) = sock.send(&u.payload).await {
        return Probe::down(format!("send: {e}"));
    }
    let mut buf = vec![0u8; 65536];
    match &u.require_reply {
        Some(want) => match sock.recv(&mut buf).await {
            Ok(n) if buf[..n].starts_with(want) => Probe::up(format!("reply of {n} bytes")),
            Ok(n) => Probe::down(format!("reply of {n} bytes does not match")),
            Err(e) => Probe::down(format!("recv: {e}")),
        },
        None => {
            // Waiting for an error or an answer, but ending before the
            // probe's own bound (which would count as a failure).
            let wait = budget.mul_f64(0.9);
            match tokio::time::timeout(wait, sock.recv(&mut buf)).await {
                Ok(Ok(n)) => Probe::up(format!("reply of {n} bytes")),
                Ok(Err(e)) => Probe::down(format!("recv: {e}")),
                Err(_) => Probe::up("no error"),
            }
        }
    }
}
