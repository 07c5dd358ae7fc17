//! Userspace of lvs-xdp: the shared table store, the ipvsadm-compatible
//! front end, and the loader.

pub mod adm;
pub mod model;
pub mod tables;
