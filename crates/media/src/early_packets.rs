//! What the peer sends before our ICE agent is ready for it, when we made the offer.
//!
//! The offerer's candidates reach the answerer in the offer, so a browser that answers starts
//! its connectivity checks at once — while the offerer is still waiting for the answer, and so
//! has no remote credentials yet. RFC 8445 §7.3 (RFC 5245 §7.2 before it) says an agent that
//! gets a Binding request before the peer's candidates MUST answer it at once: the request is
//! authenticated with the *offerer's own* password, which is all a response needs. Once its
//! check is answered the browser also starts DTLS (it is the DTLS client when it answers
//! `actpass` with `active`, RFC 8842 §5.3).
//!
//! webrtc-rs 0.21 drops both until it is ready: checks until the answer is applied, DTLS
//! until its own checks succeed. That costs whole rounds. Chromium keeps gathering (UDP, then
//! relay, then TCP phases 50 ms apart) until a connection becomes writable, and JsSIP holds its
//! 200 OK until gathering ends — ≈ 130 ms after the offer when the checks go unanswered,
//! ≈ 30 ms when they are answered; and a dropped ClientHello waits for Chromium's first
//! retransmission, 50 ms later. So Lyrebird, on the sockets the peer connection owns:
//! 1. answers the peer's checks itself between the offer and the answer, and
//! 2. keeps what else the peer sends (its DTLS flights, RFC 7983 §7 first byte 20–63) until
//!    our ICE agent is connected, then hands it to the agent as if it had just arrived.
//!
//! [`AnsweringRuntime`] is webrtc-rs's tokio runtime with every UDP socket wrapped in an
//! [`AnsweringSocket`]; [`EarlyPackets`] holds the phase and decides, without I/O.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use rtc::crypto::{RTCCryptoProvider, default_provider};
use rtc::stun::attributes::ATTR_USERNAME;
use rtc::stun::fingerprint::FINGERPRINT;
use rtc::stun::integrity::MessageIntegrity;
use rtc::stun::message::{BINDING_REQUEST, BINDING_SUCCESS, Message, Setter, is_stun_message};
use rtc::stun::textattrs::TextAttribute;
use rtc::stun::xoraddr::XorMappedAddress;
use tracing::{debug, warn};
use webrtc::runtime::{
    AsyncInterval, AsyncTcpListener, AsyncTcpStream, AsyncUdpSocket, JoinHandle, RecvMeta, Runtime,
    TokioRuntime, Transmit,
};

/// Responses sent per session at most: a peer checks each pair a few times before the answer
/// arrives; the bound keeps a misbehaving one from turning the socket into a STUN responder.
const MAX_EARLY_RESPONSES: u32 = 64;
/// Datagrams kept per socket at most (a DTLS client's first flights are one or two datagrams,
/// repeated on its retransmission timer); beyond this they are dropped as before.
const MAX_HELD_DATAGRAMS: usize = 16;

/// Where a session stands, as far as early packets go.
#[derive(Default)]
enum Phase {
    /// No offer of ours outstanding (nothing sent yet, or we answered the peer's offer):
    /// everything passes.
    #[default]
    Idle,
    /// Our offer is out: the peer's checks are answered here, its DTLS is kept.
    Offered { ufrag: String, pwd: String },
    /// The answer is applied and the agent answers checks itself; DTLS is still kept.
    Answered,
    /// The agent is connected (or gave up): everything passes, kept datagrams are handed on.
    Ready,
}

/// What to do with one datagram from the peer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Early {
    /// Send this Binding success response back; the agent need not see the request.
    Answer(Vec<u8>),
    /// Keep it for the agent until it is connected.
    Hold,
    /// Hand it to the agent now.
    Pass,
}

/// The phase of one session's early packets, shared by its sockets.
#[derive(Default)]
pub(crate) struct EarlyPackets {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    phase: Phase,
    responses: u32,
    /// Sockets holding datagrams, to wake when they can hand them on.
    waiting: Vec<Waker>,
}

impl EarlyPackets {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Our offer with these ICE credentials is out. Only a session's first offer counts: once
    /// the agent has been connected it answers every check itself (a later offer keeps its
    /// credentials, and consent checks must reach it).
    pub(crate) fn offered(&self, ufrag: String, pwd: String) {
        let mut state = self.state();
        if matches!(state.phase, Phase::Idle) {
            state.phase = Phase::Offered { ufrag, pwd };
        }
    }

    /// The peer's answer is applied: its checks are the agent's business from now on.
    pub(crate) fn answer_applied(&self) {
        let mut state = self.state();
        if matches!(state.phase, Phase::Offered { .. }) {
            if state.responses > 0 {
                debug!(
                    responses = state.responses,
                    "answered connectivity checks before the answer"
                );
            }
            state.phase = Phase::Answered;
        }
    }

    /// The agent is connected, failed or closed: hand on what was kept.
    pub(crate) fn ice_settled(&self) {
        let waiting = {
            let mut state = self.state();
            state.phase = Phase::Ready;
            std::mem::take(&mut state.waiting)
        };
        for waker in waiting {
            waker.wake();
        }
    }

    /// Whether datagrams are being looked at (an offer of ours is outstanding).
    fn watching(&self) -> bool {
        matches!(self.state().phase, Phase::Offered { .. } | Phase::Answered)
    }

    /// Wakes `waker` when kept datagrams can be handed on (at once if they already can).
    fn wake_when_settled(&self, waker: &Waker) {
        let mut state = self.state();
        if matches!(state.phase, Phase::Ready | Phase::Idle) {
            waker.wake_by_ref();
        } else if !state.waiting.iter().any(|w| w.will_wake(waker)) {
            state.waiting.push(waker.clone());
        }
    }

    /// What to do with `datagram` from `from`.
    ///
    /// A connectivity check for our offer — a Binding request whose USERNAME starts with our
    /// ufrag (RFC 8445 §7.2.2: `ours:theirs`) and whose MESSAGE-INTEGRITY verifies with our
    /// password — is answered while the answer is outstanding. DTLS (RFC 7983 §7: first byte
    /// 20–63) is held until the agent is connected. Anything else passes.
    pub(crate) fn classify(
        &self,
        datagram: &[u8],
        from: SocketAddr,
        crypto: &dyn RTCCryptoProvider,
    ) -> Early {
        let mut state = self.state();
        match &state.phase {
            Phase::Idle | Phase::Ready => Early::Pass,
            _ if matches!(datagram.first(), Some(20..=63)) => Early::Hold,
            Phase::Answered => Early::Pass,
            Phase::Offered { ufrag, pwd } => {
                if state.responses >= MAX_EARLY_RESPONSES {
                    return Early::Pass;
                }
                match check_response(datagram, from, ufrag, pwd, crypto) {
                    Some(response) => {
                        state.responses += 1;
                        Early::Answer(response)
                    }
                    None => Early::Pass,
                }
            }
        }
    }
}

/// The Binding success response (RFC 8489 §6.3.3, RFC 8445 §7.3.1) to a connectivity check
/// addressed to `ufrag` and authenticated with `pwd`, or `None` if `datagram` is not one.
fn check_response(
    datagram: &[u8],
    from: SocketAddr,
    ufrag: &str,
    pwd: &str,
    crypto: &dyn RTCCryptoProvider,
) -> Option<Vec<u8>> {
    if !is_stun_message(datagram) {
        return None;
    }
    let mut request = Message::new();
    request.raw = datagram.to_vec();
    request.decode().ok()?;
    if request.typ != BINDING_REQUEST {
        return None;
    }
    let username = TextAttribute::get_from_as(&request, ATTR_USERNAME).ok()?;
    let addressed_to_us = username
        .text
        .split_once(':')
        .is_some_and(|(receiver, _sender)| receiver == ufrag);
    if !addressed_to_us {
        return None;
    }
    if let Err(err) = MessageIntegrity::check(&mut request, pwd.as_bytes(), crypto.crypto()) {
        debug!(%from, %err, "early connectivity check failed its integrity check");
        return None;
    }
    let mut response = Message::new();
    let setters: [Box<dyn Setter>; 5] = [
        // The request's transaction ID, so the peer matches the response to its check.
        Box::new(request),
        Box::new(BINDING_SUCCESS),
        Box::new(XorMappedAddress {
            ip: from.ip(),
            port: from.port(),
        }),
        Box::new(MessageIntegrity::new_short_term_integrity_with_provider(
            pwd.to_owned(),
            crypto.crypto(),
        )),
        Box::new(FINGERPRINT),
    ];
    if let Err(err) = response.build(&setters) {
        warn!(%err, "cannot build a connectivity check response");
        return None;
    }
    Some(response.raw)
}

/// webrtc-rs's tokio runtime, except that its tasks run on the media thread
/// ([`crate::media_thread`]) and its UDP sockets see to early packets.
pub(crate) struct AnsweringRuntime {
    inner: TokioRuntime,
    early: Arc<EarlyPackets>,
    crypto: Option<Arc<dyn RTCCryptoProvider>>,
}

impl AnsweringRuntime {
    pub(crate) fn new(early: Arc<EarlyPackets>) -> Self {
        let crypto = match default_provider() {
            Ok(provider) => Some(provider),
            Err(err) => {
                warn!(%err, "no STUN crypto; early connectivity checks go unanswered");
                None
            }
        };
        AnsweringRuntime {
            inner: TokioRuntime,
            early,
            crypto,
        }
    }
}

impl fmt::Debug for AnsweringRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnsweringRuntime").finish_non_exhaustive()
    }
}

impl Runtime for AnsweringRuntime {
    /// The peer connection's tasks (its driver above all) run on the media thread.
    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) -> Box<dyn JoinHandle> {
        Box::new(MediaTaskHandle(crate::media_thread::spawn(future)))
    }

    /// The media thread replaces webrtc-rs's own pool of reactor threads, so the pool's size
    /// does not apply.
    fn spawn_reactor(
        &self,
        _reactor_pool_size: usize,
        future: Pin<Box<dyn Future<Output = ()> + Send>>,
    ) -> Box<dyn JoinHandle> {
        self.spawn(future)
    }

    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        let inner = self.inner.wrap_udp_socket(socket)?;
        Ok(match &self.crypto {
            Some(crypto) => Arc::new(AnsweringSocket {
                inner,
                early: self.early.clone(),
                crypto: crypto.clone(),
                held: Mutex::default(),
            }),
            None => inner,
        })
    }

    fn wrap_tcp_listener(
        &self,
        listener: std::net::TcpListener,
    ) -> io::Result<Arc<dyn AsyncTcpListener>> {
        self.inner.wrap_tcp_listener(listener)
    }

    fn connect_tcp<'a>(
        &'a self,
        remote_addr: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = io::Result<Arc<dyn AsyncTcpStream>>> + Send + 'a>> {
        self.inner.connect_tcp(remote_addr)
    }

    fn resolve_host<'a>(
        &'a self,
        host: &'a str,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'a>> {
        self.inner.resolve_host(host)
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        self.inner.sleep(duration)
    }

    fn interval(&self, period: Duration) -> Box<dyn AsyncInterval> {
        self.inner.interval(period)
    }

    fn block_on(&self, future: Pin<Box<dyn Future<Output = ()> + '_>>) {
        self.inner.block_on(future)
    }

    fn yield_now(&self) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        self.inner.yield_now()
    }

    fn name(&self) -> &'static str {
        "tokio (early packets)"
    }
}

/// A task of the peer connection on the media thread. Dropping it detaches the task.
struct MediaTaskHandle(tokio::task::JoinHandle<()>);

impl JoinHandle for MediaTaskHandle {
    fn detach(&self) {}

    fn abort(&self) {
        self.0.abort();
    }

    fn is_finished(&self) -> bool {
        self.0.is_finished()
    }
}

/// A datagram kept for the agent.
struct Held {
    data: Vec<u8>,
    meta: RecvMeta,
}

/// A peer connection's UDP socket that sees to early packets as it receives them.
struct AnsweringSocket {
    inner: Arc<dyn AsyncUdpSocket>,
    early: Arc<EarlyPackets>,
    crypto: Arc<dyn RTCCryptoProvider>,
    held: Mutex<VecDeque<Held>>,
}

impl fmt::Debug for AnsweringSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnsweringSocket")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl AnsweringSocket {
    fn held(&self) -> MutexGuard<'_, VecDeque<Held>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Fills `bufs` from the kept datagrams once the agent can take them; how many.
    fn hand_on_held(&self, bufs: &mut [IoSliceMut<'_>], meta: &mut [RecvMeta]) -> usize {
        let mut held = self.held();
        let mut filled = 0;
        while filled < bufs.len().min(meta.len()) {
            let Some(datagram) = held.pop_front() else {
                break;
            };
            let Some(slot) = bufs[filled].get_mut(..datagram.data.len()) else {
                continue;
            };
            slot.copy_from_slice(&datagram.data);
            meta[filled] = datagram.meta;
            filled += 1;
        }
        filled
    }

    /// Answers or keeps what needs it among `count` received datagrams and moves the rest to
    /// the front; how many are left for the agent.
    fn sort_out(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
        count: usize,
    ) -> usize {
        let mut kept = 0;
        for index in 0..count.min(bufs.len()).min(meta.len()) {
            let info = meta[index];
            // A GRO buffer (several datagrams of `stride` bytes) is never an early packet.
            let single = info.stride >= info.len;
            let action = match bufs[index].get(..info.len) {
                Some(datagram) if single => {
                    self.early
                        .classify(datagram, info.addr, self.crypto.as_ref())
                }
                _ => Early::Pass,
            };
            match action {
                Early::Answer(response) => {
                    let transmit = Transmit {
                        destination: info.addr,
                        ecn: None,
                        contents: &response,
                        segment_size: None,
                        src_ip: info.dst_ip,
                    };
                    // A full send buffer loses this response; the peer repeats its check.
                    if let Poll::Ready(Err(err)) = self.inner.poll_send(cx, &transmit) {
                        debug!(%err, to = %info.addr, "early check response not sent");
                    }
                }
                Early::Hold => {
                    let mut held = self.held();
                    if held.len() < MAX_HELD_DATAGRAMS {
                        held.push_back(Held {
                            data: bufs[index][..info.len].to_vec(),
                            meta: info,
                        });
                        self.early.wake_when_settled(cx.waker());
                    }
                }
                Early::Pass => {
                    if kept != index {
                        let (front, back) = bufs.split_at_mut(index);
                        match (front[kept].get_mut(..info.len), back[0].get(..info.len)) {
                            (Some(slot), Some(datagram)) => slot.copy_from_slice(datagram),
                            _ => continue,
                        }
                        meta[kept] = info;
                    }
                    kept += 1;
                }
            }
        }
        kept
    }
}

impl AsyncUdpSocket for AnsweringSocket {
    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn poll_send(&self, cx: &mut Context<'_>, transmit: &Transmit<'_>) -> Poll<io::Result<usize>> {
        self.inner.poll_send(cx, transmit)
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        if !self.early.watching() {
            let handed = self.hand_on_held(bufs, meta);
            if handed > 0 {
                return Poll::Ready(Ok(handed));
            }
            return self.inner.poll_recv(cx, bufs, meta);
        }
        loop {
            let count = match self.inner.poll_recv(cx, bufs, meta) {
                Poll::Ready(Ok(count)) => count,
                other => return other,
            };
            let kept = self.sort_out(cx, bufs, meta, count);
            if kept > 0 {
                return Poll::Ready(Ok(kept));
            }
            // Everything was answered or kept: read on (the socket registers the waker when
            // it has nothing more).
        }
    }

    fn max_gso_segments(&self) -> usize {
        self.inner.max_gso_segments()
    }

    fn max_gro_segments(&self) -> usize {
        self.inner.max_gro_segments()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::stun::attributes::ATTR_XORMAPPED_ADDRESS;
    use rtc::stun::message::CLASS_SUCCESS_RESPONSE;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    const UFRAG: &str = "ourfrag";
    const PWD: &str = "our-password-of-22-chars";
    /// The start of a DTLS handshake record (content type 22, DTLS 1.2).
    const CLIENT_HELLO: &[u8] = &[22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

    fn crypto() -> Arc<dyn RTCCryptoProvider> {
        default_provider().expect("a built-in crypto provider")
    }

    /// A check as the answering peer sends it (RFC 8445 §7.2.2): USERNAME `ours:theirs`,
    /// short-term MESSAGE-INTEGRITY with our password, FINGERPRINT.
    fn check(username: &str, pwd: &str) -> Message {
        let crypto = crypto();
        let mut m = Message::new();
        m.new_transaction_id().expect("transaction id");
        let setters: [Box<dyn Setter>; 4] = [
            Box::new(BINDING_REQUEST),
            Box::new(TextAttribute::new(ATTR_USERNAME, username.to_owned())),
            Box::new(MessageIntegrity::new_short_term_integrity_with_provider(
                pwd.to_owned(),
                crypto.crypto(),
            )),
            Box::new(FINGERPRINT),
        ];
        m.build(&setters).expect("request");
        m
    }

    fn from() -> SocketAddr {
        "127.0.0.1:40000".parse().expect("address")
    }

    fn offered() -> EarlyPackets {
        let early = EarlyPackets::default();
        early.offered(UFRAG.into(), PWD.into());
        early
    }

    fn classify(early: &EarlyPackets, datagram: &[u8]) -> Early {
        early.classify(datagram, from(), crypto().as_ref())
    }

    #[test]
    fn a_check_for_our_offer_is_answered_with_our_password() {
        let early = offered();
        let request = check("ourfrag:peerfrag", PWD);
        let Early::Answer(response) = classify(&early, &request.raw) else {
            panic!("no response");
        };
        let mut decoded = Message::new();
        decoded.raw = response;
        decoded.decode().expect("decodes");
        assert_eq!(decoded.typ, BINDING_SUCCESS);
        assert_eq!(decoded.typ.class, CLASS_SUCCESS_RESPONSE);
        assert_eq!(decoded.transaction_id, request.transaction_id);
        let mut mapped = XorMappedAddress::default();
        mapped
            .get_from_as(&decoded, ATTR_XORMAPPED_ADDRESS)
            .expect("XOR-MAPPED-ADDRESS");
        assert_eq!(SocketAddr::new(mapped.ip, mapped.port), from());
        // The peer verifies the response with the password it has from our offer.
        MessageIntegrity::check(&mut decoded, PWD.as_bytes(), crypto().crypto())
            .expect("integrity with our password");
        FINGERPRINT.check(&decoded).expect("fingerprint");
    }

    #[test]
    fn checks_for_someone_else_or_with_a_wrong_password_pass_unanswered() {
        let early = offered();
        let other_ufrag = check("otherfrag:peerfrag", PWD);
        assert_eq!(classify(&early, &other_ufrag.raw), Early::Pass);
        let wrong_password = check("ourfrag:peerfrag", "not-our-password-at-all");
        assert_eq!(classify(&early, &wrong_password.raw), Early::Pass);
        // RTP-looking, truncated, empty.
        assert_eq!(
            classify(&early, &[0x80, 0x6f, 0, 1, 0, 0, 0, 0]),
            Early::Pass
        );
        let request = check("ourfrag:peerfrag", PWD);
        assert_eq!(classify(&early, &request.raw[..30]), Early::Pass);
        assert_eq!(classify(&early, &[]), Early::Pass);
    }

    #[test]
    fn each_phase_does_its_part() {
        let request = check("ourfrag:peerfrag", PWD);
        let early = EarlyPackets::default();
        // Before an offer (or when we answer the peer's): hands off.
        assert_eq!(classify(&early, &request.raw), Early::Pass);
        assert_eq!(classify(&early, CLIENT_HELLO), Early::Pass);
        early.offered(UFRAG.into(), PWD.into());
        assert!(matches!(classify(&early, &request.raw), Early::Answer(_)));
        assert_eq!(classify(&early, CLIENT_HELLO), Early::Hold);
        // The agent answers checks once it has the answer; DTLS waits for its checks.
        early.answer_applied();
        assert_eq!(classify(&early, &request.raw), Early::Pass);
        assert_eq!(classify(&early, CLIENT_HELLO), Early::Hold);
        early.ice_settled();
        assert_eq!(classify(&early, &request.raw), Early::Pass);
        assert_eq!(classify(&early, CLIENT_HELLO), Early::Pass);
        // A later offer (a re-INVITE) leaves the connected agent alone.
        early.offered(UFRAG.into(), PWD.into());
        assert_eq!(classify(&early, &request.raw), Early::Pass);
        assert_eq!(classify(&early, CLIENT_HELLO), Early::Pass);
    }

    #[test]
    fn responses_are_bounded() {
        let early = offered();
        let request = check("ourfrag:peerfrag", PWD);
        let answered = (0..MAX_EARLY_RESPONSES + 10)
            .filter(|_| matches!(classify(&early, &request.raw), Early::Answer(_)))
            .count();
        assert_eq!(answered, MAX_EARLY_RESPONSES as usize);
    }

    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_socket_holding_datagrams_is_woken_when_the_agent_connects() {
        let early = offered();
        let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let waker = Waker::from(counter.clone());
        early.wake_when_settled(&waker);
        early.wake_when_settled(&waker);
        early.answer_applied();
        assert_eq!(counter.0.load(Ordering::SeqCst), 0);
        early.ice_settled();
        assert_eq!(counter.0.load(Ordering::SeqCst), 1, "woken once");
        // Registering after the fact wakes at once.
        early.wake_when_settled(&waker);
        assert_eq!(counter.0.load(Ordering::SeqCst), 2);
    }
}
