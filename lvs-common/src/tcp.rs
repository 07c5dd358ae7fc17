//! IPVS's TCP state machine (`ip_vs_proto_tcp.c`'s tables), shared by the
//! data path and host tests: [direction][event][state] -> state.

use crate::state;

/// Client -> server of a connection whose replies pass the director (NAT).
pub const DIR_INPUT: usize = 0;
/// Server -> client (NAT replies).
pub const DIR_OUTPUT: usize = 1;
/// Client -> server of a DR/TUN connection, whose replies bypass the
/// director (IPVS's "input only" table).
pub const DIR_INPUT_ONLY: usize = 2;

/// Events, as IPVS orders them.
pub const EV_SYN: usize = 0;
pub const EV_FIN: usize = 1;
pub const EV_ACK: usize = 2;
pub const EV_RST: usize = 3;

pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const ACK: u8 = 0x10;

const ES: u8 = state::ESTABLISHED;
const SS: u8 = state::SYN_SENT;
const SR: u8 = state::SYN_RECV;
const FW: u8 = state::FIN_WAIT;
const TW: u8 = state::TIME_WAIT;
const CL: u8 = state::CLOSE;
const CW: u8 = state::CLOSE_WAIT;
const LA: u8 = state::LAST_ACK;
const LI: u8 = state::LISTEN;

// Columns: NONE ES SS SR FW TW CL CW LA LI SA (IPVS's state order).
#[rustfmt::skip]
static TCP_STATES: [[[u8; 11]; 4]; 3] = [
    [
        /*syn*/ [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
        /*fin*/ [CL, CW, SS, TW, TW, TW, CL, CW, LA, LI, TW],
        /*ack*/ [CL, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
        /*rst*/ [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, SR],
    ],
    [
        /*syn*/ [SS, ES, SS, SR, SS, SS, SS, SS, SS, LI, SR],
        /*fin*/ [TW, FW, SS, TW, FW, TW, CL, TW, LA, LI, TW],
        /*ack*/ [ES, ES, SS, ES, FW, TW, CL, CW, LA, ES, ES],
        /*rst*/ [CL, CL, SS, CL, CL, TW, CL, CL, CL, CL, CL],
    ],
    [
        /*syn*/ [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
        /*fin*/ [CL, FW, SS, TW, FW, TW, CL, CW, LA, LI, TW],
        /*ack*/ [CL, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
        /*rst*/ [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL],
    ],
];

/// IPVS's event of a segment: RST, then SYN, then FIN, then ACK; `None`
/// for a segment with none of them.
#[inline(always)]
pub fn event(flags: u8) -> Option<usize> {
    if flags & RST != 0 {
        Some(EV_RST)
    } else if flags & SYN != 0 {
        Some(EV_SYN)
    } else if flags & FIN != 0 {
        Some(EV_FIN)
    } else if flags & ACK != 0 {
        Some(EV_ACK)
    } else {
        None
    }
}

/// The state after event `ev` in direction `dir` from state `cur`.
#[inline(always)]
pub fn next_state(dir: usize, ev: usize, cur: usize) -> Option<u8> {
    TCP_STATES
        .get(dir)
        .and_then(|d| d.get(ev))
        .and_then(|e| e.get(cur))
        .copied()
}

/// States after which a new SYN from the same client port starts a new
/// connection that is scheduled afresh (IPVS's conn_reuse_mode).
#[inline(always)]
pub fn closing(s: u8) -> bool {
    matches!(
        s,
        state::FIN_WAIT | state::TIME_WAIT | state::CLOSE | state::CLOSE_WAIT | state::LAST_ACK
    )
}

/// A TCP SYN that opens a connection (not a SYN-ACK).
#[inline(always)]
pub fn opens(flags: u8) -> bool {
    flags & (SYN | ACK | RST) == SYN
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Walks `segments` (direction, flags) from NONE.
    fn walk(segments: &[(usize, u8)]) -> u8 {
        segments.iter().fold(state::NONE, |s, &(dir, flags)| {
            event(flags).map_or(s, |ev| next_state(dir, ev, s as usize).unwrap())
        })
    }

    #[test]
    fn nat_handshake_and_close() {
        let open = [(DIR_INPUT, SYN), (DIR_OUTPUT, SYN | ACK), (DIR_INPUT, ACK)];
        assert_eq!(walk(&open[..1]), state::SYN_RECV);
        assert_eq!(walk(&open), state::ESTABLISHED);
        let mut s = open.to_vec();
        s.push((DIR_INPUT, FIN | ACK));
        assert_eq!(walk(&s), state::CLOSE_WAIT);
        s.push((DIR_OUTPUT, FIN | ACK));
        assert_eq!(walk(&s), state::TIME_WAIT);
        s.push((DIR_INPUT, ACK));
        assert_eq!(walk(&s), state::TIME_WAIT);
    }

    #[test]
    fn input_only_connections() {
        let s = [(DIR_INPUT_ONLY, SYN), (DIR_INPUT_ONLY, ACK)];
        assert_eq!(walk(&s), state::ESTABLISHED);
        let fin = [
            (DIR_INPUT_ONLY, SYN),
            (DIR_INPUT_ONLY, ACK),
            (DIR_INPUT_ONLY, FIN | ACK),
        ];
        assert_eq!(walk(&fin), state::FIN_WAIT);
        let rst = [
            (DIR_INPUT_ONLY, SYN),
            (DIR_INPUT_ONLY, ACK),
            (DIR_INPUT_ONLY, RST),
        ];
        assert_eq!(walk(&rst), state::CLOSE);
    }

    #[test]
    fn events_take_ipvs_precedence_and_only_a_bare_syn_opens() {
        assert_eq!(event(SYN | RST), Some(EV_RST));
        assert_eq!(event(SYN | FIN), Some(EV_SYN));
        assert_eq!(event(FIN | ACK), Some(EV_FIN));
        assert_eq!(event(0x08), None);
        assert!(opens(SYN) && !opens(SYN | ACK) && !opens(SYN | RST));
        assert!(closing(state::TIME_WAIT) && !closing(state::ESTABLISHED));
        // Acknowledgements never leave ESTABLISHED, in any direction.
        for dir in [DIR_INPUT, DIR_OUTPUT, DIR_INPUT_ONLY] {
            assert_eq!(
                next_state(dir, EV_ACK, state::ESTABLISHED as usize),
                Some(state::ESTABLISHED)
            );
        }
    }
}
