//! The checker blocks of a `real_server`: `TCP_CHECK`, `HTTP_GET`,
//! `SSL_GET`, `MISC_CHECK`, `UDP_CHECK`, `DNS_CHECK`; keepalived's other
//! checkers are refused by name.
//!
//! Per-checker defaults (keepalived.conf(5)): `retry` 1, but 3 for
//! DNS_CHECK and 0 for MISC_CHECK; `delay_before_retry` 3 s for HTTP_GET
//! and SSL_GET, the delay_loop for DNS_CHECK, 1 s otherwise; `warmup` up
//! to the delay_loop; `misc_timeout` the delay_loop. A value set on the
//! checker wins over the real server's, which wins over the virtual
//! server's.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::block::Stmt;
use super::keywords::{bad, flag, ip, one, opt_bool, origin, uint, unknown, Common};
use super::model::{CheckKind, Checker, DnsCheck, HttpCheck, MiscCheck, UdpCheck, Url};
use super::values;
use super::ConfigError;

/// A checker as written, before the real server's values fill it in.
pub struct RawChecker {
    stmt: Stmt,
    kind: CheckKind,
    connect_ip: Option<IpAddr>,
    connect_port: Option<u16>,
    bind: Option<IpAddr>,
    bind_port: Option<u16>,
    common: Common,
    /// `misc_timeout` given (else the delay_loop).
    misc_timeout: Option<Duration>,
    /// DNS_CHECK's `name` seen (keepalived refuses a second).
    dns_name_given: bool,
}

/// The checker `s` is, or None if `s` is no checker keyword.
pub fn parse(s: &Stmt) -> Result<Option<RawChecker>, ConfigError> {
    let kind = match s.key.as_str() {
        "TCP_CHECK" => CheckKind::Tcp,
        "HTTP_GET" | "SSL_GET" => CheckKind::Http(HttpCheck {
            tls: s.key == "SSL_GET",
            virtualhost: None,
            urls: Vec::new(),
            http_protocol: "1.0".into(),
            enable_sni: false,
        }),
        "MISC_CHECK" => CheckKind::Misc(MiscCheck {
            path: String::new(),
            timeout: Duration::ZERO,
            dynamic: false,
            user: None,
        }),
        "UDP_CHECK" => CheckKind::Udp(UdpCheck {
            payload: Vec::new(),
            require_reply: None,
            min_reply_length: 0,
            max_reply_length: 255,
        }),
        "DNS_CHECK" => CheckKind::Dns(DnsCheck {
            qtype: "SOA".into(),
            name: ".".into(),
        }),
        "SMTP_CHECK" | "PING_CHECK" | "BFD_CHECK" | "FILE_CHECK" => {
            return Err(bad(s, "this checker is not implemented by lvs-xdp".into()))
        }
        _ => return Ok(None),
    };
    if !s.args.is_empty() {
        return Err(bad(s, "takes no value before its block".into()));
    }
    let block = s
        .block
        .as_deref()
        .ok_or_else(|| bad(s, "needs a block { … }".into()))?;
    let mut c = RawChecker {
        stmt: Stmt {
            pos: s.pos.clone(),
            key: s.key.clone(),
            args: Vec::new(),
            block: None,
        },
        kind,
        connect_ip: None,
        connect_port: None,
        bind: None,
        bind_port: None,
        common: Common::default(),
        misc_timeout: None,
        dns_name_given: false,
    };
    for k in block {
        c.keyword(k)?;
    }
    c.finish(s)?;
    Ok(Some(c))
}

impl RawChecker {
    fn keyword(&mut self, k: &Stmt) -> Result<(), ConfigError> {
        let is_misc = matches!(self.kind, CheckKind::Misc(_));
        // MISC_CHECK has no connection: only the timing keywords.
        let connection = !is_misc;
        match k.key.as_str() {
            "delay_loop" | "delay_before_retry" | "warmup" => {
                self.common.take(k)?;
                return Ok(());
            }
            "retry" => {
                // A checker may ask for no retries at all.
                self.common.retry = Some(uint(k, 0, u64::from(u32::MAX))? as u32);
                return Ok(());
            }
            "alpha" => {
                self.common.alpha = Some(opt_bool(k)?);
                return Ok(());
            }
            "connect_timeout" if connection => {
                self.common.take(k)?;
                return Ok(());
            }
            "connect_ip" if connection => {
                self.connect_ip = Some(ip(k)?);
                return Ok(());
            }
            "connect_port" if connection => {
                self.connect_port = Some(nonzero_port(k)?);
                return Ok(());
            }
            "bindto" if connection => {
                self.bind = Some(ip(k)?);
                return Ok(());
            }
            "bind_port" if connection => {
                self.bind_port = Some(nonzero_port(k)?);
                return Ok(());
            }
            "bind_if" | "fwmark" | "log_all_failures"
                if connection || k.key == "log_all_failures" =>
            {
                return Err(bad(k, "is not supported by lvs-xdp's checker".into()))
            }
            _ => {}
        }
        let within = self.stmt.key.clone();
        match &mut self.kind {
            CheckKind::Tcp => return Err(unknown(k, &k.key, Some(&within))),
            CheckKind::Http(h) => match k.key.as_str() {
                "url" => h.urls.push(url(k)?),
                "virtualhost" => h.virtualhost = Some(one(k)?.to_string()),
                "http_protocol" => {
                    let v = one(k)?;
                    h.http_protocol = match v {
                        "1.0" | "1.1" => v.to_string(),
                        "1.0C" | "1.0c" => "1.0C".to_string(),
                        _ => return Err(bad(k, format!("'{v}' is not 1.0, 1.0C or 1.1"))),
                    };
                }
                // keepalived takes it in HTTP_GET too, where it does nothing.
                "enable_sni" => h.enable_sni = opt_bool(k)?,
                "fast_recovery" => {
                    return Err(bad(k, "is not supported by lvs-xdp's checker".into()))
                }
                _ => return Err(unknown(k, &k.key, Some(&within))),
            },
            CheckKind::Misc(m) => match k.key.as_str() {
                "misc_path" => {
                    crate::keepalived::keywords::no_block(k)?;
                    m.path = command_line(k)?;
                }
                "misc_timeout" => {
                    self.misc_timeout = Some(Duration::from_secs(uint(
                        k,
                        0,
                        u64::from(u32::MAX) / 1_000_000,
                    )?))
                }
                "misc_dynamic" => m.dynamic = flag(k)?,
                "user" => {
                    return Err(bad(
                        k,
                        "running MISC_CHECK as another user is not supported by lvs-xdp".into(),
                    ))
                }
                _ => return Err(unknown(k, &k.key, Some(&within))),
            },
            CheckKind::Udp(u) => match k.key.as_str() {
                "payload" => {
                    crate::keepalived::keywords::no_block(k)?;
                    u.payload = values::hex(&k.args).map_err(|e| bad(k, e))?;
                    if u.payload.is_empty() {
                        return Err(bad(k, "needs a hex string".into()));
                    }
                }
                "require_reply" => {
                    crate::keepalived::keywords::no_block(k)?;
                    if k.args.iter().any(|a| a.contains(['x', 'X'])) {
                        return Err(bad(
                            k,
                            "ignored nibbles (x) in require_reply are not supported by lvs-xdp"
                                .into(),
                        ));
                    }
                    u.require_reply = Some(values::hex(&k.args).map_err(|e| bad(k, e))?);
                }
                "min_reply_length" => u.min_reply_length = uint(k, 0, 65535)? as u32,
                "max_reply_length" => u.max_reply_length = uint(k, 0, 65535)? as u32,
                _ => return Err(unknown(k, &k.key, Some(&within))),
            },
            CheckKind::Dns(d) => match k.key.as_str() {
                "type" => {
                    let t = one(k)?.to_ascii_uppercase();
                    if !["A", "NS", "CNAME", "SOA", "MX", "TXT", "AAAA"].contains(&t.as_str()) {
                        return Err(bad(
                            k,
                            format!("unknown query type '{t}' (A, NS, CNAME, SOA, MX, TXT, AAAA)"),
                        ));
                    }
                    d.qtype = t;
                }
                "name" => {
                    if self.dns_name_given {
                        // keepalived: "DNS_CHECK name already specified".
                        return Err(bad(k, "is given twice".into()));
                    }
                    self.dns_name_given = true;
                    let n = one(k)?;
                    dns_name(n).map_err(|m| bad(k, m))?;
                    d.name = n.to_string();
                }
                _ => return Err(unknown(k, &k.key, Some(&within))),
            },
        }
        Ok(())
    }

    /// What the block as a whole must have.
    fn finish(&self, s: &Stmt) -> Result<(), ConfigError> {
        match &self.kind {
            CheckKind::Http(h) if h.urls.is_empty() => {
                Err(bad(s, "needs at least one url { path … }".into()))
            }
            CheckKind::Misc(m) if m.path.is_empty() => Err(bad(s, "needs a misc_path".into())),
            CheckKind::Udp(u) if u.min_reply_length > u.max_reply_length => {
                Err(bad(s, "min_reply_length is above max_reply_length".into()))
            }
            _ => Ok(()),
        }
    }

    /// The checker with every value filled in from the real server
    /// (`rs`, already filled from the virtual server) and the defaults.
    pub fn resolve(self, addr: SocketAddr, rs: &Common) -> Result<Checker, ConfigError> {
        let c = self.common.or(rs);
        let delay_loop = c.delay_loop.unwrap_or(super::keywords::DEFAULT_DELAY_LOOP);
        let (default_retry, default_dbr) = match self.kind {
            CheckKind::Http(_) => (1, Some(Duration::from_secs(3))),
            CheckKind::Dns(_) => (3, None),
            CheckKind::Misc(_) => (0, Some(Duration::from_secs(1))),
            CheckKind::Tcp | CheckKind::Udp(_) => (1, Some(Duration::from_secs(1))),
        };
        let mut kind = self.kind;
        match &mut kind {
            CheckKind::Http(h) => {
                if h.virtualhost.is_none() {
                    h.virtualhost = c.virtualhost.clone();
                }
                for u in &mut h.urls {
                    if u.virtualhost.is_none() {
                        u.virtualhost = h.virtualhost.clone();
                    }
                }
            }
            CheckKind::Misc(m) => {
                m.timeout = self
                    .misc_timeout
                    .filter(|t| !t.is_zero())
                    .unwrap_or(delay_loop)
            }
            _ => {}
        }
        let target = self.connect_ip.unwrap_or(addr.ip());
        if self.bind.is_some_and(|b| b.is_ipv4() != target.is_ipv4()) {
            return Err(bad(
                &self.stmt,
                format!("bindto is not of the address family of {target}, which it connects to"),
            ));
        }
        Ok(Checker {
            origin: origin(&self.stmt),
            kind,
            connect: SocketAddr::new(target, self.connect_port.unwrap_or(addr.port())),
            bind: self.bind,
            bind_port: self.bind_port,
            connect_timeout: c
                .connect_timeout
                .unwrap_or(super::keywords::DEFAULT_CONNECT_TIMEOUT),
            retry: c.retry.unwrap_or(default_retry),
            delay_before_retry: c.delay_before_retry.or(default_dbr).unwrap_or(delay_loop),
            delay_loop,
            warmup: c.warmup.unwrap_or(delay_loop),
            alpha: c.alpha.unwrap_or(false),
        })
    }
}

/// A DNS name to query: `.`, or labels of 1–63 characters (at most 253
/// in all), with or without the final dot.
fn dns_name(n: &str) -> Result<(), String> {
    if n == "." {
        return Ok(());
    }
    let body = n.strip_suffix('.').unwrap_or(n);
    if body.is_empty() || body.len() > 253 {
        return Err(format!("'{n}' is not a DNS name"));
    }
    match body.split('.').find(|l| l.is_empty() || l.len() > 63) {
        Some("") => Err(format!("'{n}' has an empty label")),
        Some(l) => Err(format!(
            "'{n}' has a label longer than 63 characters ({})",
            l.len()
        )),
        None => Ok(()),
    }
}

/// `connect_port` / `bind_port`: 1–65535, as keepalived.
fn nonzero_port(k: &Stmt) -> Result<u16, ConfigError> {
    uint(k, 1, 65535).map(|p| p as u16)
}

/// `misc_path`'s command line: one quoted word as it is, several words
/// joined with blanks (a word with blanks in single quotes, as keepalived
/// reads the script's arguments).
fn command_line(k: &Stmt) -> Result<String, ConfigError> {
    if k.args.is_empty() || k.args.iter().all(|a| a.trim().is_empty()) {
        return Err(bad(k, "needs a command".into()));
    }
    Ok(k.args
        .iter()
        .map(|a| {
            if k.args.len() > 1 && a.contains([' ', '\t']) {
                format!("'{a}'")
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" "))
}

/// `url { path …; digest …; status_code …; virtualhost … }`.
fn url(s: &Stmt) -> Result<Url, ConfigError> {
    if !s.args.is_empty() {
        return Err(bad(s, "takes no value before its block".into()));
    }
    let block = s
        .block
        .as_deref()
        .ok_or_else(|| bad(s, "needs a block { … }".into()))?;
    let mut u = Url {
        path: String::new(),
        status_codes: Vec::new(),
        digest: None,
        virtualhost: None,
    };
    for k in block {
        match k.key.as_str() {
            "path" => u.path = one(k)?.to_string(),
            "digest" => {
                if u.digest.is_some() {
                    // keepalived: "Digest … is a duplicate".
                    return Err(bad(k, "is given twice in one url".into()));
                }
                let d = one(k)?.to_ascii_lowercase();
                if d.len() != 32 || !d.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(bad(
                        k,
                        format!("'{d}' is not an MD5 digest (32 hex digits)"),
                    ));
                }
                u.digest = Some(d);
            }
            "status_code" => {
                // Alone, it leaves the default (keepalived takes it so).
                crate::keepalived::keywords::no_block(k)?;
                for a in &k.args {
                    let (lo, hi) = a.split_once('-').unwrap_or((a, a));
                    let code = |v: &str| {
                        values::uint(v, 100, 599)
                            .map(|c| c as u16)
                            .map_err(|m| bad(k, m))
                    };
                    let (lo, hi) = (code(lo)?, code(hi)?);
                    if lo > hi {
                        return Err(bad(k, format!("'{a}' is an empty range")));
                    }
                    u.status_codes.push(lo..=hi);
                }
            }
            "virtualhost" => u.virtualhost = Some(one(k)?.to_string()),
            "regex" | "regex_no_match" | "regex_options" | "regex_stack" | "regex_min_offset"
            | "regex_max_offset" => {
                return Err(bad(k, "is not supported by lvs-xdp's checker".into()))
            }
            other => return Err(unknown(k, other, Some("url"))),
        }
    }
    if u.path.is_empty() {
        return Err(bad(s, "needs a path".into()));
    }
    if u.status_codes.is_empty() {
        u.status_codes.push(200..=299);
    }
    Ok(u)
}
