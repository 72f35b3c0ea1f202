//! A small W3C WebDriver client (<https://www.w3.org/TR/webdriver2/>) for driving the desktop
//! window through `tauri-driver` and WebKitWebDriver.
//!
//! WebDriver is HTTP/1.1 with JSON bodies. Each command here is one request on a fresh
//! `std::net::TcpStream` to 127.0.0.1, bounded by [`REQUEST_TIMEOUT`] (connect, write and every
//! read), so a hung driver fails a test instead of hanging it. No HTTP crate is needed: the
//! driver answers with `Content-Length` (or chunked) JSON, which is read to its end.
//!
//! No `Connection: close` is sent: tauri-driver forwards request headers to WebKitWebDriver
//! over a pooled connection, and that header made the pooled connection close under it; the
//! next forwarded command then failed and tauri-driver dropped our connection with no answer.
//! An answer that never starts (the connection closed before a status line) is such a
//! forwarding failure, so the command is sent again, at most [`EMPTY_ANSWER_RETRIES`] times.
//!
//! Responses follow the spec's shape: success is `{"value": ...}`; an error is `{"value":
//! {"error": "no such element", "message": ..., "stacktrace": ...}}` with a 4xx/5xx status
//! (section 6.6), which becomes a [`WebDriverError`] naming the command.
//!
//! Elements are found by CSS selector (section 12.2, strategy `"css selector"`); the element
//! reference is the value under the web element identifier key (section 12.1).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine as _;
use serde_json::{Value, json};

/// Bound of one WebDriver request (a session start launches the app, so it gets more).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound of the new-session request: the driver starts the app and waits for its webview.
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(60);
/// How often [`Session::wait_for`] re-checks its condition.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// How often a command whose connection closed before any answer is sent again.
pub const EMPTY_ANSWER_RETRIES: usize = 3;

/// The connection closed before a status line: the intermediary could not forward the command.
#[derive(Debug)]
struct EmptyAnswer;

impl std::fmt::Display for EmptyAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the connection closed before any answer")
    }
}

impl std::error::Error for EmptyAnswer {}

/// The web element identifier (W3C WebDriver section 12.1).
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// An error the remote end reported (W3C WebDriver section 6.6).
#[derive(Debug, Clone)]
pub struct WebDriverError {
    /// The command, e.g. `POST /session/…/element`.
    pub command: String,
    pub status: u16,
    /// The spec's error code, e.g. `no such element`, `stale element reference`.
    pub error: String,
    pub message: String,
}

impl std::fmt::Display for WebDriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} failed ({} {}): {}",
            self.command, self.status, self.error, self.message
        )
    }
}

impl std::error::Error for WebDriverError {}

/// An HTTP client for one WebDriver endpoint (`http://127.0.0.1:PORT`).
#[derive(Debug, Clone)]
pub struct Client {
    addr: SocketAddr,
}

impl Client {
    pub fn new(addr: SocketAddr) -> Self {
        Self { addr }
    }

    /// `GET /status` (section 8.3): whether the remote end can create a session.
    pub fn ready(&self) -> Result<bool> {
        let value = self.request("GET", "/status", None, Duration::from_secs(2))?;
        Ok(value["ready"].as_bool().unwrap_or(false))
    }

    /// Starts a session with `capabilities` as `alwaysMatch` (section 8.1).
    pub fn new_session(&self, capabilities: Value) -> Result<Session> {
        let body = json!({"capabilities": {"alwaysMatch": capabilities}});
        let value = self.request("POST", "/session", Some(&body), SESSION_TIMEOUT)?;
        let id = value["sessionId"]
            .as_str()
            .ok_or_else(|| anyhow!("new session answer without sessionId: {value}"))?
            .to_owned();
        Ok(Session {
            client: self.clone(),
            id,
            deleted: false,
        })
    }

    /// One request; returns the `value` member of a successful answer.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        timeout: Duration,
    ) -> Result<Value> {
        let command = format!("{method} {path}");
        let mut attempt = 0;
        let (status, text) = loop {
            match self.exchange(method, path, body, timeout) {
                Err(e) if e.is::<EmptyAnswer>() && attempt < EMPTY_ANSWER_RETRIES => {
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(50));
                }
                other => break other.with_context(|| format!("WebDriver {command}"))?,
            }
        };
        let answer: Value = serde_json::from_str(&text).with_context(|| {
            format!("WebDriver {command}: answer is not JSON ({status}): {text:.300}")
        })?;
        let value = answer.get("value").cloned().unwrap_or(Value::Null);
        if !(200..300).contains(&status) {
            return Err(WebDriverError {
                command,
                status,
                error: value["error"]
                    .as_str()
                    .unwrap_or("unknown error")
                    .to_owned(),
                message: value["message"].as_str().unwrap_or_default().to_owned(),
            }
            .into());
        }
        Ok(value)
    }

    fn exchange(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        timeout: Duration,
    ) -> Result<(u16, String)> {
        let stream = TcpStream::connect_timeout(&self.addr, timeout.min(Duration::from_secs(5)))
            .with_context(|| format!("connecting to {}", self.addr))?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        let deadline = Instant::now() + timeout;
        let payload = body.map(Value::to_string).unwrap_or_default();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\n",
            self.addr
        );
        if body.is_some() {
            head.push_str("Content-Type: application/json; charset=utf-8\r\n");
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", payload.len()));
        let mut writer = &stream;
        // A connection reset or closed before the status line means no answer at all.
        let no_answer = |e: std::io::Error| -> anyhow::Error {
            use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset};
            if matches!(e.kind(), BrokenPipe | ConnectionAborted | ConnectionReset) {
                EmptyAnswer.into()
            } else {
                e.into()
            }
        };
        writer.write_all(head.as_bytes()).map_err(no_answer)?;
        writer.write_all(payload.as_bytes()).map_err(no_answer)?;
        writer.flush().map_err(no_answer)?;

        let mut reader = BufReader::new(&stream);
        let mut status_line = String::new();
        if reader.read_line(&mut status_line).map_err(no_answer)? == 0 {
            return Err(EmptyAnswer.into());
        }
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse::<u16>().ok())
            .ok_or_else(|| anyhow!("not an HTTP status line: {status_line:?}"))?;
        let mut content_length = None;
        let mut chunked = false;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                break;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
                if name == "content-length" {
                    content_length = value.parse::<usize>().ok();
                } else if name == "transfer-encoding" && value.eq_ignore_ascii_case("chunked") {
                    chunked = true;
                }
            }
        }
        let mut bytes = Vec::new();
        if chunked {
            // RFC 9112 section 7.1: size line (hex), data, CRLF; a zero size ends the body.
            loop {
                if Instant::now() > deadline {
                    bail!("answer not complete within {timeout:?}");
                }
                let mut size_line = String::new();
                reader.read_line(&mut size_line)?;
                let size_text = size_line.trim().split(';').next().unwrap_or_default();
                let size = usize::from_str_radix(size_text, 16)
                    .map_err(|_| anyhow!("bad chunk size line {size_line:?}"))?;
                if size == 0 {
                    break;
                }
                let start = bytes.len();
                bytes.resize(start + size, 0);
                reader.read_exact(&mut bytes[start..])?;
                let mut crlf = [0u8; 2];
                reader.read_exact(&mut crlf)?;
            }
        } else if let Some(length) = content_length {
            bytes.resize(length, 0);
            reader.read_exact(&mut bytes)?;
        } else {
            // No length: the body ends when the server closes the connection.
            reader.read_to_end(&mut bytes)?;
        }
        Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
    }
}

/// A reference to an element in the page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element(pub String);

impl Element {
    fn from_value(value: &Value) -> Result<Element> {
        value[ELEMENT_KEY]
            .as_str()
            .map(|id| Element(id.to_owned()))
            .ok_or_else(|| anyhow!("not an element reference: {value}"))
    }

    /// The element as a script argument (section 13.2: JSON deserialization of elements).
    pub fn to_arg(&self) -> Value {
        json!({ ELEMENT_KEY: self.0 })
    }
}

/// A WebDriver session; deleted (which closes the app) on drop.
pub struct Session {
    client: Client,
    id: String,
    deleted: bool,
}

impl Session {
    pub fn id(&self) -> &str {
        &self.id
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        let path = format!("/session/{}{path}", self.id);
        self.client
            .request(method, &path, body.as_ref(), REQUEST_TIMEOUT)
    }

    /// Ends the session (section 8.2); the driver closes the app.
    pub fn delete(&mut self) -> Result<()> {
        if self.deleted {
            return Ok(());
        }
        self.deleted = true;
        let path = format!("/session/{}", self.id);
        self.client
            .request("DELETE", &path, None, Duration::from_secs(15))?;
        Ok(())
    }

    /// The first element matching `css`, or an error naming the selector.
    pub fn find(&self, css: &str) -> Result<Element> {
        let value = self
            .call(
                "POST",
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .with_context(|| format!("finding {css}"))?;
        Element::from_value(&value)
    }

    /// Every element matching `css` (possibly none).
    pub fn find_all(&self, css: &str) -> Result<Vec<Element>> {
        let value = self.call(
            "POST",
            "/elements",
            Some(json!({"using": "css selector", "value": css})),
        )?;
        value
            .as_array()
            .ok_or_else(|| anyhow!("elements answer is not a list: {value}"))?
            .iter()
            .map(Element::from_value)
            .collect()
    }

    /// The first element matching `css` inside `parent`.
    pub fn find_in(&self, parent: &Element, css: &str) -> Result<Element> {
        let value = self
            .call(
                "POST",
                &format!("/element/{}/element", parent.0),
                Some(json!({"using": "css selector", "value": css})),
            )
            .with_context(|| format!("finding {css} inside an element"))?;
        Element::from_value(&value)
    }

    /// `[data-testid="<id>"]`, the DOM contract's way of naming things.
    pub fn testid(&self, id: &str) -> Result<Element> {
        self.find(&testid(id))
    }

    pub fn click(&self, element: &Element) -> Result<()> {
        self.call(
            "POST",
            &format!("/element/{}/click", element.0),
            Some(json!({})),
        )?;
        Ok(())
    }

    /// Clears a text field (section 12.5.2).
    pub fn clear(&self, element: &Element) -> Result<()> {
        self.call(
            "POST",
            &format!("/element/{}/clear", element.0),
            Some(json!({})),
        )?;
        Ok(())
    }

    /// Types `text` into the element (section 12.5.3); `\u{E007}` is Enter.
    pub fn send_keys(&self, element: &Element, text: &str) -> Result<()> {
        self.call(
            "POST",
            &format!("/element/{}/value", element.0),
            Some(json!({"text": text})),
        )?;
        Ok(())
    }

    /// Clears the field, then types `text`.
    pub fn fill(&self, element: &Element, text: &str) -> Result<()> {
        self.clear(element)?;
        self.send_keys(element, text)
    }

    /// The rendered text of the element (section 12.4.5).
    pub fn text(&self, element: &Element) -> Result<String> {
        let value = self.call("GET", &format!("/element/{}/text", element.0), None)?;
        Ok(value.as_str().unwrap_or_default().to_owned())
    }

    /// An attribute's value, `None` when absent (section 12.4.2).
    pub fn attribute(&self, element: &Element, name: &str) -> Result<Option<String>> {
        let value = self.call(
            "GET",
            &format!("/element/{}/attribute/{name}", element.0),
            None,
        )?;
        Ok(value.as_str().map(str::to_owned))
    }

    /// A DOM property's value (section 12.4.3), e.g. `value` of a `<meter>` or `checked`.
    pub fn property(&self, element: &Element, name: &str) -> Result<Value> {
        self.call(
            "GET",
            &format!("/element/{}/property/{name}", element.0),
            None,
        )
    }

    /// Runs `script` as a function body with `args` (section 13.2.1); returns its value.
    pub fn execute(&self, script: &str, args: Vec<Value>) -> Result<Value> {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
    }

    /// Sets a `<select>`'s value and fires `input` and `change` as a person's choice would.
    pub fn select_value(&self, element: &Element, value: &str) -> Result<()> {
        let done = self.execute(
            "const [el, v] = arguments; \
             if (![...el.options].some(o => o.value === v)) return false; \
             el.value = v; \
             el.dispatchEvent(new Event('input', {bubbles: true})); \
             el.dispatchEvent(new Event('change', {bubbles: true})); \
             return true;",
            vec![element.to_arg(), json!(value)],
        )?;
        if done != json!(true) {
            bail!("the select has no option {value:?}");
        }
        Ok(())
    }

    /// The page's HTML (section 13.1), for failure messages.
    pub fn source(&self) -> Result<String> {
        let value = self.call("GET", "/source", None)?;
        Ok(value.as_str().unwrap_or_default().to_owned())
    }

    /// A PNG of the window (section 17.1), written to `path`.
    ///
    /// WebKitGTK answers a screenshot after the page's next presentation update. Without
    /// accelerated compositing (`WEBKIT_DISABLE_COMPOSITING_MODE=1`, which Lyrebird sets to save
    /// memory) a page where nothing changes presents nothing, and the command would wait for
    /// ever; so a one-pixel, almost transparent mark in a corner flickers for two seconds,
    /// which makes the page paint every 50 ms.
    pub fn screenshot(&self, path: &Path) -> Result<()> {
        self.execute(
            "const mark = document.createElement('div');\
             mark.style.cssText = 'position:fixed;left:0;top:0;width:1px;height:1px;' +\
               'pointer-events:none;z-index:2147483647';\
             document.documentElement.appendChild(mark);\
             let n = 0;\
             const tick = setInterval(() => {\
               mark.style.background = n++ % 2 ? 'rgba(128,128,128,0.02)' : 'rgba(128,128,128,0.03)';\
               if (n > 40) { clearInterval(tick); mark.remove(); }\
             }, 50);",
            vec![],
        )?;
        let value = self.call("GET", "/screenshot", None)?;
        let encoded = value
            .as_str()
            .ok_or_else(|| anyhow!("screenshot answer is not a string"))?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .context("decoding the screenshot")?;
        if !png.starts_with(b"\x89PNG") {
            bail!("the screenshot is not a PNG");
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, png).with_context(|| format!("writing {}", path.display()))
    }

    /// Polls `condition` every [`POLL_INTERVAL`] until it returns `Some`, or fails after
    /// `timeout` with `what` and the last error the condition hit (errors such as "no such
    /// element" are expected while the page catches up, so they are retried).
    pub fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut condition: impl FnMut(&Session) -> Result<Option<T>>,
    ) -> Result<T> {
        let deadline = Instant::now() + timeout;
        let mut last_error = None;
        loop {
            match condition(self) {
                Ok(Some(value)) => return Ok(value),
                Ok(None) => {}
                Err(e) => last_error = Some(e),
            }
            if Instant::now() >= deadline {
                let detail = match last_error {
                    Some(e) => format!("; last error: {e:#}"),
                    None => String::new(),
                };
                bail!("timed out after {timeout:?} waiting for {what}{detail}");
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Waits until an element matches `css` and returns it.
    pub fn wait_element(&self, css: &str, timeout: Duration) -> Result<Element> {
        self.wait_for(css, timeout, |s| Ok(s.find_all(css)?.into_iter().next()))
    }

    /// Waits until the element `[data-testid=id]` exists and returns it.
    pub fn wait_testid(&self, id: &str, timeout: Duration) -> Result<Element> {
        self.wait_element(&testid(id), timeout)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.delete();
    }
}

/// The CSS selector for a `data-testid`.
pub fn testid(id: &str) -> String {
    format!("[data-testid=\"{id}\"]")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A one-shot HTTP server answering `response` and returning the request it read.
    fn serve_once(response: &'static str) -> (SocketAddr, std::thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let handle = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("accept");
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .expect("timeout");
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            // Head and (small) body arrive together or shortly after; stop at the body length.
            loop {
                let n = stream.read(&mut buf).unwrap_or(0);
                request.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&request).into_owned();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let length = head
                        .lines()
                        .find_map(|l| l.strip_prefix("Content-Length: "))
                        .and_then(|v| v.parse::<usize>().ok())
                        .unwrap_or(0);
                    if body.len() >= length {
                        break;
                    }
                }
                if n == 0 {
                    break;
                }
            }
            stream.write_all(response.as_bytes()).expect("write");
            String::from_utf8_lossy(&request).into_owned()
        });
        (addr, handle)
    }

    #[test]
    fn success_value_is_returned_and_request_is_json() {
        let (addr, server) = serve_once(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 28\r\n\r\n{\"value\":{\"sessionId\":\"s1\"}}",
        );
        let client = Client::new(addr);
        let value = client
            .request(
                "POST",
                "/session",
                Some(&json!({"a": 1})),
                Duration::from_secs(5),
            )
            .expect("request");
        assert_eq!(value["sessionId"], "s1");
        let request = server.join().expect("server");
        assert!(
            request.starts_with("POST /session HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(request.ends_with("{\"a\":1}"), "{request}");
    }

    #[test]
    fn chunked_error_answer_becomes_a_webdriver_error() {
        let body = "{\"value\":{\"error\":\"no such element\",\"message\":\"nope\"}}";
        let response: &'static str = Box::leak(
            format!(
                "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{}\r\n{:x}\r\n{}\r\n0\r\n\r\n",
                10,
                &body[..10],
                body.len() - 10,
                &body[10..]
            )
            .into_boxed_str(),
        );
        let (addr, _server) = serve_once(response);
        let error = Client::new(addr)
            .request("GET", "/x", None, Duration::from_secs(5))
            .expect_err("an error");
        let error = error
            .downcast::<WebDriverError>()
            .expect("a WebDriverError");
        assert_eq!(
            (error.status, error.error.as_str(), error.message.as_str()),
            (404, "no such element", "nope")
        );
    }

    #[test]
    fn a_dropped_connection_is_retried() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = std::thread::spawn(move || {
            // First connection: closed without a word (a failed forward in tauri-driver).
            drop(listener.accept().expect("accept"));
            let (mut stream, _) = listener.accept().expect("accept again");
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf);
            stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{\"value\":7}")
                .expect("write");
        });
        let value = Client::new(addr)
            .request("GET", "/status", None, Duration::from_secs(5))
            .expect("answered on the second try");
        assert_eq!(value, json!(7));
        server.join().expect("server");
    }

    #[test]
    fn a_silent_server_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let started = Instant::now();
        let result = Client::new(addr).request("GET", "/status", None, Duration::from_millis(300));
        assert!(result.is_err());
        assert!(started.elapsed() < Duration::from_secs(3));
        drop(listener);
    }
}
