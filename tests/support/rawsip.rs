//! A deliberately dumb SIP-over-WebSocket client that sends exactly the bytes a test writes.
//! Tests use it to play a hostile or broken peer: messages no real user agent would produce.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub struct RawSipClient {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// Shared by every client of the process, so two clients never send the same branch or
/// Call-ID (the proxy would take the second client's requests for retransmissions).
static TOKENS: AtomicU64 = AtomicU64::new(0);

/// A parsed-enough response: status code and the raw text.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    pub text: String,
}

impl RawResponse {
    /// The value of the first header called `name` (case-insensitive), if any.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.text
            .lines()
            .skip(1)
            .take_while(|l| !l.is_empty())
            .find_map(|line| {
                let (n, v) = line.split_once(':')?;
                n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
            })
    }
}

impl RawSipClient {
    pub async fn connect(ws_url: &str) -> Result<Self> {
        let mut request = ws_url.into_client_request()?;
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("sip"));
        let (ws, _) = tokio::time::timeout(
            Duration::from_secs(10),
            tokio_tungstenite::connect_async(request),
        )
        .await
        .context("WebSocket connect timed out")??;
        Ok(Self { ws })
    }

    /// A fresh token for branches, tags and Call-IDs.
    pub fn token(&mut self) -> String {
        let n = TOKENS.fetch_add(1, Ordering::Relaxed) + 1;
        format!("{:x}{n:04x}", std::process::id())
    }

    pub async fn send(&mut self, text: &str) -> Result<()> {
        self.ws.send(Message::Text(text.to_owned().into())).await?;
        Ok(())
    }

    /// The next SIP response, skipping requests and provisional responses unless
    /// `provisional` is true.
    pub async fn response(&mut self, timeout: Duration, provisional: bool) -> Result<RawResponse> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .map_err(|_| anyhow!("no SIP response within {timeout:?}"))?
                .ok_or_else(|| anyhow!("the server closed the WebSocket"))??;
            let text = match frame {
                Message::Text(text) => text.to_string(),
                Message::Binary(data) => String::from_utf8_lossy(&data).into_owned(),
                _ => continue,
            };
            let Some(status_line) = text.lines().next() else {
                continue;
            };
            if !status_line.starts_with("SIP/2.0 ") {
                continue;
            }
            let status: u16 = status_line
                .split_whitespace()
                .nth(1)
                .and_then(|code| code.parse().ok())
                .ok_or_else(|| anyhow!("bad status line {status_line:?}"))?;
            if status < 200 && !provisional {
                continue;
            }
            return Ok(RawResponse { status, text });
        }
    }

    /// Builds a request from `method`, `target` and extra header lines, with the mandatory
    /// headers filled in (from `sip:mallory@elsewhere.invalid`, another domain, so the proxy
    /// relays it without a challenge, as it would a call from another provider).
    pub fn request(
        &mut self,
        method: &str,
        target: &str,
        extra_headers: &[&str],
        body: &str,
    ) -> String {
        let (branch, tag, call_id) = (self.token(), self.token(), self.token());
        let mut text = format!(
            "{method} {target} SIP/2.0\r\n\
             Via: SIP/2.0/WS mallory.invalid;branch=z9hG4bK{branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:mallory@elsewhere.invalid>;tag={tag}\r\n\
             To: <{target}>\r\n\
             Call-ID: {call_id}@mallory.invalid\r\n\
             Contact: <sip:mallory@mallory.invalid;transport=ws>\r\n"
        );
        if !extra_headers
            .iter()
            .any(|h| h.to_ascii_lowercase().starts_with("cseq:"))
        {
            text.push_str(&format!("CSeq: 1 {method}\r\n"));
        }
        for header in extra_headers {
            text.push_str(header);
            text.push_str("\r\n");
        }
        text.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        text
    }

    /// The ACK for a non-2xx final response to `invite` (RFC 3261 §17.1.1.3): same branch,
    /// the response's To tag.
    pub fn ack_for(invite: &str, response: &RawResponse) -> Result<String> {
        let line = |name: &str| -> Result<String> {
            invite
                .lines()
                .find(|l| {
                    l.to_ascii_lowercase()
                        .starts_with(&format!("{}:", name.to_ascii_lowercase()))
                })
                .map(str::to_owned)
                .ok_or_else(|| anyhow!("no {name} in the INVITE"))
        };
        let target = invite
            .split_whitespace()
            .nth(1)
            .ok_or_else(|| anyhow!("no Request-URI"))?;
        let to = response
            .header("To")
            .ok_or_else(|| anyhow!("response without To"))?;
        if !to.contains("tag=") {
            bail!("final response without a To tag: {}", response.text);
        }
        Ok(format!(
            "ACK {target} SIP/2.0\r\n{}\r\nMax-Forwards: 70\r\n{}\r\nTo: {to}\r\n{}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
            line("Via")?,
            line("From")?,
            line("Call-ID")?,
        ))
    }
}
