//! Components start in order before `init` and leave values every later stage reads; hosts
//! start after `init` with the user's value; a failing component is named and what start-up
//! began is undone.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::*;
use crate::__private::Launcher;
use crate::settings::{LogFormat, ServiceSettings};
use crate::{RestApi, Router, Service};

static SETTINGS: ServiceSettings = ServiceSettings {
    architecture: "shop",
    name: "greeter",
    archetype: "stateless",
    rest_port: 0,
    grpc_port: None,
    logging: LogFormat::Plain,
    declared_database: "sqlite",
    shutdown_timeout_secs: 1,
    deferred: &[],
};

#[derive(Debug, Clone, PartialEq)]
struct Greeting(String);

#[derive(Debug, Clone, PartialEq)]
struct Shout(String);

/// Inserts a [`Greeting`].
struct Greeter;

impl Component for Greeter {
    fn name(&self) -> &'static str {
        "greeter"
    }

    fn start<'a>(self: Box<Self>, startup: &'a mut Startup) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move {
            startup.insert(Greeting("hello".into()));
            Ok(())
        })
    }
}

/// Reads the earlier component's [`Greeting`] and inserts a [`Shout`].
struct Shouter;

impl Component for Shouter {
    fn name(&self) -> &'static str {
        "shouter"
    }

    fn start<'a>(self: Box<Self>, startup: &'a mut Startup) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move {
            let greeting = startup.get::<Greeting>().ok_or("no greeting yet")?;
            let shout = Shout(greeting.0.to_uppercase());
            startup.insert(shout);
            Ok(())
        })
    }
}

/// Spawns a task, then fails; `stopped` records that the task was told to stop.
struct Broken {
    stopped: Arc<AtomicBool>,
}

impl Component for Broken {
    fn name(&self) -> &'static str {
        "broken"
    }

    fn start<'a>(self: Box<Self>, startup: &'a mut Startup) -> BoxFuture<'a, Result<(), BoxError>> {
        let stopped = self.stopped;
        startup
            .ctx()
            .tasks()
            .spawn("broken-worker", move |token| async move {
                token.cancelled().await;
                stopped.store(true, Ordering::SeqCst);
                Ok(())
            });
        Box::pin(std::future::ready(Err("the engine is missing".into())))
    }
}

/// The user's service: keeps what `init` saw in the context.
struct Greeted {
    seen_in_init: Option<Shout>,
}

impl Service for Greeted {
    async fn init(cx: &Ctx) -> Result<Self, BoxError> {
        Ok(Self {
            seen_in_init: cx.get::<Shout>().cloned(),
        })
    }
}

impl RestApi for Greeted {
    fn routes() -> Router<Self> {
        Router::new()
    }
}

/// A service whose `init` must not run.
struct Unreached;

static UNREACHED_INIT_RAN: AtomicBool = AtomicBool::new(false);

impl Service for Unreached {
    async fn init(_cx: &Ctx) -> Result<Self, BoxError> {
        UNREACHED_INIT_RAN.store(true, Ordering::SeqCst);
        Ok(Self)
    }
}

impl RestApi for Unreached {
    fn routes() -> Router<Self> {
        Router::new()
    }
}

/// A host that records the user's value it was given, and that its shutdown hook ran.
struct Recorder {
    seen: Arc<std::sync::Mutex<Option<Shout>>>,
    hook_ran: Arc<AtomicBool>,
}

impl Host<Greeted> for Recorder {
    fn name(&self) -> &'static str {
        "recorder"
    }

    fn start<'a>(
        self: Box<Self>,
        app: &'a App<Greeted>,
        _startup: &'a Startup,
    ) -> BoxFuture<'a, Result<Hosted, RuntimeError>> {
        if let Ok(mut seen) = self.seen.lock() {
            seen.clone_from(&app.service().seen_in_init);
        }
        let hook_ran = self.hook_ran;
        let mut hosted = Hosted::default();
        hosted.on_shutdown.push(Box::pin(async move {
            hook_ran.store(true, Ordering::SeqCst);
        }));
        Box::pin(std::future::ready(Ok(hosted)))
    }
}

fn env(dir: &std::path::Path) -> Environment {
    Environment::from_pairs([
        ("ALLFRAME_DATA_DIR", dir.to_string_lossy().into_owned()),
        ("PORT", "0".to_owned()),
        ("ALLFRAME_BIND_ADDR", "127.0.0.1".to_owned()),
    ])
}

#[tokio::test]
async fn components_fill_the_context_in_order_and_hosts_serve_the_built_value() {
    let temp = tempfile::tempdir().expect("temp dir");
    let seen = Arc::new(std::sync::Mutex::new(None));
    let hook_ran = Arc::new(AtomicBool::new(false));
    let running = Launcher::<Greeted>::new(&SETTINGS)
        .env(env(temp.path()))
        .component(Greeter)
        .component(Shouter)
        .host(Recorder {
            seen: seen.clone(),
            hook_ran: hook_ran.clone(),
        })
        .start()
        .await
        .expect("starts");

    let shout = Some(Shout("HELLO".into()));
    assert_eq!(
        running.ctx().get::<Shout>(),
        shout.as_ref(),
        "handlers see it"
    );
    assert_eq!(
        *seen.lock().expect("lock"),
        shout,
        "init saw it, and the host got init's value"
    );
    assert_eq!(running.ctx().get::<u64>(), None, "nothing else is there");
    assert!(running.shutdown().await.is_clean());
    assert!(hook_ran.load(Ordering::SeqCst), "the host's hook ran");
}

#[tokio::test]
async fn a_failing_component_is_named_and_what_started_is_stopped() {
    let temp = tempfile::tempdir().expect("temp dir");
    let stopped = Arc::new(AtomicBool::new(false));
    let error = Launcher::<Unreached>::new(&SETTINGS)
        .env(env(temp.path()))
        .component(Broken {
            stopped: stopped.clone(),
        })
        .start()
        .await
        .expect_err("the component fails");
    assert!(
        matches!(&error, RuntimeError::Component { name: "broken", .. }),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "broken could not start: the engine is missing"
    );
    assert!(stopped.load(Ordering::SeqCst), "its task was stopped");
    assert!(!UNREACHED_INIT_RAN.load(Ordering::SeqCst), "init never ran");
}

#[tokio::test]
async fn a_component_added_twice_runs_once_as_added_last() {
    let temp = tempfile::tempdir().expect("temp dir");
    let stopped = Arc::new(AtomicBool::new(false));
    // `Broken` is named "broken"; a later component of that name replaces it.
    struct Fixed;
    impl Component for Fixed {
        fn name(&self) -> &'static str {
            "broken"
        }
        fn start<'a>(
            self: Box<Self>,
            startup: &'a mut Startup,
        ) -> BoxFuture<'a, Result<(), BoxError>> {
            startup.insert(Greeting("fixed".into()));
            Box::pin(std::future::ready(Ok(())))
        }
    }
    let running = Launcher::<Greeted>::new(&SETTINGS)
        .env(env(temp.path()))
        .component(Broken { stopped })
        .component(Fixed)
        .start()
        .await
        .expect("the replacement starts");
    assert_eq!(
        running.ctx().get::<Greeting>(),
        Some(&Greeting("fixed".into()))
    );
    assert!(running.shutdown().await.is_clean());
}
