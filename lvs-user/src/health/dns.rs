//! DNS_CHECK: one query (`type`, `name`) over UDP to the server; up when
//! the answer has the query's id, is a response, is not truncated, has
//! rcode NOERROR and at least one answer record. The message is built and
//! read by hickory-proto.

use std::str::FromStr;

use hickory_proto::{
    op::{Message, MessageType, OpCode, Query, ResponseCode},
    rr::{Name, RecordType},
};
use tokio::net::UdpSocket;

use super::probe::Probe;
use crate::keepalived::model::{Checker, DnsCheck};

/// The query's wire bytes.
pub fn query(d: &DnsCheck, id: u16) -> Result<Vec<u8>, String> {
    let name = Name::from_ascii(&d.name).map_err(|e| format!("bad name {:?}: {e}", d.name))?;
    let qtype = RecordType::from_str(&d.qtype.to_ascii_uppercase())
        .map_err(|e| format!("bad type {:?}: {e}", d.qtype))?;
    let mut m = Message::new();
    m.set_id(id)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .add_query(Query::query(name, qtype));
    m.to_vec().map_err(|e| format!("encoding the query: {e}"))
}

/// keepalived's reading of an answer to query `id`.
pub fn verdict(answer: &[u8], id: u16) -> Probe {
    let m = match Message::from_vec(answer) {
        Ok(m) => m,
        Err(e) => return Probe::down(format!("malformed answer: {e}")),
    };
    if m.id() != id {
        Probe::down("answer id does not match")
    } else if m.message_type() != MessageType::Response {
        Probe::down("not a response")
    } else if m.truncated() {
        Probe::down("truncated answer")
    } else if m.response_code() != ResponseCode::NoError {
        Probe::down(format!("rcode {}", m.response_code()))
    } else if m.answers().is_empty() {
        Probe::down("no answer records")
    } else {
        Probe::up(format!("{} answer records", m.answers().len()))
    }
}

pub async fn check(c: &Checker, d: &DnsCheck) -> Probe {
    let id: u16 = rand_id();
    let q = match query(d, id) {
        Ok(q) => q,
        Err(e) => return Probe::down(e),
    };
    let sock = match UdpSocket::bind(super::connect::udp_local(c)).await {
        Ok(s) => s,
        Err(e) => return Probe::down(format!("bind: {e}")),
    };
    if let Err(e) = sock.connect(c.connect).await {
        return Probe::down(format!("connect: {e}"));
    }
    if let Err(e) = sock.send(&q).await {
        return Probe::down(format!("send: {e}"));
    }
    let mut buf = vec![0u8; 65536];
    loop {
        match sock.recv(&mut buf).await {
            // A stray datagram of another id is skipped, not a failure.
            Ok(n) if n >= 2 && u16::from_be_bytes([buf[0], buf[1]]) != id => continue,
            Ok(n) => return verdict(&buf[..n], id),
            Err(e) => return Probe::down(format!("recv: {e}")),
        }
    }
}

/// A query id that differs from run to run (not a secret: the check
/// talks to the operator's own server).
fn rand_id() -> u16 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (t.subsec_nanos() ^ std::process::id()) as u16
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::{rdata::A, RData, Record};

    fn dns(t: &str, n: &str) -> DnsCheck {
        DnsCheck {
            qtype: t.into(),
            name: n.into(),
        }
    }

    #[test]
    fn queries_and_answers() {
        let q = query(&dns("a", "www.example.org."), 0x1234).unwrap();
        let m = Message::from_vec(&q).unwrap();
        assert_eq!(m.id(), 0x1234);
        assert_eq!(m.queries()[0].query_type(), RecordType::A);
        assert!(m.recursion_desired());
        assert!(query(&dns("BOGUS", "."), 1).is_err());

        // The query itself is not an answer.
        assert!(!verdict(&q, 0x1234).ok);
        let mut a = m.clone();
        a.set_message_type(MessageType::Response);
        assert_eq!(
            verdict(&a.to_vec().unwrap(), 0x1234).detail,
            "no answer records"
        );
        a.add_answer(Record::from_rdata(
            Name::from_ascii("www.example.org.").unwrap(),
            60,
            RData::A(A::new(192, 0, 2, 1)),
        ));
        assert!(verdict(&a.to_vec().unwrap(), 0x1234).ok);
        assert!(!verdict(&a.to_vec().unwrap(), 0x1235).ok);
        a.set_response_code(ResponseCode::ServFail);
        assert!(!verdict(&a.to_vec().unwrap(), 0x1234).ok);
        assert!(!verdict(b"\x12\x34", 0x1234).ok);
    }
}
