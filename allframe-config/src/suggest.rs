//! Did-you-mean: the closest accepted word to a misspelt one.

use std::borrow::Cow;

/// The candidate closest to `word`, if one is close enough to be a likely typo.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lowered = word.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| (c, strsim::jaro_winkler(&lowered, &ascii_lowercase(c))))
        .filter(|(_, score)| *score >= 0.8)
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(c, _)| c)
}

/// `text` in ASCII lowercase, copied only when it has an uppercase letter (most candidates,
/// keys and words of the schema, have none).
fn ascii_lowercase(text: &str) -> Cow<'_, str> {
    if text.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(text.to_ascii_lowercase())
    } else {
        Cow::Borrowed(text)
    }
}

/// `did you mean `x`?` or a list of what is accepted.
pub fn help(word: &str, candidates: &[&str]) -> String {
    match closest(word, candidates.iter().copied()) {
        Some(best) => format!("did you mean `{best}`?"),
        None => format!("expected one of: {}", quoted_list(candidates)),
    }
}

/// `` `a`, `b`, `c` ``.
pub fn quoted_list(words: &[&str]) -> String {
    words
        .iter()
        .map(|w| format!("`{w}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_typos_not_strangers() {
        assert_eq!(
            closest("protocol", ["protocols", "ports"]),
            Some("protocols")
        );
        assert_eq!(
            closest("responsability", ["responsibility", "name"]),
            Some("responsibility")
        );
        assert_eq!(closest("zzz", ["kafka", "nats"]), None);
        assert!(help("zzz", &["kafka", "nats"]).contains("`kafka`, `nats`"));
    }
}
