//! The handler in-process, against a PostgreSQL 17 cluster the tests start: every row of the D3 contract, each
//! checking what the table holds afterwards.

use super::*;
use crate::state::StateKey;
use devtools::postgres::{self, TestDatabase};
use devtools::{FIXTURES, LOCAL_STATE_SECRET, SHAPES, fixture};
use lambda_runtime::Context;

fn database() -> TestDatabase {
    postgres::shared()
        .and_then(|c| c.create_database())
        .unwrap()
}

/// An app configured like a deployed instance: the database's PG* variables, the local secret, and `extra`.
fn app_with(env: Vec<(String, String)>, extra: &[(&str, &str)]) -> App {
    let mut env = env;
    env.push(("EXPECTED_STATE_SECRET".into(), LOCAL_STATE_SECRET.into()));
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let var = move |name: &str| {
        env.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    App {
        config: Ready::from_lookup(var),
        function_name: "test".into(),
    }
}

fn app_for(db: &TestDatabase) -> App {
    app_with(db.env(), &[])
}

/// An app whose database is a port nobody listens on: any request that reached it would fail with 500.
fn app_without_database() -> App {
    let port = postgres::free_port().unwrap().to_string();
    app_with(
        vec![
            ("PGHOST".into(), "127.0.0.1".into()),
            ("PGPORT".into(), port),
            ("PGUSER".into(), "x".into()),
        ],
        &[],
    )
}

fn sign(payload: &str) -> String {
    StateKey::new(LOCAL_STATE_SECRET)
        .unwrap()
        .sign(payload)
        .unwrap()
}

/// An HTTP API (2.0) event for `raw_query`.
fn http_event(method: &str, raw_query: &str) -> Value {
    let mut event = fixture("http-api", "success").unwrap();
    event["rawQueryString"] = raw_query.into();
    event["requestContext"]["http"]["method"] = method.into();
    event
}

/// The handler on a runtime of its own, as in `serve`: the tests' own blocking clients stay outside it (D6).
fn call(app: &App, event: Value) -> (u16, Value, Value) {
    runtime().block_on(call_async(app, event))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn call_async(app: &App, event: Value) -> (u16, Value, Value) {
    let response = handle(app, LambdaEvent::new(event, Context::default()))
        .await
        .unwrap();
    let status = response["statusCode"].as_u64().unwrap() as u16;
    let body: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
    (status, body, response)
}

fn assert_error(status: u16, body: &Value, expected_status: u16, message_part: &str) {
    assert_eq!(status, expected_status, "{body}");
    assert_eq!(body["ok"], false, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains(message_part),
        "{message:?} should contain {message_part:?}"
    );
    assert_eq!(
        body.as_object().unwrap().len(),
        2,
        "an error body is exactly ok and message: {body}"
    );
}

#[test]
fn every_fixture_gets_its_status_and_the_table_holds_one_row_per_shape() {
    let db = database();
    let app = app_for(&db);
    for shape in SHAPES {
        let mut saved_id = None;
        for (name, expected) in FIXTURES {
            let (status, body, response) = call(&app, fixture(shape, name).unwrap());
            assert_eq!(status, expected, "{shape}/{name}: {body}");
            for (header, value) in [
                ("Content-Type", "application/json"),
                ("Cache-Control", "no-store"),
                ("X-Content-Type-Options", "nosniff"),
                ("Referrer-Policy", "no-referrer"),
            ] {
                assert_eq!(response["headers"][header], value, "{shape}/{name}");
            }
            assert_eq!(response["isBase64Encoded"], false);
            match name {
                "success" => saved_id = body["id"].as_i64(),
                "repeat" => assert_eq!(
                    body["id"].as_i64(),
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
        let request = HttpRequest::from_event(&event).unwrap();
        assert_eq!(Some(code.as_str()), request.values("code").next());
        assert_eq!(Some(state.as_str()), request.values("state").next());
    }
}

#[test]
fn success_body_is_exactly_the_contract() {
    let db = database();
    let app = app_for(&db);
    let (status, _, response) = call(
        &app,
        http_event("GET", &format!("code=abc&state={}", sign("p1"))),
    );
    assert_eq!(status, 200);
    let id = db.rows().unwrap()[0].0;
    assert_eq!(
        response["body"],
        format!(r#"{{"ok":true,"message":"Saved","id":{id}}}"#)
    );
    assert_eq!(db.rows().unwrap(), [(id, "abc".to_owned(), sign("p1"))]);
}

#[test]
fn repeats_return_the_same_id_and_conflicts_change_nothing() {
    let db = database();
    let app = app_for(&db);
    let (s1, s2) = (sign("mall:n1:1"), sign("mall:n2:1"));
    let (status, first, _) = call(&app, http_event("GET", &format!("code=c1&state={s1}")));
    assert_eq!(status, 200);
    for _ in 0..3 {
        let (status, again, _) = call(&app, http_event("GET", &format!("code=c1&state={s1}")));
        assert_eq!((status, &again), (200, &first));
    }
    let (status, body, _) = call(&app, http_event("GET", &format!("code=c1&state={s2}")));
    assert_error(status, &body, 409, "code");
    let (status, body, _) = call(&app, http_event("GET", &format!("code=c2&state={s1}")));
    assert_error(status, &body, 409, "state");
    assert_eq!(
        db.rows().unwrap(),
        [(first["id"].as_i64().unwrap(), "c1".to_owned(), s1)]
    );
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
    ];
    for (query, message) in cases {
        let (status, body, _) = call(&app, http_event("GET", &query));
        assert_error(status, &body, 400, message);
    }
    assert!(db.rows().unwrap().is_empty());
}

#[test]
fn events_that_are_not_http_are_400() {
    let app = app_for(&database());
    for event in [
        json!({}),
        json!({"Records": []}),
        json!(null),
        json!("code=a"),
        json!({"httpMethod": 1}),
    ] {
        let (status, body, _) = call(&app, event);
        assert_error(status, &body, 400, "Bad request");
    }
}

#[test]
fn forged_states_are_403_before_the_database_is_touched() {
    // The database here does not exist: reaching it would be a 500, not a 403.
    let app = app_without_database();
    let good = sign("mall:nonce:1");
    let other_key = StateKey::new("guessed")
        .unwrap()
        .sign("mall:nonce:1")
        .unwrap();
    let truncated = &good[..good.len() - 1];
    for state in [
        other_key.as_str(),
        "no-signature",
        "mall:nonce:1.",
        truncated,
        "a.bad",
    ] {
        let (status, body, _) = call(&app, http_event("GET", &format!("code=abc&state={state}")));
        assert_error(status, &body, 403, "Invalid state signature");
    }
}

#[test]
fn methods_other_than_get_are_405() {
    let db = database();
    let app = app_for(&db);
    for method in ["POST", "PUT", "DELETE", "HEAD", "OPTIONS", "get"] {
        let (status, body, response) = call(
            &app,
            http_event(method, &format!("code=abc&state={}", sign("p"))),
        );
        assert_error(status, &body, 405, "Method not allowed");
        assert_eq!(response["headers"]["Allow"], "GET");
    }
    let mut rest = fixture("rest-api", "success").unwrap();
    rest["httpMethod"] = "POST".into();
    assert_eq!(call(&app, rest).0, 405);
    assert!(db.rows().unwrap().is_empty());
}

#[test]
fn without_a_state_secret_every_request_is_refused() {
    let db = database();
    let app = App {
        config: Err("EXPECTED_STATE_SECRET is not set".into()),
        function_name: "test".into(),
    };
    for (shape, name) in [
        ("http-api", "success"),
        ("rest-api", "missing-code"),
        ("function-url", "post"),
    ] {
        let (status, body, _) = call(&app, fixture(shape, name).unwrap());
        assert_error(status, &body, 500, "server misconfigured");
    }
    assert!(db.rows().unwrap().is_empty());
}

#[test]
fn a_database_failure_is_a_plain_500_that_names_nothing_internal() {
    let app = app_without_database();
    let port = match &app.config {
        Ok(ready) => ready.database.settings().target(None),
        Err(_) => unreachable!(),
    };
    let (status, body, response) = call(
        &app,
        http_event("GET", &format!("code=abc&state={}", sign("p"))),
    );
    assert_error(status, &body, 500, "Database unavailable");
    let text = response.to_string();
    for secret in ["127.0.0.1", port.as_str(), "refused", "postgres"] {
        assert!(!text.contains(secret), "{secret:?} leaked: {text}");
    }
}

#[test]
fn a_missing_table_is_a_500_and_the_next_request_still_works() {
    let db = database();
    let app = app_for(&db);
    let mut admin = db.connect().unwrap();
    admin
        .batch_execute("alter table cafe24.oauth_authorization_codes rename to moved")
        .unwrap();
    let (status, body, _) = call(
        &app,
        http_event("GET", &format!("code=abc&state={}", sign("p"))),
    );
    assert_error(status, &body, 500, "Database unavailable");
    admin
        .batch_execute("alter table cafe24.moved rename to oauth_authorization_codes")
        .unwrap();
    let (status, _, _) = call(
        &app,
        http_event("GET", &format!("code=abc&state={}", sign("p"))),
    );
    assert_eq!(status, 200);
    assert_eq!(db.rows().unwrap().len(), 1);
}

#[test]
fn concurrent_identical_requests_store_one_row_and_agree_on_its_id() {
    let db = database();
    let event = http_event("GET", &format!("code=race&state={}", sign("race")));
    // Eight instances, each with its own connection: their database work runs on blocking threads at once.
    let apps: Vec<&'static App> = (0..8)
        .map(|_| &*Box::leak(Box::new(app_for(&db))))
        .collect();
    let answers = runtime().block_on(async {
        let tasks: Vec<_> = apps
            .iter()
            .map(|app| tokio::spawn(call_async(app, event.clone())))
            .collect();
        let mut answers = Vec::new();
        for task in tasks {
            answers.push(task.await.unwrap());
        }
        answers
    });
    let mut ids = Vec::new();
    for (status, body, _) in answers {
        assert_eq!(status, 200, "{body}");
        ids.push(body["id"].clone());
    }
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
    assert_eq!(db.rows().unwrap().len(), 1);
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn state_age_is_checked_only_when_configured_and_before_the_database() {
    let db = database();
    let at = |t: u64| sign(&format!("demomall:n0nce{t}:{t}"));
    let event = |code: &str, state: &str| http_event("GET", &format!("code={code}&state={state}"));

    // Unset: an old state or one outside the convention is fine, as before.
    let plain = app_for(&db);
    assert_eq!(call(&plain, event("old", &at(1_000_000_000))).0, 200);
    assert_eq!(call(&plain, event("free", &sign("anything"))).0, 200);

    let strict = app_with(db.env(), &[("STATE_MAX_AGE_SECONDS", "600")]);
    // A margin of a few seconds either side keeps the edges away from the clock ticking during the test.
    assert_eq!(
        call(&strict, event("inside", &at(now() - 595))).0,
        200,
        "just inside"
    );
    assert_eq!(call(&strict, event("fresh", &at(now()))).0, 200);
    assert_eq!(
        call(
            &strict,
            event("skew", &at(now() + state::CLOCK_SKEW_SECONDS - 5))
        )
        .0,
        200
    );
    let (status, body, _) = call(&strict, event("outside", &at(now() - 605)));
    assert_error(status, &body, 403, "Expired state");
    let (status, body, _) = call(
        &strict,
        event("future", &at(now() + state::CLOCK_SKEW_SECONDS + 5)),
    );
    assert_error(status, &body, 403, "issued in the future");
    let (status, body, _) = call(&strict, event("free2", &sign("anything")));
    assert_error(status, &body, 403, "mall_id:nonce:issued_at");
    let codes: Vec<String> = db
        .rows()
        .unwrap()
        .into_iter()
        .map(|(_, code, _)| code)
        .collect();
    assert_eq!(codes, ["old", "free", "inside", "fresh", "skew"]);

    // Refused before the database: with no database at all, still 403.
    let port = postgres::free_port().unwrap().to_string();
    let no_db = app_with(
        vec![("PGPORT".into(), port), ("PGUSER".into(), "x".into())],
        &[("STATE_MAX_AGE_SECONDS", "60")],
    );
    assert_eq!(call(&no_db, event("x", &at(now() - 3600))).0, 403);
}

#[test]
fn redirects_answer_302_in_every_shape_and_store_the_same() {
    let db = database();
    let app = app_with(
        db.env(),
        &[
            ("SUCCESS_REDIRECT_URL", "https://app.example/installed"),
            ("FAILURE_REDIRECT_URL", "https://app.example/failed?lang=ko"),
        ],
    );
    for shape in SHAPES {
        let (_, _, saved) = call(&app, fixture(shape, "success").unwrap());
        assert_eq!(saved["statusCode"], 302, "{shape}");
        assert_eq!(
            saved["headers"]["Location"],
            "https://app.example/installed"
        );
        assert_eq!(saved["headers"]["Referrer-Policy"], "no-referrer");
        let (_, _, repeat) = call(&app, fixture(shape, "repeat").unwrap());
        assert_eq!(
            repeat["headers"]["Location"],
            "https://app.example/installed"
        );
        for (name, reason) in [
            ("forged-state", "forged_state"),
            ("missing-code", "bad_params"),
            ("declined", "declined"),
            ("conflict", "code_taken"),
        ] {
            let (_, _, failed) = call(&app, fixture(shape, name).unwrap());
            assert_eq!(failed["statusCode"], 302, "{shape}/{name}");
            let location = failed["headers"]["Location"].as_str().unwrap();
            assert_eq!(
                location,
                format!("https://app.example/failed?lang=ko&reason={reason}")
            );
        }
    }
    assert_eq!(
        db.rows().unwrap().len(),
        3,
        "exactly what the JSON contract stores"
    );

    // Only a success URL: failures keep the JSON contract.
    let success_only = app_with(
        db.env(),
        &[("SUCCESS_REDIRECT_URL", "https://app.example/ok")],
    );
    let (status, body, _) = call(&success_only, fixture("http-api", "forged-state").unwrap());
    assert_error(status, &body, 403, "Invalid state signature");

    // A server failure goes to the failure page with a generic reason.
    let port = postgres::free_port().unwrap().to_string();
    let down = app_with(
        vec![("PGPORT".into(), port), ("PGUSER".into(), "x".into())],
        &[("FAILURE_REDIRECT_URL", "https://app.example/failed")],
    );
    let (_, _, response) = call(
        &down,
        http_event("GET", &format!("code=a&state={}", sign("p"))),
    );
    assert_eq!(
        response["headers"]["Location"],
        "https://app.example/failed?reason=server_error"
    );
}

#[test]
fn a_bad_option_fails_closed() {
    let db = database();
    for (name, value) in [
        ("SUCCESS_REDIRECT_URL", "http://app.example/ok"),
        ("FAILURE_REDIRECT_URL", "not a url"),
        ("STATE_MAX_AGE_SECONDS", "ten"),
        ("STATE_MAX_AGE_SECONDS", "0"),
        ("PGPORT", "99999"),
    ] {
        let app = app_with(db.env(), &[(name, value)]);
        let why = app.config.as_ref().err().cloned().unwrap_or_default();
        assert!(why.contains(name), "the reason names {name}: {why:?}");
        let (status, body, _) = call(&app, fixture("http-api", "success").unwrap());
        assert_error(status, &body, 500, "server misconfigured");
    }
    assert!(db.rows().unwrap().is_empty());
}

mod properties {
    //! Arbitrary events and query strings never panic and always get a well-formed contract response.

    use super::*;
    use proptest::prelude::*;

    const CONTRACT_STATUSES: [u64; 6] = [200, 400, 403, 405, 409, 500];

    fn arbitrary_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            ".{0,20}".prop_map(Value::from),
            prop_oneof![
                Just("2.0"),
                Just("GET"),
                Just("POST"),
                Just("code"),
                Just("state")
            ]
            .prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("version".to_owned()),
                        Just("httpMethod".to_owned()),
                        Just("requestContext".to_owned()),
                        Just("http".to_owned()),
                        Just("method".to_owned()),
                        Just("rawQueryString".to_owned()),
                        Just("queryStringParameters".to_owned()),
                        Just("multiValueQueryStringParameters".to_owned()),
                        Just("elb".to_owned()),
                        "[a-zA-Z]{1,8}",
                    ],
                    inner,
                    0..6,
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Query strings built from pieces that matter: the two names, repeats, encodings, signed and forged states.
    fn arbitrary_query() -> impl Strategy<Value = String> {
        let name = prop_oneof![
            Just("code"),
            Just("state"),
            Just("error"),
            Just("x"),
            Just("")
        ];
        let value = prop_oneof![
            "[ -~]{0,40}",
            ".{0,20}",
            "[A-Za-z0-9:_~.-]{1,30}".prop_map(|p| sign(&p)),
            "[A-Za-z0-9:_~.-]{1,30}".prop_map(|p| format!("{p}.{}", "A".repeat(43))),
            Just("%".to_owned()),
            Just("%ZZ%00%FF+%2B".to_owned()),
        ];
        prop::collection::vec((name, value), 0..5).prop_map(|pairs| {
            pairs
                .iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect::<Vec<_>>()
                .join("&")
        })
    }

    fn assert_well_formed(response: &Value) {
        let status = response["statusCode"].as_u64().unwrap();
        assert!(CONTRACT_STATUSES.contains(&status), "{response}");
        assert_eq!(response["headers"]["Content-Type"], "application/json");
        assert_eq!(response["headers"]["Cache-Control"], "no-store");
        let body: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
        assert_eq!(body["ok"], status == 200, "{body}");
        assert!(body["message"].is_string(), "{body}");
        assert_eq!(body["id"].is_i64(), status == 200, "{body}");
    }

    fn respond_to(app: &App, event: Value) -> Value {
        runtime()
            .block_on(handle(app, LambdaEvent::new(event, Context::default())))
            .unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_events_get_a_contract_response(event in arbitrary_json()) {
            static APP: std::sync::OnceLock<App> = std::sync::OnceLock::new();
            let app = APP.get_or_init(|| app_for(&database()));
            assert_well_formed(&respond_to(app, event));
        }

        #[test]
        fn arbitrary_queries_in_every_shape_get_a_contract_response(
            query in arbitrary_query(),
            shape in 0..3usize,
            method in prop_oneof![Just("GET"), Just("POST"), Just("")],
        ) {
            static APP: std::sync::OnceLock<App> = std::sync::OnceLock::new();
            let app = APP.get_or_init(|| app_for(&database()));
            let mut event = fixture(SHAPES[shape], "success").unwrap();
            if event.get("rawQueryString").is_some() {
                event["rawQueryString"] = query.clone().into();
                event["requestContext"]["http"]["method"] = method.into();
            } else {
                let mut multi = serde_json::Map::new();
                for (name, value) in form_urlencoded::parse(query.as_bytes()) {
                    multi.entry(name.into_owned()).or_insert_with(|| json!([])).as_array_mut().unwrap().push(value.into_owned().into());
                }
                event["multiValueQueryStringParameters"] = Value::Object(multi);
                event["httpMethod"] = method.into();
            }
            assert_well_formed(&respond_to(app, event));
        }
    }
}
