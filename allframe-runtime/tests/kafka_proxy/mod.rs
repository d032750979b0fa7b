//! A Kafka protocol proxy in front of a one-broker cluster, for tests that must see what a
//! client asked the broker: it forwards every frame unchanged, except that it advertises
//! itself in Metadata and FindCoordinator answers (so the client keeps talking through it),
//! and it records how each transaction was ended (EndTxn `committed`). Frames are decoded with
//! `kafka-protocol`.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kafka_protocol::messages::{
    ApiKey, EndTxnRequest, FindCoordinatorResponse, MetadataResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

/// The proxy; it stops with the test's runtime.
pub struct KafkaProxy {
    addr: std::net::SocketAddr,
    end_txns: Arc<Mutex<Vec<bool>>>,
}

/// Requests in flight on one connection: correlation id → (API, version).
type InFlight = Arc<Mutex<HashMap<i32, (ApiKey, i16)>>>;

impl KafkaProxy {
    /// Listens on a free loopback port and forwards to `upstream` (`host:port`).
    pub async fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let end_txns = Arc::new(Mutex::new(Vec::new()));
        let upstream = upstream.to_owned();
        let recorded = Arc::clone(&end_txns);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(broker) = TcpStream::connect(&upstream).await else {
                    continue;
                };
                let in_flight = InFlight::default();
                let (client_read, client_write) = client.into_split();
                let (broker_read, broker_write) = broker.into_split();
                tokio::spawn(requests(
                    client_read,
                    broker_write,
                    Arc::clone(&in_flight),
                    Arc::clone(&recorded),
                ));
                tokio::spawn(responses(broker_read, client_write, in_flight, addr));
            }
        });
        Self { addr, end_txns }
    }

    /// `kafka://` URL of the proxy.
    pub fn url(&self) -> String {
        format!("kafka://{}", self.addr)
    }

    /// The `committed` flag of every EndTxn request so far, in order: `true` for a commit,
    /// `false` for an abort.
    pub fn end_txns(&self) -> Vec<bool> {
        self.end_txns.lock().expect("lock").clone()
    }
}

async fn read_frame(read: &mut OwnedReadHalf) -> Option<Vec<u8>> {
    let size = read.read_i32().await.ok()?;
    let mut frame = vec![0; usize::try_from(size).ok()?];
    read.read_exact(&mut frame).await.ok()?;
    Some(frame)
}

async fn write_frame(write: &mut OwnedWriteHalf, frame: &[u8]) -> Option<()> {
    let size = i32::try_from(frame.len()).ok()?;
    write.write_i32(size).await.ok()?;
    write.write_all(frame).await.ok()
}

/// Client → broker: notes each request's API and version, records EndTxn's outcome.
async fn requests(
    mut client: OwnedReadHalf,
    mut broker: OwnedWriteHalf,
    in_flight: InFlight,
    end_txns: Arc<Mutex<Vec<bool>>>,
) {
    while let Some(frame) = read_frame(&mut client).await {
        if frame.len() >= 4 {
            let key = i16::from_be_bytes([frame[0], frame[1]]);
            let version = i16::from_be_bytes([frame[2], frame[3]]);
            if let Ok(api) = ApiKey::try_from(key) {
                let mut buf = frame.as_slice();
                if let Ok(header) =
                    RequestHeader::decode(&mut buf, api.request_header_version(version))
                {
                    in_flight
                        .lock()
                        .expect("lock")
                        .insert(header.correlation_id, (api, version));
                    if api == ApiKey::EndTxn
                        && let Ok(request) = EndTxnRequest::decode(&mut buf, version)
                    {
                        end_txns.lock().expect("lock").push(request.committed);
                    }
                }
            }
        }
        if write_frame(&mut broker, &frame).await.is_none() {
            return;
        }
    }
}

/// Broker → client: answers pass unchanged but for the broker addresses, which become the
/// proxy's.
async fn responses(
    mut broker: OwnedReadHalf,
    mut client: OwnedWriteHalf,
    in_flight: InFlight,
    proxy: std::net::SocketAddr,
) {
    while let Some(frame) = read_frame(&mut broker).await {
        let frame = match frame.get(..4) {
            Some(id) => {
                let id = i32::from_be_bytes([id[0], id[1], id[2], id[3]]);
                let request = in_flight.lock().expect("lock").remove(&id);
                match request {
                    Some((api, version)) => {
                        readvertise(&frame, api, version, proxy).unwrap_or(frame)
                    }
                    None => frame,
                }
            }
            None => frame,
        };
        if write_frame(&mut client, &frame).await.is_none() {
            return;
        }
    }
}

/// A Metadata or FindCoordinator answer naming the proxy instead of the broker; `None` for
/// any other answer (forwarded as it is).
fn readvertise(
    frame: &[u8],
    api: ApiKey,
    version: i16,
    proxy: std::net::SocketAddr,
) -> Option<Vec<u8>> {
    let header_version = api.response_header_version(version);
    let mut buf = frame;
    let header = ResponseHeader::decode(&mut buf, header_version).ok()?;
    let host = StrBytes::from_string(proxy.ip().to_string());
    let port = i32::from(proxy.port());
    let mut out = Vec::with_capacity(frame.len());
    header.encode(&mut out, header_version).ok()?;
    match api {
        ApiKey::Metadata => {
            let mut response = MetadataResponse::decode(&mut buf, version).ok()?;
            for broker in &mut response.brokers {
                broker.host = host.clone();
                broker.port = port;
            }
            response.encode(&mut out, version).ok()?;
        }
        ApiKey::FindCoordinator => {
            let mut response = FindCoordinatorResponse::decode(&mut buf, version).ok()?;
            if version < 4 {
                response.host = host.clone();
                response.port = port;
            }
            for coordinator in &mut response.coordinators {
                coordinator.host = host.clone();
                coordinator.port = port;
            }
            response.encode(&mut out, version).ok()?;
        }
        _ => return None,
    }
    Some(out)
}
