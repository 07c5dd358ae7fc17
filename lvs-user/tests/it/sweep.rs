//! The sweeper's walk in the kernel (`conn_sweep`, run through
//! BPF_PROG_TEST_RUN): tables filled with expired and live entries are
//! walked in several bounded slices, and exactly the expired entries go,
//! the counts each slice returns add up, the per-real counts of what the
//! walk saw are right, the services with a live connection are marked and
//! the templates of live persistent connections are kept in use; then the
//! whole `Sweeper` on the same tables.

use std::net::IpAddr;

use aya::maps::{Array, HashMap, MapData};
use lvs::{
    loader::TunnelOpts,
    model::{Method, Persistence, Proto},
    sweeper::{sweep_slice, Sweeper},
    tables::{monotonic_ns, names},
};
use lvs_common::{
    occupancy, state, Conn, EmbryoCounts, FlowKey, Persist, PersistKey, Real, RealConns,
    ServiceEntry, ServiceKey, SweepRun, SweepSeen, SweepSvc, AF_INET, CONN_F_ACTIVE, CONN_F_EMBRYO,
    CONN_F_EPOCH, PROTO_TCP, SWEEP_CONNS, SWEEP_EMBRYOS, SWEEP_F_START,
};
use lvs_lab::{require_root, xdpns::Plan};

use crate::common::xdp::{fixture_with, service, Fixture, Run};

const VIP: &str = "192.168.47.128";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn word(a: [u8; 4]) -> u32 {
    u32::from_ne_bytes(a)
}

/// Client 10.7.`c / 256`.`c % 256`, port 40000 + `c`, to VIP:`port`.
fn key(c: u32, port: u16) -> FlowKey {
    FlowKey {
        src: [word([10, 7, (c >> 8) as u8, c as u8]), 0, 0, 0],
        dst: [word(ip4(VIP)), 0, 0, 0],
        sport: (40000 + c as u16).to_be(),
        dport: port.to_be(),
        proto: PROTO_TCP,
        family: AF_INET,
        _pad: [0; 2],
    }
}

fn ip4(s: &str) -> [u8; 4] {
    match ip(s) {
        IpAddr::V4(a) => a.octets(),
        _ => unreachable!(),
    }
}

/// (service id, real index) of the service on VIP:`port`.
fn ids(f: &Fixture, port: u16) -> (u32, u32) {
    let svcs: HashMap<&MapData, ServiceKey, ServiceEntry> =
        HashMap::try_from(f.bpf.map(names::SERVICES).unwrap()).unwrap();
    let k = ServiceKey {
        addr: [word(ip4(VIP)), 0, 0, 0],
        port: port.to_be(),
        proto: PROTO_TCP,
        family: AF_INET,
    };
    let id = svcs.get(&k, 0).unwrap().views[0].id;
    let reals: Array<&MapData, Real> = Array::try_from(f.bpf.map(names::REALS).unwrap()).unwrap();
    let real = (0..reals.len())
        .find(|&i| {
            let r = reals.get(&i, 0).unwrap();
            r.svc_id == id && r.flags & lvs_common::REAL_F_IN_USE != 0
        })
        .expect("the service's real server");
    (id, real)
}

fn generation(f: &Fixture, real: u32) -> u32 {
    let reals: Array<&MapData, Real> = Array::try_from(f.bpf.map(names::REALS).unwrap()).unwrap();
    reals.get(&real, 0).unwrap().generation
}

fn keys(f: &Fixture, table: &str) -> Vec<FlowKey> {
    let m: HashMap<&MapData, FlowKey, Conn> = HashMap::try_from(f.bpf.map(table).unwrap()).unwrap();
    let mut v: Vec<FlowKey> = m.keys().map(|k| k.unwrap()).collect();
    v.sort_by_key(|k| (k.dport, k.src));
    v
}

fn template(f: &Fixture, k: &PersistKey) -> Option<Persist> {
    let m: HashMap<&MapData, PersistKey, Persist> =
        HashMap::try_from(f.bpf.map(names::PERSIST).unwrap()).unwrap();
    m.get(k, 0).ok()
}

fn real_conns(f: &Fixture, real: u32) -> RealConns {
    let a: Array<&MapData, RealConns> =
        Array::try_from(f.bpf.map(names::REAL_CONNS).unwrap()).unwrap();
    a.get(&real, 0).unwrap()
}

/// What the test put in the tables.
struct Filled {
    /// Keys that must remain, sorted as `keys` sorts them.
    conns_live: Vec<FlowKey>,
    embryos_live: Vec<FlowKey>,
    conns_expired: usize,
    embryos_expired: usize,
    /// Per real (persistent service's, other's): (active, inactive) live
    /// in CONNS, and live embryos of epoch 0.
    seen: [([u64; 2], u64); 2],
    /// Templates of the persistent service's live clients.
    kept: Vec<PersistKey>,
}

/// Two TCP services on the VIP, :80 persistent (netmask /24) and :81 not,
/// one NAT real server each.
fn setup(tag: &str) -> (Fixture, [(u32, u32); 2]) {
    let f = fixture_with(tag, &Plan::seed(), TunnelOpts::default());
    let mut p = service(
        Proto::Tcp,
        ip(VIP),
        80,
        &[(ip("192.168.211.129"), 8080, Method::Masq)],
    );
    p.persistence = Some(Persistence {
        timeout: 300,
        netmask: "255.255.255.0".parse().unwrap(),
        v6_prefix: 128,
    });
    let q = service(
        Proto::Tcp,
        ip(VIP),
        81,
        &[(ip("192.168.211.129"), 8081, Method::Masq)],
    );
    f.services(vec![p, q]);
    let svcs = [ids(&f, 80), ids(&f, 81)];
    assert_ne!(svcs[0].1, svcs[1].1);
    (f, svcs)
}

/// Fills CONNS with `n` connections per service (every third expired,
/// every other of the others active) and EMBRYOS with `n / 2` per service
/// (every fourth expired, epochs alternating), counted as the data path
/// would have counted them; templates for each /24 of the persistent
/// service's clients, last used long ago.
fn fill(f: &mut Fixture, svcs: [(u32, u32); 2], n: u32) -> Filled {
    let now = monotonic_ns();
    // Expired entries are CLOSE (10 s) and were last seen 20 s ago.
    let old = now.checked_sub(20_000_000_000).expect("up for 20 s");
    let mut out = Filled {
        conns_live: Vec::new(),
        embryos_live: Vec::new(),
        conns_expired: 0,
        embryos_expired: 0,
        seen: [([0; 2], 0); 2],
        kept: Vec::new(),
    };
    let mut counts = [RealConns::default(); 2];
    let mut epochs = [EmbryoCounts::default(); 2];
    let mut entries = 0u64;
    let mut embryos = 0u64;
    {
        let mut conns: HashMap<&mut MapData, FlowKey, Conn> =
            HashMap::try_from(f.bpf.map_mut(names::CONNS).unwrap()).unwrap();
        for (s, &(svc, real)) in svcs.iter().enumerate() {
            let port = 80 + s as u16;
            for c in 0..n {
                let k = key(c, port);
                let expired = c % 3 == 0;
                let active = !expired && c % 2 == 0;
                let c = Conn {
                    real,
                    real_generation: 0,
                    svc_id: svc,
                    st: if expired {
                        state::CLOSE as u32
                    } else if active {
                        state::ESTABLISHED as u32 | CONN_F_ACTIVE
                    } else {
                        state::FIN_WAIT as u32
                    },
                    last_seen: if expired { old } else { now },
                };
                conns.insert(k, c, 0).unwrap();
                entries += 1;
                if active {
                    counts[s].active += 1;
                } else {
                    counts[s].inactive += 1;
                }
                if expired {
                    out.conns_expired += 1;
                } else {
                    out.conns_live.push(k);
                    out.seen[s].0[!active as usize] += 1;
                }
            }
        }
    }
    {
        let mut m: HashMap<&mut MapData, FlowKey, Conn> =
            HashMap::try_from(f.bpf.map_mut(names::EMBRYOS).unwrap()).unwrap();
        for (s, &(svc, real)) in svcs.iter().enumerate() {
            let port = 80 + s as u16;
            for c in n..n + n / 2 {
                let k = key(c, port);
                let expired = c % 4 == 0;
                let epoch = c % 2;
                let c = Conn {
                    real,
                    real_generation: 0,
                    svc_id: svc,
                    st: if expired {
                        state::CLOSE
                    } else {
                        state::SYN_RECV
                    } as u32
                        | CONN_F_EMBRYO
                        | if epoch == 1 { CONN_F_EPOCH } else { 0 },
                    last_seen: if expired { old } else { now },
                };
                m.insert(k, c, 0).unwrap();
                embryos += 1;
                counts[s].inactive += 1;
                epochs[s].epochs[epoch as usize] += 1;
                if expired {
                    out.embryos_expired += 1;
                } else {
                    out.embryos_live.push(k);
                    if epoch == 0 {
                        out.seen[s].1 += 1;
                    }
                }
            }
        }
    }
    {
        let mut a: Array<&mut MapData, RealConns> =
            Array::try_from(f.bpf.map_mut(names::REAL_CONNS).unwrap()).unwrap();
        for (s, &(_, real)) in svcs.iter().enumerate() {
            a.set(real, counts[s], 0).unwrap();
        }
    }
    {
        let mut a: Array<&mut MapData, EmbryoCounts> =
            Array::try_from(f.bpf.map_mut(names::EMBRYO_COUNTS).unwrap()).unwrap();
        for (s, &(_, real)) in svcs.iter().enumerate() {
            a.set(real, epochs[s], 0).unwrap();
        }
    }
    {
        let mut a: Array<&mut MapData, u64> =
            Array::try_from(f.bpf.map_mut(names::OCCUPANCY).unwrap()).unwrap();
        a.set(occupancy::CONNS, entries, 0).unwrap();
        a.set(occupancy::EMBRYOS, embryos, 0).unwrap();
    }
    // Templates: the persistent service's clients are in 10.7.0.0/24 and
    // 10.7.1.0/24 (n ≤ 512). one more /24 whose only connection expired.
    let (psvc, preal) = svcs[0];
    let g = generation(f, preal);
    let mut t: HashMap<&mut MapData, PersistKey, Persist> =
        HashMap::try_from(f.bpf.map_mut(names::PERSIST).unwrap()).unwrap();
    let mask = [word([255, 255, 255, 0]), 0, 0, 0];
    for third in 0..=((n - 1) >> 8) {
        let pk = PersistKey::new(psvc, AF_INET, &mask, &key(third << 8, 80).src);
        t.insert(
            pk,
            Persist {
                real: preal,
                real_generation: g,
                last_used: old,
            },
            0,
        )
        .unwrap();
        out.kept.push(pk);
    }
    out
}

fn slice(f: &Fixture, input: &SweepRun) -> SweepRun {
    sweep_slice(&f.bpf, input).expect("conn_sweep").0
}

fn seen(f: &Fixture, real: u32) -> SweepSeen {
    let a: Array<&MapData, SweepSeen> =
        Array::try_from(f.bpf.map(names::SWEEP_SEEN).unwrap()).unwrap();
    a.get(&real, 0).unwrap()
}

fn svc_mark(f: &Fixture, id: u32) -> SweepSvc {
    let a: Array<&MapData, SweepSvc> =
        Array::try_from(f.bpf.map(names::SWEEP_SVCS).unwrap()).unwrap();
    a.get(&id, 0).unwrap()
}

/// Walks `table` in slices of `budget`, as the sweeper does: (slices,
/// summed live, expired, kept).
fn walk(f: &Fixture, table: u32, sweep: u64, budget: u64, overlap: u64) -> (u32, u64, u64, u64) {
    let mut input = SweepRun {
        sweep,
        overlap,
        budget,
        table,
        flags: if table == SWEEP_CONNS {
            SWEEP_F_START
        } else {
            0
        },
        fixed_epoch: 0,
        ..Default::default()
    };
    let (mut slices, mut live, mut expired, mut kept) = (0, 0, 0, 0);
    loop {
        let r = slice(f, &input);
        slices += 1;
        assert!(r.live + r.expired <= budget, "{r:?}");
        live += r.live;
        expired += r.expired;
        kept += r.kept;
        if r.done != 0 {
            return (slices, live, expired, kept);
        }
        assert!(slices < 1000, "the walk does not end");
        input.skip = r.next;
        input.flags = 0;
    }
}

#[test]
fn the_kernel_walk_expires_counts_and_keeps_in_bounded_slices() {
    if !require_root("sweep slices") {
        return;
    }
    let (mut f, svcs) = setup("sw1");
    const N: u32 = 300;
    let t = fill(&mut f, svcs, N);
    let before = monotonic_ns();
    // Budget 37 (not a divisor of anything here), overlap 5.
    let (slices, live, expired, kept) = walk(&f, SWEEP_CONNS, 1, 37, 5);
    let conns = 2 * N as u64;
    assert!(slices as u64 >= conns / 37, "{slices} slices");
    assert_eq!(live, t.conns_live.len() as u64);
    assert_eq!(expired, t.conns_expired as u64);
    let mut want = t.conns_live.clone();
    want.sort_by_key(|k| (k.dport, k.src));
    assert_eq!(keys(&f, names::CONNS), want);
    // Every live connection of the persistent service refreshed its /24's
    // template: kept counts connections, the templates are both in use.
    assert_eq!(
        kept,
        t.conns_live
            .iter()
            .filter(|k| k.dport == 80u16.to_be())
            .count() as u64
    );
    for pk in &t.kept {
        let tp = template(&f, pk).expect("template");
        assert!(tp.last_used >= before - 1_000_000_000, "{tp:?}");
    }
    let (slices, live, expired, kept) = walk(&f, SWEEP_EMBRYOS, 1, 11, 3);
    assert!(slices >= 2 * (N / 2) / 11, "{slices} slices");
    assert_eq!(live, t.embryos_live.len() as u64);
    assert_eq!(expired, t.embryos_expired as u64);
    assert_eq!(kept, 0, "embryonic connections keep no template");
    let mut want = t.embryos_live.clone();
    want.sort_by_key(|k| (k.dport, k.src));
    assert_eq!(keys(&f, names::EMBRYOS), want);
    for (s, &(id, real)) in svcs.iter().enumerate() {
        let sn = seen(&f, real);
        assert_eq!(
            ([sn.active, sn.inactive], sn.embryo),
            t.seen[s],
            "service {s}"
        );
        assert_eq!(svc_mark(&f, id).live, 1, "service {s} has live connections");
        // The expiries were uncounted exactly: what remains is what lives.
        let rc = real_conns(&f, real);
        let embryos_live = t
            .embryos_live
            .iter()
            .filter(|k| k.dport == (80 + s as u16).to_be())
            .count() as u64;
        assert_eq!(
            (rc.active, rc.inactive),
            (t.seen[s].0[0], t.seen[s].0[1] + embryos_live),
            "service {s}"
        );
    }
    // A second sweep finds nothing to expire and counts the same from
    // zero (the first slice zeroes the per-real counts).
    let (_, live, expired, _) = walk(&f, SWEEP_CONNS, 2, 64, 8);
    assert_eq!((live, expired), (t.conns_live.len() as u64, 0));
    let sn = seen(&f, svcs[0].1);
    assert_eq!([sn.active, sn.inactive], t.seen[0].0);
    assert_eq!(svc_mark(&f, svcs[0].0).live, 2);
}

/// The overlap: entries removed before a slice's start between two slices
/// shift the rest back, and the next slice still reaches every entry (here
/// all of them expired, so each slice removes what it handles and the
/// next one starts where it did).
#[test]
fn a_walk_whose_slices_remove_everything_still_ends() {
    if !require_root("sweep removes all") {
        return;
    }
    let (mut f, svcs) = setup("sw2");
    let now = monotonic_ns();
    {
        let mut conns: HashMap<&mut MapData, FlowKey, Conn> =
            HashMap::try_from(f.bpf.map_mut(names::CONNS).unwrap()).unwrap();
        for c in 0..200 {
            let conn = Conn {
                real: svcs[1].1,
                svc_id: svcs[1].0,
                st: state::CLOSE as u32,
                last_seen: now.checked_sub(20_000_000_000).expect("up for 20 s"),
                ..Default::default()
            };
            conns.insert(key(c, 81), conn, 0).unwrap();
        }
    }
    let (slices, live, expired, _) = walk(&f, SWEEP_CONNS, 1, 16, 4);
    assert_eq!((live, expired), (0, 200));
    assert!(slices >= 200 / 16, "{slices}");
    assert!(keys(&f, names::CONNS).is_empty());
    // No live connection: the service is not marked by this sweep.
    assert_ne!(svc_mark(&f, svcs[1].0).live, 1);
}

/// The whole sweeper on filled tables: the same removals, and its counts
/// are the walk's.
#[test]
fn the_sweeper_walks_in_the_kernel() {
    if !require_root("sweeper") {
        return;
    }
    let (mut f, svcs) = setup("sw3");
    let t = fill(&mut f, svcs, 200);
    let before = monotonic_ns();
    let mut sw = Sweeper::new(&f.pin);
    let s = sw.sweep(&mut f.bpf).expect("sweep");
    assert_eq!(s.live, t.conns_live.len() as u64, "{s:?}");
    assert_eq!(s.expired, t.conns_expired as u64, "{s:?}");
    assert_eq!(s.embryonic, t.embryos_live.len() as u64, "{s:?}");
    assert_eq!(s.embryonic_expired, t.embryos_expired as u64, "{s:?}");
    assert_eq!(s.evicted + s.embryonic_evicted, 0, "{s:?}");
    assert!(s.slices >= 2, "{s:?}");
    let mut want = t.conns_live.clone();
    want.sort_by_key(|k| (k.dport, k.src));
    assert_eq!(keys(&f, names::CONNS), want);
    for pk in &t.kept {
        assert!(template(&f, pk).unwrap().last_used >= before - 1_000_000_000);
    }
    // The epoch flipped.
    let a: Array<&MapData, u64> = Array::try_from(f.bpf.map(names::OCCUPANCY).unwrap()).unwrap();
    assert_eq!(a.get(&occupancy::EPOCH, 0).unwrap(), 1);
}
