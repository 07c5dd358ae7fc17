//! The backup: decodes each datagram and maps every entry onto this
//! director's own tables: the entry's virtual address, port and protocol
//! must name a service here, and its destination address and port one of
//! that service's real servers (IPVS's backup binds a synced connection to
//! its own destination the same way); anything else is counted and
//! skipped. Connections go in through `conn_sync` (both directions for
//! NAT, counted in ActiveConn when ESTABLISHED, else InActConn, as this
//! data path counts its own), with the master's state and a last-seen time
//! that makes them expire the entry's timeout from now (never later than
//! this director's own timeout for the state); templates straight into
//! `PERSIST`.

use lvs_common::{
    state, Conn, ConnSync, FlowKey, Persist, PersistKey, AF_INET, AF_INET6, CONN_F_ACTIVE,
    PROTO_TCP, SVC_F_PERSISTENT,
};

use super::{
    codec::{decode, Entry, Reject},
    maps::SyncMaps,
};
use crate::tables::{addr_words, port_raw};

const NS: u64 = 1_000_000_000;

/// What the backup did with what it received.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Messages decoded and applied.
    pub messages: u64,
    /// Messages refused whole, by [`Reject`] (in `Reject::ALL`'s order).
    pub rejected: [u64; 5],
    pub conns: u64,
    pub templates: u64,
    /// Entries the decoder skipped (unknown protocol, state, mandatory
    /// option, engine).
    pub skipped: u64,
    /// Entries naming a service or real server this director does not have.
    pub unknown: u64,
    /// Entries the kernel refused (a real server's slot changed meanwhile).
    pub refused: u64,
}

impl Counters {
    pub fn rejected_of(&self, r: Reject) -> u64 {
        let i = Reject::ALL.iter().position(|x| *x == r).unwrap_or(0);
        self.rejected[i]
    }

    /// `name value` lines, for the control channel.
    pub fn lines(&self) -> String {
        let mut s = format!(
            "messages {}\nconns {}\ntemplates {}\nskipped {}\nunknown {}\nrefused {}\n",
            self.messages, self.conns, self.templates, self.skipped, self.unknown, self.refused
        );
        for (i, r) in Reject::ALL.iter().enumerate() {
            s += &format!("rejected_{} {}\n", r.name(), self.rejected[i]);
        }
        s
    }

    pub fn from_lines(s: &str) -> Counters {
        let mut c = Counters::default();
        for l in s.lines() {
            let Some((k, v)) = l.split_once(' ') else {
                continue;
            };
            let v: u64 = v.trim().parse().unwrap_or(0);
            match k {
                "messages" => c.messages = v,
                "conns" => c.conns = v,
                "templates" => c.templates = v,
                "skipped" => c.skipped = v,
                "unknown" => c.unknown = v,
                "refused" => c.refused = v,
                _ => {
                    if let Some(i) = Reject::ALL
                        .iter()
                        .position(|r| k.strip_prefix("rejected_") == Some(r.name()))
                    {
                        c.rejected[i] = v;
                    }
                }
            }
        }
        c
    }
}

enum Outcome {
    Conn(FlowKey, u64),
    Template,
    Unknown,
    Refused,
}

#[derive(Default)]
pub struct Backup {
    pub counters: Counters,
    /// Connections this backup inserted, with the last-seen time it
    /// wrote: a master running beside it (both roles at once, as IPVS
    /// allows) does not send back what it only learnt and saw no packet
    /// of since (IPVS's master syncs only on packets it forwards; without
    /// this two directors would keep each other's idle entries alive).
    pub learned: std::collections::HashMap<FlowKey, u64>,
}

impl Backup {
    /// One datagram, for sync ID `syncid`, at `now` (`CLOCK_MONOTONIC` ns).
    pub fn receive(&mut self, maps: &mut SyncMaps, buf: &[u8], syncid: u8, now: u64) {
        let d = match decode(buf, syncid) {
            Ok(d) => d,
            Err(r) => {
                let i = Reject::ALL.iter().position(|x| *x == r).unwrap_or(0);
                self.counters.rejected[i] += 1;
                return;
            }
        };
        self.counters.messages += 1;
        self.counters.skipped += d.skipped as u64;
        let timeouts = match maps.config() {
            Ok(c) => c.timeouts,
            Err(e) => {
                log::warn!("sync backup: {e:#}");
                self.counters.refused += d.entries.len() as u64;
                return;
            }
        };
        for e in &d.entries {
            match apply(maps, e, &timeouts, now) {
                Ok(Outcome::Conn(k, seen)) => {
                    self.learned.insert(k, seen);
                    self.counters.conns += 1
                }
                Ok(Outcome::Template) => self.counters.templates += 1,
                Ok(Outcome::Unknown) => self.counters.unknown += 1,
                Ok(Outcome::Refused) => self.counters.refused += 1,
                Err(e) => {
                    log::warn!("sync backup: {e:#}");
                    self.counters.refused += 1;
                }
            }
        }
    }
}

/// The time to record as last seen so that an entry of `left` seconds
/// (0: the full timeout) expires that long from `now` under a local
/// timeout of `local` seconds.
pub fn last_seen_for(now: u64, left: u32, local: u32) -> u64 {
    let left = if left == 0 { local } else { left.min(local) };
    now.saturating_sub((local - left) as u64 * NS)
}

fn apply(maps: &mut SyncMaps, e: &Entry, timeouts: &[u32], now: u64) -> anyhow::Result<Outcome> {
    let family = if e.is_v6() { AF_INET6 } else { AF_INET };
    let key = lvs_common::ServiceKey {
        addr: addr_words(e.vaddr),
        port: port_raw(e.vport),
        proto: e.protocol,
        family,
    };
    let Some(svc) = maps.service(&key) else {
        return Ok(Outcome::Unknown);
    };
    let Some((idx, real)) = maps.member(&svc, &addr_words(e.daddr), port_raw(e.dport)) else {
        return Ok(Outcome::Unknown);
    };
    if e.is_template() {
        if svc.flags & SVC_F_PERSISTENT == 0 {
            return Ok(Outcome::Unknown);
        }
        let pk = PersistKey::new(svc.id, family, &svc.netmask, &addr_words(e.caddr));
        let t = Persist {
            real: idx,
            real_generation: real.generation,
            last_used: last_seen_for(now, e.timeout, svc.persist_timeout),
        };
        maps.insert_template(&pk, &t)?;
        return Ok(Outcome::Template);
    }
    let st = if e.protocol == PROTO_TCP {
        e.state as u8
    } else {
        state::UDP
    };
    let local = timeouts.get(st as usize).copied().unwrap_or(60);
    let mut word = st as u32;
    if st == state::ESTABLISHED && e.protocol == PROTO_TCP {
        word |= CONN_F_ACTIVE;
    }
    let s = ConnSync {
        key: FlowKey {
            src: addr_words(e.caddr),
            dst: addr_words(e.vaddr),
            sport: port_raw(e.cport),
            dport: port_raw(e.vport),
            proto: e.protocol,
            family,
            _pad: [0; 2],
        },
        conn: Conn {
            real: idx,
            real_generation: real.generation,
            svc_id: svc.id,
            st: word,
            last_seen: last_seen_for(now, e.timeout, local),
        },
    };
    Ok(if maps.insert_connection(&s)? {
        Outcome::Conn(s.key, s.conn.last_seen)
    } else {
        Outcome::Refused
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synced_entries_expire_their_timeout_from_now() {
        let now = 1_000 * NS;
        // The master's full timeout, as IPVS sends it: now.
        assert_eq!(last_seen_for(now, 900, 900), now);
        // Less time left: as if seen that much earlier.
        assert_eq!(last_seen_for(now, 300, 900), now - 600 * NS);
        // More than this director's timeout: this director's.
        assert_eq!(last_seen_for(now, 5000, 900), now);
        // 0 (IPVS's "none sent"): the local timeout.
        assert_eq!(last_seen_for(now, 0, 120), now);
        assert_eq!(last_seen_for(10 * NS, 1, 900), 0);
    }

    #[test]
    fn counters_round_trip_through_lines() {
        let c = Counters {
            messages: 3,
            rejected: [1, 2, 3, 4, 5],
            conns: 100,
            templates: 7,
            skipped: 2,
            unknown: 9,
            refused: 1,
        };
        assert_eq!(Counters::from_lines(&c.lines()), c);
        assert_eq!(c.rejected_of(Reject::OtherSyncId), 3);
    }
}
