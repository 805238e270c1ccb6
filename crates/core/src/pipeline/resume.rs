//! The resume decision (SPEC §6): which partial file may be resumed, and
//! whether an answer to a ranged GET may extend it.
//!
//! A partial file holds a prefix of the one version of the resource it was
//! downloaded from. Its name carries a tag of that version's validator
//! ([`validator_tag`]), so a partial is resumed only under the validator it
//! was downloaded with, whatever other epochs did meanwhile; and a ranged
//! answer extends it only when the server proves it continues that same
//! version ([`refusal`]). Anything else restarts from byte 0: never a file
//! spliced from two versions.

use sha2::{Digest, Sha256};

use crate::fetch::{GetRequest, ResourceMeta};

/// Hex digits of a validator's SHA-256 kept in a partial file's name.
const TAG_LEN: usize = 16;

/// The tag of `validator` in partial file names: the first 16 lowercase hex
/// digits of its SHA-256.
pub(crate) fn validator_tag(validator: &str) -> String {
    let digest = hex::encode(Sha256::digest(validator.as_bytes()));
    digest[..TAG_LEN].to_owned()
}

/// Whether `tag` has the shape [`validator_tag`] gives.
pub(crate) fn is_tag(tag: &str) -> bool {
    tag.len() == TAG_LEN && tag.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Whether `meta` carries `sent`, the validator sent in `If-Range`: an ETag
/// (quoted) is compared with the response's strong ETag, a date with its
/// `Last-Modified` (RFC 9110 §13.1.5).
pub(crate) fn carries_validator(meta: &ResourceMeta, sent: &str) -> bool {
    let theirs = if sent.starts_with('"') {
        meta.etag.as_deref()
    } else {
        meta.last_modified.as_deref()
    };
    theirs == Some(sent)
}

/// Why the body of a `206` that starts at `start` cannot extend the partial
/// file `request` resumed, or `None` when it can: it must start exactly at
/// the requested offset, name the resource's total length, and carry the
/// validator sent in `If-Range` (RFC 9110 §13.1.5 and §14.4, RFC 9111 §3.4).
pub(crate) fn refusal(request: &GetRequest, start: u64, meta: &ResourceMeta) -> Option<String> {
    let Some(sent) = request.if_range.as_deref() else {
        return Some("no validator was sent".to_owned());
    };
    if start != request.range_start {
        return Some(format!(
            "asked for bytes {}-, the answer starts at byte {start}",
            request.range_start
        ));
    }
    let Some(total) = meta.content_length else {
        return Some("the Content-Range gives no total length".to_owned());
    };
    if total <= start {
        return Some(format!("the total length {total} ends before byte {start}"));
    }
    if !carries_validator(meta, sent) {
        let got = meta.validator().unwrap_or("none");
        return Some(format!("If-Range {sent} was sent, the answer carries validator {got}"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(range_start: u64, if_range: Option<&str>) -> GetRequest {
        GetRequest {
            url: "http://127.0.0.1/x".to_owned(),
            range_start,
            range_end: None,
            if_range: if_range.map(str::to_owned),
            headers: Vec::new(),
        }
    }

    fn meta(total: Option<u64>, etag: Option<&str>, last_modified: Option<&str>) -> ResourceMeta {
        ResourceMeta {
            status: 206,
            content_length: total,
            etag: etag.map(str::to_owned),
            last_modified: last_modified.map(str::to_owned),
            final_url: String::new(),
            insecure: false,
            accepts_ranges: false,
            content_type: None,
        }
    }

    const LM: &str = "Wed, 21 Oct 2015 07:28:00 GMT";

    #[test]
    fn a_continuation_of_the_same_version_is_accepted() {
        assert_eq!(
            refusal(&request(10, Some("\"v1\"")), 10, &meta(Some(100), Some("\"v1\""), None)),
            None
        );
        assert_eq!(
            refusal(&request(10, Some(LM)), 10, &meta(Some(100), Some("\"v2\""), Some(LM))),
            None
        );
    }

    #[test]
    fn anything_else_is_refused() {
        let ok = meta(Some(100), Some("\"v1\""), Some(LM));
        let cases = [
            (request(10, None), 10, ok.clone(), "no validator"),
            (request(10, Some("\"v1\"")), 0, ok.clone(), "starts at byte 0"),
            (request(10, Some("\"v1\"")), 11, ok.clone(), "starts at byte 11"),
            (
                request(10, Some("\"v1\"")),
                10,
                meta(None, Some("\"v1\""), None),
                "no total length",
            ),
            (
                request(10, Some("\"v1\"")),
                10,
                meta(Some(10), Some("\"v1\""), None),
                "ends before",
            ),
            (
                request(10, Some("\"v1\"")),
                10,
                meta(Some(100), Some("\"v2\""), Some(LM)),
                "carries validator \"v2\"",
            ),
            (
                request(10, Some("\"v1\"")),
                10,
                meta(Some(100), None, Some(LM)),
                "validator",
            ),
            (
                request(10, Some(LM)),
                10,
                meta(Some(100), Some("\"v1\""), None),
                "validator",
            ),
        ];
        for (request, start, meta, needle) in cases {
            let why =
                refusal(&request, start, &meta).unwrap_or_else(|| panic!("accepted {request:?} {start} {meta:?}"));
            assert!(why.contains(needle), "{why:?} should say {needle:?}");
        }
    }

    #[test]
    fn tags_are_short_hex_and_differ_per_validator() {
        let tag = validator_tag("\"v1\"");
        assert!(is_tag(&tag), "{tag}");
        assert_ne!(tag, validator_tag("\"v2\""));
        assert!(!is_tag("7"));
        assert!(!is_tag("0123456789ABCDEF"));
    }
}
