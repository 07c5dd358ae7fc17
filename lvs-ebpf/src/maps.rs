//! Every map of the director. All are pinned by name, so `lvsadm` can open
//! them and a later `lvs load` can take over the tables of a stopped one.
//! Sizes here are defaults; `lvs load` overrides them (`--max-conns`, ...).

use crate::flow::Cacheable;
use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray},
};
use lvs_common::{
    counters, AddrKey, Config, Conn, EmbryoCounts, FlowKey, Lblc, LblcKey, LinkMac, Persist,
    PersistKey, Rate, Real, RealConns, RealHop, RealViews, ServiceEntry, ServiceKey, Stats,
    SweepSeen, SweepSvc, VlanDev, VlanKey,
};

/// (proto, family, VIP, port) -> service, both generations' copies (see
/// `lvs_common::ServiceEntry`). Shared hash: read-mostly, written only by
/// userspace.
#[map]
pub static SERVICES: HashMap<ServiceKey, ServiceEntry> = HashMap::pinned(1024, 0);

/// The published table generation (`lvs_common::GEN_CURRENT`; the data
/// path reads its lowest bit once per new connection) and userspace's
/// record of when it was published.
#[map]
pub static GENERATION: Array<u64> = Array::pinned(lvs_common::GEN_WORDS, 0);

/// Real-server index (as `REALS`) -> what the schedulers read of it, per
/// generation.
#[map]
pub static REAL_VIEWS: Array<RealViews> = Array::pinned(4096, 0);

/// One bit per hash (`hash::addr_bit`) of every service's VIP and port and
/// every NAT real server's address and port, set by userspace before it
/// publishes them: most traffic that is not a service's is passed on a
/// clear bit, without a hash lookup.
#[map]
pub static ADDR_FILTER: Array<u64> = Array::pinned(lvs_common::hash::ADDR_FILTER_BITS / 64, 0);

/// Whether `addr`:`port` may be a service or a NAT real server (false:
/// surely not).
#[inline(always)]
pub fn maybe_ours(addr: &[u32; 4], port: u16) -> bool {
    let bit = lvs_common::hash::addr_bit(addr, port);
    ADDR_FILTER
        .get(bit / 64)
        .is_some_and(|w| w & (1u64 << (bit % 64)) != 0)
}

/// Real-server index -> real server. Array: dense and lookups are O(1).
#[map]
pub static REALS: Array<Real> = Array::pinned(4096, 0);

/// Members of each service (real indices), in regions named by
/// `Service::dests_off/len`.
#[map]
pub static DESTS: Array<u32> = Array::pinned(4096, 0);

/// Scheduler tables (rr/wrr sequences, hash buckets, Maglev), in regions
/// named by `Service::table_off/len`.
#[map]
pub static SCHED_TABLE: Array<u32> = Array::pinned(262144, 0);

/// Service id -> scheduling position. Shared and bumped with an atomic add:
/// consecutive connections of one service land on any CPU, and rr must still
/// alternate across them.
#[map]
pub static SCHED_STATE: Array<u64> = Array::pinned(1024, 0);

/// Client-side 5-tuple -> connection. Shared LRU: a flow's packets and its
/// NAT replies arrive on any CPU (veth has no RSS), so a per-CPU table
/// would miss.
#[map]
pub static CONNS: LruHashMap<FlowKey, Conn> = LruHashMap::pinned(65536, 0);

/// Real-server-side 5-tuple (src = RS:port, dst = client) -> client-side
/// tuple, for reverse NAT. Same size as `CONNS`.
#[map]
pub static REPLIES: LruHashMap<FlowKey, FlowKey> = LruHashMap::pinned(65536, 0);

/// Embryonic connections (see `conntrack`): client-side 5-tuple ->
/// connection, for connections that have not completed their handshake
/// (UDP: not yet confirmed). A separate, smaller LRU, so that a flood of
/// new flows evicts only other new flows, never an entry of `CONNS`.
#[map]
pub static EMBRYOS: LruHashMap<FlowKey, Conn> = LruHashMap::pinned(16384, 0);

/// Real-server-side tuple -> client-side tuple of embryonic NAT
/// connections (their SYN-ACK must be translated). Looked up only when
/// `REPLIES` misses: established replies pay nothing for it.
#[map]
pub static EMBRYO_REPLIES: LruHashMap<FlowKey, FlowKey> = LruHashMap::pinned(16384, 0);

/// Shared atomics indexed by `lvs_common::occupancy`: how many entries
/// `CONNS` and `EMBRYOS` hold (an LRU never says it is full), and the
/// sweeper's epoch.
#[map]
pub static OCCUPANCY: Array<u64> = Array::pinned(lvs_common::occupancy::COUNT, 0);

/// Real index -> its embryonic connections by epoch (`EmbryoCounts`).
#[map]
pub static EMBRYO_COUNTS: Array<EmbryoCounts> = Array::pinned(4096, 0);

/// Real index -> active/inactive connection counts (atomics).
#[map]
pub static REAL_CONNS: Array<RealConns> = Array::pinned(4096, 0);

/// The sweeper's working tables (`sweep`): per real server (indexed like
/// `REALS`) the live connections one walk saw, and per service id whether
/// it has a live connection and its persistence settings. Not pinned:
/// they belong to the `lvs load` whose sweeper fills and reads them (a
/// later one that adopts the pinned tables makes its own), so the pinned
/// layout is unchanged. Sized by `lvs load` like `REALS` and `SERVICES`.
#[map]
pub static SWEEP_SEEN: Array<SweepSeen> = Array::with_max_entries(4096, 0);
#[map]
pub static SWEEP_SVCS: Array<SweepSvc> = Array::with_max_entries(1024, 0);

/// Persistence templates (`-p`): masked client address -> real server.
#[map]
pub static PERSIST: LruHashMap<PersistKey, Persist> = LruHashMap::pinned(65536, 0);

/// lblc/lblcr: (service, destination address) -> server (set).
#[map]
pub static LBLC: LruHashMap<LblcKey, Lblc> = LruHashMap::pinned(65536, 0);

/// Per-service and per-real counters: per-CPU, summed by userspace, so the
/// hot path never contends.
#[map]
pub static SVC_STATS: PerCpuArray<Stats> = PerCpuArray::pinned(1024, 0);
#[map]
pub static REAL_STATS: PerCpuArray<Stats> = PerCpuArray::pinned(4096, 0);

/// IPVS's rate estimates, per service (one entry more than `SVC_STATS`:
/// the last holds the totals) and per real server, written by `lvs load`'s
/// estimator from the counters above and read by `lvsadm -L --rate` and
/// `/metrics`. The data path never uses them: they live in the object so
/// that they are pinned, staged, checked against the layout record and
/// removed with the other maps, and sized by `--max-services` and
/// `--max-reals` like the counters they are estimated from.
#[map]
pub static SVC_RATES: Array<Rate> = Array::pinned(1025, 0);
#[map]
pub static REAL_RATES: Array<Rate> = Array::pinned(4096, 0);

/// Global path counters, indexed by `lvs_common::counters`.
#[map]
pub static COUNTERS: PerCpuArray<counters::Counters> = PerCpuArray::pinned(1, 0);

/// The real server chosen for the packet being handled, with what the
/// flow cache needs to remember the forwarding.
pub struct Chosen {
    pub real: Real,
    /// Its index in `REALS` (and `REAL_HOPS`).
    pub idx: u32,
    pub cache: Cacheable,
}

/// The chosen real server of the packet being handled (index 0): handed
/// from the lookup to the forwarding call without growing the stack.
#[map]
pub static CHOSEN: PerCpuArray<Chosen> = PerCpuArray::with_max_entries(1, 0);

/// Destinations whose FIB lookup found no neighbour entry, with the time:
/// `lvs load` resolves their next hops (a reply can never be handed to the
/// kernel to do it, and a DR/TUN packet must not be).
#[map]
pub static NEIGH_MISS: LruHashMap<AddrKey, u64> = LruHashMap::pinned(1024, 0);

/// Real-server index (as `REALS`) -> its next hop, resolved and kept
/// current by `lvs load` from the kernel's route, link and neighbour
/// tables: DR and TUN need no FIB lookup, which fails with forwarding off.
/// An entry without a valid copy falls back to the FIB (`xmit::real_hop`).
#[map]
pub static REAL_HOPS: Array<RealHop> = Array::pinned(4096, 0);

/// The parsed view of the packet being handled (index 0).
#[map]
pub static PACKET: PerCpuArray<crate::parse::Packet> = PerCpuArray::with_max_entries(1, 0);

/// Puts `real` (index `idx` of `REALS`) in `CHOSEN` through the slot's
/// pointer: a map update would be a helper call per packet.
#[inline(always)]
pub fn choose(real: &Real, idx: u32, cache: Cacheable) -> bool {
    match CHOSEN.get_ptr_mut(0) {
        Some(slot) => {
            unsafe {
                slot.write(Chosen {
                    real: *real,
                    idx,
                    cache,
                })
            };
            true
        }
        None => false,
    }
}

/// Likewise the client-side tuple of a NAT connection whose real-server
/// side reported an ICMP error.
#[map]
pub static CHOSEN_CLIENT: PerCpuArray<FlowKey> = PerCpuArray::with_max_entries(1, 0);

/// VLANs on the director's links, kept by `lvs load`: (link, VLAN id) of a
/// tagged frame -> the VLAN sub-interface (the FIB's view of where it
/// arrived) ...
#[map]
pub static VLAN_IN: HashMap<VlanKey, u32> = HashMap::pinned(1024, 0);

/// ... and a VLAN sub-interface the FIB sends out of -> its link and id.
#[map]
pub static VLAN_OUT: HashMap<u32, VlanDev> = HashMap::pinned(1024, 0);

/// ifindex -> the link's MAC, written by `lvs load` for every link (and by
/// the BPF_PROG_TEST_RUN fixtures): a frame to another MAC is not routed
/// to us, so the director leaves it to the kernel. An array, so that the
/// check is one inlined lookup and two word compares.
#[map]
pub static LINK_MACS: Array<LinkMac> = Array::pinned(lvs_common::MAX_IFINDEX, 0);

/// Whether the frame starting at `start` (the caller checked 6 bytes) is
/// addressed to link `ifindex`: an entry `lvs` wrote and an equal MAC.
#[inline(always)]
pub fn to_link(start: usize, ifindex: u32) -> bool {
    // SAFETY: the caller checked `start + 6` against the frame's end;
    // unaligned packet loads are allowed (see `flow::load`).
    let (lo, hi) = unsafe {
        (
            core::ptr::read(start as *const u32),
            core::ptr::read((start + 4) as *const u16),
        )
    };
    LINK_MACS
        .get(ifindex)
        .is_some_and(|m| m.set != 0 && m.lo == lo && m.hi == hi)
}

/// Runtime settings written by `lvs load` (index 0).
#[map]
pub static CONFIG: Array<Config> = Array::pinned(1, 0);
