//! `-L`/`-l` and `-S` output, byte for byte as ipvsadm 1.31 prints it.
//!
//! Column layouts follow ipvsadm's `printf` formats: the service column is
//! `"%-4s %s"` (protocol, address) cut at 33 bytes for IPv4, a real server
//! `"  -> %-28s"` cut at 28 bytes for IPv4, then `"%-7s %-6d %-10u %-10u"`
//! (forward, weight, active, inactive); with `--stats` the service column
//! is padded to 33 and each counter printed by `print_largenum` (9 wide,
//! abbreviated to K/M/G/T unless `--exact`). `--rate` has the same
//! column widths for the daemon's rate estimates (`crate::rate`), except
//! that a real server's CPS/InPPS/OutPPS are `%8llu`, never abbreviated.
//!
//! `-L --thresholds` and `-L --persistent-conn` use ipvsadm's column sets
//! (PersistConn is always 0: persistence templates are not counted per real
//! server); `-L -c` lists connection entries ([`connections`]) in
//! `print_conn`'s format; `-S` adds a real server's `-x`/`-y`, which
//! ipvsadm does not save (see [`save`]).
//!
//! Without `-n`, ipvsadm resolves addresses and ports to names. lvsadm
//! always prints them numerically — no resolver lookups while listing — in
//! the same column layout, so `-L` equals `-L -n` and `-S` equals `-S -n`.
//!
//! Services and real servers are sorted as ipvsadm sorts them (unless
//! `--nosort`, which lists them in table order): with its comparison
//! functions `ipvs_cmp_services`/`ipvs_cmp_dests`, including their quirk
//! of comparing IPv4 addresses by a wrapping 32-bit subtraction (so
//! 192.168.0.1 sorts before 10.0.0.1: their difference exceeds 2^31), and
//! with glibc's merge sort, so the order is the same as ipvsadm's even where
//! that comparison is not a total order.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::command::ListOpts;
use super::Error;
use crate::model::{ConnEntry, Method, Proto, RealServer, Snapshot, VirtualService};
use lvs_common::Rate;

/// IPVS's version, as `-L` shows it.
pub const IPVS_VERSION: &str = "1.2.1";

/// `-L` with its options, except `-c` (see [`connections`]) and `--rate`
/// (see [`list_with_rates`]).
pub fn list(snap: &Snapshot, o: &ListOpts) -> Result<String, Error> {
    list_with_rates(snap, o, None)
}

/// A service's rates and its real servers' (by address and port), as the
/// daemon's estimator published them.
pub use crate::rate::Listed as Rates;

/// `-L` with its options, `--rate` taking its columns from `rates` (IPVS's
/// estimates: `print_service_entry`'s FMT_RATE rows). As with ipvsadm,
/// `--stats` wins over `--rate` when both are given.
pub fn list_with_rates(
    snap: &Snapshot,
    o: &ListOpts,
    rates: Option<&Rates>,
) -> Result<String, Error> {
    if o.connection {
        // Connections are not part of the snapshot: the caller lists them
        // from the connection table with `connections`.
        return Err(Error::list(
            "lvsadm: -c lists the connection table, not the services",
        ));
    }
    let rates = match rates {
        _ if !o.rate || o.stats => None,
        Some(r) => Some(r),
        None => return Err(unavailable("--rate (rate listing)")),
    };
    // A service the estimator has not sampled yet: zeros, as a fresh
    // IPVS estimator reads.
    let unsampled = (Rate::default(), Vec::new());
    let rates_of = |vs: &VirtualService| rates.map(|r| r.get(&vs.key).unwrap_or(&unsampled));
    let mut out = String::new();
    if let Some(key) = &o.service {
        let vs = snap
            .service(key)
            .ok_or_else(|| Error::list("No such service"))?;
        title(&mut out, o);
        service_entry(&mut out, vs, o, false, rates_of(vs));
    } else if o.timeout {
        let t = &snap.timeouts;
        let _ = writeln!(
            out,
            "Timeout (tcp tcpfin udp): {} {} {}",
            t.tcp, t.tcp_fin, t.udp
        );
    } else if o.daemon {
        // No sync daemon runs, and ipvsadm prints nothing then.
    } else {
        let _ = writeln!(
            out,
            "IP Virtual Server version {IPVS_VERSION} (size={})",
            snap.conn_table_size
        );
        title(&mut out, o);
        for vs in services(snap, o.nosort) {
            service_entry(&mut out, vs, o, false, rates_of(vs));
        }
    }
    Ok(out)
}

/// `-L -c`: the connection entries as ipvsadm's `list_conn`/`print_conn`
/// print them, in the order given (ipvsadm prints the kernel's hash-table
/// order, which has no meaning either), addresses always numeric. Each row
/// is `"%-3s %-6s %-11s %-18s %-18s %s"`: protocol, expiry as `MM:SS`
/// (`"%02d:%02d"` of whole minutes and seconds, so 900 s is `15:00` and
/// 6 000 s is `100:00`), state, client, virtual and real address:port. With
/// `--persistent-conn` the title has ipvsadm's two extra columns, "pe name"
/// and "pe_data", which stay empty: there are no persistence engines.
pub fn connections(conns: &[ConnEntry], o: &ListOpts) -> String {
    let mut out = String::from("IPVS connection entries\n");
    // ipvsadm: "pro expire %-11s %-18s %-18s %s" (or with "%-18s %-16s %s"
    // for --persistent-conn) of the column names.
    let (state, source, virt) = ("state", "source", "virtual");
    if o.persistent_conn {
        let (dest, pe_name, pe_data) = ("destination", "pe name", "pe_data");
        let _ = writeln!(
            out,
            "pro expire {state:<11} {source:<18} {virt:<18} {dest:<18} {pe_name:<16} {pe_data}"
        );
    } else {
        let dest = "destination";
        let _ = writeln!(out, "pro expire {state:<11} {source:<18} {virt:<18} {dest}");
    }
    for c in conns {
        let expire = format!("{:02}:{:02}", c.expires / 60, c.expires % 60);
        let _ = writeln!(
            out,
            "{:<3} {expire:<6} {:<11} {:<18} {:<18} {}",
            c.proto.name(),
            c.state,
            addr_port(c.client.ip(), c.client.port()),
            addr_port(c.virtual_addr.ip(), c.virtual_addr.port()),
            addr_port(c.real.ip(), c.real.port()),
        );
    }
    out
}

/// `-S`: the rules as `-A`/`-a` lines, which `-R` reads back, as ipvsadm's
/// `FMT_RULE` prints them (`-p`, `-M`, `-o`, `-b` included). One addition:
/// a real server's thresholds, which ipvsadm 1.31 does not save (so its
/// `-S | -R` loses them), are appended as ` -x N` and ` -y N` when not 0 —
/// options ipvsadm itself accepts on `-a` lines. Without thresholds the
/// output is ipvsadm's byte for byte.
pub fn save(snap: &Snapshot, _numeric: bool) -> String {
    let mut out = String::new();
    let o = ListOpts::default();
    for vs in services(snap, false) {
        service_entry(&mut out, vs, &o, true, None);
    }
    out
}

fn unavailable(what: &str) -> Error {
    Error::list(format!("lvsadm: {what} is not available"))
}

fn services(snap: &Snapshot, nosort: bool) -> Vec<&VirtualService> {
    let mut v: Vec<&VirtualService> = snap.services.iter().collect();
    if !nosort {
        merge_sort(&mut v, &|a, b| cmp_services(a, b));
    }
    v
}

fn title(out: &mut String, o: &ListOpts) {
    if o.stats {
        let _ = writeln!(
            out,
            "{:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n  -> RemoteAddress:Port",
            "Prot LocalAddress:Port", "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"
        );
    } else if o.rate {
        let _ = writeln!(
            out,
            "{:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n  -> RemoteAddress:Port",
            "Prot LocalAddress:Port", "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"
        );
    } else if o.thresholds {
        let _ = writeln!(
            out,
            "{:<33} {:<10} {:<10} {:<10} {:<10}\n  -> RemoteAddress:Port",
            "Prot LocalAddress:Port", "Uthreshold", "Lthreshold", "ActiveConn", "InActConn"
        );
    } else if o.persistent_conn {
        let _ = writeln!(
            out,
            "{:<33} {:<9} {:<11} {:<10} {:<10}\n  -> RemoteAddress:Port",
            "Prot LocalAddress:Port", "Weight", "PersistConn", "ActiveConn", "InActConn"
        );
    } else if o.tun_info {
        out.push_str(
            "Prot LocalAddress:Port Scheduler Flags\n  \
             -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n",
        );
    } else {
        out.push_str(
            "Prot LocalAddress:Port Scheduler Flags\n  \
             -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
        );
    }
}

/// One service and its real servers (`print_service_entry`); `rates` only
/// for `--rate` rows.
fn service_entry(
    out: &mut String,
    vs: &VirtualService,
    o: &ListOpts,
    rule: bool,
    rates: Option<&crate::rate::ServiceRates>,
) {
    let key = &vs.key;
    let v6 = key.addr.is_ipv6();
    let vname = addr_port(key.addr, key.port);
    let svc_name = if rule {
        format!("{} {vname}", key.proto.flag())
    } else {
        let mut s = format!("{:<4} {vname}", key.proto.name());
        if !v6 {
            s.truncate(33);
        }
        s
    };

    if rule {
        let _ = write!(out, "-A {svc_name} -s {}", vs.sched.name());
        if let Some(p) = &vs.persistence {
            let _ = write!(out, " -p {}", p.timeout);
            if !v6 && p.netmask != Ipv4Addr::BROADCAST {
                let _ = write!(out, " -M {}", p.netmask);
            }
            if v6 && p.v6_prefix != 128 {
                let _ = write!(out, " -M {}", p.v6_prefix);
            }
        }
        if vs.ops {
            out.push_str(" -o");
        }
        if vs.sched_flags & SCHED_FLAGS != 0 {
            out.push_str(" -b ");
            out.push_str(&sched_flags(vs));
        }
    } else if o.stats {
        let _ = write!(out, "{svc_name:<33}");
        let s = &vs.stats;
        for n in [s.conns, s.inpkts, s.outpkts, s.inbytes, s.outbytes] {
            largenum(out, n, o.exact);
        }
    } else if let Some((r, _)) = rates {
        // ipvsadm: the service's five rates each by `print_largenum`.
        let _ = write!(out, "{svc_name:<33}");
        for n in [r.cps, r.inpps, r.outpps, r.inbps, r.outbps] {
            largenum(out, n, o.exact);
        }
    } else {
        let _ = write!(out, "{svc_name} {}", vs.sched.name());
        if vs.sched_flags & SCHED_FLAGS != 0 {
            let _ = write!(out, " ({})", sched_flags(vs));
        }
        if let Some(p) = &vs.persistence {
            let _ = write!(out, " persistent {}", p.timeout);
            if !v6 && p.netmask != Ipv4Addr::BROADCAST {
                let _ = write!(out, " mask {}", p.netmask);
            }
            if v6 && p.v6_prefix != 128 {
                let _ = write!(out, " mask {}", p.v6_prefix);
            }
        }
        if vs.ops {
            out.push_str(" ops");
        }
    }
    out.push('\n');

    let mut reals: Vec<&RealServer> = vs.reals.iter().collect();
    if !o.nosort {
        merge_sort(&mut reals, &|a, b| cmp_dests(a, b));
    }
    for r in reals {
        let mut dname = addr_port(r.addr, r.port);
        if !rule && !r.addr.is_ipv6() {
            dname.truncate(28);
        }
        if rule {
            // Tunnel servers would carry their tunnel type here; the model
            // has only ipip, which ipvsadm prints as "--tun-type ipip".
            let tun = if r.method == Method::Tunnel {
                " --tun-type ipip"
            } else {
                ""
            };
            let _ = write!(
                out,
                "-a {svc_name} -r {dname} {} -w {}{tun}",
                r.method.flag(),
                r.weight
            );
            if r.u_threshold != 0 {
                let _ = write!(out, " -x {}", r.u_threshold);
            }
            if r.l_threshold != 0 {
                let _ = write!(out, " -y {}", r.l_threshold);
            }
            out.push('\n');
        } else if o.stats {
            let _ = write!(out, "  -> {dname:<28}");
            let s = &r.stats;
            for n in [s.conns, s.inpkts, s.outpkts, s.inbytes, s.outbytes] {
                largenum(out, n, o.exact);
            }
            out.push('\n');
        } else if let Some((_, reals)) = rates {
            // ipvsadm: `"  -> %-28s %8llu %8llu %8llu"` for CPS, InPPS and
            // OutPPS (never abbreviated), then InBPS and OutBPS by
            // `print_largenum`.
            let r = reals
                .iter()
                .find(|(k, _)| *k == (r.addr, r.port))
                .map(|(_, r)| *r)
                .unwrap_or_default();
            let _ = write!(
                out,
                "  -> {dname:<28} {:>8} {:>8} {:>8}",
                r.cps, r.inpps, r.outpps
            );
            largenum(out, r.inbps, o.exact);
            largenum(out, r.outbps, o.exact);
            out.push('\n');
        } else if o.thresholds {
            let _ = writeln!(
                out,
                "  -> {dname:<28} {:<10} {:<10} {:<10} {:<10}",
                r.u_threshold, r.l_threshold, r.active, r.inactive
            );
        } else if o.persistent_conn {
            // Persistence templates are not counted per real server (yet):
            // PersistConn is 0.
            let _ = writeln!(
                out,
                "  -> {dname:<28} {:<9} {:<11} {:<10} {:<10}",
                r.weight, 0, r.active, r.inactive
            );
        } else if o.tun_info {
            let info = if r.method == Method::Tunnel {
                "ipip"
            } else {
                "n/a"
            };
            let _ = writeln!(
                out,
                "  -> {dname:<28} {:<7} {info:<13} {:<6} {:<10} {:<10}",
                r.method.name(),
                r.weight,
                r.active,
                r.inactive
            );
        } else {
            let _ = writeln!(
                out,
                "  -> {dname:<28} {:<7} {:<6} {:<10} {:<10}",
                r.method.name(),
                r.weight,
                r.active,
                r.inactive
            );
        }
    }
}

const SCHED_FLAGS: u16 =
    lvs_common::SVC_F_SCHED1 | lvs_common::SVC_F_SCHED2 | lvs_common::SVC_F_SCHED3;

/// `print_sched_flags`: the flag names, by scheduler.
fn sched_flags(vs: &VirtualService) -> String {
    use crate::model::Scheduler;
    use lvs_common::{SVC_F_SCHED1, SVC_F_SCHED2, SVC_F_SCHED3};
    let names: &[(u16, &str)] = match vs.sched {
        Scheduler::Sh => &[(SVC_F_SCHED1, "sh-fallback"), (SVC_F_SCHED2, "sh-port")],
        Scheduler::Mh => &[(SVC_F_SCHED1, "mh-fallback"), (SVC_F_SCHED2, "mh-port")],
        _ => &[
            (SVC_F_SCHED1, "flag-1"),
            (SVC_F_SCHED2, "flag-2"),
            (SVC_F_SCHED3, "flag-3"),
        ],
    };
    names
        .iter()
        .filter(|(bit, _)| vs.sched_flags & bit != 0)
        .map(|(_, n)| *n)
        .collect::<Vec<_>>()
        .join(",")
}

/// `print_largenum`.
fn largenum(out: &mut String, n: u64, exact: bool) {
    let _ = if exact {
        // ipvsadm: `"%*llu"` with width 9, or the length plus one.
        let width = (n.to_string().len() + 1).max(9);
        write!(out, "{n:>width$}")
    } else if n < 100_000_000 {
        write!(out, "{n:>9}")
    } else if n < 1_000_000_000 {
        write!(out, "{:>8}K", n / 1_000)
    } else if n < 100_000_000_000 {
        write!(out, "{:>8}M", n / 1_000_000)
    } else if n < 100_000_000_000_000 {
        write!(out, "{:>8}G", n / 1_000_000_000)
    } else {
        write!(out, "{:>8}T", n / 1_000_000_000_000)
    };
}

/// `ADDR:PORT`, IPv6 in brackets, as ipvsadm's `-n` prints them.
pub fn addr_port(addr: IpAddr, port: u16) -> String {
    match addr {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{}]:{port}", ntop6(a)),
    }
}

/// glibc's `inet_ntop` for IPv6: like Rust's Display, except that the
/// deprecated IPv4-compatible form `::a.b.c.d` keeps its dotted quad.
fn ntop6(a: Ipv6Addr) -> String {
    let s = a.segments();
    if s[..6] == [0; 6] && s[6] != 0 {
        let o = a.octets();
        return format!("::{}", Ipv4Addr::new(o[12], o[13], o[14], o[15]));
    }
    a.to_string()
}

// ---------------------------------------------------------------------------
// Sorting as ipvsadm sorts.

/// The address as the four 32-bit words of `union nf_inet_addr`, an IPv4
/// address in the first.
fn words(a: IpAddr) -> [u32; 4] {
    match a {
        IpAddr::V4(a) => [u32::from(a), 0, 0, 0],
        IpAddr::V6(a) => {
            let o = a.octets();
            std::array::from_fn(|i| {
                u32::from_be_bytes([o[4 * i], o[4 * i + 1], o[4 * i + 2], o[4 * i + 3]])
            })
        }
    }
}

/// `r = ntohl(a) - ntohl(b)` assigned to an `int`, word by word (IPv6) or
/// the first word only (IPv4), as libipvs compares addresses.
fn cmp_addr(v6: bool, a: IpAddr, b: IpAddr) -> i32 {
    let (wa, wb) = (words(a), words(b));
    let n = if v6 { 4 } else { 1 };
    for i in 0..n {
        let r = wa[i].wrapping_sub(wb[i]) as i32;
        if r != 0 {
            return r;
        }
    }
    0
}

fn af(a: IpAddr) -> i32 {
    match a {
        IpAddr::V4(_) => lvs_common::AF_INET as i32,
        IpAddr::V6(_) => lvs_common::AF_INET6 as i32,
    }
}

fn proto_code(p: Proto) -> i32 {
    p.code() as i32
}

/// `ipvs_cmp_services` (no firewall marks here).
fn cmp_services(a: &VirtualService, b: &VirtualService) -> i32 {
    let (ka, kb) = (&a.key, &b.key);
    let r = af(ka.addr) - af(kb.addr);
    if r != 0 {
        return r;
    }
    let r = proto_code(ka.proto) - proto_code(kb.proto);
    if r != 0 {
        return r;
    }
    let r = cmp_addr(ka.addr.is_ipv6(), ka.addr, kb.addr);
    if r != 0 {
        return r;
    }
    ka.port as i32 - kb.port as i32
}

/// `ipvs_cmp_dests`.
fn cmp_dests(a: &RealServer, b: &RealServer) -> i32 {
    let r = cmp_addr(a.addr.is_ipv6(), a.addr, b.addr);
    if r != 0 {
        return r;
    }
    a.port as i32 - b.port as i32
}

/// glibc's `qsort` (its merge sort, `msort_with_tmp`): halves of n/2 and
/// n - n/2, merged taking from the left while `cmp <= 0`. Reproduces
/// ipvsadm's order even for a comparison that is not a total order.
fn merge_sort<T: Copy>(v: &mut [T], cmp: &dyn Fn(T, T) -> i32) {
    let n = v.len();
    if n <= 1 {
        return;
    }
    let n1 = n / 2;
    merge_sort(&mut v[..n1], cmp);
    merge_sort(&mut v[n1..], cmp);
    let mut merged = Vec::with_capacity(n);
    let (mut i, mut j) = (0, n1);
    while i < n1 && j < n {
        if cmp(v[i], v[j]) <= 0 {
            merged.push(v[i]);
            i += 1;
        } else {
            merged.push(v[j]);
            j += 1;
        }
    }
    merged.extend_from_slice(&v[i..n1]);
    merged.extend_from_slice(&v[j..]);
    v.copy_from_slice(&merged);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Persistence, Scheduler, ServiceAddr, Stats};

    fn key(proto: Proto, a: &str, port: u16) -> ServiceAddr {
        ServiceAddr {
            proto,
            addr: a.parse().unwrap(),
            port,
        }
    }

    fn real(a: &str, port: u16, method: Method, weight: u32) -> RealServer {
        RealServer::new(a.parse().unwrap(), port, method, weight)
    }

    fn stats(conns: u64, inpkts: u64, outpkts: u64, inbytes: u64, outbytes: u64) -> Stats {
        Stats {
            conns,
            inpkts,
            outpkts,
            inbytes,
            outbytes,
        }
    }

    /// The fixed table of the golden tests, stored out of order.
    fn table() -> Snapshot {
        let mut web = VirtualService::new(key(Proto::Tcp, "192.168.47.128", 80), Scheduler::Rr);
        let mut r1 = real("192.168.211.130", 80, Method::Masq, 3);
        r1.active = 12;
        r1.inactive = 345;
        r1.stats = stats(
            123_456_789,
            98_765_432_109,
            5,
            123_456_789_012_345,
            999_999_999,
        );
        let mut r2 = real("192.168.211.129", 80, Method::Masq, 1);
        r2.stats = stats(7, 70, 0, 4_200, 0);
        web.reals = vec![r1, r2];
        web.stats = stats(
            123_456_796,
            98_765_432_179,
            5,
            123_456_789_016_545,
            999_999_999,
        );

        let mut dns = VirtualService::new(key(Proto::Udp, "192.168.47.128", 53), Scheduler::Wrr);
        dns.reals = vec![real("192.168.211.131", 5353, Method::Masq, 0)];

        let alt = VirtualService::new(key(Proto::Tcp, "192.168.47.128", 8080), Scheduler::Wrr);

        Snapshot {
            conn_table_size: 4096,
            services: vec![dns, web, alt],
            ..Snapshot::default()
        }
    }

    fn opts(f: impl FnOnce(&mut ListOpts)) -> ListOpts {
        let mut o = ListOpts {
            numeric: true,
            ..ListOpts::default()
        };
        f(&mut o);
        o
    }

    const TITLE: &str = "Prot LocalAddress:Port Scheduler Flags\n  \
        -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n";

    #[test]
    fn golden_list_numeric() {
        let got = list(&table(), &opts(|_| {})).unwrap();
        let want = String::new()
            + "IP Virtual Server version 1.2.1 (size=4096)\n"
            + TITLE
            + "TCP  192.168.47.128:80 rr\n"
            + "  -> 192.168.211.129:80           Masq    1      0          0         \n"
            + "  -> 192.168.211.130:80           Masq    3      12         345       \n"
            + "TCP  192.168.47.128:8080 wrr\n"
            + "UDP  192.168.47.128:53 wrr\n"
            + "  -> 192.168.211.131:5353         Masq    0      0          0         \n";
        assert_eq!(got, want);
        // Without -n the layout is the same (numeric anyway).
        assert_eq!(list(&table(), &ListOpts::default()).unwrap(), want);
    }

    #[test]
    fn golden_list_nosort() {
        let got = list(&table(), &opts(|o| o.nosort = true)).unwrap();
        let want = String::new()
            + "IP Virtual Server version 1.2.1 (size=4096)\n"
            + TITLE
            + "UDP  192.168.47.128:53 wrr\n"
            + "  -> 192.168.211.131:5353         Masq    0      0          0         \n"
            + "TCP  192.168.47.128:80 rr\n"
            + "  -> 192.168.211.130:80           Masq    3      12         345       \n"
            + "  -> 192.168.211.129:80           Masq    1      0          0         \n"
            + "TCP  192.168.47.128:8080 wrr\n";
        assert_eq!(got, want);
    }

    #[test]
    fn golden_list_stats() {
        let got = list(&table(), &opts(|o| o.stats = true)).unwrap();
        let want = String::new()
            + "IP Virtual Server version 1.2.1 (size=4096)\n"
            + "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n"
            + "  -> RemoteAddress:Port\n"
            + "TCP  192.168.47.128:80             123456K   98765M        5     123T  999999K\n"
            + "  -> 192.168.211.129:80                  7       70        0     4200        0\n"
            + "  -> 192.168.211.130:80            123456K   98765M        5     123T  999999K\n"
            + "TCP  192.168.47.128:8080                 0        0        0        0        0\n"
            + "UDP  192.168.47.128:53                   0        0        0        0        0\n"
            + "  -> 192.168.211.131:5353                0        0        0        0        0\n";
        assert_eq!(got, want);
    }

    #[test]
    fn golden_list_stats_exact() {
        let got = list(
            &table(),
            &opts(|o| {
                o.stats = true;
                o.exact = true
            }),
        )
        .unwrap();
        let want = String::new()
            + "IP Virtual Server version 1.2.1 (size=4096)\n"
            + "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n"
            + "  -> RemoteAddress:Port\n"
            + "TCP  192.168.47.128:80            123456796 98765432179        5 123456789016545 999999999\n"
            + "  -> 192.168.211.129:80                  7       70        0     4200        0\n"
            + "  -> 192.168.211.130:80           123456789 98765432109        5 123456789012345 999999999\n"
            + "TCP  192.168.47.128:8080                 0        0        0        0        0\n"
            + "UDP  192.168.47.128:53                   0        0        0        0        0\n"
            + "  -> 192.168.211.131:5353                0        0        0        0        0\n";
        assert_eq!(got, want);
    }

    /// Rates for `table()`: the web service and its .130 server; the .129
    /// server, the DNS service and port 8080 not sampled yet.
    fn rates() -> Rates {
        let rate = |cps, inpps, outpps, inbps, outbps| Rate {
            cps,
            inpps,
            outpps,
            inbps,
            outbps,
            ..Rate::default()
        };
        let mut r = Rates::new();
        r.insert(
            key(Proto::Tcp, "192.168.47.128", 80),
            (
                rate(123, 98_765, 5, 123_456_789, 999_999_999),
                vec![(
                    ("192.168.211.130".parse().unwrap(), 80),
                    rate(1_234_567_890, 7, 0, 100_000_000_000, 42),
                )],
            ),
        );
        r
    }

    // Transcribed from ipvsadm 1.31's print_title (FMT_RATE: "%-33s %8s %8s
    // %8s %8s %8s\n  -> RemoteAddress:Port\n") and print_service_entry
    // (service: "%-33s" then print_largenum x 5; real server:
    // "  -> %-28s %8llu %8llu %8llu" then print_largenum x 2).
    const RATE_TITLE: &str =
        "Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS\n\
         \x20 -> RemoteAddress:Port\n";

    #[test]
    fn golden_list_rate() {
        let o = opts(|o| o.rate = true);
        let got = list_with_rates(&table(), &o, Some(&rates())).unwrap();
        let want = String::new()
            + "IP Virtual Server version 1.2.1 (size=4096)\n"
            + RATE_TITLE
            + "TCP  192.168.47.128:80                 123    98765        5  123456K  999999K\n"
            + "  -> 192.168.211.129:80                  0        0        0        0        0\n"
            + "  -> 192.168.211.130:80           1234567890        7        0     100G       42\n"
            + "TCP  192.168.47.128:8080                 0        0        0        0        0\n"
            + "UDP  192.168.47.128:53                   0        0        0        0        0\n"
            + "  -> 192.168.211.131:5353                0        0        0        0        0\n";
        assert_eq!(got, want);
    }

    #[test]
    fn golden_list_rate_exact() {
        let o = opts(|o| {
            o.rate = true;
            o.exact = true
        });
        let got = list_with_rates(&table(), &o, Some(&rates())).unwrap();
        let want = String::new()
            + "IP Virtual Server version 1.2.1 (size=4096)\n"
            + RATE_TITLE
            + "TCP  192.168.47.128:80                 123    98765        5 123456789 999999999\n"
            + "  -> 192.168.211.129:80                  0        0        0        0        0\n"
            + "  -> 192.168.211.130:80           1234567890        7        0 100000000000       42\n"
            + "TCP  192.168.47.128:8080                 0        0        0        0        0\n"
            + "UDP  192.168.47.128:53                   0        0        0        0        0\n"
            + "  -> 192.168.211.131:5353                0        0        0        0        0\n";
        assert_eq!(got, want);
    }

    #[test]
    fn rate_of_one_service_and_stats_winning() {
        let o = opts(|o| {
            o.rate = true;
            o.service = Some(key(Proto::Tcp, "192.168.47.128", 80))
        });
        let want = String::new()
            + RATE_TITLE
            + "TCP  192.168.47.128:80                 123    98765        5  123456K  999999K\n"
            + "  -> 192.168.211.129:80                  0        0        0        0        0\n"
            + "  -> 192.168.211.130:80           1234567890        7        0     100G       42\n";
        assert_eq!(list_with_rates(&table(), &o, Some(&rates())).unwrap(), want);
        // ipvsadm tests FMT_STATS first: --stats --rate lists the counters.
        let both = opts(|o| {
            o.rate = true;
            o.stats = true
        });
        assert_eq!(
            list_with_rates(&table(), &both, Some(&rates())).unwrap(),
            list(&table(), &opts(|o| o.stats = true)).unwrap()
        );
        // Without the estimates there is nothing to list.
        assert!(list(&table(), &opts(|o| o.rate = true)).is_err());
    }

    #[test]
    fn largenum_thresholds() {
        let f = |n: u64, exact: bool| {
            let mut s = String::new();
            largenum(&mut s, n, exact);
            s
        };
        assert_eq!(f(0, false), "        0");
        assert_eq!(f(99_999_999, false), " 99999999");
        assert_eq!(f(100_000_000, false), "  100000K");
        assert_eq!(f(999_999_999, false), "  999999K");
        assert_eq!(f(1_000_000_000, false), "    1000M");
        assert_eq!(f(99_999_999_999, false), "   99999M");
        assert_eq!(f(100_000_000_000, false), "     100G");
        assert_eq!(f(99_999_999_999_999, false), "   99999G");
        assert_eq!(f(100_000_000_000_000, false), "     100T");
        assert_eq!(f(12_345_678, true), " 12345678");
        assert_eq!(f(123_456_789, true), " 123456789");
        assert_eq!(f(u64::MAX, true), " 18446744073709551615");
    }

    #[test]
    fn golden_save() {
        let want = "-A -t 192.168.47.128:80 -s rr\n\
                    -a -t 192.168.47.128:80 -r 192.168.211.129:80 -m -w 1\n\
                    -a -t 192.168.47.128:80 -r 192.168.211.130:80 -m -w 3\n\
                    -A -t 192.168.47.128:8080 -s wrr\n\
                    -A -u 192.168.47.128:53 -s wrr\n\
                    -a -u 192.168.47.128:53 -r 192.168.211.131:5353 -m -w 0\n";
        assert_eq!(save(&table(), true), want);
        assert_eq!(save(&table(), false), want);
    }

    #[test]
    fn golden_single_service() {
        let o = opts(|o| o.service = Some(key(Proto::Tcp, "192.168.47.128", 80)));
        let want = String::new()
            + TITLE
            + "TCP  192.168.47.128:80 rr\n"
            + "  -> 192.168.211.129:80           Masq    1      0          0         \n"
            + "  -> 192.168.211.130:80           Masq    3      12         345       \n";
        assert_eq!(list(&table(), &o).unwrap(), want);
        let o = opts(|o| o.service = Some(key(Proto::Tcp, "192.168.47.128", 81)));
        assert_eq!(list(&table(), &o), Err(Error::list("No such service")));
    }

    #[test]
    fn service_options_and_ipv6() {
        let mut vs = VirtualService::new(key(Proto::Tcp, "10.0.0.1", 443), Scheduler::Sh);
        vs.persistence = Some(Persistence {
            timeout: 600,
            netmask: Ipv4Addr::new(255, 255, 255, 0),
            v6_prefix: 128,
        });
        vs.sched_flags = lvs_common::SVC_F_SCHED1 | lvs_common::SVC_F_SCHED2;
        let mut v6 = VirtualService::new(key(Proto::Udp, "fd00::1", 53), Scheduler::Rr);
        v6.ops = true;
        v6.persistence = Some(Persistence {
            timeout: 300,
            netmask: Ipv4Addr::BROADCAST,
            v6_prefix: 64,
        });
        v6.reals = vec![
            real("fd00::20", 53, Method::Masq, 1),
            real("fd00::3", 53, Method::Masq, 1),
        ];
        let mut tun = VirtualService::new(key(Proto::Tcp, "10.0.0.2", 80), Scheduler::Wlc);
        tun.reals = vec![
            real("10.2.0.1", 80, Method::Tunnel, 1),
            real("10.2.0.2", 80, Method::Route, 1),
        ];
        let snap = Snapshot {
            conn_table_size: 1 << 20,
            services: vec![v6, vs, tun],
            ..Snapshot::default()
        };
        let want = String::new()
            + "IP Virtual Server version 1.2.1 (size=1048576)\n"
            + TITLE
            + "TCP  10.0.0.1:443 sh (sh-fallback,sh-port) persistent 600 mask 255.255.255.0\n"
            + "TCP  10.0.0.2:80 wlc\n"
            + "  -> 10.2.0.1:80                  Tunnel  1      0          0         \n"
            + "  -> 10.2.0.2:80                  Route   1      0          0         \n"
            + "UDP  [fd00::1]:53 rr persistent 300 mask 64 ops\n"
            + "  -> [fd00::3]:53                 Masq    1      0          0         \n"
            + "  -> [fd00::20]:53                Masq    1      0          0         \n";
        assert_eq!(list(&snap, &opts(|_| {})).unwrap(), want);
        let want = "-A -t 10.0.0.1:443 -s sh -p 600 -M 255.255.255.0 -b sh-fallback,sh-port\n\
                    -A -t 10.0.0.2:80 -s wlc\n\
                    -a -t 10.0.0.2:80 -r 10.2.0.1:80 -i -w 1 --tun-type ipip\n\
                    -a -t 10.0.0.2:80 -r 10.2.0.2:80 -g -w 1\n\
                    -A -u [fd00::1]:53 -s rr -p 300 -M 64 -o\n\
                    -a -u [fd00::1]:53 -r [fd00::3]:53 -m -w 1\n\
                    -a -u [fd00::1]:53 -r [fd00::20]:53 -m -w 1\n";
        assert_eq!(save(&snap, true), want);
    }

    #[test]
    fn thresholds_and_timeouts() {
        let mut snap = table();
        snap.services[1].reals[0].u_threshold = 100;
        snap.services[1].reals[0].l_threshold = 10;
        let o = opts(|o| {
            o.thresholds = true;
            o.service = Some(key(Proto::Tcp, "192.168.47.128", 80));
        });
        let want = String::new()
            + "Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn \n"
            + "  -> RemoteAddress:Port\n"
            + "TCP  192.168.47.128:80 rr\n"
            + "  -> 192.168.211.129:80           0          0          0          0         \n"
            + "  -> 192.168.211.130:80           100        10         12         345       \n";
        assert_eq!(list(&snap, &o).unwrap(), want);
        assert_eq!(
            list(&snap, &opts(|o| o.timeout = true)).unwrap(),
            "Timeout (tcp tcpfin udp): 900 120 300\n"
        );
    }

    #[test]
    fn connection_rows() {
        let c = |expires: u32, state: &'static str| ConnEntry {
            proto: Proto::Tcp,
            state,
            expires,
            client: "10.9.0.1:40000".parse().unwrap(),
            virtual_addr: "10.0.0.1:80".parse().unwrap(),
            real: "10.1.0.1:8080".parse().unwrap(),
        };
        let rows = [
            c(0, "CLOSE"),
            c(59, "SYN_RECV"),
            c(60, "TIME_WAIT"),
            c(3599, "CLOSE_WAIT"),
            c(5999, "ESTABLISHED"),
            c(359_999, "ESTABLISHED"),
        ];
        let got = connections(&rows, &ListOpts::default());
        let want = "IPVS connection entries\n\
                    pro expire state       source             virtual            destination\n\
                    TCP 00:00  CLOSE       10.9.0.1:40000     10.0.0.1:80        10.1.0.1:8080\n\
                    TCP 00:59  SYN_RECV    10.9.0.1:40000     10.0.0.1:80        10.1.0.1:8080\n\
                    TCP 01:00  TIME_WAIT   10.9.0.1:40000     10.0.0.1:80        10.1.0.1:8080\n\
                    TCP 59:59  CLOSE_WAIT  10.9.0.1:40000     10.0.0.1:80        10.1.0.1:8080\n\
                    TCP 99:59  ESTABLISHED 10.9.0.1:40000     10.0.0.1:80        10.1.0.1:8080\n\
                    TCP 5999:59 ESTABLISHED 10.9.0.1:40000     10.0.0.1:80        10.1.0.1:8080\n";
        assert_eq!(got, want);
        // The snapshot listing does not list connections.
        let o = opts(|o| o.connection = true);
        assert_eq!(list(&table(), &o).unwrap_err().code, 1);
    }

    #[test]
    fn save_appends_thresholds() {
        let mut snap = table();
        snap.services[1].reals[0].u_threshold = 100;
        snap.services[1].reals[0].l_threshold = 50;
        snap.services[1].reals[1].u_threshold = 7;
        let got = save(&snap, true);
        assert!(
            got.contains("-a -t 192.168.47.128:80 -r 192.168.211.130:80 -m -w 3 -x 100 -y 50\n"),
            "{got}"
        );
        assert!(
            got.contains("-a -t 192.168.47.128:80 -r 192.168.211.129:80 -m -w 1 -x 7\n"),
            "{got}"
        );
    }

    #[test]
    fn ipvsadm_sort_quirk() {
        // 10.0.0.1 - 192.168.0.1 wraps to a positive int: 192.168.0.1 sorts
        // first, as with ipvsadm.
        let snap = Snapshot {
            services: vec![
                VirtualService::new(key(Proto::Tcp, "10.0.0.1", 80), Scheduler::Rr),
                VirtualService::new(key(Proto::Tcp, "192.168.0.1", 80), Scheduler::Rr),
                VirtualService::new(key(Proto::Tcp, "10.0.0.2", 80), Scheduler::Rr),
                VirtualService::new(
                    key(Proto::Tcp, "[fd00::1]".trim_matches(['[', ']']), 80),
                    Scheduler::Rr,
                ),
                VirtualService::new(key(Proto::Udp, "1.1.1.1", 80), Scheduler::Rr),
            ],
            ..Snapshot::default()
        };
        let got: Vec<String> = services(&snap, false)
            .iter()
            .map(|s| addr_port(s.key.addr, s.key.port))
            .collect();
        assert_eq!(
            got,
            [
                "192.168.0.1:80",
                "10.0.0.1:80",
                "10.0.0.2:80",
                "1.1.1.1:80",
                "[fd00::1]:80"
            ]
        );
    }

    #[test]
    fn ipv6_text() {
        assert_eq!(addr_port("::1.2.3.4".parse().unwrap(), 1), "[::1.2.3.4]:1");
        assert_eq!(
            addr_port("::ffff:1.2.3.4".parse().unwrap(), 1),
            "[::ffff:1.2.3.4]:1"
        );
        assert_eq!(addr_port("::1".parse().unwrap(), 1), "[::1]:1");
        assert_eq!(addr_port("::".parse().unwrap(), 1), "[::]:1");
        assert_eq!(
            addr_port("fd00:0:0:1::2".parse().unwrap(), 1),
            "[fd00:0:0:1::2]:1"
        );
    }
}
