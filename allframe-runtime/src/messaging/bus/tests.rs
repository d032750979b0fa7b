use super::*;

#[tokio::test]
async fn engine_schemes_name_their_feature_and_never_echo_the_url() {
    let dir = std::env::temp_dir();
    for (url, feature) in [
        ("nats://127.0.0.1:4222", "nats"),
        ("amqp://guest:hunter2@127.0.0.1:5672/%2f", "rabbitmq"),
        ("kafka://127.0.0.1:9092", "kafka"),
    ] {
        let built = match feature {
            "nats" => cfg!(feature = "nats"),
            "rabbitmq" => cfg!(feature = "rabbitmq"),
            _ => cfg!(feature = "kafka"),
        };
        let result = EventBus::connect(Some(url), &dir).await;
        if built {
            // The adapter is compiled in: connecting may succeed (a broker is running)
            // or fail, but a failure never echoes the password.
            if let Err(error) = result {
                assert!(!error.to_string().contains("hunter2"), "{error}");
            }
            continue;
        }
        let error = result.expect_err(url);
        assert!(
            matches!(&error, BusError::FeatureDisabled { feature: f, .. } if *f == feature),
            "{error}"
        );
        assert!(!error.to_string().contains("hunter2"));
    }
    let error = EventBus::connect(Some("redis://x"), &dir)
        .await
        .expect_err("redis");
    assert!(matches!(&error, BusError::UnsupportedScheme { scheme } if scheme == "redis"));
    let error = EventBus::connect(Some("what"), &dir)
        .await
        .expect_err("junk");
    assert!(matches!(error, BusError::InvalidUrl { .. }));
}
