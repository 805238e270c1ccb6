//! Oracles for core's parsers of outside input — the manifest reader, URL
//! canonicalization and the file-name encoding of ids — as functions of raw
//! bytes that panic on any broken promise. The property tests beside this
//! file run them on generated input; the fuzz targets in `fuzz/` include this
//! very file and run them on what libFuzzer makes, so both check one thing.

use std::io::Cursor;
use std::path::{Component, Path};

use oncefetch_core::manifest::{Format, ManifestReader};
use oncefetch_core::pipeline::files::encode_component;
use oncefetch_core::url::canonicalize;

/// Reads `data` as a manifest (its first byte picks the format: odd CSV,
/// even JSON Lines) and checks every entry: line numbers only grow and stay
/// within the input, a rejection names its line and a reason, an accepted
/// job has both ids, its URL's canonical form (a fixed point of
/// canonicalization), the job key of those, and a well-formed hash.
pub(crate) fn manifest(data: &[u8]) {
    let (format, input) = match data.split_first() {
        Some((first, rest)) if first % 2 == 1 => (Format::Csv, rest),
        Some((_, rest)) => (Format::JsonLines, rest),
        None => (Format::JsonLines, data),
    };
    let lines = input.split(|&b| b == b'\n').count() as u64;
    let mut reader = ManifestReader::new(Cursor::new(input.to_vec()), format);
    let mut last = 0;
    while let Some(entry) = reader.next_entry() {
        let entry = entry.expect("reading from memory never fails");
        let line = reader.line_number();
        assert!(line > last && line <= lines, "line {line} after {last}, of {lines}");
        last = line;
        match entry {
            Err(rejected) => {
                assert_eq!(rejected.line, line, "a rejection names its own line");
                assert!(!rejected.reason.is_empty(), "a rejection says why");
            }
            Ok(job) => {
                assert!(!job.work_id.is_empty() && !job.artifact_id.is_empty(), "{job:?}");
                assert_eq!(
                    canonicalize(&job.url).as_deref(),
                    Ok(job.canonical_url.as_str()),
                    "{job:?}"
                );
                assert_eq!(
                    canonicalize(&job.canonical_url).as_deref(),
                    Ok(job.canonical_url.as_str()),
                    "a canonical URL is its own canonical form: {job:?}"
                );
                assert!(job.canonical_url.starts_with("http://") || job.canonical_url.starts_with("https://"));
                assert_eq!(
                    job.job_key,
                    oncefetch_core::job_key(&job.work_id, &job.artifact_id, &job.canonical_url)
                );
                if let Some(hash) = &job.expected_sha256 {
                    assert!(
                        hash.len() == 64 && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
                        "{hash:?}"
                    );
                }
            }
        }
    }
}

/// Any text is refused or canonicalized to an http(s) URL without a
/// fragment that canonicalizes to itself.
pub(crate) fn any_url(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(once) = canonicalize(text) {
        assert!(once.starts_with("http://") || once.starts_with("https://"), "{once}");
        assert!(!once.contains('#'), "{once}");
        assert_eq!(canonicalize(&once).as_deref(), Ok(once.as_str()), "from {text:?}");
    }
}

/// A little reader of fuzz bytes: each call takes the next byte (0 past the end).
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn next(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    fn pick<'c>(&mut self, choices: &[&'c str]) -> &'c str {
        choices[usize::from(self.next()) % choices.len()]
    }

    fn done(&self) -> bool {
        self.0.is_empty()
    }
}

const UNRESERVED: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~";

/// Builds a URL from `data` — random case in scheme and host, a default or
/// other port, path segments mixing plain characters, sub-delimiters,
/// percent-encodings in either case (of unreserved characters and others),
/// stray `%`s, dot segments (also encoded), spaces and non-ASCII, a query
/// and a fragment — together with its canonical form worked out from the
/// SPEC §2 rules alone (RFC 3986 §6.2.2 and the §5.2.4 dot-segment
/// algorithm), and checks that `canonicalize` agrees.
pub(crate) fn url_differential(data: &[u8]) {
    let (raw, expected) = url_case(data);
    assert_eq!(
        canonicalize(&raw).as_deref(),
        Ok(expected.as_str()),
        "canonicalize({raw:?})"
    );
}

/// The URL `data` describes and its canonical form by the rules (see [`url_differential`]).
pub(crate) fn url_case(data: &[u8]) -> (String, String) {
    let mut bytes = Bytes(data);
    let https = bytes.next() % 2 == 1;
    let scheme = if https { "https" } else { "http" };
    let case = bytes.next();
    let raw_scheme: String = scheme
        .chars()
        .enumerate()
        .map(|(i, c)| if case >> i & 1 == 1 { c.to_ascii_uppercase() } else { c })
        .collect();
    let labels = 1 + bytes.next() % 3;
    let mut raw_host = String::new();
    for n in 0..labels {
        if n > 0 {
            raw_host.push('.');
        }
        let len = 1 + bytes.next() % 6;
        for i in 0..len {
            let b = bytes.next();
            // The last label starts with a letter: never read as an IPv4 number.
            let set: &[u8] = if n + 1 == labels && i == 0 {
                b"abcdexyz"
            } else {
                b"abcdexyz0189-"
            };
            let c = char::from(set[usize::from(b) % set.len()]);
            raw_host.push(if b & 0x80 != 0 { c.to_ascii_uppercase() } else { c });
        }
    }
    let host = raw_host.to_ascii_lowercase();
    let default = if https { 443 } else { 80 };
    let (raw_port, port) = match bytes.next() % 4 {
        0 => (String::new(), String::new()),
        1 => (format!(":{default}"), String::new()),
        2 => (format!(":0{default}"), String::new()),
        _ => {
            let p = 1 + u16::from(bytes.next()) * 251 % 65000;
            let shown = if p == default { String::new() } else { format!(":{p}") };
            (format!(":{p}"), shown)
        }
    };
    let mut raw_path = String::new();
    let mut path = String::new();
    let segments = bytes.next() % 6;
    for _ in 0..segments {
        raw_path.push('/');
        path.push('/');
        let tokens = bytes.next() % 5;
        for _ in 0..tokens {
            let (raw, canonical) = path_token(&mut bytes);
            raw_path.push_str(&raw);
            path.push_str(&canonical);
        }
        if bytes.done() {
            break;
        }
    }
    let path = remove_dot_segments(&path);
    let path = if path.is_empty() { "/".to_owned() } else { path };
    let (raw_query, query) = match bytes.next() % 3 {
        0 => (String::new(), String::new()),
        _ => {
            let mut raw = String::from("?");
            let mut canonical = String::from("?");
            for _ in 0..bytes.next() % 6 {
                let (r, c) = query_token(&mut bytes);
                raw.push_str(&r);
                canonical.push_str(&c);
            }
            (raw, canonical)
        }
    };
    let fragment = match bytes.next() % 3 {
        0 => "",
        _ => bytes.pick(&["#", "#top", "#a?b", "#%41"]),
    };
    let raw = format!("{raw_scheme}://{raw_host}{raw_port}{raw_path}{raw_query}{fragment}");
    let expected = format!("{scheme}://{host}{port}{path}{query}");
    (raw, expected)
}

/// One piece of a path segment as written and as canonicalized.
fn path_token(bytes: &mut Bytes<'_>) -> (String, String) {
    let b = bytes.next();
    match b % 9 {
        0 | 1 => {
            let c = char::from(UNRESERVED[usize::from(bytes.next()) % UNRESERVED.len()]);
            (c.to_string(), c.to_string())
        }
        2 => {
            // Sub-delimiters and the other characters a path keeps as they are.
            let c = bytes.pick(&["!", "$", "&", "'", "(", ")", "*", "+", ",", ";", "=", ":", "@"]);
            (c.to_owned(), c.to_owned())
        }
        3 => {
            // An unreserved character percent-encoded, in either case: decoded.
            let c = UNRESERVED[usize::from(bytes.next()) % UNRESERVED.len()];
            (escape(c, bytes.next() % 2 == 1), char::from(c).to_string())
        }
        4 => {
            // A reserved or other byte percent-encoded: kept, hex uppercased.
            let c = bytes.pick(&["%2f", "%2F", "%3a", "%25", "%3f", "%23", "%c3%a9", "%00", "%7f", "%20"]);
            (c.to_owned(), c.to_ascii_uppercase())
        }
        5 => {
            // Dot segments, plain or encoded (a whole segment only counts as one).
            let c = bytes.pick(&[".", "..", "%2e", "%2E%2e", ".%2E"]);
            let decoded = c.replace("%2e", ".").replace("%2E", ".");
            (c.to_owned(), decoded)
        }
        6 => {
            // A `%` that starts no percent-encoding: kept as it is.
            // (None ends in `%` or a hex digit, so the next token cannot complete one.)
            let c = bytes.pick(&["%zz", "%g_", "%+a", "%-_", "%x"]);
            (c.to_owned(), c.to_owned())
        }
        7 => {
            // (A space between letters: a URL's trailing blanks are trimmed.)
            let c = bytes.pick(&["a b", "é", "日", "\u{1F600}", "\"", "<", ">", "`", "{", "}"]);
            let encoded: String = c
                .bytes()
                .map(|b| match b {
                    b'a' | b'b' => char::from(b).to_string(),
                    _ => format!("%{b:02X}"),
                })
                .collect();
            (c.to_owned(), encoded)
        }
        _ => (String::new(), String::new()),
    }
}

/// One piece of a query as written and as canonicalized.
fn query_token(bytes: &mut Bytes<'_>) -> (String, String) {
    match bytes.next() % 5 {
        0 | 1 => {
            let c = char::from(UNRESERVED[usize::from(bytes.next()) % UNRESERVED.len()]);
            (c.to_string(), c.to_string())
        }
        2 => {
            let c = bytes.pick(&["=", "&", "+", ",", ";", ":", "@", "/", "?"]);
            (c.to_owned(), c.to_owned())
        }
        3 => {
            let c = UNRESERVED[usize::from(bytes.next()) % UNRESERVED.len()];
            (escape(c, bytes.next() % 2 == 1), char::from(c).to_string())
        }
        _ => {
            let c = bytes.pick(&["%26", "%3d", "%2B", "%25", "%c3%A9", "%+a", "%zz"]);
            let canonical = match c {
                "%+a" | "%zz" => c.to_owned(),
                _ => c.to_ascii_uppercase(),
            };
            (c.to_owned(), canonical)
        }
    }
}

fn escape(byte: u8, lower: bool) -> String {
    if lower {
        format!("%{byte:02x}")
    } else {
        format!("%{byte:02X}")
    }
}

/// RFC 3986 §5.2.4, the input-buffer form, written from the RFC (not from
/// the implementation under test).
fn remove_dot_segments(path: &str) -> String {
    let mut input = path;
    let mut output = String::new();
    fn pop_segment(output: &mut String) {
        match output.rfind('/') {
            Some(i) => output.truncate(i),
            None => output.clear(),
        }
    }
    while !input.is_empty() {
        if let Some(rest) = input.strip_prefix("../") {
            input = rest;
        } else if let Some(rest) = input.strip_prefix("./") {
            input = rest;
        } else if input.starts_with("/./") {
            input = &input[2..];
        } else if input == "/." {
            input = "/";
        } else if input.starts_with("/../") {
            input = &input[3..];
            pop_segment(&mut output);
        } else if input == "/.." {
            input = "/";
            pop_segment(&mut output);
        } else if input == "." || input == ".." {
            input = "";
        } else {
            let start = usize::from(input.starts_with('/'));
            let end = input[start..].find('/').map_or(input.len(), |i| i + start);
            output.push_str(&input[..end]);
            input = &input[end..];
        }
    }
    output
}

/// Splits `data` into two ids and checks the file-name encoding of each:
/// one plain component (no separator, NUL, leading `.`, ≤ 255 bytes) that
/// joined to a folder stays directly inside it, that decodes back to the id
/// when kept whole, and that no two different ids share.
pub(crate) fn file_names(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (a, b) = text.split_once('\u{1}').unwrap_or((&text, ""));
    let dir = Path::new("/out/work");
    for id in [a, b] {
        let name = encode_component(id);
        assert!(name.len() <= 255, "{} bytes for {id:?}", name.len());
        assert!(!name.contains(['/', '\\', '\0']), "{name:?}");
        if id.is_empty() {
            continue;
        }
        assert!(!name.starts_with('.'), "{name:?}");
        let components: Vec<_> = Path::new(&name).components().collect();
        assert!(
            matches!(components[..], [Component::Normal(_)]),
            "{id:?} becomes {name:?}"
        );
        let joined = dir.join(&name);
        assert_eq!(joined.parent(), Some(dir), "{name:?} escapes its folder");
        if !name.contains('~') {
            assert_eq!(percent_decode(&name).as_deref(), Some(id), "{name:?} decodes back");
        }
    }
    if a != b {
        assert_ne!(encode_component(a), encode_component(b), "{a:?} and {b:?} share a name");
    }
}

/// `%XX` escapes back to bytes: `None` when they are not valid UTF-8.
fn percent_decode(name: &str) -> Option<String> {
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(value)) => {
                out.push(value);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}
