//! The client core against a scripted server, with RFC 7395 / RFC 6120 / XEP example stanzas,
//! in virtual time.

mod common;
use common::{attr, drain};

use std::time::{Duration, Instant};

use lyrebird_xmpp::*;
use proptest::prelude::*;

const OPEN: &str = "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' from='localhost' id='++TR84Sm6A3hnt3Q065SnAbbk3Y=' version='1.0' xml:lang='en'/>";
const FEATURES_SASL: &str = "<stream:features xmlns:stream='http://etherx.jabber.org/streams'><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>SCRAM-SHA-1</mechanism><mechanism>PLAIN</mechanism></mechanisms></stream:features>";
const FEATURES_PLAIN_ONLY: &str = "<stream:features xmlns:stream='http://etherx.jabber.org/streams'><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features>";
const FEATURES_BIND: &str = "<stream:features xmlns:stream='http://etherx.jabber.org/streams'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/><sm xmlns='urn:xmpp:sm:3'/></stream:features>";

fn config() -> ClientConfig {
    let mut c = ClientConfig::new("alice@localhost", "alice-secret");
    c.allow_plain = true;
    c.rng_seed = 7;
    c
}

fn events(c: &mut Client) -> Vec<XmppEvent> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

/// Runs the PLAIN login (with allow_plain) up to `<enabled/>`; returns what was sent after bind.
fn login(c: &mut Client, now: Instant) -> Vec<String> {
    c.handle_connected(now);
    let sent = drain(c);
    assert!(sent[0].starts_with(
        "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'"
    ));
    c.handle_frame(now, OPEN);
    c.handle_frame(now, FEATURES_PLAIN_ONLY);
    let sent = drain(c);
    assert_eq!(
        sent,
        [
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAGFsaWNlLXNlY3JldA==</auth>"
        ]
    );
    c.handle_frame(now, "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
    let sent = drain(c);
    assert!(sent[0].starts_with("<open "), "stream restart after SASL");
    c.handle_frame(now, OPEN);
    c.handle_frame(now, FEATURES_BIND);
    let sent = drain(c);
    assert_eq!(sent.len(), 1);
    assert!(sent[0].contains("<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'"));
    let id = attr(&sent[0], "id").to_owned();
    c.handle_frame(
        now,
        &format!("<iq xmlns='jabber:client' type='result' id='{id}'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>alice@localhost/phone</jid></bind></iq>"),
    );
    let after_bind = drain(c);
    c.handle_frame(
        now,
        "<enabled xmlns='urn:xmpp:sm:3' id='some-long-sm-id' resume='true'/>",
    );
    after_bind
}

/// A new connection of a client that logged in before, up to the stream features that offer
/// binding and stream management (where it resumes or binds); what it sent is left queued.
fn connect_again(c: &mut Client, now: Instant) {
    c.handle_connected(now);
    c.handle_frame(now, OPEN);
    c.handle_frame(now, FEATURES_PLAIN_ONLY);
    c.handle_frame(now, "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
    c.handle_frame(now, OPEN);
    c.handle_frame(now, FEATURES_BIND);
}

#[test]
fn logs_in_binds_enables_sm_and_asks_for_roster_carbons_and_disco() {
    let now = Instant::now();
    let mut c = Client::new(config()).unwrap();
    let sent = login(&mut c, now);
    assert_eq!(sent[0], "<enable xmlns='urn:xmpp:sm:3' resume='true'/>");
    assert!(
        sent.iter()
            .any(|s| s.contains("<query xmlns='jabber:iq:roster'/>"))
    );
    assert!(
        sent.iter()
            .any(|s| s.contains("<enable xmlns='urn:xmpp:carbons:2'/>"))
    );
    assert!(sent.iter().any(|s| s.contains("disco#items")));
    let ev = events(&mut c);
    assert!(ev.contains(&XmppEvent::Online {
        jid: "alice@localhost/phone".into(),
        resumed: false
    }));
    assert!(c.is_online() && c.can_resume());
    // RFC 6121 §2.1.4 roster result
    let roster_id = attr(
        sent.iter()
            .find(|s| s.contains("jabber:iq:roster"))
            .unwrap(),
        "id",
    )
    .to_owned();
    c.handle_frame(now, &format!("<iq xmlns='jabber:client' to='alice@localhost/phone' type='result' id='{roster_id}'><query xmlns='jabber:iq:roster' ver='ver11'><item jid='romeo@example.net' name='Romeo' subscription='both'><group>Friends</group></item><item jid='mercutio@example.com' name='Mercutio' subscription='from'/></query></iq>"));
    let ev = events(&mut c);
    let XmppEvent::Roster(items) = &ev[0] else {
        panic!("{ev:?}")
    };
    assert_eq!(items.len(), 2);
    assert_eq!(items[0].groups, ["Friends"]);
    assert_eq!(items[1].subscription, "from");
}

#[test]
fn closing_waits_for_the_servers_close() {
    let now = Instant::now();
    let mut c = logged_in(now);
    c.close(now);
    let sent = drain(&mut c);
    assert_eq!(
        sent.last().map(String::as_str),
        Some("<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>")
    );
    assert!(!c.close_answered(), "the server has not answered yet");
    c.handle_frame(now, "<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>");
    assert!(c.close_answered());
    assert!(drain(&mut c).is_empty(), "our close is not sent twice");
    // A new connection starts a new stream, not yet closed.
    c.handle_disconnected(now);
    c.handle_connected(now);
    assert!(!c.close_answered());
}

#[test]
fn wrong_password_is_a_permanent_clear_error() {
    let now = Instant::now();
    let mut c = Client::new(config()).unwrap();
    c.handle_connected(now);
    c.handle_frame(now, OPEN);
    c.handle_frame(now, FEATURES_SASL);
    let sent = drain(&mut c);
    assert!(
        sent.iter().any(|s| s.contains("mechanism='SCRAM-SHA-1'")),
        "SCRAM preferred over PLAIN: {sent:?}"
    );
    // RFC 6120 §6.5.10
    c.handle_frame(now, "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/><text xml:lang='en'>Invalid username or password</text></failure>");
    let ev = events(&mut c);
    let Some(XmppEvent::Offline { error: Some(e) }) = ev.last() else {
        panic!("{ev:?}")
    };
    assert!(e.is_permanent());
    assert!(e.to_string().contains("not-authorized"));
}

#[test]
fn plain_is_refused_unless_allowed() {
    let now = Instant::now();
    let mut cfg = config();
    cfg.allow_plain = false;
    let mut c = Client::new(cfg).unwrap();
    c.handle_connected(now);
    c.handle_frame(now, OPEN);
    c.handle_frame(now, FEATURES_PLAIN_ONLY);
    let ev = events(&mut c);
    assert!(matches!(
        ev.last(),
        Some(XmppEvent::Offline {
            error: Some(XmppError::NoMechanism { .. })
        })
    ));
    assert!(
        !drain(&mut c).iter().any(|s| s.contains("<auth")),
        "no password was sent"
    );
}

#[test]
fn a_silent_server_times_out() {
    let now = Instant::now();
    let mut c = Client::new(config()).unwrap();
    c.handle_connected(now);
    let deadline = c.poll_timeout().unwrap();
    assert!(deadline <= now + Duration::from_secs(20));
    c.handle_timeout(deadline);
    let ev = events(&mut c);
    assert!(matches!(
        ev.last(),
        Some(XmppEvent::Offline {
            error: Some(XmppError::Timeout(_))
        })
    ));
}

#[test]
fn chat_receipts_chat_states_and_corrections() {
    let now = Instant::now();
    let mut c = logged_in(now);
    let id = c.send_chat("bob@localhost", "hi <bob> & co").unwrap();
    let sent = drain(&mut c);
    assert!(sent[0].contains("<body>hi &lt;bob&gt; &amp; co</body>"));
    assert!(sent[0].contains("<request xmlns='urn:xmpp:receipts'/>"));
    assert_eq!(
        sent[1], "<r xmlns='urn:xmpp:sm:3'/>",
        "one ack request after the burst"
    );
    // Four IQs (roster, carbons, disco x2) were sent after <enable/>; the message is the 5th.
    c.handle_frame(now, "<a xmlns='urn:xmpp:sm:3' h='5'/>");
    assert_eq!(
        events(&mut c),
        [XmppEvent::MessageSent {
            id: id.clone(),
            to: "bob@localhost".into()
        }]
    );
    // A lone later message: the ack request waits a little instead of following at once.
    c.send_chat("bob@localhost", "one more").unwrap();
    assert_eq!(drain(&mut c).len(), 1);
    let due = c.poll_timeout().unwrap();
    assert!(due <= now + Duration::from_millis(250));
    c.handle_timeout(due);
    assert_eq!(drain(&mut c), ["<r xmlns='urn:xmpp:sm:3'/>"]);
    c.handle_frame(now, &format!("<message xmlns='jabber:client' from='bob@localhost/pc' to='alice@localhost/phone' id='r1'><received xmlns='urn:xmpp:receipts' id='{id}'/></message>"));
    c.handle_frame(now, "<message xmlns='jabber:client' from='bob@localhost/pc' to='alice@localhost/phone' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>");
    c.handle_frame(now, "<message xmlns='jabber:client' from='bob@localhost/pc' to='alice@localhost/phone' type='chat' id='m2'><body>helo</body><request xmlns='urn:xmpp:receipts'/><active xmlns='http://jabber.org/protocol/chatstates'/></message>");
    c.handle_frame(now, "<message xmlns='jabber:client' from='bob@localhost/pc' to='alice@localhost/phone' type='chat' id='m3'><body>hello</body><replace id='m2' xmlns='urn:xmpp:message-correct:0'/></message>");
    let ev = events(&mut c);
    assert_eq!(
        ev[0],
        XmppEvent::MessageDelivered {
            id: id.clone(),
            from: "bob@localhost".into()
        }
    );
    assert_eq!(
        ev[1],
        XmppEvent::ChatState {
            from: "bob@localhost".into(),
            state: ChatState::Composing
        }
    );
    assert_eq!(
        ev[2],
        XmppEvent::ChatState {
            from: "bob@localhost".into(),
            state: ChatState::Active
        }
    );
    let XmppEvent::Message(m) = &ev[3] else {
        panic!("{ev:?}")
    };
    assert_eq!(
        (m.stable_id.as_str(), m.body.as_str(), m.outgoing),
        ("m2", "helo", false)
    );
    let XmppEvent::Message(m) = &ev[4] else {
        panic!("{ev:?}")
    };
    assert_eq!(m.replaces.as_deref(), Some("m2"));
    // The receipt goes only when the owner says the message is kept.
    assert!(
        drain(&mut c)
            .iter()
            .all(|s| !s.contains("urn:xmpp:receipts"))
    );
    let XmppEvent::Message(asked) = &ev[3] else {
        panic!("{ev:?}")
    };
    assert_eq!(asked.receipt_id.as_deref(), Some("m2"));
    assert_eq!(m.receipt_id, None, "m3 asked for no receipt");
    c.send_receipt(asked);
    let sent = drain(&mut c);
    assert!(sent.iter().any(
        |s| s.contains("<received xmlns='urn:xmpp:receipts' id='m2'/>")
            && s.contains("to='bob@localhost/pc'")
    ));
    // SM: the server asks, we answer with the number of stanzas received since <enabled/>.
    c.handle_frame(now, "<r xmlns='urn:xmpp:sm:3'/>");
    assert!(drain(&mut c).contains(&"<a xmlns='urn:xmpp:sm:3' h='4'/>".to_owned()));
}

#[test]
fn resumption_resends_exactly_what_was_not_acked() {
    let now = Instant::now();
    let mut c = Client::new(config()).unwrap();
    login(&mut c, now);
    let base = 4; // roster, carbons, disco x2 were sent after <enable/>
    drain(&mut c);
    let first = c.send_chat("bob@localhost", "one").unwrap();
    let second = c.send_chat("bob@localhost", "two").unwrap();
    drain(&mut c);
    c.handle_frame(now, &format!("<a xmlns='urn:xmpp:sm:3' h='{base}'/>"));
    events(&mut c);
    c.handle_frame(now, "<message xmlns='jabber:client' from='bob@localhost/pc' type='chat' id='b1'><body>x</body></message>");
    c.handle_disconnected(now);
    // A message written while offline waits.
    let third = c.send_chat("bob@localhost", "three").unwrap();
    assert!(drain(&mut c).is_empty());
    events(&mut c);
    connect_again(&mut c, now);
    let sent = drain(&mut c);
    assert_eq!(
        sent.last().map(String::as_str),
        Some("<resume xmlns='urn:xmpp:sm:3' previd='some-long-sm-id' h='1'/>"),
        "the resumption ends what the new connection sent: {sent:?}"
    );
    assert!(
        !sent.iter().any(|s| s.contains(">three<")),
        "nothing resent before <resumed/>"
    );
    // The server had got "one" but not "two".
    c.handle_frame(
        now,
        &format!(
            "<resumed xmlns='urn:xmpp:sm:3' previd='some-long-sm-id' h='{}'/>",
            base + 1
        ),
    );
    let sent = drain(&mut c);
    assert!(sent.iter().any(|s| s.contains(">two<")) && sent.iter().any(|s| s.contains(">three<")));
    assert!(
        !sent.iter().any(|s| s.contains(">one<")),
        "acked stanzas are not resent"
    );
    let ev = events(&mut c);
    assert!(ev.contains(&XmppEvent::MessageSent {
        id: first,
        to: "bob@localhost".into()
    }));
    assert!(ev.contains(&XmppEvent::Online {
        jid: "alice@localhost/phone".into(),
        resumed: true
    }));
    c.handle_frame(now, &format!("<a xmlns='urn:xmpp:sm:3' h='{}'/>", base + 3));
    let ev = events(&mut c);
    assert_eq!(ev.len(), 2);
    assert!(ev.contains(&XmppEvent::MessageSent {
        id: second,
        to: "bob@localhost".into()
    }));
    assert!(ev.contains(&XmppEvent::MessageSent {
        id: third,
        to: "bob@localhost".into()
    }));
}

/// Logs in with `confirm_handled` on and gets two messages.
fn confirming_client(now: Instant) -> Client {
    let mut config = config();
    config.confirm_handled = true;
    let mut c = Client::new(config).unwrap();
    login(&mut c, now);
    drain(&mut c);
    for id in ["k1", "k2"] {
        c.handle_frame(now, &format!("<message xmlns='jabber:client' from='bob@localhost/pc' type='chat' id='{id}'><body>x</body></message>"));
    }
    events(&mut c);
    c
}

#[test]
fn with_confirmation_the_server_hears_only_of_what_the_owner_kept() {
    let now = Instant::now();
    let mut c = confirming_client(now);
    let mark = c.received_mark().unwrap();
    assert_eq!(mark.received, 2);
    assert_eq!(mark.resume_id.as_deref(), Some("some-long-sm-id"));
    assert_eq!(mark.jid, "alice@localhost/phone");
    // Nothing kept yet: the server must keep both.
    c.handle_frame(now, "<r xmlns='urn:xmpp:sm:3'/>");
    assert_eq!(drain(&mut c), ["<a xmlns='urn:xmpp:sm:3' h='0'/>"]);
    // Once kept, the owed answer goes out unasked.
    c.confirm_handled(&mark);
    c.confirm_handled(&mark);
    assert_eq!(
        drain(&mut c),
        ["<a xmlns='urn:xmpp:sm:3' h='2'/>"],
        "one answer for however many confirmations"
    );
    c.confirm_handled(&mark);
    assert!(drain(&mut c).is_empty(), "nothing more is owed");
    // The orderly close reports what was kept, not what arrived after it.
    c.handle_frame(now, "<message xmlns='jabber:client' from='bob@localhost/pc' type='chat' id='k3'><body>x</body></message>");
    c.close(now);
    assert!(drain(&mut c).contains(&"<a xmlns='urn:xmpp:sm:3' h='2'/>".to_owned()));
}

#[test]
fn a_confirmation_for_an_earlier_session_does_not_count_for_a_new_one() {
    let now = Instant::now();
    let mut c = confirming_client(now);
    let old = c.received_mark().unwrap();
    // The session is lost and cannot be resumed: a new one is bound.
    c.handle_disconnected(now);
    connect_again(&mut c, now);
    // Resumption asks from what was kept: nothing.
    assert!(
        drain(&mut c)
            .contains(&"<resume xmlns='urn:xmpp:sm:3' previd='some-long-sm-id' h='0'/>".to_owned())
    );
    c.handle_frame(now, "<failed xmlns='urn:xmpp:sm:3'/>");
    let id = attr(&drain(&mut c)[0], "id").to_owned();
    c.handle_frame(now, &format!("<iq xmlns='jabber:client' type='result' id='{id}'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>alice@localhost/new</jid></bind></iq>"));
    c.handle_frame(
        now,
        "<enabled xmlns='urn:xmpp:sm:3' id='second-id' resume='true'/>",
    );
    c.handle_frame(now, "<message xmlns='jabber:client' from='bob@localhost/pc' type='chat' id='n1'><body>x</body></message>");
    drain(&mut c);
    c.confirm_handled(&old);
    c.handle_frame(now, "<r xmlns='urn:xmpp:sm:3'/>");
    assert_eq!(drain(&mut c), ["<a xmlns='urn:xmpp:sm:3' h='0'/>"]);
    let new = c.received_mark().unwrap();
    assert_eq!(
        (new.resume_id.as_deref(), new.received),
        (Some("second-id"), 1)
    );
}

/// Connects and logs in a client that was told to resume an earlier run's session, up to the
/// `<resume/>` it sends.
fn restarted_client(now: Instant) -> (Client, Vec<String>) {
    let mut c = Client::new(config()).unwrap();
    c.resume_after_restart("earlier-id".into(), 7, "alice@localhost/old".into());
    connect_again(&mut c, now);
    let sent = drain(&mut c);
    (c, sent)
}

#[test]
fn a_session_an_earlier_run_left_is_resumed_and_started_over() {
    let now = Instant::now();
    let (mut c, sent) = restarted_client(now);
    assert_eq!(
        sent.last().unwrap(),
        "<resume xmlns='urn:xmpp:sm:3' previd='earlier-id' h='7'/>"
    );
    // The server had 12 of the earlier run's stanzas and resends what it queued since.
    c.handle_frame(
        now,
        "<resumed xmlns='urn:xmpp:sm:3' previd='earlier-id' h='12'/>",
    );
    c.handle_frame(now, "<message xmlns='jabber:client' from='bob@localhost/pc' type='chat' id='q1'><body>queued while away</body></message>");
    let ev = events(&mut c);
    assert_eq!(
        ev[0],
        XmppEvent::Online {
            jid: "alice@localhost/old".into(),
            resumed: false
        },
        "the owner starts over as on a new session"
    );
    assert!(
        ev.iter()
            .any(|e| matches!(e, XmppEvent::Message(m) if m.body == "queued while away"))
    );
    let sent = drain(&mut c);
    assert_eq!(
        sent[0], "<presence xmlns='jabber:client' type='unavailable'/>",
        "the next available presence is an initial one"
    );
    assert!(sent.iter().any(|s| s.contains("jabber:iq:roster")));
    assert!(sent.iter().any(|s| s.contains("urn:xmpp:carbons:2")));
    // Counting goes on from where the server and the earlier run had got to.
    assert_eq!(c.received_mark().unwrap().received, 8);
    let outbound =
        12 + sent.len() as u64 - sent.iter().filter(|s| s.starts_with("<r ")).count() as u64;
    let id = c.send_chat("bob@localhost", "back").unwrap();
    drain(&mut c);
    c.handle_frame(
        now,
        &format!("<a xmlns='urn:xmpp:sm:3' h='{}'/>", outbound + 1),
    );
    assert!(events(&mut c).contains(&XmppEvent::MessageSent {
        id,
        to: "bob@localhost".into()
    }));
}

#[test]
fn a_session_an_earlier_run_left_that_the_server_forgot_is_replaced_by_a_new_one() {
    let now = Instant::now();
    let (mut c, _) = restarted_client(now);
    c.handle_frame(now, "<failed xmlns='urn:xmpp:sm:3'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>");
    let sent = drain(&mut c);
    assert!(sent[0].contains("<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'"));
    let id = attr(&sent[0], "id").to_owned();
    c.handle_frame(now, &format!("<iq xmlns='jabber:client' type='result' id='{id}'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>alice@localhost/fresh</jid></bind></iq>"));
    let sent = drain(&mut c);
    assert!(
        !sent.iter().any(|s| s.contains("type='unavailable'")),
        "a new session needs no unavailable presence"
    );
    assert!(events(&mut c).contains(&XmppEvent::Online {
        jid: "alice@localhost/fresh".into(),
        resumed: false
    }));
}

#[test]
fn failed_resumption_binds_anew_and_resends_unacked_messages() {
    let now = Instant::now();
    let mut c = Client::new(config()).unwrap();
    login(&mut c, now);
    drain(&mut c);
    c.send_chat("bob@localhost", "lost?").unwrap();
    drain(&mut c);
    c.handle_disconnected(now);
    connect_again(&mut c, now);
    drain(&mut c);
    c.handle_frame(now, "<failed xmlns='urn:xmpp:sm:3'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>");
    let sent = drain(&mut c);
    let id = attr(&sent[0], "id").to_owned();
    c.handle_frame(now, &format!("<iq xmlns='jabber:client' type='result' id='{id}'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>alice@localhost/new</jid></bind></iq>"));
    let sent = drain(&mut c);
    assert_eq!(sent.iter().filter(|s| s.contains(">lost?<")).count(), 1);
    assert!(
        sent.iter().any(|s| s.contains("jabber:iq:roster")),
        "a fresh session fetches the roster"
    );
}

#[test]
fn carbons_are_trusted_only_from_our_own_account() {
    let now = Instant::now();
    let mut c = Client::new(config()).unwrap();
    login(&mut c, now);
    events(&mut c);
    // XEP-0280 §6 example (sent carbon)
    c.handle_frame(now, "<message xmlns='jabber:client' from='alice@localhost' to='alice@localhost/phone' type='chat'><sent xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' to='bob@localhost/pc' from='alice@localhost/laptop' type='chat' id='c1'><body>from my laptop</body></message></forwarded></sent></message>");
    c.handle_frame(now, "<message xmlns='jabber:client' from='mallory@localhost/x' to='alice@localhost/phone' type='chat'><received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' to='alice@localhost' from='bob@localhost/pc' type='chat' id='f1'><body>forged</body></message></forwarded></received></message>");
    let ev = events(&mut c);
    let XmppEvent::Message(m) = &ev[0] else {
        panic!("{ev:?}")
    };
    assert!(m.outgoing && m.peer == "bob@localhost" && m.origin == MessageOrigin::Carbon);
    assert!(matches!(ev[1], XmppEvent::Warning(_)));
    assert_eq!(ev.len(), 2);
}

#[test]
fn archive_pages_until_complete() {
    let now = Instant::now();
    let mut cfg = config();
    cfg.mam_page_size = 2;
    let mut c = Client::new(cfg).unwrap();
    login(&mut c, now);
    drain(&mut c);
    let q = c
        .mam_catch_up(now, None, ArchiveStart::Since(1_700_000_000_000))
        .unwrap();
    let sent = drain(&mut c);
    assert!(sent[0].contains("<max>2</max>") && sent[0].contains("2023-11-14T22:13:20.000Z"));
    let iq = attr(&sent[0], "id").to_owned();
    let result = |id: &str, from: &str, body: &str| {
        format!(
            "<message xmlns='jabber:client' to='alice@localhost/phone'><result xmlns='urn:xmpp:mam:2' queryid='{q}' id='{id}'><forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='2010-07-10T23:08:25Z'/><message xmlns='jabber:client' from='{from}' to='alice@localhost' type='chat' id='o{id}'><body>{body}</body></message></forwarded></result></message>"
        )
    };
    c.handle_frame(now, &result("A1", "bob@localhost/pc", "old 1"));
    c.handle_frame(now, &result("A2", "alice@localhost/laptop", "old 2"));
    c.handle_frame(now, &format!("<iq xmlns='jabber:client' type='result' id='{iq}'><fin xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><first index='0'>A1</first><last>A2</last></set></fin></iq>"));
    let sent = drain(&mut c);
    assert!(sent[0].contains("<after>A2</after>"), "{sent:?}");
    let iq = attr(&sent[0], "id").to_owned();
    c.handle_frame(now, &result("A3", "bob@localhost/pc", "old 3"));
    c.handle_frame(now, &format!("<iq xmlns='jabber:client' type='result' id='{iq}'><fin xmlns='urn:xmpp:mam:2' complete='true'><set xmlns='http://jabber.org/protocol/rsm'><last>A3</last></set></fin></iq>"));
    let ev = events(&mut c);
    let bodies: Vec<(String, bool, String)> = ev
        .iter()
        .filter_map(|e| match e {
            XmppEvent::Message(m) => Some((m.body.clone(), m.outgoing, m.stable_id.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        bodies,
        [
            ("old 1".into(), false, "oA1".into()),
            ("old 2".into(), true, "oA2".into()),
            ("old 3".into(), false, "oA3".into())
        ]
    );
    let pages: Vec<&XmppEvent> = ev
        .iter()
        .filter(|e| matches!(e, XmppEvent::ArchivePage { .. }))
        .collect();
    assert_eq!(
        pages,
        [
            &XmppEvent::ArchivePage {
                query: q.clone(),
                last: Some("A2".into()),
                complete: false,
                messages: 2
            },
            &XmppEvent::ArchivePage {
                query: q,
                last: Some("A3".into()),
                complete: true,
                messages: 3
            }
        ]
    );
    // Each page's end comes after its messages.
    let kinds: Vec<&str> = ev
        .iter()
        .filter_map(|e| match e {
            XmppEvent::Message(_) => Some("m"),
            XmppEvent::ArchivePage { .. } => Some("p"),
            _ => None,
        })
        .collect();
    assert_eq!(kinds, ["m", "m", "p", "m", "p"]);
}

/// A client that has logged in, with what that sent and reported taken away.
fn logged_in(now: Instant) -> Client {
    let mut c = Client::new(config()).unwrap();
    login(&mut c, now);
    drain(&mut c);
    events(&mut c);
    c
}

/// The answer `iq` to an archive query page: its last item and whether it was the end.
fn archive_fin(iq: &str, last: Option<&str>, complete: bool) -> String {
    let set = match last {
        Some(last) => {
            format!("<set xmlns='http://jabber.org/protocol/rsm'><last>{last}</last></set>")
        }
        None => "<set xmlns='http://jabber.org/protocol/rsm'/>".into(),
    };
    format!(
        "<iq xmlns='jabber:client' type='result' id='{iq}'><fin xmlns='urn:xmpp:mam:2' complete='{complete}'>{set}</fin></iq>"
    )
}

#[test]
fn archive_catch_up_resumes_after_an_archive_id_without_a_date() {
    let now = Instant::now();
    let mut c = logged_in(now);
    let q = c
        .mam_catch_up(now, None, ArchiveStart::After("A41".into()))
        .unwrap();
    let sent: Vec<String> = drain(&mut c)
        .into_iter()
        .filter(|x| x.contains("urn:xmpp:mam:2"))
        .collect();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent[0].contains("<after>A41</after>"), "{sent:?}");
    assert!(!sent[0].contains("var=\"start\"") && !sent[0].contains("var='start'"));
    assert!(!sent[0].contains(" to="), "our own archive: {}", sent[0]);
    // The server no longer knows A41 (XEP-0059 §2.6): the query fails with that condition.
    let iq = attr(&sent[0], "id").to_owned();
    c.handle_frame(now, &format!("<iq xmlns='jabber:client' type='error' id='{iq}'><error type='modify'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"));
    assert_eq!(
        events(&mut c),
        [XmppEvent::ArchiveFailed {
            query: q,
            condition: "item-not-found".into()
        }]
    );
}

#[test]
fn a_page_that_does_not_move_on_ends_the_query() {
    let now = Instant::now();
    let mut c = logged_in(now);
    let q = c
        .mam_catch_up(now, None, ArchiveStart::After("A7".into()))
        .unwrap();
    let iq = attr(&drain(&mut c)[0], "id").to_owned();
    // Not complete, yet its last item is the one we asked to start after.
    c.handle_frame(now, &archive_fin(&iq, Some("A7"), false));
    assert!(drain(&mut c).is_empty(), "no endless re-asking");
    assert_eq!(
        events(&mut c),
        [XmppEvent::ArchivePage {
            query: q.clone(),
            last: None,
            complete: true,
            messages: 0
        }]
    );
    // An empty page that claims more is over too.
    let q = c.mam_catch_up(now, None, ArchiveStart::Beginning).unwrap();
    let iq = attr(&drain(&mut c)[0], "id").to_owned();
    c.handle_frame(now, &archive_fin(&iq, None, false));
    assert!(drain(&mut c).is_empty());
    assert_eq!(
        events(&mut c),
        [XmppEvent::ArchivePage {
            query: q,
            last: None,
            complete: true,
            messages: 0
        }]
    );
}

#[test]
fn a_room_archive_is_asked_of_the_room_and_only_the_room_answers_it() {
    let now = Instant::now();
    let mut c = logged_in(now);
    let room = "lunch@conference.localhost";
    let q = c
        .mam_catch_up(now, Some(room), ArchiveStart::Beginning)
        .unwrap();
    let sent = drain(&mut c);
    assert!(
        sent[0].contains(&format!("to='{room}'")) || sent[0].contains(&format!("to=\"{room}\"")),
        "{sent:?}"
    );
    let iq = attr(&sent[0], "id").to_owned();
    let result = |from: &str, id: &str, body: &str| {
        format!(
            "<message xmlns='jabber:client' from='{from}' to='alice@localhost/phone'><result xmlns='urn:xmpp:mam:2' queryid='{q}' id='{id}'><forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='2010-07-10T23:08:25Z'/><message xmlns='jabber:client' from='{room}/bob' type='groupchat' id='o{id}'><body>{body}</body></message></forwarded></result></message>"
        )
    };
    c.handle_frame(now, &result(room, "R1", "from the room"));
    // Our own account may not answer for the room, nor may anyone else.
    c.handle_frame(now, &result("alice@localhost", "R2", "forged by us?"));
    c.handle_frame(now, &result("mallory@localhost", "R3", "forged"));
    c.handle_frame(now, &archive_fin(&iq, Some("R1"), true));
    let ev = events(&mut c);
    let messages: Vec<&ChatMessage> = ev
        .iter()
        .filter_map(|e| match e {
            XmppEvent::Message(m) => Some(m),
            _ => None,
        })
        .collect();
    assert_eq!(messages.len(), 1, "{ev:?}");
    assert_eq!(messages[0].body, "from the room");
    assert_eq!(messages[0].peer, room);
    assert_eq!(messages[0].kind, MessageKind::Groupchat);
    assert_eq!(
        messages[0].origin,
        MessageOrigin::Archive { query: q.clone() }
    );
    assert_eq!(
        ev.iter()
            .filter(|e| matches!(e, XmppEvent::Warning(_)))
            .count(),
        2
    );
    assert_eq!(
        ev.last(),
        Some(&XmppEvent::ArchivePage {
            query: q,
            last: Some("R1".into()),
            complete: true,
            messages: 1
        })
    );
}

#[test]
fn rooms_join_occupants_and_reflected_messages() {
    let now = Instant::now();
    let mut c = logged_in(now);
    c.join_room("room@conference.localhost", "alice", 10)
        .unwrap();
    let sent = drain(&mut c);
    assert!(
        sent[0].contains("to='room@conference.localhost/alice'")
            && sent[0].contains("maxstanzas='10'")
    );
    // XEP-0045 §7.2.3 / §7.2.2 examples
    c.handle_frame(now, "<presence xmlns='jabber:client' from='room@conference.localhost/bob' to='alice@localhost/phone'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='participant'/></x></presence>");
    c.handle_frame(now, "<presence xmlns='jabber:client' from='room@conference.localhost/alice' to='alice@localhost/phone'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='owner' role='moderator'/><status code='110'/><status code='201'/></x></presence>");
    c.handle_frame(now, "<message xmlns='jabber:client' from='room@conference.localhost/bob' type='groupchat' id='h1'><body>earlier</body><delay xmlns='urn:xmpp:delay' stamp='2002-10-13T23:58:37Z'/></message>");
    let id = c
        .send_room_message("room@conference.localhost", "hello room")
        .unwrap();
    drain(&mut c);
    c.handle_frame(now, &format!("<message xmlns='jabber:client' from='room@conference.localhost/alice' type='groupchat' id='{id}'><body>hello room</body></message>"));
    let ev = events(&mut c);
    assert!(
        matches!(&ev[0], XmppEvent::Occupant(o) if o.nick == "bob" && o.available && !o.is_self)
    );
    assert!(ev.contains(&XmppEvent::RoomJoined {
        room: "room@conference.localhost".into(),
        nick: "alice".into()
    }));
    let msgs: Vec<&ChatMessage> = ev
        .iter()
        .filter_map(|e| match e {
            XmppEvent::Message(m) => Some(m),
            _ => None,
        })
        .collect();
    assert_eq!(msgs[0].origin, MessageOrigin::RoomHistory);
    assert_eq!(msgs[0].nick.as_deref(), Some("bob"));
    assert!(msgs[1].outgoing && msgs[1].stable_id == id && msgs[1].kind == MessageKind::Groupchat);
}

#[test]
fn upload_service_found_by_disco_and_slot_parsed() {
    let now = Instant::now();
    let mut c = Client::new(config()).unwrap();
    let sent = login(&mut c, now);
    let items = attr(
        sent.iter().find(|s| s.contains("disco#items")).unwrap(),
        "id",
    )
    .to_owned();
    c.handle_frame(now, &format!("<iq xmlns='jabber:client' type='result' id='{items}' from='localhost'><query xmlns='http://jabber.org/protocol/disco#items'><item jid='upload.localhost'/></query></iq>"));
    let sent = drain(&mut c);
    let info = attr(
        sent.iter()
            .find(|s| s.contains("to='upload.localhost'"))
            .unwrap(),
        "id",
    )
    .to_owned();
    c.handle_frame(now, &format!("<iq xmlns='jabber:client' type='result' id='{info}' from='upload.localhost'><query xmlns='http://jabber.org/protocol/disco#info'><identity category='store' type='file' name='HTTP File Upload'/><feature var='urn:xmpp:http:upload:0'/><x type='result' xmlns='jabber:x:data'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:http:upload:0</value></field><field var='max-file-size'><value>5242880</value></field></x></query></iq>"));
    assert_eq!(
        c.upload_service(),
        Some(&("upload.localhost".to_owned(), Some(5_242_880)))
    );
    assert!(
        c.request_upload_slot(now, "big.bin", 10_000_000, "application/octet-stream")
            .is_err()
    );
    let req = c
        .request_upload_slot(now, "/tmp/my photo.jpg", 23456, "image/jpeg")
        .unwrap();
    let sent = drain(&mut c);
    assert!(sent[0].contains("filename='my photo.jpg'") && sent[0].contains("size='23456'"));
    let iq = attr(&sent[0], "id").to_owned();
    // XEP-0363 §4 example
    c.handle_frame(now, &format!("<iq xmlns='jabber:client' from='upload.localhost' id='{iq}' to='alice@localhost/phone' type='result'><slot xmlns='urn:xmpp:http:upload:0'><put url='https://upload.montague.tld/4a771ac1-f0b2-4a4a-9700-f2a26fa2bb67/tr%C3%A8s%20cool.jpg'><header name='Authorization'>Basic Base64String==</header><header name='Host'>evil</header></put><get url='https://download.montague.tld/4a771ac1-f0b2-4a4a-9700-f2a26fa2bb67/tr%C3%A8s%20cool.jpg' /></slot></iq>"));
    let ev = events(&mut c);
    let slot = ev
        .iter()
        .find_map(|e| match e {
            XmppEvent::UploadSlot { request, slot } if *request == req => Some(slot),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        slot.put_headers,
        [(
            "Authorization".to_owned(),
            "Basic Base64String==".to_owned()
        )]
    );
    assert!(slot.get_url.starts_with("https://download.montague.tld/"));
}

#[test]
fn bad_input_gives_clear_errors_and_keeps_going_where_it_can() {
    let now = Instant::now();
    let mut cfg = config();
    cfg.max_stanza_bytes = 1000;
    let mut c = Client::new(cfg).unwrap();
    login(&mut c, now);
    drain(&mut c);
    events(&mut c);
    c.handle_frame(now, &format!("<message xmlns='jabber:client' from='bob@localhost/pc' type='chat' id='big'><body>{}</body></message>", "x".repeat(2000)));
    c.handle_frame(now, "<frobnicate xmlns='urn:example:unknown'/>");
    c.handle_frame(now, "<iq xmlns='jabber:client' from='bob@localhost/pc' type='get' id='q1'><query xmlns='urn:example:unknown'/></iq>");
    c.handle_frame(now, "<message xmlns='jabber:client' from='bob@localhost/pc' type='chat' id='ok'><body>still here</body></message>");
    let ev = events(&mut c);
    assert!(matches!(&ev[0], XmppEvent::Warning(w) if w.contains("2")));
    assert!(matches!(&ev[1], XmppEvent::Warning(_)));
    assert!(matches!(&ev[2], XmppEvent::Message(m) if m.body == "still here"));
    assert!(c.is_online());
    let sent = drain(&mut c);
    assert!(
        sent.iter()
            .any(|s| s.contains("type='error' id='q1'") && s.contains("service-unavailable"))
    );
    // h counts the dropped stanza too, so the server will not resend it after resumption.
    c.handle_frame(now, "<r xmlns='urn:xmpp:sm:3'/>");
    assert!(drain(&mut c).contains(&"<a xmlns='urn:xmpp:sm:3' h='3'/>".to_owned()));
    c.handle_frame(now, "<message xmlns='jabber:client'><body>unterminated");
    let ev = events(&mut c);
    assert!(matches!(
        ev.last(),
        Some(XmppEvent::Offline {
            error: Some(XmppError::Protocol(_))
        })
    ));
    assert!(drain(&mut c).iter().any(|s| s.contains("not-well-formed")));
    assert!(c.can_resume(), "a broken stream can still be resumed");
    // Caller misuse is refused before anything is sent.
    assert!(matches!(
        c.send_chat("not a jid@@", "x"),
        Err(XmppError::InvalidInput(_))
    ));
    assert!(matches!(
        c.send_chat("bob@localhost", ""),
        Err(XmppError::InvalidInput(_))
    ));
}

#[test]
fn stream_error_is_reported_with_its_condition() {
    let now = Instant::now();
    let mut c = Client::new(config()).unwrap();
    login(&mut c, now);
    events(&mut c);
    // RFC 6120 §4.9.3.4 (conflict)
    c.handle_frame(now, "<stream:error xmlns:stream='http://etherx.jabber.org/streams'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>Replaced by new connection</text></stream:error>");
    let ev = events(&mut c);
    let Some(XmppEvent::Offline {
        error: Some(XmppError::StreamError { condition, text }),
    }) = ev.last()
    else {
        panic!("{ev:?}")
    };
    assert_eq!(condition, "conflict");
    assert_eq!(text.as_deref(), Some("Replaced by new connection"));
    assert!(!c.can_resume());
}

proptest! {
    #[test]
    fn arbitrary_frames_never_panic(frames in proptest::collection::vec(any::<String>(), 1..8)) {
        let now = Instant::now();
        let mut c = Client::new(config()).unwrap();
        login(&mut c, now);
        for f in &frames {
            c.handle_frame(now, f);
            drain(&mut c);
            events(&mut c);
        }
    }

    #[test]
    fn stanza_shaped_garbage_never_panics(
        name in prop::sample::select(vec!["message", "presence", "iq", "open", "close", "a", "r", "resumed", "success", "features"]),
        ty in prop::sample::select(vec!["", "chat", "groupchat", "error", "result", "get", "set", "unavailable", "subscribe", "héllo"]),
        ns_ in prop::sample::select(vec!["jabber:client", "urn:xmpp:sm:3", "urn:ietf:params:xml:ns:xmpp-framing", "urn:ietf:params:xml:ns:xmpp-sasl", "x"]),
        inner in "[a-z<>/='\" ]{0,60}",
        from in prop::sample::select(vec!["", "bob@localhost/pc", "@@", "alice@localhost", "room@conference.localhost/x"]),
    ) {
        let now = Instant::now();
        let mut c = Client::new(config()).unwrap();
        login(&mut c, now);
        let frame = format!("<{name} xmlns='{ns_}' type='{ty}' from='{from}' id='1' h='{}'>{inner}</{name}>", inner.len());
        c.handle_frame(now, &frame);
        drain(&mut c);
        events(&mut c);
        c.handle_timeout(now + Duration::from_secs(60));
    }
}

#[test]
fn entity_bombs_and_deep_nesting_end_the_stream_cleanly() {
    let now = Instant::now();
    // A billion-laughs document type, an undeclared entity, and a stanza nested deeper than
    // any real one (within the size limit): each is refused as not well-formed or dropped,
    // with a clear error, never expanded or recursed into without bound.
    let mut laughs = String::from("<!DOCTYPE lolz [<!ENTITY lol \"lol\">");
    for level in 1..10 {
        let previous = if level == 1 {
            "lol".to_owned()
        } else {
            format!("lol{}", level - 1)
        };
        laughs.push_str(&format!(
            "<!ENTITY lol{level} \"{}\">",
            format!("&{previous};").repeat(10)
        ));
    }
    laughs.push_str(
        "]><message xmlns='jabber:client' from='bob@localhost'><body>&lol9;</body></message>",
    );
    let deep = format!(
        "<message xmlns='jabber:client' from='bob@localhost'>{}{}</message>",
        "<x>".repeat(30_000),
        "</x>".repeat(30_000)
    );
    let undeclared =
        "<message xmlns='jabber:client' from='bob@localhost'><body>&xxe;</body></message>";
    for (what, frame) in [
        ("billion laughs", laughs.as_str()),
        ("deep nesting", deep.as_str()),
        ("an undeclared entity", undeclared),
    ] {
        let mut c = logged_in(now);
        c.handle_frame(now, frame);
        let events = events(&mut c);
        assert!(
            !events.iter().any(|e| matches!(e, XmppEvent::Message(_))),
            "{what}: a message came out of it: {events:?}"
        );
        assert!(
            events.iter().any(|e| matches!(
                e,
                XmppEvent::Offline { error: Some(_) } | XmppEvent::Warning(_)
            )),
            "{what}: no clear error: {events:?}"
        );
    }
}
