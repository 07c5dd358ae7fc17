//! `lvsadm -L -n --health`: the checker's view of each real server after
//! the usual listing (which stays ipvsadm's): its state (up, down,
//! inhibited, standby while the sorry server serves; sorry/sorry-idle for
//! the sorry server), its weight in the table, since when, and the last
//! check's result.

use std::fmt::Write as _;

use super::status::{alive, Status};
use crate::adm::format::addr_port;
use crate::model::{Proto, ServiceAddr};

/// "12s", "5m02s", "3h04m", "2d03h".
pub fn age(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s if s < 86400 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        s => format!("{}d{:02}h", s / 86400, (s % 86400) / 3600),
    }
}

/// The health section for `st` (`None`: no checker publishes for this
/// director), ages from `now` (seconds since the epoch).
pub fn health(st: Option<&Status>, now: u64, only: Option<&ServiceAddr>) -> String {
    let Some(st) = st else {
        return "Health: no checker runs for this director \
                (lvs load --config FILE, or lvs check --config FILE)\n"
            .into();
    };
    let mut out = String::new();
    let running = if alive(st.pid) {
        String::new()
    } else {
        " -- STALE: that process is gone".into()
    };
    let _ = writeln!(
        out,
        "Health: checker pid {} ({}), updated {} ago{running}",
        st.pid,
        st.config,
        age(now.saturating_sub(st.written))
    );
    let _ = writeln!(out, "Prot LocalAddress:Port Quorum");
    let _ = writeln!(
        out,
        "  -> RemoteAddress:Port           State      Weight Since    Last check"
    );
    for (k, up) in st
        .services
        .iter()
        .filter(|(k, _)| only.is_none_or(|o| o == k))
    {
        let proto = match k.proto {
            Proto::Tcp => "TCP",
            Proto::Udp => "UDP",
        };
        let _ = writeln!(
            out,
            "{proto:<4} {} {}",
            addr_port(k.addr, k.port),
            if *up { "up" } else { "down" }
        );
        for r in st.reals.iter().filter(|r| r.service == *k) {
            let since = if r.since == 0 {
                "-".to_string()
            } else {
                age(now.saturating_sub(r.since))
            };
            let _ = writeln!(
                out,
                "  -> {:<28} {:<10} {:<6} {since:<8} {}",
                addr_port(r.addr.ip(), r.addr.port()),
                r.state,
                r.weight,
                r.last
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::status::Real;

    #[test]
    fn ages() {
        assert_eq!(age(0), "0s");
        assert_eq!(age(59), "59s");
        assert_eq!(age(62), "1m02s");
        assert_eq!(age(3600 * 3 + 240), "3h04m");
        assert_eq!(age(86400 * 2 + 3600 * 3), "2d03h");
    }

    #[test]
    fn a_section_per_service() {
        let k = ServiceAddr {
            proto: Proto::Tcp,
            addr: "192.168.47.128".parse().unwrap(),
            port: 80,
        };
        let st = Status {
            pid: std::process::id(),
            config: "/etc/keepalived/keepalived.conf".into(),
            written: 1000,
            services: vec![(k, true)],
            reals: vec![Real {
                service: k,
                addr: "192.168.47.2:80".parse().unwrap(),
                state: "down".into(),
                weight: 0,
                since: 988,
                last: "HTTP_GET 192.168.47.2:80: /health: status 500 (2 ms)".into(),
            }],
        };
        let text = health(Some(&st), 1001, None);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].ends_with("updated 1s ago"), "{text}");
        assert_eq!(lines[3], "TCP  192.168.47.128:80 up");
        assert_eq!(
            lines[4],
            "  -> 192.168.47.2:80              down       0      13s      \
             HTTP_GET 192.168.47.2:80: /health: status 500 (2 ms)"
        );
        assert!(health(None, 0, None).contains("no checker"));
        let other = ServiceAddr { port: 81, ..k };
        assert_eq!(health(Some(&st), 1001, Some(&other)).lines().count(), 3);
        assert_eq!(health(Some(&st), 1001, Some(&k)), text);
    }
}
