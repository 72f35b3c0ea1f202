//! A small HTTP/1.1 client for XEP-0363 uploads (PUT) and downloads (GET) of shared files:
//! one request per connection, `Content-Length` or chunked bodies, TLS via rustls with the same
//! trust rules as the WebSocket transport. It streams files in chunks so progress can be
//! reported and memory stays flat for large files.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::msrp::names::{create_partial, publish, safe_file_name};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const CHUNK: usize = 64 * 1024;
const IO_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_HEADER_BYTES: usize = 64 * 1024;

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// SHA-256 as 64 lowercase hex digits.
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

struct Url {
    secure: bool,
    host: String,
    port: u16,
    path: String,
}

fn parse_url(url: &str) -> Result<Url, String> {
    let (secure, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(format!("`{url}` is not an http(s) URL"));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(format!("`{url}` has no usable host"));
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => {
            let port = p.parse().map_err(|_| format!("bad port in `{url}`"))?;
            (h.trim_start_matches('[').trim_end_matches(']'), port)
        }
        _ => (authority, if secure { 443 } else { 80 }),
    };
    if path.contains(['\r', '\n', ' ']) {
        return Err(format!(
            "`{url}` contains characters not allowed in a request line"
        ));
    }
    Ok(Url {
        secure,
        host: host.to_owned(),
        port,
        path: path.to_owned(),
    })
}

async fn connect(url: &Url, trusted: Option<&Path>) -> Result<Box<dyn Io>, String> {
    let tcp = tokio::time::timeout(
        IO_TIMEOUT,
        TcpStream::connect((url.host.as_str(), url.port)),
    )
    .await
    .map_err(|_| format!("connecting to {} timed out", url.host))?
    .map_err(|e| format!("cannot reach {}: {e}", url.host))?;
    let _ = tcp.set_nodelay(true);
    if !url.secure {
        return Ok(Box::new(tcp));
    }
    let config = crate::transport::tls_config(trusted).map_err(|e| e.to_string())?;
    let name = rustls::pki_types::ServerName::try_from(url.host.clone())
        .map_err(|e| format!("bad TLS server name {}: {e}", url.host))?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS with {} failed: {e}", url.host))?;
    Ok(Box::new(tls))
}

/// Reads the status line and headers; returns (status, content-length, chunked).
async fn read_head(
    reader: &mut BufReader<Box<dyn Io>>,
) -> Result<(u16, Option<u64>, bool), String> {
    let mut total = 0;
    let mut status = None;
    let mut length = None;
    let mut chunked = false;
    loop {
        let mut line = String::new();
        let n = tokio::time::timeout(IO_TIMEOUT, reader.read_line(&mut line))
            .await
            .map_err(|_| "the HTTP server did not answer in time".to_owned())?
            .map_err(|e| format!("reading the HTTP response: {e}"))?;
        total += n;
        if n == 0 || total > MAX_HEADER_BYTES {
            return Err("bad HTTP response head".into());
        }
        let line = line.trim_end();
        if status.is_none() {
            status = line
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse::<u16>().ok());
            if status.is_none() {
                return Err(format!("bad HTTP status line `{line}`"));
            }
            continue;
        }
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = value.parse().ok();
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.to_ascii_lowercase().contains("chunked");
            }
        }
    }
    Ok((status.unwrap_or(0), length, chunked))
}

/// PUTs a file (XEP-0363 §5), calling `progress` with the bytes written so far.
pub(crate) async fn put_file(
    url: &str,
    headers: &[(String, String)],
    path: &Path,
    size: u64,
    content_type: &str,
    trusted: Option<&Path>,
    progress: impl Fn(u64) + Send,
) -> Result<(), String> {
    let parsed = parse_url(url)?;
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut stream = connect(&parsed, trusted).await?;
    let mut head = format!(
        "PUT {} HTTP/1.1\r\nHost: {}\r\nContent-Length: {size}\r\nContent-Type: {}\r\nConnection: close\r\n",
        parsed.path,
        parsed.host,
        content_type.replace(['\r', '\n'], "")
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream
        .write_all(head.as_bytes())
        .await
        .map_err(|e| format!("upload: {e}"))?;
    let mut sent = 0u64;
    let mut buf = vec![0u8; CHUNK];
    while sent < size {
        let n = file
            .read(&mut buf)
            .await
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if n == 0 {
            return Err(format!("{} shrank while uploading", path.display()));
        }
        tokio::time::timeout(IO_TIMEOUT, stream.write_all(&buf[..n]))
            .await
            .map_err(|_| "upload stalled".to_owned())?
            .map_err(|e| format!("upload: {e}"))?;
        sent += n as u64;
        progress(sent);
    }
    stream.flush().await.map_err(|e| format!("upload: {e}"))?;
    let mut reader = BufReader::new(stream);
    let (status, _, _) = read_head(&mut reader).await?;
    if !(200..300).contains(&status) {
        return Err(format!("the upload server answered HTTP {status}"));
    }
    Ok(())
}

/// A safe local file name from the URL's last path segment, percent-decoded.
fn file_name_from(url: &Url) -> String {
    let last = url
        .path
        .split(['?', '#'])
        .next()
        .unwrap_or("")
        .rsplit('/')
        .next()
        .unwrap_or("");
    let bytes = last.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(v) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            decoded.push(v);
            i += 3;
            continue;
        }
        decoded.push(bytes[i]);
        i += 1;
    }
    safe_file_name(&String::from_utf8_lossy(&decoded))
}

/// GETs a URL into `dir`, calling `progress(bytes, total)`. Returns (path, sha256, bytes).
pub(crate) async fn get_file(
    url: &str,
    dir: &Path,
    trusted: Option<&Path>,
    progress: impl Fn(u64, Option<u64>) + Send,
) -> Result<(PathBuf, String, u64), String> {
    let parsed = parse_url(url)?;
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let name = file_name_from(&parsed);
    let mut stream = connect(&parsed, trusted).await?;
    let head = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        parsed.path, parsed.host
    );
    stream
        .write_all(head.as_bytes())
        .await
        .map_err(|e| format!("download: {e}"))?;
    let mut reader = BufReader::new(stream);
    let (status, length, chunked) = read_head(&mut reader).await?;
    if !(200..300).contains(&status) {
        return Err(format!("the file server answered HTTP {status}"));
    }
    // A hidden partial file of its own (never an existing file, never truncated), given its
    // final, free name only once complete; removed if the download fails.
    let (partial, file) =
        create_partial(dir, &name).map_err(|e| format!("{}: {e}", dir.display()))?;
    let received = receive_body(
        reader,
        tokio::fs::File::from_std(file),
        length,
        chunked,
        progress,
    )
    .await;
    let (sha256, received) = match received {
        Ok(done) => done,
        Err(e) => {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(e);
        }
    };
    let path = match publish(&partial, dir, &name) {
        Ok(path) => path,
        Err(e) => {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(format!("{}: {e}", dir.display()));
        }
    };
    Ok((path, sha256, received))
}

/// Writes a response body to `file`: `length` bytes, chunked, or to the end of the connection.
/// Returns the body's SHA-256 and size.
async fn receive_body<R: tokio::io::AsyncBufRead + Unpin>(
    mut reader: R,
    mut file: tokio::fs::File,
    length: Option<u64>,
    chunked: bool,
    progress: impl Fn(u64, Option<u64>) + Send,
) -> Result<(String, u64), String> {
    let mut hasher = Sha256::new();
    let mut received = 0u64;
    let mut buf = vec![0u8; CHUNK];
    let mut chunk_left: u64 = 0;
    loop {
        let want = if chunked {
            if chunk_left == 0 {
                let mut line = String::new();
                reader
                    .read_line(&mut line)
                    .await
                    .map_err(|e| format!("download: {e}"))?;
                if line.trim().is_empty() {
                    line.clear();
                    reader
                        .read_line(&mut line)
                        .await
                        .map_err(|e| format!("download: {e}"))?;
                }
                let size = line.trim().split(';').next().unwrap_or("");
                chunk_left =
                    u64::from_str_radix(size, 16).map_err(|_| "bad chunked encoding".to_owned())?;
                if chunk_left == 0 {
                    break;
                }
            }
            chunk_left.min(CHUNK as u64) as usize
        } else if let Some(len) = length {
            if received >= len {
                break;
            }
            (len - received).min(CHUNK as u64) as usize
        } else {
            CHUNK
        };
        let n = tokio::time::timeout(IO_TIMEOUT, reader.read(&mut buf[..want]))
            .await
            .map_err(|_| "download stalled".to_owned())?
            .map_err(|e| format!("download: {e}"))?;
        if n == 0 {
            if chunked || length.is_some() {
                return Err("the connection closed before the whole file arrived".into());
            }
            break;
        }
        if chunked {
            chunk_left -= n as u64;
        }
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n])
            .await
            .map_err(|e| format!("download: {e}"))?;
        received += n as u64;
        progress(received, length);
    }
    file.flush().await.map_err(|e| format!("download: {e}"))?;
    Ok((hex::encode(hasher.finalize()), received))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_names() {
        let u = parse_url("http://127.0.0.1:5280/file_share/abc/tr%C3%A8s%20cool.jpg").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.secure),
            ("127.0.0.1", 5280, false)
        );
        assert_eq!(file_name_from(&u), "très cool.jpg");
        let u = parse_url("https://example.com/a/..%2F..%2Fetc%2Fpasswd").unwrap();
        assert_eq!(u.port, 443);
        assert_eq!(file_name_from(&u), "passwd");
        let u = parse_url("https://example.com/a/%2E%2E").unwrap();
        assert_eq!(file_name_from(&u), "received-file");
        assert!(parse_url("ftp://x/y").is_err());
        assert!(parse_url("http://x/a b").is_err());
    }
}
