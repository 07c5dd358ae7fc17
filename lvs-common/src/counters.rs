//! Indices into the director's per-CPU counter block (`COUNTERS`, one
//! entry holding a [`Counters`]): why packets took the path they took.
//! Names are what `lvs` prints. One block rather than one array slot per
//! counter, so the fast path finds all of them with one lookup.

pub const RX: u32 = 0;
/// Not a service's traffic (or not IP/TCP/UDP): handed to the kernel untouched.
pub const PASS: u32 = 1;
/// Truncated or inconsistent headers: passed untouched (see parse rules).
pub const MALFORMED: u32 = 2;
/// IP fragments: passed untouched (we do not balance fragments yet).
pub const FRAGMENT: u32 = 3;
/// Forward-direction NAT packets sent with a redirect / XDP_TX.
pub const NAT_FWD: u32 = 4;
/// Forward NAT packets handed to the kernel because the next hop had no
/// neighbour entry yet (the kernel routes them and resolves it).
pub const NAT_FWD_FIB_PASS: u32 = 5;
/// Reverse-NAT packets sent back to the client.
pub const NAT_REPLY: u32 = 6;
/// Reverse-NAT packets dropped: no route/neighbour towards the client. Never
/// passed to the kernel, which would drop a packet from the VIP as a martian.
pub const NAT_REPLY_DROP: u32 = 7;
/// New connections scheduled.
pub const NEW_CONN: u32 = 8;
/// Service had no usable real server: handed to the kernel (as IPVS, the
/// director then answers with a reset / port unreachable).
pub const NO_REAL: u32 = 9;
/// TCP packets for a service without a connection and without SYN.
pub const NO_CONN: u32 = 10;
/// DR packets sent.
pub const DR_FWD: u32 = 11;
/// DR/TUN packets dropped for lack of a neighbour entry.
pub const FWD_NO_NEIGH: u32 = 12;
/// TUN packets sent.
pub const TUN_FWD: u32 = 13;
/// Packets dropped because they could not be rewritten (headroom, map error).
pub const XMIT_ERR: u32 = 14;
/// A connection entry pointed at a real-server slot that was reused.
pub const STALE_CONN: u32 = 15;
/// ICMP "fragmentation needed" / ICMPv6 "packet too big" sent to clients.
pub const ICMP_TOO_BIG: u32 = 16;
/// ICMP errors about tracked connections forwarded to their real server.
pub const ICMP_FWD: u32 = 17;
/// ICMP errors from the real-server side translated back to the client.
pub const ICMP_REPLY: u32 = 18;
/// Connection counts corrected by the sweeper because the LRU evicted
/// connections before they ended.
pub const EVICTED: u32 = 19;

/// Established packets served from the per-CPU flow cache, without the
/// shared connection table (also counted in their path's counter).
pub const FLOW_HIT: u32 = 20;

/// IP frames whose destination MAC is not the receiving link's (broadcast,
/// multicast, another host's): handed to the kernel untouched, as a router
/// would never route them.
pub const FOREIGN_MAC: u32 = 21;
/// Packets of a service, a NAT reply or a tracked ICMP error with TTL / hop
/// limit <= 1: never forwarded. A service's packet is answered with ICMP
/// time exceeded from the VIP; a NAT reply is handed untranslated to the
/// kernel (which answers the real server as a router does); an ICMP error
/// is dropped (no error about an error).
pub const TTL_EXCEEDED: u32 = 22;

/// Packets of a connection whose real server the health checker removed
/// (`Real::flags` has `REAL_F_NODEST`): dropped, as IPVS drops them.
pub const NODEST_DROP: u32 = 23;

/// New connections put in the embryonic table while it held
/// `--max-embryonic` or more: each made the LRU evict an older embryonic
/// one (never an established connection).
pub const EMBRYONIC_FULL: u32 = 24;
/// Embryonic connections given the short timeout
/// (`EMBRYO_SHORT_TIMEOUT_S`): created with the table at least half full.
pub const SYN_PRESSURE: u32 = 25;
/// Embryonic connections the LRU evicted, taken off the counts by the
/// sweeper.
pub const SYN_FLOOD_EVICTED: u32 = 26;
/// Embryonic connections promoted to the established table (the client's
/// handshake-completing ACK; UDP: a second client packet, NAT's reply).
pub const PROMOTED: u32 = 27;
/// Embryonic connections whose promotion met a full `CONNS`
/// (`--conn-table-full refuse`): they stay embryonic, and the packet is
/// forwarded.
pub const PROMOTE_FULL: u32 = 28;
/// New connections refused because `CONNS` held `--max-conns`
/// (`--conn-table-full refuse`): their first packet is passed to the
/// director's stack untouched.
pub const CONN_TABLE_FULL: u32 = 29;

pub const COUNT: u32 = 30;

/// Counters that do not end a packet's way through the director: `rx`
/// (every frame), `new_conn` (then forwarded and counted by its path),
/// `evicted` (the sweeper's) and `flow_hit` (also counted by its path),
/// and the flood defences' but `conn_table_full` (a connection's first
/// packet is then forwarded, or for `syn_flood_evicted` the sweeper's).
/// Every frame moves `rx` and exactly one counter not in this list.
pub const NOT_TERMINAL: [u32; 9] = [
    RX,
    NEW_CONN,
    EVICTED,
    FLOW_HIT,
    EMBRYONIC_FULL,
    SYN_PRESSURE,
    SYN_FLOOD_EVICTED,
    PROMOTED,
    PROMOTE_FULL,
];

/// Printable names, indexed as above.
pub const NAMES: [&str; COUNT as usize] = [
    "rx",
    "pass",
    "malformed",
    "fragment",
    "nat_fwd",
    "nat_fwd_fib_pass",
    "nat_reply",
    "nat_reply_drop",
    "new_conn",
    "no_real",
    "no_conn",
    "dr_fwd",
    "fwd_no_neigh",
    "tun_fwd",
    "xmit_err",
    "stale_conn",
    "icmp_too_big",
    "icmp_fwd",
    "icmp_reply",
    "evicted",
    "flow_hit",
    "foreign_mac",
    "ttl_exceeded",
    "nodest_drop",
    "embryonic_full",
    "syn_pressure",
    "syn_flood_evicted",
    "promoted",
    "promote_full",
    "conn_table_full",
];

/// The value of `COUNTERS`' single entry (per CPU; userspace sums).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counters(pub [u64; COUNT as usize]);

impl Default for Counters {
    fn default() -> Self {
        Counters([0; COUNT as usize])
    }
}
