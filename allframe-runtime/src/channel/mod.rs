//! Notification channels of a consumer (`[services.consumer] channels = ["email", …]`).
//!
//! Sending a mail is a side effect no database transaction can roll back, so a handler never
//! sends: it *enqueues*. Each channel the file declares is a trait ([`SendEmail`],
//! [`SendSms`], [`SendPush`], [`SendWebhook`]) the handler receives; what it sends is held in
//! [`Notifications`] and written to the channel outbox ([`outbox::CHANNEL_OUTBOX_TABLE`]) in
//! the transaction that marks the event handled. A handler that fails leaves nothing behind,
//! and a redelivered event, which the inbox finds handled, enqueues nothing again.
//!
//! A sender task then delivers each row with an idempotency key, `<event id>.<channel>.<n>`
//! (the `n`th message of that channel the handler sent for that event): the SMTP `Message-ID`
//! of a mail, the `Idempotency-Key` header of a webhook, the file name of a file. A row leaves
//! the table once delivered; a transient failure is retried with backoff, a permanent one (a
//! rejected address, a 4xx answer) is parked in the table with its error.
//!
//! Where each channel delivers, from the environment:
//!
//! | channel | set | unset (the embedded default) |
//! |---|---|---|
//! | `email` | `SMTP_URL` (lettre; `smtp://`, `smtps://`) | `<data dir>/channels/email/<key>.json` |
//! | `sms` | `SMS_WEBHOOK_URL` (HTTP POST of JSON) | `<data dir>/channels/sms/<key>.json` |
//! | `push` | `PUSH_WEBHOOK_URL` | `<data dir>/channels/push/<key>.json` |
//! | `webhook` | `WEBHOOK_URL` | `<data dir>/channels/webhook/<key>.json` |

#[cfg(feature = "webhook")]
mod http;
pub mod outbox;
mod sender;
#[cfg(feature = "email")]
mod smtp;
mod transport;

use serde::{Deserialize, Serialize};

#[cfg(feature = "webhook")]
pub use http::IDEMPOTENCY_KEY;
pub use sender::ChannelSender;
pub(crate) use sender::SendOutcome;
pub use transport::{SendError, Transports};

/// A notification channel, as `[services.consumer] channels` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// E-mail over SMTP.
    Email,
    /// Text messages through an SMS gateway's webhook.
    Sms,
    /// Mobile push through a push gateway's webhook.
    Push,
    /// A JSON document posted to a webhook.
    Webhook,
}

impl Channel {
    /// Every channel.
    pub const ALL: [Channel; 4] = [Self::Email, Self::Sms, Self::Push, Self::Webhook];

    /// The channel's name in the file and in idempotency keys.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Sms => "sms",
            Self::Push => "push",
            Self::Webhook => "webhook",
        }
    }

    /// The variable naming where the channel delivers (unset: files under the data dir).
    pub fn url_var(self) -> allframe_env::Var {
        allframe_env::channel_url(self.as_str()).unwrap_or(allframe_env::WEBHOOK_URL)
    }
}

/// An e-mail: `Email::new("ada@example.com", "Welcome", "Hello Ada").html("<p>Hello</p>")`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Email {
    /// Recipients (`Ada <ada@example.com>` or `ada@example.com`).
    pub to: Vec<String>,
    /// The subject line.
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// An HTML alternative to the text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    /// The sender; unset, `EMAIL_FROM` (else `<service>@localhost`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Where replies go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
}

impl Email {
    /// A plain-text mail to one recipient.
    pub fn new(to: impl Into<String>, subject: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            to: vec![to.into()],
            subject: subject.into(),
            text: text.into(),
            html: None,
            from: None,
            reply_to: None,
        }
    }

    /// Adds a recipient.
    #[must_use]
    pub fn and_to(mut self, to: impl Into<String>) -> Self {
        self.to.push(to.into());
        self
    }

    /// Adds an HTML alternative to the text.
    #[must_use]
    pub fn html(mut self, html: impl Into<String>) -> Self {
        self.html = Some(html.into());
        self
    }

    /// Sets the sender.
    #[must_use]
    pub fn from(mut self, from: impl Into<String>) -> Self {
        self.from = Some(from.into());
        self
    }

    /// Sets where replies go.
    #[must_use]
    pub fn reply_to(mut self, reply_to: impl Into<String>) -> Self {
        self.reply_to = Some(reply_to.into());
        self
    }
}

/// A text message: `Sms::new("+441234567890", "Your code is 1234")`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sms {
    /// The recipient's number, as the gateway expects it (E.164 is safest).
    pub to: String,
    /// The text.
    pub text: String,
}

impl Sms {
    /// A text to one number.
    pub fn new(to: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            to: to.into(),
            text: text.into(),
        }
    }
}

/// A push notification: `Push::new(device_token, "Booked", "Berth 4 is yours")`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Push {
    /// The device token or user the gateway delivers to.
    pub to: String,
    /// The title.
    pub title: String,
    /// The body.
    pub body: String,
    /// Data for the app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
}

impl Push {
    /// A notification to one device or user.
    pub fn new(to: impl Into<String>, title: impl Into<String>, body: impl Into<String>) -> Self {
        Self {
            to: to.into(),
            title: title.into(),
            body: body.into(),
            data: None,
        }
    }

    /// Adds data for the app.
    #[must_use]
    pub fn data(mut self, data: serde_json::Value) -> Self {
        self.data = Some(data);
        self
    }
}

/// A JSON document for the webhook: `Webhook::new(json!({"booking": id}))`, or
/// `Webhook::json(&event)?`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Webhook {
    /// The document posted.
    pub body: serde_json::Value,
}

impl Webhook {
    /// Posts `body`.
    pub fn new(body: serde_json::Value) -> Self {
        Self { body }
    }

    /// Posts `value` as JSON (an event, say): `Webhook::json(&event)?`.
    pub fn json(value: &impl Serialize) -> Result<Self, serde_json::Error> {
        serde_json::to_value(value).map(Self::new)
    }
}

/// One message of any channel, as the channel outbox stores it (JSON tagged by `channel`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "channel", rename_all = "lowercase")]
pub enum Message {
    /// An e-mail.
    Email(Email),
    /// A text message.
    Sms(Sms),
    /// A push notification.
    Push(Push),
    /// A webhook document.
    Webhook(Webhook),
}

impl Message {
    /// The message's channel.
    pub fn channel(&self) -> Channel {
        match self {
            Self::Email(_) => Channel::Email,
            Self::Sms(_) => Channel::Sms,
            Self::Push(_) => Channel::Push,
            Self::Webhook(_) => Channel::Webhook,
        }
    }
}

/// The `email` channel: a handler of a consumer with `channels = ["email"]` gets one.
pub trait SendEmail: Send {
    /// Enqueues `email`: it is sent once the handler's unit of work commits.
    fn send_email(&mut self, email: Email);
}

/// The `sms` channel.
pub trait SendSms: Send {
    /// Enqueues `sms`: it is sent once the handler's unit of work commits.
    fn send_sms(&mut self, sms: Sms);
}

/// The `push` channel.
pub trait SendPush: Send {
    /// Enqueues `push`: it is sent once the handler's unit of work commits.
    fn send_push(&mut self, push: Push);
}

/// The `webhook` channel.
pub trait SendWebhook: Send {
    /// Enqueues `webhook`: it is posted once the handler's unit of work commits.
    fn send_webhook(&mut self, webhook: Webhook);
}

/// What one handler call sent, held until its unit of work commits (then written to the
/// channel outbox in the same transaction) and dropped when it fails. Implements every
/// channel's trait; a handler sees only the channels its file declares. Also what a unit test
/// of a handler passes in, to look at what it sent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Notifications {
    messages: Vec<Message>,
}

impl Notifications {
    /// Nothing sent yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// What was sent, in order.
    pub fn messages(&self) -> &[Message] {
        &self.messages
    }

    /// Nothing was sent.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Each message with its idempotency key for the event `event_id`:
    /// `<event id>.<channel>.<n>`, `n` counting that channel's messages from 1. The same
    /// handler sending the same messages for the same event gets the same keys.
    pub fn keyed<'a>(&'a self, event_id: &'a str) -> impl Iterator<Item = (String, &'a Message)> {
        let mut counts = [0_u32; Channel::ALL.len()];
        self.messages.iter().map(move |message| {
            let channel = message.channel();
            let count = &mut counts[channel as usize];
            *count += 1;
            (format!("{event_id}.{}.{count}", channel.as_str()), message)
        })
    }
}

impl SendEmail for Notifications {
    fn send_email(&mut self, email: Email) {
        self.messages.push(Message::Email(email));
    }
}

impl SendSms for Notifications {
    fn send_sms(&mut self, sms: Sms) {
        self.messages.push(Message::Sms(sms));
    }
}

impl SendPush for Notifications {
    fn send_push(&mut self, push: Push) {
        self.messages.push(Message::Push(push));
    }
}

impl SendWebhook for Notifications {
    fn send_webhook(&mut self, webhook: Webhook) {
        self.messages.push(Message::Webhook(webhook));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_count_each_channels_messages_of_one_event() {
        let mut sent = Notifications::new();
        sent.send_email(Email::new("a@example.com", "1", "one"));
        sent.send_sms(Sms::new("+1", "one"));
        sent.send_email(Email::new("b@example.com", "2", "two"));
        let keys: Vec<String> = sent.keyed("e-1").map(|(key, _)| key).collect();
        assert_eq!(keys, ["e-1.email.1", "e-1.sms.1", "e-1.email.2"]);
    }

    #[test]
    fn a_message_is_stored_tagged_by_its_channel() {
        let message = Message::Sms(Sms::new("+1", "hi"));
        let json = serde_json::to_value(&message).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"channel": "sms", "to": "+1", "text": "hi"})
        );
        assert_eq!(serde_json::from_value::<Message>(json).unwrap(), message);
    }
}
