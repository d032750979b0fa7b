//! The `sms`, `push` and `webhook` channels over HTTP: each message is `POST`ed as JSON to the
//! channel's URL (`SMS_WEBHOOK_URL`, `PUSH_WEBHOOK_URL`, `WEBHOOK_URL`) with an
//! `Idempotency-Key` header. Credentials go in the URL (`https://user:token@gateway/…`, sent
//! as basic auth). A 2xx answer is delivered; 408, 429 and 5xx (and no answer) are retried;
//! any other answer is permanent and the message is parked.

use reqwest::StatusCode;

use super::Message;
use super::transport::{SEND_TIMEOUT, SendError};
use crate::BoxError;

/// The header carrying a message's idempotency key.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// One channel's webhook.
pub(crate) struct Http {
    client: reqwest::Client,
    url: reqwest::Url,
    /// `POST <url>` without its credentials, for logs and errors.
    redacted: String,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http")
            .field("url", &self.redacted)
            .finish_non_exhaustive()
    }
}

impl Http {
    /// The webhook `url` (from the variable `var`).
    pub(crate) fn new(var: &str, url: &str) -> Result<Self, BoxError> {
        let url = reqwest::Url::parse(url)
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https"))
            .ok_or_else(|| {
                format!("{var}={url:?} is not an http:// or https:// URL of the channel's webhook")
            })?;
        let client = reqwest::Client::builder()
            .timeout(SEND_TIMEOUT)
            .build()
            .map_err(|error| format!("{var}: the HTTP client cannot start: {error}"))?;
        let mut bare = url.clone();
        let _ = bare.set_username("");
        let _ = bare.set_password(None);
        Ok(Self {
            client,
            url,
            redacted: format!("POST {bare}"),
        })
    }

    /// The webhook without credentials, for the start-up log.
    pub(crate) fn describe(&self) -> String {
        self.redacted.clone()
    }

    /// Posts `message` as JSON with its idempotency key.
    pub(crate) async fn send(&self, key: &str, message: &Message) -> Result<(), SendError> {
        // reqwest sends the URL's user and password as basic auth.
        let request = self
            .client
            .post(self.url.clone())
            .header(IDEMPOTENCY_KEY, key);
        let body = match message {
            Message::Webhook(webhook) => webhook.body.clone(),
            other => serde_json::to_value(other)
                .map_err(|error| SendError::permanent(error.to_string()))?,
        };
        let response = request
            .json(&body)
            .send()
            .await
            .map_err(|error| SendError::transient(format!("{}: {error}", self.redacted)))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let text = response.text().await.unwrap_or_default();
        let said = format!(
            "the webhook answered {status}: {}",
            text.chars().take(300).collect::<String>()
        );
        if status == StatusCode::REQUEST_TIMEOUT
            || status == StatusCode::TOO_MANY_REQUESTS
            || status.is_server_error()
        {
            Err(SendError::transient(said))
        } else {
            Err(SendError::permanent(said))
        }
    }
}
