//! Where the key that signs states comes from: the value itself (`EXPECTED_STATE_SECRET`) or a Secrets Manager
//! secret read at run time (`EXPECTED_STATE_SECRET_ID`), never both and never neither: without a key the function
//! refuses every request (it fails closed, never open).

use std::sync::OnceLock;
use std::time::Instant;

use crate::config::{ConfigError, Lookup};
use crate::extension::SecretsExtension;
use crate::state::StateKey;

const VALUE: &str = "EXPECTED_STATE_SECRET";
const SECRET_ID: &str = "EXPECTED_STATE_SECRET_ID";

pub enum StateKeySource {
    Value(StateKey),
    /// Read on the first request (the extension may not be up during init), then kept for the process. Never
    /// read again because a signature failed: that would let forged states drive calls to Secrets Manager.
    Secret {
        id: String,
        extension: SecretsExtension,
        key: OnceLock<StateKey>,
    },
}

impl StateKeySource {
    pub fn from_lookup(
        var: &impl Lookup,
        extension: &SecretsExtension,
    ) -> Result<Self, ConfigError> {
        match (var(VALUE), var(SECRET_ID)) {
            (Some(_), Some(_)) => Err(ConfigError::new(
                SECRET_ID,
                format!("is set together with {VALUE}: keep one"),
            )),
            (Some(secret), None) => StateKey::new(&secret)
                .map(StateKeySource::Value)
                .ok_or_else(|| ConfigError::new(VALUE, "is blank: refusing every request")),
            (None, Some(id)) => Ok(StateKeySource::Secret {
                id,
                extension: extension.clone(),
                key: OnceLock::new(),
            }),
            (None, None) => Err(ConfigError::new(
                VALUE,
                "is not set or empty (nor EXPECTED_STATE_SECRET_ID): refusing every request",
            )),
        }
    }

    /// The key; its first read from a secret happens on a blocking thread and ends by `deadline`.
    pub async fn key(&self, deadline: Instant) -> Result<&StateKey, ConfigError> {
        let (id, extension, key) = match self {
            StateKeySource::Value(key) => return Ok(key),
            StateKeySource::Secret { id, extension, key } => (id, extension, key),
        };
        if let Some(key) = key.get() {
            return Ok(key);
        }
        let (read_id, extension) = (id.clone(), extension.clone());
        let text = tokio::task::spawn_blocking(move || extension.secret_string(&read_id, deadline))
            .await
            .map_err(|e| ConfigError::new(SECRET_ID, e.to_string()))?
            .map_err(|e| ConfigError::new(SECRET_ID, e))?;
        let read = StateKey::new(text.expose()).ok_or_else(|| {
            ConfigError::new(SECRET_ID, format!("secret {id:?} is empty or blank"))
        })?;
        Ok(key.get_or_init(|| read))
    }
}
