//! ipvsadm-compatible command line (being written).
