//! What identifies an idempotent request: its key (validated), the scope the key lives in
//! (service, and tenant when the request names one) and the fingerprint of the request the key
//! was first used with.
//!
//! Everything here is pure: no I/O, no clock, no policy about what to answer. The layer decides
//! what a malformed key or a changed fingerprint means for the client.

use std::fmt;

use axum::http::{Method, Uri};
use sha2::{Digest, Sha256};

/// The longest accepted key, in characters (the same limit as Stripe's API).
pub const MAX_KEY_LEN: usize = 255;

/// Why a key (or a tenant id) was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The header is present but empty (or is just `""`).
    #[error("must not be empty")]
    Empty,
    /// The value is longer than [`MAX_KEY_LEN`].
    #[error("is {len} characters long; at most {MAX_KEY_LEN} are allowed")]
    TooLong {
        /// The length found.
        len: usize,
    },
    /// The value holds a byte outside visible ASCII, or a quote or backslash inside.
    #[error(
        "may contain only visible ASCII characters (0x21-0x7E) other than `\"` and `\\`, \
         optionally wrapped in one pair of double quotes"
    )]
    InvalidCharacter,
    /// The header was sent more than once.
    #[error("was sent more than once")]
    Repeated,
}

/// Validates an idempotency key and returns it without its optional quotes.
///
/// The rule: after removing one pair of surrounding double quotes (the structured-field string
/// form of the IETF `Idempotency-Key` draft, so `"abc"` and `abc` are the same key), the key is
/// 1 to 255 characters, each visible ASCII (`0x21`–`0x7E`) other than `"` and `\`. UUIDs, ULIDs,
/// base64 and hex tokens all fit; spaces, control characters and non-ASCII text do not.
///
/// ```
/// use allframe_runtime::idempotency::fingerprint::{parse_key, KeyError};
/// assert_eq!(parse_key(b"0190b3c2-7d1e-7a3f-9c4e-1f2a3b4c5d6e"), Ok("0190b3c2-7d1e-7a3f-9c4e-1f2a3b4c5d6e"));
/// assert_eq!(parse_key(b"\"order-42\""), Ok("order-42"));
/// assert_eq!(parse_key(b"with space"), Err(KeyError::InvalidCharacter));
/// assert_eq!(parse_key(b""), Err(KeyError::Empty));
/// ```
pub fn parse_key(value: &[u8]) -> Result<&str, KeyError> {
    let unquoted = match value {
        [b'"', inner @ .., b'"'] => inner,
        other => other,
    };
    validate(unquoted)
}

/// Validates a tenant id read from the tenant header: the same character and length rule as a
/// key, without quote removal.
pub fn parse_tenant(value: &[u8]) -> Result<&str, KeyError> {
    validate(value)
}

fn validate(value: &[u8]) -> Result<&str, KeyError> {
    if value.is_empty() {
        return Err(KeyError::Empty);
    }
    if value.len() > MAX_KEY_LEN {
        return Err(KeyError::TooLong { len: value.len() });
    }
    if !value
        .iter()
        .all(|&b| (0x21..=0x7E).contains(&b) && b != b'"' && b != b'\\')
    {
        return Err(KeyError::InvalidCharacter);
    }
    // Visible ASCII is valid UTF-8.
    std::str::from_utf8(value).map_err(|_| KeyError::InvalidCharacter)
}

/// The identity of a key in the store: the service, the tenant (empty when none) and the key,
/// each but the last length-prefixed so that no two different triples give the same id (a
/// tenant containing `:` cannot impersonate another tenant's key).
///
/// ```
/// use allframe_runtime::idempotency::fingerprint::scoped_id;
/// assert_eq!(scoped_id("orders", None, "k1"), "6:orders:0::k1");
/// assert_eq!(scoped_id("orders", Some("acme"), "k1"), "6:orders:4:acme:k1");
/// ```
pub fn scoped_id(service: &str, tenant: Option<&str>, key: &str) -> String {
    let tenant = tenant.unwrap_or("");
    format!(
        "{}:{service}:{}:{tenant}:{key}",
        service.len(),
        tenant.len()
    )
}

/// A request's fingerprint: SHA-256 over its method, its path with query string, and its body
/// bytes, as 64 lowercase hex digits. A key reused with a different fingerprint is refused.
///
/// Headers are not part of it (a retry may carry a new `Date`, trace id or auth token).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Fingerprint(String);

impl Fingerprint {
    /// Fingerprints a request.
    pub fn of(method: &Method, uri: &Uri, body: &[u8]) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(method.as_str().as_bytes());
        hasher.update([0]);
        hasher.update(
            uri.path_and_query()
                .map_or(uri.path(), |pq| pq.as_str())
                .as_bytes(),
        );
        hasher.update([0]);
        hasher.update(body);
        let digest = hasher.finalize();
        let mut hex = String::with_capacity(64);
        for byte in digest {
            hex.push(char::from(HEX[usize::from(byte >> 4)]));
            hex.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
        Self(hex)
    }

    /// A fingerprint read back from a store.
    pub fn from_stored(hex: String) -> Self {
        Self(hex)
    }

    /// The hex digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({})", &self.0)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_documented_rule() {
        assert_eq!(parse_key(b"abc"), Ok("abc"));
        assert_eq!(parse_key(b"\"abc\""), Ok("abc"));
        assert_eq!(parse_key(b"a:b/c+d=e_f.g~h"), Ok("a:b/c+d=e_f.g~h"));
        assert_eq!(parse_key(b""), Err(KeyError::Empty));
        assert_eq!(parse_key(b"\"\""), Err(KeyError::Empty));
        assert_eq!(parse_key(b"\""), Err(KeyError::InvalidCharacter));
        assert_eq!(parse_key(b"a\"b"), Err(KeyError::InvalidCharacter));
        assert_eq!(parse_key(b"a\\b"), Err(KeyError::InvalidCharacter));
        assert_eq!(parse_key(b"a\tb"), Err(KeyError::InvalidCharacter));
        assert_eq!(parse_key("clé".as_bytes()), Err(KeyError::InvalidCharacter));
        let longest = "k".repeat(MAX_KEY_LEN);
        assert_eq!(parse_key(longest.as_bytes()), Ok(longest.as_str()));
        let quoted = format!("\"{longest}\"");
        assert_eq!(parse_key(quoted.as_bytes()), Ok(longest.as_str()));
        let too_long = "k".repeat(MAX_KEY_LEN + 1);
        assert_eq!(
            parse_key(too_long.as_bytes()),
            Err(KeyError::TooLong { len: 256 })
        );
        assert_eq!(parse_tenant(b"\"acme\""), Err(KeyError::InvalidCharacter));
    }

    #[test]
    fn scoped_ids_cannot_collide_across_tenants() {
        assert_ne!(
            scoped_id("s", Some("a:1"), "k"),
            scoped_id("s", Some("a"), "1:k")
        );
        assert_ne!(scoped_id("s", None, "k"), scoped_id("s", Some("t"), "k"));
        assert_ne!(scoped_id("a", None, "k"), scoped_id("b", None, "k"));
    }

    #[test]
    fn fingerprints_cover_method_path_query_and_body() {
        let uri: Uri = "/orders?dry=1".parse().expect("uri");
        let base = Fingerprint::of(&Method::POST, &uri, b"{}");
        assert_eq!(base.as_str().len(), 64);
        assert_eq!(base, Fingerprint::of(&Method::POST, &uri, b"{}"));
        assert_ne!(base, Fingerprint::of(&Method::PUT, &uri, b"{}"));
        assert_ne!(base, Fingerprint::of(&Method::POST, &uri, b"{ }"));
        let other: Uri = "/orders?dry=0".parse().expect("uri");
        assert_ne!(base, Fingerprint::of(&Method::POST, &other, b"{}"));
        // The empty body's hash is well known: sha256("POST\0/\0").
        let root: Uri = "/".parse().expect("uri");
        let mut hasher = Sha256::new();
        hasher.update(b"POST\0/\0");
        let expected: String = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            Fingerprint::of(&Method::POST, &root, b"").as_str(),
            expected
        );
    }
}
