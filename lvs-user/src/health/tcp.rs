//! TCP_CHECK: the server is up when a connection is established.

use super::probe::Probe;
use crate::keepalived::model::Checker;

pub async fn check(c: &Checker) -> Probe {
    match super::connect::tcp(c).await {
        // Dropping the stream closes it, as keepalived does at once.
        Ok(_) => Probe::up("connected"),
        Err(e) => Probe::down(format!("connect: {e}")),
    }
}
