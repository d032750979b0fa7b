//! Notification channels: what a handler sends is enqueued in its transaction and delivered
//! once, with its idempotency key, to a real SMTP server (mailin) and a real HTTP server
//! (axum), both started by the test; transient failures are retried, permanent ones parked.
#![cfg(all(feature = "sqlite", feature = "email", feature = "webhook"))]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use allframe_runtime::__private::Environment;
use allframe_runtime::channel::{
    Channel, ChannelSender, Email, Notifications, Push, SendEmail as _, SendPush as _,
    SendSms as _, SendWebhook as _, Sms, Transports, Webhook, outbox,
};
use allframe_runtime::consumer::{
    Consumer, ConsumerMetrics, HandleError, Handlers, Outcome, RetryPolicy, store,
};
use allframe_runtime::messaging::{Delivery, DeliveryTag, RetrySettings, UnitOfWork};
use allframe_runtime::{Database, sqlx};
use axum::http::{HeaderMap, StatusCode};
use futures_util::future::BoxFuture;
use mailin_embedded::{Action, Handler as SmtpHandler, Response, Server, response};

use crate::messaging_support::*;

const SERVICE: &str = "ledger-service";
const GROUP: &str = "bank.ledger-service";

/// Mails the account holder for each deposit (and texts, pushes and posts it when `all`);
/// fails after sending when `fail` is set.
#[derive(Clone, Default)]
struct Notifier {
    all: bool,
    fail: Arc<AtomicBool>,
}

impl Handlers for Notifier {
    fn handle<'a>(
        &'a self,
        uow: &'a mut UnitOfWork,
        delivery: &'a Delivery,
        notify: &'a mut Notifications,
    ) -> BoxFuture<'a, Result<(), HandleError>> {
        Box::pin(async move {
            let event: Deposited = delivery.decode()?;
            sqlx::query("INSERT INTO accounts (id, balance) VALUES ($1, 1)")
                .bind(&event.account)
                .execute(uow.conn())
                .await
                .map_err(HandleError::failed)?;
            let to = format!("{}@example.com", event.account);
            notify.send_email(Email::new(
                &to,
                "Deposit",
                format!("deposit {} credited", event.n),
            ));
            if self.all {
                notify.send_sms(Sms::new("+15550100", "credited"));
                notify.send_push(Push::new("device-1", "Deposit", "credited"));
                notify.send_webhook(Webhook::new(serde_json::json!({"account": event.account})));
            }
            if self.fail.load(Ordering::SeqCst) {
                return Err(HandleError::failed("the ledger is closed"));
            }
            Ok(())
        })
    }
}

fn delivery(account: &str) -> Delivery {
    let message = message(account, 0);
    Delivery::new(message.topic, message.envelope, DeliveryTag::new(1))
}

fn policy() -> RetryPolicy {
    RetryPolicy {
        intervals: RetrySettings {
            initial_interval_ms: 10,
            max_interval_ms: 20,
            ..RetrySettings::DEFAULT
        },
        ..RetryPolicy::DEFAULT
    }
}

async fn consumer(db: &Database, notifier: Notifier) -> Consumer<Notifier> {
    store::install(db).await.expect("consumer tables");
    Consumer::new(db.clone(), None, SERVICE, GROUP, notifier, policy())
}

fn sender(
    db: &Database,
    env: &Environment,
    channels: &[Channel],
) -> (ChannelSender, ConsumerMetrics) {
    let data = std::env::temp_dir();
    let transports = Transports::from_env(env, SERVICE, &data, channels).expect("transports");
    let metrics = ConsumerMetrics::default();
    let sender = ChannelSender::new(db.clone(), transports, policy()).observed_by(metrics.clone());
    (sender, metrics)
}

/// Sends until the outbox is empty or only parked rows are left (at most 5 s).
async fn drain(db: &Database, sender: &ChannelSender) {
    for _ in 0..100 {
        sender.send_due().await.expect("send");
        let waiting: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM allframe_channel_outbox WHERE failed_at IS NULL",
        )
        .fetch_one(db.pool())
        .await
        .expect("count");
        if waiting == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the channel outbox did not drain");
}

/// One mail as the SMTP server received it.
#[derive(Debug, Clone)]
struct Received {
    to: Vec<String>,
    data: String,
}

/// A real SMTP server (mailin) on a free loopback port: it records what it accepts, and
/// answers the end of each mail's data with the next scripted response (then 250).
#[derive(Clone, Default)]
struct Mailbox {
    received: Arc<Mutex<Vec<Received>>>,
    answers: Arc<Mutex<VecDeque<Response>>>,
    to: Vec<String>,
    data: Vec<u8>,
}

impl SmtpHandler for Mailbox {
    fn data_start(&mut self, _domain: &str, _from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.to = to.to_vec();
        self.data.clear();
        response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        if let Some(answer) = self.answers.lock().unwrap().pop_front() {
            return answer;
        }
        self.received.lock().unwrap().push(Received {
            to: std::mem::take(&mut self.to),
            data: String::from_utf8_lossy(&self.data).into_owned(),
        });
        response::OK
    }
}

/// `refusal`, after which the server hangs up. (mailin stays in its DATA state after refusing
/// a mail's data, so the connection could not take another mail anyway.)
fn closing(mut refusal: Response) -> Response {
    refusal.action = Action::Close;
    refusal
}

impl Mailbox {
    /// Serves on a free port; the address.
    fn serve(&self) -> SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        let addr = listener.local_addr().expect("addr");
        let mut server = Server::new(self.clone());
        server
            .with_name("mail.test")
            .with_num_threads(2)
            .with_tcp_listener(listener);
        std::thread::spawn(move || {
            let _ = server.serve();
        });
        addr
    }

    fn mails(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

#[tokio::test]
async fn a_redelivered_event_mails_once_with_its_key_as_message_id() {
    let temp = tempfile::tempdir().unwrap();
    let db = sqlite_db(temp.path(), "ledger.db").await;
    let notifier = Notifier::default();
    let consumer = consumer(&db, notifier.clone()).await;
    let mailbox = Mailbox::default();
    let addr = mailbox.serve();
    let env = Environment::from_pairs([
        ("SMTP_URL", format!("smtp://{addr}")),
        ("EMAIL_FROM", "Bank <bank@example.com>".into()),
    ]);
    let (sender, metrics) = sender(&db, &env, &[Channel::Email]);

    // A failing attempt enqueues nothing: its mail rolls back with it.
    let message = delivery("acct-7");
    notifier.fail.store(true, Ordering::SeqCst);
    assert!(matches!(
        consumer.handle(&message).await.unwrap(),
        Outcome::Retry { .. }
    ));
    assert_eq!(outbox::undelivered(&db).await.unwrap(), 0);

    notifier.fail.store(false, Ordering::SeqCst);
    assert_eq!(consumer.handle(&message).await.unwrap(), Outcome::Handled);
    assert_eq!(consumer.handle(&message).await.unwrap(), Outcome::Duplicate);
    drain(&db, &sender).await;
    assert_eq!(consumer.handle(&message).await.unwrap(), Outcome::Duplicate);
    drain(&db, &sender).await;

    let mails = mailbox.mails();
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(mails[0].to, ["acct-7@example.com"]);
    let id = message.envelope().id.hyphenated();
    let header = format!("Message-ID: <{id}.email.1@{SERVICE}.allframe>");
    assert!(mails[0].data.contains(&header), "{}", mails[0].data);
    assert!(
        mails[0].data.contains("From: Bank <bank@example.com>"),
        "{}",
        mails[0].data
    );
    assert_eq!(outbox::undelivered(&db).await.unwrap(), 0);
    assert_eq!(metrics.notifications("email", "sent"), 1);
}

#[tokio::test]
async fn a_mail_the_server_defers_is_sent_later_and_one_it_rejects_is_parked() {
    let temp = tempfile::tempdir().unwrap();
    let db = sqlite_db(temp.path(), "ledger.db").await;
    let consumer = consumer(&db, Notifier::default()).await;
    let mailbox = Mailbox::default();
    mailbox.answers.lock().unwrap().extend([
        closing(response::INTERNAL_ERROR), // 451: try again later
        closing(response::NO_MAILBOX),     // 550: never
    ]);
    let addr = mailbox.serve();
    let env = Environment::from_pairs([("SMTP_URL", format!("smtp://{addr}"))]);
    let (sender, metrics) = sender(&db, &env, &[Channel::Email]);

    assert_eq!(
        consumer.handle(&delivery("acct-1")).await.unwrap(),
        Outcome::Handled
    );
    sender.send_due().await.unwrap(); // 451
    assert_eq!(metrics.notifications("email", "retried"), 1);
    drain(&db, &sender).await; // 550
    assert_eq!(metrics.notifications("email", "failed"), 1);
    assert_eq!(metrics.parked_notifications(), 1);
    assert!(mailbox.mails().is_empty());
    let (attempts, error): (i64, String) = sqlx::query_as(
        "SELECT attempts, last_error FROM allframe_channel_outbox WHERE failed_at IS NOT NULL",
    )
    .fetch_one(db.pool())
    .await
    .expect("the parked mail");
    assert_eq!(attempts, 2);
    assert!(error.contains("550"), "{error}");

    // The next mail goes through: the server has no more refusals scripted.
    assert_eq!(
        consumer.handle(&delivery("acct-2")).await.unwrap(),
        Outcome::Handled
    );
    drain(&db, &sender).await;
    assert_eq!(mailbox.mails().len(), 1);
    assert_eq!(metrics.notifications("email", "sent"), 1);
}

/// One request the webhook server received.
#[derive(Debug, Clone)]
struct Posted {
    path: String,
    key: Option<String>,
    authorization: Option<String>,
    body: serde_json::Value,
}

/// A real HTTP server (axum) on a free port: records each POST and answers with the next
/// scripted status (then 200).
async fn webhook_server(answers: Vec<StatusCode>) -> (SocketAddr, Arc<Mutex<Vec<Posted>>>) {
    let posted: Arc<Mutex<Vec<Posted>>> = Arc::default();
    let answers = Arc::new(Mutex::new(VecDeque::from(answers)));
    let record = posted.clone();
    let app = axum::Router::new().route(
        "/{*path}",
        axum::routing::post(
            move |uri: axum::http::Uri, headers: HeaderMap, body: axum::Json<serde_json::Value>| {
                let (record, answers) = (record.clone(), answers.clone());
                async move {
                    let header = |name: &str| {
                        headers
                            .get(name)
                            .map(|v| v.to_str().unwrap_or_default().to_owned())
                    };
                    record.lock().unwrap().push(Posted {
                        path: uri.path().to_owned(),
                        key: header("idempotency-key"),
                        authorization: header("authorization"),
                        body: body.0,
                    });
                    answers
                        .lock()
                        .unwrap()
                        .pop_front()
                        .unwrap_or(StatusCode::OK)
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, posted)
}

#[tokio::test]
async fn sms_push_and_webhooks_are_posted_with_their_idempotency_keys() {
    let temp = tempfile::tempdir().unwrap();
    let db = sqlite_db(temp.path(), "ledger.db").await;
    let consumer = consumer(
        &db,
        Notifier {
            all: true,
            ..Notifier::default()
        },
    )
    .await;
    let mailbox = Mailbox::default();
    let smtp = mailbox.serve();
    // The SMS gateway is busy once (retried), the push gateway refuses the request (parked).
    let (addr, posted) = webhook_server(vec![StatusCode::SERVICE_UNAVAILABLE]).await;
    let (push_addr, push_posted) = webhook_server(vec![StatusCode::BAD_REQUEST]).await;
    let env = Environment::from_pairs([
        ("SMTP_URL", format!("smtp://{smtp}")),
        (
            "SMS_WEBHOOK_URL",
            format!("http://gateway:s3cret@{addr}/sms"),
        ),
        ("PUSH_WEBHOOK_URL", format!("http://{push_addr}/push")),
        ("WEBHOOK_URL", format!("http://{addr}/hook")),
    ]);
    let (sender, metrics) = sender(&db, &env, &Channel::ALL);

    let message = delivery("acct-3");
    assert_eq!(consumer.handle(&message).await.unwrap(), Outcome::Handled);
    drain(&db, &sender).await;

    let id = message.envelope().id.hyphenated().to_string();
    let posted = posted.lock().unwrap().clone();
    let sms: Vec<&Posted> = posted.iter().filter(|p| p.path == "/sms").collect();
    assert_eq!(sms.len(), 2, "refused once, then accepted: {posted:?}");
    assert!(
        sms.iter()
            .all(|p| p.key.as_deref() == Some(&*format!("{id}.sms.1")))
    );
    assert_eq!(
        sms[1].body,
        serde_json::json!({"channel": "sms", "to": "+15550100", "text": "credited"})
    );
    // Basic auth from the URL's user and password ("gateway:s3cret").
    assert_eq!(
        sms[1].authorization.as_deref(),
        Some("Basic Z2F0ZXdheTpzM2NyZXQ=")
    );
    let hook: Vec<&Posted> = posted.iter().filter(|p| p.path == "/hook").collect();
    assert_eq!(hook.len(), 1);
    assert_eq!(hook[0].key.as_deref(), Some(&*format!("{id}.webhook.1")));
    assert_eq!(hook[0].body, serde_json::json!({"account": "acct-3"}));
    assert_eq!(push_posted.lock().unwrap().len(), 1);
    assert_eq!(mailbox.mails().len(), 1);

    assert_eq!(metrics.notifications("sms", "retried"), 1);
    assert_eq!(metrics.notifications("sms", "sent"), 1);
    assert_eq!(metrics.notifications("push", "failed"), 1);
    let parked: String = sqlx::query_scalar(
        "SELECT idempotency_key FROM allframe_channel_outbox WHERE failed_at IS NOT NULL",
    )
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert_eq!(parked, format!("{id}.push.1"));
}

#[tokio::test]
async fn a_channel_url_that_is_not_one_stops_the_start() {
    let env = Environment::from_pairs([("SMS_WEBHOOK_URL", "ftp://gateway")]);
    let error = Transports::from_env(&env, SERVICE, &std::env::temp_dir(), &[Channel::Sms])
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("SMS_WEBHOOK_URL") && error.contains("http://"),
        "{error}"
    );
    let env = Environment::from_pairs([
        ("EMAIL_FROM", "not an address"),
        ("SMTP_URL", "smtp://localhost:25"),
    ]);
    let error = Transports::from_env(&env, SERVICE, &std::env::temp_dir(), &[Channel::Email])
        .unwrap_err()
        .to_string();
    assert!(error.contains("EMAIL_FROM"), "{error}");
}
