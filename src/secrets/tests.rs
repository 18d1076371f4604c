use super::*;

#[test]
fn parses_rds_json_and_plain_secrets() {
    let rds = r#"{"username":"app","password":"p@ss","engine":"postgres","host":"db.x","port":5432,"dbname":"shop"}"#;
    let secret = DatabaseSecret::parse("id", rds).unwrap();
    assert_eq!(secret.username.as_deref(), Some("app"));
    assert_eq!(secret.password, "p@ss");
    assert_eq!(
        (
            secret.host.as_deref(),
            secret.port,
            secret.dbname.as_deref()
        ),
        (Some("db.x"), Some(5432), Some("shop"))
    );
    let managed = DatabaseSecret::parse(
        "id",
        r#"{"username":"postgres","password":"x","port":"6432"}"#,
    )
    .unwrap();
    assert_eq!((managed.port, managed.host), (Some(6432), None));
    let plain = DatabaseSecret::parse("id", "just-a-password").unwrap();
    assert_eq!(
        (plain.password.as_str(), plain.username),
        ("just-a-password", None)
    );
    assert!(!format!("{secret:?}").contains("p@ss"));
}

#[test]
fn malformed_json_is_an_error_without_the_text() {
    for bad in [
        r#"{"username":"app","password":"#,
        r#"{"username":"app"}"#,
        "{not json secret-text",
    ] {
        let e = DatabaseSecret::parse("db", bad).unwrap_err();
        assert!(e.contains("\"db\"") && !e.contains("secret-text"), "{e}");
    }
}

#[test]
fn http_responses_plain_and_chunked() {
    let plain = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"a\":1}";
    assert_eq!(parse_response(plain), Some((200, b"{\"a\":1}".to_vec())));
    let chunked = b"HTTP/1.1 400 Bad Request\r\ntransfer-encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n";
    assert_eq!(parse_response(chunked), Some((400, b"{\"a\":1}".to_vec())));
    assert_eq!(parse_response(b"garbage"), None);
}
