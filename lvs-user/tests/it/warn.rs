//! Rate-limited warnings in a running daemon (`lvs-user/src/warn.rs`): a
//! condition the daemon meets on every tick is logged once, not once a
//! second.

use std::time::Duration;

use lvs_lab::{require_root, seed};

use crate::common::{director_with, wait_until};

/// A real server the director has no route to: `lvs load` looks for its
/// next hop every second and finds none each time, but says so once in
/// the minute (its stderr, read over several seconds of ticks). The ticks
/// go on meanwhile: a real server added later gets its neighbour entry,
/// and still only one line about the unroutable one.
#[test]
fn an_unroutable_real_server_is_warned_about_once() {
    if !require_root("rate-limited warnings") {
        return;
    }
    let d = director_with("warnrt", 1, &[]).unwrap();
    let unroutable = "10.99.0.1";
    assert!(
        d.seed.director.ip(&["route", "get", unroutable]).is_err(),
        "the lab's director must have no route to {unroutable}"
    );
    let vip = format!("{}:80", seed::VIP);
    d.adm(&["-A", "-t", &vip, "-s", "rr"]);
    d.adm(&["-a", "-t", &vip, "-r", &format!("{unroutable}:80"), "-m"]);
    let said = format!("no route to {unroutable}");
    assert!(
        wait_until(Duration::from_secs(5), || d.load_log().contains(&said)),
        "never warned:\n{}",
        d.load_log()
    );
    // Six more ticks.
    std::thread::sleep(Duration::from_secs(6));
    let rs = seed::rs_ip(0).to_string();
    d.adm(&["-a", "-t", &vip, "-r", &format!("{rs}:80"), "-m"]);
    let resolved = format!("neighbour {rs} on ");
    assert!(
        wait_until(Duration::from_secs(5), || d.load_log().contains(&resolved)),
        "the daemon stopped ticking:\n{}",
        d.load_log()
    );
    std::thread::sleep(Duration::from_secs(1));
    let log = d.load_log();
    assert_eq!(
        log.matches(&said).count(),
        1,
        "over 8 s of ticks the unroutable server was warned about:\n{log}"
    );
    assert!(d.load_running());
}
