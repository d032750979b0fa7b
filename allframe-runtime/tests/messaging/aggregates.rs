//! Aggregates over the event store on SQLite: commands at an expected version, snapshots that
//! load the same state as a full replay (a property over random command sequences), snapshots
//! this code cannot read rebuilt by replay, events written at schema 1 read by code at 2, and
//! `#[derive(AggregateEvent)]` over shared `Event` types, upcast through `Event::upcast`.
#![cfg(feature = "sqlite")]

use allframe_runtime::eventstore::{
    Aggregate, AggregateEvent, CommandError, EventStore, ExpectedVersion, NewEvent, Repository,
    StreamId, UpcastError,
};
use allframe_runtime::messaging::{Event, Messaging};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::messaging_support::{RecordingBus, outbox_messaging, sqlite_db};

/// An account: opened once, then deposits and withdrawals that never overdraw it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Account {
    open: bool,
    balance: i64,
    movements: u64,
}

#[derive(Debug, Clone, PartialEq)]
enum AccountEvent {
    Opened,
    /// Schema 2 counts cents; schema 1 counted whole units as `amount`.
    Deposited {
        cents: i64,
    },
    Withdrew {
        cents: i64,
    },
}

#[derive(Debug, Clone)]
enum Command {
    Open,
    Deposit(i64),
    Withdraw(i64),
}

#[derive(Debug, thiserror::Error, PartialEq)]
enum Refusal {
    #[error("the account is not open")]
    Closed,
    #[error("the account is open already")]
    Open,
    #[error("the balance does not cover {0}")]
    Overdrawn(i64),
}

impl AggregateEvent for AccountEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::Opened => "AccountOpened",
            Self::Deposited { .. } => "Deposited",
            Self::Withdrew { .. } => "Withdrew",
        }
    }

    fn schema_version(event_type: &str) -> Option<u32> {
        match event_type {
            "AccountOpened" | "Withdrew" => Some(1),
            "Deposited" => Some(2),
            _ => None,
        }
    }

    fn to_payload(&self) -> Result<Value, serde_json::Error> {
        Ok(match self {
            Self::Opened => json!({}),
            Self::Deposited { cents } | Self::Withdrew { cents } => json!({ "cents": cents }),
        })
    }

    fn decode(event_type: &str, payload: Value) -> Result<Self, serde_json::Error> {
        #[derive(Deserialize)]
        struct Cents {
            cents: i64,
        }
        Ok(match event_type {
            "Deposited" => Self::Deposited {
                cents: serde_json::from_value::<Cents>(payload)?.cents,
            },
            "Withdrew" => Self::Withdrew {
                cents: serde_json::from_value::<Cents>(payload)?.cents,
            },
            _ => Self::Opened,
        })
    }

    fn upcast(event_type: &str, from: u32, payload: Value) -> Result<Value, UpcastError> {
        match (event_type, from, payload["amount"].as_i64()) {
            ("Deposited", 1, Some(amount)) => Ok(json!({ "cents": amount * 100 })),
            _ => Err(UpcastError::Invalid {
                event_type: event_type.to_owned(),
                from,
                reason: format!("no whole `amount` in {payload}"),
            }),
        }
    }
}

impl Aggregate for Account {
    const TYPE: &'static str = "Account";
    type Event = AccountEvent;
    type Command = Command;
    type Error = Refusal;

    fn handle(&self, _id: &str, command: Command) -> Result<Vec<AccountEvent>, Refusal> {
        match command {
            Command::Open if self.open => Err(Refusal::Open),
            Command::Open => Ok(vec![AccountEvent::Opened]),
            _ if !self.open => Err(Refusal::Closed),
            Command::Deposit(cents) => Ok(vec![AccountEvent::Deposited { cents }]),
            Command::Withdraw(cents) if cents > self.balance => Err(Refusal::Overdrawn(cents)),
            Command::Withdraw(cents) => Ok(vec![AccountEvent::Withdrew { cents }]),
        }
    }

    fn apply(&mut self, event: &AccountEvent) {
        match event {
            AccountEvent::Opened => self.open = true,
            AccountEvent::Deposited { cents } => self.balance += cents,
            AccountEvent::Withdrew { cents } => self.balance -= cents,
        }
        self.movements += 1;
    }
}

async fn repository(
    db: &allframe_runtime::Database,
    every: u64,
) -> (Repository<Account>, Messaging) {
    let store = EventStore::open(db).await.expect("the store opens");
    let messaging = outbox_messaging(db, &RecordingBus::new());
    (Repository::new(store, every), messaging)
}

async fn run(
    repo: &Repository<Account>,
    messaging: &Messaging,
    id: &str,
    expected: Option<u64>,
    command: Command,
) -> Result<u64, CommandError<Refusal>> {
    let mut uow = messaging.begin().await.expect("begin");
    let done = repo.execute(&mut uow, id, expected, command).await?;
    uow.commit().await.expect("commit");
    Ok(done.version)
}

#[tokio::test]
async fn a_command_runs_at_the_version_its_caller_expects_or_writes_nothing() {
    let temp = tempfile::tempdir().expect("temp dir");
    let db = sqlite_db(temp.path(), "accounts.db").await;
    let (repo, messaging) = repository(&db, 0).await;
    assert_eq!(
        run(&repo, &messaging, "a", Some(0), Command::Open)
            .await
            .expect("open"),
        1
    );
    assert_eq!(
        run(&repo, &messaging, "a", None, Command::Deposit(500))
            .await
            .expect("deposit"),
        2
    );
    let stale = run(&repo, &messaging, "a", Some(1), Command::Withdraw(100)).await;
    assert!(
        matches!(
            stale,
            Err(CommandError::Conflict {
                expected: 1,
                actual: 2,
                ..
            })
        ),
        "{stale:?}"
    );
    let refused = run(&repo, &messaging, "a", Some(2), Command::Withdraw(900)).await;
    assert!(
        matches!(refused, Err(CommandError::Refused(Refusal::Overdrawn(900)))),
        "{refused:?}"
    );
    let loaded = repo.load("a").await.expect("load");
    assert_eq!(
        (loaded.version, loaded.state.balance),
        (2, 500),
        "nothing written by either"
    );
}

#[tokio::test]
async fn events_written_at_schema_1_are_read_by_code_at_schema_2() {
    let temp = tempfile::tempdir().expect("temp dir");
    let db = sqlite_db(temp.path(), "accounts.db").await;
    let (repo, messaging) = repository(&db, 0).await;
    let store = EventStore::open(&db).await.expect("the store");
    let stream = StreamId::new("Account", "old");
    let written_by_v1 = [
        NewEvent {
            event_type: "AccountOpened".into(),
            schema_version: 1,
            payload: json!({}),
        },
        NewEvent {
            event_type: "Deposited".into(),
            schema_version: 1,
            payload: json!({ "amount": 7 }),
        },
    ];
    let mut uow = messaging.begin().await.expect("begin");
    store
        .append(&mut uow, &stream, ExpectedVersion::NoStream, &written_by_v1)
        .await
        .expect("append");
    uow.commit().await.expect("commit");

    let loaded = repo.load("old").await.expect("upcast on read");
    assert_eq!((loaded.state.balance, loaded.version), (700, 2));
    run(&repo, &messaging, "old", Some(2), Command::Withdraw(200))
        .await
        .expect("a v2 command");
    assert_eq!(repo.load("old").await.expect("load").state.balance, 500);

    let unreadable = NewEvent {
        event_type: "Deposited".into(),
        schema_version: 1,
        payload: json!({ "sum": 1 }),
    };
    let mut uow = messaging.begin().await.expect("begin");
    store
        .append(&mut uow, &stream, ExpectedVersion::Any, &[unreadable])
        .await
        .expect("append");
    uow.commit().await.expect("commit");
    let error = repo
        .load("old")
        .await
        .expect_err("an upcaster refusing is an error");
    assert!(error.to_string().contains("schema version 1"), "{error}");
}

#[tokio::test]
async fn a_snapshot_this_code_cannot_read_is_rebuilt_by_replay() {
    let temp = tempfile::tempdir().expect("temp dir");
    let db = sqlite_db(temp.path(), "accounts.db").await;
    let (repo, messaging) = repository(&db, 2).await;
    for command in [Command::Open, Command::Deposit(3), Command::Deposit(4)] {
        run(&repo, &messaging, "s", None, command)
            .await
            .expect("command");
    }
    let store = EventStore::open(&db).await.expect("the store");
    let mut uow = messaging.begin().await.expect("begin");
    let stream = StreamId::new("Account", "s");
    store
        .save_snapshot(&mut uow, &stream, 9, 1, &json!({ "bogus": true }))
        .await
        .expect("save");
    uow.commit().await.expect("commit");
    let loaded = repo.load("s").await.expect("load");
    assert_eq!(
        (loaded.state.balance, loaded.version),
        (7, 3),
        "replayed from the start"
    );
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        1 => Just(Command::Open),
        4 => (1..1_000i64).prop_map(Command::Deposit),
        3 => (1..1_500i64).prop_map(Command::Withdraw),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Whatever commands ran (refused ones included), loading from the latest snapshot gives
    /// the state and version of a full replay.
    #[test]
    fn snapshot_and_replay_equal_a_full_replay(
        commands in prop::collection::vec(command(), 1..40),
        every in 1..6u64,
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            let temp = tempfile::tempdir().expect("temp dir");
            let db = sqlite_db(temp.path(), "accounts.db").await;
            let (repo, messaging) = repository(&db, every).await;
            for command in commands {
                let _ = run(&repo, &messaging, "p", None, command).await;
            }
            let (loaded, replayed) = (repo.load("p").await.expect("load"), repo.replay_all("p").await.expect("replay"));
            let store = EventStore::open(&db).await.expect("the store");
            let snapshot = store.load_snapshot(&StreamId::new("Account", "p"), 1).await.expect("snapshot");
            prop_assert_eq!(snapshot.is_some(), loaded.version >= every, "snapshotted every {} events", every);
            prop_assert_eq!(loaded, replayed);
            Ok(())
        })?;
    }
}

/// A shared event type, as a generated workspace's events crate declares it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ProfileCreated {
    id: String,
    email: String,
}

impl Event for ProfileCreated {
    const TYPE: &'static str = "ProfileCreated";
    const VERSION: u32 = 1;
    const AGGREGATE_TYPE: &'static str = "Profile";
    fn aggregate_id(&self) -> String {
        self.id.clone()
    }
}

/// Schema 2 renamed schema 1's `name` to `display_name`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ProfileRenamed {
    id: String,
    display_name: String,
}

impl Event for ProfileRenamed {
    const TYPE: &'static str = "ProfileRenamed";
    const VERSION: u32 = 2;
    const AGGREGATE_TYPE: &'static str = "Profile";
    fn aggregate_id(&self) -> String {
        self.id.clone()
    }

    /// The same type as `allframe_runtime::eventstore::UpcastError`.
    fn upcast(
        from: u32,
        mut payload: Value,
    ) -> Result<Value, allframe_runtime::messaging::UpcastError> {
        let name = payload
            .as_object_mut()
            .filter(|_| from == 1)
            .and_then(|fields| fields.remove("name"));
        match name {
            Some(name) => {
                payload["display_name"] = name;
                Ok(payload)
            }
            None => Err(UpcastError::Invalid {
                event_type: Self::TYPE.to_owned(),
                from,
                reason: format!("no `name` in {payload}"),
            }),
        }
    }
}

#[derive(Debug, Clone, PartialEq, allframe_runtime::AggregateEvent)]
#[allframe(crate = allframe_runtime)]
enum ProfileEvent {
    Created(ProfileCreated),
    Renamed(ProfileRenamed),
}

/// A profile: its events are the shared types above, through the derive.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Profile {
    email: String,
    display_name: String,
    renames: u32,
}

impl Aggregate for Profile {
    const TYPE: &'static str = "Profile";
    type Event = ProfileEvent;
    /// The new display name.
    type Command = String;
    type Error = std::convert::Infallible;

    fn handle(&self, _id: &str, display_name: String) -> Result<Vec<ProfileEvent>, Self::Error> {
        Ok(vec![ProfileEvent::Renamed(ProfileRenamed {
            id: "p".into(),
            display_name,
        })])
    }

    fn apply(&mut self, event: &ProfileEvent) {
        match event {
            ProfileEvent::Created(created) => self.email.clone_from(&created.email),
            ProfileEvent::Renamed(renamed) => {
                self.display_name.clone_from(&renamed.display_name);
                self.renames += 1;
            }
        }
    }
}

#[test]
fn a_derived_aggregate_event_stores_each_variant_under_its_event_type() {
    let events = [
        ProfileEvent::Created(ProfileCreated {
            id: "p".into(),
            email: "p@example.com".into(),
        }),
        ProfileEvent::Renamed(ProfileRenamed {
            id: "p".into(),
            display_name: "Pat".into(),
        }),
    ];
    for event in events {
        let event_type = event.event_type();
        let payload = event.to_payload().expect("serialises");
        assert_eq!(
            ProfileEvent::decode(event_type, payload).expect("decodes"),
            event
        );
    }
    assert_eq!(
        ProfileEvent::Renamed(ProfileRenamed {
            id: "p".into(),
            display_name: "Pat".into(),
        })
        .to_payload()
        .expect("serialises"),
        json!({ "id": "p", "display_name": "Pat" })
    );
    assert_eq!(ProfileEvent::schema_version("ProfileCreated"), Some(1));
    assert_eq!(ProfileEvent::schema_version("ProfileRenamed"), Some(2));
    assert_eq!(ProfileEvent::schema_version("ProfileDeleted"), None);

    let unknown =
        ProfileEvent::decode("ProfileDeleted", json!({})).expect_err("an unknown type is refused");
    assert_eq!(
        unknown.to_string(),
        "`ProfileEvent` has no event type `ProfileDeleted`; it knows `ProfileCreated`, \
         `ProfileRenamed`"
    );
    let wrong_shape = ProfileEvent::decode("ProfileRenamed", json!({ "id": "p", "name": "Pat" }));
    assert!(wrong_shape.is_err(), "{wrong_shape:?}");

    assert_eq!(
        ProfileEvent::upcast("ProfileRenamed", 1, json!({ "id": "p", "name": "Pat" }))
            .expect("1 to 2"),
        json!({ "id": "p", "display_name": "Pat" })
    );
    let no_upcaster = ProfileEvent::upcast("ProfileCreated", 1, json!({}));
    assert!(
        matches!(&no_upcaster, Err(UpcastError::Missing { event_type, from: 1 }) if event_type == "ProfileCreated"),
        "the default `Event::upcast` refuses: {no_upcaster:?}"
    );
    let unknown = ProfileEvent::upcast("ProfileDeleted", 1, json!({}));
    assert!(
        matches!(&unknown, Err(UpcastError::Missing { event_type, from: 1 }) if event_type == "ProfileDeleted"),
        "{unknown:?}"
    );
}

#[tokio::test]
async fn derived_events_written_at_schema_1_are_upcast_through_event_upcast() {
    let temp = tempfile::tempdir().expect("temp dir");
    let db = sqlite_db(temp.path(), "profiles.db").await;
    let store = EventStore::open(&db).await.expect("the store");
    let messaging = outbox_messaging(&db, &RecordingBus::new());
    let repo = Repository::<Profile>::new(store.clone(), 0);
    let stream = StreamId::new("Profile", "p");
    let written_by_v1 = [
        NewEvent {
            event_type: "ProfileCreated".into(),
            schema_version: 1,
            payload: json!({ "id": "p", "email": "p@example.com" }),
        },
        NewEvent {
            event_type: "ProfileRenamed".into(),
            schema_version: 1,
            payload: json!({ "id": "p", "name": "Pat" }),
        },
    ];
    let mut uow = messaging.begin().await.expect("begin");
    store
        .append(&mut uow, &stream, ExpectedVersion::NoStream, &written_by_v1)
        .await
        .expect("append");
    uow.commit().await.expect("commit");

    let loaded = repo.load("p").await.expect("upcast on read");
    assert_eq!(loaded.version, 2);
    assert_eq!(
        loaded.state,
        Profile {
            email: "p@example.com".into(),
            display_name: "Pat".into(),
            renames: 1,
        },
        "the v1 `name` is read as the v2 `display_name`"
    );

    let mut uow = messaging.begin().await.expect("begin");
    let renamed = repo
        .execute(&mut uow, "p", Some(2), "Patricia".to_owned())
        .await
        .expect("a v2 command");
    uow.commit().await.expect("commit");
    assert_eq!((renamed.version, renamed.state.renames), (3, 2));
    let mut stored = store.read_stream(&stream, 2);
    let written_by_v2 = futures_util::TryStreamExt::try_next(&mut stored)
        .await
        .expect("read")
        .expect("the third event");
    assert_eq!(
        (written_by_v2.schema_version, written_by_v2.payload),
        (2, json!({ "id": "p", "display_name": "Patricia" }))
    );
    assert_eq!(
        repo.load("p").await.expect("load").state.display_name,
        "Patricia"
    );

    let unreadable = NewEvent {
        event_type: "ProfileRenamed".into(),
        schema_version: 1,
        payload: json!({ "id": "p", "nickname": "P" }),
    };
    let mut uow = messaging.begin().await.expect("begin");
    store
        .append(&mut uow, &stream, ExpectedVersion::Any, &[unreadable])
        .await
        .expect("append");
    uow.commit().await.expect("commit");
    let error = repo
        .load("p")
        .await
        .expect_err("an upcaster refusing is an error");
    assert!(
        error
            .to_string()
            .contains("`ProfileRenamed` at schema version 1 cannot be upcast"),
        "{error}"
    );
}
