//! The master: once a second it walks the connection table and sends, in
//! messages of at most `maxlen` bytes, the connections that are new to the
//! backup, that changed state, or whose expiry on the backup would come
//! too early, with the persistence templates they use.
//!
//! IPVS decides per packet (`ip_vs_sync_conn_needed`): a TCP connection
//! is synced only in ESTABLISHED, FIN_WAIT, CLOSE, CLOSE_WAIT and
//! TIME_WAIT, at once on a change into one of the closing states, and
//! otherwise when its incoming packet count reaches `sync_threshold` (3)
//! and every `sync_period` (50) packets after; with `sync_refresh_period`
//! set it is re-sent instead when its expiry moved by more than that
//! period or half its timeout (at least 10 s). This data path keeps no
//! per-connection packet count (the fast path never touches the shared
//! entry, and a per-packet write to it would cost every packet), so the
//! table's own evidence stands in for the counts:
//! - the threshold: a TCP connection is sent once it reached one of those
//!   states, which takes a completed handshake (a SYN flood's SYN_RECV
//!   entries are never sent); a UDP flow once its last-seen time moved
//!   after the walk that first met it (more than one packet, a second or
//!   more apart: a one-packet flood is never sent);
//! - the period: a connection with traffic since it was last sent is sent
//!   again [`PERIOD_S`] (10 s) later, or half its timeout if that is
//!   shorter (at least 1 s) — IPVS re-sends a busy connection every 50
//!   packets, so this is within its traffic; an entry the master keeps
//!   alive never expires on the backup, an idle one expires on both at
//!   about the same time, and a backup that was away (a failed master
//!   coming back) learns every active connection within the period;
//! - a state change is sent at the next walk (within a second).
//!
//! Templates are sent only for connections that are sent (a flood does
//! not sync its templates either), and refreshed by the same rule.

use std::collections::{HashMap, HashSet};

use lvs_common::{
    state, Conn, FlowKey, Persist, PersistKey, Real, Service, ServiceKey, CONN_F_ACTIVE,
    CONN_STATE_MASK, METHOD_MASQ, METHOD_ROUTE, METHOD_TUNNEL, PROTO_TCP, PROTO_UDP,
    SVC_F_PERSISTENT,
};

use super::{
    codec::{flags, Entry},
    maps::SyncMaps,
};
use crate::tables::{raw_port, words_addr};

const NS: u64 = 1_000_000_000;

/// When an entry was last sent, and in which state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sent {
    pub state: u8,
    pub at: u64,
}

/// What the master remembers of a connection between walks.
#[derive(Clone, Copy, Debug)]
struct Known {
    /// Its last-seen time when a walk first met it.
    first_seen: u64,
    sent: Option<Sent>,
}

/// IPVS's states in which a TCP connection is synced.
pub fn tcp_syncs(st: u8) -> bool {
    matches!(
        st,
        state::ESTABLISHED | state::FIN_WAIT | state::CLOSE | state::CLOSE_WAIT | state::TIME_WAIT
    )
}

/// Past the threshold: see the module documentation.
pub fn wanted(proto: u8, st: u8, moved: bool) -> bool {
    match proto {
        PROTO_TCP => tcp_syncs(st),
        PROTO_UDP => moved,
        _ => false,
    }
}

/// How often a connection with traffic is sent again (IPVS's
/// `sync_period` in time rather than packets).
pub const PERIOD_S: u64 = 10;

/// The refresh period of an entry of timeout `timeout_s`: [`PERIOD_S`],
/// or half the timeout if shorter, at least 1 s.
pub fn refresh_ns(timeout_s: u32) -> u64 {
    (timeout_s as u64 / 2).clamp(1, PERIOD_S) * NS
}

/// Whether an entry past the threshold is sent now: never sent, sent in
/// another state, or with traffic since it was sent and a refresh period
/// gone by.
pub fn due(sent: Option<Sent>, st: u8, last_seen: u64, now: u64, timeout_s: u32) -> bool {
    match sent {
        None => true,
        Some(s) if s.state != st => true,
        Some(s) => last_seen > s.at && now.saturating_sub(s.at) >= refresh_ns(timeout_s),
    }
}

/// `IP_VS_CONN_F_*` forwarding bits of a method, with NOOUTPUT for DR and
/// TUN as IPVS's destinations give it.
fn method_flags(method: u8) -> u32 {
    match method {
        METHOD_MASQ => flags::MASQ,
        METHOD_TUNNEL => flags::TUNNEL | flags::NOOUTPUT,
        METHOD_ROUTE => flags::DROUTE | flags::NOOUTPUT,
        _ => flags::DROUTE | flags::NOOUTPUT,
    }
}

/// The sync entry of connection `k` to real server `r`.
pub fn conn_entry(k: &FlowKey, c: &Conn, r: &Real, timeout_s: u32) -> Entry {
    let st = (c.st & CONN_STATE_MASK) as u8;
    let mut f = method_flags(r.method);
    if c.st & CONN_F_ACTIVE == 0 {
        f |= flags::INACTIVE;
    }
    Entry {
        protocol: k.proto,
        flags: f,
        // IPVS's TCP state numbers are this table's; UDP has one state, 0.
        state: if k.proto == PROTO_TCP { st as u16 } else { 0 },
        cport: raw_port(k.sport),
        vport: raw_port(k.dport),
        dport: raw_port(r.port),
        fwmark: 0,
        timeout: timeout_s,
        caddr: words_addr(k.src, k.family),
        vaddr: words_addr(k.dst, k.family),
        daddr: words_addr(r.addr, r.family),
        seq: None,
        pe_data: None,
        pe_name: None,
    }
}

/// The sync entry of a persistence template (IPVS's: client port 0, state
/// 0, the service's protocol and port, the persistence timeout).
pub fn template_entry(key: &ServiceKey, svc: &Service, client: [u32; 4], r: &Real) -> Entry {
    Entry {
        protocol: key.proto,
        flags: flags::TEMPLATE | method_flags(r.method),
        state: 0,
        cport: 0,
        vport: raw_port(key.port),
        dport: raw_port(r.port),
        fwmark: 0,
        timeout: svc.persist_timeout,
        caddr: words_addr(client, key.family),
        vaddr: words_addr(key.addr, key.family),
        daddr: words_addr(r.addr, r.family),
        seq: None,
        pe_data: None,
        pe_name: None,
    }
}

/// What the master sent in one walk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Walked {
    pub conns: u64,
    pub templates: u64,
}

#[derive(Default)]
pub struct Master {
    known: HashMap<FlowKey, Known>,
    templates: HashMap<PersistKey, Sent>,
}

impl Master {
    /// One walk at `now` (`CLOCK_MONOTONIC` ns): the entries to send,
    /// templates first. Connections in `learned` (inserted by a backup
    /// beside this master, with the last-seen time it wrote) are not sent
    /// while no packet refreshed them; `learned` is pruned to the table.
    pub fn walk(
        &mut self,
        maps: &SyncMaps,
        now: u64,
        learned: &mut HashMap<FlowKey, u64>,
    ) -> anyhow::Result<(Vec<Entry>, Walked)> {
        let cfg = maps.config()?;
        let services: HashMap<u32, (ServiceKey, Service)> = maps
            .services()
            .into_iter()
            .map(|(k, s)| (s.id, (k, s)))
            .collect();
        let mut conns = Vec::new();
        let mut uses: HashSet<PersistKey> = HashSet::new();
        let mut known = HashMap::new();
        let mut still = HashSet::new();
        // One read per real server per walk, not per connection.
        let mut reals: HashMap<u32, Option<Real>> = HashMap::new();
        for (k, c) in maps.connections() {
            let r = *reals.entry(c.real).or_insert_with(|| maps.real(c.real));
            let Some(r) = r.filter(|r| r.generation == c.real_generation) else {
                continue;
            };
            let st = (c.st & CONN_STATE_MASK) as u8;
            match learned.get(&k) {
                // As the backup wrote it: nothing to tell.
                Some(seen) if *seen == c.last_seen => {
                    still.insert(k);
                    continue;
                }
                // A packet refreshed it here: this director's own now.
                Some(_) => _ = learned.remove(&k),
                None => {}
            }
            let prev = self.known.get(&k).copied();
            let first_seen = prev.map_or(c.last_seen, |p| p.first_seen);
            let mut sent = prev.and_then(|p| p.sent);
            if wanted(k.proto, st, c.last_seen != first_seen) {
                if let Some((_, s)) = services.get(&c.svc_id) {
                    if s.flags & SVC_F_PERSISTENT != 0 {
                        uses.insert(PersistKey::new(s.id, s.family, &s.netmask, &k.src));
                    }
                }
                let timeout = cfg.timeouts.get(st as usize).copied().unwrap_or(0);
                if due(sent, st, c.last_seen, now, timeout) {
                    conns.push(conn_entry(&k, &c, &r, timeout));
                    sent = Some(Sent { state: st, at: now });
                }
            }
            known.insert(k, Known { first_seen, sent });
        }
        self.known = known;
        learned.retain(|k, _| still.contains(k));
        let mut out = Vec::new();
        let mut templates = HashMap::new();
        for (pk, t) in maps.templates() {
            let Some(e) = self.template(maps, &services, &uses, &pk, &t, now) else {
                if let Some(s) = self.templates.get(&pk) {
                    templates.insert(pk, *s);
                }
                continue;
            };
            out.push(e);
            templates.insert(pk, Sent { state: 0, at: now });
        }
        self.templates = templates;
        let walked = Walked {
            conns: conns.len() as u64,
            templates: out.len() as u64,
        };
        out.extend(conns);
        Ok((out, walked))
    }

    /// The entry of template `pk` if it is to be sent now.
    fn template(
        &self,
        maps: &SyncMaps,
        services: &HashMap<u32, (ServiceKey, Service)>,
        uses: &HashSet<PersistKey>,
        pk: &PersistKey,
        t: &Persist,
        now: u64,
    ) -> Option<Entry> {
        if !uses.contains(pk) {
            return None;
        }
        let (key, svc) = services.get(&pk.svc_id)?;
        let r = maps
            .real(t.real)
            .filter(|r| r.generation == t.real_generation)?;
        let sent = self.templates.get(pk).copied();
        due(sent, 0, t.last_used, now, svc.persist_timeout)
            .then(|| template_entry(key, svc, pk.client, &r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_connections_past_the_handshake_are_wanted() {
        for st in [
            state::SYN_RECV,
            state::SYN_SENT,
            state::NONE,
            state::LAST_ACK,
        ] {
            assert!(!wanted(PROTO_TCP, st, true), "state {st}");
        }
        for st in [
            state::ESTABLISHED,
            state::FIN_WAIT,
            state::CLOSE,
            state::CLOSE_WAIT,
            state::TIME_WAIT,
        ] {
            assert!(wanted(PROTO_TCP, st, false), "state {st}");
        }
        assert!(!wanted(PROTO_UDP, state::UDP, false));
        assert!(wanted(PROTO_UDP, state::UDP, true));
    }

    #[test]
    fn entries_are_resent_on_change_and_before_the_backup_expires_them() {
        let s = |at: u64| {
            Some(Sent {
                state: state::ESTABLISHED,
                at: at * NS,
            })
        };
        assert!(due(None, state::ESTABLISHED, 0, 0, 900));
        // A state change goes at once.
        assert!(due(s(100), state::FIN_WAIT, 0, 101 * NS, 900));
        // Idle since it was sent: never again (it expires on both).
        assert!(!due(s(100), state::ESTABLISHED, 99 * NS, 10_000 * NS, 900));
        // Busy: again after the period...
        assert!(!due(s(100), state::ESTABLISHED, 105 * NS, 109 * NS, 900));
        assert!(due(s(100), state::ESTABLISHED, 105 * NS, 110 * NS, 900));
        // ...or half a shorter timeout, at least a second.
        let closed = Some(Sent {
            state: state::CLOSE,
            at: 100 * NS,
        });
        assert!(!due(closed, state::CLOSE, 101 * NS, 104 * NS, 10));
        assert!(due(closed, state::CLOSE, 101 * NS, 105 * NS, 10));
        assert_eq!(refresh_ns(10), 5 * NS);
        assert_eq!(refresh_ns(900), 10 * NS);
        assert_eq!(refresh_ns(1), NS);
    }

    #[test]
    fn connection_entries_carry_ipvs_flags() {
        let k = FlowKey {
            src: [u32::from_ne_bytes([10, 0, 0, 2]), 0, 0, 0],
            dst: [u32::from_ne_bytes([192, 168, 1, 100]), 0, 0, 0],
            sport: 40000u16.to_be(),
            dport: 80u16.to_be(),
            proto: PROTO_TCP,
            family: lvs_common::AF_INET,
            _pad: [0; 2],
        };
        let r = Real {
            addr: [u32::from_ne_bytes([192, 168, 2, 10]), 0, 0, 0],
            port: 8080u16.to_be(),
            method: METHOD_ROUTE,
            family: lvs_common::AF_INET,
            ..Default::default()
        };
        let c = Conn {
            st: state::ESTABLISHED as u32 | CONN_F_ACTIVE,
            ..Default::default()
        };
        let e = conn_entry(&k, &c, &r, 900);
        assert_eq!(e.flags, flags::DROUTE | flags::NOOUTPUT);
        assert_eq!((e.state, e.cport, e.vport, e.dport), (1, 40000, 80, 8080));
        assert_eq!(e.daddr.to_string(), "192.168.2.10");
        let c = Conn {
            st: state::SYN_RECV as u32,
            ..Default::default()
        };
        let r = Real {
            method: METHOD_MASQ,
            ..r
        };
        assert_eq!(conn_entry(&k, &c, &r, 60).flags, flags::INACTIVE);
    }
}
