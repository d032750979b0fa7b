//! Extractors whose rejections are problem details: [`Json`], [`Path`] and [`Query`].
//!
//! They behave exactly like axum's extractors of the same names, except that a request they
//! refuse (a malformed or mistyped JSON body, a body over the limit, a wrong content type, a
//! path segment or query string that does not parse) is answered with an
//! `application/problem+json` body (see [`crate::error`]) instead of `text/plain`, and that the
//! answer is marked [`Rejected`]: the handler never ran, so the idempotency layer releases the
//! request's key instead of storing the answer, and the client can retry with a corrected
//! request under the same key.

use std::ops::{Deref, DerefMut};

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Marks a response that refused a request before its handler did anything (an extractor's
/// rejection). The idempotency layer does not store such answers under the request's key: it
/// releases the key, so a retry with a corrected request runs.
///
/// The extractors of this module set it; a handler can set it on its own answers with
/// [`ApiError::rejected`], or by inserting it into a response's extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rejected;

/// A JSON request body (`Content-Type: application/json`) deserialised into `T`, or a JSON
/// response body serialised from `T`.
///
/// ```
/// use allframe_runtime::Json;
/// use allframe_runtime::error::ApiError;
///
/// #[derive(serde::Deserialize)]
/// struct CreateUser { name: String }
///
/// async fn create(Json(input): Json<CreateUser>) -> Result<Json<String>, ApiError> {
///     Ok(Json(input.name))
/// }
/// ```
///
/// Refused requests get the status axum gives them (400 for syntax errors, 422 for a body of
/// the wrong shape, 415 without a JSON content type, 413 over the body limit) with a problem
/// details body, marked [`Rejected`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(rejected(rejection.status(), rejection.body_text())),
        }
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// `body` as JSON deserialised into `T`, or a 400 marked [`Rejected`] naming `what` and the
/// field that does not deserialize (e.g. "the command does not deserialize at `amount`: …").
pub(crate) fn json_naming_the_field<T: DeserializeOwned>(
    body: &[u8],
    what: &str,
) -> Result<T, ApiError> {
    let mut json = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut json).map_err(|error| {
        let path = error.path().to_string();
        let at = if path == "." {
            String::new()
        } else {
            format!(" at `{path}`")
        };
        ApiError::bad_request(format!(
            "{what} does not deserialize{at}: {}",
            error.inner()
        ))
        .rejected()
    })?;
    json.end().map_err(|error| {
        ApiError::bad_request(format!("{what} is followed by more than JSON: {error}")).rejected()
    })?;
    Ok(value)
}

/// Path parameters (`/users/{id}`) deserialised into `T`; a segment that does not parse is a
/// problem details 400, marked [`Rejected`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value)),
            Err(rejection) => Err(rejected(rejection.status(), rejection.body_text())),
        }
    }
}

/// The query string deserialised into `T`; one that does not parse is a problem details 400,
/// marked [`Rejected`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Self(value)),
            Err(rejection) => Err(rejected(rejection.status(), rejection.body_text())),
        }
    }
}

macro_rules! deref_to_inner {
    ($($wrapper:ident),*) => {$(
        impl<T> Deref for $wrapper<T> {
            type Target = T;

            fn deref(&self) -> &T {
                &self.0
            }
        }

        impl<T> DerefMut for $wrapper<T> {
            fn deref_mut(&mut self) -> &mut T {
                &mut self.0
            }
        }

        impl<T> From<T> for $wrapper<T> {
            fn from(value: T) -> Self {
                Self(value)
            }
        }
    )*};
}

deref_to_inner!(Json, Path, Query);

/// axum's rejection as an [`ApiError`] marked [`Rejected`]; its text says what was wrong with
/// the request (never anything internal).
fn rejected(status: axum::http::StatusCode, detail: String) -> ApiError {
    ApiError::new(status, detail).rejected()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::{Body, to_bytes};
    use axum::http::{StatusCode, header};

    #[derive(Debug, serde::Deserialize)]
    struct Input {
        #[allow(dead_code)]
        name: String,
    }

    async fn problem(response: Response) -> (StatusCode, serde_json::Value) {
        assert!(
            response.extensions().get::<Rejected>().is_some(),
            "rejections are marked"
        );
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            crate::error::PROBLEM_JSON
        );
        let status = response.status();
        let bytes = to_bytes(response.into_body(), 1 << 16).await.expect("body");
        (status, serde_json::from_slice(&bytes).expect("json"))
    }

    fn json_request(body: &'static str) -> Request {
        Request::post("/")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .expect("request")
    }

    #[tokio::test]
    async fn json_rejections_are_marked_problem_details() {
        let Err(error) = Json::<Input>::from_request(json_request("{\"name\":"), &()).await else {
            panic!("truncated JSON is refused");
        };
        let (status, body) = problem(error.into_response()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["status"], 400);
        assert_eq!(body["title"], "Bad Request");
        assert!(body["detail"].as_str().expect("detail").contains("JSON"));

        let Err(error) = Json::<Input>::from_request(json_request("{\"name\":7}"), &()).await
        else {
            panic!("a number is not a name");
        };
        let (status, _) = problem(error.into_response()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

        let plain = Request::post("/").body(Body::from("{}")).expect("request");
        let Err(error) = Json::<Input>::from_request(plain, &()).await else {
            panic!("no content type");
        };
        let (status, _) = problem(error.into_response()).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);

        let Ok(Json(input)) =
            Json::<Input>::from_request(json_request("{\"name\":\"Ada\"}"), &()).await
        else {
            panic!("a valid body is accepted");
        };
        assert_eq!(input.name, "Ada");
    }

    #[tokio::test]
    async fn query_rejections_are_marked_problem_details() {
        #[derive(Debug, serde::Deserialize)]
        struct Page {
            #[allow(dead_code)]
            limit: u32,
        }
        let request = Request::get("/?limit=many").body(()).expect("request");
        let (mut parts, ()) = request.into_parts();
        let Err(error) = Query::<Page>::from_request_parts(&mut parts, &()).await else {
            panic!("not a number");
        };
        let (status, _) = problem(error.into_response()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
}
