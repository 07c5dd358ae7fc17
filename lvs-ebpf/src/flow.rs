//! The established path: a packet of a tracked connection, client to VIP.

use lvs_common::{counters, Service, PROTO_TCP};

use crate::{
    clock, conntrack,
    maps::choose,
    parse::Packet,
    stats::{account, count},
    verdict::Verdict,
};

/// Client -> VIP of a tracked connection: on success its real server is
/// in `CHOSEN` and the verdict is `SCHEDULED`; `NEW` asks for scheduling.
#[inline(never)]
pub fn established(p: &Packet, svc: &Service) -> Verdict {
    let now = clock::now();
    let key = conntrack::flow_key(p);
    let syn = conntrack::is_syn(p);
    let Some((c, real)) = conntrack::lookup(&key, syn, now) else {
        // As IPVS: only a SYN opens a TCP connection; anything else
        // without one goes to the director's stack (which resets it).
        if p.proto == PROTO_TCP && !syn {
            count(counters::NO_CONN);
            return Verdict::PASS;
        }
        return Verdict::NEW;
    };
    conntrack::touch(c, p, true, now);
    account(svc.id, unsafe { (*c).real }, true, p.ip_len as u64, false);
    if !choose(&real) {
        return Verdict::DROP;
    }
    Verdict::SCHEDULED
}
