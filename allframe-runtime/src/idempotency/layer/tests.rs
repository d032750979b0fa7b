use super::*;

#[test]
fn only_unsafe_methods_are_protected() {
    for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
        assert!(is_protected(&method), "{method}");
    }
    for method in [Method::GET, Method::HEAD, Method::OPTIONS, Method::TRACE] {
        assert!(!is_protected(&method), "{method}");
    }
}

#[test]
fn owner_tokens_are_unique() {
    let a = owner_token();
    let b = owner_token();
    assert_ne!(a, b);
    assert_eq!(a.len(), 32);
}

#[test]
fn replays_carry_the_stored_parts_and_the_marker() {
    let response = replay(StoredResponse {
        status: 201,
        headers: vec![("location".into(), "/orders/1".into())],
        body: None,
    });
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["location"], "/orders/1");
    assert_eq!(response.headers()[REPLAYED_HEADER], "true");
    assert_eq!(response.headers()[BODY_OMITTED_HEADER], "true");
}

#[test]
fn selected_headers_keep_only_the_listed_ones() {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers.insert("set-cookie", HeaderValue::from_static("session=secret"));
    headers.insert("location", HeaderValue::from_static("/x"));
    let kept = selected_headers(&headers);
    assert_eq!(
        kept,
        vec![
            ("content-type".to_owned(), "application/json".to_owned()),
            ("location".to_owned(), "/x".to_owned()),
        ]
    );
}

#[tokio::test]
async fn bodies_over_the_limit_keep_every_byte() {
    let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
        Ok(Bytes::from_static(b"abc")),
        Ok(Bytes::from_static(b"def")),
        Ok(Bytes::from_static(b"ghi")),
    ];
    let body = Body::from_stream(futures_util::stream::iter(chunks));
    let Collected::TooLarge { prefix, rest } = collect(body, 4).await else {
        panic!("expected TooLarge");
    };
    assert_eq!(&prefix[..], b"abcdef");
    let rest: Vec<Bytes> = rest.map(|c| c.expect("chunk")).collect().await;
    assert_eq!(concat(rest), Bytes::from_static(b"ghi"));
    let Collected::Full(all) = collect(Body::from("abc"), 3).await else {
        panic!("expected Full");
    };
    assert_eq!(&all[..], b"abc");
}
