//! The idempotency scenarios every store runs (SQLite, PostgreSQL, Redis) against a
//! [`Harness`]: one function per behaviour, called by each store's test file.

use super::*;

fn replayed(headers: &HeaderMap) -> bool {
    headers
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true")
}

/// The `detail` of a problem details answer (checking that it is one).
async fn error_of(response: Response) -> String {
    assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("json error body");
    assert_eq!(body["status"], status, "{body}");
    body["detail"].as_str().expect("detail").to_owned()
}

/// The request scenarios a shared store (PostgreSQL, Redis) runs on one service, in this order:
/// replay, pass-through, 422, 400, 409 in flight, 5xx release, tenants, rejected requests,
/// stored refusals and large bodies. (The SQLite suite runs them in smaller groups.)
pub async fn handles_every_kind_of_request(h: &Harness) {
    replays_the_first_response(h).await;
    passes_through_without_a_key_or_for_safe_methods(h).await;
    refuses_a_key_reused_for_another_request(h).await;
    refuses_malformed_keys(h).await;
    answers_409_while_the_first_is_in_flight(h).await;
    releases_the_key_after_a_5xx(h).await;
    scopes_keys_per_tenant(h).await;
    releases_the_key_of_a_rejected_request(h).await;
    stores_the_handlers_own_refusals(h).await;
    handles_large_bodies(h).await;
}

/// A repeat with the same key and request gets the first response back, marked, without running.
pub async fn replays_the_first_response(h: &Harness) {
    let tag = h.unique("replay");
    let key = h.unique("key-replay");
    let path = format!("/payments/{tag}");
    let first = h.post(&path, Some(&key), r#"{"amount":10}"#).await;
    assert_eq!(first.status(), 201);
    assert!(!replayed(first.headers()));
    let location = first.headers()[header::LOCATION].clone();
    let content_type = first.headers()[header::CONTENT_TYPE].clone();
    let first_body: Value = first.json().await.expect("json");
    assert_eq!(first_body["execution"], 1);

    for _ in 0..3 {
        let again = h.post(&path, Some(&key), r#"{"amount":10}"#).await;
        assert_eq!(again.status(), 201);
        assert!(replayed(again.headers()), "marked as a replay");
        assert_eq!(again.headers()[header::LOCATION], location);
        assert_eq!(again.headers()[header::CONTENT_TYPE], content_type);
        let body: Value = again.json().await.expect("json");
        assert_eq!(body, first_body, "the stored body, byte for byte");
    }
    assert_eq!(executions(&tag), 1, "the handler ran once");

    // Every unsafe method is protected, each key on its own.
    for (i, method) in ["PUT", "PATCH", "DELETE"].into_iter().enumerate() {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let key = h.unique(&format!("key-{method}"));
        for _ in 0..2 {
            let answer = h
                .client
                .request(method.clone(), h.url(&path))
                .header(KEY, &key)
                .body("same")
                .send()
                .await
                .expect("request");
            assert_eq!(answer.status(), 201, "{method}");
        }
        assert_eq!(executions(&tag), 2 + i, "{method} ran once");
    }
}

/// Safe methods and requests without a key run every time.
pub async fn passes_through_without_a_key_or_for_safe_methods(h: &Harness) {
    let tag = h.unique("passthrough");
    let path = format!("/payments/{tag}");
    for _ in 0..2 {
        let answer = h.post(&path, None, "{}").await;
        assert_eq!(answer.status(), 201);
        assert!(!replayed(answer.headers()));
    }
    for _ in 0..2 {
        let answer = h
            .client
            .get(h.url(&path))
            .header(KEY, h.unique("key-get"))
            .send()
            .await
            .expect("get");
        assert_eq!(answer.status(), 200);
        assert!(!replayed(answer.headers()));
    }
    assert_eq!(executions(&tag), 4);
    let health = h
        .client
        .get(h.url("/health/ready"))
        .header(KEY, "anything")
        .send()
        .await
        .expect("ready");
    assert_eq!(health.status(), 200);
}

/// The same key with another body, path or method is 422 and does not run.
pub async fn refuses_a_key_reused_for_another_request(h: &Harness) {
    let tag = h.unique("mismatch");
    let key = h.unique("key-mismatch");
    let path = format!("/payments/{tag}");
    assert_eq!(
        h.post(&path, Some(&key), r#"{"amount":10}"#).await.status(),
        201
    );
    let other_body = h.post(&path, Some(&key), r#"{"amount":99}"#).await;
    assert_eq!(other_body.status(), 422);
    assert!(error_of(other_body).await.contains("different request"));
    let other_path = h
        .post(&format!("{path}?dry_run=1"), Some(&key), r#"{"amount":10}"#)
        .await;
    assert_eq!(other_path.status(), 422);
    let other_method = h
        .client
        .put(h.url(&path))
        .header(KEY, &key)
        .body(r#"{"amount":10}"#)
        .send()
        .await
        .expect("put");
    assert_eq!(other_method.status(), 422);
    assert_eq!(executions(&tag), 1);
    // The original request still replays.
    let again = h.post(&path, Some(&key), r#"{"amount":10}"#).await;
    assert_eq!(again.status(), 201);
    assert!(replayed(again.headers()));
}

/// Empty, over-long, non-visible-ASCII and repeated keys are 400 and do not run.
pub async fn refuses_malformed_keys(h: &Harness) {
    let tag = h.unique("malformed");
    let path = format!("/payments/{tag}");
    let too_long = "k".repeat(256);
    for bad in [
        "",
        "\"\"",
        "with space",
        "tab\there",
        "quote\"inside",
        &too_long,
    ] {
        let answer = h.post(&path, Some(bad), "{}").await;
        assert_eq!(answer.status(), 400, "key {bad:?}");
        let message = error_of(answer).await;
        assert!(message.contains("idempotency-key"), "{message}");
    }
    let non_ascii = h
        .client
        .post(h.url(&path))
        .header(
            KEY,
            reqwest::header::HeaderValue::from_bytes("clé".as_bytes()).expect("obs-text value"),
        )
        .send()
        .await
        .expect("post");
    assert_eq!(non_ascii.status(), 400);
    let twice = h
        .client
        .post(h.url(&path))
        .header(KEY, "a")
        .header(KEY, "b")
        .send()
        .await
        .expect("post");
    assert_eq!(twice.status(), 400);
    assert!(error_of(twice).await.contains("more than once"));
    assert_eq!(executions(&tag), 0);
    // The longest valid key, and the quoted form of a key, are accepted.
    let longest = format!("{}{}", h.nonce, "k".repeat(255 - h.nonce.len()));
    assert_eq!(h.post(&path, Some(&longest), "{}").await.status(), 201);
    let quoted = h.post(&path, Some(&format!("\"{longest}\"")), "{}").await;
    assert!(replayed(quoted.headers()), "\"k\" and k are the same key");
    assert_eq!(executions(&tag), 1);
}

/// With `ALLFRAME_IDEMPOTENCY_TTL_SECS=1`: replayed at first, run again once the TTL passed.
pub async fn forgets_keys_after_the_ttl(h: &Harness) {
    let tag = h.unique("ttl");
    let key = h.unique("key-ttl");
    let path = format!("/payments/{tag}");
    assert_eq!(h.post(&path, Some(&key), "{}").await.status(), 201);
    let again = h.post(&path, Some(&key), "{}").await;
    assert!(replayed(again.headers()));
    assert_eq!(executions(&tag), 1);
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let after = h.post(&path, Some(&key), "{}").await;
    assert_eq!(after.status(), 201);
    assert!(!replayed(after.headers()), "the key expired: it runs again");
    assert_eq!(executions(&tag), 2);
}

/// While the first request runs, a duplicate gets 409 (with `Retry-After`) and does not run;
/// afterwards it gets the replay.
pub async fn answers_409_while_the_first_is_in_flight(h: &Harness) {
    let tag = h.unique("inflight");
    let key = h.unique("key-inflight");
    let path = format!("/slow/{tag}/800");
    let first = {
        let client = h.client.clone();
        let url = h.url(&path);
        let key = key.clone();
        tokio::spawn(async move { client.post(url).header(KEY, key).send().await })
    };
    for _ in 0..200 {
        if executions(&tag) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(executions(&tag), 1, "the first request started");
    let duplicate = h.post(&path, Some(&key), "").await;
    assert_eq!(duplicate.status(), 409);
    assert_eq!(duplicate.headers()[header::RETRY_AFTER], "1");
    assert!(error_of(duplicate).await.contains("still being processed"));
    let first = first.await.expect("join").expect("first request");
    assert_eq!(first.status(), 201);
    let after = h.post(&path, Some(&key), "").await;
    assert_eq!(after.status(), 201);
    assert!(replayed(after.headers()));
    assert_eq!(executions(&tag), 1);
}

/// 200 concurrent requests with one key: exactly one execution; the rest are 409s or replays.
pub async fn runs_once_under_200_concurrent_duplicates(h: &Harness) {
    let tag = h.unique("concurrent");
    let key = h.unique("key-concurrent");
    let url = h.url(&format!("/slow/{tag}/200"));
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..200 {
        let client = h.client.clone();
        let url = url.clone();
        let key = key.clone();
        requests.spawn(async move {
            let answer = client
                .post(url)
                .header(KEY, key)
                .body("{}")
                .send()
                .await
                .expect("request");
            (answer.status().as_u16(), replayed(answer.headers()))
        });
    }
    let mut originals = 0;
    let mut replays = 0;
    let mut conflicts = 0;
    while let Some(outcome) = requests.join_next().await {
        match outcome.expect("join") {
            (201, false) => originals += 1,
            (201, true) => replays += 1,
            (409, _) => conflicts += 1,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert_eq!(executions(&tag), 1, "exactly one execution");
    assert_eq!(originals, 1, "one original answer");
    assert_eq!(replays + conflicts, 199);
    assert!(
        conflicts > 0,
        "some duplicates overlapped the first request"
    );
}

/// A 5xx releases the key: the retry runs, and its success is what is replayed afterwards.
pub async fn releases_the_key_after_a_5xx(h: &Harness) {
    let tag = h.unique("flaky");
    let key = h.unique("key-flaky");
    let path = format!("/flaky/{tag}");
    assert_eq!(h.post(&path, Some(&key), "").await.status(), 500);
    let retry = h.post(&path, Some(&key), "").await;
    assert_eq!(retry.status(), 200, "the retry ran");
    assert!(!replayed(retry.headers()));
    let again = h.post(&path, Some(&key), "").await;
    assert_eq!(again.status(), 200);
    assert!(replayed(again.headers()));
    assert_eq!(executions(&tag), 2);
}

/// A POST with `key` and the header `name: value`.
async fn post_as(h: &Harness, path: &str, key: &str, (name, value): (&str, &str)) -> Response {
    h.client
        .post(h.url(path))
        .header(KEY, key)
        .header(name, value)
        .body("{}")
        .send()
        .await
        .expect("post")
}

/// The execution number a `/payments` answer reports.
async fn execution_of(response: Response) -> u64 {
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.expect("json");
    body["execution"].as_u64().expect("execution")
}

/// With tenancy on [`TENANT`], the same key under two tenants is two keys: each tenant gets
/// its own response, never the other's. Other tenant-looking headers (`X-Tenant-ID`, the
/// default `[tenant] header`) do not scope anything.
pub async fn scopes_keys_per_tenant(h: &Harness) {
    let tag = h.unique("tenant");
    let key = h.unique("key-tenant");
    let path = format!("/payments/{tag}");
    let acme = execution_of(post_as(h, &path, &key, (TENANT, "acme")).await).await;
    let globex = execution_of(post_as(h, &path, &key, (TENANT, "globex")).await).await;
    assert_ne!(acme, globex, "globex got its own response, not acme's");
    let acme_again = post_as(h, &path, &key, (TENANT, "acme")).await;
    assert!(replayed(acme_again.headers()), "acme's key is acme's");
    assert_eq!(execution_of(acme_again).await, acme);
    // No tenant header: yet another scope.
    assert_eq!(h.post(&path, Some(&key), "{}").await.status(), 201);
    assert_eq!(
        executions(&tag),
        3,
        "acme, globex and no tenant each ran once"
    );
    // `X-Tenant-ID` is not the configured header: these are the tenant-less key again.
    for other in ["acme", "globex"] {
        let answer = post_as(h, &path, &key, ("X-Tenant-ID", other)).await;
        assert!(
            replayed(answer.headers()),
            "X-Tenant-ID {other} is not a scope"
        );
    }
    assert_eq!(executions(&tag), 3);
    // A malformed tenant id is refused like a malformed key.
    let bad = post_as(h, &path, &key, (TENANT, "with space")).await;
    assert_eq!(bad.status(), 400);
}

/// With tenancy off, no header scopes keys: two "tenants" sending one key share it.
pub async fn ignores_tenant_headers_when_tenancy_is_off(h: &Harness) {
    let tag = h.unique("no-tenancy");
    let key = h.unique("key-no-tenancy");
    let path = format!("/payments/{tag}");
    let first = post_as(h, &path, &key, ("X-Tenant-ID", "acme")).await;
    assert_eq!(first.status(), 201);
    for (name, value) in [("X-Tenant-ID", "globex"), (TENANT, "initech")] {
        let answer = post_as(h, &path, &key, (name, value)).await;
        assert!(replayed(answer.headers()), "{name}: {value} is not a scope");
    }
    assert_eq!(executions(&tag), 1);
}

/// Bodies: a request over 2 MiB is 413 without running; a response over 1 MiB is sent in full
/// and replayed without its body.
pub async fn handles_large_bodies(h: &Harness) {
    let tag = h.unique("big");
    let path = format!("/payments/{tag}");
    let huge = "x".repeat(2 * 1024 * 1024 + 1);
    let refused = h.post(&path, Some(&h.unique("key-huge")), &huge).await;
    assert_eq!(refused.status(), 413);
    assert_eq!(executions(&tag), 0);

    let key = h.unique("key-big");
    let path = format!("/big/{tag}");
    let first = h.post(&path, Some(&key), "").await;
    assert_eq!(first.status(), 201);
    assert_eq!(
        first.bytes().await.expect("body").len(),
        2 * 1024 * 1024,
        "sent in full"
    );
    let again = h.post(&path, Some(&key), "").await;
    assert_eq!(again.status(), 201);
    assert!(replayed(again.headers()));
    assert_eq!(again.headers()["idempotent-body-omitted"], "true");
    assert_eq!(again.bytes().await.expect("body").len(), 0);
    assert_eq!(executions(&tag), 1);
}

/// With the store down, a request carrying a key is 503 and does not run; one without a key
/// still runs.
pub async fn refuses_with_503_when_the_store_is_down(h: &Harness) {
    let tag = h.unique("down");
    let path = format!("/payments/{tag}");
    let started = std::time::Instant::now();
    let refused = h.post(&path, Some(&h.unique("key-down")), "{}").await;
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()[header::RETRY_AFTER], "1");
    assert!(error_of(refused).await.contains("not processed"));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the store timeout bounds the wait"
    );
    assert_eq!(executions(&tag), 0, "never runs unprotected");
    assert_eq!(h.post(&path, None, "{}").await.status(), 201);
    assert_eq!(executions(&tag), 1);
}

/// A POST to `path` with `key` and a JSON `body`.
async fn post_json(h: &Harness, path: &str, key: &str, body: &str) -> Response {
    h.client
        .post(h.url(path))
        .header(KEY, key)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("post")
}

/// A request the extractor refused (malformed JSON, a body of the wrong shape, a method the
/// route does not serve) stores nothing under its key, not even its fingerprint: the retry
/// with a corrected request runs and succeeds, and is what is replayed afterwards.
pub async fn releases_the_key_of_a_rejected_request(h: &Harness) {
    let tag = h.unique("rejected");
    let path = format!("/orders/{tag}");
    for (i, (broken, status)) in [("{\"amount\":", 400), ("{\"amount\":\"five\"}", 422)]
        .into_iter()
        .enumerate()
    {
        let key = h.unique(&format!("key-rejected-{i}"));
        let refused = post_json(h, &path, &key, broken).await;
        assert_eq!(refused.status(), status, "{broken}");
        assert!(!replayed(refused.headers()));
        let detail = error_of(refused).await;
        assert!(!detail.is_empty());
        // The same request again is refused again by the extractor, not replayed.
        let again = post_json(h, &path, &key, broken).await;
        assert_eq!(again.status(), status);
        assert!(!replayed(again.headers()), "a rejection is not stored");

        let fixed = post_json(h, &path, &key, "{\"amount\":5}").await;
        assert_eq!(
            fixed.status(),
            201,
            "the corrected retry runs, it is not a 422"
        );
        assert!(!replayed(fixed.headers()));
        let replay = post_json(h, &path, &key, "{\"amount\":5}").await;
        assert_eq!(replay.status(), 201);
        assert!(replayed(replay.headers()), "the success is what is kept");
        assert_eq!(executions(&tag), i + 1);
    }

    let key = h.unique("key-rejected-method");
    let wrong_method = h
        .client
        .put(h.url(&path))
        .header(KEY, &key)
        .header(header::CONTENT_TYPE, "application/json")
        .body("{\"amount\":5}")
        .send()
        .await
        .expect("put");
    assert_eq!(wrong_method.status(), 405);
    assert!(wrong_method.headers().contains_key(header::ALLOW));
    error_of(wrong_method).await;
    let fixed = post_json(h, &path, &key, "{\"amount\":5}").await;
    assert_eq!(fixed.status(), 201, "POST after a refused PUT runs");
    assert_eq!(executions(&tag), 3);
}

/// A handler's own 409 or 422 is an outcome of running it: stored and replayed.
pub async fn stores_the_handlers_own_refusals(h: &Harness) {
    let tag = h.unique("refused");
    for status in [409_u16, 422] {
        let key = h.unique(&format!("key-refused-{status}"));
        let path = format!("/refuse/{tag}/{status}");
        let first = h.post(&path, Some(&key), "{}").await;
        assert_eq!(first.status().as_u16(), status);
        let first_detail = error_of(first).await;
        let again = h.post(&path, Some(&key), "{}").await;
        assert_eq!(again.status().as_u16(), status);
        assert!(
            replayed(again.headers()),
            "the handler's {status} is replayed"
        );
        assert_eq!(error_of(again).await, first_detail);
    }
    assert_eq!(executions(&tag), 2, "each ran once");
}
