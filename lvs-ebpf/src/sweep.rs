//! The sweeper's walk, in the kernel: `lvs load` runs `conn_sweep`
//! through BPF_PROG_TEST_RUN once per slice, and the program walks
//! `CONNS` or `EMBRYOS` with `bpf_for_each_map_elem` doing per entry what
//! the userspace walk did with two syscalls (and a third, `conn_expire`,
//! per expired entry): expired entries are claimed and removed through
//! `conntrack::kill` (atomic with the data path, as before), live ones are
//! counted per real server (`SWEEP_SEEN`), their services marked as having
//! a live connection (`SWEEP_SVCS::live`, for burying tombstones), and the
//! persistence templates of persistent services' connections kept in use.
//!
//! The helper walks the hash table bucket by bucket under RCU and lets the
//! callback delete the element it is called for. It always starts at the
//! first bucket and the program runs with preemption off, so a walk is cut
//! into slices (`SweepRun`): each skips what the slices before it did, a
//! callback that only counts, and stops after its budget of handled
//! entries. The cost figures behind the budget are in the sweeper
//! (`lvs-user/src/sweeper.rs`) and the README.

use aya_ebpf::{
    bindings::xdp_action::{XDP_DROP, XDP_PASS},
    cty::c_void,
    helpers::bpf_for_each_map_elem,
    programs::XdpContext,
};
use lvs_common::{
    Conn, FlowKey, PersistKey, ServiceEntry, SweepRun, SweepSeen, SweepSvc, CONN_F_ACTIVE,
    CONN_F_DEAD, CONN_F_EPOCH, GEN_CURRENT, SVC_F_PERSISTENT, SWEEP_EMBRYOS, SWEEP_F_START,
};

use crate::{
    atomic, clock, conntrack,
    maps::{CONNS, EMBRYOS, GENERATION, PERSIST, SERVICES, SWEEP_SEEN, SWEEP_SVCS},
    parse::ptr_at,
};

/// The callback's state, on the program's stack (the helper hands its
/// address to every call).
struct Walk {
    sweep: u64,
    now: u64,
    /// Callback index from which entries are handled (uncounted until
    /// `skip`), and the index at which they are counted.
    from: u64,
    skip: u64,
    budget: u64,
    fixed_epoch: u32,
    embryo: bool,
    // What the slice did.
    visited: u64,
    handled: u64,
    removed: u64,
    live: u64,
    expired: u64,
    kept: u64,
}

/// Input and output: a `SweepRun`, rewritten in place with the results.
/// XDP_PASS when it ran, XDP_DROP on a short frame.
#[inline(always)]
pub fn conn_sweep(ctx: &XdpContext) -> u32 {
    let Some(r) = ptr_at::<SweepRun>(ctx, 0) else {
        return XDP_DROP;
    };
    let mut run = unsafe { r.read_unaligned() };
    if run.flags & SWEEP_F_START != 0 {
        start(run.sweep);
    }
    let embryo = run.table == SWEEP_EMBRYOS;
    let mut w = Walk {
        sweep: run.sweep,
        now: clock::now(),
        from: run.skip.saturating_sub(run.overlap),
        skip: run.skip,
        budget: if run.budget == 0 {
            u64::MAX
        } else {
            run.budget
        },
        fixed_epoch: run.fixed_epoch & 1,
        embryo,
        visited: 0,
        handled: 0,
        removed: 0,
        live: 0,
        expired: 0,
        kept: 0,
    };
    let wp = &mut w as *mut Walk as *mut c_void;
    let cb = visit as *mut c_void;
    // SAFETY: the map statics are the maps (aya's map types are
    // transparent wrappers of the definition); `visit` has the helper's
    // callback signature and reads `wp` as the `Walk` it is.
    let n = unsafe {
        if embryo {
            bpf_for_each_map_elem(&EMBRYOS as *const _ as *mut c_void, cb, wp, 0)
        } else {
            bpf_for_each_map_elem(&CONNS as *const _ as *mut c_void, cb, wp, 0)
        }
    };
    if n < 0 {
        return XDP_DROP;
    }
    run.visited = w.visited;
    run.live = w.live;
    run.expired = w.expired;
    run.kept = w.kept;
    // Removed entries no longer take a place before the next slice's.
    run.next = w.visited - w.removed;
    // The budget is met only by a handled entry: anything else is the end.
    run.done = (w.handled < w.budget) as u32;
    unsafe { r.write_unaligned(run) };
    XDP_PASS
}

/// One entry of `CONNS` or `EMBRYOS`. 0: go on; 1: the slice's budget is
/// spent.
#[inline(never)]
extern "C" fn visit(
    _map: *mut c_void,
    key: *mut c_void,
    value: *mut c_void,
    w: *mut c_void,
) -> u64 {
    // SAFETY: the helper passes the key and value of a live element of the
    // map walked (the key is read-only) and the `Walk` given to it.
    let w = unsafe { &mut *(w as *mut Walk) };
    let i = w.visited;
    w.visited = i + 1;
    if i < w.from {
        return 0;
    }
    let key = unsafe { &*(key as *const FlowKey) };
    let c = value as *mut Conn;
    let conn = atomic::load(c as *const Conn);
    let counted = i >= w.skip;
    if counted {
        w.handled += 1;
    }
    if conn.st & CONN_F_DEAD != 0 {
        // Its claimant removes it: gone before the next slice.
        w.removed += 1;
    } else if conntrack::expired(&conn, w.now) {
        if conntrack::kill(key, c, w.embryo) {
            w.expired += 1;
        }
        w.removed += 1;
    } else {
        live(w, key, &conn, counted);
    }
    (w.handled >= w.budget) as u64
}

/// A live entry: counted (`counted`: not in the overlap) per real server,
/// its service marked, its template kept.
#[inline(always)]
fn live(w: &mut Walk, key: &FlowKey, conn: &Conn, counted: bool) {
    if counted {
        w.live += 1;
        if let Some(s) = SWEEP_SEEN.get_ptr_mut(conn.real) {
            // SAFETY: a value of SWEEP_SEEN, which only this program
            // (run by one sweeper at a time) writes.
            unsafe {
                if w.embryo {
                    if (conn.st & CONN_F_EPOCH != 0) as u32 == w.fixed_epoch {
                        (*s).embryo += 1;
                    }
                } else if conn.st & CONN_F_ACTIVE != 0 {
                    (*s).active += 1;
                } else {
                    (*s).inactive += 1;
                }
            }
        }
    }
    let Some(svc) = SWEEP_SVCS.get_ptr_mut(conn.svc_id) else {
        return;
    };
    // SAFETY: as above.
    let svc = unsafe { &mut *svc };
    svc.live = w.sweep;
    // Embryonic connections keep no template (as before: only `CONNS`'s).
    if w.embryo || svc.persistent == 0 || svc.loaded != w.sweep {
        return;
    }
    let pk = PersistKey::new(conn.svc_id, svc.family, &svc.netmask, &key.src);
    if let Some(t) = PERSIST.get_ptr_mut(&pk) {
        atomic::store(unsafe { &raw mut (*t).last_used }, w.now);
        w.kept += counted as u64;
    }
}

/// The sweep's first slice: the per-real counts start from zero, and each
/// service's persistence settings are taken from the published copy.
#[inline(always)]
fn start(sweep: u64) {
    let mut s = sweep;
    let sp = &mut s as *mut u64 as *mut c_void;
    // SAFETY: as in `conn_sweep`.
    unsafe {
        bpf_for_each_map_elem(
            &SWEEP_SEEN as *const _ as *mut c_void,
            zero as *mut c_void,
            sp,
            0,
        );
        bpf_for_each_map_elem(
            &SERVICES as *const _ as *mut c_void,
            load_service as *mut c_void,
            sp,
            0,
        );
    }
}

#[inline(never)]
extern "C" fn zero(
    _map: *mut c_void,
    _key: *mut c_void,
    value: *mut c_void,
    _c: *mut c_void,
) -> u64 {
    // SAFETY: a value of SWEEP_SEEN.
    unsafe { (value as *mut SweepSeen).write(SweepSeen::default()) };
    0
}

#[inline(never)]
extern "C" fn load_service(
    _map: *mut c_void,
    _key: *mut c_void,
    value: *mut c_void,
    sweep: *mut c_void,
) -> u64 {
    // SAFETY: a value of SERVICES and the sweep number `start` passed.
    let (e, sweep) = unsafe { (&*(value as *const ServiceEntry), *(sweep as *const u64)) };
    let g = GENERATION.get(GEN_CURRENT).copied().unwrap_or(0);
    let svc = e.view(g);
    if let Some(s) = SWEEP_SVCS.get_ptr_mut(svc.id) {
        // SAFETY: a value of SWEEP_SVCS; `live` is kept.
        unsafe {
            let live = (*s).live;
            s.write(SweepSvc {
                live,
                loaded: sweep,
                netmask: svc.netmask,
                persistent: (svc.flags & SVC_F_PERSISTENT != 0) as u8,
                family: svc.family,
                _pad: [0; 6],
            });
        }
    }
    0
}
