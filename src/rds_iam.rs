//! RDS IAM authentication (`PGAUTH=iam`): the password is a SigV4-presigned `rds-db:connect` URL that the
//! function signs itself from its execution role's credentials in the environment. No network call, no SDK: the
//! HMAC-SHA256 and SHA-256 it takes are the ones postgres-protocol already brings for SCRAM.
//!
//! The token is what botocore's `generate_db_auth_token` returns, byte for byte (see the tests).

use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::config::{ConfigError, Lookup};
use crate::hex::hex;
use crate::secret::Secret;

/// RDS accepts a token for 15 minutes; it is only checked when a connection is opened.
const EXPIRES_SECONDS: u32 = 900;
const SERVICE: &str = "rds-db";

/// The execution role's temporary credentials, as Lambda puts them in the environment.
#[derive(Debug, Clone)]
pub struct AwsCredentials {
    pub access_key_id: String,
    pub secret_access_key: Secret<String>,
    pub session_token: Option<Secret<String>>,
}

impl AwsCredentials {
    pub fn from_lookup(var: &impl Lookup) -> Result<Self, ConfigError> {
        let needed = |name: &'static str| {
            var(name).ok_or_else(|| {
                ConfigError::new(name, "is needed by PGAUTH=iam (the role's credentials)")
            })
        };
        Ok(AwsCredentials {
            access_key_id: needed("AWS_ACCESS_KEY_ID")?,
            secret_access_key: Secret::new(needed("AWS_SECRET_ACCESS_KEY")?),
            session_token: var("AWS_SESSION_TOKEN").map(Secret::new),
        })
    }
}

/// The auth token for `user` at `host:port` in `region`, signed at `now`.
pub fn auth_token(
    host: &str,
    port: u16,
    user: &str,
    region: &str,
    credentials: &AwsCredentials,
    now: SystemTime,
) -> String {
    let (date, amz_date) = timestamp(now);
    let scope = format!("{date}/{region}/{SERVICE}/aws4_request");
    let mut query = vec![
        ("Action", "connect".to_owned()),
        ("DBUser", user.to_owned()),
        ("X-Amz-Algorithm", "AWS4-HMAC-SHA256".to_owned()),
        (
            "X-Amz-Credential",
            format!("{}/{scope}", credentials.access_key_id),
        ),
        ("X-Amz-Date", amz_date.clone()),
        ("X-Amz-Expires", EXPIRES_SECONDS.to_string()),
        ("X-Amz-SignedHeaders", "host".to_owned()),
    ];
    if let Some(token) = &credentials.session_token {
        query.push(("X-Amz-Security-Token", token.expose().clone()));
    }
    let encode = |pairs: &[(&str, String)]| {
        pairs
            .iter()
            .map(|(k, v)| format!("{}={}", uri_encode(k), uri_encode(v)))
            .collect::<Vec<_>>()
            .join("&")
    };
    // Signed sorted; written in the order botocore writes them, so the token is the same string.
    let url_query = encode(&query);
    query.sort_by(|a, b| a.0.cmp(b.0));
    let canonical_query = encode(&query);
    // The GET has no body: its payload hash is SHA-256 of nothing (what botocore signs for rds-db).
    let empty_payload = hex(&Sha256::digest(b""));
    let canonical_request =
        format!("GET\n/\n{canonical_query}\nhost:{host}:{port}\n\nhost\n{empty_payload}");
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical_request.as_bytes()))
    );
    let mut key = hmac(
        format!("AWS4{}", credentials.secret_access_key.expose()).as_bytes(),
        date.as_bytes(),
    );
    for part in [region, SERVICE, "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    let signature = hex(&hmac(&key, string_to_sign.as_bytes()));
    format!("{host}:{port}/?{url_query}&X-Amz-Signature={signature}")
}

fn hmac(key: &[u8], message: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length; the fallback only keeps this free of a panic path.
    let mut mac = Hmac::<Sha256>::new_from_slice(key)
        .unwrap_or_else(|_| Hmac::<Sha256>::new(&Default::default()));
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// SigV4's URI encoding: everything but `A-Z a-z 0-9 - _ . ~` as `%XX`, upper case.
fn uri_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `("YYYYMMDD", "YYYYMMDDTHHMMSSZ")` in UTC.
fn timestamp(now: SystemTime) -> (String, String) {
    let seconds = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rest) = (seconds / 86_400, seconds % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    let date = format!("{year:04}{month:02}{day:02}");
    let time = format!("{:02}{:02}{:02}", rest / 3600, rest % 3600 / 60, rest % 60);
    (date.clone(), format!("{date}T{time}Z"))
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

#[cfg(test)]
mod tests;
