//! Slow and silent clients cannot hold the server: connections that do not finish their headers,
//! bodies that never arrive and idle keep-alive connections are closed by their timeouts, and
//! connections beyond `--max-connections` are refused at once with a 503.
//!
//! The timeouts are real time (the simulated clock is for the engine), set short here; each
//! read below is bounded so that a server that holds the connection fails the test instead of
//! hanging it.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;

/// Longer than any timeout set in these tests: reaching it means the server held on.
const BOUND: Duration = Duration::from_secs(30);

/// Reads until the server closes the connection; `Err` (with what was read) if it was still
/// open after `BOUND`.
fn read_until_closed(stream: &mut TcpStream) -> Result<String, String> {
    stream.set_read_timeout(Some(BOUND)).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Ok(String::from_utf8_lossy(&out).into_owned()),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                return Ok(String::from_utf8_lossy(&out).into_owned());
            }
            Err(e) => {
                return Err(format!(
                    "the server still held the connection after {BOUND:?} ({e}); read: {}",
                    String::from_utf8_lossy(&out)
                ));
            }
        }
    }
}

fn connect(s: &Server) -> TcpStream {
    let stream = TcpStream::connect(s.addr).expect("connect");
    stream.set_nodelay(true).unwrap();
    stream
}

fn start(args: &[&str]) -> Server {
    Server::start(ServerOptions {
        args: args.iter().map(|a| a.to_string()).collect(),
        ..ServerOptions::system_clock()
    })
}

#[test]
fn a_client_that_sends_half_its_headers_is_disconnected_after_the_header_timeout() {
    let s = start(&["--header-timeout", "1s"]);
    let mut slow = connect(&s);
    slow.write_all(b"POST /v1/track HTTP/1.1\r\nHost: waymark\r\nContent-Ty")
        .unwrap();
    // Others are served meanwhile.
    s.get("/healthz").ok();
    let answer = read_until_closed(&mut slow).expect("the half-sent request must be dropped");
    assert_eq!(answer, "", "nothing is answered to an incomplete request");
    // A connection that sends nothing at all is closed the same way.
    let mut silent = connect(&s);
    read_until_closed(&mut silent).expect("a silent connection must be dropped");
}

#[test]
fn a_body_that_does_not_arrive_in_time_is_answered_408_and_the_connection_closed() {
    let s = start(&["--body-timeout", "1s"]);
    let mut slow = connect(&s);
    slow.write_all(
        b"POST /v1/track HTTP/1.1\r\nHost: waymark\r\nContent-Type: application/json\r\n\
          Content-Length: 200\r\n\r\n{\"userId\": \"u1\", ",
    )
    .unwrap();
    let answer = read_until_closed(&mut slow).expect("the request must be answered and closed");
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "expected 408 Request Timeout, got: {answer}"
    );
    assert!(answer.contains("\"code\":\"body_timeout\""), "{answer}");
    // Nothing half-received was stored.
    assert!(s.find_contact_by_user("u1").is_none());
}

#[test]
fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    // The header timeout is long: the idle timeout alone closes the connection.
    let s = start(&["--idle-timeout", "1s", "--header-timeout", "60s"]);
    let mut client = connect(&s);
    client
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: waymark\r\n\r\n")
        .unwrap();
    let answer = read_until_closed(&mut client).expect("the idle connection must be closed");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("{\"status\":\"ok\"}"), "{answer}");
}

#[test]
fn beyond_max_connections_a_request_is_refused_at_once_and_served_once_slots_free() {
    let s = start(&["--max-connections", "20", "--header-timeout", "60s"]);
    // Twenty slow clients hold every slot (they would hold them for the header timeout).
    let mut slow: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut c = connect(&s);
            c.write_all(b"GET /healthz HTTP/1.1\r\nHost: wa").unwrap();
            c
        })
        .collect();
    let refused = reqwest::blocking::Client::new()
        .get(s.url("/healthz"))
        .timeout(BOUND)
        .send()
        .expect("a request beyond the limit is answered, not left hanging");
    assert_eq!(refused.status().as_u16(), 503);
    assert_eq!(
        refused
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let body: Value = refused.json().expect("a JSON error");
    assert_eq!(body["code"], "too_many_connections", "{body}");
    assert!(body["message"].as_str().is_some() && body["link"].as_str().is_some());

    // The slow clients go away; their slots free up as the server sees them close.
    slow.clear();
    let mut last = None;
    for _ in 0..200 {
        let r = reqwest::blocking::Client::new()
            .get(s.url("/healthz"))
            .timeout(BOUND)
            .send()
            .expect("answered");
        if r.status().is_success() {
            return;
        }
        last = Some(r.status());
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the slots were not freed: last status {last:?}");
}

#[test]
fn timeouts_and_the_connection_limit_are_checked_at_start() {
    for (flag, value) in [
        ("--header-timeout", "0s"),
        ("--body-timeout", "soon"),
        ("--idle-timeout", "2d"),
        ("--max-connections", "0"),
    ] {
        let out = std::process::Command::new(bin())
            .args(["serve", "--listen", "127.0.0.1:0", flag, value])
            .env("WAYMARK_DATA", tempfile::tempdir().unwrap().path())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{flag} {value} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(flag), "{flag} {value}: {err}");
    }
}

#[test]
fn shutdown_does_not_wait_for_slow_clients() {
    let mut s = start(&["--header-timeout", "300s", "--idle-timeout", "300s"]);
    let mut slow = connect(&s);
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: wa")
        .unwrap();
    let mut idle = connect(&s);
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: waymark\r\n\r\n")
        .unwrap();
    let mut first = [0u8; 12];
    idle.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    let status = s
        .terminate_within(BOUND)
        .expect("SIGTERM must not wait for the slow and idle connections' timeouts");
    assert!(status.success(), "{status}");
    assert!(s.wait_for_output("waymark stopped"), "{}", s.output());
}
