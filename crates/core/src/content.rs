//! Content checks (SPEC §8): whether a response is the kind of content a job
//! expects, judged from its `Content-Type` and its first bytes, so that an
//! error page served with `200 OK` is never stored as an artifact.
//!
//! The rules, written once here for every caller:
//!
//! - An expectation is one media type, `type/subtype`, or `type/*` for any
//!   subtype of `type` ([`parse_expected`]). Parameters (`; charset=…`) are
//!   dropped and case is ignored, in the expectation and in the header alike.
//! - The header: a missing `Content-Type`, or a generic one
//!   (`application/octet-stream`, `binary/octet-stream`), says nothing and the
//!   bytes alone judge. Any other header must fit the expectation
//!   ([`fits`], which knows a few common aliases such as `application/x-pdf`).
//! - The bytes: the first [`SNIFF_LEN`] bytes (fewer if the body is shorter)
//!   are sniffed ([`sniff`]) for PDF, gzip, zip, XML, HTML and JSON. An
//!   expected type with a signature of its own (PDF, gzip, zip) requires that
//!   signature. Bytes that look like markup or JSON (an error page, an API
//!   error) must fit the expectation. Other bytes do not contradict an
//!   expectation without a signature (they cannot be told apart).

/// How many first bytes the check waits for before judging (fewer when the
/// body is shorter).
pub const SNIFF_LEN: usize = 512;

/// How many first bytes a failure message shows.
pub const SHOWN_LEN: usize = 14;

/// The media types with a byte signature: content expected to be one of
/// these must start with it.
const SIGNED: [&str; 3] = ["application/pdf", "application/gzip", "application/zip"];

/// Types a server or a manifest may write for one of the sniffed types.
const ALIASES: [(&str, &str); 6] = [
    ("application/x-pdf", "application/pdf"),
    ("application/x-gzip", "application/gzip"),
    ("application/x-zip-compressed", "application/zip"),
    ("application/x-zip", "application/zip"),
    ("text/xml", "application/xml"),
    ("text/json", "application/json"),
];

/// A media type's essence: no parameters, no surrounding space, lowercase;
/// `None` when nothing is left.
pub fn essence(value: &str) -> Option<String> {
    let essence = value.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    (!essence.is_empty()).then_some(essence)
}

/// An expectation as a manifest line or `--accept` gives it, normalized
/// ([`essence`]): `type/subtype` or `type/*`, each part a non-empty token.
pub fn parse_expected(value: &str) -> Result<String, String> {
    let refused = || format!("content_type {value:?} is not a media type (type/subtype or type/*)");
    let essence = essence(value).ok_or_else(refused)?;
    let (kind, subtype) = essence.split_once('/').ok_or_else(refused)?;
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    if !token(kind) || !(subtype == "*" || token(subtype)) {
        return Err(refused());
    }
    Ok(essence)
}

fn canonical(essence: &str) -> &str {
    ALIASES
        .iter()
        .find(|(alias, _)| *alias == essence)
        .map_or(essence, |(_, to)| to)
}

/// Whether the media type `actual` (an essence) fits the expectation
/// `expected` (as [`parse_expected`] returns it): the same type after
/// aliases, or any subtype of `type` for `type/*`.
pub fn fits(expected: &str, actual: &str) -> bool {
    let (expected, actual) = (canonical(expected), canonical(actual));
    match expected.strip_suffix("/*") {
        Some(kind) => actual.split_once('/').is_some_and(|(k, _)| k == kind),
        None => expected == actual,
    }
}

/// Whether a header's type says nothing about the content.
fn generic(essence: &str) -> bool {
    matches!(essence, "application/octet-stream" | "binary/octet-stream")
}

/// The type the first bytes of a body show, when they show one: PDF
/// (`%PDF-`), gzip (`1f 8b`), zip (`PK\x03\x04`), then, after an optional
/// UTF-8 BOM and whitespace, XML (`<?xml`), HTML (`<!DOCTYPE html`, `<html`,
/// case-insensitive) and JSON (`{` or `[`).
pub fn sniff(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"%PDF-") {
        return Some("application/pdf");
    }
    if bytes.starts_with(&[0x1f, 0x8b]) {
        return Some("application/gzip");
    }
    if bytes.starts_with(b"PK\x03\x04") {
        return Some("application/zip");
    }
    let text = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let start = text.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(text.len());
    let text = &text[start..];
    let starts = |prefix: &[u8]| text.len() >= prefix.len() && text[..prefix.len()].eq_ignore_ascii_case(prefix);
    if starts(b"<?xml") {
        Some("application/xml")
    } else if starts(b"<!doctype html") || starts(b"<html") {
        Some("text/html")
    } else if starts(b"{") || starts(b"[") {
        Some("application/json")
    } else {
        None
    }
}

/// Whether sniffed markup or JSON fits `expected`: XML fits any `xml` or
/// `+xml` type and HTML (XHTML); HTML fits `application/xhtml+xml`; JSON fits
/// any `json` or `+json` type.
fn text_fits(expected: &str, sniffed: &str) -> bool {
    if fits(expected, sniffed) {
        return true;
    }
    let subtype = expected.split_once('/').map_or("", |(_, s)| s);
    match sniffed {
        "application/xml" => subtype == "xml" || subtype.ends_with("+xml") || expected == "text/html",
        "text/html" => expected == "application/xhtml+xml",
        "application/json" => subtype == "json" || subtype.ends_with("+json"),
        _ => false,
    }
}

/// The first bytes of a body as a failure message shows them: at most
/// [`SHOWN_LEN`] bytes, non-printable ones escaped.
pub fn shown(bytes: &[u8]) -> String {
    let first = &bytes[..bytes.len().min(SHOWN_LEN)];
    first.escape_ascii().to_string()
}

/// Judges a response against `expected` (as [`parse_expected`] returns it):
/// `content_type` is the response's `Content-Type` header, `first` the first
/// [`SNIFF_LEN`] bytes of the body (all of it when shorter). The error is the
/// job's failure message: `expected E, got T (first bytes "…")`, where `T` is
/// the header's type when it does not fit, else what the bytes look like.
pub fn check(expected: &str, content_type: Option<&str>, first: &[u8]) -> Result<(), String> {
    let sniffed = sniff(first);
    let header = content_type.and_then(essence).filter(|t| !generic(t));
    let got = match (&header, sniffed) {
        (Some(header), _) if !fits(expected, header) => Some(header.clone()),
        _ => match sniffed {
            Some(kind) if SIGNED.contains(&kind) => {
                let expected_signed = SIGNED.contains(&canonical(expected));
                (expected_signed && !fits(expected, kind)).then(|| kind.to_owned())
            }
            Some(kind) => (!text_fits(expected, kind)).then(|| kind.to_owned()),
            None if SIGNED.contains(&canonical(expected)) => Some("content without its signature".to_owned()),
            None => None,
        },
    };
    match got {
        None => Ok(()),
        Some(got) => Err(format!(
            "expected {expected}, got {got} (first bytes \"{}\")",
            shown(first)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HTML: &[u8] = b"<!DOCTYPE html><html><body>Not found</body></html>";
    const PDF: &[u8] = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj";

    #[test]
    fn expectations_are_normalized_and_checked() {
        assert_eq!(parse_expected("Application/PDF").as_deref(), Ok("application/pdf"));
        assert_eq!(parse_expected(" text/html; charset=UTF-8").as_deref(), Ok("text/html"));
        assert_eq!(parse_expected("application/*").as_deref(), Ok("application/*"));
        for bad in ["", "pdf", "*/*", "application/", "/pdf", "a b/c", "text/ht ml"] {
            assert!(parse_expected(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn magic_numbers_are_sniffed() {
        assert_eq!(sniff(PDF), Some("application/pdf"));
        assert_eq!(sniff(&[0x1f, 0x8b, 8, 0]), Some("application/gzip"));
        assert_eq!(sniff(b"PK\x03\x04rest"), Some("application/zip"));
        assert_eq!(sniff(b"\xef\xbb\xbf  <?xml version"), Some("application/xml"));
        assert_eq!(sniff(HTML), Some("text/html"));
        assert_eq!(sniff(b"\n\t<HTML lang=en>"), Some("text/html"));
        assert_eq!(sniff(b"<!doctype HTML>"), Some("text/html"));
        assert_eq!(sniff(b"  {\"error\":1}"), Some("application/json"));
        assert_eq!(sniff(b"[1,2]"), Some("application/json"));
        assert_eq!(sniff(b"\x89PNG\r\n"), None);
        assert_eq!(sniff(b""), None);
        assert_eq!(sniff(b"<htm"), None, "too short to tell");
    }

    #[test]
    fn an_error_page_never_fits_a_pdf() {
        let err = check("application/pdf", Some("text/html; charset=utf-8"), HTML).unwrap_err();
        assert_eq!(
            err,
            r#"expected application/pdf, got text/html (first bytes "<!DOCTYPE html")"#
        );
        // Whatever the header says, the bytes must carry the signature.
        let err = check("application/pdf", Some("application/pdf"), HTML).unwrap_err();
        assert_eq!(
            err,
            r#"expected application/pdf, got text/html (first bytes "<!DOCTYPE html")"#
        );
        let err = check("application/pdf", None, b"plain\x00").unwrap_err();
        assert_eq!(
            err,
            r#"expected application/pdf, got content without its signature (first bytes "plain\x00")"#
        );
    }

    #[test]
    fn a_missing_or_generic_header_leaves_it_to_the_bytes() {
        assert_eq!(check("application/pdf", None, PDF), Ok(()));
        assert_eq!(check("application/pdf", Some("application/octet-stream"), PDF), Ok(()));
        assert_eq!(check("application/pdf", Some("APPLICATION/PDF; q=1"), PDF), Ok(()));
        assert_eq!(check("application/pdf", Some("application/x-pdf"), PDF), Ok(()));
        assert!(check("application/pdf", Some("application/octet-stream"), HTML).is_err());
        assert!(
            check("application/pdf", Some("application/zip"), PDF).is_err(),
            "a header that does not fit"
        );
    }

    #[test]
    fn wildcards_and_types_without_a_signature() {
        assert_eq!(check("application/*", Some("application/zip"), b"PK\x03\x04"), Ok(()));
        assert_eq!(check("application/*", None, b"{\"a\":1}"), Ok(()));
        assert!(check("application/*", Some("text/html"), HTML).is_err());
        assert!(check("application/*", None, HTML).is_err(), "HTML is text/html");
        // No signature known: only markup or JSON that does not fit contradicts.
        assert_eq!(check("image/png", None, b"\x89PNG\r\n"), Ok(()));
        assert_eq!(check("text/csv", None, b"a,b\n1,2\n"), Ok(()));
        assert!(check("text/csv", None, HTML).is_err());
        assert_eq!(check("application/vnd.ms-excel", None, b"PK\x03\x04"), Ok(()));
        assert_eq!(check("application/atom+xml", None, b"<?xml v"), Ok(()));
        assert_eq!(check("text/html", None, b"<?xml version=\"1.0\"?><html"), Ok(()));
        assert_eq!(check("application/ld+json", None, b"{}"), Ok(()));
        assert!(check("application/gzip", None, PDF).is_err());
        assert_eq!(
            check("application/gzip", Some("application/x-gzip"), b"\x1f\x8b"),
            Ok(())
        );
    }

    #[test]
    fn shown_bytes_are_escaped() {
        assert_eq!(shown(b"\x1f\x8b\x08\"q"), r#"\x1f\x8b\x08\"q"#);
        assert_eq!(shown(b"0123456789abcdefgh"), "0123456789abcd");
    }
}
