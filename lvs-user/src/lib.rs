//! Userspace of lvs-xdp: the shared table store, the ipvsadm-compatible
//! front end, and the loader.

pub mod adm;
pub mod decap;
pub mod loader;
pub mod model;
pub mod neigh;
pub mod progtest;
pub mod schedtab;
pub mod stats;
pub mod sweeper;
pub mod tables;
pub mod testbed;
