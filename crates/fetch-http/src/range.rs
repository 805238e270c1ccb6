//! `Content-Range` (RFC 9110 §14.4) of 206 and 416 answers.

/// A parsed `Content-Range` of unit `bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentRange {
    /// `bytes FIRST-LAST/COMPLETE` (`COMPLETE` may be `*`).
    Bytes {
        /// The first byte's offset.
        first: u64,
        /// The last byte's offset (inclusive).
        last: u64,
        /// The resource's length; `None` for `*`.
        complete: Option<u64>,
    },
    /// `bytes */COMPLETE`, sent with 416.
    Unsatisfied {
        /// The resource's length.
        complete: u64,
    },
}

/// Parses `value`; `None` when it is not a well-formed byte range.
pub fn parse(value: &str) -> Option<ContentRange> {
    let rest = value.trim().strip_prefix("bytes")?;
    if !rest.starts_with([' ', '\t']) {
        return None;
    }
    let (range, complete) = rest.trim_start().split_once('/')?;
    let complete = match complete.trim() {
        "*" => None,
        n => Some(number(n)?),
    };
    if range.trim() == "*" {
        return complete.map(|complete| ContentRange::Unsatisfied { complete });
    }
    let (first, last) = range.split_once('-')?;
    let (first, last) = (number(first)?, number(last)?);
    let fits = !matches!(complete, Some(complete) if last >= complete);
    (first <= last && fits).then_some(ContentRange::Bytes { first, last, complete })
}

fn number(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::{parse, ContentRange};

    #[test]
    fn well_formed_and_not() {
        assert_eq!(
            parse("bytes 400-999/1000"),
            Some(ContentRange::Bytes {
                first: 400,
                last: 999,
                complete: Some(1000)
            })
        );
        assert_eq!(
            parse("bytes 0-9/*"),
            Some(ContentRange::Bytes {
                first: 0,
                last: 9,
                complete: None
            })
        );
        assert_eq!(
            parse("bytes */1000"),
            Some(ContentRange::Unsatisfied { complete: 1000 })
        );
        assert_eq!(parse("bytes */*"), None);
        assert_eq!(parse("bytes 10-5/100"), None);
        assert_eq!(parse("bytes 10-100/100"), None);
        assert_eq!(parse("bytes -1-5/100"), None);
        assert_eq!(parse("bytes=0-5/100"), None);
        assert_eq!(parse("items 0-5/100"), None);
        assert_eq!(parse("bytes 0-5"), None);
    }
}
