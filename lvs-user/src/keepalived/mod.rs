//! keepalived.conf's virtual servers (keepalived.conf(5), keepalived 2.x),
//! read into [`model::KaConfig`]: what `lvs load --config FILE` and
//! `lvs check --config FILE` apply to the tables and check.
//!
//! `model` holds the parsed configuration with keepalived's defaults
//! already filled in; the parser (in this directory) turns a file and its
//! `include`s into it, or into one `FILE:LINE: …` error. The health checker
//! (`crate::health`) reads only `model`.

pub mod model;
