//! SYN floods as live frames: `lvs::floodgen`'s generator (BPF_PROG_TEST_RUN
//! with BPF_F_TEST_XDP_LIVE_FRAMES in the client namespace) transmits
//! SYNs from random sources and ports out of the client's link, so they
//! arrive at the director's XDP program on its `ext` link as any frame
//! from the wire does.

use std::{
    collections::HashSet,
    net::{IpAddr, Ipv4Addr, UdpSocket},
    path::Path,
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    time::{Duration, Instant},
};

use aya::maps::{HashMap, MapData};
use lvs::{
    floodgen::{Generator, Sources},
    loader::{Sizes, TunnelOpts},
    tables::names,
};
use lvs_common::{Conn, FlowKey, AF_INET, CONN_F_DEAD, EMBRYO_SHORT_TIMEOUT_S, PROTO_UDP};
use lvs_lab::{
    packet::{parse, Frame, Mac, SYN},
    require_root, seed, Netns,
};

use crate::common::{
    director_with,
    held::{exchange_lines, held_nat_connections, link_mac, live_embryos, Held},
    real_rows, wait_until, Director,
};

/// The flood's sources: 10.0.0.0/8, ports 1024–33791.
const SOURCES: Sources = Sources {
    addr: Ipv4Addr::new(10, 0, 0, 0),
    addr_bits: 24,
    port: 1024,
    port_bits: 15,
};

/// Every frame the generator makes is the template with a source address
/// and port from the range, both checksums valid, whatever the page held
/// before (live pages come back as the receiver left them).
#[test]
fn the_generator_rewrites_source_port_and_checksums() {
    if !require_root("flood generator") {
        return;
    }
    let vip: IpAddr = seed::VIP.into();
    for udp in [false, true] {
        let t = if udp {
            Frame::udp((seed::CLIENT_IP.into(), 5000), (vip, 53)).payload(b"flood")
        } else {
            Frame::tcp((seed::CLIENT_IP.into(), 5000), (vip, 80), SYN)
        }
        .macs([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .build();
        let g = Generator::load(&t, SOURCES).unwrap();
        let tp = parse(g.frame()).unwrap();
        assert!(tp.ip_csum_ok && tp.l4_csum_ok, "template {tp:?}");
        assert_eq!(
            (tp.src, tp.sport),
            (IpAddr::from(SOURCES.addr), SOURCES.port)
        );
        let mut seen = HashSet::new();
        let garbage = vec![0xa5u8; g.frame().len()];
        for i in 0..2000 {
            let input = if i % 2 == 0 { g.frame() } else { &garbage[..] };
            let (action, out) = g.one(input, 1).unwrap();
            assert_eq!(action, lvs_common::xdp::TX);
            assert_eq!(out.len(), g.frame().len());
            let p = parse(&out).unwrap();
            assert!(p.ip_csum_ok && p.l4_csum_ok, "frame {i}: {p:?}");
            let IpAddr::V4(src) = p.src else { panic!() };
            let off = u32::from(src) - u32::from(SOURCES.addr);
            assert!(off < 1 << SOURCES.addr_bits, "{src}");
            assert!((1024..1024 + (1 << 15)).contains(&p.sport), "{}", p.sport);
            // Everything else is the template's.
            let mut want = g.frame().to_vec();
            want[24..30].copy_from_slice(&out[24..30]);
            want[34..36].copy_from_slice(&out[34..36]);
            let c = if udp { 40 } else { 50 };
            want[c..c + 2].copy_from_slice(&out[c..c + 2]);
            assert_eq!(out, want, "frame {i}");
            seen.insert((src, p.sport));
        }
        assert!(seen.len() > 1990, "{} distinct sources", seen.len());
    }
    let bad = Frame::tcp((seed::CLIENT_IP.into(), 1), (vip, 80), SYN)
        .build()
        .into_iter()
        .take(30)
        .collect::<Vec<_>>();
    assert!(Generator::load(&bad, SOURCES).is_err());
}

/// Frames the generator sends at least; the flood goes on until as many
/// have reached the director or [`FLOOD_LIMIT`] has passed.
const FLOOD: u64 = 2_000_000;
/// Flood frames that must reach the director's XDP program: hundreds of
/// times the 512-slot embryonic table. veth drops what the director's
/// ring cannot take, and on a loaded machine (a parallel test run beside
/// builds) only 16 000 a second got through, where alone 150 000–450 000
/// do: 2 000 000 would then take two minutes.
const MIN_SEEN: u64 = 100_000;
/// Frames per generator call: each call returns when they are sent.
const CALL: u32 = 1 << 16;
/// The flood's bound on a slow machine, once [`FLOOD`] frames are sent.
const FLOOD_LIMIT: Duration = Duration::from_secs(60);

/// What a flood did.
struct Flood {
    /// Frames the generator sent.
    sent: u64,
    /// New connections the director counted (the frames that reached its
    /// XDP program: veth drops what its ring cannot take).
    seen: u64,
    secs: f64,
    /// Rounds of the established flows' exchange during the flood.
    rounds: usize,
}

impl std::fmt::Display for Flood {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(
            f,
            "{} frames sent in {:.1} s ({:.0}/s), {} new connections at the director ({:.0}/s)",
            self.sent,
            self.secs,
            self.sent as f64 / self.secs,
            self.seen,
            self.seen as f64 / self.secs
        )
    }
}

impl Flood {
    /// At least [`FLOOD`] flood frames were sent and [`MIN_SEEN`] reached
    /// the director's XDP program on `ext` (each a new connection) while
    /// the flows kept exchanging.
    fn check(&self) {
        assert!(self.sent >= FLOOD, "{self}");
        assert!(self.seen >= MIN_SEEN, "{self}");
        assert!(self.sent >= self.seen, "{self}");
        assert!(self.rounds >= 2, "the flows exchanged during the flood");
    }
}

/// Where a flood goes: out of `client`'s link `client_if` to the
/// director's link with MAC `dir_mac`, whose `new_conn` counter is
/// `new_conns`.
struct Link<'a> {
    client: &'a Netns,
    client_if: &'a str,
    dir_mac: Mac,
    new_conns: Box<dyn Fn() -> u64 + Sync + 'a>,
}

/// The seed lab's: the client's eth0 to the director's `ext` (ens37).
fn seed_link(d: &Director) -> Link<'_> {
    Link {
        client: &d.seed.client,
        client_if: seed::CLIENT_IF,
        dir_mac: link_mac(&d.seed.director, seed::DIR_EXT_IF),
        new_conns: Box::new(|| d.counter("new_conn")),
    }
}

/// Floods the director's link with copies of `template` from [`SOURCES`],
/// sent by the generator out of the client's link, until the director has
/// counted [`FLOOD`] new connections (or [`FLOOD_LIMIT`] passed);
/// meanwhile calls `round` every 50 ms.
fn flood(link: Link, template: Frame, mut round: impl FnMut(usize)) -> Flood {
    let template = template
        .macs(link_mac(link.client, link.client_if), link.dir_mac)
        .build();
    let gen = Generator::load(&template, SOURCES).unwrap();
    let client_if = link.client.ifindex(link.client_if).unwrap();
    let new0 = (link.new_conns)();
    let stop = AtomicBool::new(false);
    let sent = AtomicU64::new(0);
    let start = Instant::now();
    let rounds = std::thread::scope(|sc| {
        let gen_thread = sc.spawn(|| {
            link.client.enter(|| -> anyhow::Result<()> {
                while !stop.load(Ordering::Relaxed)
                    && (start.elapsed() < FLOOD_LIMIT || sent.load(Ordering::Relaxed) < FLOOD)
                    && start.elapsed() < 3 * FLOOD_LIMIT
                {
                    gen.send(client_if, CALL)?;
                    sent.fetch_add(CALL as u64, Ordering::Relaxed);
                }
                Ok(())
            })
        });
        let mut rounds = 0;
        while !gen_thread.is_finished() {
            let t = Instant::now();
            rounds += 1;
            round(rounds);
            if (link.new_conns)() - new0 >= FLOOD {
                stop.store(true, Ordering::Relaxed);
            }
            if let Some(rest) = Duration::from_millis(50).checked_sub(t.elapsed()) {
                std::thread::sleep(rest);
            }
        }
        stop.store(true, Ordering::Relaxed);
        gen_thread.join().unwrap().unwrap().unwrap();
        rounds
    });
    Flood {
        sent: sent.load(Ordering::Relaxed),
        seen: (link.new_conns)() - new0,
        secs: start.elapsed().as_secs_f64(),
        rounds,
    }
}

/// 1 000 established NAT connections (real sockets, client namespace to a
/// listener in the real server's) exchange a line each way in rounds
/// every 50 ms while the generator sends 2 000 000 SYNs from random
/// sources and ports out of the client's link at full speed: the
/// director's XDP program on `ext` meets them as frames from the wire.
/// None of the connections breaks; afterwards the flood's entries are
/// gone within their short timeout and ActiveConn/InActConn are what the
/// open connections say.
#[test]
fn live_frames_syn_flood_breaks_no_nat_connection() {
    if !require_root("flood live frames") {
        return;
    }
    const N: usize = 1000;
    let d = director_with("flf", 1, &["--max-conns", "4096", "--max-embryonic", "512"]).unwrap();
    let Held { vip, pairs, .. } = held_nat_connections(&d, N);
    assert_eq!(
        exchange_lines(0, &pairs),
        Vec::<usize>::new(),
        "{}",
        d.diag()
    );
    let row = |d: &Director| d.reals(&vip)[0].clone();
    assert_eq!((row(&d).active, row(&d).inactive), (N as u64, 0));

    let template = Frame::tcp((seed::CLIENT_IP.into(), 1), (seed::VIP.into(), 80), SYN);
    let mut broken = Vec::new();
    let f = flood(seed_link(&d), template, |round| {
        broken.extend(exchange_lines(round, &pairs))
    });
    println!(
        "live SYN flood: {f} while {N} NAT connections exchanged a line each way {} times",
        f.rounds
    );
    assert!(
        broken.is_empty(),
        "broken connections: {:?}\n{}",
        &broken[..broken.len().min(10)],
        d.diag()
    );
    f.check();
    assert!(d.counter("embryonic_full") > 0);
    assert_eq!(d.counter("evicted"), 0);
    // Gone within their short timeout (a second of slack, two sweeps).
    let sizes = Sizes {
        max_conns: 4096,
        max_embryonic: 512,
        ..Sizes::default()
    };
    let pin = d.seed.pin_dir().to_path_buf();
    let bpf = lvs::loader::load_director(&pin, sizes, false, TunnelOpts::default(), &[]).unwrap();
    let settled = wait_until(
        Duration::from_secs(EMBRYO_SHORT_TIMEOUT_S as u64 + 5),
        || live_embryos(&bpf) == 0 && row(&d).inactive == 0,
    );
    assert!(
        settled,
        "embryonic left {} {:?}",
        live_embryos(&bpf),
        row(&d)
    );
    assert_eq!(row(&d).active, N as u64);
    assert!(d.counter("syn_flood_evicted") > 0);
    assert_eq!(
        exchange_lines(f.rounds + 1, &pairs),
        Vec::<usize>::new(),
        "{}",
        d.diag()
    );
}

/// The client-side tuple of a flow to the VIP as the maps key it.
fn key(sport: u16, dport: u16, proto: u8) -> FlowKey {
    FlowKey {
        src: [u32::from_ne_bytes(seed::CLIENT_IP.octets()), 0, 0, 0],
        dst: [u32::from_ne_bytes(seed::VIP.octets()), 0, 0, 0],
        sport: sport.to_be(),
        dport: dport.to_be(),
        proto,
        family: AF_INET,
        _pad: [0; 2],
    }
}

/// Sends one datagram on every flow, then collects the answers that came
/// within 20 ms; adds them to `answered`.
fn udp_round(round: usize, flows: &[UdpSocket], answered: &mut [u64]) {
    for (i, s) in flows.iter().enumerate() {
        // A full socket buffer under load is a loss, not a failure.
        let _ = s.send(format!("r{round:05} {i:04}").as_bytes());
    }
    std::thread::sleep(Duration::from_millis(20));
    let mut buf = [0u8; 64];
    for (i, s) in flows.iter().enumerate() {
        while let Ok(n) = s.recv(&mut buf) {
            if buf[..n].ends_with(format!(" {i:04}").as_bytes()) {
                answered[i] += 1;
            }
        }
    }
}

/// The same with UDP: 1 000 NAT flows to a UDP service, each confirmed by
/// its real server's answer, send a datagram every 50 ms while the
/// generator floods the service with 2 000 000 datagrams from random
/// sources and ports. Every flow keeps its entry in the established
/// table and is answered after the flood (and all but a few, whose
/// datagrams veth dropped with the flood's, during it); the flood's
/// entries go within their short timeout and InActConn is the flows'.
#[test]
fn live_frames_udp_flood_breaks_no_nat_flow() {
    if !require_root("UDP flood live frames") {
        return;
    }
    const N: usize = 1000;
    let d = director_with("flu", 1, &["--max-conns", "4096", "--max-embryonic", "512"]).unwrap();
    let vs = format!("{}:53", seed::VIP);
    d.adm(&["-A", "-u", &vs, "-s", "rr"]);
    d.adm(&[
        "-a",
        "-u",
        &vs,
        "-r",
        &format!("{}:53", seed::rs_ip(0)),
        "-m",
    ]);
    let server = d.seed.rs[0]
        .enter(|| UdpSocket::bind("0.0.0.0:53"))
        .unwrap()
        .unwrap();
    server
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let stop = AtomicBool::new(false);
    std::thread::scope(|sc| {
        // The real server echoes every datagram (the flood's too: their
        // answers are reverse-translated and then go nowhere).
        sc.spawn(|| {
            let mut buf = [0u8; 256];
            while !stop.load(Ordering::Relaxed) {
                if let Ok((n, from)) = server.recv_from(&mut buf) {
                    let _ = server.send_to(&buf[..n], from);
                }
            }
        });
        // A failed assertion must stop the echo thread too, or the scope
        // would wait for it forever.
        let _stop = StopOnDrop(&stop);
        let flows: Vec<UdpSocket> = d
            .seed
            .client
            .enter(|| {
                (0..N)
                    .map(|_| {
                        let s = UdpSocket::bind("0.0.0.0:0").unwrap();
                        s.connect(d.seed.vip(53)).unwrap();
                        s.set_nonblocking(true).unwrap();
                        s
                    })
                    .collect()
            })
            .unwrap();
        let keys: Vec<FlowKey> = flows
            .iter()
            .map(|s| key(s.local_addr().unwrap().port(), 53, PROTO_UDP))
            .collect();
        // Confirmed: each flow answered once (bounded retries).
        let mut answered = vec![0u64; N];
        for r in 0..50 {
            if answered.iter().all(|&a| a > 0) {
                break;
            }
            udp_round(r, &flows, &mut answered);
        }
        assert!(answered.iter().all(|&a| a > 0), "{}", d.diag());
        let pin = d.seed.pin_dir().to_path_buf();
        let sizes = Sizes {
            max_conns: 4096,
            max_embryonic: 512,
            ..Sizes::default()
        };
        let bpf =
            lvs::loader::load_director(&pin, sizes, false, TunnelOpts::default(), &[]).unwrap();
        let established = |bpf: &aya::Ebpf| {
            let m: HashMap<&MapData, FlowKey, Conn> =
                HashMap::try_from(bpf.map(names::CONNS).unwrap()).unwrap();
            keys.iter()
                .filter(|k| m.get(k, 0).is_ok_and(|c| c.st & CONN_F_DEAD == 0))
                .count()
        };
        assert_eq!(established(&bpf), N);
        let row = |d: &Director| real_rows(&d.adm(&["-L", "-n", "-u", &vs]))[0].clone();
        assert_eq!((row(&d).active, row(&d).inactive), (0, N as u64));

        let template =
            Frame::udp((seed::CLIENT_IP.into(), 1), (seed::VIP.into(), 53)).payload(b"flood");
        let mut during = vec![0u64; N];
        let base = 1000;
        let f = flood(seed_link(&d), template, |r| {
            udp_round(base + r, &flows, &mut during)
        });
        let lost = during
            .iter()
            .map(|&a| f.rounds as u64 - a.min(f.rounds as u64))
            .sum::<u64>();
        println!(
            "live UDP flood: {f} while {N} NAT flows sent a datagram {} times ({lost} answers \
             missing)",
            f.rounds
        );
        f.check();
        assert_eq!(established(&bpf), N, "every flow kept its entry");
        // The flows' datagrams share the director's receive ring with the
        // flood, which veth drops from when it is full (most of the flood
        // is dropped there): a flow can lose every datagram of a short
        // flood without the director having lost anything. What the
        // director must not lose is its entry (above) and its answers
        // (after); during the flood nearly every flow gets through.
        let silent = during.iter().filter(|&&a| a == 0).count();
        assert!(
            silent * 20 <= N,
            "{silent} of {N} flows got no answer during the flood (first: {:?})",
            during.iter().position(|&a| a == 0)
        );
        assert!(d.counter("embryonic_full") > 0);
        assert_eq!(d.counter("evicted"), 0);
        let settled = wait_until(
            Duration::from_secs(EMBRYO_SHORT_TIMEOUT_S as u64 + 5),
            || live_embryos(&bpf) == 0 && row(&d).inactive == N as u64,
        );
        assert!(
            settled,
            "embryonic left {} {:?}",
            live_embryos(&bpf),
            row(&d)
        );
        assert_eq!(row(&d).active, 0);
        let mut after = vec![0u64; N];
        for r in 0..50 {
            if after.iter().all(|&a| a > 0) {
                break;
            }
            udp_round(2_000_000 + r, &flows, &mut after);
        }
        assert!(after.iter().all(|&a| a > 0), "{}", d.diag());
        assert_eq!(established(&bpf), N);
    });
}

struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// The same for DR on the LAN lab: 1 000 established DR connections (two
/// real servers answering the client directly) each exchange a line every
/// 50 ms while the generator floods the VIP with 2 000 000 SYNs from the
/// client's link (through the switch to the director's eth0, which sends
/// them on to the real servers by XDP_TX): none breaks, and the flood's
/// entries and the counts settle afterwards.
#[test]
fn live_frames_syn_flood_breaks_no_dr_connection() {
    use crate::{
        common::{active_total, lan_director},
        life::{exchange, open_to},
    };
    use lvs_lab::{
        lan::{self, LanConfig},
        servers,
    };
    use std::{net::SocketAddr, sync::Arc};

    if !require_root("flood live frames DR") {
        return;
    }
    const N: usize = 1000;
    let d = lan_director(
        "fld",
        LanConfig {
            real_servers: 2,
            ..Default::default()
        },
        false,
        &["--max-embryonic", "512"],
    )
    .unwrap();
    // veth hands the generator's XDP_TX frames to its peer's XDP program:
    // the switch's port facing the client gets one too.
    let pass =
        lvs_lab::seed::start_pass(&d.lan.switch, Path::new(crate::common::LVS), &["p-client"])
            .unwrap();
    pass.wait_for_line(lvs_lab::seed::PASS_READY, lvs_lab::seed::READY_TIMEOUT)
        .unwrap();
    let any = SocketAddr::from(([0, 0, 0, 0], 80));
    let _srv: Vec<_> = d
        .lan
        .rs
        .iter()
        .enumerate()
        .map(|(i, ns)| servers::echo_line(ns, any, &format!("rs{}", i + 1)).unwrap())
        .collect();
    let vip = d.lan.vip(80);
    let vs = vip.to_string();
    d.adm(&["-A", "-t", &vs, "-s", "rr"]);
    for i in 0..2 {
        let rs = format!("{}:80", lan::rs_ip(i));
        d.adm(&["-a", "-t", &vs, "-r", &rs, "-g", "-w", "1"]);
    }
    d.resolved(&[lan::rs_ip(0).into(), lan::rs_ip(1).into()]);
    let conns: Vec<_> = (0..N)
        .map(|i| open_to(&d.lan.client, vip, &format!("c{i}")))
        .collect();
    d.wait_active(&vs, N as u64, Duration::from_secs(10));
    let stop = Arc::new(AtomicBool::new(false));
    let worker = {
        let stop = stop.clone();
        std::thread::spawn(move || exchange(conns, stop))
    };
    let link = Link {
        client: &d.lan.client,
        client_if: lan::LAN_IF,
        dir_mac: d.mac(&d.lan.director),
        new_conns: Box::new(|| d.counter("new_conn")),
    };
    let template = Frame::tcp((lan::CLIENT_IP.into(), 1), (vip.ip(), 80), SYN);
    let f = flood(link, template, |_| {});
    stop.store(true, Ordering::SeqCst);
    let x = worker.join().unwrap();
    println!(
        "live DR SYN flood: {f}; {} lines exchanged on {N} connections",
        x.lines
    );
    assert_eq!(x.errors, 0, "{:?}\n{}", x.first_errors, d.diag());
    assert!(
        x.lines >= 2 * N as u64,
        "every connection exchanged during the flood"
    );
    f.check();
    assert!(d.counter("embryonic_full") > 0);
    assert_eq!(d.counter("evicted"), 0);
    let sizes = Sizes {
        max_embryonic: 512,
        ..Sizes::default()
    };
    let pin = d.lan.pin_dir().to_path_buf();
    let bpf = lvs::loader::load_director(&pin, sizes, false, TunnelOpts::default(), &[]).unwrap();
    let inactive = || d.reals(&vs).iter().map(|r| r.inactive).sum::<u64>();
    let settled = wait_until(
        Duration::from_secs(EMBRYO_SHORT_TIMEOUT_S as u64 + 5),
        || live_embryos(&bpf) == 0 && inactive() == 0,
    );
    assert!(
        settled,
        "embryonic left {} {:?}",
        live_embryos(&bpf),
        d.reals(&vs)
    );
    assert_eq!(active_total(&d.reals(&vs)), N as u64);
    drop(pass);
}
