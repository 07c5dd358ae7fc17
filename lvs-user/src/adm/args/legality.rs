//! ipvsadm's legality rules, as data: which options each command takes
//! (ipvsadm's `commands_v_options` matrix) and which options each tunnel
//! type takes (its `tunnel_types_v_options`), and the one check reading
//! both, with ipvsadm's messages.

use super::super::Error;
use super::fail;
use super::table::{Cmd, Opt, OptSet};
use crate::adm::command::TunnelType;

/// How an option may go with a command (or a tunnel type).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Rule {
    /// `+`: must be given.
    Required,
    /// `x`: must not be given.
    Illegal,
    /// `1`: at most one of the row's `1` options may be given.
    Exclusive,
    /// `.`: may be given.
    Optional,
}

/// One row of a matrix: one character per column, blanks between them
/// ignored; a malformed row fails the build.
const fn rules<const N: usize>(row: &str) -> [Rule; N] {
    let row = row.as_bytes();
    let mut out = [Rule::Illegal; N];
    let (mut i, mut col) = (0, 0);
    while i < row.len() {
        let rule = match row[i] {
            b' ' => None,
            b'+' => Some(Rule::Required),
            b'x' => Some(Rule::Illegal),
            b'1' => Some(Rule::Exclusive),
            b'.' => Some(Rule::Optional),
            _ => panic!("a matrix cell is one of + x 1 ."),
        };
        if let Some(rule) = rule {
            assert!(col < N, "a matrix row has too many cells");
            out[col] = rule;
            col += 1;
        }
        i += 1;
    }
    assert!(col == N, "a matrix row has too few cells");
    out
}

/// ipvsadm's `commands_v_options`: a row per command, in `Cmd` order, a
/// column per option class, in `Opt` order.
#[rustfmt::skip]
const COMMANDS_V_OPTIONS: [(Cmd, [Rule; Opt::COUNT]); Cmd::COUNT] = {
    use Cmd::*;
    [
    //                   -n   svc    -p    -r    -w    -y   tmo   sta   thr   nos    -X    pe   mgr   ttl   tin   tpt   csm
    //                      -c    -s    -M   fwd    -x   mif   dmn   rat   pco   sid    -o    -b   mpt   len   tty   noc   rem
    (Add,         rules(" x  x  +  .  .  .  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  .  .  .  x  x  x  x  x  x  x  x  x  x")),
    (Edit,        rules(" x  x  +  .  .  .  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  .  .  .  x  x  x  x  x  x  x  x  x  x")),
    (Del,         rules(" x  x  +  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x")),
    (Flush,       rules(" x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x")),
    (List,        rules(" .  1  1  x  x  x  x  x  x  x  x  x  1  1  .  .  .  .  .  .  .  x  x  x  x  x  x  x  .  x  x  x  x  x")),
    (AddDest,     rules(" x  x  +  x  x  x  +  .  .  .  .  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  .  .  .  .  .")),
    (DelDest,     rules(" x  x  +  x  x  x  +  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x")),
    (EditDest,    rules(" x  x  +  x  x  x  +  .  .  .  .  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  .  .  .  .  .")),
    (Set,         rules(" x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x")),
    (StartDaemon, rules(" x  x  x  x  x  x  x  x  x  x  x  .  x  x  x  x  x  x  x  .  x  x  x  x  .  .  .  .  x  x  x  x  x  x")),
    (StopDaemon,  rules(" x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  .  x  x  x  x  x  x  x  x  x  x  x  x  x  x")),
    (Restore,     rules(" x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x")),
    (Save,        rules(" .  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x")),
    (Zero,        rules(" x  x  .  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x  x")),
    ]
};

// Each row sits at its command's index.
const _: () = {
    let mut i = 0;
    while i < Cmd::COUNT {
        assert!(
            COMMANDS_V_OPTIONS[i].0 as usize == i,
            "matrix rows in Cmd order"
        );
        i += 1;
    }
};

/// The columns of `TUNNEL_TYPES_V_OPTIONS`.
const TUNNEL_COLUMNS: [Opt; 4] = [Opt::TunPort, Opt::TunNocsum, Opt::TunCsum, Opt::TunRemcsum];

/// ipvsadm's `tunnel_types_v_options`, with each type's name.
#[rustfmt::skip]
const TUNNEL_TYPES_V_OPTIONS: [(TunnelType, &str, [Rule; 4]); 2] = [
    //                            tun-port  nocsum  csum  remcsum
    (TunnelType::Ipip, "ipip", rules("  x        x      x      x")),
    (TunnelType::Gue,  "gue",  rules("  +        1      1      1")),
];

/// Every option class that configures a tunnel.
pub(super) const TUNNEL_OPTIONS: OptSet = OptSet::of(&[
    Opt::TunType,
    Opt::TunPort,
    Opt::TunNocsum,
    Opt::TunCsum,
    Opt::TunRemcsum,
]);

/// ipvsadm's `generic_opt_check`: the options given suit the command.
pub(super) fn check_command(cmd: Cmd, given: OptSet) -> Result<(), Error> {
    let row = COMMANDS_V_OPTIONS[cmd as usize].1;
    let subject = format!("'{}' command", cmd.name());
    check(Opt::ALL.iter().copied().zip(row), given, &subject).map(|_| ())
}

/// ipvsadm's `tunnel_opt_check`: the tunnel options given suit the tunnel
/// type. Returns the checksum option given, if any.
pub(super) fn check_tunnel(kind: TunnelType, given: OptSet) -> Result<Option<Opt>, Error> {
    let (_, name, row) = TUNNEL_TYPES_V_OPTIONS
        .iter()
        .find(|(k, ..)| *k == kind)
        .expect("every tunnel type has a row");
    let subject = format!("'{name}' tunnel type");
    check(TUNNEL_COLUMNS.into_iter().zip(*row), given, &subject)
}

/// ipvsadm's own check of `-L`'s options, beyond the matrix.
pub(super) fn check_list(given: OptSet) -> Result<(), Error> {
    use Opt::*;
    let conflicts = [
        (
            OptSet::of(&[Connection, Timeout, Daemon]),
            OptSet::of(&[Stats, Rate, Thresholds]),
        ),
        (
            OptSet::of(&[Timeout, Daemon]),
            OptSet::of(&[PersistentConn]),
        ),
    ];
    if conflicts
        .iter()
        .any(|&(a, b)| given.meets(a) && given.meets(b))
    {
        return Err(fail("options conflicts in the list command"));
    }
    Ok(())
}

/// Checks the options given against one matrix row, column by column, and
/// reports the first broken rule. Returns the exclusive option given.
fn check(
    row: impl Iterator<Item = (Opt, Rule)>,
    given: OptSet,
    subject: &str,
) -> Result<Option<Opt>, Error> {
    let mut exclusive: Option<Opt> = None;
    for (opt, rule) in row {
        let name = opt.name();
        match (rule, given.contains(opt)) {
            (Rule::Required, false) => {
                return Err(fail(format!(
                    "You need to supply the '{name}' option for the {subject}"
                )))
            }
            (Rule::Illegal, true) => {
                return Err(fail(format!("Illegal '{name}' option with the {subject}")))
            }
            (Rule::Exclusive, true) => match exclusive {
                None => exclusive = Some(opt),
                Some(first) => {
                    return Err(fail(format!(
                        "The option '{name}' conflicts with the '{}' option in the {subject}",
                        first.name()
                    )))
                }
            },
            _ => {}
        }
    }
    Ok(exclusive)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(cmd: Cmd, opt: Opt) -> Rule {
        COMMANDS_V_OPTIONS[cmd as usize].1[opt as usize]
    }

    /// ipvsadm 1.31's matrix, written the other way round: per command, the
    /// options it requires, takes, and takes at most one of.
    fn ipvsadm_rule(cmd: Cmd, opt: Opt) -> Rule {
        use Opt::*;
        let (required, exclusive, optional): (&[Opt], &[Opt], &[Opt]) = match cmd {
            Cmd::Add | Cmd::Edit => (
                &[Service],
                &[],
                &[Scheduler, Persistent, Netmask, Ops, Pe, SchedFlags],
            ),
            Cmd::Del => (&[Service], &[], &[]),
            Cmd::List => (
                &[],
                &[Connection, Service, Timeout, Daemon],
                &[
                    Numeric,
                    Stats,
                    Rate,
                    Thresholds,
                    PersistentConn,
                    NoSort,
                    SyncId,
                    Exact,
                    TunInfo,
                ],
            ),
            Cmd::AddDest | Cmd::EditDest => (
                &[Service, Server],
                &[],
                &[
                    Forward, Weight, UThreshold, LThreshold, TunType, TunPort, TunNocsum, TunCsum,
                    TunRemcsum,
                ],
            ),
            Cmd::DelDest => (&[Service, Server], &[], &[]),
            Cmd::StartDaemon => (
                &[],
                &[],
                &[
                    McastInterface,
                    SyncId,
                    McastGroup,
                    McastPort,
                    McastTtl,
                    SyncMaxlen,
                ],
            ),
            Cmd::StopDaemon => (&[], &[], &[SyncId]),
            Cmd::Save => (&[], &[], &[Numeric]),
            Cmd::Zero => (&[], &[], &[Service]),
            Cmd::Flush | Cmd::Set | Cmd::Restore => (&[], &[], &[]),
        };
        if required.contains(&opt) {
            Rule::Required
        } else if exclusive.contains(&opt) {
            Rule::Exclusive
        } else if optional.contains(&opt) {
            Rule::Optional
        } else {
            Rule::Illegal
        }
    }

    #[test]
    fn matrix_is_ipvsadms() {
        for &cmd in Cmd::ALL {
            for &opt in Opt::ALL {
                assert_eq!(rule(cmd, opt), ipvsadm_rule(cmd, opt), "{cmd:?} {opt:?}");
            }
        }
    }

    /// The options a command requires.
    fn required(cmd: Cmd) -> Vec<Opt> {
        Opt::ALL
            .iter()
            .copied()
            .filter(|&o| rule(cmd, o) == Rule::Required)
            .collect()
    }

    #[test]
    fn every_pair_is_checked() {
        for &cmd in Cmd::ALL {
            let base = required(cmd);
            assert_eq!(check_command(cmd, OptSet::of(&base)), Ok(()), "{cmd:?}");
            for &opt in Opt::ALL {
                let mut given = OptSet::of(&base);
                given.insert(opt);
                let got = check_command(cmd, given);
                match rule(cmd, opt) {
                    Rule::Illegal => assert_eq!(
                        got,
                        Err(fail(format!(
                            "Illegal '{}' option with the '{}' command",
                            opt.name(),
                            cmd.name()
                        )))
                    ),
                    _ => assert_eq!(got, Ok(()), "{cmd:?} {opt:?}"),
                }
            }
        }
    }

    #[test]
    fn required_options_are_named_in_column_order() {
        for &cmd in Cmd::ALL {
            let req = required(cmd);
            for (i, &missing) in req.iter().enumerate() {
                // Given: every required option but `missing` and those after it.
                let given = OptSet::of(&req[..i]);
                assert_eq!(
                    check_command(cmd, given),
                    Err(fail(format!(
                        "You need to supply the '{}' option for the '{}' command",
                        missing.name(),
                        cmd.name()
                    )))
                );
            }
        }
        assert_eq!(required(Cmd::AddDest), [Opt::Service, Opt::Server]);
    }

    #[test]
    fn exclusive_options_conflict_pairwise() {
        for &cmd in Cmd::ALL {
            let excl: Vec<Opt> = Opt::ALL
                .iter()
                .copied()
                .filter(|&o| rule(cmd, o) == Rule::Exclusive)
                .collect();
            for (i, &a) in excl.iter().enumerate() {
                for &b in &excl[i + 1..] {
                    let mut given = OptSet::of(&required(cmd));
                    given.insert(a);
                    given.insert(b);
                    assert_eq!(
                        check_command(cmd, given),
                        Err(fail(format!(
                            "The option '{}' conflicts with the '{}' option in the '{}' command",
                            b.name(),
                            a.name(),
                            cmd.name()
                        )))
                    );
                }
            }
        }
    }

    #[test]
    fn tunnel_types() {
        use Opt::*;
        let ipip = |o: &[Opt]| check_tunnel(TunnelType::Ipip, OptSet::of(o));
        let gue = |o: &[Opt]| check_tunnel(TunnelType::Gue, OptSet::of(o));
        assert_eq!(ipip(&[TunType]), Ok(None));
        for o in [TunPort, TunNocsum, TunCsum, TunRemcsum] {
            assert_eq!(
                ipip(&[o]),
                Err(fail(format!(
                    "Illegal '{}' option with the 'ipip' tunnel type",
                    o.name()
                )))
            );
        }
        assert_eq!(
            gue(&[TunCsum]),
            Err(fail(
                "You need to supply the 'tun-port' option for the 'gue' tunnel type"
            ))
        );
        assert_eq!(gue(&[TunPort]), Ok(None));
        assert_eq!(gue(&[TunPort, TunRemcsum]), Ok(Some(TunRemcsum)));
        assert_eq!(
            gue(&[TunPort, TunNocsum, TunRemcsum]),
            Err(fail(
                "The option 'tun-remcsum' conflicts with the 'tun-nocsum' option in the 'gue' tunnel type"
            ))
        );
    }

    #[test]
    fn list_conflicts() {
        use Opt::*;
        let list = |o: &[Opt]| check_list(OptSet::of(o));
        let conflict = Err(fail("options conflicts in the list command"));
        for a in [Connection, Timeout, Daemon] {
            for b in [Stats, Rate, Thresholds] {
                assert_eq!(list(&[a, b]), conflict);
            }
        }
        assert_eq!(list(&[Timeout, PersistentConn]), conflict);
        assert_eq!(list(&[Daemon, PersistentConn]), conflict);
        assert_eq!(list(&[Connection, PersistentConn]), Ok(()));
        assert_eq!(list(&[Stats, Rate, Thresholds, PersistentConn]), Ok(()));
    }
}
