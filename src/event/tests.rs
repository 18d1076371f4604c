use super::*;
use serde_json::json;

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
        let request = HttpRequest::from_event(&fixture(file)).unwrap();
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
    let request = HttpRequest::from_event(&event).unwrap();
    assert_eq!(request.values("code").collect::<Vec<_>>(), ["a+b c", "x"]);
    assert_eq!(request.values("state").collect::<Vec<_>>(), ["s:t"]);
}

#[test]
fn v1_prefers_the_multi_value_map() {
    let event = json!({"httpMethod": "GET", "requestContext": {},
        "queryStringParameters": {"code": "b"},
        "multiValueQueryStringParameters": {"code": ["a", "b"]}});
    let request = HttpRequest::from_event(&event).unwrap();
    assert_eq!(request.values("code").collect::<Vec<_>>(), ["a", "b"]);
}

#[test]
fn v1_without_multi_value_map_and_null_parameters() {
    let event = json!({"httpMethod": "GET", "queryStringParameters": {"code": "c"}});
    assert_eq!(
        HttpRequest::from_event(&event).unwrap().query,
        [("code".into(), "c".into())]
    );
    let event = json!({"httpMethod": "GET", "queryStringParameters": null,
        "multiValueQueryStringParameters": null});
    assert!(HttpRequest::from_event(&event).unwrap().query.is_empty());
}

#[test]
fn load_balancer_values_are_decoded() {
    let event = json!({"httpMethod": "GET", "requestContext": {"elb": {"targetGroupArn": "arn"}},
        "queryStringParameters": {"code": "a%2Bb+c"}});
    let request = HttpRequest::from_event(&event).unwrap();
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
        assert_eq!(
            HttpRequest::from_event(&event),
            Err(EventError::NotHttp),
            "{event}"
        );
    }
    let event = json!({"httpMethod": "GET", "queryStringParameters": {"code": 5}});
    assert_eq!(
        HttpRequest::from_event(&event),
        Err(EventError::MalformedQuery)
    );
    let event = json!({"version": "2.0", "requestContext": {"http": {"method": "GET"}}, "rawQueryString": 1});
    assert_eq!(
        HttpRequest::from_event(&event),
        Err(EventError::MalformedQuery)
    );
}
