//! Marking the slot of a real server the health checker removed, so that
//! the data path drops (or ends) its connections as IPVS does with a
//! destination that is no longer available (`REAL_F_NODEST`,
//! `REAL_F_EXPIRE`). A removal by `lvsadm -d`, `-C`, `-R` or a reload never
//! marks: those connections continue, on purpose.
//!
//! The bits live only in `REALS` (the snapshot's slots are normalised to
//! `REAL_F_IN_USE`), so a later change never sees them; a change that makes
//! the server a member again (re-added, same slot) writes its flags whole,
//! which clears them — as IPVS's destination back from the trash, whose
//! connections continue.

use std::net::IpAddr;

use anyhow::Result;
use lvs_common::{REAL_F_EXPIRE, REAL_F_IN_USE, REAL_F_NODEST};

use super::{
    addr::{addr_words, family_of, port_raw, service_key},
    Tables,
};
use crate::model::ServiceAddr;

impl Tables {
    /// Marks the slot `svc`'s real server `addr:port` left when it was
    /// removed from the service (in use for its connections, no longer a
    /// member): its connections' packets are dropped from now on, and with
    /// `expire` each connection ends at its next packet. Returns how many
    /// slots changed (0: the server is a member, has no slot, or is marked
    /// so already).
    pub fn mark_nodest(
        &mut self,
        svc: &ServiceAddr,
        addr: IpAddr,
        port: u16,
        expire: bool,
    ) -> Result<usize> {
        if !self.fresh {
            self.snapshot()?;
        }
        let Some(id) = self.placed.get(&service_key(svc)).map(|p| p.value.id) else {
            return Ok(0);
        };
        let bits = REAL_F_NODEST | if expire { REAL_F_EXPIRE } else { 0 };
        let (words, raw_port, family) = (addr_words(addr), port_raw(port), family_of(addr));
        let mut changed = 0;
        for i in 0..self.slots.len() {
            let s = &self.slots[i];
            if s.flags != REAL_F_IN_USE
                || s.svc_id != id
                || s.addr != words
                || s.port != raw_port
                || s.family != family
            {
                continue;
            }
            let mut raw = self.raw_reals[i];
            let flags = REAL_F_IN_USE | bits;
            if raw.flags == flags {
                continue;
            }
            raw.flags = flags;
            self.reals.set(i as u32, raw, 0)?;
            self.raw_reals[i] = raw;
            changed += 1;
        }
        Ok(changed)
    }
}
