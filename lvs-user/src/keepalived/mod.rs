//! keepalived.conf's virtual servers (keepalived.conf(5), keepalived 2.x),
//! read into [`model::KaConfig`]: what `lvs load --config FILE` and
//! `lvs check --config FILE` apply to the tables and check.
//!
//! `model` holds the parsed configuration with keepalived's defaults
//! already filled in; the parser turns a file and its `include`s into it,
//! or into one `FILE:LINE: …` error, in three steps: `lexer` (words with
//! their file and line, includes followed), `block` (the statement tree),
//! `keywords` and `checkers` (keywords mapped to the model, with
//! `values` for the value syntaxes). `convert` gives the lvsadm-level
//! view of a virtual server. The health checker (`crate::health`) reads
//! only `model`.

use std::fmt;
use std::path::{Path, PathBuf};

pub mod block;
mod checkers;
pub mod convert;
mod keywords;
pub mod lexer;
pub mod model;
pub mod values;

pub use model::{KaConfig, Origin};

/// Why a configuration was refused: where, and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// From 1; 0 when the error is about the file as a whole.
    pub line: u32,
    pub msg: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.msg)
        } else {
            write!(f, "{}:{}: {}", self.file.display(), self.line, self.msg)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Reads keepalived.conf at `path` (and what it includes).
pub fn load(path: &Path) -> Result<KaConfig, ConfigError> {
    let tokens = lexer::lex_file(path)?;
    keywords::config(&block::parse(tokens)?)
}

/// Parses `text` as if it were the file `name` (includes are relative to
/// `name`'s directory).
pub fn parse_str(text: &str, name: &Path) -> Result<KaConfig, ConfigError> {
    let tokens = lexer::lex_str(text, name)?;
    keywords::config(&block::parse(tokens)?)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod props;
