//! Access to shared map values (values other CPUs read and write at the
//! same time): atomic adds and compare-and-swap, and whole-field loads and
//! stores (`load`, `store`) through raw field pointers, so that no Rust
//! reference to memory another CPU changes is ever held.
//!
//! Atomic adds on map values. The BPF target has no compare-and-swap, so
//! core's `AtomicU64::fetch_add` is unavailable; the intrinsic lowers to
//! BPF's own atomic add instruction.
//!
//! The ordering must be SeqCst: LLVM's BPF backend lowers a relaxed
//! fetch-add to the legacy XADD, which does not return the old value (the
//! caller then reads back its own addend). SeqCst gives `atomic_fetch_add`.

use core::intrinsics::{atomic_cxchg, atomic_xadd, AtomicOrdering};

/// Adds `v` to `*p` atomically and returns the previous value.
#[inline(always)]
pub fn fetch_add(p: *mut u64, v: u64) -> u64 {
    // SAFETY: callers pass pointers to live map values.
    unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::SeqCst }>(p, v) }
}

/// Compare-and-swap of a 32-bit word; true when `*p` was `old` and is now
/// `new`.
#[inline(always)]
pub fn cas32(p: *mut u32, old: u32, new: u32) -> bool {
    // SAFETY: callers pass pointers to live map values.
    unsafe {
        atomic_cxchg::<u32, { AtomicOrdering::SeqCst }, { AtomicOrdering::SeqCst }>(p, old, new).1
    }
}

/// Loads one field of a shared map value, whole, as it is now.
#[inline(always)]
pub fn load<T: Copy>(p: *const T) -> T {
    // SAFETY: callers pass field pointers of live map values (valid for the
    // whole run); volatile keeps the load single and in place.
    unsafe { core::ptr::read_volatile(p) }
}

/// Stores one field of a shared map value, whole. A racing store of
/// another CPU may win; callers use it only where either value is right.
#[inline(always)]
pub fn store<T>(p: *mut T, v: T) {
    // SAFETY: as `load`.
    unsafe { core::ptr::write_volatile(p, v) }
}
