//! The `/metrics` HTTP server: hyper's HTTP/1 on a tokio runtime of its
//! own, on a thread of its own, so nothing a scraper does reaches the
//! daemon's loop (forwarding never depends on either: it is the kernel's).
//!
//! What a scraper can hold: at most [`MAX_CONNS`] connections (more are
//! closed at once), each for at most [`CONN_TIMEOUT`] (headers within
//! [`HEADER_TIMEOUT`]), one request per connection; pages are rendered one
//! at a time on a blocking thread, so a flood of requests queues on the map
//! reads instead of multiplying them.

use std::{
    convert::Infallible,
    net::SocketAddr,
    path::Path,
    sync::{Arc, Mutex},
    thread::JoinHandle,
    time::Duration,
};

use anyhow::{Context, Result};
use http_body_util::Full;
use hyper::{
    body::{Bytes, Incoming},
    header, Method, Request, Response, StatusCode,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{oneshot, Semaphore};

use super::{expo, view::Maps};
use crate::rate::RateMaps;

/// Connections served at once.
pub const MAX_CONNS: usize = 64;
/// Longest a connection may stay open, request and answer included.
pub const CONN_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a client may take to send its request's headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// What a page is rendered from.
struct Source {
    maps: Maps,
    rates: RateMaps,
    /// The pin directory the health checker's status file is named from
    /// (the published one: `dir` may be the staging directory).
    pin_dir: std::path::PathBuf,
}

/// The running server; stops when dropped.
pub struct Server {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    pub addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

async fn handle(
    req: Request<Incoming>,
    source: Arc<Mutex<Source>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.uri().path() != "/metrics" {
        return Ok(text(StatusCode::NOT_FOUND, "only /metrics is served\n"));
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "GET /metrics\n");
        r.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return Ok(r);
    }
    let page = tokio::task::spawn_blocking(move || {
        let s = source.lock().unwrap_or_else(|p| p.into_inner());
        let mut view = s.maps.view()?;
        view.health = checker_view(&s.pin_dir);
        expo::render(&view, &s.rates)
    })
    .await;
    Ok(match page {
        Ok(Ok(body)) => text(StatusCode::OK, body),
        Ok(Err(e)) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot read the director's tables: {e:#}\n"),
        ),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
    })
}

/// Binds `addr` (so a bad address fails the start, before anything is
/// published) and serves the director pinned under `dir` on a thread.
/// The real servers of the health checker serving `pin_dir`, as its
/// status file says (none without a running checker: a dead one's file is
/// stale).
fn checker_view(pin_dir: &Path) -> Vec<crate::health::status::Real> {
    use crate::health::status;
    match status::read(pin_dir) {
        Ok(Some(st)) if status::alive(st.pid) => st.reals,
        _ => Vec::new(),
    }
}

pub fn start(dir: &Path, pin_dir: &Path, addr: SocketAddr) -> Result<Server> {
    let source = Arc::new(Mutex::new(Source {
        maps: Maps::open(dir)?,
        rates: RateMaps::open(dir)?,
        pin_dir: pin_dir.to_path_buf(),
    }));
    let listener = std::net::TcpListener::bind(addr)
        .with_context(|| format!("--metrics: cannot listen on {addr}"))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(2)
        .thread_name("lvs-metrics")
        .build()
        .context("cannot start the metrics runtime")?;
    let (stop, mut stopped) = oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("lvs-metrics".into())
        .spawn(move || {
            rt.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        log::warn!("metrics: {e}");
                        return;
                    }
                };
                let slots = Arc::new(Semaphore::new(MAX_CONNS));
                loop {
                    let (stream, _) = tokio::select! {
                        _ = &mut stopped => return,
                        r = listener.accept() => match r {
                            Ok(c) => c,
                            // Out of descriptors and the like: try again soon.
                            Err(_) => {
                                tokio::time::sleep(Duration::from_millis(50)).await;
                                continue;
                            }
                        },
                    };
                    // Over the limit: closed at once.
                    let Ok(slot) = slots.clone().try_acquire_owned() else {
                        continue;
                    };
                    let source = source.clone();
                    tokio::spawn(async move {
                        let conn = hyper::server::conn::http1::Builder::new()
                            .timer(TokioTimer::new())
                            .header_read_timeout(HEADER_TIMEOUT)
                            .keep_alive(false)
                            .serve_connection(
                                TokioIo::new(stream),
                                hyper::service::service_fn(move |req| handle(req, source.clone())),
                            );
                        let _ = tokio::time::timeout(CONN_TIMEOUT, conn).await;
                        drop(slot);
                    });
                }
            });
        })
        .context("cannot start the metrics thread")?;
    Ok(Server {
        stop: Some(stop),
        thread: Some(thread),
        addr,
    })
}
