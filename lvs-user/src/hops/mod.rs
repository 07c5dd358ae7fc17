//! Real servers' next hops, kept in `REAL_HOPS` for the data path: DR and
//! TUN then need no `bpf_fib_lookup`, which refuses to find a next hop
//! while forwarding is off (an IPVS director doing only DR and TUN runs
//! without it; only NAT routes through the director).
//!
//! For every real server in use (`REALS` entries with `REAL_F_IN_USE`)
//! that is DR or TUN, the next hop is resolved from the kernel's tables:
//! the route to the server (egress link, gateway or on-link, preferred
//! source, MTU), the egress link's MAC and MTU, and the neighbour entry of
//! the route's next hop on that link. The neighbour entries themselves are
//! `neigh::Neighbours`' business (managed entries the kernel keeps
//! resolved); this module only reads them. A DR server must be on a link
//! of the director: one reachable only through a gateway is warned about
//! (once, and at most once a minute) and gets no entry.
//!
//! Kept current by rtnetlink events (links, neighbours, IPv4 and IPv6
//! routes), by reading `REALS` again every second (servers added, edited,
//! removed) and at once when the data path reports a miss (`NEIGH_MISS`,
//! forwarded by `lvs load`), plus a full re-read every
//! [`RESYNC`] in case an event was lost unnoticed. All of it runs on a
//! thread of its own: netlink requests and map updates block, and the
//! tokio runtime of `lvs load` is single-threaded.
//!
//! An entry is written only when complete, through [`HopTable`]; a slot
//! whose server is gone, is NAT, or has no usable next hop is cleared, and
//! the data path then falls back to the FIB.

pub(crate) mod rtnl;

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    fmt,
    net::IpAddr,
    path::Path,
    sync::mpsc::{self, Receiver, RecvTimeoutError, Sender},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use aya::maps::{Array, Map, MapData};
use lvs_common::{NextHop, Real, RealHop, METHOD_ROUTE, METHOD_TUNNEL, REAL_F_IN_USE};

pub use self::rtnl::{Event, Link, Neigh, Route};
use self::rtnl::{Events, Rtnl};
use crate::tables::{addr_words, names, words_addr};

/// How often `REALS` is read again.
const TICK: Duration = Duration::from_secs(1);
/// How often everything is read again, events or not (a path MTU the
/// kernel learnt changes a route without an event).
pub const RESYNC: Duration = Duration::from_secs(30);
/// The longest the thread sleeps between looks at its requests.
const POLL: Duration = Duration::from_millis(50);
/// At most one warning a minute about one DR server behind a gateway.
const WARN_EVERY: Duration = crate::warn::EVERY;

/// `REAL_HOPS` as written by one owner (`lvs load`, or a test): the
/// two-copy protocol of [`RealHop`], with a copy of every slot so that an
/// unchanged hop costs no update.
pub struct HopTable {
    map: Array<MapData, RealHop>,
    shadow: Vec<RealHop>,
}

impl HopTable {
    /// Opens the `REAL_HOPS` pinned under `pin_dir`, as it is.
    pub fn open(pin_dir: &Path) -> Result<HopTable> {
        let path = pin_dir.join(names::REAL_HOPS);
        let data =
            MapData::from_pin(&path).with_context(|| format!("cannot open {}", path.display()))?;
        let map: Array<MapData, RealHop> = Array::try_from(Map::Array(data))?;
        let shadow = (0..map.len())
            .map(|i| map.get(&i, 0))
            .collect::<Result<_, _>>()?;
        Ok(HopTable { map, shadow })
    }

    pub fn len(&self) -> u32 {
        self.shadow.len() as u32
    }

    pub fn is_empty(&self) -> bool {
        self.shadow.is_empty()
    }

    /// The current next hop of slot `idx`, as last written.
    pub fn current(&self, idx: u32) -> Option<NextHop> {
        self.shadow.get(idx as usize)?.current().copied()
    }

    /// Makes `hop` slot `idx`'s current next hop: the other copy first,
    /// then, in a second update, the sequence that names it. `false` if it
    /// already was.
    pub fn publish(&mut self, idx: u32, hop: &NextHop) -> Result<bool> {
        let Some(&cur) = self.shadow.get(idx as usize) else {
            anyhow::bail!("REAL_HOPS has no slot {idx}");
        };
        if cur.current() == Some(hop) {
            return Ok(false);
        }
        let next = RealHop::next_seq(cur.seq);
        let mut v = cur;
        v.copies[(next & 1) as usize] = *hop;
        self.map.set(idx, v, 0)?;
        self.shadow[idx as usize] = v;
        v.seq = next;
        self.map.set(idx, v, 0)?;
        self.shadow[idx as usize] = v;
        Ok(true)
    }

    /// Leaves slot `idx` without a next hop; `false` if it had none.
    pub fn clear(&mut self, idx: u32) -> Result<bool> {
        let Some(&cur) = self.shadow.get(idx as usize) else {
            return Ok(false);
        };
        if cur.seq == 0 {
            return Ok(false);
        }
        let v = RealHop { seq: 0, ..cur };
        self.map.set(idx, v, 0)?;
        self.shadow[idx as usize] = v;
        Ok(true)
    }
}

/// Why a real server has no entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NoHop {
    /// The kernel has no unicast route to it.
    NoRoute(String),
    /// A DR server must be on a link of the director, not behind `gw`.
    Gateway(IpAddr),
    /// The route's link is unknown, down, or not Ethernet.
    Link(u32, &'static str),
    /// The next hop (the server or its gateway) has no usable neighbour
    /// entry yet.
    NoNeighbour(IpAddr),
}

impl fmt::Display for NoHop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoHop::NoRoute(why) => write!(f, "{why}"),
            NoHop::Gateway(gw) => write!(f, "it is reachable only through the gateway {gw}"),
            NoHop::Link(i, what) => write!(f, "its link (index {i}) is {what}"),
            NoHop::NoNeighbour(a) => write!(f, "no neighbour entry with a MAC for {a} yet"),
        }
    }
}

/// The links and neighbour entries of the namespace, as last read.
#[derive(Default)]
pub struct Tables {
    pub links: HashMap<u32, Link>,
    pub neighs: HashMap<(u32, IpAddr), Neigh>,
}

impl Tables {
    /// Takes in one event; whether routes must be resolved again (a link
    /// that changed may change them).
    pub fn apply(&mut self, e: Event) -> bool {
        match e {
            Event::Link(l) => {
                let changed = self.links.get(&l.index) != Some(&l);
                self.links.insert(l.index, l);
                changed
            }
            Event::LinkGone(i) => {
                self.links.remove(&i);
                self.neighs.retain(|k, _| k.0 != i);
                true
            }
            Event::Neigh(n) => {
                self.neighs.insert((n.ifindex, n.addr), n);
                false
            }
            Event::NeighGone(i, a) => {
                self.neighs.remove(&(i, a));
                false
            }
            Event::Route | Event::Overrun => true,
        }
    }
}

/// The next hop of real server `addr` forwarded by `method` over `route`,
/// from the link and neighbour tables.
pub fn compose(addr: IpAddr, method: u8, route: &Route, t: &Tables) -> Result<NextHop, NoHop> {
    if method == METHOD_ROUTE {
        if let Some(gw) = route.gateway {
            return Err(NoHop::Gateway(gw));
        }
    }
    let link = t
        .links
        .get(&route.oif)
        .ok_or(NoHop::Link(route.oif, "unknown"))?;
    if !link.up {
        return Err(NoHop::Link(route.oif, "down"));
    }
    let smac = link.mac.ok_or(NoHop::Link(route.oif, "not Ethernet"))?;
    let mtu = route.mtu.unwrap_or(link.mtu);
    if mtu == 0 {
        return Err(NoHop::Link(route.oif, "without an MTU"));
    }
    let via = route.gateway.unwrap_or(addr);
    let dmac = t
        .neighs
        .get(&(route.oif, via))
        .filter(|n| n.usable)
        .and_then(|n| n.mac)
        .ok_or(NoHop::NoNeighbour(via))?;
    Ok(NextHop {
        addr: addr_words(addr),
        src: route
            .prefsrc
            .filter(|s| s.is_ipv4() == addr.is_ipv4())
            .map(addr_words)
            .unwrap_or_default(),
        ifindex: route.oif,
        mtu,
        dmac,
        smac,
    })
}

/// A real server whose next hop is kept: its address and method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Target {
    addr: IpAddr,
    method: u8,
}

/// The slots of `reals` that need a next hop.
fn targets_of(reals: &[Real]) -> BTreeMap<u32, Target> {
    reals
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            r.flags & REAL_F_IN_USE != 0 && (r.method == METHOD_ROUTE || r.method == METHOD_TUNNEL)
        })
        .map(|(i, r)| {
            (
                i as u32,
                Target {
                    addr: words_addr(r.addr, r.family),
                    method: r.method,
                },
            )
        })
        .collect()
}

/// Logs an error of the thread's (through [`crate::warn`]: a failing step
/// is retried every tick).
fn complain(e: &anyhow::Error) {
    crate::warn::warn(&format!("next hops: {e:#}"));
}

/// What the hops thread knows.
struct State {
    rtnl: Rtnl,
    reals: Array<MapData, Real>,
    table: HopTable,
    tables: Tables,
    targets: BTreeMap<u32, Target>,
    routes: HashMap<IpAddr, Result<Route, String>>,
    /// The last reason each slot had no entry (logged when it changes).
    why: HashMap<u32, NoHop>,
    warned: GatewayWarnings,
}

impl State {
    fn open(pin_dir: &Path) -> Result<State> {
        let path = pin_dir.join(names::REALS);
        let data =
            MapData::from_pin(&path).with_context(|| format!("cannot open {}", path.display()))?;
        Ok(State {
            rtnl: Rtnl::new()?,
            reals: Array::try_from(Map::Array(data))?,
            table: HopTable::open(pin_dir)?,
            tables: Tables::default(),
            targets: BTreeMap::new(),
            routes: HashMap::new(),
            why: HashMap::new(),
            warned: GatewayWarnings::default(),
        })
    }

    /// Reads the links and neighbours whole.
    fn load_tables(&mut self) -> Result<()> {
        let links = self.rtnl.links()?;
        let neighs = self.rtnl.neighbours()?;
        self.tables.links = links.into_iter().map(|l| (l.index, l)).collect();
        self.tables.neighs = neighs
            .into_iter()
            .map(|n| ((n.ifindex, n.addr), n))
            .collect();
        Ok(())
    }

    /// Reads `REALS`; resolves the routes of addresses new to it.
    fn read_reals(&mut self) -> Result<()> {
        let reals: Vec<Real> = (0..self.reals.len())
            .map(|i| self.reals.get(&i, 0))
            .collect::<Result<_, _>>()?;
        self.targets = targets_of(&reals);
        let wanted: HashSet<IpAddr> = self.targets.values().map(|t| t.addr).collect();
        self.routes.retain(|a, _| wanted.contains(a));
        let new: Vec<IpAddr> = wanted
            .into_iter()
            .filter(|a| !self.routes.contains_key(a))
            .collect();
        self.resolve(new)
    }

    /// Asks the kernel for the routes to `addrs` (those still targets).
    fn resolve(&mut self, addrs: impl IntoIterator<Item = IpAddr>) -> Result<()> {
        let wanted: HashSet<IpAddr> = self.targets.values().map(|t| t.addr).collect();
        for a in addrs.into_iter().collect::<HashSet<_>>() {
            if wanted.contains(&a) {
                let r = self.rtnl.route_get(a)?;
                self.routes.insert(a, r);
            }
        }
        Ok(())
    }

    fn resolve_all(&mut self) -> Result<()> {
        let all: Vec<IpAddr> = self.targets.values().map(|t| t.addr).collect();
        self.resolve(all)
    }

    /// Writes every slot that changed: the targets' next hops, and clears
    /// the rest.
    fn publish(&mut self) -> Result<()> {
        for idx in 0..self.table.len() {
            let Some(t) = self.targets.get(&idx).copied() else {
                if self.table.clear(idx)? {
                    log::debug!("REAL_HOPS[{idx}] cleared: no DR/TUN real server in use");
                }
                self.why.remove(&idx);
                continue;
            };
            let hop = match self.routes.get(&t.addr) {
                Some(Ok(route)) => compose(t.addr, t.method, route, &self.tables),
                Some(Err(why)) => Err(NoHop::NoRoute(why.clone())),
                None => Err(NoHop::NoRoute("not resolved yet".into())),
            };
            self.note_gateway(t.addr, &hop);
            match hop {
                Ok(h) => {
                    if self.table.publish(idx, &h)? {
                        log::debug!(
                            "REAL_HOPS[{idx}] {}: link {} to {} from {}, mtu {}",
                            t.addr,
                            h.ifindex,
                            mac_str(&h.dmac),
                            mac_str(&h.smac),
                            h.mtu
                        );
                    }
                    self.why.remove(&idx);
                }
                Err(why) => {
                    if self.table.clear(idx)? || self.why.get(&idx) != Some(&why) {
                        log::debug!("REAL_HOPS[{idx}] {}: none, {why}", t.addr);
                    }
                    self.why.insert(idx, why);
                }
            }
        }
        Ok(())
    }

    /// Warns about a DR server behind a gateway (see [`GatewayWarnings`]).
    fn note_gateway(&mut self, addr: IpAddr, hop: &Result<NextHop, NoHop>) {
        let behind = matches!(hop, Err(NoHop::Gateway(_)));
        if self.warned.note(addr, behind, Instant::now()) {
            warn_gateway(addr, hop);
        }
    }
}

/// DR servers found behind a gateway: each is warned about when it is
/// found so, and again only after it was not for a while and at least
/// [`WARN_EVERY`] after the last warning.
#[derive(Default)]
struct GatewayWarnings(HashMap<IpAddr, (Instant, bool)>);

impl GatewayWarnings {
    /// Whether to warn now that `addr` is (`behind`) or is not behind a
    /// gateway.
    fn note(&mut self, addr: IpAddr, behind: bool, now: Instant) -> bool {
        match (behind, self.0.get_mut(&addr)) {
            (true, Some((at, active))) => {
                let warn = !*active && now.duration_since(*at) >= WARN_EVERY;
                if warn {
                    *at = now;
                }
                *active = true;
                warn
            }
            (true, None) => {
                self.0.insert(addr, (now, true));
                true
            }
            (false, Some((_, active))) => {
                *active = false;
                false
            }
            (false, None) => false,
        }
    }
}

fn warn_gateway(addr: IpAddr, hop: &Result<NextHop, NoHop>) {
    if let Err(why) = hop {
        crate::warn::warn_as(
            &format!("gateway {addr}"),
            &format!(
                "DR real server {addr}: {why}; direct routing needs it on a link of the \
                 director (its packets are dropped unless the FIB finds a next hop)"
            ),
        );
    }
}

fn mac_str(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

enum Msg {
    /// Destinations the data path found no next hop for.
    Misses(Vec<IpAddr>),
    /// Answer once everything queued now has been taken in.
    Sync(Sender<()>),
    Stop,
}

/// The hops thread, as `lvs load` runs it.
pub struct Hops {
    tx: Sender<Msg>,
    thread: Option<JoinHandle<()>>,
}

impl Hops {
    /// Opens `REALS` and `REAL_HOPS` under `pin_dir` and rtnetlink, and
    /// starts keeping the next hops.
    pub fn start(pin_dir: &Path) -> Result<Hops> {
        // Subscribed before the first dump, so no change falls in between.
        let events = Events::new()?;
        let state = State::open(pin_dir)?;
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("lvs-hops".into())
            .spawn(move || run(state, events, rx))
            .context("starting the next-hop thread")?;
        Ok(Hops {
            tx,
            thread: Some(thread),
        })
    }

    /// Destinations the data path reported (`NEIGH_MISS`): their real
    /// servers are looked at again at once.
    pub fn missed(&self, addrs: &[IpAddr]) {
        if !addrs.is_empty() {
            let _ = self.tx.send(Msg::Misses(addrs.to_vec()));
        }
    }

    /// Waits (at most `timeout`) until the thread has taken in what is
    /// queued now: `REALS`, events, misses.
    pub fn sync(&self, timeout: Duration) -> bool {
        let (tx, rx) = mpsc::channel();
        if self.tx.send(Msg::Sync(tx)).is_err() {
            return false;
        }
        rx.recv_timeout(timeout).is_ok()
    }

    pub fn stop(&mut self) {
        let _ = self.tx.send(Msg::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Hops {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Waits until `fd` is readable or `timeout` passed.
fn wait_readable(fd: std::os::fd::RawFd, timeout: Duration) {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut p, 1, timeout.as_millis() as libc::c_int) };
}

/// What the hops thread has yet to do; kept until done, so that a failed
/// step (a netlink request that timed out) is tried again.
#[derive(Default)]
struct Work {
    /// Read the links and neighbours whole (and all the rest).
    full: bool,
    /// Read `REALS` again.
    reals: bool,
    /// Resolve every target's route again.
    routes: bool,
    /// Resolve these destinations' routes again.
    missed: Vec<IpAddr>,
    /// Write what changed.
    publish: bool,
}

impl State {
    /// Does `w`, clearing each part once done.
    fn step(&mut self, w: &mut Work) -> Result<()> {
        if w.full {
            self.load_tables()?;
            w.full = false;
            w.reals = true;
            w.routes = true;
        }
        if w.reals {
            self.read_reals()?;
            w.reals = false;
            w.publish = true;
        }
        if w.routes {
            self.resolve_all()?;
            w.routes = false;
            w.missed.clear();
            w.publish = true;
        } else if !w.missed.is_empty() {
            self.resolve(w.missed.iter().copied())?;
            w.missed.clear();
            w.publish = true;
        }
        if w.publish {
            self.publish()?;
            w.publish = false;
        }
        Ok(())
    }
}

fn run(mut st: State, mut events: Events, rx: Receiver<Msg>) {
    let mut work = Work {
        full: true,
        ..Default::default()
    };
    let mut reals_at = Instant::now() + TICK;
    let mut full_at = Instant::now() + RESYNC;
    // After a failed step, the next try waits a little.
    let mut retry_at: Option<Instant> = None;
    let mut syncs: Vec<Sender<()>> = Vec::new();
    let mut queued = Vec::new();
    loop {
        wait_readable(events.fd(), POLL);
        if let Err(e) = events.drain(&mut queued) {
            complain(&e);
        }
        for e in queued.drain(..) {
            work.publish = true;
            work.full |= e == Event::Overrun;
            work.routes |= st.tables.apply(e);
        }
        loop {
            match rx.recv_timeout(Duration::ZERO) {
                Ok(Msg::Misses(a)) => {
                    work.missed.extend(a);
                    work.reals = true;
                }
                Ok(Msg::Sync(s)) => {
                    syncs.push(s);
                    work.reals = true;
                }
                Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                Err(RecvTimeoutError::Timeout) => break,
            }
        }
        let now = Instant::now();
        if now >= full_at {
            work.full = true;
            full_at = now + RESYNC;
        }
        if now >= reals_at {
            work.reals = true;
            reals_at = now + TICK;
        }
        if retry_at.is_none_or(|t| now >= t) {
            retry_at = None;
            if let Err(e) = st.step(&mut work) {
                complain(&e);
                retry_at = Some(now + TICK);
            }
        }
        for s in syncs.drain(..) {
            let _ = s.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lvs_common::{AF_INET, AF_INET6, METHOD_MASQ};

    fn a(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    const DIR: [u8; 6] = [2, 0, 0, 0, 0x47, 0x80];
    const RS: [u8; 6] = [2, 0, 0, 0, 0x47, 0x81];
    const GW: [u8; 6] = [2, 0, 0, 0, 0x47, 0xfe];

    fn tables() -> Tables {
        let mut t = Tables::default();
        t.apply(Event::Link(Link {
            index: 2,
            mac: Some(DIR),
            mtu: 1500,
            up: true,
        }));
        for (addr, mac, usable) in [
            ("192.168.47.129", Some(RS), true),
            ("192.168.47.254", Some(GW), true),
            ("192.168.47.130", None, false),
        ] {
            t.apply(Event::Neigh(Neigh {
                ifindex: 2,
                addr: a(addr),
                mac,
                usable,
            }));
        }
        t
    }

    fn on_link() -> Route {
        Route {
            oif: 2,
            gateway: None,
            prefsrc: Some(a("192.168.47.128")),
            mtu: None,
        }
    }

    #[test]
    fn an_on_link_server_gets_its_mac_the_links_and_the_route_source() {
        let h = compose(a("192.168.47.129"), METHOD_ROUTE, &on_link(), &tables()).unwrap();
        assert_eq!(h.addr, addr_words(a("192.168.47.129")));
        assert_eq!(h.src, addr_words(a("192.168.47.128")));
        assert_eq!((h.ifindex, h.mtu, h.dmac, h.smac), (2, 1500, RS, DIR));
        // A route's own MTU (a learnt path MTU) wins over the link's.
        let r = Route {
            mtu: Some(1400),
            ..on_link()
        };
        let h = compose(a("192.168.47.129"), METHOD_TUNNEL, &r, &tables()).unwrap();
        assert_eq!(h.mtu, 1400);
    }

    #[test]
    fn dr_needs_the_server_on_link_tun_goes_through_the_gateway() {
        let r = Route {
            gateway: Some(a("192.168.47.254")),
            ..on_link()
        };
        assert_eq!(
            compose(a("10.1.2.3"), METHOD_ROUTE, &r, &tables()),
            Err(NoHop::Gateway(a("192.168.47.254")))
        );
        let h = compose(a("10.1.2.3"), METHOD_TUNNEL, &r, &tables()).unwrap();
        assert_eq!((h.dmac, h.addr), (GW, addr_words(a("10.1.2.3"))));
    }

    #[test]
    fn no_entry_without_a_usable_neighbour_or_link() {
        let t = tables();
        assert_eq!(
            compose(a("192.168.47.130"), METHOD_ROUTE, &on_link(), &t),
            Err(NoHop::NoNeighbour(a("192.168.47.130")))
        );
        assert_eq!(
            compose(a("192.168.47.131"), METHOD_ROUTE, &on_link(), &t),
            Err(NoHop::NoNeighbour(a("192.168.47.131")))
        );
        let mut down = tables();
        assert!(!down.apply(Event::Link(Link {
            index: 2,
            mac: Some(DIR),
            mtu: 1500,
            up: true,
        })));
        assert!(down.apply(Event::Link(Link {
            index: 2,
            mac: Some(DIR),
            mtu: 1500,
            up: false,
        })));
        assert_eq!(
            compose(a("192.168.47.129"), METHOD_ROUTE, &on_link(), &down),
            Err(NoHop::Link(2, "down"))
        );
        let mut gone = tables();
        assert!(gone.apply(Event::LinkGone(2)));
        assert!(gone.neighs.is_empty());
        assert_eq!(
            compose(a("192.168.47.129"), METHOD_ROUTE, &on_link(), &gone),
            Err(NoHop::Link(2, "unknown"))
        );
    }

    #[test]
    fn neighbour_events_update_the_mac() {
        let mut t = tables();
        let new = [2, 0, 0, 0, 0x47, 0x99];
        assert!(!t.apply(Event::Neigh(Neigh {
            ifindex: 2,
            addr: a("192.168.47.129"),
            mac: Some(new),
            usable: true,
        })));
        let h = compose(a("192.168.47.129"), METHOD_ROUTE, &on_link(), &t).unwrap();
        assert_eq!(h.dmac, new);
        t.apply(Event::NeighGone(2, a("192.168.47.129")));
        assert!(compose(a("192.168.47.129"), METHOD_ROUTE, &on_link(), &t).is_err());
    }

    #[test]
    fn a_dr_server_behind_a_gateway_is_warned_about_once_a_minute_at_most() {
        let mut w = GatewayWarnings::default();
        let (x, y) = (a("10.1.2.3"), a("10.1.2.4"));
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert!(w.note(x, true, at(0)));
        assert!(!w.note(x, true, at(1)), "once while it stays so");
        assert!(!w.note(x, true, at(120)));
        assert!(w.note(y, true, at(1)), "each server on its own");
        // Fixed, then behind a gateway again: warned again, but not more
        // than once a minute.
        assert!(!w.note(x, false, at(121)));
        assert!(w.note(x, true, at(122)));
        assert!(!w.note(x, false, at(123)));
        assert!(!w.note(x, true, at(124)), "flapping within a minute");
        assert!(!w.note(x, false, at(200)));
        assert!(w.note(x, true, at(201)));
        assert!(!w.note(a("10.9.9.9"), false, at(0)));
    }

    #[test]
    fn only_dr_and_tun_servers_in_use_are_targets() {
        let real = |addr: &str, method, flags, family| Real {
            addr: addr_words(a(addr)),
            method,
            flags,
            family,
            ..Default::default()
        };
        let reals = [
            real("192.168.47.129", METHOD_ROUTE, REAL_F_IN_USE, AF_INET),
            real("192.168.47.130", METHOD_TUNNEL, REAL_F_IN_USE | 2, AF_INET),
            real("192.168.211.129", METHOD_MASQ, REAL_F_IN_USE, AF_INET),
            real("192.168.47.131", METHOD_ROUTE, 0, AF_INET),
            real("2001:db8:47::129", METHOD_ROUTE, REAL_F_IN_USE, AF_INET6),
        ];
        let t = targets_of(&reals);
        assert_eq!(t.keys().copied().collect::<Vec<_>>(), [0, 1, 4]);
        assert_eq!(t[&4].addr, a("2001:db8:47::129"));
        assert_eq!(t[&1].method, METHOD_TUNNEL);
    }
}
