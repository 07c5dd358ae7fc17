//! The lexer's tokens as a tree of statements: a keyword, its arguments
//! and, when a `{` follows (on the same line or the next), the block of
//! statements up to the matching `}`.
//!
//! Only the shape is checked here (every `{` closed, no `}` too many, no
//! `{` without a keyword before it); which keywords take a block, and
//! which words they take, is `keywords`'s business.

use super::lexer::{Pos, Tok, Token};
use super::ConfigError;

/// Blocks nest at most this deep (keepalived.conf needs four:
/// virtual_server, real_server, checker, url).
pub const MAX_NESTING: usize = 32;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stmt {
    pub pos: Pos,
    /// The keyword.
    pub key: String,
    pub args: Vec<String>,
    /// The block, with where its `{` was; None: no block followed.
    pub block: Option<Vec<Stmt>>,
}

/// Reads the whole stream into top-level statements.
pub fn parse(tokens: Vec<Token>) -> Result<Vec<Stmt>, ConfigError> {
    let mut it = tokens.into_iter().peekable();
    let top = statements(&mut it, None, 0)?;
    Ok(top)
}

type Stream = std::iter::Peekable<std::vec::IntoIter<Token>>;

/// Statements up to the `}` closing the block opened at `opened` (or the
/// end of the text at the top level).
fn statements(
    it: &mut Stream,
    opened: Option<&Pos>,
    depth: usize,
) -> Result<Vec<Stmt>, ConfigError> {
    let mut out: Vec<Stmt> = Vec::new();
    loop {
        let Some(t) = it.next() else {
            return match opened {
                Some(pos) => Err(pos.err("missing '}': the block opened here is never closed")),
                None => Ok(out),
            };
        };
        match t.tok {
            Tok::End => {}
            Tok::Close => {
                return match opened {
                    Some(_) => Ok(out),
                    None => Err(t.pos.err("extra '}': no block is open here")),
                }
            }
            Tok::Open => {
                return Err(t
                    .pos
                    .err("unexpected '{': no keyword before it to open a block for"))
            }
            Tok::Word(key) => {
                let mut args = Vec::new();
                while let Some(Token {
                    tok: Tok::Word(_), ..
                }) = it.peek()
                {
                    if let Some(Token {
                        tok: Tok::Word(w), ..
                    }) = it.next()
                    {
                        args.push(w);
                    }
                }
                // A block may open on the same line or on a later one
                // (`virtual_server … 80` then `{` alone), as keepalived
                // reads it.
                while let Some(Token { tok: Tok::End, .. }) = it.peek() {
                    it.next();
                }
                let block = match it.peek() {
                    Some(Token {
                        tok: Tok::Open,
                        pos,
                    }) => {
                        let open = pos.clone();
                        it.next();
                        if depth + 1 >= MAX_NESTING {
                            return Err(
                                open.err(format!("blocks nest more than {MAX_NESTING} deep"))
                            );
                        }
                        Some(statements(it, Some(&open), depth + 1)?)
                    }
                    _ => None,
                };
                out.push(Stmt {
                    pos: t.pos,
                    key,
                    args,
                    block,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::lexer::lex_str;
    use super::*;
    use std::path::Path;

    fn p(s: &str) -> Result<Vec<Stmt>, String> {
        lex_str(s, Path::new("b.conf"))
            .and_then(parse)
            .map_err(|e| e.to_string())
    }

    /// The tree as `key(args){…}` for compact assertions.
    fn show(v: &[Stmt]) -> String {
        v.iter()
            .map(|s| {
                let mut o = format!("{}@{}", s.key, s.pos.line);
                for a in &s.args {
                    o += &format!(" {a}");
                }
                if let Some(b) = &s.block {
                    o += &format!("{{{}}}", show(b));
                }
                o
            })
            .collect::<Vec<_>>()
            .join(";")
    }

    #[test]
    fn blocks_on_one_line_and_on_the_next() {
        let t =
            p("vs 1 80\n{\n lvs_sched rr\n rs 2 80 { weight 1\n  C { url { path /x }\n }}\n}\n")
                .unwrap();
        assert_eq!(
            show(&t),
            "vs@1 1 80{lvs_sched@3 rr;rs@4 2 80{weight@4 1;C@5{url@5{path@5 /x}}}}"
        );
    }

    #[test]
    fn shape_errors_name_their_line() {
        assert_eq!(
            p("a {\n b\n").unwrap_err(),
            "b.conf:1: missing '}': the block opened here is never closed"
        );
        assert_eq!(
            p("a {\n}\n}\n").unwrap_err(),
            "b.conf:3: extra '}': no block is open here"
        );
        assert_eq!(
            p("a {\n {\n}\n}").unwrap_err(),
            "b.conf:2: unexpected '{': no keyword before it to open a block for"
        );
        let deep = "a {\n".repeat(40);
        assert!(p(&deep).unwrap_err().contains("nest more than"));
    }
}
