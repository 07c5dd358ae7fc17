//! Rate-limited warnings for the daemon's periodic work.
//!
//! `lvs load` looks at the same things every second (real servers' next
//! hops, the sweeper, VLAN sub-interfaces) and on every tick a condition
//! that does not go away (an unroutable real server, say) would be logged
//! again, filling the journal with one line a second forever. Each warning
//! goes through here instead: per key (by default the message itself), the
//! first occurrence is logged at once and the ones after it are counted,
//! not logged, for [`EVERY`]; the first occurrence after that is logged
//! with how many were held back. When a key stops occurring, the daemon's
//! tick ([`flush`]) logs what was held back of it once its period is over,
//! and forgets it, so a condition that comes back later is logged at once.
//!
//! [`Limiter`] takes the time as an argument (tests give it their own
//! clock); [`warn`], [`warn_as`] and [`flush`] run one limiter for the
//! whole process on the monotonic clock, shared by the daemon's threads.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

/// At most one line per key in this long.
pub const EVERY: Duration = Duration::from_secs(60);

/// One key's period: when it was last logged, and what came since.
struct Slot {
    logged: Instant,
    held: u64,
    /// The latest message of the key (what [`Limiter::expired`] reports).
    last: String,
}

/// Per-key limiter: at most one line per key each `every`.
pub struct Limiter {
    every: Duration,
    slots: HashMap<String, Slot>,
}

impl Limiter {
    pub fn new(every: Duration) -> Limiter {
        Limiter {
            every,
            slots: HashMap::new(),
        }
    }

    /// An occurrence of `key` with message `msg` at `now`: the line to log
    /// now, or `None` while the key's period runs (the occurrence is
    /// counted).
    pub fn hit(&mut self, key: &str, msg: &str, now: Instant) -> Option<String> {
        let every = self.every;
        match self.slots.get_mut(key) {
            Some(s) if now.saturating_duration_since(s.logged) < every => {
                s.held += 1;
                if s.last != msg {
                    s.last = msg.to_owned();
                }
                None
            }
            Some(s) => {
                let line = held_line(msg, s.held, now.saturating_duration_since(s.logged));
                s.logged = now;
                s.held = 0;
                s.last = msg.to_owned();
                Some(line)
            }
            None => {
                self.slots.insert(
                    key.to_owned(),
                    Slot {
                        logged: now,
                        held: 0,
                        last: msg.to_owned(),
                    },
                );
                Some(msg.to_owned())
            }
        }
    }

    /// The keys whose period is over at `now`: forgotten (their next
    /// occurrence is logged at once), and for each that held occurrences
    /// back, a line saying how many, with its latest message.
    pub fn expired(&mut self, now: Instant) -> Vec<String> {
        let every = self.every;
        let mut lines = Vec::new();
        self.slots.retain(|_, s| {
            let age = now.saturating_duration_since(s.logged);
            if age < every {
                return true;
            }
            if s.held > 0 {
                lines.push(held_line(&s.last, s.held, age));
            }
            false
        });
        lines.sort();
        lines
    }
}

/// `msg`, with how many like it were not logged in the `age` since the
/// last line of its key.
fn held_line(msg: &str, held: u64, age: Duration) -> String {
    match held {
        0 => msg.to_owned(),
        1 => format!(
            "{msg} (once more in the last {} s, not logged)",
            age.as_secs()
        ),
        n => format!(
            "{msg} ({n} more times in the last {} s, not logged)",
            age.as_secs()
        ),
    }
}

static LIMITER: Mutex<Option<Limiter>> = Mutex::new(None);

fn with<T>(f: impl FnOnce(&mut Limiter) -> T) -> T {
    // A thread that panicked while holding it leaves a usable limiter.
    let mut g = LIMITER.lock().unwrap_or_else(|p| p.into_inner());
    f(g.get_or_insert_with(|| Limiter::new(EVERY)))
}

/// Logs `msg` as a warning, at most once every [`EVERY`] (the message is
/// its own key: use [`warn_as`] when it carries a changing number).
pub fn warn(msg: &str) {
    warn_as(msg, msg);
}

/// Logs `msg` as a warning, at most once every [`EVERY`] per `key`.
pub fn warn_as(key: &str, msg: &str) {
    if let Some(line) = with(|l| l.hit(key, msg, Instant::now())) {
        log::warn!("{line}");
    }
}

/// Logs what was held back of the keys whose period is over; the daemon
/// calls it on its tick.
pub fn flush() {
    for line in with(|l| l.expired(Instant::now())) {
        log::warn!("{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A clock of our own: `at(s)` is `s` seconds after the start.
    fn clock() -> impl Fn(u64) -> Instant {
        let t0 = Instant::now();
        move |s| t0 + Duration::from_secs(s)
    }

    #[test]
    fn a_key_is_logged_at_most_once_a_period_then_with_what_was_held() {
        let at = clock();
        let mut l = Limiter::new(EVERY);
        let m = "no route to 10.9.9.9";
        assert_eq!(l.hit(m, m, at(0)).as_deref(), Some(m));
        // Once a second, as the daemon's tick would see it.
        for s in 1..60 {
            assert_eq!(l.hit(m, m, at(s)), None, "at {s} s");
        }
        assert_eq!(
            l.hit(m, m, at(60)).as_deref(),
            Some("no route to 10.9.9.9 (59 more times in the last 60 s, not logged)")
        );
        assert_eq!(l.hit(m, m, at(61)), None);
        assert_eq!(
            l.hit(m, m, at(120)).as_deref(),
            Some("no route to 10.9.9.9 (once more in the last 60 s, not logged)")
        );
        // Nothing held back, nothing to say.
        assert_eq!(
            l.hit(m, m, at(500)).as_deref(),
            Some("no route to 10.9.9.9")
        );
    }

    #[test]
    fn keys_are_limited_each_on_its_own() {
        let at = clock();
        let mut l = Limiter::new(EVERY);
        assert!(l.hit("a", "a", at(0)).is_some());
        assert!(l.hit("b", "b", at(1)).is_some());
        assert!(l.hit("a", "a", at(2)).is_none());
        assert!(l.hit("b", "b", at(2)).is_none());
        assert!(l.hit("a", "a", at(60)).is_some());
        assert!(l.hit("b", "b", at(60)).is_none(), "b's period began at 1 s");
        assert!(l.hit("b", "b", at(61)).is_some());
    }

    #[test]
    fn a_keyed_warning_reports_its_latest_message() {
        let at = clock();
        let mut l = Limiter::new(Duration::from_secs(10));
        assert_eq!(
            l.hit("evicted", "3 evicted", at(0)).as_deref(),
            Some("3 evicted")
        );
        assert_eq!(l.hit("evicted", "5 evicted", at(4)), None);
        assert_eq!(l.hit("evicted", "7 evicted", at(5)), None);
        assert_eq!(l.expired(at(9)), Vec::<String>::new(), "period not over");
        assert_eq!(
            l.expired(at(10)),
            ["7 evicted (2 more times in the last 10 s, not logged)"]
        );
        // Forgotten: the next occurrence is logged at once.
        assert_eq!(
            l.hit("evicted", "1 evicted", at(11)).as_deref(),
            Some("1 evicted")
        );
    }

    #[test]
    fn a_condition_that_stops_is_summed_up_once_and_forgotten() {
        let at = clock();
        let mut l = Limiter::new(EVERY);
        let m = "sweeper: cannot read CONNS";
        l.hit(m, m, at(0)).unwrap();
        for s in 1..=3 {
            assert!(l.hit(m, m, at(s)).is_none());
        }
        assert!(l.expired(at(30)).is_empty());
        assert_eq!(
            l.expired(at(60)),
            [format!("{m} (3 more times in the last 60 s, not logged)")]
        );
        assert!(l.expired(at(61)).is_empty(), "said once");
        // A key that held nothing back expires silently.
        l.hit("x", "x", at(100)).unwrap();
        assert!(l.expired(at(200)).is_empty());
        assert_eq!(l.hit("x", "x", at(201)).as_deref(), Some("x"));
        assert_eq!(l.hit(m, m, at(202)).as_deref(), Some(m));
    }

    #[test]
    fn a_clock_that_goes_back_holds_the_line() {
        let at = clock();
        let mut l = Limiter::new(EVERY);
        l.hit("k", "k", at(10)).unwrap();
        // Instants from another thread may be slightly older.
        assert!(l.hit("k", "k", at(5)).is_none());
        assert!(l.expired(at(5)).is_empty());
    }
}
