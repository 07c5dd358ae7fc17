//! keepalived.conf's value syntaxes: `<INTEGER>`, `<TIMER>` (seconds,
//! fractions to the microsecond), `<BOOL>`, addresses and ports, hex
//! strings. Each returns a message naming what was expected; the caller
//! puts the keyword and the line in front.

use std::net::IpAddr;
use std::time::Duration;

/// An unsigned decimal in `min..=max`.
pub fn uint(s: &str, min: u64, max: u64) -> Result<u64, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(if s.starts_with('-') {
            format!("'{s}' is negative")
        } else {
            format!("'{s}' is not a number")
        });
    }
    match s.parse::<u64>() {
        Ok(v) if (min..=max).contains(&v) => Ok(v),
        _ => Err(format!("'{s}' is outside {min}-{max}")),
    }
}

/// A `<TIMER>`: seconds with an optional fraction (`2.5`), at least
/// `min_us` microseconds, at most a day short of u32 seconds.
pub fn timer(s: &str, min_us: u64) -> Result<Duration, String> {
    let bad = || format!("'{s}' is not a time in seconds");
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() && frac.is_empty() {
        return Err(bad());
    }
    if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(if s.starts_with('-') {
            format!("'{s}' is negative")
        } else {
            bad()
        });
    }
    let secs: u64 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| bad())?
    };
    if secs > u64::from(u32::MAX) {
        return Err(format!("'{s}' is too long a time"));
    }
    // Microseconds: keepalived's resolution; digits beyond are dropped.
    let mut us: u64 = 0;
    for (i, d) in frac.bytes().take(6).enumerate() {
        us += u64::from(d - b'0') * 10u64.pow(5 - i as u32);
    }
    let d = Duration::from_secs(secs) + Duration::from_micros(us);
    if (d.as_micros() as u64) < min_us {
        return Err(if min_us == 1 {
            format!("'{s}' must be more than 0")
        } else {
            format!("'{s}' is too short")
        });
    }
    Ok(d)
}

/// keepalived's `<BOOL>`.
pub fn boolean(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" => Ok(true),
        "off" | "false" | "no" => Ok(false),
        _ => Err(format!("'{s}' is not one of on|off|true|false|yes|no")),
    }
}

/// An IPv4 or IPv6 address, numeric (as keepalived's `inet_pton`).
pub fn ip(s: &str) -> Result<IpAddr, String> {
    s.parse()
        .map_err(|_| format!("'{s}' is not an IPv4 or IPv6 address"))
}

/// A port number 0..=65535 (service names are not looked up).
pub fn port(s: &str) -> Result<u16, String> {
    uint(s, 0, 65535)
        .map(|p| p as u16)
        .map_err(|_| format!("'{s}' is not a port number (0-65535)"))
}

/// keepalived's free-form hex strings (`UDP_CHECK`'s `payload`): the
/// words joined, each word's digits taken two at a time, a lone last
/// digit of a word being a byte of its own (`Ab12f 3` = AB 12 0F 03).
pub fn hex(words: &[String]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for w in words {
        let digits: Vec<u8> = w
            .chars()
            .map(|c| {
                c.to_digit(16)
                    .map(|d| d as u8)
                    .ok_or_else(|| format!("'{w}' is not a hex string"))
            })
            .collect::<Result<_, _>>()?;
        for pair in digits.chunks(2) {
            out.push(match pair {
                [h, l] => h << 4 | l,
                [l] => *l,
                _ => unreachable!("chunks of two"),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_timers() {
        assert_eq!(uint("65535", 0, 65535), Ok(65535));
        assert!(uint("65536", 0, 65535)
            .unwrap_err()
            .contains("outside 0-65535"));
        assert!(uint("-1", 0, 65535).unwrap_err().contains("negative"));
        assert!(uint("1x", 0, 9).unwrap_err().contains("not a number"));
        assert!(uint("", 0, 9).is_err());
        assert_eq!(timer("3", 1), Ok(Duration::from_secs(3)));
        assert_eq!(timer("2.5", 1), Ok(Duration::from_millis(2500)));
        assert_eq!(timer(".000001", 1), Ok(Duration::from_micros(1)));
        assert_eq!(timer("0", 0), Ok(Duration::ZERO));
        assert!(timer("0", 1).is_err());
        assert!(timer("0.0000001", 1).is_err());
        assert!(timer("-1", 0).unwrap_err().contains("negative"));
        assert!(timer("1s", 0).is_err());
        assert!(timer(".", 0).is_err());
        assert!(timer("99999999999", 0).is_err());
    }

    #[test]
    fn bools_addresses_hex() {
        assert_eq!(boolean("Yes"), Ok(true));
        assert_eq!(boolean("off"), Ok(false));
        assert!(boolean("1").is_err());
        assert!(ip("10.0.0.1.5").is_err());
        assert!(ip("fd00::1").is_ok());
        assert!(port("http").is_err());
        let ws: Vec<String> = "Ab12f 3 456 546443123"
            .split(' ')
            .map(String::from)
            .collect();
        assert_eq!(
            hex(&ws).unwrap(),
            [0xab, 0x12, 0x0f, 0x03, 0x45, 0x06, 0x54, 0x64, 0x43, 0x12, 0x03]
        );
        assert!(hex(&["zz".to_string()]).is_err());
    }
}
