//! The contract's table: each fixture in `events/` and each kind of bad input, with what the table holds after.

use super::*;
use devtools::{FIXTURES, SHAPES};

#[test]
fn every_fixture_gets_its_status_and_the_table_holds_one_row_per_shape() {
    let db = database();
    let app = app_for(&db);
    for shape in SHAPES {
        let mut saved_id = None;
        for (name, expected) in FIXTURES {
            let answer = call(&app, fixture(shape, name).unwrap());
            assert_eq!(answer.status, expected, "{shape}/{name}: {}", answer.body);
            let response = &answer.response;
            for (header, value) in [
                ("Content-Type", "application/json"),
                ("Cache-Control", "no-store"),
                ("X-Content-Type-Options", "nosniff"),
                ("Referrer-Policy", "no-referrer"),
            ] {
                assert_eq!(response["headers"][header], value, "{shape}/{name}");
            }
            assert_eq!(response["isBase64Encoded"], false);
            // Payload 2.0 answers carry an empty cookie list (cargo-lambda's HTTP front requires one); REST
            // answers stay without it.
            let cookies = response.get("cookies");
            match shape {
                "rest-api" => assert_eq!(cookies, None, "{shape}/{name}"),
                _ => assert_eq!(cookies, Some(&serde_json::json!([])), "{shape}/{name}"),
            }
            match name {
                "success" => saved_id = answer.body["id"].as_i64(),
                "repeat" => assert_eq!(
                    answer.body["id"].as_i64(),
                    saved_id,
                    "{shape}: a repeat gets the first id"
                ),
                _ => {}
            }
        }
    }
    let rows = db.rows().unwrap();
    assert_eq!(
        rows.len(),
        3,
        "one row per shape's success, nothing from any other fixture: {rows:?}"
    );
    for (shape, (_, code, state)) in SHAPES.iter().zip(&rows) {
        let event = fixture(shape, "success").unwrap();
        let request = HttpRequest::from_event(&crate::event::tests::parse(&event)).unwrap();
        assert_eq!(Some(code.as_str()), request.values("code").next());
        assert_eq!(Some(state.as_str()), request.values("state").next());
    }
}

#[test]
fn success_body_is_exactly_the_contract() {
    let db = database();
    let app = app_for(&db);
    let answer = call(&app, callback_event("abc", &sign("p1")));
    assert_eq!(answer.status, 200);
    let id = db.rows().unwrap()[0].0;
    assert_eq!(
        answer.response["body"],
        format!(r#"{{"ok":true,"message":"Saved","id":{id}}}"#)
    );
    assert_eq!(db.rows().unwrap(), [(id, "abc".to_owned(), sign("p1"))]);
}

#[test]
fn bad_parameters_are_400_naming_the_parameter_and_store_nothing() {
    let db = database();
    let app = app_for(&db);
    let s = sign("p");
    let long_code = "c".repeat(params::MAX_CODE_LEN + 1);
    let long_state = format!("{}.{}", "p".repeat(600), "s".repeat(43));
    let cases = [
        (String::new(), "Missing params: code, state"),
        (format!("state={s}"), "Missing params: code"),
        ("code=abc".to_owned(), "Missing params: state"),
        (format!("code=&state={s}"), "Missing params: code"),
        ("code=abc&state=".to_owned(), "Missing params: state"),
        (format!("code=a&code=b&state={s}"), "Repeated param: code"),
        (
            format!("code=a&state={s}&state={s}"),
            "Repeated param: state",
        ),
        (
            format!("code={long_code}&state={s}"),
            "Oversized param: code",
        ),
        (
            format!("code=abc&state={long_state}"),
            "Oversized param: state",
        ),
        (format!("code=a%0Ab&state={s}"), "Malformed param: code"),
        (
            "code=abc&state=%3Cscript%3E".to_owned(),
            "Malformed param: state",
        ),
        (
            "error=access_denied&error_description=No+thanks".to_owned(),
            "Authorization declined: access_denied",
        ),
        (
            format!("code=abc&state={s}&error=server_error"),
            "Authorization declined: server_error",
        ),
        ("error=%3Cscript%3E".to_owned(), "Authorization declined"),
        // An empty error is no error: the other parameters decide.
        ("error=&state=x".to_owned(), "Missing params: code"),
    ];
    for (query, message) in cases {
        call(&app, http_event("GET", &query)).assert_error(400, message);
    }
    assert!(db.rows().unwrap().is_empty());
}

#[test]
fn an_empty_error_counts_as_missing_like_any_empty_value() {
    let db = database();
    let app = app_for(&db);
    let answer = call(
        &app,
        http_event("GET", &format!("error=&code=abc&state={}", sign("p"))),
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(db.rows().unwrap().len(), 1);
}

#[test]
fn events_that_are_not_http_are_400() {
    let app = app_for(&database());
    for event in [
        serde_json::json!({}),
        serde_json::json!({"Records": []}),
        serde_json::json!(null),
        serde_json::json!("code=a"),
        serde_json::json!({"httpMethod": 1}),
    ] {
        call(&app, event).assert_error(400, "Bad request");
    }
}

#[test]
fn methods_other_than_get_are_405() {
    let db = database();
    let app = app_for(&db);
    for method in ["POST", "PUT", "DELETE", "HEAD", "OPTIONS", "get"] {
        let answer = call(
            &app,
            http_event(method, &format!("code=abc&state={}", sign("p"))),
        );
        answer.assert_error(405, "Method not allowed");
        assert_eq!(answer.response["headers"]["Allow"], "GET");
    }
    let mut rest = fixture("rest-api", "success").unwrap();
    rest["httpMethod"] = "POST".into();
    assert_eq!(call(&app, rest).status, 405);
    assert!(db.rows().unwrap().is_empty());
}
