//! Numbers, ports, addresses and timeouts, read with the C library's rules
//! that ipvsadm relies on (`strtol`, `atoi`, `inet_aton`, `strtoul`), so
//! that lvsadm accepts and refuses the same words.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::super::{Error, Resolve};
use super::fail;
use crate::model::Proto;

fn is_c_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

/// ipvsadm's `string_to_number`: the whole string is a base-10 `strtol`
/// number (leading blanks and a sign allowed) within `min..=max`.
pub fn string_to_number(s: &str, min: i64, max: i64) -> Option<i64> {
    let t = s.trim_start_matches(is_c_space);
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut n: i64 = 0;
    for b in digits.bytes() {
        n = n.checked_mul(10)?.checked_add((b - b'0') as i64)?;
    }
    let n = if neg { -n } else { n };
    (min..=max).contains(&n).then_some(n)
}

/// C's `atoi`: leading blanks, a sign, digits; 0 if none.
pub(super) fn c_atoi(s: &str) -> i64 {
    let t = s.trim_start_matches(is_c_space);
    let (neg, rest) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let mut n: i64 = 0;
    for b in rest.bytes().take_while(u8::is_ascii_digit) {
        n = n.saturating_mul(10).saturating_add((b - b'0') as i64);
    }
    if neg {
        -n
    } else {
        n
    }
}

/// glibc's `inet_aton`: one to four parts, each decimal, octal (leading
/// `0`) or hexadecimal (`0x`), the last filling the remaining bytes;
/// anything after a blank is ignored.
pub fn inet_aton(s: &str) -> Option<Ipv4Addr> {
    let s = s.split(is_c_space).next().unwrap_or("");
    let mut parts: Vec<u32> = Vec::with_capacity(4);
    let mut rest = s;
    loop {
        if !rest.starts_with(|c: char| c.is_ascii_digit()) {
            return None;
        }
        let (value, after) = c_strtoul(rest)?;
        rest = after;
        if let Some(r) = rest.strip_prefix('.') {
            if parts.len() >= 3 || value > 0xff {
                return None;
            }
            parts.push(value);
            rest = r;
        } else {
            if !rest.is_empty() {
                return None;
            }
            let max: u32 = match parts.len() {
                0 => u32::MAX,
                1 => 0xff_ffff,
                2 => 0xffff,
                _ => 0xff,
            };
            if value > max {
                return None;
            }
            let mut addr = value;
            for (i, p) in parts.iter().enumerate() {
                addr |= p << (24 - 8 * i);
            }
            return Some(Ipv4Addr::from(addr));
        }
    }
}

/// `strtoul(s, &end, 0)` on a string starting with a digit: the value (if
/// it fits 32 bits) and the rest.
fn c_strtoul(s: &str) -> Option<(u32, &str)> {
    let b = s.as_bytes();
    let (radix, start) =
        if b.len() > 2 && b[0] == b'0' && (b[1] | 0x20) == b'x' && b[2].is_ascii_hexdigit() {
            (16, 2)
        } else if b[0] == b'0' {
            (8, 0)
        } else {
            (10, 0)
        };
    let digits = s[start..]
        .bytes()
        .take_while(|c| (*c as char).is_digit(radix))
        .count();
    let mut v: u64 = 0;
    for c in s[start..start + digits].chars() {
        v = v * radix as u64 + c.to_digit(radix)? as u64;
        if v > u32::MAX as u64 {
            return None;
        }
    }
    Some((v as u32, &s[start + digits..]))
}

/// ipvsadm's `parse_service`: an address and maybe a port; `None` when the
/// text is no address (ipvsadm's `SERVICE_NONE`).
pub fn parse_service(
    buf: &str,
    proto: Option<Proto>,
    resolve: &dyn Resolve,
) -> Option<(IpAddr, Option<u16>)> {
    if buf.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (host, port) = if let Some(inner) = buf.strip_prefix('[') {
        let close = inner.find(']')?;
        let port = inner[close + 1..].strip_prefix(':')?;
        let host = &inner[..close];
        if let Ok(a) = host.parse::<Ipv6Addr>() {
            return Some((IpAddr::V6(a), Some(parse_port(port, proto, resolve)?)));
        }
        // ipvsadm then looks for the port inside the brackets only, so
        // `[1.2.3.4]:80` is the address without a port.
        match host.rfind(':') {
            Some(i) => (&host[..i], Some(&host[i + 1..])),
            None => (host, None),
        }
    } else {
        if let Ok(a) = buf.parse::<Ipv6Addr>() {
            return Some((IpAddr::V6(a), None));
        }
        match buf.rfind(':') {
            Some(i) => (&buf[..i], Some(&buf[i + 1..])),
            None => (buf, None),
        }
    };
    let addr = inet_aton(host).or_else(|| resolve.host(host))?;
    let port = match port {
        Some(p) => Some(parse_port(p, proto, resolve)?),
        None => None,
    };
    Some((IpAddr::V4(addr), port))
}

fn parse_port(p: &str, proto: Option<Proto>, resolve: &dyn Resolve) -> Option<u16> {
    if let Some(n) = string_to_number(p, 0, 65535) {
        return Some(n as u16);
    }
    resolve.service(p, proto?)
}

/// A timeout in seconds within `min..=max`, with ipvsadm's message.
pub(super) fn parse_timeout(s: &str, min: u32, max: u32) -> Result<u32, Error> {
    string_to_number(s, min as i64, max as i64)
        .map(|n| n as u32)
        .ok_or_else(|| fail(format!("invalid timeout value `{s}' specified")))
}
