//! Names of the maps as pinned: the director object pins exactly these
//! ([`ALL`], which `loader::remove_pins` removes).

pub const SERVICES: &str = "SERVICES";
/// The published table generation (see `tables`' module documentation).
pub const GENERATION: &str = "GENERATION";
/// Real servers as each generation's schedulers see them.
pub const REAL_VIEWS: &str = "REAL_VIEWS";
pub const REALS: &str = "REALS";
pub const DESTS: &str = "DESTS";
pub const SCHED_TABLE: &str = "SCHED_TABLE";
pub const SCHED_STATE: &str = "SCHED_STATE";
pub const CONNS: &str = "CONNS";
pub const REPLIES: &str = "REPLIES";
pub const REAL_CONNS: &str = "REAL_CONNS";
/// Embryonic connections and their NAT reply tuples (`lvs_ebpf`'s
/// `conntrack`), their counts by epoch, and the tables' occupancy.
pub const EMBRYOS: &str = "EMBRYOS";
pub const EMBRYO_REPLIES: &str = "EMBRYO_REPLIES";
pub const EMBRYO_COUNTS: &str = "EMBRYO_COUNTS";
pub const OCCUPANCY: &str = "OCCUPANCY";
pub const SVC_STATS: &str = "SVC_STATS";
pub const REAL_STATS: &str = "REAL_STATS";
pub const COUNTERS: &str = "COUNTERS";
pub const CONFIG: &str = "CONFIG";
pub const PERSIST: &str = "PERSIST";
pub const LBLC: &str = "LBLC";
pub const NEIGH_MISS: &str = "NEIGH_MISS";
pub const ADDR_FILTER: &str = "ADDR_FILTER";
pub const VLAN_IN: &str = "VLAN_IN";
pub const VLAN_OUT: &str = "VLAN_OUT";
/// Real servers' next hops, kept by `lvs load` (`crate::hops`).
pub const REAL_HOPS: &str = "REAL_HOPS";
/// IPVS's rate estimates (`lvs_common::Rate`), kept by `lvs load`
/// (`crate::rate`).
pub const SVC_RATES: &str = "SVC_RATES";
pub const REAL_RATES: &str = "REAL_RATES";
/// Links' MACs by ifindex (`crate::linkmacs`).
pub const LINK_MACS: &str = "LINK_MACS";
/// The layout record `lvs load` pins beside the maps (see
/// `life::layout`); not a map of the object.
pub const LAYOUT: &str = "LAYOUT";
pub const ALL: [&str; 28] = [
    SERVICES,
    GENERATION,
    REAL_VIEWS,
    REALS,
    DESTS,
    SCHED_TABLE,
    SCHED_STATE,
    CONNS,
    REPLIES,
    REAL_CONNS,
    EMBRYOS,
    EMBRYO_REPLIES,
    EMBRYO_COUNTS,
    OCCUPANCY,
    SVC_STATS,
    REAL_STATS,
    COUNTERS,
    CONFIG,
    PERSIST,
    LBLC,
    NEIGH_MISS,
    ADDR_FILTER,
    VLAN_IN,
    VLAN_OUT,
    REAL_HOPS,
    SVC_RATES,
    REAL_RATES,
    LINK_MACS,
];

/// Programs of the director object.
pub mod progs {
    /// The XDP director itself, attached by `lvs load`.
    pub const DIRECTOR: &str = "director";
    /// Run by the sweeper (BPF_PROG_TEST_RUN) to remove one expired
    /// connection atomically with the data path.
    pub const CONN_EXPIRE: &str = "conn_expire";
    /// Run by the sweeper to correct a real server's connection counts.
    pub const CONN_FIX: &str = "conn_fix";
    /// Run by the sweeper: one bounded slice of the walk of `CONNS` or
    /// `EMBRYOS` in the kernel (`lvs_common::SweepRun`).
    pub const CONN_SWEEP: &str = "conn_sweep";
}

/// The sweeper's working maps: in the object but not pinned (so not in
/// [`ALL`] nor the layout record), sized by `lvs load` like `REALS` and
/// `SERVICES`.
pub const SWEEP_SEEN: &str = "SWEEP_SEEN";
pub const SWEEP_SVCS: &str = "SWEEP_SVCS";
