//! A sync daemon's configuration as `lvsadm --start-daemon` gives it, and
//! as the kernel completes it (`start_sync_thread` in ip_vs_sync.c):
//! group 224.0.0.81, port 8848, TTL 1 by default; the message length
//! limit from the link's MTU (the master assumes 1500, the backup takes
//! the link's, at least 1500) less the IP and UDP headers, or the given
//! one clamped to [1 (master) / 1024 (backup), 65535 - headers].

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr},
    str::FromStr,
};

use anyhow::{anyhow, bail, Result};

/// `IP_VS_SYNC_GROUP`, `IP_VS_SYNC_PORT`.
pub const DEFAULT_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 81);
pub const DEFAULT_PORT: u16 = 8848;
/// The sync ID without `--syncid`: ipvsadm zeroes its `ipvs_daemon_t`
/// and sends 0 (its usage text says 255, its code does not set it); a
/// backup of sync ID 0 takes every sync ID, as the kernel's does.
pub const DEFAULT_SYNCID: u8 = 0;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    Master,
    Backup,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Master => "master",
            Role::Backup => "backup",
        }
    }
}

impl FromStr for Role {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Role> {
        match s {
            "master" => Ok(Role::Master),
            "backup" => Ok(Role::Backup),
            _ => bail!("bad role {s:?}"),
        }
    }
}

/// What `--start-daemon` was given; `None`/0 fields take the defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DaemonConfig {
    pub role: Role,
    pub ifname: String,
    pub syncid: u8,
    pub maxlen: Option<u32>,
    pub group: Option<IpAddr>,
    pub port: Option<u16>,
    pub ttl: Option<u8>,
}

/// A running daemon's configuration, every field resolved (what the
/// kernel reports and `-L --daemon` prints).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Effective {
    pub role: Role,
    pub ifname: String,
    pub syncid: u8,
    pub maxlen: u32,
    pub group: IpAddr,
    pub port: u16,
    pub ttl: u8,
}

impl DaemonConfig {
    /// Completes the configuration as the kernel does, for a link of MTU
    /// `mtu`.
    pub fn resolve(&self, mtu: u32) -> Effective {
        let group = self.group.unwrap_or(IpAddr::V4(DEFAULT_GROUP));
        let hlen = if group.is_ipv6() { 40 + 8 } else { 20 + 8 };
        let (mtu, min) = match self.role {
            Role::Backup => (mtu.clamp(1500, 65535), 1024),
            Role::Master => (1500, 1),
        };
        let maxlen = match self.maxlen {
            Some(n) if n > 0 => n.clamp(min, 65535 - hlen),
            _ => mtu - hlen,
        };
        Effective {
            role: self.role,
            ifname: self.ifname.clone(),
            syncid: self.syncid,
            maxlen,
            group,
            port: self.port.filter(|p| *p != 0).unwrap_or(DEFAULT_PORT),
            ttl: self.ttl.filter(|t| *t != 0).unwrap_or(1),
        }
    }

    /// The control channel's encoding: `key=value` words.
    pub fn to_words(&self) -> String {
        let mut s = format!(
            "role={} if={} syncid={}",
            self.role.name(),
            self.ifname,
            self.syncid
        );
        if let Some(m) = self.maxlen {
            s += &format!(" maxlen={m}");
        }
        if let Some(g) = self.group {
            s += &format!(" group={g}");
        }
        if let Some(p) = self.port {
            s += &format!(" port={p}");
        }
        if let Some(t) = self.ttl {
            s += &format!(" ttl={t}");
        }
        s
    }

    pub fn from_words(s: &str) -> Result<DaemonConfig> {
        let mut c = DaemonConfig {
            role: Role::Master,
            ifname: String::new(),
            syncid: DEFAULT_SYNCID,
            maxlen: None,
            group: None,
            port: None,
            ttl: None,
        };
        let mut role = None;
        for w in s.split_whitespace() {
            let (k, v) = w.split_once('=').ok_or_else(|| anyhow!("bad word {w:?}"))?;
            match k {
                "role" => role = Some(v.parse()?),
                "if" => c.ifname = v.to_string(),
                "syncid" => c.syncid = v.parse()?,
                "maxlen" => c.maxlen = Some(v.parse()?),
                "group" => c.group = Some(v.parse()?),
                "port" => c.port = Some(v.parse()?),
                "ttl" => c.ttl = Some(v.parse()?),
                _ => bail!("unknown key {k:?}"),
            }
        }
        c.role = role.ok_or_else(|| anyhow!("no role"))?;
        Ok(c)
    }
}

impl Effective {
    pub fn to_words(&self) -> String {
        format!(
            "role={} if={} syncid={} maxlen={} group={} port={} ttl={}",
            self.role.name(),
            self.ifname,
            self.syncid,
            self.maxlen,
            self.group,
            self.port,
            self.ttl
        )
    }

    pub fn from_words(s: &str) -> Result<Effective> {
        let c = DaemonConfig::from_words(s)?;
        let missing = || anyhow!("incomplete daemon status {s:?}");
        Ok(Effective {
            role: c.role,
            ifname: c.ifname,
            syncid: c.syncid,
            maxlen: c.maxlen.ok_or_else(missing)?,
            group: c.group.ok_or_else(missing)?,
            port: c.port.ok_or_else(missing)?,
            ttl: c.ttl.ok_or_else(missing)?,
        })
    }
}

/// ipvsadm 1.31's `-L --daemon` line: `%s sync daemon (mcast=%s,
/// syncid=%d` then `, maxlen=%u`, `, group=%s`, `, port=%u`, `, ttl=%u`
/// for each value the kernel reports non-zero (it reports all of them once
/// it completed the configuration), then `)`.
impl fmt::Display for Effective {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} sync daemon (mcast={}, syncid={}",
            self.role.name(),
            self.ifname,
            self.syncid
        )?;
        if self.maxlen != 0 {
            write!(f, ", maxlen={}", self.maxlen)?;
        }
        write!(f, ", group={}", self.group)?;
        if self.port != 0 {
            write!(f, ", port={}", self.port)?;
        }
        if self.ttl != 0 {
            write!(f, ", ttl={}", self.ttl)?;
        }
        write!(f, ")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(role: Role) -> DaemonConfig {
        DaemonConfig {
            role,
            ifname: "eth0".into(),
            syncid: 1,
            maxlen: None,
            group: None,
            port: None,
            ttl: None,
        }
    }

    #[test]
    fn defaults_are_the_kernels() {
        let e = cfg(Role::Master).resolve(9000);
        assert_eq!(
            e.to_string(),
            "master sync daemon (mcast=eth0, syncid=1, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)"
        );
        // A backup takes the link's MTU (at least 1500).
        assert_eq!(cfg(Role::Backup).resolve(9000).maxlen, 9000 - 28);
        assert_eq!(cfg(Role::Backup).resolve(1280).maxlen, 1472);
        let mut c = cfg(Role::Master);
        c.group = Some("ff02::81".parse().unwrap());
        assert_eq!(c.resolve(1500).maxlen, 1452);
    }

    #[test]
    fn given_values_are_clamped_as_the_kernel_clamps_them() {
        let mut c = cfg(Role::Backup);
        c.maxlen = Some(100);
        assert_eq!(c.resolve(1500).maxlen, 1024);
        c.role = Role::Master;
        assert_eq!(c.resolve(1500).maxlen, 100);
        c.maxlen = Some(65535);
        assert_eq!(c.resolve(1500).maxlen, 65535 - 28);
        c.port = Some(9999);
        c.ttl = Some(4);
        c.group = Some("239.1.2.3".parse().unwrap());
        assert_eq!(
            c.resolve(1500).to_string(),
            "master sync daemon (mcast=eth0, syncid=1, maxlen=65507, group=239.1.2.3, port=9999, ttl=4)"
        );
    }

    #[test]
    fn words_round_trip() {
        let mut c = cfg(Role::Backup);
        assert_eq!(DaemonConfig::from_words(&c.to_words()).unwrap(), c);
        c.maxlen = Some(2000);
        c.group = Some("ff02::81".parse().unwrap());
        c.port = Some(1);
        c.ttl = Some(9);
        assert_eq!(DaemonConfig::from_words(&c.to_words()).unwrap(), c);
        let e = c.resolve(1500);
        assert_eq!(Effective::from_words(&e.to_words()).unwrap(), e);
        assert!(DaemonConfig::from_words("if=x").is_err());
        assert!(DaemonConfig::from_words("role=master bogus=1").is_err());
    }
}
