//! Manifest text in `text` columns: PostgreSQL cannot store NUL.
//!
//! The contract keeps a line's `work_id`, `artifact_id` and `url` verbatim
//! (SPEC §2: ids are never rejected), and any Unicode string may hold U+0000,
//! which a PostgreSQL `text` value cannot ("invalid byte sequence for
//! encoding UTF8: 0x00"). So these columns hold a reversible escape: U+001A
//! (SUB) is the escape character, `SUB 0` stands for NUL and `SUB SUB` for a
//! SUB; every other character stands for itself. Text with neither character
//! — all of it in practice — is stored unchanged, so indexes, filters and
//! other readers of the table see the plain value. Migration
//! `2026-12-06-000000_nul_escape` doubled the SUBs already stored.

use std::borrow::Cow;

/// The escape character.
const ESCAPE: char = '\u{1a}';

/// The stored form of `text`.
pub(crate) fn store(text: &str) -> Cow<'_, str> {
    if !text.contains(['\0', ESCAPE]) {
        return Cow::Borrowed(text);
    }
    let mut stored = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        match c {
            '\0' => stored.extend([ESCAPE, '0']),
            ESCAPE => stored.extend([ESCAPE, ESCAPE]),
            c => stored.push(c),
        }
    }
    Cow::Owned(stored)
}

/// The text a stored value stands for. A SUB followed by anything else (a
/// value another writer stored unescaped) stands for itself.
pub(crate) fn load(stored: String) -> String {
    if !stored.contains(ESCAPE) {
        return stored;
    }
    let mut text = String::with_capacity(stored.len());
    let mut chars = stored.chars().peekable();
    while let Some(c) = chars.next() {
        if c != ESCAPE {
            text.push(c);
            continue;
        }
        match chars.peek() {
            Some('0') => {
                chars.next();
                text.push('\0');
            }
            Some(&ESCAPE) => {
                chars.next();
                text.push(ESCAPE);
            }
            _ => text.push(ESCAPE),
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn plain_text_is_stored_as_it_is() {
        assert!(matches!(store("work/1 é"), Cow::Borrowed("work/1 é")));
        assert_eq!(load("work/1 é".to_owned()), "work/1 é");
    }

    #[test]
    fn nul_and_the_escape_are_escaped() {
        assert_eq!(store("a\0b"), "a\u{1a}0b");
        assert_eq!(store("\u{1a}0"), "\u{1a}\u{1a}0");
        assert_eq!(load("a\u{1a}0b".to_owned()), "a\0b");
        assert_eq!(load("\u{1a}\u{1a}0".to_owned()), "\u{1a}0");
    }

    #[test]
    fn an_unescaped_sub_stands_for_itself() {
        assert_eq!(load("a\u{1a}b\u{1a}".to_owned()), "a\u{1a}b\u{1a}");
    }

    proptest! {
        #[test]
        fn every_string_round_trips_without_nul(text in "[a\0\u{1a}0é]{0,12}|\\PC{0,12}") {
            let stored = store(&text);
            prop_assert!(!stored.contains('\0'));
            prop_assert_eq!(load(stored.into_owned()), text);
        }
    }
}
