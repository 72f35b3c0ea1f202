//! XMPP: stanzas as the client core sees them once online, and the client driven through
//! login, resumption and everyday traffic by a server that answers what it sends.

use std::time::Instant;

use arbitrary::Arbitrary;
use lyrebird_xmpp::{ArchiveStart, ChatState, Client, ClientConfig, Show, XmppEvent, time};

use crate::{Clock, check_memory, heap, settle_timers};

const OPEN: &str = "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' from='localhost' id='s1' version='1.0' xml:lang='en'/>";
const FEATURES_SASL: &str = "<stream:features xmlns:stream='http://etherx.jabber.org/streams'><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>SCRAM-SHA-1</mechanism><mechanism>PLAIN</mechanism></mechanisms></stream:features>";
const FEATURES_PLAIN: &str = "<stream:features xmlns:stream='http://etherx.jabber.org/streams'><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features>";
const FEATURES_BIND: &str = "<stream:features xmlns:stream='http://etherx.jabber.org/streams'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/><sm xmlns='urn:xmpp:sm:3'/></stream:features>";
const SUCCESS: &str = "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>";
const ENABLED: &str = "<enabled xmlns='urn:xmpp:sm:3' id='sm-1' resume='true'/>";

fn config() -> ClientConfig {
    let mut config = ClientConfig::new("alice@localhost", "alice-secret");
    config.allow_plain = true;
    config.rng_seed = 7;
    config.max_stanza_bytes = 16 * 1024;
    config
}

/// The value of `name='...'` in a frame we sent.
fn attribute<'a>(frame: &'a str, name: &str) -> Option<&'a str> {
    let pattern = format!("{name}='");
    let start = frame.find(&pattern)? + pattern.len();
    let end = frame[start..].find('\'')? + start;
    Some(&frame[start..end])
}

/// Logs in with PLAIN and binds `alice@localhost/phone`, as the server in the core's tests.
fn log_in(client: &mut Client, now: Instant) {
    client.handle_connected(now);
    for frame in [OPEN, FEATURES_PLAIN, SUCCESS, OPEN, FEATURES_BIND] {
        client.handle_frame(now, frame);
    }
    let mut bind_id = None;
    while let Some(frame) = client.poll_transmit() {
        if frame.contains("urn:ietf:params:xml:ns:xmpp-bind") {
            bind_id = attribute(&frame, "id").map(str::to_owned);
        }
    }
    let bind_id = bind_id.unwrap_or_default();
    client.handle_frame(
        now,
        &format!("<iq xmlns='jabber:client' type='result' id='{bind_id}'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>alice@localhost/phone</jid></bind></iq>"),
    );
    client.handle_frame(now, ENABLED);
    while client.poll_transmit().is_some() {}
    while client.poll_event().is_some() {}
}

/// One WebSocket text message from the server to a client that is online, as the core gets
/// it (RFC 7395: one element per message), and the archive timestamps it would read.
pub fn stanza(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = time::parse_ms(&text);
    let now = Instant::now();
    let Ok(mut client) = Client::new(config()) else {
        panic!("the fuzz configuration is valid");
    };
    log_in(&mut client, now);
    assert!(
        client.is_online(),
        "the scripted login brings the client online"
    );
    client.handle_frame(now, &text);
    while client.poll_transmit().is_some() {}
    while client.poll_event().is_some() {}
}

/// Stanzas the server may send, filled in from the input.
#[derive(Debug, Arbitrary)]
enum StanzaKind {
    Chat,
    Groupchat,
    CarbonReceived,
    CarbonSent,
    ArchiveResult,
    Correction,
    ChatState,
    MessageError,
    Presence,
    Unavailable,
    Subscribe,
    RoomPresence,
    RosterPush,
    UnknownIqGet,
}

/// Payloads for the server's answer to one of our IQs.
#[derive(Debug, Arbitrary)]
enum IqPayload {
    Empty,
    Roster,
    DiscoItems,
    DiscoInfoUpload,
    UploadSlot,
    ArchiveFin { complete: bool },
    Error,
    Raw(String),
}

#[derive(Debug, Arbitrary)]
enum Op {
    Connect,
    Disconnect,
    Advance(u32),
    FireTimer,
    Close,
    Raw(String),
    Open,
    FeaturesSasl,
    FeaturesPlain,
    FeaturesBind,
    SaslSuccess,
    SaslChallenge(String),
    SaslFailure,
    SmEnabled,
    SmResumed(u32),
    SmFailed,
    SmAck(u32),
    SmRequest,
    StreamError,
    LogIn,
    IqReply {
        pick: u8,
        payload: IqPayload,
    },
    Stanza {
        kind: StanzaKind,
        from: u8,
        id: u8,
        text: String,
    },
    SendChat {
        to: u8,
        body: String,
    },
    SendCorrection {
        to: u8,
        id: u8,
        body: String,
    },
    SendLink {
        to: u8,
        url: String,
    },
    SendChatState {
        to: u8,
        state: u8,
    },
    JoinRoom {
        room: u8,
        nick: String,
        history: u32,
    },
    ChangeNick {
        room: u8,
        nick: String,
    },
    LeaveRoom(u8),
    SendRoomMessage {
        room: u8,
        body: String,
    },
    SetPresence {
        show: u8,
        status: Option<String>,
        priority: i8,
    },
    DirectedPresence {
        to: u8,
        show: u8,
    },
    Subscription {
        jid: u8,
        kind: u8,
    },
    RosterSet {
        jid: u8,
        name: Option<String>,
        groups: Vec<String>,
    },
    RosterRemove(u8),
    UploadSlot {
        filename: String,
        size: u64,
    },
    ArchiveCatchUp {
        room: Option<u8>,
        start: u8,
        after: String,
        since: i64,
    },
}

const JIDS: &[&str] = &[
    "romeo@example.net",
    "alice@localhost",
    "alice@localhost/laptop",
    "room@conference.localhost",
    "room@conference.localhost/romeo",
    "localhost",
    "not a jid@@",
    "",
];
const ROOMS: &[&str] = &[
    "room@conference.localhost",
    "other@conference.localhost",
    "bad@@",
];
const IDS: &[&str] = &["m1", "m2", "stanza-3", ""];

fn pick<'a>(items: &[&'a str], index: u8) -> &'a str {
    items[usize::from(index) % items.len()]
}

fn show(index: u8) -> Option<Show> {
    [
        None,
        Some(Show::Chat),
        Some(Show::Away),
        Some(Show::Xa),
        Some(Show::Dnd),
    ][usize::from(index) % 5]
}

fn escape(text: &str) -> String {
    lyrebird_xmpp::xml::escape(text)
}

/// What the scripted server remembers: ids of our recent IQs and archive queries.
#[derive(Default)]
struct Server {
    iq_ids: Vec<String>,
    query_ids: Vec<String>,
}

impl Server {
    fn saw(&mut self, frame: &str) {
        if frame.starts_with("<iq")
            && let Some(id) = attribute(frame, "id")
        {
            remember(&mut self.iq_ids, id);
        }
        if let Some(id) = attribute(frame, "queryid") {
            remember(&mut self.query_ids, id);
        }
    }

    fn iq_reply(&self, pick_index: u8, payload: &IqPayload) -> Option<String> {
        let id = self
            .iq_ids
            .get(usize::from(pick_index) % self.iq_ids.len().max(1))?;
        let (kind, inner) = match payload {
            IqPayload::Empty => ("result", String::new()),
            IqPayload::Roster => ("result", "<query xmlns='jabber:iq:roster' ver='v1'><item jid='romeo@example.net' name='Romeo' subscription='both'><group>Friends</group></item><item jid='juliet@example.com' subscription='from'/></query>".to_owned()),
            IqPayload::DiscoItems => ("result", "<query xmlns='http://jabber.org/protocol/disco#items'><item jid='upload.localhost'/><item jid='conference.localhost'/></query>".to_owned()),
            IqPayload::DiscoInfoUpload => ("result", "<query xmlns='http://jabber.org/protocol/disco#info'><identity category='store' type='file' name='HTTP File Upload'/><feature var='urn:xmpp:http:upload:0'/><x type='result' xmlns='jabber:x:data'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:http:upload:0</value></field><field var='max-file-size'><value>5242880</value></field></x></query>".to_owned()),
            IqPayload::UploadSlot => ("result", "<slot xmlns='urn:xmpp:http:upload:0'><put url='https://upload.localhost/a/b.png'><header name='Authorization'>Basic Base64String==</header></put><get url='https://download.localhost/a/b.png'/></slot>".to_owned()),
            IqPayload::ArchiveFin { complete } => ("result", format!("<fin xmlns='urn:xmpp:mam:2' complete='{complete}'><set xmlns='http://jabber.org/protocol/rsm'><first index='0'>a1</first><last>a9</last><count>10</count></set></fin>")),
            IqPayload::Error => ("error", "<error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>".to_owned()),
            IqPayload::Raw(raw) => ("result", raw.clone()),
        };
        Some(format!(
            "<iq xmlns='jabber:client' type='{kind}' id='{}' from='localhost' to='alice@localhost/phone'>{inner}</iq>",
            escape(id)
        ))
    }

    fn stanza(&self, kind: &StanzaKind, from: u8, id: u8, text: &str) -> String {
        let from = escape(pick(JIDS, from));
        let id = pick(IDS, id);
        let text = escape(text);
        let query = self.query_ids.last().map_or("q", String::as_str);
        match kind {
            StanzaKind::Chat => format!(
                "<message xmlns='jabber:client' type='chat' from='{from}' to='alice@localhost/phone' id='{id}'><body>{text}</body><origin-id xmlns='urn:xmpp:sid:0' id='{id}'/></message>"
            ),
            StanzaKind::Groupchat => format!(
                "<message xmlns='jabber:client' type='groupchat' from='{from}' id='{id}'><body>{text}</body><stanza-id xmlns='urn:xmpp:sid:0' by='room@conference.localhost' id='s{id}'/></message>"
            ),
            StanzaKind::CarbonReceived => format!(
                "<message xmlns='jabber:client' from='alice@localhost' to='alice@localhost/phone'><received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' type='chat' from='{from}' to='alice@localhost/laptop' id='{id}'><body>{text}</body></message></forwarded></received></message>"
            ),
            StanzaKind::CarbonSent => format!(
                "<message xmlns='jabber:client' from='alice@localhost' to='alice@localhost/phone'><sent xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' type='chat' to='{from}' from='alice@localhost/laptop' id='{id}'><body>{text}</body></message></forwarded></sent></message>"
            ),
            StanzaKind::ArchiveResult => format!(
                "<message xmlns='jabber:client' to='alice@localhost/phone'><result xmlns='urn:xmpp:mam:2' queryid='{query}' id='a{id}'><forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='{text}'/><message xmlns='jabber:client' type='chat' from='{from}' to='alice@localhost' id='{id}'><body>hi</body></message></forwarded></result></message>"
            ),
            StanzaKind::Correction => format!(
                "<message xmlns='jabber:client' type='chat' from='{from}' id='c{id}'><body>{text}</body><replace xmlns='urn:xmpp:message-correct:0' id='{id}'/></message>"
            ),
            StanzaKind::ChatState => format!(
                "<message xmlns='jabber:client' type='chat' from='{from}'><{text} xmlns='http://jabber.org/protocol/chatstates'/></message>"
            ),
            StanzaKind::MessageError => format!(
                "<message xmlns='jabber:client' type='error' from='{from}' id='{id}'><error type='cancel'><{text} xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>"
            ),
            StanzaKind::Presence => format!(
                "<presence xmlns='jabber:client' from='{from}'><show>{text}</show><status>{text}</status><priority>{id}</priority><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v'/></presence>"
            ),
            StanzaKind::Unavailable => {
                format!("<presence xmlns='jabber:client' type='unavailable' from='{from}'/>")
            }
            StanzaKind::Subscribe => {
                format!("<presence xmlns='jabber:client' type='{text}' from='{from}'/>")
            }
            StanzaKind::RoomPresence => format!(
                "<presence xmlns='jabber:client' from='{from}'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='member' role='{text}' nick='{text}'/><status code='110'/><status code='303'/></x></presence>"
            ),
            StanzaKind::RosterPush => format!(
                "<iq xmlns='jabber:client' type='set' id='push{id}' from='{from}'><query xmlns='jabber:iq:roster'><item jid='{text}' subscription='remove'/></query></iq>"
            ),
            StanzaKind::UnknownIqGet => format!(
                "<iq xmlns='jabber:client' type='get' id='g{id}' from='{from}'><{text} xmlns='urn:example'/></iq>"
            ),
        }
    }
}

fn remember(list: &mut Vec<String>, id: &str) {
    list.push(id.to_owned());
    if list.len() > 16 {
        list.remove(0);
    }
}

/// The client under a sequence of server frames (scripted negotiation steps, answers to its
/// IQs, stanzas of every kind, and raw text), timer firings, connects and disconnects and
/// user commands. After every operation the heap it holds, its queues and the stanzas it
/// keeps for resumption included, stays within [`crate::memory_bound`], and no deadline is
/// left due.
pub fn client(data: &[u8]) {
    let ops: Vec<Op> = crate::operations(data);
    let baseline = heap::live_bytes();
    let mut clock = Clock::new();
    let Ok(mut client) = Client::new(config()) else {
        panic!("the fuzz configuration is valid");
    };
    let mut server = Server::default();
    for op in &ops {
        let now = clock.now();
        let frame: Option<String> = match op {
            Op::Connect => {
                client.handle_connected(now);
                None
            }
            Op::Disconnect => {
                client.handle_disconnected(now);
                None
            }
            Op::Advance(millis) => {
                clock.advance(*millis);
                None
            }
            Op::FireTimer => {
                if let Some(deadline) = client.poll_timeout() {
                    clock.advance_to(deadline);
                }
                None
            }
            Op::Close => {
                client.close(now);
                None
            }
            Op::Raw(text) => Some(text.clone()),
            Op::Open => Some(OPEN.into()),
            Op::FeaturesSasl => Some(FEATURES_SASL.into()),
            Op::FeaturesPlain => Some(FEATURES_PLAIN.into()),
            Op::FeaturesBind => Some(FEATURES_BIND.into()),
            Op::SaslSuccess => Some(SUCCESS.into()),
            Op::SaslChallenge(text) => Some(format!(
                "<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{}</challenge>",
                escape(text)
            )),
            Op::SaslFailure => Some("<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>".into()),
            Op::SmEnabled => Some(ENABLED.into()),
            Op::SmResumed(h) => Some(format!("<resumed xmlns='urn:xmpp:sm:3' h='{h}' previd='sm-1'/>")),
            Op::SmFailed => Some("<failed xmlns='urn:xmpp:sm:3'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>".into()),
            Op::SmAck(h) => Some(format!("<a xmlns='urn:xmpp:sm:3' h='{h}'/>")),
            Op::SmRequest => Some("<r xmlns='urn:xmpp:sm:3'/>".into()),
            Op::StreamError => Some("<stream:error xmlns:stream='http://etherx.jabber.org/streams'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>".into()),
            Op::LogIn => {
                log_in(&mut client, now);
                None
            }
            Op::IqReply { pick, payload } => server.iq_reply(*pick, payload),
            Op::Stanza { kind, from, id, text } => Some(server.stanza(kind, *from, *id, text)),
            Op::SendChat { to, body } => {
                let _ = client.send_chat(pick(JIDS, *to), body);
                None
            }
            Op::SendCorrection { to, id, body } => {
                let _ = client.send_correction(pick(JIDS, *to), pick(IDS, *id), body);
                None
            }
            Op::SendLink { to, url } => {
                let _ = client.send_link(pick(JIDS, *to), url);
                None
            }
            Op::SendChatState { to, state } => {
                let state = [
                    ChatState::Active,
                    ChatState::Composing,
                    ChatState::Paused,
                    ChatState::Inactive,
                    ChatState::Gone,
                ][usize::from(*state) % 5];
                let _ = client.send_chat_state(pick(JIDS, *to), state);
                None
            }
            Op::JoinRoom { room, nick, history } => {
                let _ = client.join_room(pick(ROOMS, *room), nick, *history);
                None
            }
            Op::ChangeNick { room, nick } => {
                let _ = client.change_nick(pick(ROOMS, *room), nick);
                None
            }
            Op::LeaveRoom(room) => {
                let _ = client.leave_room(pick(ROOMS, *room));
                None
            }
            Op::SendRoomMessage { room, body } => {
                let _ = client.send_room_message(pick(ROOMS, *room), body);
                None
            }
            Op::SetPresence { show: which, status, priority } => {
                client.set_presence(show(*which), status.as_deref(), *priority);
                None
            }
            Op::DirectedPresence { to, show: which } => {
                let _ = client.send_directed_presence(pick(JIDS, *to), show(*which), None);
                None
            }
            Op::Subscription { jid, kind } => {
                let kind = pick(&["subscribe", "subscribed", "unsubscribe", "unsubscribed", "x"], *kind);
                let _ = client.subscription(pick(JIDS, *jid), kind);
                None
            }
            Op::RosterSet { jid, name, groups } => {
                let _ = client.roster_set(now, pick(JIDS, *jid), name.as_deref(), groups);
                None
            }
            Op::RosterRemove(jid) => {
                let _ = client.roster_remove(now, pick(JIDS, *jid));
                None
            }
            Op::UploadSlot { filename, size } => {
                let _ = client.request_upload_slot(now, filename, *size, "image/png");
                None
            }
            Op::ArchiveCatchUp { room, start, after, since } => {
                let archive = room.map(|room| pick(ROOMS, room));
                let start = match start % 3 {
                    0 => ArchiveStart::Beginning,
                    1 => ArchiveStart::After(after.clone()),
                    _ => ArchiveStart::Since(*since),
                };
                let _ = client.mam_catch_up(now, archive, start);
                None
            }
        };
        if let Some(frame) = frame {
            client.handle_frame(now, &frame);
        }
        let now = clock.now();
        settle_timers(
            now,
            &mut client,
            Client::poll_timeout,
            Client::handle_timeout,
        );
        check_memory(baseline, data.len(), "XMPP client");
        while let Some(frame) = client.poll_transmit() {
            server.saw(&frame);
        }
        while let Some(event) = client.poll_event() {
            if let XmppEvent::Offline { .. } = event {
                server.iq_ids.clear();
            }
        }
    }
}
