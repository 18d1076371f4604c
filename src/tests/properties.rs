//! Arbitrary events and query strings never panic and always get a well-formed contract response. The database
//! is up and configured, so no input may ever come to a 500.

use proptest::prelude::*;
use serde_json::json;

use super::*;
use devtools::SHAPES;

/// Every status an input can bring about; 500 is not one of them while the database works.
const CONTRACT_STATUSES: [u64; 5] = [200, 400, 403, 405, 409];

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
    call(app, event).response
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
