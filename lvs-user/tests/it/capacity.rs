//! `--max-conns N` holds N connections: the kernel's LRU keeps part of a
//! table in per-CPU free lists, so the maps must be larger than N for N
//! live connections to fit without the LRU evicting any of them.

use std::{
    io::{Read, Write},
    net::TcpStream,
    time::Duration,
};

use crate::common::{
    director_with,
    held::{held_nat_connections, Held},
    T,
};
use lvs_lab::require_root;

/// The stated capacity.
const N: usize = 1024;

/// Writes `msg` on `from` and reads it on `to` (at most `timeout`).
fn pass(
    mut from: &TcpStream,
    mut to: &TcpStream,
    msg: &[u8],
    timeout: Duration,
) -> std::io::Result<()> {
    from.write_all(msg)?;
    to.set_read_timeout(Some(timeout))?;
    let mut got = vec![0u8; msg.len()];
    to.read_exact(&mut got)?;
    if got != msg {
        return Err(std::io::Error::other(format!(
            "read {:?}, sent {:?}",
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(msg)
        )));
    }
    Ok(())
}

/// A director with `--max-conns 1024` holds 1024 established, idle NAT
/// connections (real TCP connections from the client namespace to a
/// listener in the real server's), and every one of them still carries
/// data both ways afterwards. Before the maps were sized for the LRU's
/// per-CPU free lists, the table held about N - 128 × CPUs of them: the
/// oldest were evicted, and their next segment met the director's own
/// stack, which reset them.
#[test]
fn max_conns_connections_all_fit() {
    if !require_root("capacity") {
        return;
    }
    let d = director_with("cap", 1, &["--max-conns", &N.to_string()]).unwrap();
    let Held { vip, pairs, .. } = held_nat_connections(&d, N);
    let listing = d.adm(&["-L", "-n"]);
    assert!(listing.contains(&format!("size={N})")), "{listing}");

    // One exchange on each (so the director has seen the client's ACK of
    // data: ESTABLISHED).
    for (i, (c, s)) in pairs.iter().enumerate() {
        pass(c.stream(), s, b"hello\n", T)
            .and_then(|_| pass(s, c.stream(), b"hi\n", T))
            .unwrap_or_else(|e| panic!("first exchange on connection {i}: {e}\n{}", d.diag()));
    }
    let rows = d.reals(&vip);
    assert_eq!(rows[0].active, N as u64, "{rows:?}");

    // Idle for longer than a flow-cache slot lives and than a sweep, so the
    // next segments are looked up in the connection table.
    std::thread::sleep(Duration::from_millis(1500));

    // Every connection again, both ways: the client's segments first (all
    // of them, so that the failures are counted without waiting out a
    // timeout each), then the answers.
    for (i, (c, _)) in pairs.iter().enumerate() {
        let mut w = c.stream();
        let _ = w.write_all(format!("again {i}\n").as_bytes());
    }
    std::thread::sleep(Duration::from_millis(500));
    let mut failed = Vec::new();
    for (i, (c, s)) in pairs.iter().enumerate() {
        let want = format!("again {i}\n");
        let mut got = vec![0u8; want.len()];
        let mut r = s;
        let ok = s
            .set_read_timeout(Some(Duration::from_millis(200)))
            .and_then(|_| r.read_exact(&mut got))
            .is_ok()
            && got == want.as_bytes()
            && pass(s, c.stream(), b"fine\n", T).is_ok();
        if !ok {
            failed.push(i);
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {N} connections no longer work (first: {:?})\n{}",
        failed.len(),
        &failed[..failed.len().min(10)],
        d.diag()
    );
    let rows = d.reals(&vip);
    assert_eq!(rows[0].active, N as u64, "{rows:?}");
    assert_eq!(d.counter("new_conn"), N as u64);
    // The listing still states the capacity asked for.
    let listing = d.adm(&["-L", "-n"]);
    assert!(listing.contains(&format!("size={N})")), "{listing}");
}
