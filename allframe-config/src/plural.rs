//! English plurals of entity names, for resource paths (`/sensor-summaries`), table names
//! (`sensor_summaries`) and gRPC service names (`SensorSummaries`).
//!
//! Only the last word of a compound name is inflected (`SensorSummary` → `SensorSummaries`).
//! The rules cover regular nouns, `-y`, sibilants, `-f`/`-fe`, `-o`, `-is`, and a short list of
//! irregular and uncountable words; this module knows nothing about casing beyond keeping the
//! first letter's case of the word it inflects.

use heck::{ToSnakeCase, ToUpperCamelCase};

/// Irregular singular → plural pairs (lowercase).
const IRREGULAR: &[(&str, &str)] = &[
    ("person", "people"),
    ("man", "men"),
    ("woman", "women"),
    ("child", "children"),
    ("mouse", "mice"),
    ("goose", "geese"),
    ("foot", "feet"),
    ("tooth", "teeth"),
    ("ox", "oxen"),
    ("datum", "data"),
    ("criterion", "criteria"),
    ("phenomenon", "phenomena"),
    ("medium", "media"),
    ("quiz", "quizzes"),
    ("matrix", "matrices"),
    ("vertex", "vertices"),
    ("index", "indices"),
];

/// Words whose plural is the word itself (lowercase).
const UNCOUNTABLE: &[&str] = &[
    "data",
    "metadata",
    "equipment",
    "information",
    "feedback",
    "software",
    "hardware",
    "news",
    "series",
    "species",
    "sheep",
    "fish",
    "deer",
    "aircraft",
    "inventory",
    "media",
    "people",
    "staff",
    "money",
];

/// Words ending in `-f`/`-fe` that take `-ves` (lowercase).
const F_TO_VES: &[&str] = &[
    "leaf", "loaf", "half", "shelf", "wolf", "calf", "thief", "knife", "life", "wife", "self",
    "elf", "scarf", "wharf", "hoof",
];

/// Words ending in a consonant and `-o` that take `-es` (lowercase).
const O_TO_OES: &[&str] = &[
    "hero", "potato", "tomato", "echo", "veto", "torpedo", "embargo", "cargo",
];

/// The plural of one lowercase word.
pub fn plural_word(word: &str) -> String {
    if word.is_empty() {
        return String::new();
    }
    if UNCOUNTABLE.contains(&word) {
        return word.to_owned();
    }
    if let Some((_, plural)) = IRREGULAR.iter().find(|(singular, _)| *singular == word) {
        return (*plural).to_owned();
    }
    if F_TO_VES.contains(&word) {
        let stem = word
            .strip_suffix("fe")
            .or_else(|| word.strip_suffix('f'))
            .unwrap_or(word);
        return format!("{stem}ves");
    }
    if O_TO_OES.contains(&word) {
        return format!("{word}es");
    }
    if let Some(stem) = word.strip_suffix("is")
        && stem.len() >= 2
    {
        // analysis → analyses, basis → bases
        return format!("{stem}es");
    }
    let mut chars = word.chars().rev();
    let last = chars.next().unwrap_or_default();
    let before_last = chars.next();
    let is_vowel = |c: char| matches!(c, 'a' | 'e' | 'i' | 'o' | 'u');
    match last {
        'y' if before_last.is_some_and(|c| !is_vowel(c)) => {
            format!("{}ies", &word[..word.len() - 1])
        }
        's' | 'x' | 'z' => format!("{word}es"),
        'h' if matches!(before_last, Some('c' | 's')) => format!("{word}es"),
        _ => format!("{word}s"),
    }
}

/// The plural of a PascalCase name, in snake_case: `SensorSummary` → `sensor_summaries`.
pub fn plural_snake(pascal: &str) -> String {
    let snake = pascal.to_snake_case();
    match snake.rsplit_once('_') {
        Some((head, last)) => format!("{head}_{}", plural_word(last)),
        None => plural_word(&snake),
    }
}

/// The plural of a PascalCase name, in kebab-case: `SensorSummary` → `sensor-summaries`.
pub fn plural_kebab(pascal: &str) -> String {
    plural_snake(pascal).replace('_', "-")
}

/// The plural of a PascalCase name, in PascalCase: `SensorSummary` → `SensorSummaries`.
pub fn plural_pascal(pascal: &str) -> String {
    plural_snake(pascal).to_upper_camel_case()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_and_y_and_sibilant_words() {
        for (singular, plural) in [
            ("user", "users"),
            ("order", "orders"),
            ("category", "categories"),
            ("summary", "summaries"),
            ("key", "keys"),
            ("day", "days"),
            ("box", "boxes"),
            ("status", "statuses"),
            ("address", "addresses"),
            ("match", "matches"),
            ("dish", "dishes"),
            ("month", "months"),
            ("buzz", "buzzes"),
        ] {
            assert_eq!(plural_word(singular), plural, "{singular}");
        }
    }

    #[test]
    fn irregular_uncountable_f_o_and_is_words() {
        for (singular, plural) in [
            ("person", "people"),
            ("child", "children"),
            ("quiz", "quizzes"),
            ("index", "indices"),
            ("data", "data"),
            ("equipment", "equipment"),
            ("series", "series"),
            ("knife", "knives"),
            ("shelf", "shelves"),
            ("roof", "roofs"),
            ("chief", "chiefs"),
            ("hero", "heroes"),
            ("photo", "photos"),
            ("video", "videos"),
            ("analysis", "analyses"),
            ("basis", "bases"),
        ] {
            assert_eq!(plural_word(singular), plural, "{singular}");
        }
    }

    #[test]
    fn compound_names_inflect_their_last_word_in_every_case() {
        assert_eq!(plural_kebab("User"), "users");
        assert_eq!(plural_kebab("SensorSummary"), "sensor-summaries");
        assert_eq!(plural_kebab("Category"), "categories");
        assert_eq!(plural_kebab("Box"), "boxes");
        assert_eq!(plural_snake("SensorSummary"), "sensor_summaries");
        assert_eq!(plural_snake("OrderItem"), "order_items");
        assert_eq!(plural_pascal("SensorSummary"), "SensorSummaries");
        assert_eq!(plural_pascal("Person"), "People");
        assert_eq!(plural_pascal("ShippingAddress"), "ShippingAddresses");
    }
}
