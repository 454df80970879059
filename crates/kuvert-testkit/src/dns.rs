//! An authoritative-only DNS server for tests: it answers from a table the test fills, over
//! UDP on 127.0.0.1, and says NXDOMAIN for everything else. It runs on a thread of its own, so
//! it keeps answering while a test blocks (waiting for a CLI run, say).

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, ResponseCode};
pub use hickory_proto::rr::RecordType;
use hickory_proto::rr::rdata::{A, CNAME, MX, TXT};
use hickory_proto::rr::{Name, RData, Record};

type Table = HashMap<(String, RecordType), Vec<RData>>;

pub struct DnsServer {
    addr: SocketAddr,
    table: Arc<Mutex<Table>>,
    stop: Arc<AtomicBool>,
    ttl: Arc<AtomicU32>,
}

fn key(name: &str, t: RecordType) -> (String, RecordType) {
    (name.trim_end_matches('.').to_ascii_lowercase(), t)
}

fn fqdn(name: &str) -> Name {
    Name::from_str(&format!("{}.", name.trim_end_matches('.'))).expect("a valid DNS name")
}

impl DnsServer {
    pub fn start() -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP port on loopback");
        // Wakes the thread now and then to see whether the server was dropped.
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("read timeout");
        let addr = socket.local_addr().expect("local address");
        let table: Arc<Mutex<Table>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let ttl = Arc::new(AtomicU32::new(60));
        let (t, s, l) = (table.clone(), stop.clone(), ttl.clone());
        std::thread::spawn(move || serve(&socket, &t, &s, &l));
        Self {
            addr,
            table,
            stop,
            ttl,
        }
    }

    /// The TTL of the answers from now on (60 s at first); 0 keeps resolvers from caching
    /// them, for a test that changes a record and wants it seen at once.
    pub fn set_ttl(&self, seconds: u32) {
        self.ttl.store(seconds, Ordering::Relaxed);
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// One TXT record; long values are split into 255-byte strings, as in real zones.
    pub fn add_txt(&self, name: &str, value: &str) {
        let chunks: Vec<String> = value
            .as_bytes()
            .chunks(255)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        self.add(name, RecordType::TXT, RData::TXT(TXT::new(chunks)));
    }

    pub fn add_mx(&self, name: &str, preference: u16, exchange: &str) {
        self.add(
            name,
            RecordType::MX,
            RData::MX(MX::new(preference, fqdn(exchange))),
        );
    }

    /// `MX 0 .`: the domain takes no mail (RFC 7505).
    pub fn add_null_mx(&self, name: &str) {
        self.add(name, RecordType::MX, RData::MX(MX::new(0, Name::root())));
    }

    pub fn add_a(&self, name: &str, ip: std::net::Ipv4Addr) {
        self.add(name, RecordType::A, RData::A(A(ip)));
    }

    pub fn add_cname(&self, name: &str, target: &str) {
        self.add(name, RecordType::CNAME, RData::CNAME(CNAME(fqdn(target))));
    }

    /// Removes every record of this name and type.
    pub fn remove(&self, name: &str, t: RecordType) {
        self.table.lock().expect("dns table").remove(&key(name, t));
    }

    fn add(&self, name: &str, t: RecordType, rdata: RData) {
        self.table
            .lock()
            .expect("dns table")
            .entry(key(name, t))
            .or_default()
            .push(rdata);
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(socket: &UdpSocket, table: &Mutex<Table>, stop: &AtomicBool, ttl: &AtomicU32) {
    let mut buf = vec![0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        let Ok((n, peer)) = socket.recv_from(&mut buf) else {
            continue;
        };
        let Ok(query) = Message::from_vec(&buf[..n]) else {
            continue;
        };
        let mut reply = Message::new();
        reply
            .set_id(query.id())
            .set_message_type(MessageType::Response)
            .set_op_code(query.op_code())
            .set_authoritative(true);
        reply
            .set_recursion_desired(query.recursion_desired())
            .set_recursion_available(true);
        let mut found = false;
        for q in query.queries() {
            reply.add_query(q.clone());
            let name = q.name().to_ascii();
            if let Some(records) = table
                .lock()
                .expect("dns table")
                .get(&key(&name, q.query_type()))
            {
                found = true;
                for r in records {
                    reply.add_answer(Record::from_rdata(
                        q.name().clone(),
                        ttl.load(Ordering::Relaxed),
                        r.clone(),
                    ));
                }
            }
        }
        let any_name_known = query.queries().iter().any(|q| {
            let name = key(&q.name().to_ascii(), RecordType::A).0;
            table
                .lock()
                .expect("dns table")
                .keys()
                .any(|(n, _)| *n == name)
        });
        if !found && !any_name_known {
            reply.set_response_code(ResponseCode::NXDomain);
        }
        if let Ok(bytes) = reply.to_vec() {
            let _ = socket.send_to(&bytes, peer);
        }
    }
}
