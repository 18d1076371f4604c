//! RDS IAM authentication (D9, `PGAUTH=iam`): the password is a SigV4-presigned `rds-db:connect` URL that the
//! function signs itself from its execution role's credentials in the environment. No network call, no SDK: the
//! HMAC-SHA256 and SHA-256 it takes are the ones postgres-protocol already brings for SCRAM.
//!
//! The token is what botocore's `generate_db_auth_token` returns, byte for byte (see the tests).

use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// RDS accepts a token for 15 minutes; it is only checked when a connection is opened.
const EXPIRES_SECONDS: u32 = 900;
const SERVICE: &str = "rds-db";

/// The execution role's temporary credentials, as Lambda puts them in the environment.
#[derive(Clone)]
pub struct AwsCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl AwsCredentials {
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        Ok(AwsCredentials {
            access_key_id: var("AWS_ACCESS_KEY_ID")
                .ok_or("PGAUTH=iam needs AWS_ACCESS_KEY_ID (the role's credentials)")?,
            secret_access_key: var("AWS_SECRET_ACCESS_KEY")
                .ok_or("PGAUTH=iam needs AWS_SECRET_ACCESS_KEY")?,
            session_token: var("AWS_SESSION_TOKEN"),
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
        query.push(("X-Amz-Security-Token", token.clone()));
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
        format!("AWS4{}", credentials.secret_access_key).as_bytes(),
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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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
mod tests {
    use super::*;
    use std::time::Duration;

    fn credentials(token: Option<&str>) -> AwsCredentials {
        AwsCredentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: token.map(str::to_owned),
        }
    }

    fn at(unix: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(unix)
    }

    #[test]
    fn dates() {
        assert_eq!(
            timestamp(at(0)),
            ("19700101".into(), "19700101T000000Z".into())
        );
        assert_eq!(
            timestamp(at(1_795_599_000)),
            ("20261125".into(), "20261125T093000Z".into())
        );
        assert_eq!(
            timestamp(at(951_782_400)),
            ("20000229".into(), "20000229T000000Z".into())
        );
        assert_eq!(
            timestamp(at(4_107_542_399)),
            ("21000228".into(), "21000228T235959Z".into())
        );
    }

    /// Recorded from botocore 1.43 `generate_db_auth_token` with these credentials and the clock fixed at
    /// 2026-11-25T09:30:00Z; `tests/rds_iam.rs` compares against a live botocore for more cases.
    #[test]
    fn matches_botocore() {
        let host = "mydb.cluster-abc.ap-northeast-2.rds.amazonaws.com";
        assert_eq!(
            auth_token(
                host,
                5432,
                "callback_writer",
                "ap-northeast-2",
                &credentials(None),
                at(1_795_599_000)
            ),
            "mydb.cluster-abc.ap-northeast-2.rds.amazonaws.com:5432/?Action=connect&DBUser=callback_writer\
             &X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20261125%2Fap-northeast-2%2Frds-db\
             %2Faws4_request&X-Amz-Date=20261125T093000Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host\
             &X-Amz-Signature=8b03b456ac29eeb3d8b9cc002cb3c2c84ff8a0d1b44bd56b101d98739ac95bb8"
        );
        let token = "IQoJb3JpZ2luX2VjEOr//////////wEaDmFwLW5vcnRoZWFzdC0y+/=";
        assert_eq!(
            auth_token(
                host,
                5432,
                "callback_writer",
                "ap-northeast-2",
                &credentials(Some(token)),
                at(1_795_599_000)
            ),
            "mydb.cluster-abc.ap-northeast-2.rds.amazonaws.com:5432/?Action=connect&DBUser=callback_writer\
             &X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20261125%2Fap-northeast-2%2Frds-db\
             %2Faws4_request&X-Amz-Date=20261125T093000Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host\
             &X-Amz-Security-Token=IQoJb3JpZ2luX2VjEOr%2F%2F%2F%2F%2F%2F%2F%2F%2F%2FwEaDmFwLW5vcnRoZWFzdC0y%2B%2F%3D\
             &X-Amz-Signature=c26bc51ba6c8b14db3f6eda004b4289f123b29301020254bc3e4df994444875a"
        );
    }

    /// Against a live botocore (installed from PyPI by the test setup) for regions, ports, users, tokens, times.
    #[test]
    fn matches_botocore_live() {
        let mut cases = Vec::new();
        for (i, region) in ["ap-northeast-2", "us-east-1", "eu-central-1", "cn-north-1"]
            .into_iter()
            .enumerate()
        {
            for (j, port) in [5432u16, 6432, 15432].into_iter().enumerate() {
                let user = ["callback_writer", "app user", "x@y+z"][j];
                for token in [
                    None,
                    Some("FwoGZXIvYXdzEJr//////////wEaDM+token/with=specials"),
                    Some("short"),
                ] {
                    cases.push(serde_json::json!({
                        "unix": 1_700_000_000u64 + (i * 86_400 * 97 + j * 3_607) as u64,
                        "access_key_id": format!("ASIA{i}{j}EXAMPLE"),
                        "secret_access_key": format!("secret/{i}+{j}=key"),
                        "session_token": token,
                        "region": region,
                        "host": format!("db-{i}.proxy-c0ffee.{region}.rds.amazonaws.com"),
                        "port": port,
                        "user": user,
                    }));
                }
            }
        }
        let expected =
            devtools::botocore::db_auth_tokens(&serde_json::Value::from(cases.clone())).unwrap();
        assert_eq!(expected.len(), cases.len());
        for (case, expected) in cases.iter().zip(expected) {
            let credentials = AwsCredentials {
                access_key_id: case["access_key_id"].as_str().unwrap().into(),
                secret_access_key: case["secret_access_key"].as_str().unwrap().into(),
                session_token: case["session_token"].as_str().map(str::to_owned),
            };
            let ours = auth_token(
                case["host"].as_str().unwrap(),
                case["port"].as_u64().unwrap() as u16,
                case["user"].as_str().unwrap(),
                case["region"].as_str().unwrap(),
                &credentials,
                at(case["unix"].as_u64().unwrap()),
            );
            assert_eq!(ours, expected, "{case}");
        }
    }

    #[test]
    fn credentials_are_required_and_never_printed() {
        let none = AwsCredentials::from_lookup(|_| None);
        assert!(none.unwrap_err().contains("AWS_ACCESS_KEY_ID"));
        let shown = format!("{:?}", credentials(Some("secret-token")));
        assert!(
            !shown.contains("wJalr") && !shown.contains("secret-token"),
            "{shown}"
        );
    }
}
