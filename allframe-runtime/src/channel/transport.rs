//! Where each channel delivers: SMTP, an HTTP webhook, or (the embedded default, no URL set)
//! a file per message under the data dir.

use std::path::{Path, PathBuf};

use super::{Channel, Message};
use crate::BoxError;
use crate::env::Environment;

/// Why a send failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SendError {
    /// Trying again cannot help (a rejected address, a 4xx answer): the message is parked.
    pub permanent: bool,
    /// What the other side or the connection said.
    pub message: String,
}

impl SendError {
    /// A failure that may pass (a connection refused, a 5xx answer).
    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            permanent: false,
            message: message.into(),
        }
    }

    /// A failure that will not pass.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            permanent: true,
            message: message.into(),
        }
    }
}

/// How long one send may take before it counts as a transient failure.
#[cfg(any(feature = "email", feature = "webhook"))]
pub(crate) const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// One channel's delivery.
#[derive(Debug)]
enum Transport {
    /// One JSON file per message in this directory.
    Files(PathBuf),
    /// An SMTP server.
    #[cfg(feature = "email")]
    Smtp(super::smtp::Smtp),
    /// A webhook taking JSON.
    #[cfg(feature = "webhook")]
    Http(super::http::Http),
}

/// The delivery of each channel a consumer declares, from the environment.
#[derive(Debug)]
pub struct Transports {
    channels: Vec<(Channel, Transport)>,
}

impl Transports {
    /// Reads each of `channels`' URL variable: set, the real transport (an error when the
    /// runtime was built without its feature); unset, files under `data_dir/channels`.
    pub fn from_env(
        env: &Environment,
        service: &str,
        data_dir: &Path,
        channels: &[Channel],
    ) -> Result<Self, BoxError> {
        let mut configured = Vec::with_capacity(channels.len());
        for &channel in channels {
            let var = channel.url_var();
            let transport = match env.get_non_empty(var.name) {
                None => Transport::Files(data_dir.join("channels").join(channel.as_str())),
                Some(url) => real(channel, url.trim(), env, service)?,
            };
            tracing::info!(channel = channel.as_str(), to = %transport.describe(), "channel configured");
            configured.push((channel, transport));
        }
        Ok(Self {
            channels: configured,
        })
    }

    /// Delivers `message` under `key`.
    pub async fn send(&self, key: &str, message: &Message) -> Result<(), SendError> {
        let channel = message.channel();
        let Some((_, transport)) = self.channels.iter().find(|(c, _)| *c == channel) else {
            return Err(SendError::permanent(format!(
                "this consumer does not declare the `{}` channel in `[services.consumer] channels`",
                channel.as_str()
            )));
        };
        match transport {
            Transport::Files(dir) => write_file(dir, key, message).await,
            #[cfg(feature = "email")]
            Transport::Smtp(smtp) => smtp.send(key, message).await,
            #[cfg(feature = "webhook")]
            Transport::Http(http) => http.send(key, message).await,
        }
    }
}

impl Transport {
    fn describe(&self) -> String {
        match self {
            Self::Files(dir) => format!("files in {}", dir.display()),
            #[cfg(feature = "email")]
            Self::Smtp(smtp) => smtp.describe(),
            #[cfg(feature = "webhook")]
            Self::Http(http) => http.describe(),
        }
    }
}

/// The transport a URL names for `channel`.
#[cfg_attr(
    not(all(feature = "email", feature = "webhook")),
    allow(unused_variables, clippy::needless_pass_by_value)
)]
fn real(
    channel: Channel,
    url: &str,
    env: &Environment,
    service: &str,
) -> Result<Transport, BoxError> {
    let var = channel.url_var().name;
    match channel {
        Channel::Email => {
            #[cfg(feature = "email")]
            return Ok(Transport::Smtp(super::smtp::Smtp::new(url, env, service)?));
            #[cfg(not(feature = "email"))]
            return Err(format!(
                "{var} is set, but this service's allframe-runtime was built without the `email` feature: add it to the runtime's features in Cargo.toml (ignite does, for a file with `channels = [\"email\"]`)"
            )
            .into());
        }
        Channel::Sms | Channel::Push | Channel::Webhook => {
            #[cfg(feature = "webhook")]
            return Ok(Transport::Http(super::http::Http::new(var, url)?));
            #[cfg(not(feature = "webhook"))]
            return Err(format!(
                "{var} is set, but this service's allframe-runtime was built without the `webhook` feature: add it to the runtime's features in Cargo.toml (ignite does, for a file with sms, push or webhook channels)"
            )
            .into());
        }
    }
}

/// Writes `message` as `<dir>/<key>.json` (through a temporary file, so a reader never sees
/// half of one; a second send of the same key replaces the first).
async fn write_file(dir: &Path, key: &str, message: &Message) -> Result<(), SendError> {
    let io = |error: std::io::Error| {
        SendError::transient(format!("writing to {}: {error}", dir.display()))
    };
    let mut document =
        serde_json::to_value(message).map_err(|error| SendError::permanent(error.to_string()))?;
    if let Some(fields) = document.as_object_mut() {
        fields.insert("idempotency_key".into(), key.into());
    }
    let text = serde_json::to_vec_pretty(&document)
        .map_err(|error| SendError::permanent(error.to_string()))?;
    tokio::fs::create_dir_all(dir).await.map_err(io)?;
    let temporary = dir.join(format!(".{key}.json.tmp"));
    tokio::fs::write(&temporary, text).await.map_err(io)?;
    tokio::fs::rename(&temporary, dir.join(format!("{key}.json")))
        .await
        .map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::{Email, Sms};

    #[tokio::test]
    async fn without_a_url_each_message_is_a_file_named_by_its_key() {
        let data = tempfile::tempdir().unwrap();
        let unset = Environment::from_pairs(Vec::<(String, String)>::new());
        let transports =
            Transports::from_env(&unset, "ledger-service", data.path(), &[Channel::Email]).unwrap();
        let email = Message::Email(Email::new("ada@example.com", "Hi", "Hello"));

        transports.send("e-1.email.1", &email).await.unwrap();
        transports.send("e-1.email.1", &email).await.unwrap();

        let dir = data.path().join("channels/email");
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, ["e-1.email.1.json"]);
        let written: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("e-1.email.1.json")).unwrap()).unwrap();
        assert_eq!(written["to"], serde_json::json!(["ada@example.com"]));
        assert_eq!(written["idempotency_key"], "e-1.email.1");

        let undeclared = transports
            .send("e-1.sms.1", &Message::Sms(Sms::new("+1", "hi")))
            .await
            .unwrap_err();
        assert!(undeclared.permanent, "{undeclared}");
    }
}
