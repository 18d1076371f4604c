//! The HTTP request inside a Lambda event, whichever front door it came through: API Gateway REST
//! (payload 1.0), HTTP API (payload 2.0) or a function URL (2.0 shape). The shape is detected, not configured.

use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// API Gateway REST API, payload format 1.0.
    RestApi,
    /// API Gateway HTTP API, payload format 2.0.
    HttpApi,
    /// Lambda function URL: the 2.0 payload, told apart by its `*.lambda-url.*` domain.
    FunctionUrl,
    /// An Application Load Balancer target: the 1.0 shape, but query values arrive still percent-encoded.
    LoadBalancer,
}

impl Shape {
    /// Whether the answer is read as a payload format 2.0 response.
    pub fn is_payload_v2(self) -> bool {
        matches!(self, Shape::HttpApi | Shape::FunctionUrl)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Shape::RestApi => "rest_api",
            Shape::HttpApi => "http_api",
            Shape::FunctionUrl => "function_url",
            Shape::LoadBalancer => "alb",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub shape: Shape,
    pub method: String,
    /// Every query parameter in arrival order, decoded; a repeated name appears once per value.
    pub query: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventError {
    /// Not an HTTP event of any shape we know (a direct invoke, a queue message, ...).
    NotHttp,
    /// An HTTP event whose query parameters are not strings.
    MalformedQuery,
}

impl HttpRequest {
    pub fn from_event(event: &Value) -> Result<Self, EventError> {
        let event = event.as_object().ok_or(EventError::NotHttp)?;
        let context = event.get("requestContext").and_then(Value::as_object);
        if event.get("version").and_then(Value::as_str) == Some("2.0") {
            let method = context
                .and_then(|c| c.get("http"))
                .and_then(|h| h.get("method"))
                .and_then(Value::as_str)
                .ok_or(EventError::NotHttp)?;
            let is_function_url = context
                .and_then(|c| c.get("domainName"))
                .and_then(Value::as_str)
                .is_some_and(|d| d.contains(".lambda-url."));
            return Ok(HttpRequest {
                shape: if is_function_url {
                    Shape::FunctionUrl
                } else {
                    Shape::HttpApi
                },
                method: method.to_owned(),
                query: v2_query(event)?,
            });
        }
        let method = event
            .get("httpMethod")
            .and_then(Value::as_str)
            .ok_or(EventError::NotHttp)?;
        let shape = if context.is_some_and(|c| c.contains_key("elb")) {
            Shape::LoadBalancer
        } else {
            Shape::RestApi
        };
        Ok(HttpRequest {
            shape,
            method: method.to_owned(),
            query: v1_query(event, shape == Shape::LoadBalancer)?,
        })
    }

    /// The values given for `name`, in order.
    pub fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.query
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// 2.0 keeps the query exactly as sent in `rawQueryString`; `queryStringParameters` joins repeated values with
/// commas, which would hide a repeated `code`, so it is only a fallback for events without the raw string.
fn v2_query(event: &Map<String, Value>) -> Result<Vec<(String, String)>, EventError> {
    match event.get("rawQueryString") {
        Some(Value::String(raw)) => Ok(form_urlencoded::parse(raw.as_bytes())
            .into_owned()
            .collect()),
        Some(Value::Null) | None => single_values(event.get("queryStringParameters"), false),
        Some(_) => Err(EventError::MalformedQuery),
    }
}

/// 1.0 gives `multiValueQueryStringParameters` (every value) beside `queryStringParameters` (the last one);
/// the multi-value map is the one that can show a repeat.
fn v1_query(
    event: &Map<String, Value>,
    encoded: bool,
) -> Result<Vec<(String, String)>, EventError> {
    match event.get("multiValueQueryStringParameters") {
        Some(Value::Object(map)) => {
            let mut query = Vec::new();
            for (name, values) in map {
                let values = values.as_array().ok_or(EventError::MalformedQuery)?;
                for value in values {
                    let value = value.as_str().ok_or(EventError::MalformedQuery)?;
                    query.push(decode_pair(name, value, encoded));
                }
            }
            Ok(query)
        }
        Some(Value::Null) | None => single_values(event.get("queryStringParameters"), encoded),
        Some(_) => Err(EventError::MalformedQuery),
    }
}

fn single_values(
    params: Option<&Value>,
    encoded: bool,
) -> Result<Vec<(String, String)>, EventError> {
    match params {
        Some(Value::Object(map)) => map
            .iter()
            .map(|(name, value)| {
                let value = value.as_str().ok_or(EventError::MalformedQuery)?;
                Ok(decode_pair(name, value, encoded))
            })
            .collect(),
        Some(Value::Null) | None => Ok(Vec::new()),
        Some(_) => Err(EventError::MalformedQuery),
    }
}

fn decode_pair(name: &str, value: &str, encoded: bool) -> (String, String) {
    if !encoded {
        return (name.to_owned(), value.to_owned());
    }
    let decode = |s: &str| {
        form_urlencoded::parse(format!("x={s}").as_bytes())
            .map(|(_, v)| v.into_owned())
            .collect()
    };
    (decode(name), decode(value))
}

#[cfg(test)]
mod tests;
