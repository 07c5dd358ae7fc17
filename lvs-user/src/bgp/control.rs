//! BIRD's control socket (what `birdc` speaks): one request line, a reply
//! of numbered lines. `NNNN-text` and ` text` continue a reply, `NNNN text`
//! ends it; codes from 8000 are errors (8xxx runtime, 9xxx the command's
//! own syntax). Every read and write is bounded by a timeout, so a stuck
//! BIRD cannot hold the announcer.

use std::{
    io::{BufRead, BufReader, Write},
    os::unix::net::UnixStream,
    path::Path,
    time::Duration,
};

use anyhow::{bail, Context, Result};

/// A reply bigger than this is not one to `configure`.
const MAX_REPLY: usize = 64 * 1024;

/// The end of a reply: its final code and every line's text.
#[derive(Debug, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub text: Vec<String>,
}

impl Reply {
    pub fn is_error(&self) -> bool {
        self.code >= 8000
    }
}

/// Feeds reply lines one at a time; [`Parser::line`] returns the reply
/// once its final line came.
#[derive(Default)]
pub struct Parser {
    text: Vec<String>,
}

impl Parser {
    pub fn line(&mut self, line: &str) -> Result<Option<Reply>> {
        let line = line.trim_end_matches(['\n', '\r']);
        // Asynchronous messages (`+`) and continuations (` `) carry no code.
        if let Some(rest) = line.strip_prefix(' ').or_else(|| line.strip_prefix('+')) {
            self.text.push(rest.to_owned());
            return Ok(None);
        }
        let b = line.as_bytes();
        if b.len() < 5 || !b[..4].iter().all(u8::is_ascii_digit) || !matches!(b[4], b' ' | b'-') {
            bail!("not a BIRD reply line: {line:?}");
        }
        self.text.push(line[5..].to_owned());
        if b[4] == b'-' {
            return Ok(None);
        }
        Ok(Some(Reply {
            code: line[..4].parse()?,
            text: std::mem::take(&mut self.text),
        }))
    }
}

fn read_reply(r: &mut impl BufRead) -> Result<Reply> {
    let mut parser = Parser::default();
    let mut total = 0;
    loop {
        let mut line = String::new();
        let n = r.read_line(&mut line).context("reading BIRD's reply")?;
        if n == 0 {
            bail!("BIRD closed the control socket mid-reply");
        }
        total += n;
        if total > MAX_REPLY {
            bail!("BIRD's reply exceeds {MAX_REPLY} bytes");
        }
        if let Some(reply) = parser.line(&line)? {
            return Ok(reply);
        }
    }
}

/// Sends `command` (one line) to the BIRD listening on `socket` and
/// returns its reply; an error reply is an error naming BIRD's message.
pub fn request(socket: &Path, command: &str, timeout: Duration) -> Result<Reply> {
    let stream = UnixStream::connect(socket)
        .with_context(|| format!("cannot reach BIRD's control socket {}", socket.display()))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut r = BufReader::new(stream.try_clone()?);
    let hello = read_reply(&mut r)?;
    if hello.code != 1 {
        bail!("unexpected greeting from BIRD: {:?}", hello.text.join(" "));
    }
    (&stream)
        .write_all(format!("{command}\n").as_bytes())
        .context("writing to BIRD's control socket")?;
    let reply = read_reply(&mut r)?;
    if reply.is_error() {
        bail!(
            "BIRD refused `{command}`: {} ({})",
            reply.text.join("; "),
            reply.code
        );
    }
    Ok(reply)
}

/// `birdc configure`: BIRD reads its configuration again (with our
/// include), starting, changing and stopping protocols as needed.
pub fn configure(socket: &Path, timeout: Duration) -> Result<Reply> {
    request(socket, "configure", timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(lines: &str) -> Result<Reply> {
        read_reply(&mut lines.as_bytes())
    }

    // Replies as BIRD 2.0.12 sent them in this project's lab.
    #[test]
    fn replies_of_bird_2_0_12() {
        assert_eq!(
            parse("0001 BIRD 2.0.12 ready.\n").unwrap(),
            Reply {
                code: 1,
                text: vec!["BIRD 2.0.12 ready.".into()]
            }
        );
        let ok = parse("0002-Reading configuration from bird.conf\n0003 Reconfigured\n").unwrap();
        assert_eq!(ok.code, 3);
        assert!(!ok.is_error());
        let busy =
            parse("0002-Reading configuration from bird.conf\n0004 Reconfiguration in progress\n")
                .unwrap();
        assert_eq!(busy.code, 4);
        let bad = parse(
            "0002-Reading configuration from bird.conf\n\
             8002 /tmp/x/vips.conf:1:50 Invalid prefix length 33\n",
        )
        .unwrap();
        assert!(bad.is_error());
        assert_eq!(
            bad.text[1],
            "/tmp/x/vips.conf:1:50 Invalid prefix length 33"
        );
        let table = parse(
            "1007-Table master4:\n 10.9.9.9/32          blackhole [lvs_vips4 19:37:37.365] * (200)\n0000 \n",
        )
        .unwrap();
        assert_eq!(table.code, 0);
        assert_eq!(table.text.len(), 3);
    }

    #[test]
    fn garbage_and_truncation_are_errors() {
        assert!(parse("hello\n").is_err());
        assert!(parse("12 short\n").is_err());
        assert!(parse("0002-Reading configuration\n").is_err());
        assert!(parse("").is_err());
    }
}
