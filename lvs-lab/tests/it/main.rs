//! lvs-lab's integration tests as one binary (one link, one process whose
//! threads share the machine's cores), a module per topic. Every test that
//! builds namespaces needs root and is skipped, loudly, without it.

mod lab;
mod lan;
mod seed;
