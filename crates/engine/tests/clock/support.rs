//! What the clock tests share: a runtime in virtual time that still lets loopback sockets
//! deliver before the clock moves, a scripted SIP peer on the far end of the account's
//! WebSocket, and the engine as a front end holds it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use lyrebird_engine::{
    AccountId, AccountState, AudioSink, AudioSource, CallAudio, CallId, CallRecord, CallState,
    Engine, EngineConfig, EngineEvent, EngineHandle, MediaConfig, Password, SipAccountConfig,
};
use lyrebird_sip::message::{self, Message, Method};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// Slack on a virtual-time measurement: tokio's timers fire on whole milliseconds, and a
/// delay is reported truncated to milliseconds.
pub const SLACK: Duration = Duration::from_millis(5);

/// The longest a `ClockHold` holds, in real time.
const HOLD_AT_MOST: Duration = Duration::from_secs(10);

/// Keeps the paused clock still while work on other threads takes real time. A call's offer is
/// built on the media thread; meanwhile this runtime has nothing to do, so its paused clock
/// would race through keep-alives and timeouts, minutes of virtual time per real millisecond.
/// tokio does not auto-advance while a blocking task runs, so the hold is one that waits to be
/// released (or `HOLD_AT_MOST`, so a test that never releases still ends).
pub struct ClockHold {
    release: std::sync::mpsc::Sender<()>,
    held: tokio::task::JoinHandle<()>,
}

impl ClockHold {
    pub fn new() -> ClockHold {
        let (release, released) = std::sync::mpsc::channel::<()>();
        let held = tokio::task::spawn_blocking(move || {
            let _ = released.recv_timeout(HOLD_AT_MOST);
        });
        ClockHold { release, held }
    }

    /// Lets the clock run again, once the blocking task has returned.
    pub async fn release(self) -> Result<()> {
        let _ = self.release.send(());
        self.held.await?;
        Ok(())
    }
}

/// Audio that needs no sound card.
pub fn quiet_audio() -> CallAudio {
    CallAudio {
        source: AudioSource::Silence,
        sink: AudioSink::Discard,
        music_on_hold: None,
    }
}

pub const AOR: &str = "sip:alice@lyrebird.test";
pub const REALM: &str = "lyrebird.test";

// ----- The scripted SIP peer -----

/// What the peer saw, when (virtual time) and on which connection (numbered from 1 in the
/// order they were accepted).
#[derive(Debug, Clone)]
pub struct Seen {
    pub at: Instant,
    pub conn: usize,
    pub what: Saw,
}

#[derive(Debug, Clone)]
pub enum Saw {
    /// A connection attempt turned away: the TCP connection was closed before the upgrade.
    Refused,
    /// A WebSocket with the `sip` sub-protocol is open.
    Opened,
    Request(Box<Message>),
    Response(Box<Message>),
    /// The connection is gone.
    Closed,
}

impl Seen {
    pub fn request(&self, method: &Method) -> Option<&Message> {
        match &self.what {
            Saw::Request(m) if m.method() == Some(method) => Some(m),
            _ => None,
        }
    }

    /// A response to a request of `method` with this status.
    pub fn response(&self, method: &Method, status: u16) -> Option<&Message> {
        match &self.what {
            Saw::Response(m)
                if m.status() == Some(status) && m.cseq().is_ok_and(|c| &c.method == method) =>
            {
                Some(m)
            }
            _ => None,
        }
    }
}

enum ToConn {
    Send(String),
    /// Stop reading: no more SIP answers and no more pongs, though the TCP stays open.
    Deafen,
    /// Drop the connection without a closing handshake.
    Drop,
}

/// What the test can change while the peer runs.
struct Script {
    /// Connection attempts still to turn away.
    refuse: u32,
    /// The registration lifetime the 200 grants, whatever was asked.
    grant_s: u32,
    conns: HashMap<usize, mpsc::UnboundedSender<ToConn>>,
}

/// A SIP registrar and peer on 127.0.0.1 that speaks SIP over WebSocket (RFC 7118). It
/// answers REGISTER itself (401 with a digest challenge, then 200 granting `grant_s`);
/// everything else it only reports, and the test answers.
pub struct Peer {
    pub url: String,
    script: Arc<Mutex<Script>>,
    seen: mpsc::UnboundedReceiver<Seen>,
    /// Everything taken from `seen` so far, in order.
    pub log: Vec<Seen>,
}

impl Peer {
    pub async fn start(grant_s: u32) -> Result<Peer> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("ws://{}", listener.local_addr()?);
        let script = Arc::new(Mutex::new(Script {
            refuse: 0,
            grant_s,
            conns: HashMap::new(),
        }));
        let (seen_tx, seen) = mpsc::unbounded_channel();
        tokio::spawn(accept_loop(listener, Arc::clone(&script), seen_tx));
        Ok(Peer {
            url,
            script,
            seen,
            log: Vec::new(),
        })
    }

    fn script(&self) -> std::sync::MutexGuard<'_, Script> {
        self.script.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Turns the next `n` connection attempts away.
    pub fn refuse_next(&self, n: u32) {
        self.script().refuse = n;
    }

    pub fn grant(&self, seconds: u32) {
        self.script().grant_s = seconds;
    }

    fn tell(&self, conn: usize, what: ToConn) -> Result<()> {
        let script = self.script();
        let tx = script
            .conns
            .get(&conn)
            .ok_or_else(|| anyhow!("connection {conn} is not open"))?;
        tx.send(what)
            .map_err(|_| anyhow!("connection {conn} is gone"))
    }

    pub fn send(&self, conn: usize, text: impl Into<String>) -> Result<()> {
        self.tell(conn, ToConn::Send(text.into()))
    }

    pub fn drop_connection(&self, conn: usize) -> Result<()> {
        self.tell(conn, ToConn::Drop)
    }

    pub fn stop_answering(&self, conn: usize) -> Result<()> {
        self.tell(conn, ToConn::Deafen)
    }

    /// The first thing seen from now on that `pick` accepts; what it skips stays in `log`.
    pub async fn wait_for<T>(
        &mut self,
        within: Duration,
        what: &str,
        mut pick: impl FnMut(&Seen) -> Option<T>,
    ) -> Result<T> {
        let deadline = Instant::now() + within;
        loop {
            let seen = tokio::time::timeout_at(deadline, self.seen.recv())
                .await
                .map_err(|_| anyhow!("the peer saw no {what} within {within:?}"))?
                .ok_or_else(|| anyhow!("the peer stopped"))?;
            self.log.push(seen.clone());
            if let Some(found) = pick(&seen) {
                return Ok(found);
            }
        }
    }

    /// A request of `method`: when it arrived, on which connection, and the request.
    pub async fn request(
        &mut self,
        method: Method,
        within: Duration,
    ) -> Result<(Instant, usize, Message)> {
        let what = format!("{method} request");
        self.wait_for(within, &what, |s| {
            s.request(&method).map(|m| (s.at, s.conn, m.clone()))
        })
        .await
    }

    /// A response to a `method` request with `status`.
    pub async fn response(
        &mut self,
        method: Method,
        status: u16,
        within: Duration,
    ) -> Result<(Instant, Message)> {
        let what = format!("{status} response to {method}");
        self.wait_for(within, &what, |s| {
            s.response(&method, status).map(|m| (s.at, m.clone()))
        })
        .await
    }

    /// Takes everything seen so far into `log` without waiting.
    pub fn catch_up(&mut self) -> &[Seen] {
        while let Ok(seen) = self.seen.try_recv() {
            self.log.push(seen);
        }
        &self.log
    }
}

async fn accept_loop(
    listener: TcpListener,
    script: Arc<Mutex<Script>>,
    seen: mpsc::UnboundedSender<Seen>,
) {
    let mut accepted = 0;
    while let Ok((tcp, _)) = listener.accept().await {
        accepted += 1;
        // As the engine does on its side: with Nagle's algorithm a response written right after
        // a pong would wait in the kernel for the client's delayed ACK, milliseconds of real
        // time in which the paused clock jumps to the next timer.
        let _ = tcp.set_nodelay(true);
        let refuse = {
            let mut script = script.lock().unwrap_or_else(PoisonError::into_inner);
            let refuse = script.refuse > 0;
            script.refuse = script.refuse.saturating_sub(1);
            refuse
        };
        if refuse {
            drop(tcp);
            let _ = seen.send(Seen {
                at: Instant::now(),
                conn: accepted,
                what: Saw::Refused,
            });
            continue;
        }
        tokio::spawn(serve(accepted, tcp, Arc::clone(&script), seen.clone()));
    }
}

async fn serve(
    conn: usize,
    tcp: TcpStream,
    script: Arc<Mutex<Script>>,
    seen: mpsc::UnboundedSender<Seen>,
) {
    let report = |what: Saw| {
        let _ = seen.send(Seen {
            at: Instant::now(),
            conn,
            what,
        });
    };
    // The callback's signature, and so its error type's size, is tungstenite's.
    #[allow(clippy::result_large_err)]
    let agree_on_sip = |_: &Request, mut response: Response| {
        response
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("sip"));
        Ok(response)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, agree_on_sip).await else {
        report(Saw::Closed);
        return;
    };
    let (tx, mut commands) = mpsc::unbounded_channel();
    script
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .conns
        .insert(conn, tx);
    report(Saw::Opened);
    let mut deaf = false;
    loop {
        tokio::select! {
            // Reading is also what answers pings (tungstenite queues the pong).
            frame = ws.next(), if !deaf => {
                let text = match frame {
                    Some(Ok(Frame::Text(text))) => text.as_str().to_owned(),
                    Some(Ok(Frame::Binary(data))) => String::from_utf8_lossy(&data).into_owned(),
                    Some(Ok(_)) => continue,
                    Some(Err(_)) | None => break,
                };
                let Ok(sip) = message::parse(text.as_bytes()) else {
                    continue;
                };
                if sip.status().is_some() {
                    report(Saw::Response(Box::new(sip)));
                    continue;
                }
                let answer = (sip.method() == Some(&Method::Register)).then(|| {
                    let grant = script.lock().unwrap_or_else(PoisonError::into_inner).grant_s;
                    answer_register(&sip, grant)
                });
                report(Saw::Request(Box::new(sip)));
                if let Some(answer) = answer
                    && ws.send(Frame::Text(answer.into())).await.is_err()
                {
                    break;
                }
            }
            command = commands.recv() => match command {
                Some(ToConn::Send(text)) => {
                    if ws.send(Frame::Text(text.into())).await.is_err() {
                        break;
                    }
                }
                Some(ToConn::Deafen) => deaf = true,
                Some(ToConn::Drop) | None => break,
            },
        }
    }
    script
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .conns
        .remove(&conn);
    drop(ws);
    report(Saw::Closed);
}

/// A response to `request`: its Via, From, Call-ID and CSeq, and its To with our tag.
pub fn response_to(request: &Message, status: u16, reason: &str) -> Message {
    let mut response = Message::new_response(status, reason);
    for via in request.header_values("Via") {
        response.push_header("Via", via);
    }
    for name in ["From", "Call-ID", "CSeq"] {
        if let Some(value) = request.header(name) {
            response.push_header(name, value);
        }
    }
    let to = request.header("To").unwrap_or_default();
    let to = if to.contains(";tag=") || status == 100 {
        to.to_owned()
    } else {
        format!("{to};tag=peer-tag")
    };
    response.push_header("To", to);
    response
}

pub fn text(message: &Message) -> String {
    String::from_utf8_lossy(&message.to_bytes()).into_owned()
}

/// §22.4 challenge first; with credentials, a 200 that grants `grant_s` both in our Contact's
/// `expires` and in Expires (what the core should read, §10.2.4). Expires: 0 unregisters.
fn answer_register(request: &Message, grant_s: u32) -> String {
    if request.header("Authorization").is_none() {
        let mut challenge = response_to(request, 401, "Unauthorized");
        challenge.push_header(
            "WWW-Authenticate",
            format!("Digest realm=\"{REALM}\", nonce=\"peer-nonce\", algorithm=MD5, qop=\"auth\""),
        );
        return text(&challenge);
    }
    let unregister = request.header("Expires").map(str::trim) == Some("0");
    let mut ok = response_to(request, 200, "OK");
    if !unregister && let Ok(contacts) = request.contacts() {
        for contact in contacts {
            ok.push_header("Contact", format!("<{}>;expires={grant_s}", contact.uri));
        }
        ok.push_header("Expires", grant_s.to_string());
    }
    text(&ok)
}

// ----- The engine, as a front end holds it -----

/// An engine with one SIP account on the peer, and every event it reported, stamped with the
/// virtual time it arrived.
pub struct Client {
    pub engine: EngineHandle,
    pub account: AccountId,
    events: mpsc::UnboundedReceiver<EngineEvent>,
    pub log: Vec<(Instant, EngineEvent)>,
}

impl Client {
    pub async fn start(peer: &Peer) -> Result<Client> {
        let config = EngineConfig {
            media: MediaConfig {
                bind_addrs: vec![std::net::Ipv4Addr::LOCALHOST.into()],
                ..MediaConfig::default()
            },
            ..EngineConfig::default()
        };
        let (engine, events) = Engine::start(config)?;
        let mut account = SipAccountConfig::new(&peer.url, AOR, Password::new("secret"));
        account.instance_id = Some("5a1e2c4e-0000-4000-8000-00000000c10c".into());
        let account = engine.add_sip_account(account).await?;
        Ok(Client {
            engine,
            account,
            events,
            log: Vec::new(),
        })
    }

    /// The first event from now on that `pick` accepts, and when it came.
    pub async fn wait_for<T>(
        &mut self,
        within: Duration,
        what: &str,
        mut pick: impl FnMut(&EngineEvent) -> Option<T>,
    ) -> Result<(Instant, T)> {
        let deadline = Instant::now() + within;
        loop {
            let event = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .map_err(|_| anyhow!("no {what} within {within:?}; events: {:#?}", self.log))?
                .context("the engine stopped")?;
            let at = Instant::now();
            self.log.push((at, event.clone()));
            if let Some(found) = pick(&event) {
                return Ok((at, found));
            }
        }
    }

    /// The account's next state change.
    pub async fn next_state(&mut self, within: Duration) -> Result<(Instant, AccountState)> {
        let account = self.account;
        self.wait_for(within, "account state", |e| match e {
            EngineEvent::AccountState { account: a, state } if *a == account => Some(state.clone()),
            _ => None,
        })
        .await
    }

    /// Waits for `Registered`, failing on any state that means it will not come.
    pub async fn registered(&mut self, within: Duration) -> Result<(Instant, u64)> {
        loop {
            let (at, state) = self.next_state(within).await?;
            match state {
                AccountState::Registered { expires_s, .. } => return Ok((at, expires_s)),
                AccountState::Connecting
                | AccountState::Connected
                | AccountState::Reconnecting { .. } => {}
                other => bail!("expected to register, got {other:?}"),
            }
        }
    }

    /// How the call ended: when, the words shown, and the SIP status.
    pub async fn ended(
        &mut self,
        call: CallId,
        within: Duration,
    ) -> Result<(Instant, String, Option<u16>)> {
        let (at, (reason, status)) = self
            .wait_for(within, "end of the call", |e| match e {
                EngineEvent::CallState {
                    call: c,
                    state: CallState::Ended { reason, status },
                    ..
                } if *c == call => Some((reason.clone(), *status)),
                _ => None,
            })
            .await?;
        Ok((at, reason, status))
    }

    /// Takes every event reported so far into `log` without waiting.
    pub fn catch_up(&mut self) -> &[(Instant, EngineEvent)] {
        while let Ok(event) = self.events.try_recv() {
            self.log.push((Instant::now(), event));
        }
        &self.log
    }

    /// The newest call in history.
    pub async fn last_call(&self) -> Result<CallRecord> {
        self.engine
            .recent_calls(1)
            .await?
            .into_iter()
            .next()
            .context("no call in history")
    }
}

/// `later - earlier`, failing the test if time ran backwards.
pub fn gap(earlier: Instant, later: Instant) -> Result<Duration> {
    later
        .checked_duration_since(earlier)
        .ok_or_else(|| anyhow!("{later:?} is before {earlier:?}"))
}

/// Fails unless `measured` is `expected` give or take `SLACK`.
pub fn assert_close(measured: Duration, expected: Duration, what: &str) -> Result<()> {
    let off = measured.abs_diff(expected);
    if off > SLACK {
        bail!("{what}: expected {expected:?}, measured {measured:?}");
    }
    Ok(())
}
