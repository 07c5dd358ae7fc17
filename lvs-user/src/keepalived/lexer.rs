//! keepalived.conf's words, as keepalived's reader splits them, each with
//! the file and line it came from; `include` is followed here, so the
//! block parser sees one stream.
//!
//! What keepalived.conf(5) says about the text, kept:
//! - `#` and `!` start a comment anywhere outside quotes;
//! - words are split at blanks; `{` and `}` are words of their own even
//!   when written against another word (`80{`);
//! - a statement ends at the end of its line, at `{` and at `}` (so
//!   `url { path / }` is three statements on one line);
//! - `"…"` and `'…'` quote, the quotes are removed and the blanks inside
//!   kept; a quoted part joins the unquoted text it touches
//!   (`abcd" efg"` is one word); inside quotes `\n`, `\t`, `\\`, `\"`, …,
//!   `\nnn` and `\xXX` are escapes;
//! - `include FILE` (and its variants `includer`, `includem`, `includew`,
//!   `includeb`, `includea`) is replaced by the files FILE names, FILE
//!   being a glob pattern with csh braces (libc's `glob`, as keepalived),
//!   relative to the directory of the file that includes it.
//!
//! Deliberately stricter than keepalived: an include that names no file is
//! an error (keepalived's plain `include` only logs it, `keepalived -e`
//! fails); includes nest at most [`MAX_DEPTH`] deep, and the whole text
//! is at most [`MAX_BYTES`]; conditional lines (`@id …`) and parameters
//! (`$NAME=…`) are refused by name, not silently taken as keywords.

use std::ffi::{CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::ConfigError;

/// How deep includes may nest (a file including itself stops here).
pub const MAX_DEPTH: usize = 16;
/// The most text one configuration may hold, includes counted: far more
/// than any real one (1 000 real servers with checkers are ~0.5 MiB),
/// and a bound on the parser's memory (its tokens cost a few times the
/// text).
pub const MAX_BYTES: usize = 16 << 20;

/// Where a word is: the file (shared by its words) and the line (from 1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pos {
    pub file: Arc<PathBuf>,
    pub line: u32,
}

impl Pos {
    pub fn err(&self, msg: impl Into<String>) -> ConfigError {
        ConfigError {
            file: (*self.file).clone(),
            line: self.line,
            msg: msg.into(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tok {
    /// A word, quotes removed.
    Word(String),
    Open,
    Close,
    /// The end of a statement that is not ended by a brace.
    End,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub tok: Tok,
    pub pos: Pos,
}

/// Reads `path` and everything it includes into tokens.
pub fn lex_file(path: &Path) -> Result<Vec<Token>, ConfigError> {
    let mut lx = Lexer {
        out: Vec::new(),
        bytes: 0,
    };
    let text = read(path, None, &mut lx.bytes)?;
    lx.lex(&text, Arc::new(path.to_path_buf()), 0)?;
    Ok(lx.out)
}

/// Tokens of `text` as if read from the file `name` (includes relative to
/// its directory).
pub fn lex_str(text: &str, name: &Path) -> Result<Vec<Token>, ConfigError> {
    let mut lx = Lexer {
        out: Vec::new(),
        bytes: text.len(),
    };
    lx.lex(text, Arc::new(name.to_path_buf()), 0)?;
    Ok(lx.out)
}

struct Lexer {
    out: Vec<Token>,
    bytes: usize,
}

/// Reads one file, counting its size against [`MAX_BYTES`]; `from` is
/// the include line that named it, for the message.
fn read(path: &Path, from: Option<&Pos>, bytes: &mut usize) -> Result<String, ConfigError> {
    let fail = |msg: String| match from {
        Some(pos) => pos.err(msg),
        None => ConfigError {
            file: path.to_path_buf(),
            line: 0,
            msg,
        },
    };
    // Never more than the limit, whatever the file is (`include
    // /dev/zero` has no end).
    let mut data = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| {
            use std::io::Read;
            f.take((MAX_BYTES - (*bytes).min(MAX_BYTES)) as u64 + 1)
                .read_to_end(&mut data)
        })
        .map_err(|e| fail(format!("cannot read {}: {e}", path.display())))?;
    *bytes += data.len();
    if *bytes > MAX_BYTES {
        return Err(fail(format!(
            "the configuration exceeds {} MiB with {}",
            MAX_BYTES >> 20,
            path.display()
        )));
    }
    String::from_utf8(data).map_err(|e| {
        // The line of the first bad byte, so the message points at it.
        let upto = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..upto].iter().filter(|&&b| b == b'\n').count() as u32 + 1;
        ConfigError {
            file: path.to_path_buf(),
            line,
            msg: "the file is not UTF-8 text".into(),
        }
    })
}

impl Lexer {
    fn lex(&mut self, text: &str, file: Arc<PathBuf>, depth: usize) -> Result<(), ConfigError> {
        for (i, line) in text.split('\n').enumerate() {
            let pos = Pos {
                file: Arc::clone(&file),
                line: u32::try_from(i + 1).unwrap_or(u32::MAX),
            };
            // An include's pattern keeps its braces (csh's `{a,b}`).
            let first = line.split_whitespace().next().unwrap_or("");
            let toks = split_line(line, &pos, !is_include(first))?;
            if let Some(Tok::Word(first)) = toks.first() {
                if is_include(first) {
                    self.include(first, &toks[1..], &pos, depth)?;
                    continue;
                }
                if first.starts_with('@') {
                    return Err(pos.err(format!(
                        "conditional configuration ('{first}') is not supported by lvs-xdp"
                    )));
                }
                if first.starts_with('$') {
                    return Err(pos.err(format!(
                        "parameter substitution ('{first}') is not supported by lvs-xdp"
                    )));
                }
            }
            let ends_open = !toks.is_empty();
            for tok in toks {
                self.out.push(Token {
                    tok,
                    pos: pos.clone(),
                });
            }
            if ends_open {
                self.out.push(Token { tok: Tok::End, pos });
            }
        }
        Ok(())
    }

    fn include(
        &mut self,
        kw: &str,
        args: &[Tok],
        pos: &Pos,
        depth: usize,
    ) -> Result<(), ConfigError> {
        let pattern = match args {
            [Tok::Word(p)] => p,
            [] => return Err(pos.err(format!("{kw} needs a file name"))),
            _ => return Err(pos.err(format!("{kw} takes one file name (a glob pattern)"))),
        };
        if depth + 1 >= MAX_DEPTH {
            return Err(pos.err(format!(
                "includes nest more than {MAX_DEPTH} deep (a file including itself?)"
            )));
        }
        let base = pos.file.parent().unwrap_or(Path::new("."));
        let full = if Path::new(pattern).is_absolute() {
            PathBuf::from(pattern)
        } else {
            base.join(pattern)
        };
        let files = glob(&full).map_err(|e| pos.err(format!("{kw} {pattern}: {e}")))?;
        if files.is_empty() {
            return Err(pos.err(format!("{kw} {pattern}: no such file")));
        }
        for f in files {
            let text = read(&f, Some(pos), &mut self.bytes)?;
            self.lex(&text, Arc::new(f), depth + 1)?;
        }
        Ok(())
    }
}

fn is_include(w: &str) -> bool {
    matches!(
        w,
        "include" | "includer" | "includem" | "includew" | "includeb" | "includea"
    )
}

/// The files a pattern names, sorted, with csh braces, as keepalived's
/// `glob(…, GLOB_BRACE …)`; a pattern without wildcards names itself if
/// it exists.
fn glob(pattern: &Path) -> Result<Vec<PathBuf>, String> {
    let c = CString::new(pattern.as_os_str().as_bytes()).map_err(|_| "a NUL in the name")?;
    // SAFETY: glob_t is plain data that glob() fills; zeroed is its
    // documented initial state. `c` outlives the call; the result is read
    // before globfree releases it.
    unsafe {
        let mut g: libc::glob_t = std::mem::zeroed();
        let rc = libc::glob(c.as_ptr(), libc::GLOB_BRACE, None, &mut g);
        let out = match rc {
            0 => {
                let mut v = Vec::with_capacity(g.gl_pathc);
                for i in 0..g.gl_pathc {
                    let p = *g.gl_pathv.add(i);
                    if !p.is_null() {
                        let bytes = CStr::from_ptr(p).to_bytes();
                        v.push(PathBuf::from(std::ffi::OsStr::from_bytes(bytes)));
                    }
                }
                Ok(v)
            }
            libc::GLOB_NOMATCH => Ok(Vec::new()),
            libc::GLOB_NOSPACE => Err("out of memory".to_string()),
            _ => Err("cannot read a directory of the pattern".to_string()),
        };
        libc::globfree(&mut g);
        out
    }
}

/// One line's tokens: words and (if `braces`) braces as words of their own.
fn split_line(line: &str, pos: &Pos, braces: bool) -> Result<Vec<Tok>, ConfigError> {
    let mut toks = Vec::new();
    let mut word = String::new();
    // A word is pending even when empty if it had quotes (`""`).
    let mut pending = false;
    let mut chars = line.chars().peekable();
    let flush = |toks: &mut Vec<Tok>, word: &mut String, pending: &mut bool| {
        if *pending {
            toks.push(Tok::Word(std::mem::take(word)));
            *pending = false;
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '#' | '!' => break,
            ' ' | '\t' | '\r' | '\x0b' | '\x0c' => flush(&mut toks, &mut word, &mut pending),
            '{' | '}' if braces => {
                flush(&mut toks, &mut word, &mut pending);
                // A statement written before the brace on this line ends
                // there (`url { path / }`): the brace says so itself.
                toks.push(if c == '{' { Tok::Open } else { Tok::Close });
            }
            '"' | '\'' => {
                pending = true;
                quoted(&mut chars, c, &mut word, pos)?;
            }
            _ => {
                pending = true;
                word.push(c);
            }
        }
    }
    flush(&mut toks, &mut word, &mut pending);
    Ok(toks)
}

/// The rest of a quoted string, its escapes resolved, appended to `word`.
fn quoted(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    q: char,
    word: &mut String,
    pos: &Pos,
) -> Result<(), ConfigError> {
    while let Some(c) = chars.next() {
        if c == q {
            return Ok(());
        }
        if c != '\\' {
            word.push(c);
            continue;
        }
        let Some(e) = chars.next() else { break };
        match e {
            'a' => word.push('\x07'),
            'b' => word.push('\x08'),
            'E' => word.push('\x1b'),
            'f' => word.push('\x0c'),
            'n' => word.push('\n'),
            'r' => word.push('\r'),
            't' => word.push('\t'),
            'v' => word.push('\x0b'),
            '0'..='7' => {
                let mut v = e.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    match chars.peek().and_then(|d| d.to_digit(8)) {
                        Some(d) => {
                            v = v * 8 + d;
                            chars.next();
                        }
                        None => break,
                    }
                }
                word.push(char::from_u32(v & 0xff).unwrap_or('\0'));
            }
            'x' => {
                let mut v: u32 = 0;
                let mut n = 0;
                while let Some(d) = chars.peek().and_then(|d| d.to_digit(16)) {
                    v = (v << 4 | d) & 0xff;
                    n += 1;
                    chars.next();
                }
                if n == 0 {
                    return Err(pos.err("\\x without hex digits in a quoted string"));
                }
                word.push(char::from_u32(v).unwrap_or('\0'));
            }
            'c' => match chars.next() {
                Some(k) => word.push(char::from_u32((k as u32) & 0x1f).unwrap_or('\0')),
                None => break,
            },
            other => word.push(other),
        }
    }
    Err(pos.err(format!("unterminated quoted string (no closing {q})")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<Tok> {
        lex_str(s, Path::new("t.conf"))
            .unwrap()
            .into_iter()
            .map(|t| t.tok)
            .collect()
    }
    fn w(s: &str) -> Tok {
        Tok::Word(s.into())
    }

    #[test]
    fn braces_are_words_and_comments_end_lines() {
        use Tok::*;
        assert_eq!(
            words("virtual_server 10.0.0.1 80{ # web\n  url { path / } ! x\n"),
            [
                w("virtual_server"),
                w("10.0.0.1"),
                w("80"),
                Open,
                End,
                w("url"),
                Open,
                w("path"),
                w("/"),
                Close,
                End
            ]
        );
        assert!(words("  # only a comment\n\n\t\n").is_empty());
    }

    #[test]
    fn quotes_join_and_escape() {
        assert_eq!(
            words(r#"misc_path "/bin/check -a 'x y'" abcd" efg" "tab\there" "\x41\101""#),
            [
                w("misc_path"),
                w("/bin/check -a 'x y'"),
                w("abcd efg"),
                w("tab\there"),
                w("AA"),
                Tok::End
            ]
        );
        assert_eq!(words(r##"a "#b" c"##)[1], w("#b"));
        assert_eq!(words("a \"\"")[1], w(""));
        let e = lex_str("x\nmisc_path \"/bin/true\n", Path::new("q.conf")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "q.conf:2: unterminated quoted string (no closing \")"
        );
    }

    #[test]
    fn lines_are_kept() {
        let t = lex_str("a\n\n  b c\n", Path::new("l.conf")).unwrap();
        let lines: Vec<u32> = t.iter().map(|t| t.pos.line).collect();
        assert_eq!(lines, [1, 1, 3, 3, 3]);
    }

    #[test]
    fn conditionals_and_parameters_are_refused() {
        let e = lex_str("@main virtual_server 1.2.3.4 80 {\n", Path::new("c.conf")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "c.conf:1: conditional configuration ('@main') is not supported by lvs-xdp"
        );
        let e = lex_str("\n$PORT=80\n", Path::new("c.conf")).unwrap_err();
        assert!(e
            .to_string()
            .starts_with("c.conf:2: parameter substitution"));
    }

    #[test]
    fn includes_follow_globs_relative_to_the_including_file() {
        let dir = std::env::temp_dir().join(format!("lvs-kalex-{}", std::process::id()));
        let sub = dir.join("conf.d");
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(dir.join("main.conf"), "a\ninclude conf.d/*.conf\nz\n").unwrap();
        std::fs::write(sub.join("1.conf"), "b\ninclude ../leaf.{x,y}\n").unwrap();
        std::fs::write(sub.join("2.conf"), "\nc\n").unwrap();
        std::fs::write(dir.join("leaf.x"), "lx\n").unwrap();
        std::fs::write(dir.join("leaf.y"), "ly\n").unwrap();
        std::fs::write(dir.join("loop.conf"), "include loop.conf\n").unwrap();
        std::fs::write(dir.join("none.conf"), "x\ninclude nothing-*.conf\n").unwrap();
        let t = lex_file(&dir.join("main.conf")).unwrap();
        let seen: Vec<(String, String, u32)> = t
            .iter()
            .filter_map(|t| match &t.tok {
                Tok::Word(s) => Some((
                    s.clone(),
                    t.pos
                        .file
                        .file_name()
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                    t.pos.line,
                )),
                _ => None,
            })
            .collect();
        let s = |a: &str, f: &str, l| (a.to_string(), f.to_string(), l);
        assert_eq!(
            seen,
            [
                s("a", "main.conf", 1),
                s("b", "1.conf", 1),
                s("lx", "leaf.x", 1),
                s("ly", "leaf.y", 1),
                s("c", "2.conf", 2),
                s("z", "main.conf", 3)
            ]
        );
        let e = lex_file(&dir.join("loop.conf")).unwrap_err();
        assert!(e.msg.contains("nest more than"), "{e}");
        assert_eq!(e.line, 1);
        std::fs::write(dir.join("zero.conf"), "a\ninclude /dev/zero\n").unwrap();
        let e = lex_file(&dir.join("zero.conf")).unwrap_err();
        assert_eq!(
            (e.line, e.msg.as_str()),
            (2, "the configuration exceeds 16 MiB with /dev/zero")
        );
        let e = lex_file(&dir.join("none.conf")).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.msg.ends_with("no such file"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
