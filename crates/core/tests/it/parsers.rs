//! Property tests of everything that parses outside input: the manifest
//! reader (JSON Lines and CSV), URL canonicalization, and the file-name
//! encoding of ids. Arbitrary input never panics, and what comes out keeps
//! the contract's promises (SPEC §1, §2, §6).

use std::collections::HashMap;
use std::io::Cursor;
use std::path::{Component, Path};

use oncefetch_core::manifest::{Format, ManifestReader};
use oncefetch_core::pipeline::files::encode_component;
use oncefetch_core::url::canonicalize;
use proptest::prelude::*;

/// Strings rich in the characters the encodings care about.
fn id() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-zA-Z0-9._~%/\\\\ -]{0,40}",
        2 => "\\PC{0,40}",
        1 => "[x~%.]{140,320}",
        1 => any::<String>(),
    ]
}

/// Everything the manifest reader returns for `input`, consumed whole.
fn read_all(input: &[u8], format: Format) -> Vec<(u64, bool)> {
    let mut reader = ManifestReader::new(Cursor::new(input.to_vec()), format);
    let mut seen = Vec::new();
    while let Some(entry) = reader.next_entry() {
        let entry = entry.expect("reading from memory never fails");
        if let Err(rejected) = &entry {
            assert_eq!(rejected.line, reader.line_number(), "a rejection names its own line");
        }
        seen.push((reader.line_number(), entry.is_ok()));
    }
    seen
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// An id always becomes exactly one plain path component: never a
    /// separator, `.`/`..`, NUL, nor longer than a file name may be.
    #[test]
    fn an_encoded_id_is_one_plain_component(id in id()) {
        let name = encode_component(&id);
        prop_assert!(name.len() <= 255, "{} bytes", name.len());
        prop_assert!(!name.contains('/') && !name.contains('\0') && !name.contains('\\'));
        if !id.is_empty() {
            let components: Vec<_> = Path::new(&name).components().collect();
            prop_assert_eq!(components.len(), 1, "{:?}", name);
            prop_assert!(matches!(components[0], Component::Normal(_)), "{:?}", name);
            prop_assert!(!name.starts_with('.'), "no hidden or dot name: {:?}", name);
        }
    }

    /// Ids never share a file name: a name kept whole decodes back to its
    /// id, and only a shortened one carries a bare `~`.
    #[test]
    fn encoding_is_injective(a in id(), b in id()) {
        let (na, nb) = (encode_component(&a), encode_component(&b));
        if a != b {
            prop_assert_ne!(&na, &nb, "{:?} and {:?}", a, b);
        }
        if !na.contains('~') {
            prop_assert_eq!(percent_decode(&na), a);
        }
    }

    /// Canonicalizing is idempotent and yields an http(s) URL.
    #[test]
    fn canonicalization_is_idempotent(
        scheme in prop_oneof!["http", "https", "HTTP", "Https"],
        host in "[a-zA-Z0-9.-]{1,20}",
        port in proptest::option::of(0u16..=65535),
        path in "(/[a-zA-Z0-9._~%!$&'()*+,;=:@ -]{0,12}){0,5}",
        query in proptest::option::of("[a-zA-Z0-9=&%+._~-]{0,20}"),
        fragment in proptest::option::of("[a-z]{0,5}"),
    ) {
        let port = port.map(|p| format!(":{p}")).unwrap_or_default();
        let query = query.map(|q| format!("?{q}")).unwrap_or_default();
        let fragment = fragment.map(|f| format!("#{f}")).unwrap_or_default();
        let raw = format!("{scheme}://{host}{port}{path}{query}{fragment}");
        if let Ok(once) = canonicalize(&raw) {
            prop_assert!(once.starts_with("http://") || once.starts_with("https://"), "{}", once);
            prop_assert!(!once.contains('#'), "fragment dropped: {}", once);
            let twice = canonicalize(&once);
            prop_assert_eq!(twice.as_deref(), Ok(once.as_str()), "from {}", raw);
        }
    }

    /// Any text at all is refused or canonicalized, never a panic.
    #[test]
    fn canonicalization_never_panics(raw in any::<String>()) {
        let _ = canonicalize(&raw);
    }

    /// Arbitrary bytes as a manifest: every entry comes with its line
    /// number, numbers only grow, and nothing panics.
    #[test]
    fn the_manifest_reader_takes_any_bytes(
        input in proptest::collection::vec(any::<u8>(), 0..600),
        csv in any::<bool>(),
    ) {
        let format = if csv { Format::Csv } else { Format::JsonLines };
        let seen = read_all(&input, format);
        prop_assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "{:?}", seen);
        let lines = input.split(|&b| b == b'\n').count() as u64;
        prop_assert!(seen.last().is_none_or(|(line, _)| *line <= lines));
    }

    /// Well-formed JSON Lines, with junk lines between: the good ones are
    /// read, each bad one is rejected by its number, blank lines skipped.
    #[test]
    fn good_lines_are_read_and_bad_ones_numbered(
        lines in proptest::collection::vec(
            prop_oneof![
                3 => ("[a-z0-9]{1,8}", "[a-z0-9.]{1,8}", "[a-z0-9/]{0,10}").prop_map(|(w, a, p)| {
                    (true, serde_json::json!({"work_id": w, "artifact_id": a, "url": format!("https://example.org/{p}")}).to_string())
                }),
                1 => "[^\n{}]{1,20}".prop_filter("not blank (a leading BOM is the file's, not the line's)", |s| {
                    !s.trim_start_matches('\u{feff}').trim().is_empty()
                }).prop_map(|junk| (false, junk)),
                1 => Just((false, "{\"work_id\": 1}".to_owned())),
            ],
            0..30,
        ),
    ) {
        let text: String = lines.iter().map(|(_, line)| format!("{line}\n")).collect();
        let seen = read_all(text.as_bytes(), Format::JsonLines);
        let expected: Vec<(u64, bool)> = lines
            .iter()
            .enumerate()
            .map(|(i, (good, _))| (i as u64 + 1, *good))
            .collect();
        prop_assert_eq!(seen, expected);
    }
}

/// `%XX` escapes back to bytes (the inverse of [`encode_component`] for
/// names kept whole).
fn percent_decode(name: &str) -> String {
    let hex: HashMap<u8, u8> = (0u8..16).map(|v| (b"0123456789ABCDEF"[usize::from(v)], v)).collect();
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            out.push(hex[&bytes[i + 1]] << 4 | hex[&bytes[i + 2]]);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).expect("decodes to the id's UTF-8")
}
