//! A failure's reason: its error message with what differs from one job to
//! the next (URLs, paths, hashes, sizes) taken out, so that the summary can
//! group failures that have one cause.

/// The reason of every connection failure (no route, refused, DNS).
pub(crate) const CANNOT_CONNECT: &str = "cannot connect";

/// The reason of `message`, a job's `last_error`:
///
/// - `server answered 404 not found for URL…` → `HTTP 404 not found`
/// - `cannot connect to URL: …` → [`CANNOT_CONNECT`]
/// - `timed out requesting URL: …` → `timed out`
/// - any other: the text up to its first `: `, `; ` or ` (`, URLs and paths
///   shown as `…` and numbers as `N` (`sha256 mismatch`, `truncated body`,
///   `size N exceeds the cap of N bytes`).
pub(crate) fn reason(message: &str) -> String {
    if let Some(answer) = message.strip_prefix("server answered ") {
        let status = answer.split(" for ").next().unwrap_or(answer);
        return format!("HTTP {status}");
    }
    if message.starts_with("cannot connect to ") {
        return CANNOT_CONNECT.to_owned();
    }
    if message.starts_with("timed out requesting ") {
        return "timed out".to_owned();
    }
    let head = [": ", "; ", " ("]
        .iter()
        .filter_map(|sep| message.find(sep))
        .min()
        .map_or(message, |end| &message[..end]);
    head.split_whitespace().map(word).collect::<Vec<_>>().join(" ")
}

/// A word of a reason: a URL or a path as `…`, a number as `N`.
fn word(word: &str) -> &str {
    if word.contains("://") || word.starts_with('/') {
        "…"
    } else if word.bytes().any(|b| b.is_ascii_digit()) && word.bytes().all(|b| b.is_ascii_digit() || b == b',') {
        "N"
    } else {
        word
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_leave_out_what_differs_per_job() {
        let cases = [
            (
                "server answered 404 not found for http://127.0.0.1:8080/a (redirected to http://x/b)",
                "HTTP 404 not found",
            ),
            (
                "server answered 503 service unavailable for https://h/x",
                "HTTP 503 service unavailable",
            ),
            (
                "cannot connect to http://127.0.0.1:9/x: error sending request: connection refused",
                CANNOT_CONNECT,
            ),
            ("timed out requesting https://h/x: operation timed out", "timed out"),
            ("sha256 mismatch: expected 00ff, got abcd", "sha256 mismatch"),
            ("truncated body: got 5 of 10 bytes", "truncated body"),
            (
                "size 123 exceeds the cap of 100 bytes",
                "size N exceeds the cap of N bytes",
            ),
            ("request to https://h/x failed: connection reset", "request to … failed"),
            (
                "a different file already occupies /out/w/a; it was left untouched",
                "a different file already occupies …",
            ),
            (
                "lease expired in STREAMING with 3 of 3 attempts used (worker died or stalled); last error: x",
                "lease expired in STREAMING with N of N attempts used",
            ),
            ("local file error: Permission denied (os error 13)", "local file error"),
        ];
        for (message, expected) in cases {
            assert_eq!(reason(message), expected, "{message}");
        }
        assert_eq!(
            reason("server answered 404 not found for http://h/a"),
            reason("server answered 404 not found for http://other/b"),
            "one reason whatever the URL"
        );
    }
}
