//! Types shared by the XDP program and userspace: every map key and value is
//! defined here once, `#[repr(C)]` with explicit padding so both sides agree
//! on the layout byte for byte.
//!
//! Conventions: addresses are `[u32; 4]` holding the raw network-order bytes
//! (IPv4 in word 0, words 1..3 zero); ports are `u16` holding network-order
//! bytes. The XDP program can then compare and copy them without swapping.
#![cfg_attr(not(test), no_std)]

pub mod counters;
pub mod csum;
pub mod flood;
pub mod hash;
pub mod tcp;

/// `family` codes, as the kernel's `AF_*`.
pub const AF_INET: u8 = 2;
pub const AF_INET6: u8 = 10;

/// IP protocol numbers used in keys.
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;

/// Forwarding methods (ipvsadm's -g / -i / -m).
pub const METHOD_ROUTE: u8 = 0;
pub const METHOD_TUNNEL: u8 = 1;
pub const METHOD_MASQ: u8 = 2;

/// Scheduler codes stored in [`Service::sched`]. The XDP program implements
/// them; userspace only builds tables for the table-driven ones.
pub mod sched {
    pub const RR: u8 = 0;
    pub const WRR: u8 = 1;
    pub const LC: u8 = 2;
    pub const WLC: u8 = 3;
    pub const LBLC: u8 = 4;
    pub const LBLCR: u8 = 5;
    pub const DH: u8 = 6;
    pub const SH: u8 = 7;
    pub const SED: u8 = 8;
    pub const NQ: u8 = 9;
    pub const FO: u8 = 10;
    pub const OVF: u8 = 11;
    pub const MH: u8 = 12;
    pub const TWOS: u8 = 13;
}

/// [`Service::flags`] bits (ipvsadm's service flags).
pub const SVC_F_PERSISTENT: u16 = 1 << 0;
pub const SVC_F_ONEPACKET: u16 = 1 << 1;
pub const SVC_F_SCHED1: u16 = 1 << 2;
pub const SVC_F_SCHED2: u16 = 1 << 3;
pub const SVC_F_SCHED3: u16 = 1 << 4;
/// Not a service of this generation (a [`ServiceEntry`] copy): a deleted
/// service kept (hidden, with no members) so that its connections run until
/// they expire, as IPVS's do, or one the other generation adds. Re-adding
/// the service revives it. The next change, or `lvs load`'s sweeper,
/// removes it once no connection is left.
pub const SVC_F_DELETED: u16 = 1 << 5;

/// [`Real::flags`] bits.
/// The slot holds a real server (possibly deleted from its service but still
/// referenced by connections: see [`Real::generation`]).
pub const REAL_F_IN_USE: u8 = 1 << 0;
/// The real server is a member of its service (not yet deleted).
pub const REAL_F_MEMBER: u8 = 1 << 1;
/// The health checker took this (no longer member) server out for failing
/// its checks: packets of its connections are dropped, as IPVS drops those
/// of a destination that is no longer available (`expire_nodest_conn=0`).
/// `lvsadm -d` does not set it (its connections continue); re-adding the
/// server makes the slot a member again and clears it.
pub const REAL_F_NODEST: u8 = 1 << 2;
/// With [`REAL_F_NODEST`]: the connection also ends at its next packet,
/// which then goes on as one without a connection (IPVS's
/// `expire_nodest_conn=1`).
pub const REAL_F_EXPIRE: u8 = 1 << 3;

/// Conntrack states; IPVS's TCP states plus one for UDP.
pub mod state {
    pub const NONE: u8 = 0;
    pub const ESTABLISHED: u8 = 1;
    pub const SYN_SENT: u8 = 2;
    pub const SYN_RECV: u8 = 3;
    pub const FIN_WAIT: u8 = 4;
    pub const TIME_WAIT: u8 = 5;
    pub const CLOSE: u8 = 6;
    pub const CLOSE_WAIT: u8 = 7;
    pub const LAST_ACK: u8 = 8;
    pub const LISTEN: u8 = 9;
    pub const SYNACK: u8 = 10;
    pub const UDP: u8 = 11;
    pub const COUNT: usize = 12;
}

/// Key of `SERVICES`: what a packet is matched against.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ServiceKey {
    pub addr: [u32; 4],
    pub port: u16,
    pub proto: u8,
    pub family: u8,
}

/// One generation's copy of a service (see [`ServiceEntry`]).
///
/// The member list and the scheduling table live in shared regions of the
/// `DESTS` and `SCHED_TABLE` arrays; userspace writes a new region before it
/// points a copy at it and reuses the old one only once no copy of the
/// published generation refers to it, so the XDP program never sees half a
/// table.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Service {
    /// Slot in the per-service arrays (`SCHED_STATE`, `SVC_STATS`).
    pub id: u32,
    pub sched: u8,
    pub family: u8,
    pub flags: u16,
    /// Members (real indices), in the order they were added.
    pub dests_off: u32,
    pub dests_len: u32,
    /// The scheduler's precomputed table (rr/wrr sequence, hash buckets, Maglev).
    pub table_off: u32,
    pub table_len: u32,
    /// Persistence timeout in seconds (with [`SVC_F_PERSISTENT`]).
    pub persist_timeout: u32,
    /// Persistence netmask (IPv4: raw mask in word 0; IPv6: prefix length in word 0).
    pub netmask: [u32; 4],
}

/// Value of `SERVICES`: the service as each of the two table generations
/// has it. A change writes the copy of the generation it builds (the
/// other one's bytes stay as they are), then publishes that generation
/// with one word (`GENERATION`); a new connection is scheduled with
/// `views[generation & 1]` alone, so it meets the old table or the new
/// one, never a mix. A service that one generation does not have is
/// marked [`SVC_F_DELETED`] there, with no members. The `id` is the same in
/// both copies: the established path reads only that, from either copy,
/// and never the generation.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServiceEntry {
    pub views: [Service; 2],
}

impl ServiceEntry {
    /// The copy of generation `generation`.
    #[inline(always)]
    pub fn view(&self, generation: u64) -> &Service {
        &self.views[(generation & 1) as usize]
    }

    pub fn view_mut(&mut self, generation: u64) -> &mut Service {
        &mut self.views[(generation & 1) as usize]
    }
}

/// What the schedulers read of a real server, per table generation (value
/// of `REAL_VIEWS`, indexed like `REALS`): its membership, weight,
/// thresholds and forwarding method as the old and as the new table have
/// them, so that a weight edit or a removal lands for new connections at
/// the moment the generation is published, together with every other part
/// of the change. `REALS` keeps the newest values, for the established
/// path and the flow cache.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RealView {
    pub weight: u32,
    pub u_threshold: u32,
    pub l_threshold: u32,
    pub method: u8,
    /// [`REAL_F_MEMBER`] or 0.
    pub flags: u8,
    pub _pad: [u8; 2],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RealViews {
    pub views: [RealView; 2],
}

impl RealViews {
    #[inline(always)]
    pub fn view(&self, generation: u64) -> &RealView {
        &self.views[(generation & 1) as usize]
    }

    pub fn view_mut(&mut self, generation: u64) -> &mut RealView {
        &mut self.views[(generation & 1) as usize]
    }
}

/// Indices of `GENERATION`. The data path reads only [`GEN_CURRENT`], and
/// of it only the lowest bit (a map update copies the word with `memcpy`,
/// which need not store it whole; one byte, and so that bit, is either
/// the old value's or the new one's).
pub const GEN_CURRENT: u32 = 0;
/// `CLOCK_MONOTONIC` nanoseconds of the last publication: the next change
/// waits for an RCU grace period (every packet that read the old
/// generation has finished) before it overwrites the old copies, unless
/// that publication is long past.
pub const GEN_PUBLISHED_AT: u32 = 1;
pub const GEN_WORDS: u32 = 2;

/// Value of `REALS`, indexed by a global real-server index.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Real {
    pub addr: [u32; 4],
    pub port: u16,
    pub method: u8,
    pub flags: u8,
    pub weight: u32,
    /// Owning service's [`Service::id`].
    pub svc_id: u32,
    /// Bumped whenever the slot is given to a new real server, so that a
    /// connection pinned to a reused slot is recognised as stale.
    pub generation: u32,
    pub u_threshold: u32,
    pub l_threshold: u32,
    pub family: u8,
    pub _pad: [u8; 3],
}

/// A flow's 5-tuple as seen in a packet, key of `CONNS` (client side) and of
/// `REPLIES` (real-server side).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub src: [u32; 4],
    pub dst: [u32; 4],
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
    pub family: u8,
    pub _pad: [u8; 2],
}

impl FlowKey {
    /// The real-server-side tuple (key of `REPLIES`) of the client-side
    /// tuple `client` of a NAT connection to `addr`:`port`.
    #[inline(always)]
    pub fn reply_of(client: &FlowKey, addr: &[u32; 4], port: u16) -> FlowKey {
        FlowKey {
            src: *addr,
            dst: client.src,
            sport: port,
            dport: client.sport,
            proto: client.proto,
            family: client.family,
            _pad: [0; 2],
        }
    }
}

/// Value of `CONNS`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Conn {
    pub real: u32,
    pub real_generation: u32,
    pub svc_id: u32,
    /// State (low byte, a [`state`] code) and `CONN_F_*` flags, one word
    /// changed only by compare-and-swap: the forward and reply directions
    /// of one connection run on different CPUs, and exactly one of them
    /// must move the real server's active/inactive counts.
    pub st: u32,
    /// `bpf_ktime_get_ns()` of the last packet, refreshed at most every
    /// [`CONN_TOUCH_NS`] to keep the shared cache line mostly read-only.
    pub last_seen: u64,
}

/// Counted in `RealConns::active` (else in `inactive`).
pub const CONN_F_ACTIVE: u32 = 1 << 8;
/// DR/TUN: replies bypass the director (IPVS's "input only" state table).
pub const CONN_F_NOOUTPUT: u32 = 1 << 9;
/// Expired and being removed; whoever set it has uncounted it.
pub const CONN_F_DEAD: u32 = 1 << 10;
/// An embryonic connection (in `EMBRYOS`, not yet in `CONNS`): a TCP
/// connection whose client has not completed the handshake, or a UDP one
/// not yet confirmed (see `conntrack`). It never becomes ESTABLISHED
/// there: the packet that would make it so promotes it first.
pub const CONN_F_EMBRYO: u32 = 1 << 11;
/// Embryonic and created while the embryonic table was under pressure
/// (at least half full): its timeout is at most [`EMBRYO_SHORT_TIMEOUT_S`]
/// (IPVS's `secure_tcp` idea, automatic).
pub const CONN_F_SHORT: u32 = 1 << 12;
/// The sweeper's epoch the embryonic connection was counted in
/// (`EmbryoCounts::epochs`).
pub const CONN_F_EPOCH: u32 = 1 << 13;
pub const CONN_STATE_MASK: u32 = 0xff;

/// Timeout of an embryonic connection created under pressure, seconds.
pub const EMBRYO_SHORT_TIMEOUT_S: u32 = 3;

/// The timeout in seconds of a connection whose state word is `st`, under
/// the per-state `timeouts`: the data path and the sweeper both use it.
#[inline(always)]
pub fn conn_timeout_s(st: u32, timeouts: &[u32; state::COUNT]) -> u32 {
    let s = (st & CONN_STATE_MASK) as usize;
    let t = if s < state::COUNT { timeouts[s] } else { 60 };
    if st & CONN_F_SHORT != 0 && t > EMBRYO_SHORT_TIMEOUT_S {
        EMBRYO_SHORT_TIMEOUT_S
    } else {
        t
    }
}

/// Indices of `OCCUPANCY`, shared atomics of the data path.
pub mod occupancy {
    /// Entries in `CONNS` (inserted minus removed): `--conn-table-full
    /// refuse` refuses a new connection once it reaches `max_conns`.
    pub const CONNS: u32 = 0;
    /// Entries counted in `EMBRYOS` (the LRU's evictions until the
    /// sweeper takes them off): pressure and fullness of that table.
    pub const EMBRYOS: u32 = 1;
    /// The sweeper's current epoch (0 or 1), in which new embryonic
    /// connections are counted (`EmbryoCounts`).
    pub const EPOCH: u32 = 2;
    pub const COUNT: u32 = 4;
}

/// Value of `EMBRYO_COUNTS`, indexed like `REALS`: the embryonic
/// connections counted in the real server's `RealConns::inactive`, by the
/// sweeper's epoch they were created in. The sweeper flips the epoch each
/// sweep; no connection is added to the other epoch's count while it walks
/// `EMBRYOS`, so what that count holds beyond what the walk saw is exactly
/// what the LRU evicted (never more: a removal during the walk only makes
/// it see less), and is taken off the counts.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EmbryoCounts {
    pub epochs: [u64; 2],
}

/// `Config::conn_table_full`: a new connection meeting a full `CONNS`
/// (`max_conns` entries) is passed to the director's stack (which resets
/// it or answers port unreachable), counted `conn_table_full`.
pub const TABLE_FULL_REFUSE: u32 = 0;
/// ... or the LRU evicts the least recently used established connection.
pub const TABLE_FULL_EVICT: u32 = 1;

/// How stale `Conn::last_seen` may get before a packet rewrites it.
pub const CONN_TOUCH_NS: u64 = 1_000_000_000;

impl Conn {
    /// Whether the connection has been idle longer than `timeout_s` at
    /// `now`. `last_seen` is refreshed at most every `CONN_TOUCH_NS`, so
    /// that much slack is added; a timestamp slightly ahead of `now`
    /// (another CPU's clock read) is not expiry. The data path and the
    /// sweeper both decide with this.
    #[inline(always)]
    pub fn expired(&self, timeout_s: u32, now: u64) -> bool {
        now > self.last_seen
            && now - self.last_seen > timeout_s as u64 * 1_000_000_000 + CONN_TOUCH_NS
    }
}

/// Per-service and per-real counters (per-CPU; userspace sums them).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub conns: u64,
    pub inpkts: u64,
    pub outpkts: u64,
    pub inbytes: u64,
    pub outbytes: u64,
}

/// Value of `SVC_RATES` (indexed like `SVC_STATS` by `Service::id`, with
/// one entry more, the last, for the director's totals) and of
/// `REAL_RATES` (indexed like `REALS`): IPVS's rate estimates, written by
/// `lvs load` every 2 seconds and read by `lvsadm -L --rate` and
/// `/metrics`. The data path never touches them.
///
/// A slot is reused when a service or real server is deleted and another
/// added, so each entry names what it was estimated for, and a reader
/// takes it only for that: `key` is the service's key (for a real server,
/// its service's), `generation` the real server's `Real::generation` (0
/// for services and the totals).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rate {
    pub key: ServiceKey,
    pub generation: u32,
    /// Connections per second.
    pub cps: u64,
    /// Packets per second, in and out.
    pub inpps: u64,
    pub outpps: u64,
    /// Bytes per second, in and out.
    pub inbps: u64,
    pub outbps: u64,
}

/// Active/inactive connection counts of one real server, shared across CPUs
/// and updated with atomics so schedulers see a consistent value.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RealConns {
    pub active: u64,
    pub inactive: u64,
    /// Non-zero while over its upper threshold (`-x`), until it falls below
    /// the lower one (`-y`): IPVS's overload flag.
    pub overloaded: u64,
    /// Connections the sweeper found missing from `CONNS` (LRU evictions)
    /// and took off the counts.
    pub evicted: u64,
}

/// IPVS's connection thresholds (`-x` upper, `-y` lower) with their
/// hysteresis: a server reaching `upper` connections (active + inactive,
/// `total`) is overloaded until it falls below `lower`, or below 3/4 of
/// `upper` when no lower threshold is set. `upper == 0`: no thresholds.
/// Returns (takes new connections, overloaded after this look).
#[inline(always)]
pub fn threshold_rule(total: u64, overloaded: bool, upper: u32, lower: u32) -> (bool, bool) {
    let upper = upper as u64;
    if upper == 0 {
        return (true, false);
    }
    if !overloaded {
        return if total >= upper {
            (false, true)
        } else {
            (true, false)
        };
    }
    let lower = if lower > 0 {
        lower as u64
    } else {
        upper * 3 / 4
    };
    if total >= lower {
        (false, true)
    } else {
        (true, false)
    }
}

/// Input of the sweeper's `conn_fix` program (BPF_PROG_TEST_RUN data):
/// take `amount` connections the LRU evicted unseen off real server
/// `real`'s count.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnFix {
    pub real: u32,
    /// [`FIX_ACTIVE`] or [`FIX_INACTIVE`].
    pub kind: u32,
    pub amount: u64,
}

pub const FIX_ACTIVE: u32 = 0;
pub const FIX_INACTIVE: u32 = 1;
/// Embryonic connections of epoch 0 (and, `FIX_EMBRYO + 1`, epoch 1) the
/// LRU evicted: off `EmbryoCounts` and `RealConns::inactive`.
pub const FIX_EMBRYO: u32 = 2;

/// Input and output of the sweeper's `conn_sweep` program
/// (BPF_PROG_TEST_RUN data, read back from the output frame): one bounded
/// slice of the walk of `CONNS` or `EMBRYOS` that `bpf_for_each_map_elem`
/// makes in the kernel. The helper always starts at the table's first
/// bucket, so a slice skips the `skip` entries the slices before it
/// handled (each costs one callback), handles up to `budget` entries and
/// stops; the run says where the next one starts (`next`) and whether the
/// table's end was reached (`done`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SweepRun {
    /// The sweep's number: a service with a live connection gets it in
    /// `SweepSvc::live`.
    pub sweep: u64,
    /// Entries of the table the slices before this one handled.
    pub skip: u64,
    /// Entries before `skip` handled again but not counted: between two
    /// slices the data path removes and inserts entries in buckets
    /// already walked, shifting the positions; an entry that moved back
    /// by up to this many is still seen (expired, its service marked).
    pub overlap: u64,
    /// Entries this slice handles at most (0: no limit).
    pub budget: u64,
    /// [`SWEEP_CONNS`] or [`SWEEP_EMBRYOS`].
    pub table: u32,
    /// [`SWEEP_F_START`] on the sweep's first slice.
    pub flags: u32,
    /// `EMBRYOS`: the epoch (0 or 1) whose live entries are counted per
    /// real server (`SweepSeen::embryo`).
    pub fixed_epoch: u32,
    pub _pad: u32,
    // Output.
    /// Callbacks made (entries visited, skipped ones included).
    pub visited: u64,
    /// Live entries counted (not in the overlap).
    pub live: u64,
    /// Expired entries this slice claimed and removed.
    pub expired: u64,
    /// Persistence templates kept in use (`Persist::last_used` = now).
    pub kept: u64,
    /// Where the next slice starts (`skip` of the next run).
    pub next: u64,
    /// Non-zero once the table's end was reached.
    pub done: u32,
    pub _pad2: u32,
}

/// `SweepRun::table`.
pub const SWEEP_CONNS: u32 = 0;
pub const SWEEP_EMBRYOS: u32 = 1;
/// `SweepRun::flags`: the sweep's first slice zeroes `SWEEP_SEEN` and
/// loads the services' persistence settings into `SWEEP_SVCS` first.
pub const SWEEP_F_START: u32 = 1;

/// Value of the sweeper's `SWEEP_SEEN` (indexed like `REALS`): the live
/// connections one walk saw per real server, for the reconciliation.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SweepSeen {
    /// `CONNS`: counted active / inactive.
    pub active: u64,
    pub inactive: u64,
    /// `EMBRYOS`: of the fixed epoch.
    pub embryo: u64,
}

/// Value of the sweeper's `SWEEP_SVCS` (indexed by `Service::id`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SweepSvc {
    /// The last sweep that saw a live connection of the service.
    pub live: u64,
    /// The sweep whose start wrote the fields below (others are stale).
    pub loaded: u64,
    pub netmask: [u32; 4],
    /// Non-zero: persistent (`SVC_F_PERSISTENT` in the published copy).
    pub persistent: u8,
    pub family: u8,
    pub _pad: [u8; 6],
}

/// Input of `conn_sync` (BPF_PROG_TEST_RUN data): a connection a sync
/// master announced, mapped onto this director's tables by the backup
/// (`lvs-user/src/sync/`). `conn.st` holds the state and `CONN_F_ACTIVE`;
/// the program inserts or updates the connection and moves the counts
/// atomically with the data path.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnSync {
    pub key: FlowKey,
    pub conn: Conn,
}

/// XDP actions, as the programs return them and userspace reads them from
/// BPF_PROG_TEST_RUN.
pub mod xdp {
    pub const ABORTED: u32 = 0;
    pub const DROP: u32 = 1;
    pub const PASS: u32 = 2;
    pub const TX: u32 = 3;
    pub const REDIRECT: u32 = 4;
}

/// Key of `PERSIST`: a persistence template (`-p`, `-M`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PersistKey {
    /// The client address under the service's netmask.
    pub client: [u32; 4],
    pub svc_id: u32,
}

impl PersistKey {
    /// The template key of `client` under a service's netmask (IPv4: the
    /// mask in word 0; IPv6: the prefix length in word 0).
    #[inline(always)]
    pub fn new(svc_id: u32, family: u8, netmask: &[u32; 4], client: &[u32; 4]) -> PersistKey {
        let mut c = [0u32; 4];
        if family == AF_INET {
            c[0] = client[0] & netmask[0];
        } else {
            let plen = netmask[0];
            let mut i = 0;
            while i < 4 {
                let bits = plen.saturating_sub(i as u32 * 32);
                let m: u32 = if bits >= 32 {
                    u32::MAX
                } else if bits == 0 {
                    0
                } else {
                    (u32::MAX << (32 - bits)).to_be()
                };
                c[i] = client[i] & m;
                i += 1;
            }
        }
        PersistKey { client: c, svc_id }
    }
}

/// Value of `PERSIST`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Persist {
    pub real: u32,
    pub real_generation: u32,
    /// Last time a connection used or kept the template alive.
    pub last_used: u64,
}

/// Key of `LBLC`: (service, destination address).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct LblcKey {
    pub dst: [u32; 4],
    pub svc_id: u32,
}

/// Most real servers an lblcr destination set holds.
pub const LBLCR_SET: usize = 4;

/// Value of `LBLC`: the server (lblc) or server set (lblcr) of a destination.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lblc {
    pub reals: [u32; LBLCR_SET],
    pub len: u32,
    pub _pad: u32,
    pub last_used: u64,
    /// lblcr: when the set last changed.
    pub last_modified: u64,
}

/// Table entry meaning "no server" (dh/sh/mh tables of empty services).
pub const TABLE_EMPTY: u32 = u32::MAX;

/// ipvsadm's scheduler flags as stored in [`Service::flags`].
pub const SH_FALLBACK: u16 = SVC_F_SCHED1;
pub const SH_PORT: u16 = SVC_F_SCHED2;
pub const MH_FALLBACK: u16 = SVC_F_SCHED1;
pub const MH_PORT: u16 = SVC_F_SCHED2;

/// The single entry of `CONFIG`, written by `lvs load`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// Size of `CONNS`, reported by `lvsadm -L` as IPVS's "size".
    pub conn_table_size: u32,
    /// Non-zero: emit per-packet debug logs.
    pub debug: u32,
    /// Per-state timeouts in seconds, indexed by [`state`] codes.
    pub timeouts: [u32; state::COUNT],
    /// TUN outer source (`lvs load --tunnel-source`); zero: the egress
    /// link's address as the FIB picks it.
    pub tunnel_src4: u32,
    pub tunnel_src6: [u32; 4],
    /// TUN path MTU override (`--tunnel-mtu`); zero: the route's MTU.
    pub tunnel_mtu: u32,
    /// VLAN sub-interfaces in `VLAN_OUT` (zero: the data path skips the
    /// egress lookup).
    pub vlans: u32,
    /// Embryonic connections `EMBRYOS` holds (`--max-embryonic`).
    pub max_embryonic: u32,
    /// [`TABLE_FULL_REFUSE`] or [`TABLE_FULL_EVICT`] (`--conn-table-full`).
    pub conn_table_full: u32,
}

/// Value of `LINK_MACS`, indexed by ifindex: the link's MAC as the frame
/// carries it, loaded as words (`lo`: bytes 0..4, `hi`: bytes 4..6 in memory
/// order), and `set` non-zero once `lvs` wrote it. A frame is the link's when
/// its first six bytes are `lo`, `hi`: one array lookup and two compares.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkMac {
    pub lo: u32,
    pub hi: u16,
    pub set: u16,
}

impl LinkMac {
    pub fn new(mac: [u8; 6]) -> LinkMac {
        LinkMac {
            lo: u32::from_ne_bytes([mac[0], mac[1], mac[2], mac[3]]),
            hi: u16::from_ne_bytes([mac[4], mac[5]]),
            set: 1,
        }
    }

    /// Whether a frame starting with `dst` (its destination MAC) is this
    /// link's.
    pub fn is(&self, dst: [u8; 6]) -> bool {
        self.set != 0 && *self == LinkMac::new(dst)
    }
}

/// `LINK_MACS`' size: links with a larger ifindex are refused by `lvs load`.
pub const MAX_IFINDEX: u32 = 1 << 16;

/// Key of `VLAN_IN`: the link a tagged frame arrived on and its VLAN id.
/// The value is the VLAN sub-interface's ifindex, the link the kernel's
/// FIB knows the VLAN's addresses and routes on.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct VlanKey {
    pub ifindex: u32,
    pub vid: u16,
    pub _pad: u16,
}

/// Value of `VLAN_OUT`, keyed by a VLAN sub-interface's ifindex: the link
/// it sits on and its VLAN id, so a frame the FIB sends out of the
/// sub-interface leaves its parent link tagged.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VlanDev {
    pub parent: u32,
    pub vid: u16,
    pub _pad: u16,
}

/// An address with its family: key of `lvs decap`'s `DECAP_ADDRS` (this
/// host's addresses) and of the director's `NEIGH_MISS` (next hops to
/// resolve).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AddrKey {
    pub addr: [u32; 4],
    pub family: u8,
    pub _pad: [u8; 3],
}

/// One resolution of a real server's next hop, as `lvs load` found it in
/// the kernel's route, link and neighbour tables (one copy of
/// [`RealHop`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NextHop {
    /// The real server's address it was resolved for: the data path uses
    /// it only for a `REALS` entry of that address (a slot reused for
    /// another server falls back to the FIB until `lvs load` catches up).
    pub addr: [u32; 4],
    /// The route's preferred source address (TUN's outer source without
    /// `--tunnel-source`); zero: none.
    pub src: [u32; 4],
    /// The egress link.
    pub ifindex: u32,
    /// The route's MTU (the link's, unless the route sets one).
    pub mtu: u32,
    /// The next hop's MAC (the real server's, or TUN's gateway's).
    pub dmac: [u8; 6],
    /// The egress link's MAC.
    pub smac: [u8; 6],
}

/// Value of `REAL_HOPS`, indexed like `REALS`: the next hop of a DR or TUN
/// real server, kept current by `lvs load` so that the data path needs no
/// FIB lookup (which fails with forwarding off).
///
/// A map update copies the value in place while the data path may be
/// reading it, so there are two copies and `seq` says which is current:
/// `lvs load` writes the other copy (an update that leaves the current
/// copy's bytes as they were), and only then, in a second update, bumps
/// `seq` to point at it. A reader that loaded `seq` once reads a copy that
/// does not change under it (unless two changes land within one packet).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RealHop {
    pub copies: [NextHop; 2],
    /// 0: no next hop (the data path looks one up in the FIB); otherwise
    /// `copies[seq & 1]` is current. Bumped by each change.
    pub seq: u32,
}

impl RealHop {
    /// The current copy, if any.
    #[inline(always)]
    pub fn current(&self) -> Option<&NextHop> {
        match self.seq {
            0 => None,
            s if s & 1 == 0 => Some(&self.copies[0]),
            _ => Some(&self.copies[1]),
        }
    }

    /// The `seq` that follows `seq`: never 0, always of the other parity.
    pub fn next_seq(seq: u32) -> u32 {
        match seq {
            u32::MAX => 2,
            s => s + 1,
        }
    }
}

/// Indices of `lvs decap`'s per-CPU `DECAP_COUNTERS`.
pub mod decap_counters {
    pub const RX: u32 = 0;
    /// Tunnelled packets stripped and handed to the stack.
    pub const DECAP: u32 = 1;
    /// Tunnelled packets not addressed to this host, fragments, or
    /// malformed: passed untouched.
    pub const NOT_OURS: u32 = 2;
    pub const COUNT: u32 = 3;
    pub const NAMES: [&str; COUNT as usize] = ["rx", "decap", "not_ours"];
}

#[cfg(feature = "user")]
mod pod {
    use super::*;
    // SAFETY: all of these are repr(C), Copy, contain no padding bytes
    // (explicit `_pad` fields) and are valid for any bit pattern.
    unsafe impl aya::Pod for ServiceKey {}
    unsafe impl aya::Pod for Service {}
    unsafe impl aya::Pod for ServiceEntry {}
    unsafe impl aya::Pod for RealViews {}
    unsafe impl aya::Pod for Real {}
    unsafe impl aya::Pod for FlowKey {}
    unsafe impl aya::Pod for Conn {}
    unsafe impl aya::Pod for Stats {}
    unsafe impl aya::Pod for RealConns {}
    unsafe impl aya::Pod for Config {}
    unsafe impl aya::Pod for AddrKey {}
    unsafe impl aya::Pod for PersistKey {}
    unsafe impl aya::Pod for Persist {}
    unsafe impl aya::Pod for LblcKey {}
    unsafe impl aya::Pod for Lblc {}
    unsafe impl aya::Pod for ConnFix {}
    unsafe impl aya::Pod for VlanKey {}
    unsafe impl aya::Pod for VlanDev {}
    unsafe impl aya::Pod for LinkMac {}
    unsafe impl aya::Pod for counters::Counters {}
    unsafe impl aya::Pod for RealHop {}
    unsafe impl aya::Pod for Rate {}
    unsafe impl aya::Pod for EmbryoCounts {}
    // The sweeper's BPF_PROG_TEST_RUN inputs, as bytes.
    unsafe impl bytemuck::Zeroable for FlowKey {}
    unsafe impl bytemuck::Pod for FlowKey {}
    unsafe impl bytemuck::Zeroable for ConnFix {}
    unsafe impl bytemuck::Pod for ConnFix {}
    unsafe impl bytemuck::Zeroable for ConnSync {}
    unsafe impl bytemuck::Pod for ConnSync {}
    unsafe impl bytemuck::Zeroable for SweepRun {}
    unsafe impl bytemuck::Pod for SweepRun {}
    unsafe impl aya::Pod for SweepSeen {}
    unsafe impl aya::Pod for SweepSvc {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::size_of;

    #[test]
    fn expiry_has_one_touch_of_slack() {
        let c = Conn {
            last_seen: 100_000_000_000,
            ..Default::default()
        };
        assert!(!c.expired(10, 110_500_000_000));
        assert!(!c.expired(10, 111_000_000_000));
        assert!(c.expired(10, 111_000_000_001));
        assert!(!c.expired(10, 99_000_000_000));
    }

    #[test]
    fn pressure_shortens_only_longer_timeouts() {
        let mut t = [60u32; state::COUNT];
        t[state::CLOSE as usize] = 2;
        let sr = state::SYN_RECV as u32;
        assert_eq!(conn_timeout_s(sr, &t), 60);
        assert_eq!(conn_timeout_s(sr | CONN_F_EMBRYO, &t), 60);
        assert_eq!(
            conn_timeout_s(sr | CONN_F_SHORT, &t),
            EMBRYO_SHORT_TIMEOUT_S
        );
        assert_eq!(conn_timeout_s(state::CLOSE as u32 | CONN_F_SHORT, &t), 2);
    }

    #[test]
    fn persistence_keys_mask_the_client() {
        let a = [u32::from_ne_bytes([192, 168, 47, 77]), 0, 0, 0];
        let m = [u32::from_ne_bytes([255, 255, 255, 0]), 0, 0, 0];
        let k = PersistKey::new(3, AF_INET, &m, &a);
        assert_eq!(k.client[0].to_ne_bytes(), [192, 168, 47, 0]);
        assert_eq!(k.svc_id, 3);
        let v6 = [
            0x2001_0db8u32.to_be(),
            0x0047_0000u32.to_be(),
            0xdead_beefu32.to_be(),
            1u32.to_be(),
        ];
        let k = PersistKey::new(1, AF_INET6, &[48, 0, 0, 0], &v6);
        assert_eq!(
            k.client,
            [0x2001_0db8u32.to_be(), 0x0047_0000u32.to_be(), 0, 0]
        );
        let k = PersistKey::new(1, AF_INET6, &[128, 0, 0, 0], &v6);
        assert_eq!(k.client, v6);
    }

    #[test]
    fn thresholds_have_ipvs_hysteresis() {
        assert_eq!(threshold_rule(1000, false, 0, 0), (true, false));
        assert_eq!(threshold_rule(9, false, 10, 5), (true, false));
        assert_eq!(threshold_rule(10, false, 10, 5), (false, true));
        // Overloaded: until below the lower threshold...
        assert_eq!(threshold_rule(6, true, 10, 5), (false, true));
        assert_eq!(threshold_rule(5, true, 10, 5), (false, true));
        assert_eq!(threshold_rule(4, true, 10, 5), (true, false));
        // ...or below 3/4 of the upper one without a lower threshold.
        assert_eq!(threshold_rule(75, true, 100, 0), (false, true));
        assert_eq!(threshold_rule(74, true, 100, 0), (true, false));
    }

    #[test]
    fn reply_keys_swap_to_the_real_server_side() {
        let client = FlowKey {
            src: [1, 0, 0, 0],
            dst: [2, 0, 0, 0],
            sport: 1000,
            dport: 80,
            proto: PROTO_TCP,
            family: AF_INET,
            _pad: [0; 2],
        };
        let r = FlowKey::reply_of(&client, &[3, 0, 0, 0], 8080);
        assert_eq!(
            (r.src, r.dst, r.sport, r.dport),
            ([3, 0, 0, 0], [1, 0, 0, 0], 8080, 1000)
        );
        assert_eq!((r.proto, r.family), (PROTO_TCP, AF_INET));
    }

    #[test]
    fn real_hop_sequence_alternates_copies_and_skips_zero() {
        let mut h = RealHop::default();
        assert_eq!(h.current(), None);
        h.copies[1].ifindex = 7;
        h.seq = RealHop::next_seq(0);
        assert_eq!(h.current().map(|c| c.ifindex), Some(7));
        h.seq = RealHop::next_seq(h.seq);
        assert_eq!(h.current().map(|c| c.ifindex), Some(0));
        let mut s = u32::MAX - 3;
        for _ in 0..8 {
            let n = RealHop::next_seq(s);
            assert_ne!(n, 0);
            assert_ne!(n & 1, s & 1, "{s} -> {n}");
            s = n;
        }
    }

    #[test]
    fn layouts_have_no_implicit_padding() {
        assert_eq!(size_of::<ConnFix>(), 16);
        assert_eq!(size_of::<ConnSync>(), 64);
        assert_eq!(size_of::<SweepRun>(), 96);
        assert_eq!(size_of::<SweepSeen>(), 24);
        assert_eq!(size_of::<SweepSvc>(), 40);
        assert_eq!(size_of::<ServiceKey>(), 20);
        assert_eq!(size_of::<Service>(), 44);
        assert_eq!(size_of::<ServiceEntry>(), 88);
        assert_eq!(size_of::<RealView>(), 16);
        assert_eq!(size_of::<RealViews>(), 32);
        assert_eq!(size_of::<Real>(), 44);
        assert_eq!(size_of::<FlowKey>(), 40);
        assert_eq!(size_of::<Conn>(), 24);
        assert_eq!(size_of::<Stats>(), 40);
        assert_eq!(size_of::<RealConns>(), 32);
        assert_eq!(size_of::<Rate>(), 24 + 5 * 8);
        assert_eq!(size_of::<PersistKey>(), 20);
        assert_eq!(size_of::<Persist>(), 16);
        assert_eq!(size_of::<LblcKey>(), 20);
        assert_eq!(size_of::<Lblc>(), 40);
        assert_eq!(size_of::<Config>(), 8 + 4 * state::COUNT + 36);
        assert_eq!(size_of::<EmbryoCounts>(), 16);
        assert_eq!(size_of::<VlanKey>(), 8);
        assert_eq!(size_of::<VlanDev>(), 8);
        assert_eq!(size_of::<NextHop>(), 16 + 16 + 4 + 4 + 6 + 6);
        assert_eq!(size_of::<RealHop>(), 2 * size_of::<NextHop>() + 4);
    }
}
