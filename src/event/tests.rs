use super::*;
use serde_json::{Value, json};

/// As the runtime gives it to the handler: parsed from the event's text.
pub(crate) fn parse(event: &Value) -> Loose<Event> {
    serde_json::from_str(&event.to_string()).unwrap()
}

fn from_event(event: &Value) -> Result<HttpRequest, EventError> {
    HttpRequest::from_event(&parse(event))
}

fn fixture(name: &str) -> Value {
    let path = format!("{}/events/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

#[test]
fn detects_each_shape_from_the_fixtures() {
    for (file, shape) in [
        ("rest-api/success.json", Shape::RestApi),
        ("http-api/success.json", Shape::HttpApi),
        ("function-url/success.json", Shape::FunctionUrl),
    ] {
        let request = from_event(&fixture(file)).unwrap();
        assert_eq!(request.shape, shape, "{file}");
        assert_eq!(request.method, "GET");
        assert_eq!(request.values("code").count(), 1, "{file}");
        assert_eq!(request.values("state").count(), 1, "{file}");
    }
}

#[test]
fn v2_reads_the_raw_query_string_so_repeats_show() {
    let event = json!({"version": "2.0", "requestContext": {"http": {"method": "GET"}},
        "rawQueryString": "code=a%2Bb+c&code=x&state=s%3At",
        "queryStringParameters": {"code": "a+b c,x", "state": "s:t"}});
    let request = from_event(&event).unwrap();
    assert_eq!(request.values("code").collect::<Vec<_>>(), ["a+b c", "x"]);
    assert_eq!(request.values("state").collect::<Vec<_>>(), ["s:t"]);
}

#[test]
fn v1_prefers_the_multi_value_map() {
    let event = json!({"httpMethod": "GET", "requestContext": {},
        "queryStringParameters": {"code": "b"},
        "multiValueQueryStringParameters": {"code": ["a", "b"]}});
    let request = from_event(&event).unwrap();
    assert_eq!(request.values("code").collect::<Vec<_>>(), ["a", "b"]);
}

#[test]
fn v1_without_multi_value_map_and_null_parameters() {
    let event = json!({"httpMethod": "GET", "queryStringParameters": {"code": "c"}});
    assert_eq!(
        from_event(&event).unwrap().query,
        [("code".into(), "c".into())]
    );
    let event = json!({"httpMethod": "GET", "queryStringParameters": null,
        "multiValueQueryStringParameters": null});
    assert!(from_event(&event).unwrap().query.is_empty());
}

#[test]
fn load_balancer_values_are_decoded() {
    let event = json!({"httpMethod": "GET", "requestContext": {"elb": {"targetGroupArn": "arn"}},
        "queryStringParameters": {"code": "a%2Bb+c"}});
    let request = from_event(&event).unwrap();
    assert_eq!(request.shape, Shape::LoadBalancer);
    assert_eq!(request.values("code").collect::<Vec<_>>(), ["a+b c"]);
}

#[test]
fn rejects_what_is_not_an_http_event() {
    for event in [
        json!(null),
        json!([]),
        json!({}),
        json!({"version": "2.0"}),
        json!({"Records": []}),
    ] {
        assert_eq!(from_event(&event), Err(EventError::NotHttp), "{event}");
    }
    let event = json!({"httpMethod": "GET", "queryStringParameters": {"code": 5}});
    assert_eq!(from_event(&event), Err(EventError::MalformedQuery));
    let event = json!({"version": "2.0", "requestContext": {"http": {"method": "GET"}}, "rawQueryString": 1});
    assert_eq!(from_event(&event), Err(EventError::MalformedQuery));
}

#[test]
fn any_json_is_an_event_and_a_part_of_the_wrong_kind_is_a_clear_error() {
    // The runtime never fails to hand an event over: whatever arrives gets the contract's answer.
    for event in [
        json!(1),
        json!(-1.5),
        json!(true),
        json!("GET"),
        json!([{"httpMethod": "GET"}]),
        json!({"httpMethod": ["GET"]}),
        json!({"httpMethod": null}),
        json!({"version": 2, "requestContext": {"http": {"method": "GET"}}}),
        json!({"version": "2.0", "requestContext": "GET"}),
        json!({"version": "2.0", "requestContext": {"http": ["GET"]}}),
        json!({"version": "2.0", "requestContext": {"http": {"method": 1}}}),
    ] {
        assert_eq!(from_event(&event), Err(EventError::NotHttp), "{event}");
    }
    for event in [
        json!({"httpMethod": "GET", "multiValueQueryStringParameters": {"code": "a"}}),
        json!({"httpMethod": "GET", "multiValueQueryStringParameters": {"code": [null]}}),
        json!({"httpMethod": "GET", "multiValueQueryStringParameters": {"code": [["a"]]}}),
        json!({"httpMethod": "GET", "multiValueQueryStringParameters": []}),
        json!({"httpMethod": "GET", "queryStringParameters": {"code": null}}),
        json!({"httpMethod": "GET", "queryStringParameters": "code=a"}),
        json!({"version": "2.0", "requestContext": {"http": {"method": "GET"}},
            "queryStringParameters": {"code": {"a": 1}}}),
    ] {
        assert_eq!(
            from_event(&event),
            Err(EventError::MalformedQuery),
            "{event}"
        );
    }
}

#[test]
fn the_parts_read_are_found_among_any_others_and_the_rest_is_skipped() {
    let event = json!({"headers": {"version": "2.0", "httpMethod": "POST"}, "body": "{\"httpMethod\":1}",
        "requestContext": {"identity": {"elb": 1}, "domainName": "x.lambda-url.y", "http": {"path": "/"}},
        "httpMethod": "GET", "pathParameters": {"queryStringParameters": 1},
        "queryStringParameters": {"code": "c", "state": "s"}});
    let request = from_event(&event).unwrap();
    assert_eq!(request.shape, Shape::RestApi);
    assert_eq!(request.method, "GET");
    assert_eq!(
        request.query,
        [("code".into(), "c".into()), ("state".into(), "s".into())]
    );
}

#[test]
fn a_name_given_twice_in_a_parameters_object_counts_twice() {
    let event: Loose<Event> = serde_json::from_str(
        r#"{"httpMethod": "GET", "queryStringParameters": {"code": "a", "code": "b"}}"#,
    )
    .unwrap();
    let request = HttpRequest::from_event(&event).unwrap();
    assert_eq!(request.values("code").collect::<Vec<_>>(), ["a", "b"]);
}
