//! The established path: packets of tracked connections.
//!
//! Two tiers. The shared connection table (`conntrack`) is the truth: every
//! TCP state change, every count of ActiveConn/InActConn, expiry. In front
//! of it, a per-CPU direct-mapped flow cache serves the bulk of an
//! established connection's traffic (IPv4 TCP segments with only ACK among
//! SYN/FIN/RST/ACK, and UDP but for NAT's forward direction) with no hash
//! lookup and no helper call but the
//! redirect: the slot holds the tuple, the rewrite with its checksum
//! deltas precomputed, and the next hop.
//!
//! A slot is filled by the shared path after it forwarded such a packet of
//! an ESTABLISHED (or UDP) connection, and is used only while
//! - its real server's entry is unchanged (slot generation, port, method,
//!   flags, weight: a removal, an edit or quiescing sends the next packet
//!   back through the shared path, which decides as IPVS does),
//! - it is younger than `SLOT_TTL` jiffies: then the shared path sees the
//!   packet again, refreshing the connection's last-seen time (so
//!   timeouts hold) and the next hop (so a route or neighbour change takes
//!   effect), and refills the slot,
//! - the packet arrived on the link the slot was filled from.
//!
//! A segment with SYN, FIN or RST always takes the shared path, which
//! empties this CPU's slot of the flow when the connection leaves
//! ESTABLISHED; another CPU's slot of the same flow ages out within
//! `SLOT_TTL` (ACK-only segments move no count in any state IPVS's table
//! reaches from ESTABLISHED, so ActiveConn/InActConn move exactly once).

use aya_ebpf::{
    bindings::xdp_action::{XDP_PASS, XDP_TX},
    helpers::{bpf_jiffies64, bpf_redirect, bpf_xdp_adjust_head},
    macros::map,
    maps::PerCpuArray,
    programs::XdpContext,
};
use lvs_common::{
    counters::{self, Counters},
    csum, hash, Real, Service, AF_INET, PROTO_TCP, PROTO_UDP, REAL_F_EXPIRE, REAL_F_NODEST,
};

use crate::{
    bounds::{data, data_end, frame_holds},
    clock, conntrack,
    maps::{choose, maybe_ours, to_link, REALS},
    parse::{Packet, ETH_HLEN, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN},
    stats::{account, bump, count},
    verdict::Verdict,
    xmit::Hop,
};

/// Slots per CPU (a power of two).
const BITS: u32 = 12;
/// Jiffies a slot serves before the shared path sees its flow again:
/// 64 is 64 ms at HZ=1000 and 0.64 s at HZ=100, always under the
/// second of slack that expiry allows for a connection's last-seen time.
const SLOT_TTL: u64 = 64;

/// What a slot does to a packet.
const KIND_EMPTY: u8 = 0;
/// The MACs (and the TTL) change (DR).
const KIND_MACS: u8 = 1;
/// NAT, client -> real server: the destination address and port change.
const KIND_DNAT: u8 = 2;
/// NAT, real server -> client: the source address and port change.
const KIND_SNAT: u8 = 3;
/// TUN: an outer IPv4 header is prepended.
const KIND_TUN: u8 = 4;

/// The outer header of IP-in-IP.
const TUN_HLEN: usize = 20;
const IPPROTO_IPIP: u8 = 4;

/// One slot of the flow cache.
#[repr(C)]
pub struct Slot {
    /// The tuple as it lies in the frame: source, destination, both ports.
    src: u32,
    dst: u32,
    ports: u32,
    proto: u8,
    kind: u8,
    /// The new port of a NAT rewrite (network order).
    new_port: u16,
    ingress: u32,
    out_ifindex: u32,
    real: u32,
    real_generation: u32,
    svc_id: u32,
    /// The real server's port, method, flags and weight at fill time, as
    /// one word of its `REALS` entry.
    real_word: u64,
    /// Jiffies at fill time.
    at: u64,
    /// The new address of a NAT rewrite.
    new_addr: u32,
    /// One's-complement sums to add to the IPv4 (the TTL's decrement
    /// included; TUN: the inner header's) and L4 checksums.
    ip_delta: u16,
    l4_delta: u16,
    /// The Ethernet addresses to write (destination, then source), as an
    /// 8-byte and a 4-byte word so that writing them is two stores.
    macs_lo: u64,
    macs_hi: u32,
    /// The largest IP packet the shared path sent this way: a larger one
    /// goes back to it, which checks the route's MTU.
    max_len: u16,
    _pad: u16,
    /// TUN: the outer source (the destination is `new_addr`) and the
    /// one's-complement sum of the outer header's fixed words.
    tun_src: u32,
    tun_sum: u32,
}

#[map]
static FLOW_CACHE: PerCpuArray<Slot> = PerCpuArray::with_max_entries(1 << BITS, 0);

/// Offsets in an option-less IPv4 frame.
const IP_TTL: usize = ETH_HLEN + 8;
const IP_CSUM: usize = ETH_HLEN + 10;
const IP_SRC: usize = ETH_HLEN + 12;
const IP_DST: usize = ETH_HLEN + 16;
const L4: usize = ETH_HLEN + 20;

/// The bytes every cached frame has: Ethernet, IPv4 without options, and a
/// UDP header (a TCP one is checked for its 20 bytes too).
const HEAD: usize = L4 + 8;

/// The port, method, flags and weight word of a `REALS` entry.
#[inline(always)]
fn real_word(r: &Real) -> u64 {
    // SAFETY: bytes 16..24 of the 8-aligned map value: port, method,
    // flags, weight (`Real` is repr(C)).
    unsafe { core::ptr::read((r as *const Real as *const u8).add(16) as *const u64) }
}

#[inline(always)]
fn load<T: Copy>(at: usize) -> T {
    // SAFETY: the caller checked `at + size_of::<T>()` against the frame's
    // end. Packet data need not be aligned: XDP on every architecture
    // lvs-xdp runs on loads it whole (the verifier allows it without
    // BPF_F_STRICT_ALIGNMENT), which is why this is not a byte loop.
    unsafe { core::ptr::read(at as *const T) }
}

#[inline(always)]
fn store<T>(at: usize, v: T) {
    // SAFETY: as `load`.
    unsafe { core::ptr::write(at as *mut T, v) }
}

/// What decrementing the TTL adds to the header checksum, with the TTL and
/// protocol word loaded as the fast path loads it (native order: the word
/// drops by one, and RFC 1624's ~m + m' is 0xfffe).
const TTL_DELTA: u64 = 0xfffe;

/// Whether the option-less IPv4 header at `start + ETH_HLEN` (checked to
/// be in the frame) has a valid checksum: five word loads and a fold.
#[inline(always)]
fn header_ok(start: usize) -> bool {
    let mut sum = 0u64;
    let mut i = 0;
    while i < 20 {
        sum += sum32(load::<u32>(start + ETH_HLEN + i));
        i += 4;
    }
    csum::fold(sum) == 0xffff
}

/// `check` after adding the precomputed one's-complement sum `delta`.
#[inline(always)]
fn adjust(check: u16, delta: u16) -> u16 {
    !csum::fold(!check as u64 + delta as u64)
}

/// The cached fast path: `Some(action)` when the packet was forwarded from
/// a slot, `None` to take the shared path. Inlined into the entry point,
/// so a hit makes no BPF-to-BPF call.
#[inline(always)]
pub fn fast(ctx: &XdpContext, counts: *mut Counters) -> Option<u32> {
    let start = data(ctx);
    let end = data_end(ctx);
    if start + HEAD > end {
        return None;
    }
    // Ethernet type IPv4, version 4 with no options, not a fragment.
    if load::<u16>(start + 12) != 0x0800u16.to_be()
        || load::<u8>(start + ETH_HLEN) != 0x45
        || load::<u16>(start + ETH_HLEN + 6) & 0xff3fu16 != 0
    {
        return None;
    }
    let tot = u16::from_be(load::<u16>(start + ETH_HLEN + 2)) as usize;
    if !frame_holds(ctx, ETH_HLEN + tot) {
        return None;
    }
    let proto = load::<u8>(start + ETH_HLEN + 9);
    // The parser's rules: a TCP data offset of at least 5 words that fits
    // in the IP packet; a whole UDP header.
    let (l4_csum, acked) = if proto == PROTO_TCP {
        if start + L4 + 20 > end {
            return None;
        }
        let doff = (load::<u8>(start + L4 + 12) >> 4) as usize * 4;
        if doff < 20 || 20 + doff > tot {
            return None;
        }
        // Only segments whose one flag of SYN/FIN/RST/ACK is ACK.
        let flags = load::<u8>(start + L4 + 13);
        (
            L4 + 16,
            flags & (TCP_SYN | TCP_FIN | TCP_RST | TCP_ACK) == TCP_ACK,
        )
    } else if proto == PROTO_UDP {
        if tot < 28 {
            return None;
        }
        (L4 + 6, true)
    } else {
        return None;
    };
    let src = load::<u32>(start + IP_SRC);
    let dst = load::<u32>(start + IP_DST);
    let ports = load::<u32>(start + L4);
    let s = FLOW_CACHE.get_ptr_mut(hash::cache_slot(src, dst, ports, proto, BITS))?;
    // SAFETY: this CPU's own slot; nothing else touches it during the run.
    let s = unsafe { &*s };
    let ingress = unsafe { (*ctx.ctx).ingress_ifindex };
    if !acked
        || s.kind == KIND_EMPTY
        || s.src != src
        || s.dst != dst
        || s.ports != ports
        || s.proto != proto
        || s.ingress != ingress
        || tot > s.max_len as usize
        || unsafe { bpf_jiffies64() }.wrapping_sub(s.at) >= SLOT_TTL
    {
        // Not a cached flow. To no service and from no NAT real server:
        // not ours, passed here whatever its MAC or header checksum
        // (nothing of ours reads it; counted `pass`); anything else takes
        // the shared path.
        if !maybe_ours(&[dst, 0, 0, 0], (ports >> 16) as u16)
            && !maybe_ours(&[src, 0, 0, 0], ports as u16)
        {
            bump(counts, counters::PASS, 1);
            return Some(XDP_PASS);
        }
        return None;
    }
    // A cached flow's packet meets the shared path's rules before it is
    // forwarded: to the link's MAC, a valid header checksum, TTL > 1;
    // otherwise the shared path passes (or answers) and counts it. (The
    // TTL is loaded again where used: fewer values live across the checks
    // keep the entry point's stack frame small.)
    if !to_link(start, ingress) || !header_ok(start) || load::<u8>(start + IP_TTL) <= 1 {
        return None;
    }
    let real = REALS.get(s.real)?;
    if real.generation != s.real_generation || real_word(real) != s.real_word {
        return None;
    }
    let inbound = s.kind != KIND_SNAT;
    // Every kind forwards this IP header (TUN inside the new one): TTL one
    // less, its checksum by the slot's delta (which includes NAT's address).
    store(start + IP_TTL, load::<u8>(start + IP_TTL) - 1);
    store(start + IP_CSUM, adjust(load(start + IP_CSUM), s.ip_delta));
    let mut start = start;
    if s.kind == KIND_TUN {
        let tos = load::<u8>(start + ETH_HLEN + 1);
        let df = load::<u8>(start + ETH_HLEN + 6) & 0x40;
        start = encap(ctx, s, tot, tos, df)?;
    } else if s.kind != KIND_MACS {
        let (addr_off, port_off) = if inbound {
            (IP_DST, L4 + 2)
        } else {
            (IP_SRC, L4)
        };
        store(start + addr_off, s.new_addr);
        store(start + port_off, s.new_port);
        let old = load::<u16>(start + l4_csum);
        // UDP: a zero checksum means none and stays zero; a computed zero
        // is sent as all ones.
        if proto == PROTO_TCP || old != 0 {
            let new = adjust(old, s.l4_delta);
            store(
                start + l4_csum,
                if proto == PROTO_UDP && new == 0 {
                    0xffff
                } else {
                    new
                },
            );
        }
    }
    store(start, s.macs_lo);
    store(start + 8, s.macs_hi);
    account(s.svc_id, s.real, inbound, tot as u64, false);
    let path = match s.kind {
        KIND_MACS => counters::DR_FWD,
        KIND_DNAT => counters::NAT_FWD,
        KIND_TUN => counters::TUN_FWD,
        _ => counters::NAT_REPLY,
    };
    bump(counts, path, 1);
    bump(counts, counters::FLOW_HIT, 1);
    if s.out_ifindex == ingress {
        return Some(XDP_TX);
    }
    Some(unsafe { bpf_redirect(s.out_ifindex, 0) } as u32)
}

/// Prepends the slot's outer IPv4 header (IP-in-IP) to an option-less
/// IPv4 packet of `tot` bytes, as `fwd::tun` does: the inner `tos` and DF
/// bit `df` copied, TTL 64, the checksum from the slot's precomputed sum. Returns
/// the new start of the frame; `None` (nothing changed) if there is no
/// headroom. The Ethernet addresses are left for the caller.
#[inline(always)]
fn encap(ctx: &XdpContext, s: &Slot, tot: usize, tos: u8, df: u8) -> Option<usize> {
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, -(TUN_HLEN as i32)) } != 0 {
        return None;
    }
    let start = data(ctx);
    if start + ETH_HLEN + TUN_HLEN > data_end(ctx) {
        return None;
    }
    let tot_be = ((tot + TUN_HLEN) as u16).to_be();
    // The header in memory order: 45 tos | tot | id 0 | df 0 | ttl proto |
    // checksum | source | destination.
    let sum = s.tun_sum as u64 + ((tos as u64) << 8) + tot_be as u64 + df as u64;
    store(start + 12, 0x0800u16.to_be());
    store(start + ETH_HLEN, 0x45u16 | (tos as u16) << 8);
    store(start + ETH_HLEN + 2, tot_be);
    store(start + ETH_HLEN + 4, df as u32 * 0x1_0000);
    store(start + ETH_HLEN + 8, 64u16 | (IPPROTO_IPIP as u16) << 8);
    store(start + ETH_HLEN + 10, !csum::fold(sum));
    store(start + ETH_HLEN + 12, s.tun_src);
    store(start + ETH_HLEN + 16, s.new_addr);
    Some(start)
}

/// Both ports as one word, as they lie in the frame (what `fast` loads).
#[inline(always)]
fn ports_of(p: &Packet) -> u32 {
    (p.key.sport as u32) | ((p.key.dport as u32) << 16)
}

/// The slot of the packet's flow, if the packet could be cached at all
/// (IPv4 without options, TCP or UDP).
#[inline(always)]
fn slot_of(p: &Packet) -> Option<*mut Slot> {
    if p.key.family != AF_INET || p.l3_off != ETH_HLEN || p.l4_off != L4 {
        return None;
    }
    FLOW_CACHE.get_ptr_mut(hash::cache_slot(
        p.key.src[0],
        p.key.dst[0],
        ports_of(p),
        p.key.proto,
        BITS,
    ))
}

/// What the shared path tells the cache about the connection of the
/// packet it is handling.
#[derive(Clone, Copy, Default)]
pub struct Cacheable {
    pub svc_id: u32,
    pub real: u32,
    /// The connection is ESTABLISHED (TCP) or UDP, and the packet is one
    /// the cache serves.
    pub ok: bool,
}

/// Whether a packet of a connection in state word `st` may be served from
/// the cache from now on.
#[inline(always)]
pub fn cacheable(p: &Packet, st: u32) -> bool {
    let s = (st & lvs_common::CONN_STATE_MASK) as u8;
    if p.key.proto == PROTO_TCP {
        s == lvs_common::state::ESTABLISHED
            && p.tcp_flags & (TCP_SYN | TCP_FIN | TCP_RST | TCP_ACK) == TCP_ACK
    } else {
        p.key.proto == PROTO_UDP && s == lvs_common::state::UDP
    }
}

/// A NAT rewrite the shared path made: the new destination (`inbound`,
/// client -> real server) or source (reply) address and port.
pub struct Rewrite {
    pub addr: u32,
    pub port: u16,
    pub inbound: bool,
}

/// The slot the shared path is preparing for the packet it handles: the
/// forwarding paths write it as they send (`stage`), the entry point
/// stores it in the cache once the path returned (`commit`), so that the
/// deepest call chain carries no extra frame.
#[map]
static STAGED: PerCpuArray<Slot> = PerCpuArray::with_max_entries(1, 0);

/// Clears the staged slot; the entry point calls it before the shared path.
#[inline(always)]
pub fn unstage() {
    if let Some(s) = STAGED.get_ptr_mut(0) {
        unsafe { (*s).kind = KIND_EMPTY };
    }
}

/// Records how the shared path forwarded the packet: through `hop`, with
/// NAT's rewrite `rw` or none (DR). Nothing is staged for a connection the
/// cache must not serve, and `commit` then empties the flow's slot.
#[inline(always)]
pub fn stage(c: &Cacheable, hop: &Hop, rw: Option<&Rewrite>) {
    let Some(s) = STAGED.get_ptr_mut(0) else {
        return;
    };
    let s = unsafe { &mut *s };
    // Out of a VLAN sub-interface the frame gets a tag: the shared path's.
    if !c.ok || crate::xmit::egress(hop.ifindex).1.is_some() {
        s.kind = KIND_EMPTY;
        return;
    }
    s.real = c.real;
    s.svc_id = c.svc_id;
    s.out_ifindex = hop.ifindex;
    let d = hop.dmac;
    let m = hop.smac;
    s.macs_lo = u64::from_ne_bytes([d[0], d[1], d[2], d[3], d[4], d[5], m[0], m[1]]);
    s.macs_hi = u32::from_ne_bytes([m[2], m[3], m[4], m[5]]);
    match rw {
        None => s.kind = KIND_MACS,
        Some(rw) => {
            s.new_addr = rw.addr;
            s.new_port = rw.port;
            s.kind = if rw.inbound { KIND_DNAT } else { KIND_SNAT };
        }
    }
}

/// As `stage`, for an IP-in-IP encapsulation from `src` to `dst`.
#[inline(always)]
pub fn stage_tunnel(c: &Cacheable, hop: &Hop, src: u32, dst: u32) {
    stage(c, hop, None);
    let Some(s) = STAGED.get_ptr_mut(0) else {
        return;
    };
    let s = unsafe { &mut *s };
    if s.kind != KIND_EMPTY {
        s.kind = KIND_TUN;
        s.new_addr = dst;
        s.tun_src = src;
    }
}

/// Stores the staged slot for the packet `p` (parsed before any rewrite)
/// if the path staged one, and otherwise empties this CPU's slot of the
/// flow: its connection is no longer one the cache serves.
#[inline(never)]
pub fn commit(p: &Packet) {
    let (Some(st), Some(s)) = (STAGED.get_ptr_mut(0), slot_of(p)) else {
        return;
    };
    let (st, s) = unsafe { (&*st, &mut *s) };
    let ports = ports_of(p);
    // Not the forward direction of a NAT UDP flow: a datagram from a
    // reused source port after the LRU evicted the flow's entries must
    // meet the shared path, which recreates the reply entry; from a slot
    // it would be forwarded and its answer dropped.
    let udp_dnat = st.kind == KIND_DNAT && p.key.proto == PROTO_UDP;
    let real = match REALS.get(st.real) {
        Some(r) if st.kind != KIND_EMPTY && !udp_dnat => r,
        _ => {
            if s.src == p.key.src[0] && s.dst == p.key.dst[0] && s.ports == ports {
                s.kind = KIND_EMPTY;
            }
            return;
        }
    };
    s.kind = KIND_EMPTY;
    s.src = p.key.src[0];
    s.dst = p.key.dst[0];
    s.ports = ports;
    s.proto = p.key.proto;
    s.ingress = p.ingress;
    s.out_ifindex = st.out_ifindex;
    s.real = st.real;
    s.real_generation = real.generation;
    s.real_word = real_word(real);
    s.svc_id = st.svc_id;
    s.at = unsafe { bpf_jiffies64() };
    s.macs_lo = st.macs_lo;
    s.macs_hi = st.macs_hi;
    s.max_len = p.ip_len;
    s.ip_delta = TTL_DELTA as u16;
    if st.kind == KIND_TUN {
        s.new_addr = st.new_addr;
        s.tun_src = st.tun_src;
        s.tun_sum = (0x45u32 + (64 | (IPPROTO_IPIP as u32) << 8))
            + sum32(st.tun_src) as u32
            + sum32(st.new_addr) as u32;
    } else if st.kind != KIND_MACS {
        let (old_addr, old_port) = if st.kind == KIND_DNAT {
            (p.key.dst[0], p.key.dport)
        } else {
            (p.key.src[0], p.key.sport)
        };
        s.new_addr = st.new_addr;
        s.new_port = st.new_port;
        // RFC 1624: HC' = ~(~HC + ~m + m') for each changed word m.
        let a = sum32(!old_addr) + sum32(st.new_addr);
        s.ip_delta = csum::fold(a + TTL_DELTA);
        s.l4_delta = csum::fold(a + (!old_port) as u64 + st.new_port as u64);
    }
    s.kind = st.kind;
}

#[inline(always)]
fn sum32(v: u32) -> u64 {
    (v & 0xffff) as u64 + (v >> 16) as u64
}

/// Client -> VIP of a tracked connection, through the shared table: on
/// success its real server is in `CHOSEN` and the verdict is `SCHEDULED`;
/// `NEW` asks for scheduling. A connection of a server the health checker
/// removed (`REAL_F_NODEST`) is dropped, or with `REAL_F_EXPIRE` ended.
#[inline(never)]
pub fn established(p: &Packet, svc: &Service) -> Verdict {
    let now = clock::now();
    let syn = conntrack::is_syn(p);
    let found = match conntrack::lookup(p, syn, now) {
        // Its real server was taken out by the health checker: as IPVS
        // with a destination no longer available. The flow cache checks
        // the flags, so no packet of it is served from there.
        Some((c, real)) if real.flags & REAL_F_NODEST != 0 => {
            if real.flags & REAL_F_EXPIRE == 0 {
                // `expire_nodest_conn=0`: dropped, the connection's timer
                // left to run out (its last-seen time is not refreshed).
                count(counters::NODEST_DROP);
                return Verdict::DROP;
            }
            // `expire_nodest_conn=1` (IPVS since Linux 5.9): the
            // connection ends and the packet goes on without one.
            conntrack::end(&p.key, c);
            None
        }
        f => f,
    };
    let Some((c, real)) = found else {
        // As IPVS: only a SYN opens a TCP connection (or, for mh/sh, any
        // segment but a RST, `conntrack::sloppy`); anything else without
        // one goes to the director's stack (which resets it).
        if p.key.proto == PROTO_TCP && !syn && !conntrack::sloppy(p, svc) {
            count(counters::NO_CONN);
            return Verdict::PASS;
        }
        return Verdict::NEW;
    };
    conntrack::touch(c, p, true, now);
    let (real_idx, st) = unsafe { ((*c).real, core::ptr::read_volatile(&(*c).st)) };
    account(svc.id, real_idx, true, p.ip_len as u64, false);
    let cache = Cacheable {
        svc_id: svc.id,
        real: real_idx,
        ok: cacheable(p, st),
    };
    if !choose(&real, real_idx, cache) {
        return Verdict::DROP;
    }
    Verdict::SCHEDULED
}
