//! lvs-user's integration tests as one binary (one link, one process whose
//! test threads share the machine's cores), a module per feature. Tests
//! that build namespaces need root and are skipped, loudly, without it.
//!
//! `common` holds the shared set-ups: the namespace labs with `lvs load`
//! running (`common`), and the BPF_PROG_TEST_RUN fixture (`common::xdp`).

mod common;

mod adm_hostile;
mod apply;
mod capacity;
mod conns;
mod dr;
mod ecmp;
mod flood;
mod flood_live;
mod fuzz;
mod health;
mod hops;
mod hostile;
mod icmp;
mod ipv6;
mod jumbo;
mod kaconf;
mod life;
mod lvsadm;
mod metrics;
mod mixed;
mod nat;
mod package;
mod persist;
mod prog_run;
mod rate;
mod sched;
mod static_neigh;
mod sweep;
mod sync;
mod tunnel;
mod txn;
mod upgrade;
mod vrrp;
mod warn;
