//! `bootstrap mint-state`: a valid state from the command line, for whoever starts the flow and for the
//! fixtures (docs/decisions.md, D4). Lambda never passes arguments to `bootstrap`, so this never runs on a request.

use std::io::Read;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::state::StateKey;

const USAGE: &str = "usage: bootstrap mint-state PAYLOAD
       bootstrap mint-state --mall-id MALL_ID   (payload mall_id:nonce:issued_at)
Signs with EXPECTED_STATE_SECRET and prints the state.";

pub fn run(args: &[String]) -> ExitCode {
    match mint(args) {
        Ok(state) => {
            println!("{state}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("mint-state: {message}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn mint(args: &[String]) -> Result<String, String> {
    let secret = std::env::var("EXPECTED_STATE_SECRET").unwrap_or_default();
    let key = StateKey::new(&secret).ok_or("EXPECTED_STATE_SECRET is not set")?;
    let payload = match args {
        [flag, mall_id] if flag == "--mall-id" => convention_payload(mall_id)?,
        [payload] if !payload.starts_with("--") => payload.clone(),
        _ => return Err("expected one payload or --mall-id MALL_ID".into()),
    };
    key.sign(&payload)
        .ok_or_else(|| "the payload must be 1 to 512 characters of A-Z a-z 0-9 - _ . ~ :".into())
}

/// The payload convention `mall_id:nonce:issued_at`, issued_at in Unix seconds.
fn convention_payload(mall_id: &str) -> Result<String, String> {
    // Cafe24 mall ids are lowercase letters and digits; the token service builds a host name from it.
    if mall_id.is_empty()
        || mall_id.len() > 64
        || !mall_id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        return Err(format!(
            "not a Cafe24 mall id (lowercase letters and digits): {mall_id:?}"
        ));
    }
    let mut nonce = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut nonce))
        .map_err(|e| format!("no randomness for the nonce: {e}"))?;
    let issued_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs();
    Ok(format!(
        "{mall_id}:{}:{issued_at}",
        URL_SAFE_NO_PAD.encode(nonce)
    ))
}

#[cfg(test)]
mod tests;
