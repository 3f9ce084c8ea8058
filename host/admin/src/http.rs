//! A minimal HTTP/1.1 front for the admin endpoint: a request-head parser, the router for
//! `/metrics`, `/commands` and `/commands/<name>`, and the response encoder.
//!
//! The server reads from the admin socket into a buffer and calls [`parse_request_head`] after
//! each read until it returns a request (or an error, which it answers with
//! [`HttpError::to_response`]); then it performs [`action_for`] if any, builds a
//! [`ServerStats`], writes [`route`]'s response and closes the connection (every response says
//! `Connection: close`; request bodies are never read). The 4lw whitelist does not apply here,
//! as in ZooKeeper's AdminServer.

use std::fmt;

use serde_json::{json, Value};

use crate::fourletter::AdminAction;
use crate::json::{command_action, command_names, render_json};
use crate::metrics::{render_prometheus, Metrics};
use crate::stats::ServerStats;

/// Largest accepted request head (request line, headers and the blank line).
pub const MAX_HEAD_BYTES: usize = 16 * 1024;

/// Content type of `/metrics` (Prometheus text exposition format 0.0.4).
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

const JSON_CONTENT_TYPE: &str = "application/json";
const TEXT_CONTENT_TYPE: &str = "text/plain; charset=utf-8";

/// The request methods the admin endpoint serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
}

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: Method,
    /// The percent-decoded path, starting with `/`.
    pub path: String,
    /// Decoded query parameters in order (`+` is a space).
    pub query: Vec<(String, String)>,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// Header names as sent, values trimmed (non-UTF-8 bytes replaced).
    pub headers: Vec<(String, String)>,
    /// Bytes of the buffer the head took, including the blank line.
    pub head_len: usize,
}

impl HttpRequest {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why a request head was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The head is (or would be) larger than [`MAX_HEAD_BYTES`]: 431.
    HeadTooLarge,
    /// Malformed request line, target or header: 400.
    BadRequest(&'static str),
    /// A well-formed method other than GET or HEAD: 405.
    MethodNotAllowed,
    /// `HTTP/x.y` other than 1.0 and 1.1: 505.
    VersionNotSupported,
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::HeadTooLarge => write!(f, "request head larger than {MAX_HEAD_BYTES} bytes"),
            HttpError::BadRequest(why) => write!(f, "bad request: {why}"),
            HttpError::MethodNotAllowed => f.write_str("method not allowed"),
            HttpError::VersionNotSupported => f.write_str("HTTP version not supported"),
        }
    }
}

impl std::error::Error for HttpError {}

impl HttpError {
    pub fn status(&self) -> u16 {
        match self {
            HttpError::HeadTooLarge => 431,
            HttpError::BadRequest(_) => 400,
            HttpError::MethodNotAllowed => 405,
            HttpError::VersionNotSupported => 505,
        }
    }

    /// The response to send before closing the connection.
    pub fn to_response(&self) -> HttpResponse {
        let mut r = HttpResponse::text(self.status(), format!("{self}\n"));
        if *self == HttpError::MethodNotAllowed {
            r.headers.push(("Allow", "GET, HEAD".to_owned()));
        }
        r
    }
}

/// A response to encode with [`HttpResponse::to_bytes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub content_type: &'static str,
    /// Extra headers (Content-Type, Content-Length and Connection are always written).
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    /// A response to HEAD: the body is left out, its Content-Length is kept.
    pub head_only: bool,
}

impl HttpResponse {
    fn new(status: u16, content_type: &'static str, body: Vec<u8>) -> Self {
        HttpResponse {
            status,
            content_type,
            headers: Vec::new(),
            body,
            head_only: false,
        }
    }

    fn text(status: u16, body: String) -> Self {
        Self::new(status, TEXT_CONTENT_TYPE, body.into_bytes())
    }

    fn json(status: u16, value: &Value) -> Self {
        let mut body = serde_json::to_vec_pretty(value).unwrap_or_else(|_| b"{}".to_vec());
        body.push(b'\n');
        Self::new(status, JSON_CONTENT_TYPE, body)
    }

    /// The reason phrase of the status.
    pub fn reason(&self) -> &'static str {
        match self.status {
            200 => "OK",
            400 => "Bad Request",
            404 => "Not Found",
            405 => "Method Not Allowed",
            431 => "Request Header Fields Too Large",
            500 => "Internal Server Error",
            505 => "HTTP Version Not Supported",
            _ => "Unknown",
        }
    }

    /// The full HTTP/1.1 response: status line, headers, blank line, body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n",
            self.status,
            self.reason(),
            self.content_type,
            self.body.len()
        );
        for (k, v) in &self.headers {
            head.push_str(k);
            head.push_str(": ");
            head.push_str(v);
            head.push_str("\r\n");
        }
        head.push_str("Connection: close\r\n\r\n");
        let mut out = head.into_bytes();
        if !self.head_only {
            out.extend_from_slice(&self.body);
        }
        out
    }
}

/// Parses the request head at the start of `buf`. `Ok(None)`: the blank line ending the head has
/// not arrived yet, read more. Leading empty lines are skipped (RFC 9112 §2.2). Never panics.
pub fn parse_request_head(buf: &[u8]) -> Result<Option<HttpRequest>, HttpError> {
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    // Collect lines until the empty one.
    let mut lines: Vec<&[u8]> = Vec::new();
    let mut pos = start;
    let head_len = loop {
        let Some(nl) = buf[pos..].iter().position(|&b| b == b'\n') else {
            return if buf.len() > MAX_HEAD_BYTES {
                Err(HttpError::HeadTooLarge)
            } else {
                Ok(None)
            };
        };
        let line = &buf[pos..pos + nl];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        pos += nl + 1;
        if pos > MAX_HEAD_BYTES {
            return Err(HttpError::HeadTooLarge);
        }
        if line.is_empty() {
            break pos;
        }
        lines.push(line);
    };
    if lines.is_empty() {
        return Err(HttpError::BadRequest("empty request"));
    }
    for line in &lines {
        if line.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return Err(HttpError::BadRequest("control character in head"));
        }
    }

    let (method, target, minor_version) = parse_request_line(lines[0])?;
    let (path, query) = parse_target(target)?;
    let mut headers = Vec::with_capacity(lines.len() - 1);
    for line in &lines[1..] {
        headers.push(parse_header(line)?);
    }
    Ok(Some(HttpRequest {
        method,
        path,
        query,
        minor_version,
        headers,
        head_len,
    }))
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn parse_request_line(line: &[u8]) -> Result<(Method, &[u8], u8), HttpError> {
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HttpError::BadRequest("malformed request line"));
    };
    if method.is_empty() || !method.iter().copied().all(is_tchar) {
        return Err(HttpError::BadRequest("malformed method"));
    }
    let minor_version = match version {
        b"HTTP/1.1" => 1,
        b"HTTP/1.0" => 0,
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            return Err(HttpError::VersionNotSupported)
        }
        _ => return Err(HttpError::BadRequest("malformed HTTP version")),
    };
    let method = match method {
        b"GET" => Method::Get,
        b"HEAD" => Method::Head,
        _ => return Err(HttpError::MethodNotAllowed),
    };
    Ok((method, target, minor_version))
}

/// Origin form (`/path?query`) or absolute form (`http://host:port/path?query`).
fn parse_target(target: &[u8]) -> Result<(String, Vec<(String, String)>), HttpError> {
    if target.is_empty() || !target.iter().all(|&b| (0x21..0x7f).contains(&b)) {
        return Err(HttpError::BadRequest("malformed request target"));
    }
    let target = target
        .iter()
        .position(|&b| b == b'#')
        .map_or(target, |i| &target[..i]);
    let origin: Vec<u8> = if target.starts_with(b"/") {
        target.to_vec()
    } else {
        let lower = target.to_ascii_lowercase();
        let scheme_len = if lower.starts_with(b"http://") {
            7
        } else if lower.starts_with(b"https://") {
            8
        } else {
            return Err(HttpError::BadRequest("malformed request target"));
        };
        // Drop the authority; a missing path is "/".
        let rest = &target[scheme_len..];
        match rest.iter().position(|&b| b == b'/' || b == b'?') {
            Some(i) if rest[i] == b'/' => rest[i..].to_vec(),
            Some(i) => [&b"/"[..], &rest[i..]].concat(),
            None => b"/".to_vec(),
        }
    };
    let (raw_path, raw_query) = match origin.iter().position(|&b| b == b'?') {
        Some(i) => (&origin[..i], Some(&origin[i + 1..])),
        None => (&origin[..], None),
    };
    let path = percent_decode(raw_path, false)?;
    if path.contains('\0') {
        return Err(HttpError::BadRequest("NUL in path"));
    }
    let mut query = Vec::new();
    for pair in raw_query
        .unwrap_or_default()
        .split(|&b| b == b'&')
        .filter(|p| !p.is_empty())
    {
        let (k, v) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        query.push((percent_decode(k, true)?, percent_decode(v, true)?));
    }
    Ok((path, query))
}

fn percent_decode(s: &[u8], plus_is_space: bool) -> Result<String, HttpError> {
    fn hex(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'%' => {
                let (Some(&h), Some(&l)) = (s.get(i + 1), s.get(i + 2)) else {
                    return Err(HttpError::BadRequest("truncated percent escape"));
                };
                let (Some(h), Some(l)) = (hex(h), hex(l)) else {
                    return Err(HttpError::BadRequest("bad percent escape"));
                };
                out.push(h << 4 | l);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| HttpError::BadRequest("percent escape is not UTF-8"))
}

fn parse_header(line: &[u8]) -> Result<(String, String), HttpError> {
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or(HttpError::BadRequest("header without colon"))?;
    let name = &line[..colon];
    if name.is_empty() || !name.iter().copied().all(is_tchar) {
        // Also rejects obs-fold continuation lines and whitespace before the colon.
        return Err(HttpError::BadRequest("malformed header name"));
    }
    let value = line[colon + 1..].trim_ascii();
    Ok((
        String::from_utf8_lossy(name).into_owned(),
        String::from_utf8_lossy(value).into_owned(),
    ))
}

/// The side effect the server performs before [`route`] for this request, if any
/// (`/commands/stat_reset`, `/commands/connection_stat_reset` and their aliases).
pub fn action_for(req: &HttpRequest) -> Option<AdminAction> {
    command_action(command_segment(&req.path)?)
}

/// `<name>` of `/commands/<name>` (one trailing slash tolerated).
fn command_segment(path: &str) -> Option<&str> {
    let name = path.strip_prefix("/commands/")?;
    let name = name.strip_suffix('/').unwrap_or(name);
    (!name.is_empty()).then_some(name)
}

/// Answers a request: `/metrics` (Prometheus text), `/commands` (the command list with links),
/// `/commands/<name or alias>` (the command's JSON; unknown → 404 with a JSON error), anything
/// else 404. HEAD gets the same headers without the body.
pub fn route(req: &HttpRequest, stats: &ServerStats, metrics: &Metrics) -> HttpResponse {
    let mut response = match req.path.as_str() {
        "/metrics" => HttpResponse::new(
            200,
            PROMETHEUS_CONTENT_TYPE,
            render_prometheus(stats, metrics).into_bytes(),
        ),
        "/commands" | "/commands/" => {
            let commands: Vec<Value> = command_names()
                .into_iter()
                .map(|(name, aliases)| {
                    json!({"name": name, "aliases": aliases, "link": format!("/commands/{name}")})
                })
                .collect();
            HttpResponse::json(200, &json!({ "commands": commands }))
        }
        path => match command_segment(path) {
            Some(name) => match render_json(name, stats) {
                Some(v) => HttpResponse::json(200, &v),
                None => HttpResponse::json(
                    404,
                    &json!({"command": name, "error": format!("Unknown command: {name}")}),
                ),
            },
            None => HttpResponse::text(404, "Not Found\n".to_owned()),
        },
    };
    response.head_only = req.method == Method::Head;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Option<HttpRequest>, HttpError> {
        parse_request_head(s.as_bytes())
    }

    fn get(path: &str) -> HttpRequest {
        parse(&format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"))
            .unwrap()
            .unwrap()
    }

    #[test]
    fn parses_a_simple_get() {
        let raw = "GET /commands/mntr?x=1&y=a+b%21&z HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent:  curl/8 \r\n\r\nBODY";
        let req = parse(raw).unwrap().unwrap();
        assert_eq!(req.method, Method::Get);
        assert_eq!(req.path, "/commands/mntr");
        assert_eq!(
            req.query,
            vec![
                ("x".to_owned(), "1".to_owned()),
                ("y".to_owned(), "a b!".to_owned()),
                ("z".to_owned(), String::new())
            ]
        );
        assert_eq!(req.minor_version, 1);
        assert_eq!(req.header("host"), Some("localhost:8080"));
        assert_eq!(req.header("USER-AGENT"), Some("curl/8"));
        assert_eq!(req.head_len, raw.len() - 4);
    }

    #[test]
    fn accepts_lf_only_leading_blank_lines_and_absolute_form() {
        let req = parse("\r\n\nHEAD /metrics HTTP/1.0\n\n").unwrap().unwrap();
        assert_eq!(req.method, Method::Head);
        assert_eq!(req.path, "/metrics");
        assert_eq!(req.minor_version, 0);
        let req = parse("GET http://Host:8080/commands/a%2Fb HTTP/1.1\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(req.path, "/commands/a/b");
        let req = parse("GET http://host HTTP/1.1\r\n\r\n").unwrap().unwrap();
        assert_eq!(req.path, "/");
        let req = parse("GET http://host?a=b HTTP/1.1\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(req.path, "/");
        assert_eq!(req.query, vec![("a".to_owned(), "b".to_owned())]);
    }

    #[test]
    fn partial_heads_need_more_bytes() {
        let full = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
        for n in 0..full.len() {
            assert_eq!(parse_request_head(&full[..n]), Ok(None), "prefix {n}");
        }
        assert!(parse_request_head(full).unwrap().is_some());
    }

    #[test]
    fn oversize_heads_are_rejected() {
        let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
        big.resize(MAX_HEAD_BYTES + 1, b'a');
        assert_eq!(parse_request_head(&big), Err(HttpError::HeadTooLarge));
        big.extend_from_slice(b"\r\n\r\n");
        assert_eq!(parse_request_head(&big), Err(HttpError::HeadTooLarge));
        // Exactly at the limit is fine.
        let mut ok = b"GET / HTTP/1.1\r\nX: ".to_vec();
        ok.resize(MAX_HEAD_BYTES - 4, b'a');
        ok.extend_from_slice(b"\r\n\r\n");
        assert_eq!(ok.len(), MAX_HEAD_BYTES);
        assert!(parse_request_head(&ok).unwrap().is_some());
        // Endless blank-line prefix.
        assert_eq!(
            parse_request_head(&vec![b'\n'; MAX_HEAD_BYTES + 1]),
            Err(HttpError::HeadTooLarge)
        );
    }

    #[test]
    fn bad_heads_are_rejected() {
        for (raw, want) in [
            ("POST /metrics HTTP/1.1\r\n\r\n", 405),
            ("DELETE / HTTP/1.1\r\n\r\n", 405),
            ("get /metrics HTTP/1.1\r\n\r\n", 405),
            ("GET /metrics HTTP/2.0\r\n\r\n", 505),
            ("GET /metrics HTTP/1.1 extra\r\n\r\n", 400),
            ("GET  /metrics HTTP/1.1\r\n\r\n", 400),
            ("GET /metrics\r\n\r\n", 400),
            ("GET /metrics HTTP/1\r\n\r\n", 400),
            ("G(T / HTTP/1.1\r\n\r\n", 400),
            ("GET metrics HTTP/1.1\r\n\r\n", 400),
            ("GET * HTTP/1.1\r\n\r\n", 400),
            ("GET /a%zz HTTP/1.1\r\n\r\n", 400),
            ("GET /a%2 HTTP/1.1\r\n\r\n", 400),
            ("GET /a%ff HTTP/1.1\r\n\r\n", 400),
            ("GET /a%00 HTTP/1.1\r\n\r\n", 400),
            ("GET /?a=%g0 HTTP/1.1\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nNoColon\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nName : x\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nA: b\x00c\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nA: b\rc\r\n\r\n", 400),
        ] {
            match parse(raw) {
                Err(e) => assert_eq!(e.status(), want, "{raw:?}: {e}"),
                Ok(r) => panic!("{raw:?} accepted: {r:?}"),
            }
        }
        let e = HttpError::MethodNotAllowed.to_response();
        let bytes = String::from_utf8(e.to_bytes()).unwrap();
        assert!(bytes.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
        assert!(bytes.contains("\r\nAllow: GET, HEAD\r\n"));
    }

    #[test]
    fn never_panics_on_arbitrary_bytes() {
        // xorshift64*: deterministic, no dependency.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_f491_4f6c_dd1d)
        };
        let alphabet = b"GET HEAD/?%&=+#:\r\n\t HTTP/1.01azAZ\x00\x7f\xff\xc3\xa9";
        let seeds: [&[u8]; 4] = [
            b"GET /commands/mntr HTTP/1.1\r\nHost: x\r\n\r\n",
            b"HEAD /metrics?x=%41 HTTP/1.0\n\n",
            b"GET http://h:1/commands/ HTTP/1.1\r\n\r\n",
            b"",
        ];
        let stats = ServerStats::new("3.8.0");
        let metrics = Metrics::new();
        for round in 0..20_000 {
            let len = (next() % 96) as usize;
            let mut buf: Vec<u8> = if round % 2 == 0 {
                (0..len).map(|_| next() as u8).collect()
            } else {
                let mut b = seeds[round % seeds.len()].to_vec();
                for _ in 0..(next() % 4) {
                    let c = alphabet[(next() as usize) % alphabet.len()];
                    if b.is_empty() {
                        b.push(c);
                    } else {
                        let at = (next() as usize) % b.len();
                        match next() % 3 {
                            0 => b[at] = c,
                            1 => b.insert(at, c),
                            _ => {
                                b.remove(at);
                            }
                        }
                    }
                }
                b
            };
            if round % 7 == 0 {
                buf.extend_from_slice(b"\r\n\r\n");
            }
            if let Ok(Some(req)) = parse_request_head(&buf) {
                assert!(req.head_len <= buf.len());
                assert!(req.path.starts_with('/'));
                let _ = action_for(&req);
                let _ = route(&req, &stats, &metrics).to_bytes();
            }
        }
    }

    #[test]
    fn routes_metrics() {
        let m = Metrics::new();
        let r = route(&get("/metrics"), &ServerStats::new("v"), &m);
        assert_eq!(r.status, 200);
        assert_eq!(r.content_type, PROMETHEUS_CONTENT_TYPE);
        let text = String::from_utf8(r.body.clone()).unwrap();
        assert!(text.contains("# TYPE wazoo_requests_total counter"));
        let bytes = r.to_bytes();
        let head_end = bytes.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let head = std::str::from_utf8(&bytes[..head_end]).unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(head.contains(&format!("\r\nContent-Length: {}\r\n", r.body.len())));
        assert!(head.contains("\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
        assert!(head.ends_with("\r\nConnection: close\r\n\r\n"));
        assert_eq!(&bytes[head_end..], &r.body[..]);
    }

    #[test]
    fn head_keeps_length_drops_body() {
        let req = parse("HEAD /commands/ruok HTTP/1.1\r\n\r\n")
            .unwrap()
            .unwrap();
        let r = route(&req, &ServerStats::new("v"), &Metrics::new());
        assert_eq!(r.status, 200);
        let bytes = String::from_utf8(r.to_bytes()).unwrap();
        assert!(bytes.contains(&format!("Content-Length: {}\r\n", r.body.len())));
        assert!(bytes.ends_with("\r\n\r\n"));
        assert!(!r.body.is_empty());
    }

    #[test]
    fn routes_commands() {
        let stats = ServerStats::new("3.8.0-wazoo-0.1.0");
        let m = Metrics::new();
        for path in ["/commands", "/commands/"] {
            let r = route(&get(path), &stats, &m);
            assert_eq!(r.status, 200);
            assert_eq!(r.content_type, "application/json");
            let v: Value = serde_json::from_slice(&r.body).unwrap();
            let list = v["commands"].as_array().unwrap();
            assert!(
                list.contains(&json!({"name": "monitor", "aliases": ["mntr"],
                                          "link": "/commands/monitor"}))
            );
        }
        for path in ["/commands/mntr", "/commands/monitor", "/commands/monitor/"] {
            let r = route(&get(path), &stats, &m);
            assert_eq!(r.status, 200, "{path}");
            let v: Value = serde_json::from_slice(&r.body).unwrap();
            assert_eq!(v["command"], "monitor");
            assert_eq!(v["version"], "3.8.0-wazoo-0.1.0");
        }
        let r = route(&get("/commands/nope"), &stats, &m);
        assert_eq!(r.status, 404);
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            v,
            json!({"command": "nope", "error": "Unknown command: nope"})
        );
        for path in ["/", "/metricsx", "/commandsx", "/commands//"] {
            assert_eq!(route(&get(path), &stats, &m).status, 404, "{path}");
        }
    }

    #[test]
    fn actions_for_reset_commands() {
        assert_eq!(
            action_for(&get("/commands/srst")),
            Some(AdminAction::ResetServerStats)
        );
        assert_eq!(
            action_for(&get("/commands/connection_stat_reset/")),
            Some(AdminAction::ResetConnectionStats)
        );
        assert_eq!(action_for(&get("/commands/mntr")), None);
        assert_eq!(action_for(&get("/metrics")), None);
    }
}
