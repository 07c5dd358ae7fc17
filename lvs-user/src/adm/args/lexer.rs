//! Splits an argument vector into options the way popt does.
//!
//! - Short flags combine (`-Ln`, `-Lnc`); a short option's value may be
//!   attached (`-srr`, `-s=rr`) or the next word.
//! - Long options take `--opt value` or `--opt=value`.
//! - An optional value (`-p`) is taken only from a next word not starting
//!   with `-`.
//! - Words that are not options are collected as arguments; `--` makes
//!   every later word one.
//!
//! Errors are popt's, "WORD: WHAT" naming the word last read, with
//! ipvsadm's exit status for them (255).

use super::super::{Error, EXIT_ERROR};
use super::table::{ArgKind, OptSpec};

/// One option read, and its value.
pub(super) type Item = (&'static OptSpec, Option<String>);

pub(super) struct Lexer<'a> {
    argv: &'a [String],
    /// Next word to read.
    next: usize,
    /// Inside a cluster of short options: word index and byte offset of the
    /// next option character.
    cluster: Option<(usize, usize)>,
    /// After `--`.
    only_args: bool,
    /// Words that are not options, in order.
    pub args: Vec<String>,
    /// The last word consumed, which popt names in its errors.
    last: usize,
}

impl<'a> Lexer<'a> {
    /// A lexer over `argv[1..]`.
    pub fn new(argv: &'a [String]) -> Lexer<'a> {
        Lexer {
            argv,
            next: 1,
            cluster: None,
            only_args: false,
            args: Vec::new(),
            last: 0,
        }
    }

    /// The word popt's `poptBadOption` would name: the last one read.
    pub fn bad_word(&self) -> &str {
        &self.argv[self.last]
    }

    /// The next option and its value; `Ok(None)` at the end.
    pub fn next_opt(&mut self) -> Result<Option<Item>, Error> {
        self.next_item().map_err(|what| Error {
            code: EXIT_ERROR,
            msg: format!("{}: {what}", self.bad_word()),
        })
    }

    fn next_item(&mut self) -> Result<Option<Item>, &'static str> {
        let argv = self.argv;
        loop {
            if let Some((i, off)) = self.cluster.take() {
                return self.short(i, off).map(Some);
            }
            let Some(word) = argv.get(self.next) else {
                return Ok(None);
            };
            self.last = self.next;
            self.next += 1;
            if self.only_args {
                self.args.push(word.clone());
            } else if word == "--" {
                self.only_args = true;
            } else if let Some(long) = word.strip_prefix("--") {
                return self.long(long).map(Some);
            } else if word.len() > 1 && word.starts_with('-') {
                self.cluster = Some((self.last, 1));
            } else {
                self.args.push(word.clone());
            }
        }
    }

    /// The short option at byte `off` of word `i`.
    fn short(&mut self, i: usize, off: usize) -> Result<Item, &'static str> {
        let word = &self.argv[i];
        let c = word[off..]
            .chars()
            .next()
            .expect("cluster offset inside word");
        let after = off + c.len_utf8();
        let spec = OptSpec::by_short(c).ok_or("unknown option")?;
        if spec.arg == ArgKind::None {
            if after < word.len() {
                self.cluster = Some((i, after));
            }
            return Ok((spec, None));
        }
        if after < word.len() {
            let v = &word[after..];
            let v = v.strip_prefix('=').unwrap_or(v);
            return Ok((spec, Some(v.to_string())));
        }
        Ok((spec, self.take_value(spec.arg)?))
    }

    /// `--long` or `--long=value`.
    fn long(&mut self, long: &str) -> Result<Item, &'static str> {
        let (name, value) = match long.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (long, None),
        };
        let spec = OptSpec::by_long(name).ok_or("unknown option")?;
        match (spec.arg, value) {
            (ArgKind::None, Some(_)) => Err("option does not take an argument"),
            (ArgKind::None, None) => Ok((spec, None)),
            (_, Some(v)) => Ok((spec, Some(v.to_string()))),
            (kind, None) => Ok((spec, self.take_value(kind)?)),
        }
    }

    /// An option's value from the next word.
    fn take_value(&mut self, kind: ArgKind) -> Result<Option<String>, &'static str> {
        match self.argv.get(self.next) {
            None if kind == ArgKind::Optional => Ok(None),
            None => Err("missing argument"),
            Some(w) if kind == ArgKind::Optional && w.starts_with('-') => Ok(None),
            Some(w) => {
                self.last = self.next;
                self.next += 1;
                Ok(Some(w.clone()))
            }
        }
    }
}
