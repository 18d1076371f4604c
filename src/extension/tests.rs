use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use super::*;

#[test]
fn http_responses_plain_and_chunked() {
    let plain = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"a\":1}";
    assert_eq!(parse_response(plain), Some((200, b"{\"a\":1}".to_vec())));
    let chunked = b"HTTP/1.1 400 Bad Request\r\ntransfer-encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n";
    assert_eq!(parse_response(chunked), Some((400, b"{\"a\":1}".to_vec())));
    assert_eq!(parse_response(b"garbage"), None);
}

/// An extension on a free port that answers each request with `answer`, run on its own thread.
fn extension(answer: impl Fn(&mut std::net::TcpStream) + Send + 'static) -> SecretsExtension {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().map_while(Result::ok) {
            let mut request = [0u8; 1024];
            let _ = stream.read(&mut request);
            answer(&mut stream);
        }
    });
    SecretsExtension { port, token: None }
}

#[test]
fn a_trickling_answer_is_cut_at_the_deadline() {
    let slow = extension(|stream| {
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\n\r\n");
        for _ in 0..400 {
            if stream.write_all(b" ").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let budget = Duration::from_millis(400);
    let started = Instant::now();
    let error = slow.secret_string("s", started + budget).unwrap_err();
    let took = started.elapsed();
    assert!(error.contains("did not answer"), "{error}");
    // The server would take 20 s; every read gets only what is left of the one deadline, so the whole read
    // ends with it (the upper bound leaves a busy machine seconds of slack, far below the 20 s).
    assert!(
        took >= budget && took < budget + Duration::from_secs(5),
        "{took:?}"
    );
}

#[test]
fn an_oversized_answer_is_refused() {
    let huge = extension(|stream| {
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\n\r\n{\"SecretString\":\"");
        let block = vec![b'a'; 64 * 1024];
        for _ in 0..16 {
            if stream.write_all(&block).is_err() {
                return;
            }
        }
        let _ = stream.write_all(b"\"}");
    });
    let error = huge
        .secret_string("s", Instant::now() + Duration::from_secs(20))
        .unwrap_err();
    assert!(error.contains("larger than"), "{error}");
}

#[test]
fn a_secret_string_is_read_and_redacted() {
    let ok = extension(|stream| {
        let body = r#"{"Name":"s","SecretString":"hunter2"}"#;
        let _ = write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
    });
    let secret = ok
        .secret_string("s", Instant::now() + Duration::from_secs(20))
        .unwrap();
    assert_eq!(secret.expose(), "hunter2");
    assert!(!format!("{secret:?}").contains("hunter2"));
}
