//! Each checker against servers that misbehave, in a namespace of its
//! own: a hung server (never reached), one that accepts and never answers,
//! a reset, a refused port, a 10 MB body, a slow trickle, a script that
//! overruns — each one failed check within its bound while a healthy
//! server checked at the same time stays up — and SSL_GET, UDP_CHECK and
//! DNS_CHECK against real servers of their kind.

use std::{
    net::SocketAddr,
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use hickory_proto::{
    op::{Message, MessageType, ResponseCode},
    rr::{rdata::A, RData, Record},
};
use lvs::health::probe::{self, Probe};
use lvs::keepalived::model::{
    CheckKind, Checker, DnsCheck, HttpCheck, MiscCheck, Origin, UdpCheck, Url,
};
use lvs_lab::{require_root, Lab};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream, UdpSocket},
};

const TIMEOUT: Duration = Duration::from_secs(1);
/// What scheduling may add to a check's bound on a loaded machine.
const SLACK: Duration = Duration::from_millis(700);

fn checker(kind: CheckKind, connect: SocketAddr) -> Checker {
    Checker {
        origin: Origin {
            file: "test.conf".into(),
            line: 1,
        },
        kind,
        connect,
        bind: None,
        bind_port: None,
        connect_timeout: TIMEOUT,
        retry: 0,
        delay_before_retry: TIMEOUT,
        delay_loop: TIMEOUT,
        warmup: Duration::ZERO,
        alpha: false,
    }
}

fn http(tls: bool, digest: Option<&str>) -> CheckKind {
    CheckKind::Http(HttpCheck {
        tls,
        virtualhost: None,
        urls: vec![Url {
            path: "/health".into(),
            status_codes: vec![],
            digest: digest.map(str::to_owned),
            virtualhost: None,
        }],
        http_protocol: "1.0".into(),
        enable_sni: false,
    })
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A listener on `addr` handing every connection to `serve`.
async fn listen<F, Fut>(addr: &str, serve: F)
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let l = TcpListener::bind(addr).await.unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(serve(s));
        }
    });
}

/// Reads a request head, then answers with `answer`.
async fn answer(mut s: TcpStream, answer: &'static [u8]) {
    let mut buf = [0u8; 4096];
    let _ = s.read(&mut buf).await;
    let _ = s.write_all(answer).await;
}

const OK: &[u8] = b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello";
/// MD5 of "hello".
const HELLO_MD5: &str = "5d41402abc4b2a76b9719d911017c592";

/// The servers of the test, all on the namespace's loopback.
async fn servers(tls: Arc<tokio_rustls::TlsAcceptor>) {
    listen("127.0.0.1:8001", |s| answer(s, OK)).await;
    // Accepts, reads, never answers.
    listen("127.0.0.1:8002", |mut s| async move {
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf).await;
        tokio::time::sleep(Duration::from_secs(30)).await;
    })
    .await;
    // Accepts and resets (SO_LINGER 0 makes the close an RST).
    listen("127.0.0.1:8003", |s| async move {
        let s = s.into_std().unwrap();
        let l = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: a valid socket and option of the right size.
        unsafe {
            libc::setsockopt(
                std::os::fd::AsRawFd::as_raw_fd(&s),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                &l as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::linger>() as u32,
            )
        };
        drop(s);
    })
    .await;
    // 10 MB of body, as fast as the checker reads it.
    listen("127.0.0.1:8004", |mut s| async move {
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf).await;
        let _ = s
            .write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 10485760\r\n\r\n")
            .await;
        let chunk = vec![b'x'; 65536];
        for _ in 0..160 {
            if s.write_all(&chunk).await.is_err() {
                return;
            }
        }
    })
    .await;
    // A byte every 100 ms.
    listen("127.0.0.1:8005", |mut s| async move {
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf).await;
        for b in OK {
            if s.write_all(&[*b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    // HTTPS answering "hello"; and a port that speaks no TLS.
    listen("127.0.0.1:8443", move |s| {
        let tls = tls.clone();
        async move {
            if let Ok(mut t) = tls.accept(s).await {
                let mut buf = [0u8; 4096];
                let _ = t.read(&mut buf).await;
                let _ = t.write_all(OK).await;
                let _ = t.shutdown().await;
            }
        }
    })
    .await;
    // UDP: answers "pong".
    let u = UdpSocket::bind("127.0.0.1:9053").await.unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 512];
        while let Ok((_, peer)) = u.recv_from(&mut buf).await {
            let _ = u.send_to(b"pong", peer).await;
        }
    });
    // DNS: an A record for any question on :53, SERVFAIL on :54.
    for (port, fail) in [(53u16, false), (54, true)] {
        let u = UdpSocket::bind(("127.0.0.1", port)).await.unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            while let Ok((n, peer)) = u.recv_from(&mut buf).await {
                let Ok(q) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                let mut a = q.clone();
                a.set_message_type(MessageType::Response);
                if fail {
                    a.set_response_code(ResponseCode::ServFail);
                } else {
                    let name = q.queries()[0].name().clone();
                    a.add_answer(Record::from_rdata(name, 60, RData::A(A::new(10, 0, 0, 1))));
                }
                let _ = u.send_to(&a.to_vec().unwrap(), peer).await;
            }
        });
    }
}

/// A self-signed certificate made with openssl, as TLS acceptor.
fn acceptor(dir: &Path) -> tokio_rustls::TlsAcceptor {
    use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
    let (key, cert) = (dir.join("key.pem"), dir.join("cert.pem"));
    let ok = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=rs1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let certs = vec![CertificateDer::from_pem_file(&cert).unwrap()];
    let key = PrivateKeyDer::from_pem_file(&key).unwrap();
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(cfg))
}

#[test]
fn every_checker_fails_bounded_and_alone() {
    if !require_root("health probes") {
        return;
    }
    let lab = Lab::new("hcprobe").unwrap();
    let ns = lab.ns("srv").unwrap();
    // 10.200.0.2 is on a link whose far end has no address: its ARP is
    // never answered, its SYNs never leave.
    let void = lab.ns("void").unwrap();
    lab.veth(&ns, "v0", &void, "v1").unwrap();
    ns.addr("v0", "10.200.0.1/24").unwrap();
    let tls = Arc::new(acceptor(lab.workdir()));
    let misc = |path: &str, timeout: Duration| {
        CheckKind::Misc(MiscCheck {
            path: path.into(),
            timeout,
            dynamic: false,
            user: None,
        })
    };
    let udp = |reply: Option<&[u8]>| {
        CheckKind::Udp(UdpCheck {
            payload: b"ping".to_vec(),
            require_reply: reply.map(<[u8]>::to_vec),
            min_reply_length: 0,
            max_reply_length: 255,
        })
    };
    let dns = CheckKind::Dns(DnsCheck {
        qtype: "A".into(),
        name: "rs1.example.".into(),
    });
    // (what, checker, up?, what the result must say)
    let cases: Vec<(&str, Checker, bool, &str)> = vec![
        (
            "healthy",
            checker(http(false, None), sa("127.0.0.1:8001")),
            true,
            "status 200",
        ),
        (
            "digest",
            checker(http(false, Some(HELLO_MD5)), sa("127.0.0.1:8001")),
            true,
            "digest ok",
        ),
        (
            "bad digest",
            checker(http(false, Some("00")), sa("127.0.0.1:8001")),
            false,
            "digest",
        ),
        (
            "hung",
            checker(http(false, None), sa("10.200.0.2:80")),
            false,
            "timeout",
        ),
        (
            "hung tcp",
            checker(CheckKind::Tcp, sa("10.200.0.2:80")),
            false,
            "timeout",
        ),
        (
            "silent",
            checker(http(false, None), sa("127.0.0.1:8002")),
            false,
            "timeout",
        ),
        (
            "reset",
            checker(http(false, None), sa("127.0.0.1:8003")),
            false,
            "HTTP",
        ),
        (
            "refused",
            checker(CheckKind::Tcp, sa("127.0.0.1:8009")),
            false,
            "refused",
        ),
        (
            "10 MB, status only",
            checker(http(false, None), sa("127.0.0.1:8004")),
            true,
            "status 200",
        ),
        (
            "10 MB, digest",
            checker(http(false, Some(HELLO_MD5)), sa("127.0.0.1:8004")),
            false,
            "cut off",
        ),
        (
            "trickle",
            checker(http(false, None), sa("127.0.0.1:8005")),
            false,
            "timeout",
        ),
        (
            "ssl",
            checker(http(true, Some(HELLO_MD5)), sa("127.0.0.1:8443")),
            true,
            "digest ok",
        ),
        (
            "ssl to plain",
            checker(http(true, None), sa("127.0.0.1:8001")),
            false,
            "TLS",
        ),
        (
            "udp reply",
            checker(udp(Some(b"pong")), sa("127.0.0.1:9053")),
            true,
            "reply of 4",
        ),
        (
            "udp wrong reply",
            checker(udp(Some(b"pang")), sa("127.0.0.1:9053")),
            false,
            "match",
        ),
        (
            "udp closed",
            checker(udp(None), sa("127.0.0.1:9054")),
            false,
            "refused",
        ),
        (
            "dns",
            checker(dns.clone(), sa("127.0.0.1:53")),
            true,
            "1 answer",
        ),
        (
            "dns servfail",
            checker(dns, sa("127.0.0.1:54")),
            false,
            "rcode",
        ),
        (
            "misc ok",
            checker(misc("exit 0", TIMEOUT), sa("127.0.0.1:1")),
            true,
            "exit 0",
        ),
        (
            "misc overrun",
            checker(misc("sleep 5", TIMEOUT), sa("127.0.0.1:1")),
            false,
            "timeout",
        ),
    ];
    let (cases, out) = ns
        .spawn_thread("probes", move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                servers(tls).await;
                // All at once, as the engine runs them.
                let handles: Vec<_> = cases
                    .iter()
                    .map(|(_, c, _, _)| {
                        let c = c.clone();
                        tokio::spawn(async move {
                            let t = Instant::now();
                            let p = probe::run(&c).await;
                            (p, t.elapsed())
                        })
                    })
                    .collect();
                let mut out: Vec<(Probe, Duration)> = Vec::new();
                for h in handles {
                    out.push(h.await.unwrap());
                }
                (cases, out)
            })
        })
        .unwrap()
        .join()
        .unwrap();
    for ((what, c, up, says), (p, took)) in cases.iter().zip(&out) {
        assert_eq!(p.ok, *up, "{what}: {p:?}");
        assert!(
            p.detail.contains(says),
            "{what}: {:?} lacks {says:?}",
            p.detail
        );
        assert!(*took <= probe::budget(c) + SLACK, "{what} took {took:?}");
    }
    assert_eq!(out.len(), cases.len());
}
