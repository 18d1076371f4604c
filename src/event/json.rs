//! The few parts of an event that this function reads, deserialized straight from the invocation's JSON. All the
//! rest (headers, the caller's identity, most of the request context, the body) is skipped while parsing and never
//! built: building the whole event as a `serde_json::Value` took a third of a warm request's instructions, for the
//! 3 kB that API Gateway sends.
//!
//! Any JSON at all deserializes. A part of a kind it never has in an HTTP event is kept as `Loose::Other`, so a
//! malformed event still reaches the handler and gets the contract's 400, not a runtime error.

use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// An event of any shape; only the parts that tell the shape and carry the query are kept.
#[derive(Debug, Default)]
pub struct Event {
    pub version: Loose<String>,
    pub http_method: Loose<String>,
    pub request_context: Loose<RequestContext>,
    pub raw_query_string: Loose<String>,
    pub query_string_parameters: Loose<Params<String>>,
    pub multi_value_query_string_parameters: Loose<Params<List>>,
}

#[derive(Debug, Default)]
pub struct RequestContext {
    /// Payload 2.0: `{"method": ...}`.
    pub http: Loose<Http>,
    pub domain_name: Loose<String>,
    /// An Application Load Balancer's context holds `elb`, whatever its value.
    pub elb: bool,
}

#[derive(Debug, Default)]
pub struct Http {
    pub method: Loose<String>,
}

/// A JSON object of query parameters, in arrival order. A name given twice in it counts twice, as a name
/// repeated in the query would.
#[derive(Debug, Default)]
pub struct Params<V>(pub Vec<(String, Loose<V>)>);

/// A JSON array of strings (a parameter's values).
#[derive(Debug, Default)]
pub struct List(pub Vec<Loose<String>>);

/// A JSON value of which only one kind is wanted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub enum Loose<T> {
    /// No such key.
    #[default]
    Missing,
    Null,
    Is(T),
    /// Any other kind: skipped while parsing.
    Other,
}

impl<T> Loose<T> {
    pub fn get(&self) -> Option<&T> {
        match self {
            Loose::Is(value) => Some(value),
            _ => None,
        }
    }
}

/// How a wanted kind is read from the JSON value that holds it; every other kind of value is skipped.
pub trait Wanted: Sized {
    fn from_str(_: &str) -> Option<Self> {
        None
    }

    fn from_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<Option<Self>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn from_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<Option<Self>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

impl Wanted for String {
    fn from_str(s: &str) -> Option<Self> {
        Some(s.to_owned())
    }
}

impl Wanted for List {
    fn from_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<Option<Self>, A::Error> {
        let mut values = Vec::new();
        while let Some(value) = seq.next_element()? {
            values.push(value);
        }
        Ok(Some(List(values)))
    }
}

impl<V: Wanted> Wanted for Params<V> {
    fn from_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<Option<Self>, A::Error> {
        let mut params = Vec::new();
        while let Some(entry) = map.next_entry()? {
            params.push(entry);
        }
        Ok(Some(Params(params)))
    }
}

impl Wanted for Event {
    fn from_map<'de, A: MapAccess<'de>>(map: A) -> Result<Option<Self>, A::Error> {
        #[derive(Deserialize)]
        #[serde(field_identifier, rename_all = "camelCase")]
        enum Key {
            Version,
            HttpMethod,
            RequestContext,
            RawQueryString,
            QueryStringParameters,
            MultiValueQueryStringParameters,
            #[serde(other)]
            Other,
        }
        object(map, |event: &mut Event, key, map| {
            match key {
                Key::Version => event.version = map.next_value()?,
                Key::HttpMethod => event.http_method = map.next_value()?,
                Key::RequestContext => event.request_context = map.next_value()?,
                Key::RawQueryString => event.raw_query_string = map.next_value()?,
                Key::QueryStringParameters => event.query_string_parameters = map.next_value()?,
                Key::MultiValueQueryStringParameters => {
                    event.multi_value_query_string_parameters = map.next_value()?
                }
                Key::Other => return Ok(false),
            }
            Ok(true)
        })
    }
}

impl Wanted for RequestContext {
    fn from_map<'de, A: MapAccess<'de>>(map: A) -> Result<Option<Self>, A::Error> {
        #[derive(Deserialize)]
        #[serde(field_identifier, rename_all = "camelCase")]
        enum Key {
            Http,
            DomainName,
            Elb,
            #[serde(other)]
            Other,
        }
        object(map, |context: &mut RequestContext, key, map| {
            match key {
                Key::Http => context.http = map.next_value()?,
                Key::DomainName => context.domain_name = map.next_value()?,
                Key::Elb => {
                    context.elb = true;
                    return Ok(false);
                }
                Key::Other => return Ok(false),
            }
            Ok(true)
        })
    }
}

impl Wanted for Http {
    fn from_map<'de, A: MapAccess<'de>>(map: A) -> Result<Option<Self>, A::Error> {
        #[derive(Deserialize)]
        #[serde(field_identifier, rename_all = "camelCase")]
        enum Key {
            Method,
            #[serde(other)]
            Other,
        }
        object(map, |http: &mut Http, key, map| {
            match key {
                Key::Method => http.method = map.next_value()?,
                Key::Other => return Ok(false),
            }
            Ok(true)
        })
    }
}

/// An object read key by key into `T`: `read` takes the value of a key it knows and says so; every other value is
/// skipped.
fn object<'de, A, K, T>(
    mut map: A,
    mut read: impl FnMut(&mut T, K, &mut A) -> Result<bool, A::Error>,
) -> Result<Option<T>, A::Error>
where
    A: MapAccess<'de>,
    K: Deserialize<'de>,
    T: Default,
{
    let mut value = T::default();
    while let Some(key) = map.next_key()? {
        if !read(&mut value, key, &mut map)? {
            map.next_value::<IgnoredAny>()?;
        }
    }
    Ok(Some(value))
}

impl<'de, T: Wanted> Deserialize<'de> for Loose<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(LooseVisitor(PhantomData))
    }
}

struct LooseVisitor<T>(PhantomData<T>);

impl<'de, T: Wanted> Visitor<'de> for LooseVisitor<T> {
    type Value = Loose<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Loose<T>, E> {
        Ok(Loose::Null)
    }

    fn visit_none<E>(self) -> Result<Loose<T>, E> {
        Ok(Loose::Null)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Loose<T>, E> {
        Ok(Loose::Other)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Loose<T>, E> {
        Ok(Loose::Other)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Loose<T>, E> {
        Ok(Loose::Other)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Loose<T>, E> {
        Ok(Loose::Other)
    }

    fn visit_str<E>(self, s: &str) -> Result<Loose<T>, E> {
        Ok(T::from_str(s).map_or(Loose::Other, Loose::Is))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Loose<T>, A::Error> {
        Ok(T::from_map(map)?.map_or(Loose::Other, Loose::Is))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Loose<T>, A::Error> {
        Ok(T::from_seq(seq)?.map_or(Loose::Other, Loose::Is))
    }
}
