//! Addresses and ports as the maps hold them: raw network-order words.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use lvs_common::{ServiceKey, AF_INET, AF_INET6};

use crate::model::ServiceAddr;

/// Raw network-order words of an address, as the maps hold it.
pub fn addr_words(a: IpAddr) -> [u32; 4] {
    match a {
        IpAddr::V4(v4) => [u32::from_ne_bytes(v4.octets()), 0, 0, 0],
        IpAddr::V6(v6) => {
            let o = v6.octets();
            let w = |i: usize| u32::from_ne_bytes([o[i], o[i + 1], o[i + 2], o[i + 3]]);
            [w(0), w(4), w(8), w(12)]
        }
    }
}

pub fn words_addr(w: [u32; 4], family: u8) -> IpAddr {
    if family == AF_INET6 {
        let mut o = [0u8; 16];
        for i in 0..4 {
            o[i * 4..i * 4 + 4].copy_from_slice(&w[i].to_ne_bytes());
        }
        IpAddr::V6(Ipv6Addr::from(o))
    } else {
        IpAddr::V4(Ipv4Addr::from(w[0].to_ne_bytes()))
    }
}

/// Network-order port as the maps hold it.
pub fn port_raw(p: u16) -> u16 {
    u16::from_ne_bytes(p.to_be_bytes())
}

pub fn raw_port(p: u16) -> u16 {
    u16::from_be_bytes(p.to_ne_bytes())
}

pub(super) fn family_of(a: IpAddr) -> u8 {
    match a {
        IpAddr::V4(_) => AF_INET,
        IpAddr::V6(_) => AF_INET6,
    }
}

pub fn service_key(s: &ServiceAddr) -> ServiceKey {
    ServiceKey {
        addr: addr_words(s.addr),
        port: port_raw(s.port),
        proto: s.proto.code(),
        family: family_of(s.addr),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_round_trip_in_network_order() {
        let a: IpAddr = "192.168.47.128".parse().unwrap();
        let w = addr_words(a);
        assert_eq!(w[0].to_ne_bytes(), [192, 168, 47, 128]);
        assert_eq!(words_addr(w, AF_INET), a);
        let b: IpAddr = "fd00::1:2".parse().unwrap();
        assert_eq!(words_addr(addr_words(b), AF_INET6), b);
        assert_eq!(port_raw(80).to_ne_bytes(), [0, 80]);
        assert_eq!(raw_port(port_raw(8080)), 8080);
    }
}
