//! Values that name things outside Rust: HTTP headers (tenant, idempotency key), stream topics,
//! integration providers and personal-data fields. Each has the grammar of the protocol or
//! engine it reaches, so a value that passes here is usable as it is wherever it lands.

use super::names::quoted;
use super::{Checker, service_path};
use crate::diagnostic::{Code, Diagnostic};
use crate::resolve::DraftService;
use crate::source::KeyPath;

/// True for an HTTP field name (RFC 9110 `token`): visible ASCII without separators.
pub fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

/// True for a topic name every supported broker accepts: ASCII letters, digits, `.`, `_`, `-`,
/// at most 249 characters (Kafka's limit), not `.` or `..`.
pub fn is_topic_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// True for a lowercase word of letters, digits, `-` and `_`, starting with a letter: providers
/// and personal-data fields.
fn is_word(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic())
        && name.len() <= 63
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A word close to `text` that passes [`is_word`] (or [`is_topic_name`], which accepts more).
fn suggest_word(text: &str, fallback: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    let word: String = out
        .trim_start_matches(|c: char| !c.is_ascii_alphabetic())
        .trim_end_matches('-')
        .chars()
        .take(63)
        .collect();
    if word.is_empty() {
        fallback.to_owned()
    } else {
        word
    }
}

/// `[tenant] header` and every `[services.idempotency] key_header`.
pub(super) fn headers(c: &mut Checker<'_>) {
    let tenant = &c.arch.file().tenant.header;
    header(
        c,
        KeyPath::root().key("tenant").key("header"),
        tenant,
        "X-Tenant-ID",
    );
    for service in c.arch.services() {
        if let Some(idempotency) = &service.raw.idempotency {
            let path = service_path(service).key("idempotency").key("key_header");
            header(c, path, &idempotency.key_header, "Idempotency-Key");
        }
    }
}

fn header(c: &mut Checker<'_>, path: KeyPath, name: &str, example: &str) {
    if !is_header_name(name) {
        c.push(
            Diagnostic::error(
                Code::InvalidName,
                path,
                format!("{} is not an HTTP header name", quoted(name)),
            )
            .with_help(format!(
                "use letters, digits and `-` (any RFC 9110 token character), e.g. `{example}`"
            )),
        );
    }
}

/// `[services.stream]` topics and `[services.integrations] providers` of one service.
pub(super) fn service_tokens(c: &mut Checker<'_>, service: &DraftService) {
    let base = service_path(service);
    if let Some(stream) = &service.raw.stream {
        for (key, topics) in [
            ("input_topics", &stream.input_topics),
            ("output_topics", &stream.output_topics),
        ] {
            for (i, topic) in topics.iter().enumerate() {
                if !is_topic_name(topic) {
                    c.push(
                        Diagnostic::error(
                            Code::InvalidName,
                            base.key("stream").key(key).index(i),
                            format!("{} is not a topic name every broker accepts", quoted(topic)),
                        )
                        .with_help(format!(
                            "use ASCII letters, digits, `.`, `_` and `-`, e.g. `{}`",
                            suggest_word(topic, "events")
                        )),
                    );
                }
            }
        }
    }
    if let Some(integrations) = &service.raw.integrations {
        for (i, provider) in integrations.providers.iter().enumerate() {
            if !is_word(provider) {
                c.push(
                    Diagnostic::error(
                        Code::InvalidName,
                        base.key("integrations").key("providers").index(i),
                        format!(
                            "{} is not a provider name; it names a client and its `<PROVIDER>_URL` variable",
                            quoted(provider)
                        ),
                    )
                    .with_help(format!(
                        "use letters, digits, `-` and `_`, starting with a letter, e.g. `{}`",
                        suggest_word(provider, "stripe")
                    )),
                );
            }
        }
    }
}

/// `[compliance] pii_fields`: field names of the services' data.
pub(super) fn pii_fields(c: &mut Checker<'_>) {
    let path = KeyPath::root().key("compliance").key("pii_fields");
    for (i, field) in c.arch.file().compliance.pii_fields.iter().enumerate() {
        if !is_word(field) {
            c.push(
                Diagnostic::error(
                    Code::InvalidName,
                    path.index(i),
                    format!("{} is not a field name", quoted(field)),
                )
                .with_help(format!(
                    "write the field as the data names it, e.g. `{}`",
                    suggest_word(field, "email")
                )),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grammars() {
        assert!(is_header_name("X-Tenant-ID") && is_header_name("Idempotency-Key"));
        for bad in ["", "X Org", "X-Org\n", "X:Org", "\"X\""] {
            assert!(!is_header_name(bad), "{bad:?}");
        }
        assert!(is_topic_name("user-events.v1_x"));
        for bad in ["", ".", "..", "a b", "a/b", "a\nb"] {
            assert!(!is_topic_name(bad), "{bad:?}");
        }
        assert!(is_word("stripe") && is_word("paypal_v2"));
        assert!(!is_word("1pay") && !is_word("a b"));
        assert_eq!(suggest_word("pay pal!", "x"), "pay-pal");
        assert_eq!(suggest_word("!!", "x"), "x");
    }
}
