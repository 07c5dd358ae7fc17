//! ICMP: errors about tracked connections, translated and forwarded
//! (`errors`), and the too-big errors the director itself sends
//! (`too_big`).

pub mod errors;
pub mod too_big;
