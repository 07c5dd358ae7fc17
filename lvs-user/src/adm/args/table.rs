//! Every option ipvsadm 1.31 knows, listed once.
//!
//! Each row is one popt option: its long name, its short names, whether it
//! takes a value, and what it is to ipvsadm:
//! - a command (`Cmd`, the rows of the legality matrix, in ipvsadm's
//!   `CMD_*` order, with the name its messages use);
//! - an option of one of ipvsadm's option classes (`Opt`, the columns of
//!   the legality matrix, in ipvsadm's `OPT_*` order, which decides which of
//!   several errors is reported; `-t`, `-u`, `--sctp-service` and `-f` are
//!   all 'service-address', `-m`, `-i` and `-g` all 'forwarding-method');
//! - or neither (`-h`, `-v`, `--sort`, `-6`).
//!
//! `option_table!` turns the rows into the enums `Cmd`, `Opt` (with their
//! names), `Tag` (one per option of a class), `Action` and `Other`, and
//! into `OPTIONS`, the table the lexer searches.

/// Whether an option takes a value (popt's `argInfo`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ArgKind {
    /// `POPT_ARG_NONE`.
    None,
    /// `POPT_ARG_STRING`: the rest of the word, `=value` or the next word.
    Required,
    /// `POPT_ARGFLAG_OPTIONAL` (`-p`): as `Required`, but a next word is
    /// taken only if it does not start with `-`, and there may be none.
    Optional,
}

/// What an option is to ipvsadm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Role {
    /// A command: only the first option may be one.
    Command(Cmd),
    /// `-h` or `-v`: a command that needs no checks.
    Action(Action),
    /// An option of class `Opt`; the tag tells the options of one class
    /// apart.
    Option(Opt, Tag),
    /// An option outside ipvsadm's classes (`--sort`, `-6`).
    Other(Other),
}

/// One popt option.
#[derive(Debug)]
pub(super) struct OptSpec {
    pub long: &'static str,
    pub short: &'static [char],
    pub arg: ArgKind,
    pub role: Role,
}

macro_rules! option_table {
    (
        commands {
            $( $cmd:ident $cmd_name:literal :
               $clong:literal [$($cshort:literal),*] $carg:ident ; )*
        }
        actions {
            $( $action:ident : $along:literal [$($ashort:literal),*] $aarg:ident ; )*
        }
        classes {
            $( $opt:ident $opt_name:literal :
               $( $otag:ident $olong:literal [$($oshort:literal),*] $oarg:ident ),+ ; )*
        }
        others {
            $( $other:ident : $xlong:literal [$($xshort:literal),*] $xarg:ident ; )*
        }
    ) => {
        /// ipvsadm's commands (`CMD_*`), in its order.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub(super) enum Cmd { $($cmd),* }

        impl Cmd {
            pub const ALL: &'static [Cmd] = &[$(Cmd::$cmd),*];

            /// The name ipvsadm's messages use.
            pub fn name(self) -> &'static str {
                match self { $(Cmd::$cmd => $cmd_name),* }
            }
        }

        /// ipvsadm's option classes (`OPT_*`), in its order.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub(super) enum Opt { $($opt),* }

        impl Opt {
            pub const ALL: &'static [Opt] = &[$(Opt::$opt),*];

            /// The name ipvsadm's messages use (its `optnames`).
            pub fn name(self) -> &'static str {
                match self { $(Opt::$opt => $opt_name),* }
            }
        }

        /// The commands that need no checks.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub(super) enum Action { $($action),* }

        /// The options of a class, one tag each.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub(super) enum Tag { $($($otag),+),* }

        /// The options outside ipvsadm's classes.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub(super) enum Other { $($other),* }

        /// The lexer's table.
        pub(super) const OPTIONS: &[OptSpec] = &[
            $(OptSpec {
                long: $clong,
                short: &[$($cshort),*],
                arg: ArgKind::$carg,
                role: Role::Command(Cmd::$cmd),
            },)*
            $(OptSpec {
                long: $along,
                short: &[$($ashort),*],
                arg: ArgKind::$aarg,
                role: Role::Action(Action::$action),
            },)*
            $($(OptSpec {
                long: $olong,
                short: &[$($oshort),*],
                arg: ArgKind::$oarg,
                role: Role::Option(Opt::$opt, Tag::$otag),
            },)+)*
            $(OptSpec {
                long: $xlong,
                short: &[$($xshort),*],
                arg: ArgKind::$xarg,
                role: Role::Other(Other::$other),
            },)*
        ];
    };
}

option_table! {
    commands {
        // Cmd and its name in messages:   long name          short       value
        Add "add-service":                 "add-service"      ['A']       None;
        Edit "edit-service":               "edit-service"     ['E']       None;
        Del "delete-service":              "delete-service"   ['D']       None;
        Flush "flush":                     "clear"            ['C']       None;
        List "list":                       "list"             ['L', 'l']  None;
        AddDest "add-server":              "add-server"       ['a']       None;
        DelDest "delete-server":           "delete-server"    ['d']       None;
        EditDest "edit-server":            "edit-server"      ['e']       None;
        Set "set":                         "set"              []          None;
        StartDaemon "start-daemon":        "start-daemon"     []          Required;
        StopDaemon "stop-daemon":          "stop-daemon"      []          Required;
        Restore "restore":                 "restore"          ['R']       None;
        Save "save":                       "save"             ['S']       None;
        Zero "zero":                       "zero"             ['Z']       None;
    }
    actions {
        // Action:                         long name          short       value
        Help:                              "help"             ['h']       None;
        Version:                           "version"          ['v']       None;
    }
    classes {
        // Opt and its name in messages:   Tag and its long name              short  value
        Numeric "numeric":                 Numeric "numeric"                  ['n']  None;
        Connection "connection":           Connection "connection"            ['c']  None;
        Service "service-address":         Tcp "tcp-service"                  ['t']  Required,
                                           Udp "udp-service"                  ['u']  Required,
                                           Sctp "sctp-service"                []     Required,
                                           Fwmark "fwmark-service"            ['f']  Required;
        Scheduler "scheduler":             Scheduler "scheduler"              ['s']  Required;
        Persistent "persistent":           Persistent "persistent"            ['p']  Optional;
        Netmask "netmask":                 Netmask "netmask"                  ['M']  Required;
        Server "real-server":              RealServer "real-server"           ['r']  Required;
        Forward "forwarding-method":       Masquerading "masquerading"        ['m']  None,
                                           Ipip "ipip"                        ['i']  None,
                                           Gatewaying "gatewaying"            ['g']  None;
        Weight "weight":                   Weight "weight"                    ['w']  Required;
        UThreshold "u-threshold":          UThreshold "u-threshold"           ['x']  Required;
        LThreshold "l-threshold":          LThreshold "l-threshold"           ['y']  Required;
        McastInterface "mcast-interface":  McastInterface "mcast-interface"   []     Required;
        Timeout "timeout":                 Timeout "timeout"                  []     None;
        Daemon "daemon":                   Daemon "daemon"                    []     None;
        Stats "stats":                     Stats "stats"                      []     None;
        Rate "rate":                       Rate "rate"                        []     None;
        Thresholds "thresholds":           Thresholds "thresholds"            []     None;
        PersistentConn "persistent-conn":  PersistentConn "persistent-conn"   []     None;
        NoSort "nosort":                   NoSort "nosort"                    []     None;
        SyncId "syncid":                   SyncId "syncid"                    []     Required;
        Exact "exact":                     Exact "exact"                      ['X']  None;
        Ops "ops":                         Ops "ops"                          ['o']  None;
        Pe "pe":                           Pe "pe"                            []     Required;
        SchedFlags "sched-flags":          SchedFlags "sched-flags"           ['b']  Required;
        McastGroup "mcast-group":          McastGroup "mcast-group"           []     Required;
        McastPort "mcast-port":            McastPort "mcast-port"             []     Required;
        McastTtl "mcast-ttl":              McastTtl "mcast-ttl"               []     Required;
        SyncMaxlen "sync-maxlen":          SyncMaxlen "sync-maxlen"           []     Required;
        TunInfo "tun-info":                TunInfo "tun-info"                 []     None;
        TunType "tun-type":                TunType "tun-type"                 []     Required;
        TunPort "tun-port":                TunPort "tun-port"                 []     Required;
        TunNocsum "tun-nocsum":            TunNocsum "tun-nocsum"             []     None;
        TunCsum "tun-csum":                TunCsum "tun-csum"                 []     None;
        TunRemcsum "tun-remcsum":          TunRemcsum "tun-remcsum"           []     None;
    }
    others {
        // Other:                          long name          short       value
        Sort:                              "sort"             []          None;
        Ipv6:                              "ipv6"             ['6']       None;
    }
}

impl Cmd {
    pub const COUNT: usize = Cmd::ALL.len();
}

impl Opt {
    pub const COUNT: usize = Opt::ALL.len();
}

impl OptSpec {
    /// The option `--name` names.
    pub fn by_long(name: &str) -> Option<&'static OptSpec> {
        OPTIONS.iter().find(|s| s.long == name)
    }

    /// The option `-c` names.
    pub fn by_short(c: char) -> Option<&'static OptSpec> {
        OPTIONS.iter().find(|s| s.short.contains(&c))
    }
}

/// A set of option classes: the options given so far (ipvsadm's `options`
/// bit mask).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct OptSet(u64);

impl OptSet {
    pub const fn of(opts: &[Opt]) -> OptSet {
        let mut bits = 0;
        let mut i = 0;
        while i < opts.len() {
            bits |= OptSet::bit(opts[i]);
            i += 1;
        }
        OptSet(bits)
    }

    const fn bit(opt: Opt) -> u64 {
        1 << opt as u32
    }

    pub fn contains(self, opt: Opt) -> bool {
        self.0 & OptSet::bit(opt) != 0
    }

    /// Whether any of `other` is in the set.
    pub fn meets(self, other: OptSet) -> bool {
        self.0 & other.0 != 0
    }

    pub fn insert(&mut self, opt: Opt) {
        self.0 |= OptSet::bit(opt);
    }
}

// The set is one `u64`.
const _: () = assert!(Opt::COUNT <= 64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique() {
        for (i, a) in OPTIONS.iter().enumerate() {
            for b in &OPTIONS[i + 1..] {
                assert_ne!(a.long, b.long);
                assert!(!a.short.iter().any(|c| b.short.contains(c)), "{a:?} {b:?}");
            }
        }
    }

    #[test]
    fn every_class_has_an_option() {
        for &opt in Opt::ALL {
            assert!(
                OPTIONS
                    .iter()
                    .any(|s| matches!(s.role, Role::Option(o, _) if o == opt)),
                "{opt:?}"
            );
        }
        assert_eq!(Opt::COUNT, 34);
        assert_eq!(Cmd::COUNT, 14);
        // ipvsadm 1.31's popt table, with -L and -l in one row.
        assert_eq!(OPTIONS.len(), 57);
    }

    #[test]
    fn lookups() {
        let list = OptSpec::by_short('l').unwrap();
        assert_eq!(list.role, Role::Command(Cmd::List));
        assert!(std::ptr::eq(list, OptSpec::by_short('L').unwrap()));
        assert!(std::ptr::eq(list, OptSpec::by_long("list").unwrap()));
        assert_eq!(
            OptSpec::by_long("fwmark-service").unwrap().role,
            Role::Option(Opt::Service, Tag::Fwmark)
        );
        assert_eq!(OptSpec::by_short('p').unwrap().arg, ArgKind::Optional);
        assert!(OptSpec::by_short('Q').is_none());
        assert!(OptSpec::by_long("bogus").is_none());
    }
}
