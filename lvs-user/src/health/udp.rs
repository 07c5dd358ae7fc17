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
            Ok(n) => reply(u, want, &buf[..n]),
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

/// keepalived's test of a reply: its length within min/max_reply_length,
/// and equal to `want` over the shorter of the two (an empty `want`
/// takes any reply).
pub fn reply(u: &UdpCheck, want: &[u8], got: &[u8]) -> Probe {
    let n = got.len();
    if (n as u64) < u.min_reply_length as u64 || (n as u64) > u.max_reply_length as u64 {
        return Probe::down(format!(
            "reply of {n} bytes, not {}-{}",
            u.min_reply_length, u.max_reply_length
        ));
    }
    let m = n.min(want.len());
    if got[..m] != want[..m] {
        return Probe::down(format!("reply of {n} bytes does not match"));
    }
    Probe::up(format!("reply of {n} bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies() {
        let u = UdpCheck {
            payload: b"ping".to_vec(),
            require_reply: Some(b"pong".to_vec()),
            min_reply_length: 0,
            max_reply_length: 255,
        };
        assert!(reply(&u, b"pong", b"pong!").ok);
        assert!(reply(&u, b"pong", b"po").ok, "over the shorter");
        assert!(!reply(&u, b"pong", b"ping").ok);
        assert!(reply(&u, b"", b"anything").ok);
        assert!(
            !reply(&u, b"", &[0u8; 256]).ok,
            "longer than max_reply_length"
        );
        let strict = UdpCheck {
            min_reply_length: 4,
            ..u
        };
        assert!(!reply(&strict, b"pong", b"po").ok);
    }
}
