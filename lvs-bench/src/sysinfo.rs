//! What the report says about the machine, and the kernel's own accounting
//! the benchmarks read: /proc/stat CPU time, map memory from fdinfo,
//! interface counters from `ethtool -S`.

use std::{collections::BTreeMap, os::fd::RawFd};

/// The aggregate `cpu` line of /proc/stat, in clock ticks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuTimes {
    pub user: u64,
    pub nice: u64,
    pub system: u64,
    pub idle: u64,
    pub iowait: u64,
    pub irq: u64,
    pub softirq: u64,
    pub steal: u64,
}

impl CpuTimes {
    /// Time in the kernel: system calls, interrupts and softirqs (where
    /// packet processing and XDP run).
    pub fn kernel(&self) -> u64 {
        self.system + self.irq + self.softirq
    }

    /// Every non-idle tick.
    pub fn busy(&self) -> u64 {
        self.user + self.nice + self.kernel() + self.steal
    }

    pub fn since(&self, earlier: &CpuTimes) -> CpuTimes {
        CpuTimes {
            user: self.user.saturating_sub(earlier.user),
            nice: self.nice.saturating_sub(earlier.nice),
            system: self.system.saturating_sub(earlier.system),
            idle: self.idle.saturating_sub(earlier.idle),
            iowait: self.iowait.saturating_sub(earlier.iowait),
            irq: self.irq.saturating_sub(earlier.irq),
            softirq: self.softirq.saturating_sub(earlier.softirq),
            steal: self.steal.saturating_sub(earlier.steal),
        }
    }
}

pub fn parse_proc_stat(text: &str) -> Option<CpuTimes> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|w| w.parse().ok())
        .collect::<Option<_>>()?;
    let at = |i: usize| v.get(i).copied().unwrap_or(0);
    if v.len() < 4 {
        return None;
    }
    Some(CpuTimes {
        user: at(0),
        nice: at(1),
        system: at(2),
        idle: at(3),
        iowait: at(4),
        irq: at(5),
        softirq: at(6),
        steal: at(7),
    })
}

pub fn read_proc_stat() -> Option<CpuTimes> {
    parse_proc_stat(&std::fs::read_to_string("/proc/stat").ok()?)
}

/// Clock ticks per second (`USER_HZ`).
pub fn clk_tck() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// The `memlock:` line of a BPF map's fdinfo: the bytes the kernel charges
/// for the map (its preallocated capacity for hash maps).
pub fn parse_memlock(fdinfo: &str) -> Option<u64> {
    fdinfo
        .lines()
        .find_map(|l| l.strip_prefix("memlock:"))
        .and_then(|v| v.trim().parse().ok())
}

pub fn fd_memlock(fd: RawFd) -> Option<u64> {
    parse_memlock(&std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).ok()?)
}

/// `ethtool -S` output as name → value.
pub fn parse_ethtool_stats(out: &str) -> BTreeMap<String, u64> {
    out.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((k.trim().to_owned(), v.trim().parse().ok()?))
        })
        .collect()
}

/// Sum of the per-queue counters `rx_queue_N_{name}` (or `tx_queue_N_…`).
pub fn sum_queues(stats: &BTreeMap<String, u64>, dir: &str, name: &str) -> u64 {
    let prefix = format!("{dir}_queue_");
    stats
        .iter()
        .filter(|(k, _)| {
            k.strip_prefix(&prefix)
                .and_then(|rest| rest.split_once('_'))
                .is_some_and(|(q, n)| q.bytes().all(|b| b.is_ascii_digit()) && n == name)
        })
        .map(|(_, v)| v)
        .sum()
}

pub fn parse_cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == "model name").then(|| v.trim().to_owned())
        })
        .filter(|m| !m.is_empty())
}

pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| parse_cpu_model(&c))
        .unwrap_or_else(|| "unknown".to_owned())
}

pub fn cpu_count() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// `uname -r`.
pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// Local (year, month, day, hour, minute).
pub fn local_time() -> (i32, u32, u32, u32, u32) {
    // SAFETY: time(NULL) and localtime_r into a zeroed struct.
    unsafe {
        let t = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&t, &mut tm);
        (
            tm.tm_year + 1900,
            (tm.tm_mon + 1) as u32,
            tm.tm_mday as u32,
            tm.tm_hour as u32,
            tm.tm_min as u32,
        )
    }
}

/// Pins the calling thread to one CPU (best effort).
pub fn pin_to_cpu(cpu: usize) -> bool {
    // SAFETY: a zeroed cpu_set_t with one bit set, for this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat() {
        let text = "cpu  100 5 200 3000 7 11 13 17 0 0\ncpu0 1 2 3 4\nintr 1\n";
        let t = parse_proc_stat(text).unwrap();
        assert_eq!(t.user, 100);
        assert_eq!(t.kernel(), 200 + 11 + 13);
        assert_eq!(t.busy(), 100 + 5 + 224 + 17);
        let later = CpuTimes { system: 250, ..t };
        assert_eq!(later.since(&t).system, 50);
        assert_eq!(later.since(&t).user, 0);
        assert!(parse_proc_stat("intr 1\n").is_none());
        assert!(parse_proc_stat("cpu  1 x 3 4\n").is_none());
    }

    #[test]
    fn fdinfo_memlock() {
        let fdinfo = "pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t1\nmap_type:\t9\n\
                      key_size:\t40\nvalue_size:\t24\nmax_entries:\t65536\nmap_flags:\t0x0\n\
                      map_extra:\t0x0\nmemlock:\t9437184\nmap_id:\t42\n";
        assert_eq!(parse_memlock(fdinfo), Some(9_437_184));
        assert_eq!(parse_memlock("pos: 0\n"), None);
    }

    #[test]
    fn ethtool() {
        let out = "NIC statistics:\n     peer_ifindex: 2\n     rx_queue_0_xdp_packets: 10\n     \
                   rx_queue_0_xdp_drops: 3\n     rx_queue_1_xdp_packets: 32\n     \
                   rx_queue_10_xdp_packets: 1\n     tx_queue_0_xdp_xmit: 7\n     \
                   tx_queue_1_xdp_xmit_errors: 5\n";
        let s = parse_ethtool_stats(out);
        assert_eq!(s["peer_ifindex"], 2);
        assert_eq!(sum_queues(&s, "rx", "xdp_packets"), 43);
        assert_eq!(sum_queues(&s, "rx", "xdp_drops"), 3);
        assert_eq!(sum_queues(&s, "tx", "xdp_xmit"), 7);
        assert_eq!(sum_queues(&s, "tx", "xdp_xmit_errors"), 5);
    }

    #[test]
    fn cpuinfo() {
        let c = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\n";
        assert_eq!(parse_cpu_model(c).as_deref(), Some("AMD EPYC 7B13"));
        assert_eq!(parse_cpu_model("processor : 0\n"), None);
    }
}
