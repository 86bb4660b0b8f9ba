//! A deliberately small HTTP/1.1 client over a plain TCP socket: the request goes out exactly
//! as written (header names in any case, repeated headers, empty values, surrounding
//! whitespace), which is what readiness checks and the end-to-end tests need. [`Request::send`]
//! makes one request per connection (`connection: close`); [`Connection`] keeps one connection
//! open across requests (keep-alive), for clients that must outlive a listener update.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

const IO_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_RESPONSE: usize = 16 * 1024 * 1024;

/// A request; headers are sent in order, byte for byte.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn new(method: &str, target: &str) -> Self {
        Request {
            method: method.to_owned(),
            target: target.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn get(target: &str) -> Self {
        Request::new("GET", target)
    }

    /// Adds a header line `name: value` (the value is written verbatim after `": "`).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The bytes on the wire. `host` is added unless given.
    pub fn to_bytes(&self, addr: SocketAddr) -> Vec<u8> {
        self.wire(addr, true)
    }

    /// The bytes on the wire, asking the server to close the connection after the response or
    /// (`close: false`) to keep it open.
    fn wire(&self, addr: SocketAddr, close: bool) -> Vec<u8> {
        let mut out = format!("{} {} HTTP/1.1\r\n", self.method, self.target).into_bytes();
        if !self
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("host"))
        {
            out.extend_from_slice(format!("host: {addr}\r\n").as_bytes());
        }
        for (name, value) in &self.headers {
            out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        out.extend_from_slice(format!("content-length: {}\r\n", self.body.len()).as_bytes());
        if close {
            out.extend_from_slice(b"connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }

    /// Sends the request and reads the whole response.
    pub fn send(&self, addr: SocketAddr) -> Result<Response, String> {
        let mut stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)
            .map_err(|e| format!("connect {addr}: {e}"))?;
        stream
            .set_read_timeout(Some(IO_TIMEOUT))
            .map_err(|e| e.to_string())?;
        stream
            .set_write_timeout(Some(IO_TIMEOUT))
            .map_err(|e| e.to_string())?;
        stream
            .write_all(&self.to_bytes(addr))
            .map_err(|e| format!("write to {addr}: {e}"))?;
        let mut raw = Vec::new();
        stream
            .take(MAX_RESPONSE as u64)
            .read_to_end(&mut raw)
            .map_err(|e| format!("read from {addr}: {e}"))?;
        Response::parse(&raw)
    }
}

/// One HTTP/1.1 connection reused for request after request (keep-alive). A response is read
/// to its end by its `content-length` or chunked framing, so the next request can follow on the
/// same socket.
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    addr: SocketAddr,
    /// Bytes read past the end of the last response (none, with a well-behaved server).
    buffered: Vec<u8>,
    /// The server announced `connection: close`: no further request may be sent.
    closing: bool,
}

impl Connection {
    /// Connects to `addr`.
    pub fn open(addr: SocketAddr) -> Result<Connection, String> {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)
            .map_err(|e| format!("connect {addr}: {e}"))?;
        for r in [
            stream.set_read_timeout(Some(IO_TIMEOUT)),
            stream.set_write_timeout(Some(IO_TIMEOUT)),
        ] {
            r.map_err(|e| e.to_string())?;
        }
        Ok(Connection {
            stream,
            addr,
            buffered: Vec::new(),
            closing: false,
        })
    }

    /// Whether the server said it closes the connection after its last response
    /// (`connection: close`, which Envoy sends on a connection it drains): open a new one.
    pub fn closing(&self) -> bool {
        self.closing
    }

    /// Sends `req` without `connection: close` and reads exactly one response. An error (the
    /// connection reset or closed before a whole response) leaves the connection unusable.
    pub fn send(&mut self, req: &Request) -> Result<Response, String> {
        if self.closing {
            return Err(format!(
                "{}: the server closed this connection after its last response",
                self.addr
            ));
        }
        self.stream
            .write_all(&req.wire(self.addr, false))
            .map_err(|e| format!("write to {}: {e}", self.addr))?;
        let mut chunk = [0u8; 16 * 1024];
        let len = loop {
            if let Some(len) = complete_length(&self.buffered)? {
                break len;
            }
            if self.buffered.len() > MAX_RESPONSE {
                return Err(format!("response from {} too large", self.addr));
            }
            let n = self
                .stream
                .read(&mut chunk)
                .map_err(|e| format!("read from {}: {e}", self.addr))?;
            if n == 0 {
                return Err(format!(
                    "{} closed the connection after {} bytes of a response",
                    self.addr,
                    self.buffered.len()
                ));
            }
            self.buffered.extend_from_slice(&chunk[..n]);
        };
        let raw: Vec<u8> = self.buffered.drain(..len).collect();
        let response = Response::parse(&raw)?;
        self.closing = response
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        Ok(response)
    }
}

/// The length of the first response in `raw` if all of it has arrived. A response with
/// neither `content-length` nor chunked framing has no body here: on a kept-alive connection
/// the server must frame it (HTTP/1.1, RFC 9112 §6.3).
fn complete_length(raw: &[u8]) -> Result<Option<usize>, String> {
    let Some(head_end) = find(raw, b"\r\n\r\n") else {
        return Ok(None);
    };
    let body_start = head_end + 4;
    let head = String::from_utf8_lossy(&raw[..head_end]).to_ascii_lowercase();
    let mut content_length = None;
    let mut chunked = false;
    for (name, value) in head.split("\r\n").skip(1).filter_map(|l| l.split_once(':')) {
        match name.trim() {
            "content-length" => {
                content_length = Some(
                    value
                        .trim()
                        .parse::<usize>()
                        .map_err(|_| format!("bad content-length {value:?}"))?,
                );
            }
            "transfer-encoding" => chunked = value.trim() == "chunked",
            _ => {}
        }
    }
    if !chunked {
        let len = body_start + content_length.unwrap_or(0);
        return Ok((raw.len() >= len).then_some(len));
    }
    // Walk the chunks; any that has not fully arrived means "not yet".
    let mut at = body_start;
    loop {
        let Some(line_len) = raw.get(at..).and_then(|r| find(r, b"\r\n")) else {
            return Ok(None);
        };
        let size_text = String::from_utf8_lossy(&raw[at..at + line_len]);
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        at += line_len + 2;
        if size == 0 {
            // No trailers from the servers here: the last chunk ends with an empty line.
            let end = at + 2;
            return Ok((raw.len() >= end).then_some(end));
        }
        at += size + 2;
        if raw.len() < at {
            return Ok(None);
        }
    }
}

/// A parsed response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Header names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// Parses a complete response (the connection was closed after it).
    pub fn parse(raw: &[u8]) -> Result<Response, String> {
        let head_end = find(raw, b"\r\n\r\n")
            .ok_or_else(|| format!("incomplete response ({} bytes)", raw.len()))?;
        let head = std::str::from_utf8(&raw[..head_end])
            .map_err(|_| "response head is not UTF-8".to_owned())?;
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line {status_line:?}"))?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let rest = &raw[head_end + 4..];
        let chunked = headers
            .iter()
            .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
        let body = if chunked {
            dechunk(rest)?
        } else if let Some(len) = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse().ok())
        {
            rest.get(..len)
                .ok_or_else(|| format!("body shorter than content-length {len}"))?
                .to_vec()
        } else {
            rest.to_vec()
        };
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    /// The first value of a header (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON.
    pub fn json(&self) -> Result<serde_json::Value, String> {
        serde_json::from_slice(&self.body)
            .map_err(|e| format!("body is not JSON ({e}): {}", self.text()))
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let line_end = find(rest, b"\r\n").ok_or("truncated chunk size")?;
        let size_text = std::str::from_utf8(&rest[..line_end]).map_err(|_| "bad chunk size")?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        body.extend_from_slice(rest.get(..size).ok_or("truncated chunk")?);
        rest = rest.get(size + 2..).ok_or("truncated chunk")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_is_written_verbatim() {
        let addr: SocketAddr = "127.0.0.1:80".parse().unwrap();
        let req = Request::get("/x?y=1")
            .header("X-RFMA-Token", "  a b  ")
            .header("x-rfma-token", "");
        let text = String::from_utf8(req.to_bytes(addr)).unwrap();
        assert_eq!(
            text,
            "GET /x?y=1 HTTP/1.1\r\nhost: 127.0.0.1:80\r\nX-RFMA-Token:   a b  \r\nx-rfma-token: \r\n\
             content-length: 0\r\nconnection: close\r\n\r\n"
        );
    }

    #[test]
    fn keep_alive_request_has_no_close_and_framing_finds_the_end() {
        let addr: SocketAddr = "127.0.0.1:80".parse().unwrap();
        let text = String::from_utf8(Request::get("/a").wire(addr, false)).unwrap();
        assert_eq!(
            text,
            "GET /a HTTP/1.1\r\nhost: 127.0.0.1:80\r\ncontent-length: 0\r\n\r\n"
        );
        let two = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}HTTP/1.1 204 No\r\n\r\n";
        assert_eq!(complete_length(two).unwrap(), Some(40));
        assert_eq!(complete_length(&two[..39]).unwrap(), None);
        let chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
        assert_eq!(complete_length(chunked).unwrap(), Some(chunked.len()));
        assert_eq!(
            complete_length(&chunked[..chunked.len() - 1]).unwrap(),
            None
        );
        assert!(complete_length(b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n").is_err());
    }

    #[test]
    fn parses_length_and_chunked_bodies() {
        let r = Response::parse(b"HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\ncontent-length: 2\r\n\r\n{}junk")
            .unwrap();
        assert_eq!(
            (r.status, r.header("content-type"), r.body.as_slice()),
            (403, Some("application/json"), &b"{}"[..])
        );
        let r = Response::parse(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=1\r\nde\r\n0\r\n\r\n")
            .unwrap();
        assert_eq!(r.body, b"abcde");
        assert!(Response::parse(b"HTTP/1.1 200 OK\r\n").is_err());
    }
}
