//! The `email` channel over SMTP (lettre), from `SMTP_URL`: `smtp://user:pass@host:587`
//! (STARTTLS when the server offers it; `?tls=required` to insist), `smtps://host:465`
//! (implicit TLS), `smtp://localhost:1025` (plain, for a local catcher).

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::transport::{SEND_TIMEOUT, SendError};
use super::{Email, Message};
use crate::BoxError;
use crate::env::Environment;

/// An SMTP relay and the sender mails go out as.
pub(crate) struct Smtp {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    /// `SMTP_URL` without its password.
    redacted: String,
    /// `EMAIL_FROM`, else `<service>@localhost`.
    from: String,
    /// The right-hand side of each `Message-ID`.
    domain: String,
}

impl std::fmt::Debug for Smtp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Smtp")
            .field("url", &self.redacted)
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

impl Smtp {
    /// The relay `url` names.
    pub(crate) fn new(url: &str, env: &Environment, service: &str) -> Result<Self, BoxError> {
        let var = allframe_env::SMTP_URL.name;
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|error| {
                format!("{var} is not an SMTP URL such as smtp://user:password@host:587 or smtps://host:465: {error}")
            })?
            .timeout(Some(SEND_TIMEOUT))
            .build();
        let from = env
            .get_non_empty(allframe_env::EMAIL_FROM.name)
            .map_or_else(
                || format!("{service}@localhost"),
                |from| from.trim().to_owned(),
            );
        from.parse::<Mailbox>().map_err(|error| {
            format!(
                "{}={from:?} is not a mail address such as `Shop <noreply@example.com>`: {error}",
                allframe_env::EMAIL_FROM.name
            )
        })?;
        Ok(Self {
            transport,
            redacted: redact(url),
            from,
            domain: format!("{service}.allframe"),
        })
    }

    /// The relay, for the start-up log.
    pub(crate) fn describe(&self) -> String {
        format!("SMTP {}", self.redacted)
    }

    /// Sends the mail with `Message-ID: <key@<service>.allframe>`: a relay or mailbox that
    /// sees the same mail twice (a send retried after its answer was lost) can tell.
    pub(crate) async fn send(&self, key: &str, message: &Message) -> Result<(), SendError> {
        let Message::Email(email) = message else {
            return Err(SendError::permanent("the email channel sends e-mails only"));
        };
        let mail = self.mail(key, email)?;
        match self.transport.send(mail).await {
            Ok(_) => Ok(()),
            Err(error) if error.is_permanent() => Err(SendError::permanent(error.to_string())),
            Err(error) => Err(SendError::transient(error.to_string())),
        }
    }

    fn mail(&self, key: &str, email: &Email) -> Result<lettre::Message, SendError> {
        let mailbox = |field: &str, value: &str| {
            value.parse::<Mailbox>().map_err(|error| {
                SendError::permanent(format!("{field} {value:?} is not a mail address: {error}"))
            })
        };
        if email.to.is_empty() {
            return Err(SendError::permanent("the mail has no recipient"));
        }
        let mut builder = lettre::Message::builder()
            .message_id(Some(format!("<{key}@{}>", self.domain)))
            .from(mailbox(
                "from",
                email.from.as_deref().unwrap_or(&self.from),
            )?)
            .subject(email.subject.clone());
        for to in &email.to {
            builder = builder.to(mailbox("to", to)?);
        }
        if let Some(reply_to) = &email.reply_to {
            builder = builder.reply_to(mailbox("reply-to", reply_to)?);
        }
        let built = match &email.html {
            Some(html) => builder.multipart(MultiPart::alternative_plain_html(
                email.text.clone(),
                html.clone(),
            )),
            None => builder
                .header(ContentType::TEXT_PLAIN)
                .body(email.text.clone()),
        };
        built.map_err(|error| SendError::permanent(format!("the mail cannot be built: {error}")))
    }
}

/// `url` without its password.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        Err(_) => String::from("(unreadable URL)"),
    }
}
