//! URL canonicalization (SPEC §2, RFC 3986 normalization), and credentials
//! redacted for display.

use std::borrow::Cow;

/// Why a URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Not a URL.
    #[error("not a valid URL: {0}")]
    Parse(String),
    /// A scheme other than http/https.
    #[error("scheme {0:?} is not allowed (http or https only)")]
    Scheme(String),
    /// No host.
    #[error("URL has no host")]
    NoHost,
}

/// The canonical form of an `http`/`https` URL: lowercase scheme and host,
/// default port removed, dot segments removed, percent-encodings of
/// unreserved characters decoded and the rest uppercased, empty path `/`,
/// fragment dropped, query order kept, non-ASCII percent-encoded as UTF-8.
pub fn canonicalize(raw: &str) -> Result<String, UrlError> {
    let hidden = hide_drive_letters(raw.trim());
    let mut parsed =
        url::Url::parse(hidden.as_deref().unwrap_or(raw.trim())).map_err(|e| UrlError::Parse(e.to_string()))?;
    match parsed.scheme() {
        "http" | "https" => {}
        other => return Err(UrlError::Scheme(other.to_owned())),
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(UrlError::NoHost);
    }
    if parsed.fragment().is_some() {
        parsed.set_fragment(None);
    }
    // Setting a part re-serializes the URL: only parts that change are set.
    let mut path = remove_dot_segments(&normalize_percent(parsed.path()));
    if hidden.is_some() {
        path = path.replace(HIDDEN_COLON, ":").replace(HIDDEN_BAR, "|");
    }
    if path != parsed.path() {
        parsed.set_path(&path);
    }
    if let Some(query) = parsed.query().map(normalize_percent) {
        if Some(query.as_str()) != parsed.query() {
            parsed.set_query(Some(&query));
        }
    }
    Ok(parsed.into())
}

/// `text` with the password of every URL in it replaced by `***`, for
/// display: `https://user:pass@host/x` becomes `https://user:***@host/x`,
/// and a user name given alone (`https://TOKEN@host/x`, how access tokens
/// are usually passed) becomes `***` too. Works on a URL and on any text
/// that holds URLs (error messages, log lines); text without credentials
/// comes back borrowed.
///
/// Display only: the canonical URL, and so the job key (SPEC §2), keeps the
/// credentials as written, and requests still send them.
pub fn redact(text: &str) -> Cow<'_, str> {
    let mut out = String::new();
    let mut copied = 0;
    let mut search = 0;
    while let Some(found) = text[search..].find("://") {
        let authority_start = search + found + 3;
        let authority_len = text[authority_start..]
            .find(|c: char| matches!(c, '/' | '?' | '#' | '"' | '\'' | '<' | '>' | '`') || c.is_whitespace())
            .unwrap_or(text.len() - authority_start);
        let authority = &text[authority_start..authority_start + authority_len];
        search = authority_start + authority_len;
        let Some(at) = authority.rfind('@') else {
            continue;
        };
        let userinfo = &authority[..at];
        let shown = match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***"),
            None => "***".to_owned(),
        };
        if shown != userinfo {
            out.push_str(&text[copied..authority_start]);
            out.push_str(&shown);
            copied = authority_start + at;
        }
    }
    if copied == 0 {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

/// The host of a canonical URL with its port, if it names one (`h:8080`;
/// `[::1]:8080` for IPv6), without any user info: the authority after
/// `scheme://`, up to the path, from the first `@` on. The stores match
/// `retry --host` with this same rule in SQL.
pub fn host_port(canonical_url: &str) -> &str {
    let rest = canonical_url.split_once("://").map_or(canonical_url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or(rest);
    authority.split_once('@').map_or(authority, |(_, host_port)| host_port)
}

/// Whether a canonical URL's host is `host`: [`host_port`] equals it, or
/// starts with it followed by `:` and a port (so `h` matches `h:8080` and
/// `h:8080` only that port).
pub fn host_matches(canonical_url: &str, host: &str) -> bool {
    let found = host_port(canonical_url);
    found == host || found.strip_prefix(host).is_some_and(|rest| rest.starts_with(':'))
}

/// What a private-use character standing for a drive letter's `:` (U+E000)
/// and `|` (U+E001) becomes in a parsed path.
const HIDDEN_COLON: &str = "%EE%80%80";
const HIDDEN_BAR: &str = "%EE%80%81";

/// `raw` with the `:` or `|` of each path segment that looks like a Windows
/// drive letter (`c:`, `C|`) replaced by a private-use character, when it
/// has any (and no such character already): the url crate (2.5) keeps such
/// a segment when `..` follows it, in every scheme, where RFC 3986 (and the
/// WHATWG rules for other schemes than `file`) remove it — `http://h/c:/../x`
/// is `http://h/x`. Only the path is touched: from the end of the authority
/// to the query or fragment.
fn hide_drive_letters(raw: &str) -> Option<String> {
    if raw.contains(['\u{E000}', '\u{E001}']) || raw.to_ascii_uppercase().contains("%EE%80%8") {
        return None;
    }
    let after_scheme = raw.find(':')? + 1;
    let authority = after_scheme + raw[after_scheme..].find(|c| c != '/' && c != '\\')?;
    let path_start = authority + raw[authority..].find(['/', '\\', '?', '#'])?;
    let path_end = path_start + raw[path_start..].find(['?', '#']).unwrap_or(raw.len() - path_start);
    let path = &raw.as_bytes()[path_start..path_end];
    let mut out = String::with_capacity(raw.len() + 8);
    out.push_str(&raw[..path_start]);
    let mut changed = false;
    let mut i = 0;
    while i < path.len() {
        let drive = matches!(path[i], b'/' | b'\\')
            && path.get(i + 1).is_some_and(u8::is_ascii_alphabetic)
            && matches!(path.get(i + 2), Some(b':' | b'|'))
            && path.get(i + 3).is_none_or(|b| matches!(b, b'/' | b'\\'));
        if drive {
            out.push(char::from(path[i]));
            out.push(char::from(path[i + 1]));
            out.push(if path[i + 2] == b':' { '\u{E000}' } else { '\u{E001}' });
            changed = true;
            i += 3;
        } else {
            // Copy up to the next separator whole (it may be UTF-8).
            let next = path[i + 1..]
                .iter()
                .position(|b| matches!(b, b'/' | b'\\'))
                .map_or(path.len(), |p| i + 1 + p);
            out.push_str(&raw[path_start + i..path_start + next]);
            i = next;
        }
    }
    out.push_str(&raw[path_end..]);
    changed.then_some(out)
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Decodes `%XX` of unreserved characters and uppercases the hex of the rest.
fn normalize_percent(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < bytes.len() {
        // Two hex digits exactly: `from_str_radix` alone would take `%+a` for one.
        if bytes[i] == b'%' && i + 2 < bytes.len() && bytes[i + 1..i + 3].iter().all(u8::is_ascii_hexdigit) {
            let hex = &s[i + 1..i + 3];
            if let Ok(value) = u8::from_str_radix(hex, 16) {
                if is_unreserved(value) && !completes_stray_percent(&out, value) {
                    out.push(char::from(value));
                } else {
                    out.push('%');
                    out.push_str(&hex.to_ascii_uppercase());
                }
                i += 3;
                continue;
            }
        }
        // Safe to push byte-wise: the url crate leaves only ASCII here.
        out.push(char::from(bytes[i]));
        i += 1;
    }
    out
}

/// Whether decoding to `value` right after `out` would make a stray `%`
/// (one not followed by two hex digits) the start of a percent-encoding —
/// `%%4%46` decoded to `%%4F` would decode again to `%O`. Such a digit stays
/// encoded, so that a canonical URL is its own canonical form.
fn completes_stray_percent(out: &str, value: u8) -> bool {
    let tail = out.as_bytes();
    value.is_ascii_hexdigit()
        && (tail.last() == Some(&b'%')
            || (tail.len() >= 2 && tail[tail.len() - 2] == b'%' && tail[tail.len() - 1].is_ascii_hexdigit()))
}

/// RFC 3986 §5.2.4, for paths that may have gained dot segments by decoding.
fn remove_dot_segments(path: &str) -> String {
    if !path.split('/').any(|seg| seg == "." || seg == "..") {
        return path.to_owned();
    }
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    for (i, seg) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        match *seg {
            "." => {
                if last {
                    out.push("");
                }
            }
            ".." => {
                out.pop();
                if last {
                    out.push("");
                }
            }
            other => out.push(other),
        }
    }
    format!("/{}", out.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the URL differential oracle (issue 19): `%+a` is no
    /// percent-encoding, yet `from_str_radix` read `+a` as hex and the
    /// canonical URL came out `%+A`, another URL than the one written.
    #[test]
    fn a_percent_sign_without_two_hex_digits_is_kept_as_written() {
        assert_eq!(canonicalize("http://h/%+a%4B?%+b").unwrap(), "http://h/%+aK?%+b");
        assert_eq!(canonicalize("http://h/a%-1%zz").unwrap(), "http://h/a%-1%zz");
    }

    /// Found by the URL fuzz target (issue 19): decoding `%46` after a stray
    /// `%4` made `%%4F`, which canonicalized again to `%O`: the canonical
    /// URL was not a fixed point. A decoded hex digit that would complete a
    /// stray `%` stays encoded.
    #[test]
    fn decoding_never_completes_a_stray_percent_sign() {
        for raw in ["https://h///%%4%46", "http://h/%%34%31", "http://h/%%41%42?%%4%66"] {
            let once = canonicalize(raw).unwrap();
            assert_eq!(canonicalize(&once).unwrap(), once, "from {raw}");
        }
        assert_eq!(canonicalize("https://h///%%4%46").unwrap(), "https://h///%%4%46");
        assert_eq!(canonicalize("http://h/%%41%42").unwrap(), "http://h/%%41B");
        assert_eq!(canonicalize("http://h/a%41%42").unwrap(), "http://h/aAB");
    }

    /// Found by the URL fuzz target (issue 19): the url crate keeps a
    /// segment that looks like a Windows drive letter when `..` follows it,
    /// also in http URLs, so `http://h/k:/../x` stayed `http://h/k:/x`.
    #[test]
    fn a_drive_letter_like_segment_is_removed_by_dot_dot() {
        assert_eq!(canonicalize("http://h/k:/../x").unwrap(), "http://h/x");
        assert_eq!(
            canonicalize("http://h/a/K|/%2e%2E/x?q=/k:/../").unwrap(),
            "http://h/a/x?q=/k:/../"
        );
        assert_eq!(canonicalize("http://h/.%2e//k:/../:").unwrap(), "http://h//:");
        assert_eq!(canonicalize("http://h/k:/x").unwrap(), "http://h/k:/x");
        assert_eq!(canonicalize("http://h/k:").unwrap(), "http://h/k:");
        assert_eq!(canonicalize("http://k:8080/c:/../d").unwrap(), "http://k:8080/d");
    }

    #[test]
    fn refuses_other_schemes() {
        assert_eq!(canonicalize("ftp://x/y"), Err(UrlError::Scheme("ftp".into())));
        assert!(matches!(canonicalize("file:///etc/passwd"), Err(UrlError::Scheme(_))));
        assert!(matches!(canonicalize("not a url"), Err(UrlError::Parse(_))));
    }

    #[test]
    fn encodes_non_ascii_uppercase() {
        assert_eq!(canonicalize("https://h/é?q=ü").unwrap(), "https://h/%C3%A9?q=%C3%BC");
    }

    #[test]
    fn redact_hides_passwords_and_lone_user_names() {
        assert_eq!(redact("https://user:pa:ss@h/x?a=b@c"), "https://user:***@h/x?a=b@c");
        assert_eq!(redact("https://TOKEN@h/x"), "https://***@h/x");
        assert_eq!(redact("https://user:***@h/x"), "https://user:***@h/x", "idempotent");
        assert_eq!(
            redact("https://h/a@b"),
            "https://h/a@b",
            "an @ in the path is no userinfo"
        );
        assert_eq!(redact("https://u:p%40q@h:8080"), "https://u:***@h:8080");
        assert_eq!(
            redact("cannot connect to http://a:b@h/x (redirected from \"http://c@k/y\")"),
            "cannot connect to http://a:***@h/x (redirected from \"http://***@k/y\")"
        );
        assert!(matches!(redact("plain https://h/x text"), Cow::Borrowed(_)));
        assert_eq!(
            redact("µ://é:ü@h"),
            "µ://é:***@h",
            "non-ASCII is cut on char boundaries"
        );
    }

    #[test]
    fn redacting_keeps_the_key() {
        let url = "https://user:secret@h/x";
        assert_eq!(
            canonicalize(url).unwrap(),
            "https://user:secret@h/x",
            "hashed as written"
        );
    }

    #[test]
    fn host_port_skips_user_info_and_path() {
        assert_eq!(host_port("https://u:p@h.example:8443/a/b?c"), "h.example:8443");
        assert_eq!(host_port("http://[::1]:8080/"), "[::1]:8080");
        assert_eq!(host_port("https://h/"), "h");
        assert!(host_matches("http://127.0.0.1:9000/x", "127.0.0.1"));
        assert!(host_matches("http://127.0.0.1:9000/x", "127.0.0.1:9000"));
        assert!(!host_matches("http://127.0.0.1:9000/x", "127.0.0.1:900"));
        assert!(!host_matches("http://127.0.0.10/x", "127.0.0.1"));
        assert!(!host_matches("http://user@evil/x", "user"));
    }

    #[test]
    fn decoded_dots_are_resolved() {
        assert_eq!(canonicalize("https://h/a/%2e%2E/b").unwrap(), "https://h/b");
    }
}
