//! SYN floods and a full connection table, through BPF_PROG_TEST_RUN on
//! the seed plan's namespace (fixed MACs, permanent neighbours): a new
//! connection waits in the embryonic table until the client completes its
//! handshake, a flood of new flows evicts only other embryonic ones, and
//! with `--conn-table-full refuse` a full established table refuses a new
//! connection instead of evicting an old one.

use std::{net::IpAddr, time::Duration};

use aya::maps::{Array, HashMap, MapData};
use lvs::{
    loader::{Sizes, TableFull, TunnelOpts},
    model::Method,
    sweeper::Sweeper,
    tables::names,
};
use lvs_common::{
    counters, state, Conn, FlowKey, RealConns, AF_INET, CONN_F_ACTIVE, CONN_F_DEAD, CONN_F_EMBRYO,
    CONN_F_SHORT, CONN_STATE_MASK, EMBRYO_SHORT_TIMEOUT_S, PROTO_TCP, PROTO_UDP,
};
use lvs_lab::{
    packet::*,
    require_root,
    xdpns::{mac, Plan},
};
use rand::{rngs::StdRng, Rng, SeedableRng};

use crate::common::xdp::{fixture_sized, service, Fixture, Run, XDP_PASS, XDP_REDIRECT};

const CLIENT: &str = "192.168.47.1";
const VIP: &str = "192.168.47.128";
const RS: &str = "192.168.211.129";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn word(a: IpAddr) -> u32 {
    match a {
        IpAddr::V4(a) => u32::from_ne_bytes(a.octets()),
        _ => unreachable!(),
    }
}

/// The client-side tuple as the maps key it.
fn key(src: IpAddr, sport: u16, dport: u16, proto: u8) -> FlowKey {
    FlowKey {
        src: [word(src), 0, 0, 0],
        dst: [word(ip(VIP)), 0, 0, 0],
        sport: sport.to_be(),
        dport: dport.to_be(),
        proto,
        family: AF_INET,
        _pad: [0; 2],
    }
}

/// The seed namespace with the director loaded with `sizes` and two
/// services on the VIP: TCP :80 to RS:8080 by `method`, UDP :53 to RS:5353
/// by `method`.
fn fixture(tag: &str, sizes: Sizes, method: Method) -> Fixture {
    let f = fixture_sized(tag, &Plan::seed(), sizes, TunnelOpts::default());
    // DR cannot change the port.
    let port = |vport: u16, nat: u16| if method == Method::Masq { nat } else { vport };
    f.services(vec![
        service(
            lvs::model::Proto::Tcp,
            ip(VIP),
            80,
            &[(ip(RS), port(80, 8080), method)],
        ),
        service(
            lvs::model::Proto::Udp,
            ip(VIP),
            53,
            &[(ip(RS), port(53, 5353), method)],
        ),
    ]);
    f
}

fn conn_in(f: &Fixture, table: &str, k: &FlowKey) -> Option<Conn> {
    let m: HashMap<&MapData, FlowKey, Conn> =
        HashMap::try_from(f.bpf.map(table).expect("map")).unwrap();
    m.get(k, 0).ok().filter(|c| c.st & CONN_F_DEAD == 0)
}

/// Live entries of `table`.
fn live(f: &Fixture, table: &str) -> Vec<(FlowKey, Conn)> {
    let m: HashMap<&MapData, FlowKey, Conn> =
        HashMap::try_from(f.bpf.map(table).expect("map")).unwrap();
    m.iter()
        .filter_map(|kv| kv.ok())
        .filter(|(_, c)| c.st & CONN_F_DEAD == 0)
        .collect()
}

/// (ActiveConn, InActConn) summed over every real server.
fn counts(f: &Fixture) -> (u64, u64) {
    let a: Array<&MapData, RealConns> =
        Array::try_from(f.bpf.map(names::REAL_CONNS).unwrap()).unwrap();
    a.iter()
        .filter_map(|r| r.ok())
        .fold((0, 0), |(x, y), r| (x + r.active, y + r.inactive))
}

fn syn(src: IpAddr, sport: u16) -> Frame {
    Frame::tcp((src, sport), (ip(VIP), 80), SYN).macs(mac::CLIENT, mac::DIR_EXT)
}

fn ack(sport: u16, data: &[u8]) -> Frame {
    Frame::tcp((ip(CLIENT), sport), (ip(VIP), 80), ACK)
        .macs(mac::CLIENT, mac::DIR_EXT)
        .payload(data)
}

fn from_rs(sport: u16, flags: u8, data: &[u8]) -> Frame {
    Frame::tcp((ip(RS), 8080), (ip(CLIENT), sport), flags)
        .macs(mac::RS, mac::DIR_INT)
        .payload(data)
}

/// `f` as DNAT sends it to the real server (a hop older).
fn dnat(f: &Frame) -> Vec<u8> {
    let mut w = f.clone().macs(mac::DIR_INT, mac::RS);
    w.dst = ip(RS);
    if let L4::Tcp { dport, .. } = &mut w.l4 {
        *dport = 8080;
    }
    dec_ttl(&w.build())
}

/// `f` (from the real server) as reverse NAT sends it to the client.
fn snat(f: &Frame) -> Vec<u8> {
    let mut w = f.clone().macs(mac::DIR_EXT, mac::CLIENT);
    w.src = ip(VIP);
    if let L4::Tcp { sport, .. } = &mut w.l4 {
        *sport = 80;
    }
    dec_ttl(&w.build())
}

/// Opens a NAT connection from client port `sport` and checks every
/// packet's bytes and where the connection is after each.
fn open_nat(f: &Fixture, sport: u16) {
    let ext = f.link_index("ext0");
    let int = f.link_index("int0");
    let k = key(ip(CLIENT), sport, 80, PROTO_TCP);
    let s = syn(ip(CLIENT), sport);
    assert_eq!(f.run(&s.build(), ext), (XDP_REDIRECT, dnat(&s)));
    let sa = from_rs(sport, SYN | ACK, b"");
    assert_eq!(f.run(&sa.build(), int), (XDP_REDIRECT, snat(&sa)));
    assert!(conn_in(f, names::CONNS, &k).is_none());
    let a = ack(sport, b"");
    assert_eq!(f.run(&a.build(), ext), (XDP_REDIRECT, dnat(&a)));
    let c = conn_in(f, names::CONNS, &k).expect("promoted");
    assert_eq!(c.st & CONN_STATE_MASK, state::ESTABLISHED as u32);
}

/// A SYN goes to the embryonic table (counted inactive), the real
/// server's SYN-ACK is translated but promotes nothing, and the client's
/// ACK moves it to the established table, ESTABLISHED and active. UDP:
/// NAT's reply promotes; for DR, a second client datagram.
#[test]
fn the_handshake_ack_promotes_an_embryonic_connection() {
    if !require_root("flood") {
        return;
    }
    let f = fixture("fl1", Sizes::default(), Method::Masq);
    let (ext, int) = (f.link_index("ext0"), f.link_index("int0"));
    let k = key(ip(CLIENT), 41000, 80, PROTO_TCP);
    let s = syn(ip(CLIENT), 41000);
    assert_eq!(f.run(&s.build(), ext), (XDP_REDIRECT, dnat(&s)));
    let e = conn_in(&f, names::EMBRYOS, &k).expect("embryonic");
    assert_eq!(e.st & CONN_STATE_MASK, state::SYN_RECV as u32);
    assert!(e.st & CONN_F_EMBRYO != 0 && e.st & CONN_F_SHORT == 0);
    assert!(conn_in(&f, names::CONNS, &k).is_none());
    assert_eq!(counts(&f), (0, 1));
    // The SYN-ACK (and a pure ACK of the real server) prove nothing.
    let sa = from_rs(41000, SYN | ACK, b"");
    assert_eq!(f.run(&sa.build(), int), (XDP_REDIRECT, snat(&sa)));
    let sack = from_rs(41000, ACK, b"");
    assert_eq!(f.run(&sack.build(), int), (XDP_REDIRECT, snat(&sack)));
    assert!(conn_in(&f, names::CONNS, &k).is_none());
    assert_eq!(counts(&f), (0, 1));
    assert_eq!(f.counter(counters::PROMOTED), 0);
    // A retransmitted SYN stays embryonic, on the same real server.
    assert_eq!(f.run(&s.build(), ext), (XDP_REDIRECT, dnat(&s)));
    assert!(conn_in(&f, names::EMBRYOS, &k).is_some());
    let a = ack(41000, b"hello");
    assert_eq!(f.run(&a.build(), ext), (XDP_REDIRECT, dnat(&a)));
    let c = conn_in(&f, names::CONNS, &k).expect("promoted");
    assert_eq!(c.st & CONN_STATE_MASK, state::ESTABLISHED as u32);
    assert!(c.st & CONN_F_ACTIVE != 0 && c.st & CONN_F_EMBRYO == 0);
    assert!(conn_in(&f, names::EMBRYOS, &k).is_none());
    assert_eq!(counts(&f), (1, 0));
    assert_eq!(f.counter(counters::PROMOTED), 1);
    let d = from_rs(41000, ACK, b"hi");
    assert_eq!(f.run(&d.build(), int), (XDP_REDIRECT, snat(&d)));
    assert_eq!(live(&f, names::EMBRYOS).len(), 0);

    // UDP through NAT: the real server's answer promotes.
    let uk = key(ip(CLIENT), 42000, 53, PROTO_UDP);
    let q = Frame::udp((ip(CLIENT), 42000), (ip(VIP), 53))
        .macs(mac::CLIENT, mac::DIR_EXT)
        .payload(b"q");
    assert_eq!(f.run(&q.build(), ext).0, XDP_REDIRECT);
    assert_eq!(f.run(&q.build(), ext).0, XDP_REDIRECT);
    assert!(conn_in(&f, names::EMBRYOS, &uk).is_some());
    assert!(conn_in(&f, names::CONNS, &uk).is_none());
    let r = Frame::udp((ip(RS), 5353), (ip(CLIENT), 42000))
        .macs(mac::RS, mac::DIR_INT)
        .payload(b"r");
    let (action, out) = f.run(&r.build(), int);
    assert_eq!(action, XDP_REDIRECT);
    let mut want = r.clone().macs(mac::DIR_EXT, mac::CLIENT);
    want.src = ip(VIP);
    want.l4 = L4::Udp {
        sport: 53,
        dport: 42000,
    };
    assert_eq!(out, dec_ttl(&want.build()));
    assert!(conn_in(&f, names::CONNS, &uk).is_some());
    assert!(conn_in(&f, names::EMBRYOS, &uk).is_none());
    assert_eq!(counts(&f), (1, 1));
    assert_eq!(f.counter(counters::PROMOTED), 2);
    drop(f);

    // DR: TCP promotes on the client's ACK, UDP on its second datagram.
    let f = fixture("fl2", Sizes::default(), Method::Route);
    let ext = f.link_index("ext0");
    let s = syn(ip(CLIENT), 43000);
    assert_eq!(f.run(&s.build(), ext).0, XDP_REDIRECT);
    let k = key(ip(CLIENT), 43000, 80, PROTO_TCP);
    assert!(conn_in(&f, names::EMBRYOS, &k).is_some());
    assert_eq!(f.run(&ack(43000, b"").build(), ext).0, XDP_REDIRECT);
    assert!(conn_in(&f, names::EMBRYOS, &k).is_none());
    assert_eq!(
        conn_in(&f, names::CONNS, &k).map(|c| c.st & CONN_STATE_MASK),
        Some(state::ESTABLISHED as u32)
    );
    let q = Frame::udp((ip(CLIENT), 44000), (ip(VIP), 53))
        .macs(mac::CLIENT, mac::DIR_EXT)
        .payload(b"q");
    let uk = key(ip(CLIENT), 44000, 53, PROTO_UDP);
    assert_eq!(f.run(&q.build(), ext).0, XDP_REDIRECT);
    assert!(conn_in(&f, names::EMBRYOS, &uk).is_some());
    assert!(conn_in(&f, names::CONNS, &uk).is_none());
    // The second datagram meets the shared path once its flow-cache slot
    // is older than the slot's lifetime (64 jiffies).
    let promoted = crate::common::wait_until(Duration::from_secs(3), || {
        f.run(&q.build(), ext);
        conn_in(&f, names::CONNS, &uk).is_some()
    });
    assert!(promoted, "a second DR datagram promotes");
    assert!(conn_in(&f, names::EMBRYOS, &uk).is_none());
    assert_eq!(counts(&f), (1, 1));
}

/// The sweeper of `lvs load`, run on the fixture's director.
fn sweep(f: &mut Fixture, sweeper: &mut Sweeper) -> lvs::sweeper::Swept {
    sweeper.sweep(&mut f.bpf).expect("sweep")
}

const SMALL: Sizes = Sizes {
    max_conns: 1024,
    max_services: 1024,
    max_reals: 4096,
    sched_table: 1 << 20,
    max_embryonic: 256,
    table_full: TableFull::Refuse,
};

/// A flood of SYNs from 20 000 distinct sources (random ports), far more
/// than the embryonic table holds, leaves every established NAT
/// connection in place: all still forwarded byte-exact both ways. The
/// flood's entries get the short timeout under pressure; the sweeper
/// takes the evicted ones off InActConn exactly, and once the survivors
/// have expired the counts are what the open connections say.
#[test]
fn a_syn_flood_never_evicts_an_established_connection() {
    if !require_root("flood") {
        return;
    }
    let mut f = fixture("fl3", SMALL, Method::Masq);
    const EST: u16 = 200;
    for i in 0..EST {
        open_nat(&f, 20000 + i);
    }
    assert_eq!(counts(&f), (EST as u64, 0));
    let new0 = f.counter(counters::NEW_CONN);
    let ext = f.link_index("ext0");
    const FLOOD: u32 = 20_000;
    let seed: u64 = rand::random();
    println!("flood seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let frames: Vec<Vec<u8>> = (0..FLOOD)
        .map(|i| {
            let src = IpAddr::from([10, (i >> 16) as u8, (i >> 8) as u8, i as u8]);
            syn(src, rng.random_range(1024..65535)).build()
        })
        .collect();
    let redirected = f
        .enter(|| {
            frames
                .iter()
                .filter(|fr| f.run_once(fr, ext).unwrap().action == XDP_REDIRECT)
                .count()
        })
        .unwrap();
    assert_eq!(redirected, FLOOD as usize);
    assert_eq!(f.counter(counters::NEW_CONN) - new0, FLOOD as u64);
    assert!(f.counter(counters::EMBRYONIC_FULL) > 0);
    assert!(f.counter(counters::SYN_PRESSURE) > 0);
    assert_eq!(live(&f, names::CONNS).len(), EST as usize);
    let embryos = live(&f, names::EMBRYOS);
    let cap = lvs::loader::lru_entries(256, lvs::loader::possible_cpus().unwrap()) as usize;
    assert!(
        !embryos.is_empty() && embryos.len() <= cap,
        "{}",
        embryos.len()
    );
    assert!(
        embryos.iter().all(|(_, c)| c.st & CONN_F_SHORT != 0),
        "the flood's survivors were created under pressure"
    );
    for i in 0..EST {
        let a = ack(20000 + i, b"after the flood");
        assert_eq!(f.run(&a.build(), ext), (XDP_REDIRECT, dnat(&a)), "conn {i}");
        let r = from_rs(20000 + i, ACK, b"still here");
        assert_eq!(
            f.run(&r.build(), f.link_index("int0")),
            (XDP_REDIRECT, snat(&r)),
            "reply {i}"
        );
    }
    // Two sweeps: the first flips the epoch, the second finds what the
    // flood's epoch lost.
    let mut sw = Sweeper::new(&f.pin);
    sweep(&mut f, &mut sw);
    let s = sweep(&mut f, &mut sw);
    let survivors = live(&f, names::EMBRYOS).len() as u64;
    assert_eq!(counts(&f), (EST as u64, survivors), "{s:?}");
    assert_eq!(
        f.counter(counters::SYN_FLOOD_EVICTED) + survivors,
        FLOOD as u64,
        "{s:?}"
    );
    assert_eq!(f.counter(counters::EVICTED), 0);
    // The survivors expire within the short timeout (and its second of
    // slack); the established connections stay.
    std::thread::sleep(Duration::from_secs(EMBRYO_SHORT_TIMEOUT_S as u64 + 2));
    let s = sweep(&mut f, &mut sw);
    assert_eq!(s.embryonic, 0, "{s:?}");
    assert_eq!(live(&f, names::EMBRYOS).len(), 0);
    assert_eq!(counts(&f), (EST as u64, 0));
    assert_eq!(live(&f, names::CONNS).len(), EST as usize);
    for i in 0..EST {
        let a = ack(20000 + i, b"and after expiry");
        assert_eq!(f.run(&a.build(), ext), (XDP_REDIRECT, dnat(&a)), "conn {i}");
    }
}

/// The same with UDP through NAT: 100 flows confirmed by their real
/// server's answers stay in the established table through a flood of
/// 20 000 first datagrams from distinct sources, and are still forwarded
/// byte-exact both ways; the flood's entries leave the counts.
#[test]
fn a_udp_flood_never_evicts_a_confirmed_flow() {
    if !require_root("flood") {
        return;
    }
    let mut f = fixture("fl6", SMALL, Method::Masq);
    let (ext, int) = (f.link_index("ext0"), f.link_index("int0"));
    const FLOWS: u16 = 100;
    let q = |port: u16, data: &[u8]| {
        Frame::udp((ip(CLIENT), port), (ip(VIP), 53))
            .macs(mac::CLIENT, mac::DIR_EXT)
            .payload(data)
    };
    let a = |port: u16, data: &[u8]| {
        Frame::udp((ip(RS), 5353), (ip(CLIENT), port))
            .macs(mac::RS, mac::DIR_INT)
            .payload(data)
    };
    let fwd = |fr: &Frame, port: u16| {
        let mut w = fr.clone().macs(mac::DIR_INT, mac::RS);
        w.dst = ip(RS);
        w.l4 = L4::Udp {
            sport: port,
            dport: 5353,
        };
        dec_ttl(&w.build())
    };
    let back = |fr: &Frame, port: u16| {
        let mut w = fr.clone().macs(mac::DIR_EXT, mac::CLIENT);
        w.src = ip(VIP);
        w.l4 = L4::Udp {
            sport: 53,
            dport: port,
        };
        dec_ttl(&w.build())
    };
    for i in 0..FLOWS {
        let port = 50000 + i;
        let (fq, fa) = (q(port, b"query"), a(port, b"answer"));
        assert_eq!(f.run(&fq.build(), ext), (XDP_REDIRECT, fwd(&fq, port)));
        assert_eq!(f.run(&fa.build(), int), (XDP_REDIRECT, back(&fa, port)));
    }
    assert_eq!(live(&f, names::CONNS).len(), FLOWS as usize);
    assert_eq!(counts(&f), (0, FLOWS as u64));
    const FLOOD: u32 = 20_000;
    let frames: Vec<Vec<u8>> = (0..FLOOD)
        .map(|i| {
            let src = IpAddr::from([10, 1 + (i >> 16) as u8, (i >> 8) as u8, i as u8]);
            Frame::udp((src, 1024 + (i % 60000) as u16), (ip(VIP), 53))
                .macs(mac::CLIENT, mac::DIR_EXT)
                .payload(b"flood")
                .build()
        })
        .collect();
    let redirected = f
        .enter(|| {
            frames
                .iter()
                .filter(|fr| f.run_once(fr, ext).unwrap().action == XDP_REDIRECT)
                .count()
        })
        .unwrap();
    assert_eq!(redirected, FLOOD as usize);
    assert!(f.counter(counters::EMBRYONIC_FULL) > 0);
    assert_eq!(live(&f, names::CONNS).len(), FLOWS as usize);
    for i in 0..FLOWS {
        let port = 50000 + i;
        let (fq, fa) = (q(port, b"again"), a(port, b"still"));
        assert_eq!(
            f.run(&fq.build(), ext),
            (XDP_REDIRECT, fwd(&fq, port)),
            "flow {i}"
        );
        assert_eq!(
            f.run(&fa.build(), int),
            (XDP_REDIRECT, back(&fa, port)),
            "flow {i}"
        );
    }
    let mut sw = Sweeper::new(&f.pin);
    sweep(&mut f, &mut sw);
    sweep(&mut f, &mut sw);
    let survivors = live(&f, names::EMBRYOS).len() as u64;
    assert_eq!(counts(&f), (0, FLOWS as u64 + survivors));
    assert_eq!(
        f.counter(counters::SYN_FLOOD_EVICTED) + survivors,
        FLOOD as u64
    );
}

/// `--conn-table-full refuse` with `--max-conns` established connections:
/// a new SYN is passed to the director's stack untouched (which resets
/// it), counted, and every old connection is still forwarded; once one
/// ends there is room again. With `evict` the new connection is taken.
#[test]
fn a_full_table_refuses_new_connections_and_keeps_the_old() {
    if !require_root("flood") {
        return;
    }
    const MAX: u16 = 16;
    let sizes = Sizes {
        max_conns: MAX as u32,
        ..SMALL
    };
    let f = fixture("fl4", sizes, Method::Masq);
    let ext = f.link_index("ext0");
    for i in 0..MAX {
        open_nat(&f, 30000 + i);
    }
    let s = syn(ip(CLIENT), 31000);
    assert_eq!(f.run(&s.build(), ext), (XDP_PASS, s.build()));
    assert_eq!(f.counter(counters::CONN_TABLE_FULL), 1);
    assert!(conn_in(&f, names::EMBRYOS, &key(ip(CLIENT), 31000, 80, PROTO_TCP)).is_none());
    assert_eq!(counts(&f), (MAX as u64, 0));
    for i in 0..MAX {
        let a = ack(30000 + i, b"x");
        assert_eq!(f.run(&a.build(), ext), (XDP_REDIRECT, dnat(&a)), "conn {i}");
    }
    // One ends (client RST): its entry goes, and a new connection fits.
    let rst = Frame::tcp((ip(CLIENT), 30000), (ip(VIP), 80), RST).macs(mac::CLIENT, mac::DIR_EXT);
    assert_eq!(f.run(&rst.build(), ext).0, XDP_REDIRECT);
    let k0 = key(ip(CLIENT), 30000, 80, PROTO_TCP);
    // CLOSE lasts 10 s: a new SYN from the same port reopens it at once.
    assert_eq!(f.run(&syn(ip(CLIENT), 30000).build(), ext).0, XDP_REDIRECT);
    assert!(conn_in(&f, names::CONNS, &k0).is_none());
    assert!(conn_in(&f, names::EMBRYOS, &k0).is_some());
    drop(f);

    let f = fixture(
        "fl5",
        Sizes {
            table_full: TableFull::Evict,
            ..sizes
        },
        Method::Masq,
    );
    let ext = f.link_index("ext0");
    for i in 0..MAX {
        open_nat(&f, 30000 + i);
    }
    let s = syn(ip(CLIENT), 31000);
    assert_eq!(f.run(&s.build(), ext), (XDP_REDIRECT, dnat(&s)));
    assert_eq!(f.counter(counters::CONN_TABLE_FULL), 0);
}

/// Live TCP through `lvs load`: 1 000 established NAT connections (real
/// sockets, client namespace to a listener in the real server's) exchange
/// data in rounds (every 50 ms, or as fast as the machine allows) while a
/// thread pushes SYNs from random sources and ports through the
/// director's program at full speed with BPF_PROG_TEST_RUN, into the same
/// pinned maps (`flood_live.rs` sends the flood as live frames out of
/// the client's link instead). Not one established connection breaks; afterwards the
/// flood's entries are gone within their short timeout and
/// ActiveConn/InActConn are what the open connections say.
#[test]
fn live_nat_connections_survive_a_syn_flood() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    use crate::common::{
        director_with,
        held::{exchange_lines, held_nat_connections, link_mac, Held},
    };
    use lvs_lab::seed;

    if !require_root("flood live") {
        return;
    }
    const N: usize = 1000;
    let d = director_with(
        "flive",
        1,
        &["--max-conns", "4096", "--max-embryonic", "512"],
    )
    .unwrap();
    let Held { vip, pairs, .. } = held_nat_connections(&d, N);
    assert_eq!(
        exchange_lines(0, &pairs),
        Vec::<usize>::new(),
        "{}",
        d.diag()
    );
    let row = |d: &crate::common::Director| d.reals(&vip)[0].clone();
    assert_eq!((row(&d).active, row(&d).inactive), (N as u64, 0));

    // The flood: a second handle on the pinned director.
    let pin = d.seed.pin_dir().to_path_buf();
    let sizes = Sizes {
        max_conns: 4096,
        max_embryonic: 512,
        ..Sizes::default()
    };
    let bpf = lvs::loader::load_director(&pin, sizes, false, TunnelOpts::default(), &[]).unwrap();
    let ext = d.seed.director.ifindex(seed::DIR_EXT_IF).unwrap();
    let dmac = link_mac(&d.seed.director, seed::DIR_EXT_IF);
    let stop = AtomicBool::new(false);
    let sent = AtomicU64::new(0);
    let flood_new0 = d.counter("new_conn");
    let seed_v: u64 = rand::random();
    println!("flood seed {seed_v}");
    let (rounds, broken, secs) = std::thread::scope(|sc| {
        let flood = sc.spawn(|| {
            d.seed
                .director
                .enter(|| {
                    let prog = lvs::testbed::prog(&bpf, "director").unwrap();
                    let mut rng = StdRng::seed_from_u64(seed_v);
                    while !stop.load(Ordering::Relaxed) {
                        let src = IpAddr::from([10, rng.random(), rng.random(), rng.random()]);
                        let fr =
                            Frame::tcp((src, rng.random_range(1024..65535)), (ip(VIP), 80), SYN)
                                .macs(mac::CLIENT, dmac)
                                .build();
                        let r = lvs::progtest::test_run(prog, &fr, ext, 1, false).unwrap();
                        assert_eq!(r.action, XDP_REDIRECT);
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                })
                .unwrap()
        });
        let start = std::time::Instant::now();
        let mut broken = Vec::new();
        let mut rounds = 0;
        while start.elapsed() < Duration::from_secs(6) {
            let t = std::time::Instant::now();
            rounds += 1;
            broken.extend(exchange_lines(rounds, &pairs));
            if let Some(rest) = Duration::from_millis(50).checked_sub(t.elapsed()) {
                std::thread::sleep(rest);
            }
        }
        let secs = start.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        flood.join().unwrap();
        (rounds, broken, secs)
    });
    let syns = sent.load(Ordering::Relaxed);
    println!(
        "flood: {syns} SYNs in {secs:.1} s ({:.0}/s) while {N} connections made {rounds} exchanges each",
        syns as f64 / secs
    );
    assert!(
        broken.is_empty(),
        "broken connections: {:?}\n{}",
        &broken[..broken.len().min(10)],
        d.diag()
    );
    assert!(
        syns > 10 * 512,
        "the flood overflowed the embryonic table ({syns} SYNs)"
    );
    assert!(d.counter("embryonic_full") > 0);
    assert_eq!(d.counter("new_conn") - flood_new0, syns);
    assert_eq!(d.counter("evicted"), 0);
    // Gone within their short timeout (3 s, a second of slack, two sweeps).
    let embryos = || crate::common::held::live_embryos(&bpf);
    let settled = crate::common::wait_until(
        Duration::from_secs(EMBRYO_SHORT_TIMEOUT_S as u64 + 5),
        || embryos() == 0 && row(&d).inactive == 0,
    );
    assert!(settled, "embryonic left {} {:?}", embryos(), row(&d));
    assert_eq!(row(&d).active, N as u64);
    // The flood's evictions were counted, and taken off InActConn above.
    assert!(d.counter("syn_pressure") > 0 && d.counter("syn_flood_evicted") > 0);
    assert_eq!(
        exchange_lines(rounds + 1, &pairs),
        Vec::<usize>::new(),
        "{}",
        d.diag()
    );
}

/// The same for DR through `lvs load` on the LAN lab: 1 000 established DR
/// connections (two real servers answering the client directly) each
/// exchange a line every 50 ms while a thread pushes SYNs from random
/// sources and ports through the pinned director at full speed; none
/// breaks, and the flood's entries and counts settle afterwards.
#[test]
fn live_dr_connections_survive_a_syn_flood() {
    use std::{
        net::SocketAddr,
        sync::{
            atomic::{AtomicBool, AtomicU64, Ordering},
            Arc,
        },
    };

    use crate::{
        common::{active_total, lan_director},
        life::{exchange, open_to},
    };
    use lvs_lab::{
        lan::{self, LanConfig, LAN_IF},
        servers,
    };

    if !require_root("flood live DR") {
        return;
    }
    const N: usize = 1000;
    let d = lan_director(
        "fdr",
        LanConfig {
            real_servers: 2,
            ..Default::default()
        },
        false,
        &["--max-embryonic", "512"],
    )
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

    let sizes = Sizes {
        max_embryonic: 512,
        ..Sizes::default()
    };
    let pin = d.lan.pin_dir().to_path_buf();
    let bpf = lvs::loader::load_director(&pin, sizes, false, TunnelOpts::default(), &[]).unwrap();
    let ifindex = d.lan.director.ifindex(LAN_IF).unwrap();
    let dmac = d.mac(&d.lan.director);
    let stop = Arc::new(AtomicBool::new(false));
    let sent = AtomicU64::new(0);
    let new0 = d.counter("new_conn");
    let seed_v: u64 = rand::random();
    println!("flood seed {seed_v}");
    let worker = {
        let stop = stop.clone();
        std::thread::spawn(move || exchange(conns, stop))
    };
    let start = std::time::Instant::now();
    let bad = d
        .lan
        .director
        .enter(|| {
            let prog = lvs::testbed::prog(&bpf, "director").unwrap();
            let mut rng = StdRng::seed_from_u64(seed_v);
            let mut bad = 0u64;
            while start.elapsed() < Duration::from_secs(6) {
                let src = IpAddr::from([10, rng.random(), rng.random(), rng.random()]);
                let fr = Frame::tcp((src, rng.random_range(1024..65535)), (vip.ip(), 80), SYN)
                    .macs(mac::CLIENT, dmac)
                    .build();
                let r = lvs::progtest::test_run(prog, &fr, ifindex, 1, false).unwrap();
                if r.action != lvs_common::xdp::TX && r.action != XDP_REDIRECT {
                    bad += 1;
                }
                sent.fetch_add(1, Ordering::Relaxed);
            }
            bad
        })
        .unwrap();
    let secs = start.elapsed().as_secs_f64();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let x = worker.join().unwrap();
    let syns = sent.load(Ordering::Relaxed);
    println!(
        "DR flood: {syns} SYNs in {secs:.1} s ({:.0}/s); {} lines exchanged on {N} connections",
        syns as f64 / secs,
        x.lines
    );
    assert_eq!(bad, 0, "every flood SYN forwarded");
    assert_eq!(x.errors, 0, "{:?}\n{}", x.first_errors, d.diag());
    assert!(x.lines >= N as u64, "every connection exchanged");
    assert!(
        syns > 10 * 512,
        "the flood overflowed the embryonic table ({syns})"
    );
    assert_eq!(d.counter("new_conn") - new0, syns);
    assert!(d.counter("embryonic_full") > 0);
    assert_eq!(d.counter("evicted"), 0);
    let embryos = || crate::common::held::live_embryos(&bpf);
    let inactive = |d: &crate::common::Lan| d.reals(&vs).iter().map(|r| r.inactive).sum::<u64>();
    let settled = crate::common::wait_until(
        Duration::from_secs(EMBRYO_SHORT_TIMEOUT_S as u64 + 5),
        || embryos() == 0 && inactive(&d) == 0,
    );
    assert!(settled, "embryonic left {} {:?}", embryos(), d.reals(&vs));
    assert_eq!(active_total(&d.reals(&vs)), N as u64);
}
