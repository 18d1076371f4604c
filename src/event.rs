//! The HTTP request inside a Lambda event, whichever front door it came through: API Gateway REST
//! (payload 1.0), HTTP API (payload 2.0) or a function URL (2.0 shape). The shape is detected, not configured.

mod json;

pub use json::{Event, Loose};
use json::{List, Params};

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
    pub fn from_event(event: &Loose<Event>) -> Result<Self, EventError> {
        let Loose::Is(event) = event else {
            return Err(EventError::NotHttp);
        };
        let context = event.request_context.get();
        if event.version.get().is_some_and(|v| v == "2.0") {
            let method = context
                .and_then(|c| c.http.get())
                .and_then(|h| h.method.get())
                .ok_or(EventError::NotHttp)?;
            let is_function_url = context
                .and_then(|c| c.domain_name.get())
                .is_some_and(|d| d.contains(".lambda-url."));
            return Ok(HttpRequest {
                shape: if is_function_url {
                    Shape::FunctionUrl
                } else {
                    Shape::HttpApi
                },
                method: method.clone(),
                query: v2_query(event)?,
            });
        }
        let method = event.http_method.get().ok_or(EventError::NotHttp)?;
        let shape = if context.is_some_and(|c| c.elb) {
            Shape::LoadBalancer
        } else {
            Shape::RestApi
        };
        Ok(HttpRequest {
            shape,
            method: method.clone(),
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
fn v2_query(event: &Event) -> Result<Vec<(String, String)>, EventError> {
    match &event.raw_query_string {
        Loose::Is(raw) => Ok(form_urlencoded::parse(raw.as_bytes())
            .into_owned()
            .collect()),
        Loose::Null | Loose::Missing => single_values(&event.query_string_parameters, false),
        Loose::Other => Err(EventError::MalformedQuery),
    }
}

/// 1.0 gives `multiValueQueryStringParameters` (every value) beside `queryStringParameters` (the last one);
/// the multi-value map is the one that can show a repeat.
fn v1_query(event: &Event, encoded: bool) -> Result<Vec<(String, String)>, EventError> {
    match &event.multi_value_query_string_parameters {
        Loose::Is(Params(params)) => {
            let mut query = Vec::new();
            for (name, values) in params {
                let List(values) = values.get().ok_or(EventError::MalformedQuery)?;
                for value in values {
                    let value = value.get().ok_or(EventError::MalformedQuery)?;
                    query.push(decode_pair(name, value, encoded));
                }
            }
            Ok(query)
        }
        Loose::Null | Loose::Missing => single_values(&event.query_string_parameters, encoded),
        Loose::Other => Err(EventError::MalformedQuery),
    }
}

fn single_values(
    params: &Loose<Params<String>>,
    encoded: bool,
) -> Result<Vec<(String, String)>, EventError> {
    match params {
        Loose::Is(Params(params)) => params
            .iter()
            .map(|(name, value)| {
                let value = value.get().ok_or(EventError::MalformedQuery)?;
                Ok(decode_pair(name, value, encoded))
            })
            .collect(),
        Loose::Null | Loose::Missing => Ok(Vec::new()),
        Loose::Other => Err(EventError::MalformedQuery),
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
pub(crate) mod tests;
