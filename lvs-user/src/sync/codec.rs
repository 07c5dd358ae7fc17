//! IPVS's connection sync protocol, version 1, as the kernel's
//! `net/netfilter/ipvs/ip_vs_sync.c` lays it out (every field big-endian):
//!
//! - the message header (`struct ip_vs_sync_mesg`, 8 bytes): reserved (0),
//!   sync ID, size (the whole datagram), number of entries, version (1),
//!   spare (0);
//! - per connection `struct ip_vs_sync_v4` (36 bytes) or `ip_vs_sync_v6`
//!   (72): type (bit 0: IPv6), protocol, ver_size (version in the top 4
//!   bits, 0; the entry's size with its options in the low 12), flags
//!   (`IP_VS_CONN_F_*`), state, client/virtual/destination ports, fwmark,
//!   timeout in seconds, then the three addresses;
//! - options after the fixed part, each type, length, data: sequence
//!   adjustments (type 1, 24 bytes: in and out `ip_vs_seq`), persistence
//!   engine data (2) and name (3); a type with bit 6 set
//!   (`IPVS_OPT_F_PARAM`) may be skipped by a receiver that does not know
//!   it, any other unknown type drops the entry;
//! - each entry starts on a 4-byte boundary: the padding goes before it
//!   and counts in the message's size, not in the entry's.
//!
//! Decoding is stricter than the kernel's on one point: a message whose
//! structure is broken anywhere (truncated, sizes that do not add up, an
//! option running past its entry) is rejected whole, so nothing of it is
//! applied; the kernel applies the entries before the break. Entries that
//! are well-formed but not usable (an unknown protocol, a state out of
//! range, a mandatory option it does not know, engine data without a name)
//! are skipped one by one, as the kernel skips them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// `SYNC_PROTO_VER`.
pub const VERSION: u8 = 1;
/// `sizeof(struct ip_vs_sync_mesg)`.
pub const HEADER_LEN: usize = 8;
/// `sizeof(struct ip_vs_sync_v4)` / `sizeof(struct ip_vs_sync_v6)`.
pub const V4_LEN: usize = 36;
pub const V6_LEN: usize = 72;
/// `sizeof(struct ip_vs_sync_conn_options)`: two `struct ip_vs_seq`.
pub const SEQ_LEN: usize = 24;
/// `IP_VS_PEDATA_MAXLEN`, `IP_VS_PENAME_MAXLEN`.
pub const PE_DATA_MAX: usize = 255;
pub const PE_NAME_MAX: usize = 16;
/// The low 12 bits of `ver_size` (`SVER_MASK`), `SVER_SHIFT`.
const SVER_MASK: u16 = 0x0fff;
const SVER_SHIFT: u16 = 12;
/// `STYPE_F_INET6`.
const TYPE_INET6: u8 = 1;

const OPT_SEQ_DATA: u8 = 1;
const OPT_PE_DATA: u8 = 2;
const OPT_PE_NAME: u8 = 3;
/// `IPVS_OPT_F_PARAM`: an optional parameter.
const OPT_F_PARAM: u8 = 1 << 6;

/// `IP_VS_CONN_F_*` (include/uapi/linux/ip_vs.h).
pub mod flags {
    pub const FWD_MASK: u32 = 0x0007;
    pub const MASQ: u32 = 0x0000;
    pub const TUNNEL: u32 = 0x0002;
    pub const DROUTE: u32 = 0x0003;
    pub const SYNC: u32 = 0x0020;
    pub const HASHED: u32 = 0x0040;
    pub const NOOUTPUT: u32 = 0x0080;
    pub const INACTIVE: u32 = 0x0100;
    pub const OUT_SEQ: u32 = 0x0200;
    pub const IN_SEQ: u32 = 0x0400;
    pub const SEQ_MASK: u32 = 0x0600;
    pub const NO_CPORT: u32 = 0x0800;
    pub const TEMPLATE: u32 = 0x1000;
    pub const ONE_PACKET: u32 = 0x2000;
    /// `IP_VS_CONN_F_BACKUP_MASK`: what a backup takes from the wire.
    pub const BACKUP_MASK: u32 = FWD_MASK | NOOUTPUT | INACTIVE | SEQ_MASK | NO_CPORT | TEMPLATE;
}

/// Number of states per protocol (`IP_VS_TCP_S_LAST`, `IP_VS_UDP_S_LAST`).
pub const TCP_STATES: u16 = 11;
pub const UDP_STATES: u16 = 1;

/// `struct ip_vs_seq`, host order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Seq {
    pub init_seq: u32,
    pub delta: u32,
    pub previous_delta: u32,
}

/// One connection (or persistence template) entry, fields in host order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub protocol: u8,
    pub flags: u32,
    pub state: u16,
    pub cport: u16,
    pub vport: u16,
    pub dport: u16,
    pub fwmark: u32,
    /// Seconds.
    pub timeout: u32,
    /// All three of one family: the entry's type says which.
    pub caddr: IpAddr,
    pub vaddr: IpAddr,
    pub daddr: IpAddr,
    /// The sequence option: (in, out).
    pub seq: Option<(Seq, Seq)>,
    pub pe_data: Option<Vec<u8>>,
    pub pe_name: Option<Vec<u8>>,
}

impl Entry {
    pub fn is_v6(&self) -> bool {
        self.caddr.is_ipv6()
    }

    pub fn is_template(&self) -> bool {
        self.flags & flags::TEMPLATE != 0
    }

    /// The entry's size as `ver_size` gives it (fixed part and options).
    pub fn wire_len(&self) -> usize {
        let mut n = if self.is_v6() { V6_LEN } else { V4_LEN };
        if self.seq.is_some() {
            n += 2 + SEQ_LEN;
        }
        if let Some(d) = &self.pe_data {
            n += 2 + d.len();
            if let Some(name) = &self.pe_name {
                n += 2 + name.len();
            }
        }
        n
    }
}

/// Why a whole message was refused (nothing of it is applied).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reject {
    /// Shorter than its header, or an entry runs past the end.
    Truncated,
    /// The header's size is not the datagram's.
    BadSize,
    /// Another sync ID than the backup's.
    OtherSyncId,
    /// Not version 1 (or reserved/spare not zero), or an entry of a
    /// version other than 0.
    BadVersion,
    /// An entry of unknown type, with a size below its fixed part, options
    /// that do not parse, or bytes after the last entry.
    Malformed,
}

impl Reject {
    pub const ALL: [Reject; 5] = [
        Reject::Truncated,
        Reject::BadSize,
        Reject::OtherSyncId,
        Reject::BadVersion,
        Reject::Malformed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Reject::Truncated => "truncated",
            Reject::BadSize => "bad_size",
            Reject::OtherSyncId => "other_syncid",
            Reject::BadVersion => "bad_version",
            Reject::Malformed => "malformed",
        }
    }
}

/// A decoded message: its usable entries and how many were skipped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decoded {
    pub syncid: u8,
    pub entries: Vec<Entry>,
    /// Well-formed entries the kernel would skip too.
    pub skipped: u32,
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Decodes one datagram for a backup of sync ID `want` (0 takes every
/// sync ID, as the kernel's backup does).
pub fn decode(buf: &[u8], want: u8) -> Result<Decoded, Reject> {
    if buf.len() < HEADER_LEN {
        return Err(Reject::Truncated);
    }
    if be16(buf, 2) as usize != buf.len() {
        return Err(Reject::BadSize);
    }
    let syncid = buf[1];
    if want != 0 && syncid != want {
        return Err(Reject::OtherSyncId);
    }
    if buf[0] != 0 || buf[5] != VERSION || be16(buf, 6) != 0 {
        return Err(Reject::BadVersion);
    }
    let n = buf[4] as usize;
    let mut out = Decoded {
        syncid,
        ..Default::default()
    };
    let mut at = HEADER_LEN;
    let mut end = at;
    for _ in 0..n {
        // The padding before this entry (from the previous one's end).
        at = end.next_multiple_of(4);
        if at + V4_LEN > buf.len() {
            return Err(Reject::Truncated);
        }
        let ver_size = be16(buf, at + 2);
        if ver_size >> SVER_SHIFT != 0 {
            return Err(Reject::BadVersion);
        }
        let size = (ver_size & SVER_MASK) as usize;
        end = at + size;
        if end > buf.len() {
            return Err(Reject::Truncated);
        }
        match entry(&buf[at..end])? {
            Some(e) => out.entries.push(e),
            None => out.skipped += 1,
        }
    }
    if end != buf.len() {
        return Err(Reject::Malformed);
    }
    Ok(out)
}

/// One entry (exactly its `ver_size` bytes): `None` if it is to be skipped.
fn entry(b: &[u8]) -> Result<Option<Entry>, Reject> {
    let v6 = match b[0] {
        TYPE_INET6 => true,
        0 => false,
        _ => return Err(Reject::Malformed),
    };
    let fixed = if v6 { V6_LEN } else { V4_LEN };
    if b.len() < fixed {
        return Err(Reject::Malformed);
    }
    let addr = |i: usize| -> IpAddr {
        if v6 {
            let o = 24 + 16 * i;
            let a: [u8; 16] = b[o..o + 16].try_into().expect("16 bytes");
            IpAddr::V6(Ipv6Addr::from(a))
        } else {
            let o = 24 + 4 * i;
            IpAddr::V4(Ipv4Addr::new(b[o], b[o + 1], b[o + 2], b[o + 3]))
        }
    };
    let mut e = Entry {
        protocol: b[1],
        flags: be32(b, 4),
        state: be16(b, 8),
        cport: be16(b, 10),
        vport: be16(b, 12),
        dport: be16(b, 14),
        fwmark: be32(b, 16),
        timeout: be32(b, 20),
        caddr: addr(0),
        vaddr: addr(1),
        daddr: addr(2),
        seq: None,
        pe_data: None,
        pe_name: None,
    };
    let mut skip = false;
    let mut p = fixed;
    while p < b.len() {
        if p + 2 > b.len() {
            return Err(Reject::Malformed);
        }
        let (ptype, plen) = (b[p], b[p + 1] as usize);
        p += 2;
        if plen == 0 || p + plen > b.len() {
            return Err(Reject::Malformed);
        }
        let data = &b[p..p + plen];
        match ptype & !OPT_F_PARAM {
            OPT_SEQ_DATA => {
                if plen != SEQ_LEN || e.seq.is_some() {
                    return Err(Reject::Malformed);
                }
                let seq = |o: usize| Seq {
                    init_seq: be32(data, o),
                    delta: be32(data, o + 4),
                    previous_delta: be32(data, o + 8),
                };
                e.seq = Some((seq(0), seq(12)));
            }
            OPT_PE_DATA => {
                if plen > PE_DATA_MAX || e.pe_data.is_some() {
                    return Err(Reject::Malformed);
                }
                e.pe_data = Some(data.to_vec());
            }
            OPT_PE_NAME => {
                if plen > PE_NAME_MAX || e.pe_name.is_some() {
                    return Err(Reject::Malformed);
                }
                e.pe_name = Some(data.to_vec());
            }
            // An optional parameter this side does not know: skipped; a
            // mandatory one: the entry is dropped (not the message).
            _ if ptype & OPT_F_PARAM != 0 => {}
            _ => skip = true,
        }
        p += plen;
    }
    if e.pe_data.is_some() && e.pe_name.is_none() {
        skip = true;
    }
    if !e.is_template() {
        let states = match e.protocol {
            lvs_common::PROTO_TCP => TCP_STATES,
            lvs_common::PROTO_UDP => UDP_STATES,
            _ => 0,
        };
        if e.state >= states {
            skip = true;
        }
    }
    Ok((!skip).then_some(e))
}

/// Builds messages of at most `maxlen` bytes (and at most 255 entries, the
/// header's count being one byte) for sync ID `syncid`, as the master's
/// sync buffers fill; an entry larger than `maxlen` goes alone, as the
/// kernel sizes a buffer for at least one entry.
pub struct Encoder {
    syncid: u8,
    maxlen: usize,
    buf: Vec<u8>,
    count: u8,
}

impl Encoder {
    pub fn new(syncid: u8, maxlen: usize) -> Encoder {
        let mut e = Encoder {
            syncid,
            maxlen,
            buf: Vec::new(),
            count: 0,
        };
        e.reset();
        e
    }

    fn reset(&mut self) {
        self.buf.clear();
        self.buf
            .extend_from_slice(&[0, self.syncid, 0, HEADER_LEN as u8, 0, VERSION, 0, 0]);
        self.count = 0;
    }

    /// Appends `e`; returns a finished message first if `e` did not fit in
    /// the current one.
    pub fn push(&mut self, e: &Entry) -> Option<Vec<u8>> {
        let len = e.wire_len();
        let pad = self.buf.len().next_multiple_of(4) - self.buf.len();
        let full = self.count == u8::MAX || self.buf.len() + pad + len > self.maxlen;
        let done = if full && self.count > 0 {
            self.finish()
        } else {
            None
        };
        let pad = self.buf.len().next_multiple_of(4) - self.buf.len();
        self.buf.resize(self.buf.len() + pad, 0);
        put_entry(&mut self.buf, e);
        self.count += 1;
        let size = self.buf.len() as u16;
        self.buf[2..4].copy_from_slice(&size.to_be_bytes());
        self.buf[4] = self.count;
        done
    }

    /// The message being built, if it holds any entry.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        if self.count == 0 {
            return None;
        }
        let out = std::mem::take(&mut self.buf);
        self.reset();
        Some(out)
    }
}

fn put_entry(out: &mut Vec<u8>, e: &Entry) {
    let v6 = e.is_v6();
    out.push(if v6 { TYPE_INET6 } else { 0 });
    out.push(e.protocol);
    out.extend_from_slice(&((e.wire_len() as u16) & SVER_MASK).to_be_bytes());
    out.extend_from_slice(&(e.flags & !flags::HASHED).to_be_bytes());
    out.extend_from_slice(&e.state.to_be_bytes());
    out.extend_from_slice(&e.cport.to_be_bytes());
    out.extend_from_slice(&e.vport.to_be_bytes());
    out.extend_from_slice(&e.dport.to_be_bytes());
    out.extend_from_slice(&e.fwmark.to_be_bytes());
    out.extend_from_slice(&e.timeout.to_be_bytes());
    for a in [e.caddr, e.vaddr, e.daddr] {
        match a {
            IpAddr::V4(a) if !v6 => out.extend_from_slice(&a.octets()),
            IpAddr::V6(a) if v6 => out.extend_from_slice(&a.octets()),
            // Mixed families cannot be sent; the unspecified address of
            // the entry's family keeps the layout (callers never mix).
            _ if v6 => out.extend_from_slice(&[0; 16]),
            _ => out.extend_from_slice(&[0; 4]),
        }
    }
    if let Some((i, o)) = &e.seq {
        out.extend_from_slice(&[OPT_SEQ_DATA, SEQ_LEN as u8]);
        for s in [i, o] {
            out.extend_from_slice(&s.init_seq.to_be_bytes());
            out.extend_from_slice(&s.delta.to_be_bytes());
            out.extend_from_slice(&s.previous_delta.to_be_bytes());
        }
    }
    if let Some(d) = &e.pe_data {
        out.extend_from_slice(&[OPT_PE_DATA, d.len() as u8]);
        out.extend_from_slice(d);
        if let Some(n) = &e.pe_name {
            out.extend_from_slice(&[OPT_PE_NAME, n.len() as u8]);
            out.extend_from_slice(n);
        }
    }
}

#[cfg(test)]
mod tests;
