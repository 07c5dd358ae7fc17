//! The benchmark object of `cargo xtask bench`: the director's own code
//! (the `lvs_ebpf` library, built with the production object's settings)
//! inside a wrapper that restores the frame after each run, a wrapper
//! around nothing to subtract, and the cheapest XDP programs as baselines.
//! Loaded with the production pin directory, so it runs on the tables of
//! the director it measures.
#![cfg_attr(target_arch = "bpf", no_std, no_main)]
// Map keys are passed by reference on purpose: by value they would be
// copied onto the 512-byte BPF stack.
#![allow(clippy::needless_borrows_for_generic_args)]

#[cfg(not(target_arch = "bpf"))]
fn main() {}

#[cfg(target_arch = "bpf")]
mod prog {
    use aya_ebpf::{
        bindings::xdp_action,
        helpers::bpf_xdp_adjust_head,
        macros::{map, xdp},
        maps::{Array, HashMap, LruHashMap, PerCpuArray},
        programs::XdpContext,
    };
    use lvs_common::{Conn, FlowKey};
    use lvs_ebpf::parse::{frame_len, ptr_at};

    /// The director on a frame that is restored afterwards, so that
    /// BPF_PROG_TEST_RUN's repeats (which reuse one buffer) all see the
    /// same input.
    #[xdp]
    pub fn director_bench(ctx: XdpContext) -> u32 {
        if !save(&ctx) {
            return xdp_action::XDP_DROP;
        }
        let action = lvs_ebpf::director(&ctx);
        restore(&ctx);
        action
    }

    /// The same wrapper around nothing: the bench subtracts its cost.
    #[xdp]
    pub fn bench_overhead(ctx: XdpContext) -> u32 {
        if !save(&ctx) {
            return xdp_action::XDP_DROP;
        }
        restore(&ctx);
        xdp_action::XDP_PASS
    }

    #[xdp]
    pub fn bench_drop(_ctx: XdpContext) -> u32 {
        xdp_action::XDP_DROP
    }

    /// Swaps the Ethernet addresses and bounces the frame: the floor for any
    /// program that transmits.
    #[xdp]
    pub fn bench_swap(ctx: XdpContext) -> u32 {
        let start = ctx.data();
        if start + 12 > ctx.data_end() {
            return xdp_action::XDP_DROP;
        }
        let eth = start as *mut [u8; 12];
        unsafe {
            let mut m = *eth;
            m.rotate_left(6);
            *eth = m;
        }
        xdp_action::XDP_TX
    }

    /// Bounces the frame unchanged: the live section's generator, so that
    /// every frame reaches the program under test as it was built,
    /// addressed to that link's MAC (the director passes frames to other
    /// MACs; `bench_swap` as the generator alternated them between rounds).
    #[xdp]
    pub fn bench_tx(_ctx: XdpContext) -> u32 {
        xdp_action::XDP_TX
    }

    // Unit costs: one operation of the data path's kind each, measured
    // against XDP_DROP in the same run, so the director's figures can be
    // read as a sum of known parts.

    #[xdp]
    pub fn unit_ktime(_ctx: XdpContext) -> u32 {
        let t = unsafe { aya_ebpf::helpers::bpf_ktime_get_ns() };
        xdp_action::XDP_DROP + (t == 0) as u32
    }

    #[xdp]
    pub fn unit_ktime_coarse(_ctx: XdpContext) -> u32 {
        let t = unsafe { aya_ebpf::helpers::bpf_ktime_get_coarse_ns() };
        xdp_action::XDP_DROP + (t == 0) as u32
    }

    #[xdp]
    pub fn unit_jiffies(_ctx: XdpContext) -> u32 {
        let t = unsafe { aya_ebpf::helpers::bpf_jiffies64() };
        xdp_action::XDP_DROP + (t == 0) as u32
    }

    /// A 40-byte-key hash table the size of `SERVICES`, never filled.
    #[map]
    static UNIT_HASH: HashMap<FlowKey, u32> = HashMap::with_max_entries(1024, 0);

    /// A 40-byte-key LRU table like `CONNS`, for inserts and hits.
    #[map]
    static UNIT_LRU: LruHashMap<FlowKey, Conn> = LruHashMap::with_max_entries(65536, 0);

    /// A counter making every insert's key new.
    #[map]
    static UNIT_SEQ: PerCpuArray<u32> = PerCpuArray::with_max_entries(1, 0);

    fn unit_key(n: u32) -> FlowKey {
        FlowKey {
            src: [n, 0, 0, 0],
            dst: [0x8030_a8c0, 0, 0, 0],
            sport: 0x4000,
            dport: 0x5000,
            proto: 6,
            family: 2,
            _pad: [0; 2],
        }
    }

    /// A hash lookup that misses (SERVICES for a reply, REPLIES for
    /// traffic for nobody).
    #[xdp]
    pub fn unit_hash_miss(_ctx: XdpContext) -> u32 {
        let hit = unsafe { UNIT_HASH.get(&unit_key(1)) }.is_some();
        xdp_action::XDP_DROP + hit as u32
    }

    /// An LRU insert of a new key (once the table is full, each evicts the
    /// least recent one, as `CONNS` and `REPLIES` do under load).
    #[xdp]
    pub fn unit_lru_insert(_ctx: XdpContext) -> u32 {
        let Some(seq) = UNIT_SEQ.get_ptr_mut(0) else {
            return xdp_action::XDP_ABORTED;
        };
        let n = unsafe {
            *seq = (*seq).wrapping_add(1);
            *seq
        };
        let ok = UNIT_LRU.insert(&unit_key(n), &Conn::default(), 0).is_ok();
        xdp_action::XDP_DROP + !ok as u32
    }

    /// The same table with per-CPU LRU lists (`BPF_F_NO_COMMON_LRU`): no
    /// shared list lock, but each CPU may only use its share of the slots.
    #[map]
    static UNIT_LRU_PCPU: LruHashMap<FlowKey, Conn> =
        LruHashMap::with_max_entries(65536, aya_ebpf::bindings::BPF_F_NO_COMMON_LRU);

    /// A plain (preallocated) hash table of the same shape.
    #[map]
    static UNIT_HASH_BIG: HashMap<FlowKey, Conn> = HashMap::with_max_entries(65536, 0);

    /// The next key of the unit insert programs (a new one each run).
    #[inline(always)]
    fn next_key() -> Option<FlowKey> {
        let seq = UNIT_SEQ.get_ptr_mut(0)?;
        let n = unsafe {
            *seq = (*seq).wrapping_add(1);
            *seq
        };
        Some(unit_key(n))
    }

    /// An LRU insert of a new key into a table with room (removed again
    /// at once, so the table never fills): what a new connection costs
    /// when the table is not under pressure, plus a delete.
    #[xdp]
    pub fn unit_lru_insert_room(_ctx: XdpContext) -> u32 {
        let Some(k) = next_key() else {
            return xdp_action::XDP_ABORTED;
        };
        let ok = UNIT_LRU.insert(&k, &Conn::default(), 0).is_ok();
        let _ = UNIT_LRU.remove(&k);
        xdp_action::XDP_DROP + !ok as u32
    }

    /// The same with per-CPU LRU lists.
    #[xdp]
    pub fn unit_lru_pcpu_insert_room(_ctx: XdpContext) -> u32 {
        let Some(k) = next_key() else {
            return xdp_action::XDP_ABORTED;
        };
        let ok = UNIT_LRU_PCPU.insert(&k, &Conn::default(), 0).is_ok();
        let _ = UNIT_LRU_PCPU.remove(&k);
        xdp_action::XDP_DROP + !ok as u32
    }

    /// The same into a plain hash table.
    #[xdp]
    pub fn unit_hash_insert_room(_ctx: XdpContext) -> u32 {
        let Some(k) = next_key() else {
            return xdp_action::XDP_ABORTED;
        };
        let ok = UNIT_HASH_BIG.insert(&k, &Conn::default(), 0).is_ok();
        let _ = UNIT_HASH_BIG.remove(&k);
        xdp_action::XDP_DROP + !ok as u32
    }

    /// An LRU lookup that hits (`CONNS` for an established packet on the
    /// shared path).
    #[xdp]
    pub fn unit_lru_hit(_ctx: XdpContext) -> u32 {
        let key = unit_key(0);
        if unsafe { UNIT_LRU.get(&key) }.is_none() {
            let _ = UNIT_LRU.insert(&key, &Conn::default(), 0);
        }
        xdp_action::XDP_DROP
    }

    /// A cache line of the memory-latency walk: the index of the next.
    #[repr(C)]
    pub struct Line {
        next: u32,
        _rest: [u32; 15],
    }

    /// Lines of the walk: as many as `CONNS` holds at the scale section's
    /// largest size, 64 MiB, far beyond the CPU caches.
    const WALK_LINES: u32 = 1 << 20;
    /// Dependent loads per run of `unit_walk`.
    pub const WALK_STEPS: u32 = 16;

    #[map]
    static UNIT_WALK: Array<Line> = Array::with_max_entries(WALK_LINES, 0);

    /// Where each CPU's walk goes on from.
    #[map]
    static UNIT_WALK_AT: PerCpuArray<u32> = PerCpuArray::with_max_entries(1, 0);

    extern "C" fn walk_fill_step(i: u32, _ctx: *mut core::ffi::c_void) -> i64 {
        // A full-period LCG modulo 2^20 (odd increment, multiplier 1 mod
        // 4): one cycle through every line, in an order no prefetcher
        // follows.
        if let Some(l) = UNIT_WALK.get_ptr_mut(i) {
            unsafe { (*l).next = i.wrapping_mul(0x9e37_79b1).wrapping_add(1) & (WALK_LINES - 1) };
        }
        0
    }

    /// Links the walk's lines into one cycle (run once before `unit_walk`).
    #[xdp]
    pub fn unit_walk_fill(_ctx: XdpContext) -> u32 {
        unsafe {
            aya_ebpf::helpers::bpf_loop(
                WALK_LINES,
                walk_fill_step as *mut core::ffi::c_void,
                core::ptr::null_mut(),
                0,
            )
        };
        xdp_action::XDP_DROP
    }

    /// `WALK_STEPS` dependent loads through the cycle: each the latency of
    /// a load that misses every cache, as a random flow's table entry does.
    #[xdp]
    pub fn unit_walk(_ctx: XdpContext) -> u32 {
        let Some(at) = UNIT_WALK_AT.get_ptr_mut(0) else {
            return xdp_action::XDP_ABORTED;
        };
        let mut i = unsafe { *at };
        for _ in 0..WALK_STEPS {
            match UNIT_WALK.get(i) {
                Some(l) => i = unsafe { core::ptr::read_volatile(&l.next) },
                None => return xdp_action::XDP_ABORTED,
            }
        }
        unsafe { *at = i };
        xdp_action::XDP_DROP
    }

    /// Words restored after each run: the bench's frames are 64-byte
    /// IPv4 frames, and every header the director rewrites in them
    /// (Ethernet, IPv4, TCP; a tunnel header is taken off first) lies in
    /// the first 64 bytes.
    const WORDS: usize = 8;

    /// Per-CPU scratch: the saved head (as u64 words, so saving and
    /// restoring are a dozen loads and stores, not a byte loop) and the
    /// frame length.
    #[repr(C)]
    pub struct Scratch {
        head: [u64; WORDS],
        len: u64,
    }

    #[map]
    static BENCH_SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

    /// Copies `WORDS` words.
    #[inline(always)]
    unsafe fn copy_words(from: *const u64, to: *mut u64) {
        for i in 0..WORDS {
            unsafe { to.add(i).write_volatile(from.add(i).read_volatile()) };
        }
    }

    #[inline(always)]
    fn save(ctx: &XdpContext) -> bool {
        let (Some(buf), Some(head)) =
            (BENCH_SCRATCH.get_ptr_mut(0), ptr_at::<[u64; WORDS]>(ctx, 0))
        else {
            return false;
        };
        // SAFETY: BPF_PROG_TEST_RUN puts the frame 8-aligned (after its
        // 256-byte headroom), so whole words may be loaded. Volatile word
        // copies: a plain 64-byte copy becomes a call to `memcpy`, a byte
        // loop on BPF.
        unsafe {
            copy_words(head as *const u64, &raw mut (*buf).head as *mut u64);
            (*buf).len = frame_len(ctx) as u64;
        }
        true
    }

    #[inline(always)]
    fn restore(ctx: &XdpContext) {
        let Some(buf) = BENCH_SCRATCH.get_ptr_mut(0) else {
            return;
        };
        let len = unsafe { (*buf).len } as usize;
        // Undo an encapsulation (adjust_head by a negative delta).
        let now = frame_len(ctx);
        if now > len && unsafe { bpf_xdp_adjust_head(ctx.ctx, (now - len) as i32) } != 0 {
            return;
        }
        if let Some(head) = ptr_at::<[u64; WORDS]>(ctx, 0) {
            // SAFETY: as in `save`.
            unsafe { copy_words(&raw const (*buf).head as *const u64, head as *mut u64) };
        }
    }

    #[panic_handler]
    fn panic(_info: &core::panic::PanicInfo) -> ! {
        loop {}
    }
}
