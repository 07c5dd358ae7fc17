//! HTTP_GET and SSL_GET: one request per `url`, each on its own
//! connection (as keepalived); every URL must answer with an accepted
//! status code and, if `digest` is set, a body of that MD5.
//!
//! hyper speaks HTTP; the body is read only when a digest needs it, and
//! then at most [`MAX_DIGEST_BODY`] bytes: a server sending 10 MB costs no
//! more than that (and the whole check stays bounded by connect_timeout,
//! `probe`).

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::{
    header::{CONNECTION, HOST, USER_AGENT},
    Request, Version,
};
use hyper_util::rt::TokioIo;
use md5::{Digest, Md5};
use tokio::io::{AsyncRead, AsyncWrite};

use super::probe::Probe;
use crate::keepalived::model::{Checker, HttpCheck, Url};

/// The largest body a `digest` is computed over; larger is a failure.
pub const MAX_DIGEST_BODY: usize = 1 << 20;

pub async fn check(c: &Checker, h: &HttpCheck) -> Probe {
    let mut last = String::new();
    for url in &h.urls {
        match get(c, h, url).await {
            Ok(what) => last = what,
            Err(e) => return Probe::down(format!("{}: {e}", url.path)),
        }
    }
    if h.urls.is_empty() {
        return Probe::down("no url to check");
    }
    Probe::up(last)
}

/// keepalived's Host header: the url's virtualhost (the parser resolved
/// it from the checker's, the real or virtual server's), else the
/// address checked.
fn host(c: &Checker, h: &HttpCheck, url: &Url) -> String {
    match url.virtualhost.as_ref().or(h.virtualhost.as_ref()) {
        Some(v) => v.clone(),
        None => match c.connect {
            std::net::SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
            a => a.to_string(),
        },
    }
}

async fn get(c: &Checker, h: &HttpCheck, url: &Url) -> Result<String, String> {
    let tcp = super::connect::tcp(c)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    if h.tls {
        let sni = if h.enable_sni {
            url.virtualhost.as_deref().or(h.virtualhost.as_deref())
        } else {
            None
        };
        let tls = super::tls::handshake(tcp, sni, c.connect.ip()).await?;
        exchange(tls, c, h, url).await
    } else {
        exchange(tcp, c, h, url).await
    }
}

async fn exchange<S>(io: S, c: &Checker, h: &HttpCheck, url: &Url) -> Result<String, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    let version = if h.http_protocol == "1.1" {
        Version::HTTP_11
    } else {
        Version::HTTP_10
    };
    let req = Request::get(url.path.as_str())
        .version(version)
        .header(HOST, host(c, h, url))
        .header(USER_AGENT, "KeepAliveClient")
        .header(CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("request: {e}"))?;
    let work = async move {
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("HTTP: {e}"))?;
        let status = resp.status().as_u16();
        if !accepted(url, status) {
            return Err(format!("status {status}"));
        }
        let Some(want) = &url.digest else {
            // No digest: the status is the answer; the body is not read.
            return Ok(format!("status {status}"));
        };
        let got = digest(resp.into_body()).await?;
        if !got.eq_ignore_ascii_case(want) {
            return Err(format!("status {status}, digest {got} (want {want})"));
        }
        Ok(format!("status {status}, digest ok"))
    };
    tokio::pin!(work);
    tokio::pin!(conn);
    // The connection is driven beside the request; it ending first (the
    // server closed after its answer) still lets the answer be read.
    tokio::select! {
        biased;
        r = &mut work => r,
        r = &mut conn => match r {
            Ok(()) => work.await,
            Err(e) => Err(format!("HTTP: {e}")),
        },
    }
}

/// Status codes of `url`, keepalived's 200–299 if none were given.
fn accepted(url: &Url, status: u16) -> bool {
    if url.status_codes.is_empty() {
        return (200..=299).contains(&status);
    }
    url.status_codes.iter().any(|r| r.contains(&status))
}

/// MD5 of the body, lowercase hex, reading at most [`MAX_DIGEST_BODY`].
async fn digest(mut body: hyper::body::Incoming) -> Result<String, String> {
    let mut md5 = Md5::new();
    let mut len = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("body: {e}"))?;
        if let Some(data) = frame.data_ref() {
            len += data.len();
            if len > MAX_DIGEST_BODY {
                return Err(format!(
                    "body larger than {MAX_DIGEST_BODY} bytes (cut off)"
                ));
            }
            md5.update(data);
        }
    }
    Ok(md5.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(codes: Vec<std::ops::RangeInclusive<u16>>) -> Url {
        Url {
            path: "/".into(),
            status_codes: codes,
            digest: None,
            virtualhost: None,
        }
    }

    #[test]
    fn status_codes_default_to_2xx() {
        assert!(accepted(&url(vec![]), 200));
        assert!(accepted(&url(vec![]), 299));
        assert!(!accepted(&url(vec![]), 301));
        assert!(!accepted(&url(vec![]), 500));
        assert!(accepted(&url(vec![301..=302, 404..=404]), 404));
        assert!(!accepted(&url(vec![301..=302, 404..=404]), 200));
    }
}
