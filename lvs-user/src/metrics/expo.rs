//! The `/metrics` page: one look at the tables ([`View`]) and the rates,
//! in Prometheus' text format as node_exporter writes it.
//!
//! The `node_ipvs_*` families are node_exporter's ipvs collector's (names,
//! HELP texts, types and backend labels), so dashboards made for IPVS keep
//! working: the totals, and per backend (real server of a service) its
//! active and inactive connections and weight, labelled `local_address`,
//! `local_port`, `remote_address`, `remote_port`, `proto` and `local_mark`
//! (always empty: there are no firewall-mark services). As the collector
//! does, backends with the same labels are summed.
//!
//! The `lvs_*` families are lvs-xdp's own: per-service and per-real
//! counters, the data path's counters (`lvs stats`), the connection
//! table's fill and evictions, and the rate estimates (`crate::rate`) as
//! gauges.

use std::collections::BTreeMap;

use anyhow::Result;
use lvs_common::{counters, Rate, ServiceKey, Stats};
use prometheus::{
    core::Collector, Encoder, GaugeVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

use super::view::View;
use crate::{model::Proto, tables};

/// The rates a page shows, as read from the pinned arrays.
pub trait Rates {
    fn totals(&self) -> Option<Rate>;
    fn service(&self, id: u32, key: ServiceKey) -> Option<Rate>;
    fn real(&self, idx: u32, key: ServiceKey, generation: u32) -> Option<Rate>;
}

impl Rates for crate::rate::RateMaps {
    fn totals(&self) -> Option<Rate> {
        crate::rate::RateMaps::totals(self).ok()
    }
    fn service(&self, id: u32, key: ServiceKey) -> Option<Rate> {
        crate::rate::RateMaps::service(self, id, key)
    }
    fn real(&self, idx: u32, key: ServiceKey, generation: u32) -> Option<Rate> {
        crate::rate::RateMaps::real(self, idx, key, generation)
    }
}

const BACKEND: [&str; 6] = [
    "local_address",
    "local_port",
    "remote_address",
    "remote_port",
    "proto",
    "local_mark",
];
const SERVICE: [&str; 3] = ["local_address", "local_port", "proto"];
const REAL: [&str; 5] = [
    "local_address",
    "local_port",
    "remote_address",
    "remote_port",
    "proto",
];

/// The five counters of a service, a real server or the totals, with the
/// name each takes and its HELP text's subject.
const STATS: [(&str, &str); 5] = [
    ("connections", "connections made"),
    ("incoming_packets", "incoming packets"),
    ("outgoing_packets", "outgoing packets"),
    ("incoming_bytes", "incoming bytes"),
    ("outgoing_bytes", "outgoing bytes"),
];

fn stat_values(s: &Stats) -> [u64; 5] {
    [s.conns, s.inpkts, s.outpkts, s.inbytes, s.outbytes]
}

fn rate_values(r: &Rate) -> [u64; 5] {
    [r.cps, r.inpps, r.outpps, r.inbps, r.outbps]
}

/// The five rates, named as the counters they are estimated from.
const RATES: [(&str, &str); 5] = [
    ("connections_per_second", "connections per second"),
    ("incoming_packets_per_second", "incoming packets per second"),
    ("outgoing_packets_per_second", "outgoing packets per second"),
    ("incoming_bytes_per_second", "incoming bytes per second"),
    ("outgoing_bytes_per_second", "outgoing bytes per second"),
];

struct Page {
    reg: Registry,
}

impl Page {
    fn add<C: Collector + Clone + 'static>(&self, c: C) -> Result<C> {
        self.reg.register(Box::new(c.clone()))?;
        Ok(c)
    }
    fn counter(&self, name: &str, help: &str, v: u64) -> Result<()> {
        self.add(IntCounter::with_opts(Opts::new(name, help))?)?
            .inc_by(v);
        Ok(())
    }
    fn gauge(&self, name: &str, help: &str, v: i64) -> Result<()> {
        self.add(IntGauge::with_opts(Opts::new(name, help))?)?
            .set(v);
        Ok(())
    }
    fn counters(&self, name: &str, help: &str, labels: &[&str]) -> Result<IntCounterVec> {
        self.add(IntCounterVec::new(Opts::new(name, help), labels)?)
    }
    fn gauges(&self, name: &str, help: &str, labels: &[&str]) -> Result<GaugeVec> {
        self.add(GaugeVec::new(Opts::new(name, help), labels)?)
    }
}

/// Renders the page for `view` and `rates`.
pub fn render(view: &View, rates: &dyn Rates) -> Result<String> {
    let p = Page {
        reg: Registry::new(),
    };
    // node_exporter's ipvs collector.
    let totals = stat_values(&view.totals);
    for ((name, _), v) in STATS.iter().zip(totals) {
        let help = match *name {
            "connections" => "The total number of connections made.",
            "incoming_packets" => "The total number of incoming packets.",
            "outgoing_packets" => "The total number of outgoing packets.",
            "incoming_bytes" => "The total amount of incoming data.",
            _ => "The total amount of outgoing data.",
        };
        p.counter(&format!("node_ipvs_{name}_total"), help, v)?;
    }
    let active = p.gauges(
        "node_ipvs_backend_connections_active",
        "The current active connections by local and remote address.",
        &BACKEND,
    )?;
    let inactive = p.gauges(
        "node_ipvs_backend_connections_inactive",
        "The current inactive connections by local and remote address.",
        &BACKEND,
    )?;
    let weight = p.gauges(
        "node_ipvs_backend_weight",
        "The current backend weight by local and remote address.",
        &BACKEND,
    )?;
    // Summed by label set, as the collector sums /proc/net/ip_vs' lines.
    let mut backends: BTreeMap<[String; 6], [u64; 3]> = BTreeMap::new();

    let svc_stats: Vec<IntCounterVec> = STATS
        .iter()
        .map(|(n, what)| {
            p.counters(
                &format!("lvs_service_{n}_total"),
                &format!("The total number of {what} of a virtual service."),
                &SERVICE,
            )
        })
        .collect::<Result<_>>()?;
    let real_stats: Vec<IntCounterVec> = STATS
        .iter()
        .map(|(n, what)| {
            p.counters(
                &format!("lvs_real_{n}_total"),
                &format!("The total number of {what} of a real server of a virtual service."),
                &REAL,
            )
        })
        .collect::<Result<_>>()?;
    let svc_rates: Vec<GaugeVec> = RATES
        .iter()
        .map(|(n, what)| {
            p.gauges(
                &format!("lvs_service_rate_{n}"),
                &format!(
                    "A virtual service's {what}, as IPVS estimates it (2 s samples, weight 1/4)."
                ),
                &SERVICE,
            )
        })
        .collect::<Result<_>>()?;
    let real_rates: Vec<GaugeVec> = RATES
        .iter()
        .map(|(n, what)| {
            p.gauges(
                &format!("lvs_real_rate_{n}"),
                &format!("A real server's {what}, as IPVS estimates it (2 s samples, weight 1/4)."),
                &REAL,
            )
        })
        .collect::<Result<_>>()?;

    for s in &view.services {
        let Some(proto) = Proto::from_code(s.key.proto) else {
            continue;
        };
        let laddr = tables::words_addr(s.key.addr, s.key.family).to_string();
        let lport = tables::raw_port(s.key.port).to_string();
        let sl = [laddr.as_str(), lport.as_str(), proto.name()];
        for (c, v) in svc_stats.iter().zip(stat_values(&s.stats)) {
            c.with_label_values(&sl).inc_by(v);
        }
        let r = rates.service(s.id, s.key).unwrap_or_default();
        for (g, v) in svc_rates.iter().zip(rate_values(&r)) {
            g.with_label_values(&sl).set(v as f64);
        }
        for m in &s.reals {
            let raddr = m.addr.to_string();
            let rport = m.port.to_string();
            let rl = [
                laddr.as_str(),
                lport.as_str(),
                raddr.as_str(),
                rport.as_str(),
                proto.name(),
            ];
            for (c, v) in real_stats.iter().zip(stat_values(&m.stats)) {
                c.with_label_values(&rl).inc_by(v);
            }
            let r = rates.real(m.idx, s.key, m.generation).unwrap_or_default();
            for (g, v) in real_rates.iter().zip(rate_values(&r)) {
                g.with_label_values(&rl).set(v as f64);
            }
            let b = backends
                .entry([
                    laddr.clone(),
                    lport.clone(),
                    raddr,
                    rport,
                    proto.name().to_owned(),
                    String::new(),
                ])
                .or_default();
            b[0] += m.active;
            b[1] += m.inactive;
            b[2] += m.weight as u64;
        }
    }
    for (labels, [a, i, w]) in &backends {
        let l: Vec<&str> = labels.iter().map(String::as_str).collect();
        active.with_label_values(&l).set(*a as f64);
        inactive.with_label_values(&l).set(*i as f64);
        weight.with_label_values(&l).set(*w as f64);
    }

    let t = rates.totals().unwrap_or_default();
    for ((n, what), v) in RATES.iter().zip(rate_values(&t)) {
        p.gauge(
            &format!("lvs_rate_{n}"),
            &format!("The director's {what}, as IPVS estimates it (2 s samples, weight 1/4)."),
            v as i64,
        )?;
    }
    let path = p.counters(
        "lvs_stats_total",
        "The data path's counters, as `lvs stats` prints them (by counter).",
        &["counter"],
    )?;
    for (name, v) in counters::NAMES.iter().zip(&view.counters) {
        path.with_label_values(&[name]).inc_by(*v);
    }
    p.gauge(
        "lvs_conntrack_connections",
        "Connections tracked (counted active or inactive on a real server).",
        view.conns as i64,
    )?;
    p.gauge(
        "lvs_conntrack_size",
        "Connections the table holds (lvs load --max-conns).",
        view.conn_table_size as i64,
    )?;
    p.counter(
        "lvs_conntrack_evictions_total",
        "Connections the full table evicted before they ended.",
        view.counters
            .get(counters::EVICTED as usize)
            .copied()
            .unwrap_or(0),
    )?;

    health(&p, &view.health)?;

    let mut out = Vec::new();
    TextEncoder::new().encode(&p.reg.gather(), &mut out)?;
    Ok(String::from_utf8(out)?)
}

/// The health checker's real servers: whether each is up (1: in the
/// table with its weight, or the sorry server in use; 0: removed,
/// inhibited, or a sorry server not needed) and since when.
fn health(p: &Page, reals: &[crate::health::status::Real]) -> Result<()> {
    if reals.is_empty() {
        return Ok(());
    }
    let up = p.gauges(
        "lvs_real_health_up",
        "Whether the health checker has the real server up (1) or failed, inhibited or idle (0).",
        &HEALTH,
    )?;
    let since = p.gauges(
        "lvs_real_health_since_seconds",
        "When the health checker last changed the real server's state (Unix time).",
        &HEALTH,
    )?;
    for r in reals {
        let (laddr, lport) = (r.service.addr.to_string(), r.service.port.to_string());
        let (raddr, rport) = (r.addr.ip().to_string(), r.addr.port().to_string());
        let l = [
            laddr.as_str(),
            lport.as_str(),
            r.service.proto.name(),
            raddr.as_str(),
            rport.as_str(),
        ];
        let is_up = r.state == "up" || r.state == "sorry";
        up.with_label_values(&l).set(is_up as u8 as f64);
        since.with_label_values(&l).set(r.since as f64);
    }
    Ok(())
}

/// Labels of the health gauges: the real server as `lvs_real_…` names it
/// (its state's name is `lvsadm -L -n --health`'s; a label that changes with
/// every transition would start a new series each time).
const HEALTH: [&str; 5] = [
    "local_address",
    "local_port",
    "proto",
    "remote_address",
    "remote_port",
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::view::{RealView, SvcView};
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    struct Fixed(Rate);
    impl Rates for Fixed {
        fn totals(&self) -> Option<Rate> {
            Some(self.0)
        }
        fn service(&self, _: u32, key: ServiceKey) -> Option<Rate> {
            Some(Rate { key, ..self.0 })
        }
        fn real(&self, _: u32, _: ServiceKey, _: u32) -> Option<Rate> {
            Some(self.0)
        }
    }

    fn real(idx: u32, addr: IpAddr, active: u64, weight: u32) -> RealView {
        RealView {
            idx,
            generation: 1,
            addr,
            port: 80,
            weight,
            active,
            inactive: 2,
            stats: Stats {
                conns: 5,
                inpkts: 50,
                outpkts: 40,
                inbytes: 5000,
                outbytes: 40000,
            },
        }
    }

    fn seed() -> View {
        let vip = tables::service_key(&crate::model::ServiceAddr {
            proto: Proto::Tcp,
            addr: Ipv4Addr::new(192, 168, 47, 128).into(),
            port: 80,
        });
        let v6 = tables::service_key(&crate::model::ServiceAddr {
            proto: Proto::Udp,
            addr: "2001:db8:47::128".parse::<Ipv6Addr>().unwrap().into(),
            port: 53,
        });
        View {
            services: vec![
                SvcView {
                    key: vip,
                    id: 0,
                    stats: Stats {
                        conns: 10,
                        ..Default::default()
                    },
                    reals: vec![
                        real(0, Ipv4Addr::new(192, 168, 211, 129).into(), 1, 1),
                        real(1, Ipv4Addr::new(192, 168, 211, 130).into(), 0, 3),
                    ],
                },
                SvcView {
                    key: v6,
                    id: 1,
                    stats: Stats::default(),
                    reals: vec![real(2, "2001:db8:211::129".parse().unwrap(), 0, 1)],
                },
            ],
            totals: Stats {
                conns: 12,
                inpkts: 100,
                outpkts: 90,
                inbytes: 10_000,
                outbytes: 80_000,
            },
            counters: (0..counters::COUNT as u64).collect(),
            conns: 7,
            conn_table_size: 65536,
            health: Vec::new(),
        }
    }

    #[test]
    fn node_exporter_names_help_and_labels() {
        let rate = Rate {
            cps: 3,
            inpps: 300,
            ..Default::default()
        };
        let page = render(&seed(), &Fixed(rate)).unwrap();
        for line in [
            "# HELP node_ipvs_connections_total The total number of connections made.",
            "# TYPE node_ipvs_connections_total counter",
            "node_ipvs_connections_total 12",
            "# HELP node_ipvs_incoming_bytes_total The total amount of incoming data.",
            "node_ipvs_incoming_bytes_total 10000",
            "node_ipvs_outgoing_packets_total 90",
            "# HELP node_ipvs_backend_connections_active The current active connections by local and remote address.",
            "# TYPE node_ipvs_backend_connections_active gauge",
            "node_ipvs_backend_connections_active{local_address=\"192.168.47.128\",local_mark=\"\",local_port=\"80\",proto=\"TCP\",remote_address=\"192.168.211.129\",remote_port=\"80\"} 1",
            "node_ipvs_backend_connections_inactive{local_address=\"192.168.47.128\",local_mark=\"\",local_port=\"80\",proto=\"TCP\",remote_address=\"192.168.211.130\",remote_port=\"80\"} 2",
            "node_ipvs_backend_weight{local_address=\"192.168.47.128\",local_mark=\"\",local_port=\"80\",proto=\"TCP\",remote_address=\"192.168.211.130\",remote_port=\"80\"} 3",
            "node_ipvs_backend_weight{local_address=\"2001:db8:47::128\",local_mark=\"\",local_port=\"53\",proto=\"UDP\",remote_address=\"2001:db8:211::129\",remote_port=\"80\"} 1",
            "lvs_service_connections_total{local_address=\"192.168.47.128\",local_port=\"80\",proto=\"TCP\"} 10",
            "lvs_real_outgoing_bytes_total{local_address=\"192.168.47.128\",local_port=\"80\",proto=\"TCP\",remote_address=\"192.168.211.129\",remote_port=\"80\"} 40000",
            "lvs_service_rate_incoming_packets_per_second{local_address=\"192.168.47.128\",local_port=\"80\",proto=\"TCP\"} 300",
            "lvs_real_rate_connections_per_second{local_address=\"192.168.47.128\",local_port=\"80\",proto=\"TCP\",remote_address=\"192.168.211.130\",remote_port=\"80\"} 3",
            "lvs_rate_connections_per_second 3",
            "lvs_stats_total{counter=\"rx\"} 0",
            "lvs_stats_total{counter=\"flow_hit\"} 20",
            "lvs_conntrack_connections 7",
            "lvs_conntrack_size 65536",
            "lvs_conntrack_evictions_total 19",
        ] {
            assert!(page.lines().any(|l| l == line), "missing {line:?} in\n{page}");
        }
    }

    #[test]
    fn backends_with_the_same_labels_are_summed() {
        let mut v = seed();
        let mut dup = v.services[0].clone();
        dup.id = 5;
        dup.reals.truncate(1);
        v.services.push(dup);
        let page = render(&v, &Fixed(Rate::default())).unwrap();
        assert!(page.lines().any(|l| l
            == "node_ipvs_backend_connections_active{local_address=\"192.168.47.128\",local_mark=\"\",local_port=\"80\",proto=\"TCP\",remote_address=\"192.168.211.129\",remote_port=\"80\"} 2"));
    }

    #[test]
    fn the_checkers_servers_are_gauges() {
        use crate::health::status::Real as Checked;
        let svc = crate::model::ServiceAddr {
            proto: crate::model::Proto::Tcp,
            addr: "192.168.47.128".parse().unwrap(),
            port: 80,
        };
        let checked = |ip: &str, state: &str, since| Checked {
            service: svc,
            addr: format!("{ip}:80").parse().unwrap(),
            state: state.into(),
            weight: 1,
            since,
            last: String::new(),
        };
        let mut v = seed();
        let page = render(&v, &Fixed(Rate::default())).unwrap();
        assert!(!page.contains("lvs_real_health"), "no checker, no gauge");
        v.health = vec![
            checked("192.168.211.129", "down", 1_700_000_000),
            checked("192.168.211.130", "up", 1_700_000_001),
        ];
        let page = render(&v, &Fixed(Rate::default())).unwrap();
        let labels = |ip: &str| {
            format!(
                "{{local_address=\"192.168.47.128\",local_port=\"80\",proto=\"TCP\",remote_address=\"{ip}\",remote_port=\"80\"}}"
            )
        };
        for (ip, up, since) in [
            ("192.168.211.129", 0, "1700000000"),
            ("192.168.211.130", 1, "1700000001"),
        ] {
            let want = format!("lvs_real_health_up{} {up}\n", labels(ip));
            assert!(page.contains(&want), "{want}\n{page}");
            let want = format!("lvs_real_health_since_seconds{} {since}\n", labels(ip));
            assert!(page.contains(&want), "{want}\n{page}");
        }
        assert!(page.contains("# TYPE lvs_real_health_up gauge\n"));
    }

    #[test]
    fn an_empty_director_still_has_its_totals() {
        let page = render(&View::default(), &Fixed(Rate::default())).unwrap();
        assert!(page.contains("\nnode_ipvs_connections_total 0\n"));
        assert!(!page.contains("node_ipvs_backend_weight{"));
    }
}
