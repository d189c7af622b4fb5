//! HTTP on the SIP TCP listener (xhttp): `event_route[xhttp:request]`, `$hu`,
//! `xhttp_reply`, `jsonrpc_dispatch` and `url_skip`, on ksr and on Kamailio 5.6 with the
//! same cfg (tests/data/xhttp.cfg): the replies must be the same byte for byte, apart from
//! the server's name and the client's port.

mod common;
use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

fn http(port: u16, req: &[u8]) -> String {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return "(no connection)".into();
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(700)));
    let _ = s.write_all(req);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    // Until the server closes (set_reply_close) or goes quiet.
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&out).into_owned();
    text.lines()
        .map(|l| {
            if l.starts_with("Server: ") {
                "Server: S".to_string()
            } else if let Some(v) = l.strip_prefix("Sia: SIP/2.0/TCP 127.0.0.1:") {
                format!(
                    "Sia: SIP/2.0/TCP 127.0.0.1:{}",
                    if v.is_empty() { "?" } else { "P" }
                )
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn post(path: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn run(kamailio: bool) -> Vec<String> {
    let cfg = root().join("tests/data/xhttp.cfg");
    let s = if kamailio {
        start_kamailio(&cfg, &[])
    } else {
        start_ksr(&cfg, &[])
    };
    vec![
        http(
            s.port,
            b"GET /status?x=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: curl/8.0\r\nAccept: */*\r\n\r\n",
        ),
        http(
            s.port,
            &post("/RPC", r#"{"jsonrpc":"2.0","method":"core.echo","params":["a",7],"id":3}"#),
        ),
        http(
            s.port,
            &post("/RPC", r#"{"jsonrpc":"2.0","method":"no.such","id":4}"#),
        ),
        http(s.port, &post("/RPC", "{not json")),
        http(s.port, b"GET /skip/me HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
    ]
}

#[test]
fn xhttp_and_jsonrpc_over_http_match_kamailio() {
    let got = run(false);
    assert!(
        got[0].starts_with("HTTP/1.1 200 OK\nSia: SIP/2.0/TCP 127.0.0.1:P\nContent-Type: text/html\nServer: S\nContent-Length: "),
        "{got:#?}"
    );
    assert!(
        got[0]
            .ends_with("Wrong URL /status?x=1 [GET] ru=<null> ua=curl/8.0 cl=<null></body></html>"),
        "{got:#?}"
    );
    assert!(
        got[2].starts_with("HTTP/1.1 500 Method Not Found"),
        "{got:#?}"
    );
    assert_eq!(got[3], "", "an invalid JSON document gets no reply");
    if kamailio_available() {
        assert_eq!(got, run(true));
    }
}
