//! Userspace of lvs-xdp: the shared table store, the ipvsadm-compatible
//! front end, the loader with its connection sweeper, neighbour and
//! next-hop upkeep, the real servers' TUN decapsulation, VLAN
//! sub-interfaces, and the test bed that tests and benchmarks load the
//! director with.

pub mod adm;
pub mod bgp;
pub mod decap;
pub mod floodgen;
pub mod health;
pub mod hops;
pub mod keepalived;
pub mod life;
pub mod linkmacs;
pub mod loader;
pub mod metrics;
pub mod model;
pub mod neigh;
pub mod progtest;
pub mod rate;
pub mod rules;
pub mod schedtab;
pub mod stats;
pub mod sweeper;
pub mod sync;
pub mod tables;
pub mod testbed;
pub mod vlan;
pub mod warn;
