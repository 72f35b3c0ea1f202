//! TURN over TCP (RFC 8656 §3.1) for a WebRTC stack that speaks TURN over UDP only.
//!
//! Networks that let no UDP out (offices, hotels) still let a TURN client reach its server
//! over TCP. webrtc-rs 0.21 skips such servers ("unsupported non-UDP TURN url"), so a session
//! that is given one runs a bridge instead: a UDP socket on loopback that webrtc-rs is told is
//! the TURN server (`turn:127.0.0.1:<port>?transport=udp`), and, for each local socket of the
//! stack that talks to it, one TCP connection to the real server. Everything TURN says stays
//! as it is — allocation, permissions, channels, the relayed address the peer sees —; only the
//! client–server leg changes carrier. One connection per local socket keeps the server's
//! 5-tuples apart, as each allocation needs its own.
//!
//! On a stream, messages are delimited by their own length fields (RFC 8656 §12.5): a STUN
//! message is its 20-byte header and `length` bytes; a ChannelData message its 4-byte header,
//! `length` bytes and padding to a multiple of four, which UDP may leave out and TCP may not.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use crate::error::MediaError;

/// How long connecting to the TURN server may take before the bridge gives that local socket
/// up (gathering has its own, shorter patience; see `SERVER_CANDIDATE_WAIT`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Datagrams waiting for a connection that is still being made.
const QUEUED_PER_CONNECTION: usize = 64;
/// The largest message a stream may carry: STUN and ChannelData lengths are 16-bit.
const MAX_MESSAGE: usize = 4 + 65_535 + 3;

/// How many bytes the message at the start of `buf` takes on a stream: `Ok(None)` while its
/// header is incomplete, an error when the first bits fit neither STUN nor ChannelData (the
/// stream has lost its framing and must be closed).
pub(crate) fn stream_message_len(buf: &[u8]) -> Result<Option<usize>, MediaError> {
    let Some(header) = buf.get(..4) else {
        return Ok(None);
    };
    let length = usize::from(u16::from_be_bytes([header[2], header[3]]));
    match header[0] >> 6 {
        0b00 => Ok(Some(20 + length)),
        0b01 => Ok(Some((4 + length).next_multiple_of(4))),
        _ => Err(MediaError::Transport(
            "TURN over TCP: the server sent something neither STUN nor ChannelData".into(),
        )),
    }
}

/// A datagram from the WebRTC stack as the stream carries it: ChannelData padded to a multiple
/// of four; STUN as it is.
pub(crate) fn to_stream(datagram: &[u8]) -> Vec<u8> {
    let mut framed = datagram.to_vec();
    if datagram.first().is_some_and(|b| b >> 6 == 0b01) {
        framed.resize(datagram.len().next_multiple_of(4), 0);
    }
    framed
}

/// A message read from the stream as a datagram for the WebRTC stack: ChannelData without its
/// padding.
pub(crate) fn to_datagram(message: &[u8]) -> &[u8] {
    match message {
        [first, _, hi, lo, ..] if first >> 6 == 0b01 => {
            let end = 4 + usize::from(u16::from_be_bytes([*hi, *lo]));
            &message[..end.min(message.len())]
        }
        _ => message,
    }
}

/// The `host:port` of a `turn:` URL with `transport=tcp`, which the WebRTC stack cannot reach
/// itself (`turn_stream.rs`); `None` for any other URL.
pub(crate) fn tcp_server_of(url: &str) -> Option<String> {
    let rest = url.strip_prefix("turn:")?;
    let (address, query) = rest.split_once('?')?;
    let tcp = query
        .split('&')
        .any(|p| p.eq_ignore_ascii_case("transport=tcp"));
    if !tcp || address.is_empty() {
        return None;
    }
    // RFC 7065 §3.1: the TURN port defaults to 3478.
    let has_port = match address.rsplit_once(':') {
        Some((host, port)) => !host.ends_with(':') && port.parse::<u16>().is_ok(),
        None => false,
    };
    Some(if has_port {
        address.to_owned()
    } else {
        format!("{address}:3478")
    })
}

/// Why a TURN server URL cannot serve a call, in words for the person who typed it; `None` when
/// it can (`turn:` over UDP, or over TCP through the bridge).
pub fn turn_url_problem(url: &str) -> Option<&'static str> {
    if url.starts_with("turns:") {
        // webrtc-rs skips TLS servers, and the bridge speaks plain TCP only.
        Some(
            "TURN over TLS (turns:) is not supported yet; use turn:host:port?transport=tcp, or UDP",
        )
    } else if url.starts_with("turn:") {
        None
    } else {
        Some("the TURN server must start with turn:")
    }
}

/// One TURN server reached over TCP through a loopback UDP socket. Dropping it closes the
/// socket and every connection.
pub(crate) struct TurnStreamBridge {
    local: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for TurnStreamBridge {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TurnStreamBridge {
    /// Starts a bridge to `server` (`host:port`).
    pub(crate) async fn start(server: String) -> Result<Self, MediaError> {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(|e| MediaError::Transport(format!("TURN over TCP bridge: {e}")))?;
        let local = socket
            .local_addr()
            .map_err(|e| MediaError::Transport(format!("TURN over TCP bridge: {e}")))?;
        let task = tokio::spawn(relay(Arc::new(socket), server));
        Ok(Self { local, task })
    }

    /// The URL to give the WebRTC stack in place of the server's.
    pub(crate) fn udp_url(&self) -> String {
        format!("turn:{}?transport=udp", self.local)
    }
}

/// Hands each datagram to the connection of the local socket it came from, making one when a
/// socket speaks for the first time.
async fn relay(socket: Arc<UdpSocket>, server: String) {
    let mut connections: HashMap<SocketAddr, mpsc::Sender<Vec<u8>>> = HashMap::new();
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        let (n, from) = match socket.recv_from(&mut buf).await {
            Ok(received) => received,
            Err(e) => {
                warn!(error = %e, "TURN over TCP bridge: receive failed");
                return;
            }
        };
        connections.retain(|_, to_server| !to_server.is_closed());
        let to_server = connections.entry(from).or_insert_with(|| {
            let (tx, rx) = mpsc::channel(QUEUED_PER_CONNECTION);
            tokio::spawn(connection(socket.clone(), from, server.clone(), rx));
            tx
        });
        if to_server.try_send(to_stream(&buf[..n])).is_err() {
            // The connection is still being made and its queue is full, or it has ended:
            // like a lost datagram, TURN's own retransmissions cover it.
            debug!(%from, "TURN over TCP bridge: datagram dropped");
        }
    }
}

/// One local socket's TCP connection to the server, both ways, until either side ends.
async fn connection(
    socket: Arc<UdpSocket>,
    client: SocketAddr,
    server: String,
    mut from_client: mpsc::Receiver<Vec<u8>>,
) {
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&server)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            warn!(%server, error = %e, "TURN server unreachable over TCP");
            return;
        }
        Err(_) => {
            warn!(%server, "TURN server did not accept a TCP connection in time");
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
    let upstream = async {
        while let Some(message) = from_client.recv().await {
            if writer.write_all(&message).await.is_err() {
                break;
            }
        }
    };
    let downstream = async {
        let mut pending: Vec<u8> = Vec::with_capacity(MAX_MESSAGE);
        let mut chunk = vec![0u8; 16 * 1024];
        loop {
            match reader.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => pending.extend_from_slice(&chunk[..n]),
            }
            loop {
                let len = match stream_message_len(&pending) {
                    Ok(Some(len)) if pending.len() >= len => len,
                    Ok(_) => break,
                    Err(e) => {
                        warn!(%server, error = %e, "TURN over TCP stream closed");
                        return;
                    }
                };
                let message: Vec<u8> = pending.drain(..len).collect();
                if socket.send_to(to_datagram(&message), client).await.is_err() {
                    return;
                }
            }
        }
    };
    tokio::select! {
        () = upstream => {}
        () = downstream => {}
    }
    debug!(%server, %client, "TURN over TCP connection ended");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_delimited_by_their_own_lengths_on_a_stream() {
        // A STUN Binding request with 8 bytes of attributes.
        let mut stun = vec![0x00, 0x01, 0x00, 0x08, 0x21, 0x12, 0xA4, 0x42];
        stun.extend_from_slice(&[7; 12 + 8]);
        assert_eq!(stream_message_len(&stun).unwrap(), Some(28));
        assert_eq!(to_stream(&stun), stun, "STUN travels as it is");
        // ChannelData on channel 0x4000 with 5 bytes: padded to 12 on the stream.
        let data = [0x40, 0x00, 0x00, 0x05, 1, 2, 3, 4, 5];
        let framed = to_stream(&data);
        assert_eq!(framed.len(), 12);
        assert_eq!(stream_message_len(&framed).unwrap(), Some(12));
        assert_eq!(to_datagram(&framed), &data, "the padding is not passed on");
        // Too short to tell; and first bits that fit neither.
        assert_eq!(stream_message_len(&[0x00, 0x01]).unwrap(), None);
        assert!(stream_message_len(&[0x80, 0, 0, 0]).is_err());
        assert!(stream_message_len(&[0xC0, 0, 0, 0]).is_err());
    }

    #[test]
    fn only_turn_urls_over_tcp_need_the_bridge() {
        let of = |url: &str| tcp_server_of(url);
        assert_eq!(
            of("turn:turn.example.com:443?transport=tcp").as_deref(),
            Some("turn.example.com:443")
        );
        assert_eq!(
            of("turn:turn.example.com?transport=tcp").as_deref(),
            Some("turn.example.com:3478")
        );
        assert_eq!(
            of("turn:[::1]?transport=tcp").as_deref(),
            Some("[::1]:3478")
        );
        assert_eq!(
            of("turn:[::1]:5349?transport=tcp").as_deref(),
            Some("[::1]:5349")
        );
        assert_eq!(of("turn:turn.example.com:3478?transport=udp"), None);
        assert_eq!(of("turn:turn.example.com:3478"), None);
        assert_eq!(of("stun:stun.example.com:3478"), None);
        assert_eq!(of("turns:turn.example.com:443?transport=tcp"), None);
    }
}
