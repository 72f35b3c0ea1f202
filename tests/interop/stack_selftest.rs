//! Proves the test bed itself: every server answers on loopback the way the interop tests
//! rely on, using only a minimal WebSocket client (no Lyrebird code involved).
//!
//! Several tests start their own stacks at the same time, which also exercises the
//! per-instance port choice.

use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use futures_util::{SinkExt, StreamExt};
use md5::Md5;
use sha2::{Digest, Sha256};
use testkit::stack::{DigestAlgorithm, Stack, StackOptions};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const STEP: Duration = Duration::from_secs(5);

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Starts a stack off the async runtime (start-up blocks on process spawns and probes).
async fn start(options: StackOptions) -> Result<Stack> {
    tokio::task::spawn_blocking(move || Stack::start(options)).await?
}

/// Opens a WebSocket offering `protocol`; fails unless the server agreed to it.
async fn ws_connect(url: &str, protocol: &'static str) -> Result<Ws> {
    let mut request = url.into_client_request()?;
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", HeaderValue::from_static(protocol));
    let (ws, response) = timeout(STEP, tokio_tungstenite::connect_async(request))
        .await
        .context("WebSocket handshake timed out")??;
    let agreed = response
        .headers()
        .get("Sec-WebSocket-Protocol")
        .and_then(|v| v.to_str().ok());
    ensure!(
        agreed == Some(protocol),
        "server agreed to sub-protocol {agreed:?}, not {protocol}"
    );
    Ok(ws)
}

async fn ws_send(ws: &mut Ws, text: String) -> Result<()> {
    timeout(STEP, ws.send(Message::Text(Utf8Bytes::from(text))))
        .await
        .context("send timed out")??;
    Ok(())
}

/// The next text frame (skipping pings/pongs).
async fn ws_recv(ws: &mut Ws) -> Result<String> {
    loop {
        let frame = timeout(STEP, ws.next())
            .await
            .context("no WebSocket message within the step timeout")?
            .context("WebSocket closed")??;
        match frame {
            Message::Text(text) => return Ok(text.to_string()),
            Message::Binary(bytes) => return Ok(String::from_utf8_lossy(&bytes).into_owned()),
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
            Message::Close(close) => bail!("WebSocket closed by the server: {close:?}"),
        }
    }
}

fn header<'a>(message: &'a str, name: &str) -> Option<&'a str> {
    message.split("\r\n").find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

fn param<'a>(challenge: &'a str, name: &str) -> Option<&'a str> {
    let start = challenge.find(&format!("{name}="))? + name.len() + 1;
    let rest = &challenge[start..];
    match rest.strip_prefix('"') {
        Some(quoted) => quoted.split('"').next(),
        None => rest.split([',', ' ']).next(),
    }
}

fn hash(algorithm: DigestAlgorithm, text: &str) -> String {
    let bytes: Vec<u8> = match algorithm {
        DigestAlgorithm::Md5 => Md5::digest(text.as_bytes()).to_vec(),
        DigestAlgorithm::Sha256 => Sha256::digest(text.as_bytes()).to_vec(),
    };
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An RFC 7616-style digest `Authorization` value with qop=auth.
fn digest_authorization(
    algorithm: DigestAlgorithm,
    challenge: &str,
    user: &str,
    password: &str,
    method: &str,
    uri: &str,
) -> Result<String> {
    let realm = param(challenge, "realm").context("challenge without realm")?;
    let nonce = param(challenge, "nonce").context("challenge without nonce")?;
    let (cnonce, nc) = ("0a4f113b", "00000001");
    let ha1 = hash(algorithm, &format!("{user}:{realm}:{password}"));
    let ha2 = hash(algorithm, &format!("{method}:{uri}"));
    let response = hash(
        algorithm,
        &format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"),
    );
    Ok(format!(
        "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
         response=\"{response}\", algorithm={}, qop=auth, nc={nc}, cnonce=\"{cnonce}\"",
        algorithm.as_str()
    ))
}

/// A REGISTER as an RFC 7118 client sends it: `.invalid` Via and Contact hosts.
fn register(user: &str, domain: &str, cseq: u32, authorization: Option<&str>) -> String {
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    format!(
        "REGISTER sip:{domain} SIP/2.0\r\n\
         Via: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bKselftest{cseq}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:{user}@{domain}>;tag=st{user}\r\n\
         To: <sip:{user}@{domain}>\r\n\
         Call-ID: selftest-{user}\r\n\
         CSeq: {cseq} REGISTER\r\n\
         Contact: <sip:{user}@df7jal23ls0d.invalid;transport=ws>;expires=300\r\n\
         {auth}Content-Length: 0\r\n\r\n"
    )
}

fn status_line(message: &str) -> &str {
    message.split("\r\n").next().unwrap_or_default()
}

/// REGISTER without credentials must be challenged (401); with them, accepted (200).
async fn register_with_digest(stack: &Stack, user: &str) -> Result<()> {
    let kamailio = stack.kamailio();
    let algorithm = kamailio.digest_algorithm();
    let domain = kamailio.domain();
    let password = kamailio.password(user).context("unknown test user")?;
    let mut ws = ws_connect(&kamailio.ws_url(), "sip").await?;

    ws_send(&mut ws, register(user, domain, 1, None)).await?;
    let challenge_response = ws_recv(&mut ws).await?;
    ensure!(
        status_line(&challenge_response) == "SIP/2.0 401 Unauthorized",
        "{challenge_response}"
    );
    let challenge =
        header(&challenge_response, "WWW-Authenticate").context("401 without WWW-Authenticate")?;
    ensure!(challenge.starts_with("Digest "), "{challenge}");
    ensure!(param(challenge, "realm") == Some(domain), "{challenge}");
    ensure!(
        param(challenge, "algorithm") == Some(algorithm.as_str()),
        "{challenge}"
    );

    let authorization = digest_authorization(
        algorithm,
        challenge,
        user,
        password,
        "REGISTER",
        &format!("sip:{domain}"),
    )?;
    ws_send(&mut ws, register(user, domain, 2, Some(&authorization))).await?;
    let ok = ws_recv(&mut ws).await?;
    ensure!(status_line(&ok) == "SIP/2.0 200 OK", "{ok}");
    // fix_nated_register: the binding remembers the WebSocket connection it came from.
    let contact = header(&ok, "Contact").context("200 without Contact")?;
    ensure!(
        contact.contains("received=") && contact.contains("transport=ws"),
        "{contact}"
    );
    Ok(())
}

fn msrp_auth(relay: &str, transaction: &str, authorization: Option<&str>) -> String {
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    format!(
        "MSRP {transaction} AUTH\r\n\
         To-Path: {relay}\r\n\
         From-Path: msrp://df7jal23ls0d.invalid:2855/selftest;ws\r\n\
         {auth}Expires: 600\r\n\
         -------{transaction}$\r\n"
    )
}

#[tokio::test]
async fn the_whole_stack_answers_on_loopback() -> Result<()> {
    if std::env::var_os("LYREBIRD_TEST_NETNS").is_some() {
        // ./task test runs us in a namespace that has nothing but `lo`.
        // /proc/self/net/dev lists the interfaces of our own network namespace
        // (/sys/class/net may still show the host's).
        let interfaces: Vec<String> = std::fs::read_to_string("/proc/self/net/dev")?
            .lines()
            .filter_map(|line| line.split_once(':').map(|(name, _)| name.trim().to_owned()))
            .filter(|name| !name.contains('|'))
            .collect();
        ensure!(
            interfaces == ["lo"],
            "not isolated: network interfaces {interfaces:?}"
        );
    }
    testkit::stack::require_tools()?;
    let stack = start(StackOptions::default()).await?;
    ensure!(stack.dir().is_dir());

    // Kamailio: SIP over WebSocket with the sip sub-protocol, digest challenge (MD5).
    register_with_digest(&stack, "alice").await?;

    // Kamailio MSRP relay: AUTH without credentials -> 401, with digest -> 200 + Use-Path.
    let kamailio = stack.kamailio();
    let relay = kamailio.msrp_relay_uri();
    let mut msrp = ws_connect(&kamailio.msrp_ws_url(), "msrp").await?;
    ws_send(&mut msrp, msrp_auth(&relay, "t1", None)).await?;
    let unauthorized = ws_recv(&mut msrp).await?;
    ensure!(unauthorized.starts_with("MSRP t1 401"), "{unauthorized}");
    let challenge = header(&unauthorized, "WWW-Authenticate").context("no challenge")?;
    // RFC 4976 5.1: the digest-uri is the relay URI from To-Path, method AUTH.
    let authorization = digest_authorization(
        DigestAlgorithm::Md5,
        challenge,
        "bob",
        "bob-secret",
        "AUTH",
        &relay,
    )?;
    ws_send(&mut msrp, msrp_auth(&relay, "t2", Some(&authorization))).await?;
    let accepted = ws_recv(&mut msrp).await?;
    ensure!(accepted.starts_with("MSRP t2 200"), "{accepted}");
    let use_path = header(&accepted, "Use-Path").context("200 without Use-Path")?;
    ensure!(
        use_path.starts_with(&format!("msrp://127.0.0.1:{}/", kamailio.msrp_ws_port()))
            && use_path.ends_with(";ws"),
        "{use_path}"
    );
    ensure!(header(&accepted, "Expires") == Some("600"), "{accepted}");

    // Prosody: RFC 7395 <open/> gets an <open/> back and features offering SCRAM-SHA-1.
    let prosody = stack.prosody();
    let mut xmpp = ws_connect(&prosody.ws_url(), "xmpp").await?;
    ws_send(
        &mut xmpp,
        format!(
            "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='{}' version='1.0'/>",
            prosody.domain()
        ),
    )
    .await?;
    let open = ws_recv(&mut xmpp).await?;
    ensure!(
        open.starts_with("<open") && open.contains("xmpp-framing"),
        "{open}"
    );
    let features = ws_recv(&mut xmpp).await?;
    ensure!(
        features.contains("<stream:features") || features.contains("features"),
        "{features}"
    );
    ensure!(
        features.contains("<mechanism>SCRAM-SHA-1</mechanism>"),
        "{features}"
    );

    // coturn: a hand-built STUN Binding request gets a Binding success response.
    let coturn = stack.coturn();
    ensure!(coturn.turn_url() == format!("turn:127.0.0.1:{}?transport=udp", coturn.port()));
    let socket = UdpSocket::bind("127.0.0.1:0").await?;
    socket.connect(("127.0.0.1", coturn.port())).await?;
    let transaction: [u8; 12] = *b"lyrebirdSTUN";
    let mut request = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
    request.extend_from_slice(&transaction);
    socket.send(&request).await?;
    let mut buffer = [0u8; 1500];
    let len = timeout(STEP, socket.recv(&mut buffer))
        .await
        .context("no STUN response")??;
    ensure!(len >= 20, "short STUN response");
    ensure!(
        buffer[0..2] == [0x01, 0x01],
        "not a Binding success: {:02x?}",
        &buffer[..2]
    );
    ensure!(buffer[8..20] == transaction, "transaction id mismatch");
    // XOR-MAPPED-ADDRESS (0x0020) is present (RFC 8489 14.2).
    ensure!(
        buffer[20..len]
            .windows(2)
            .step_by(1)
            .any(|w| w == [0x00, 0x20])
    );

    // Dropping the stack removes its directory.
    let dir = stack.dir().to_owned();
    drop(stack);
    if std::env::var_os("LYREBIRD_KEEP_STACK").is_none() {
        ensure!(!dir.exists(), "{} was not removed", dir.display());
    }
    Ok(())
}

#[tokio::test]
async fn kamailio_sha256_digest_and_restart_on_the_same_port() -> Result<()> {
    testkit::stack::require_tools()?;
    let options = StackOptions {
        prosody: false,
        coturn: false,
        digest_algorithm: DigestAlgorithm::Sha256,
        ..StackOptions::default()
    };
    let mut stack = start(options).await?;
    let url = stack.kamailio().ws_url();
    register_with_digest(&stack, "carol").await?;

    let mut stack = tokio::task::spawn_blocking(move || -> Result<Stack> {
        stack.kamailio_mut().restart()?;
        Ok(stack)
    })
    .await??;
    ensure!(stack.kamailio().ws_url() == url, "restart moved the port");
    ensure!(stack.kamailio_mut().is_running());
    register_with_digest(&stack, "carol").await?;

    // stop() really closes the port; start() brings it back.
    let mut stack = tokio::task::spawn_blocking(move || {
        stack.kamailio_mut().stop();
        stack
    })
    .await?;
    ensure!(
        ws_connect(&url, "sip").await.is_err(),
        "Kamailio still answers after stop()"
    );
    let stack = tokio::task::spawn_blocking(move || -> Result<Stack> {
        stack.kamailio_mut().start()?;
        Ok(stack)
    })
    .await??;
    register_with_digest(&stack, "dave").await?;
    Ok(())
}

#[tokio::test]
async fn kamailio_routes_message_to_registered_users_and_rejects_the_rest() -> Result<()> {
    testkit::stack::require_tools()?;
    let stack = start(StackOptions::kamailio_only()).await?;
    let kamailio = stack.kamailio();
    let domain = kamailio.domain();

    // bob registers and keeps his WebSocket open.
    let mut bob = ws_connect(&kamailio.ws_url(), "sip").await?;
    ws_send(&mut bob, register("bob", domain, 1, None)).await?;
    let challenge_response = ws_recv(&mut bob).await?;
    let challenge = header(&challenge_response, "WWW-Authenticate").context("no challenge")?;
    let authorization = digest_authorization(
        DigestAlgorithm::Md5,
        challenge,
        "bob",
        "bob-secret",
        "REGISTER",
        &format!("sip:{domain}"),
    )?;
    ws_send(&mut bob, register("bob", domain, 2, Some(&authorization))).await?;
    ensure!(status_line(&ws_recv(&mut bob).await?) == "SIP/2.0 200 OK");

    let mut alice = ws_connect(&kamailio.ws_url(), "sip").await?;
    let message = |to: &str, cseq: u32, auth: Option<&str>| {
        let auth = auth
            .map(|a| format!("Proxy-Authorization: {a}\r\n"))
            .unwrap_or_default();
        format!(
            "MESSAGE sip:{to}@{domain} SIP/2.0\r\n\
             Via: SIP/2.0/WS a1b2c3.invalid;branch=z9hG4bKmsg{to}{cseq}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:alice@{domain}>;tag=stalice\r\n\
             To: <sip:{to}@{domain}>\r\n\
             Call-ID: selftest-msg-{to}\r\n\
             CSeq: {cseq} MESSAGE\r\n\
             {auth}Content-Type: text/plain\r\n\
             Content-Length: 5\r\n\r\nhello"
        )
    };
    // Send to `to`, answer the 407 (RFC 3261 22.3), return the final response.
    async fn authenticated(
        alice: &mut Ws,
        to: &str,
        domain: &str,
        message: &dyn Fn(&str, u32, Option<&str>) -> String,
    ) -> Result<String> {
        ws_send(alice, message(to, 1, None)).await?;
        let challenged = ws_recv(alice).await?;
        ensure!(
            status_line(&challenged).starts_with("SIP/2.0 407"),
            "{challenged}"
        );
        let challenge = header(&challenged, "Proxy-Authenticate").context("no challenge")?;
        let uri = format!("sip:{to}@{domain}");
        let authorization = digest_authorization(
            DigestAlgorithm::Md5,
            challenge,
            "alice",
            "alice-secret",
            "MESSAGE",
            &uri,
        )?;
        ws_send(alice, message(to, 2, Some(&authorization))).await?;
        loop {
            let response = ws_recv(alice).await?;
            if !status_line(&response).starts_with("SIP/2.0 1") {
                return Ok(response);
            }
        }
    }

    // To bob (registered): delivered over bob's WebSocket (RFC 3428), his 200 comes back.
    let (delivered, bob_side) =
        tokio::join!(authenticated(&mut alice, "bob", domain, &message), async {
            let request = ws_recv(&mut bob).await?;
            ensure!(request.starts_with("MESSAGE sip:bob@"), "{request}");
            ensure!(request.ends_with("hello"), "{request}");
            ensure!(
                header(&request, "Proxy-Authorization").is_none(),
                "credentials leaked to bob"
            );
            let mut response = String::from("SIP/2.0 200 OK\r\n");
            for line in request.split("\r\n").skip(1) {
                let name = line.split(':').next().unwrap_or_default();
                if ["Via", "From", "Call-ID", "CSeq"].contains(&name) {
                    response.push_str(line);
                    response.push_str("\r\n");
                } else if name == "To" {
                    response.push_str(line);
                    response.push_str(";tag=stbob\r\n");
                }
            }
            response.push_str("Content-Length: 0\r\n\r\n");
            ws_send(&mut bob, response).await
        });
    bob_side?;
    let delivered = delivered?;
    ensure!(status_line(&delivered) == "SIP/2.0 200 OK", "{delivered}");

    // erin exists but is not registered: 480. zed does not exist: 404.
    let offline = authenticated(&mut alice, "erin", domain, &message).await?;
    ensure!(
        status_line(&offline).starts_with("SIP/2.0 480"),
        "{offline}"
    );
    let unknown = authenticated(&mut alice, "zed", domain, &message).await?;
    ensure!(
        status_line(&unknown).starts_with("SIP/2.0 404"),
        "{unknown}"
    );
    Ok(())
}

/// AUTH on the relay and return the Use-Path URI (RFC 4976 5.1).
async fn msrp_session(stack: &Stack, user: &str) -> Result<(Ws, String)> {
    let kamailio = stack.kamailio();
    let relay = kamailio.msrp_relay_uri();
    let password = kamailio.password(user).context("unknown test user")?;
    let mut ws = ws_connect(&kamailio.msrp_ws_url(), "msrp").await?;
    ws_send(&mut ws, msrp_auth(&relay, "a1", None)).await?;
    let unauthorized = ws_recv(&mut ws).await?;
    let challenge = header(&unauthorized, "WWW-Authenticate").context("no challenge")?;
    let authorization = digest_authorization(
        DigestAlgorithm::Md5,
        challenge,
        user,
        password,
        "AUTH",
        &relay,
    )?;
    ws_send(&mut ws, msrp_auth(&relay, "a2", Some(&authorization))).await?;
    let accepted = ws_recv(&mut ws).await?;
    let use_path = header(&accepted, "Use-Path")
        .context("no Use-Path")?
        .to_owned();
    Ok((ws, use_path))
}

#[tokio::test]
async fn msrp_relay_carries_a_send_between_two_websocket_clients() -> Result<()> {
    testkit::stack::require_tools()?;
    let stack = start(StackOptions::kamailio_only()).await?;
    let (mut alice, alice_relay) = msrp_session(&stack, "alice").await?;
    let (mut bob, bob_relay) = msrp_session(&stack, "bob").await?;
    ensure!(
        alice_relay != bob_relay,
        "both clients got the same relay session"
    );

    // RFC 4976 fig. 2: To-Path = my relay hop, the peer's relay hop, the peer.
    let bob_uri = "msrp://bobhost.invalid:2855/bobsession;ws";
    let send = format!(
        "MSRP s1 SEND\r\n\
         To-Path: {alice_relay} {bob_relay} {bob_uri}\r\n\
         From-Path: msrp://alicehost.invalid:2855/alicesession;ws\r\n\
         Message-ID: selftest-1\r\n\
         Byte-Range: 1-5/5\r\n\
         Content-Type: text/plain\r\n\r\n\
         hello\r\n\
         -------s1$\r\n"
    );
    ws_send(&mut alice, send).await?;
    let hop_response = ws_recv(&mut alice).await?;
    ensure!(hop_response.starts_with("MSRP s1 200"), "{hop_response}");
    let delivered = ws_recv(&mut bob).await?;
    ensure!(delivered.starts_with("MSRP s1 SEND"), "{delivered}");
    ensure!(
        header(&delivered, "To-Path") == Some(bob_uri),
        "{delivered}"
    );
    let from_path = header(&delivered, "From-Path").context("no From-Path")?;
    ensure!(
        from_path.starts_with(&bob_relay) && from_path.contains(&alice_relay),
        "{from_path}"
    );
    ensure!(
        delivered.contains("\r\n\r\nhello\r\n-------s1$"),
        "{delivered}"
    );
    Ok(())
}
