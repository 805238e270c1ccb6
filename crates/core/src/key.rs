//! Deterministic keys (SPEC §2): `ikey`, job keys and op keys,
//! byte-compatible with Python's
//! `json.dumps(obj, sort_keys=True, separators=(",", ":"))`.

use sha2::{Digest, Sha256};

use crate::ledger::OpKind;

/// A JSON value the keys are built from: strings and integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyValue<'a> {
    /// A JSON string.
    Str(&'a str),
    /// A JSON integer.
    Int(i64),
}

/// `ikey` of a flat JSON object: lowercase hex SHA-256 of its canonical
/// serialization (keys sorted by code point, no spaces, non-ASCII escaped as
/// `\uXXXX`). Duplicate field names are a caller bug; the last one is not
/// dropped, so avoid them.
pub fn ikey(fields: &mut [(&str, KeyValue<'_>)]) -> String {
    fields.sort_unstable_by(|a, b| cmp_code_points(a.0, b.0));
    let mut out = Vec::with_capacity(256);
    out.push(b'{');
    for (i, (name, value)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_json_str(&mut out, name);
        out.push(b':');
        match value {
            KeyValue::Str(s) => write_json_str(&mut out, s),
            KeyValue::Int(n) => out.extend_from_slice(n.to_string().as_bytes()),
        }
    }
    out.push(b'}');
    sha256_hex(&out)
}

/// Lowercase hex SHA-256 of `bytes`.
fn sha256_hex(bytes: &[u8]) -> String {
    // Into a buffer at once: `hex::encode` builds the string a char at a
    // time, a tenth of the parse thread's time when planning a manifest.
    let mut out = [0u8; 64];
    hex::encode_to_slice(Sha256::digest(bytes), &mut out).expect("64 hex digits for 32 bytes");
    String::from_utf8(out.to_vec()).expect("hex digits are ASCII")
}

/// Python sorts dict keys by code point; UTF-8 byte order is the same order.
fn cmp_code_points(a: &str, b: &str) -> std::cmp::Ordering {
    a.as_bytes().cmp(b.as_bytes())
}

/// Writes `s` as a JSON string the way Python's `ensure_ascii` does. Runs of
/// printable ASCII other than `"` and `\` are copied as they are.
fn write_json_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let mut rest = s;
    while !rest.is_empty() {
        let plain = rest
            .bytes()
            .position(|b| !matches!(b, b' '..=b'~') || b == b'"' || b == b'\\')
            .unwrap_or(rest.len());
        out.extend_from_slice(&rest.as_bytes()[..plain]);
        rest = &rest[plain..];
        let Some(c) = rest.chars().next() else { break };
        rest = &rest[c.len_utf8()..];
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            ' '..='~' => out.push(c as u8),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.extend_from_slice(b"\\u");
                    for shift in [12, 8, 4, 0] {
                        out.push(HEX[usize::from((*unit >> shift) & 0xf)]);
                    }
                }
            }
        }
    }
    out.push(b'"');
}

/// The job key of an artifact (SPEC §2): `ikey` of
/// `{"v":1,"kind":"JOB","work_id":W,"artifact_id":A,"url":U,"role":"artifact"}`,
/// written directly with its keys in sorted order (one key per manifest line
/// when planning).
pub fn job_key(work_id: &str, artifact_id: &str, canonical_url: &str) -> String {
    let mut out = Vec::with_capacity(80 + work_id.len() + artifact_id.len() + canonical_url.len());
    out.extend_from_slice(br#"{"artifact_id":"#);
    write_json_str(&mut out, artifact_id);
    out.extend_from_slice(br#","kind":"JOB","role":"artifact","url":"#);
    write_json_str(&mut out, canonical_url);
    out.extend_from_slice(br#","v":1,"work_id":"#);
    write_json_str(&mut out, work_id);
    out.push(b'}');
    sha256_hex(&out)
}

/// The op key of a side effect: `{"v":1,"kind":KIND,"job_id":JOB, ...context}`.
pub fn op_key(kind: &str, job_key: &str, context: &[(&str, KeyValue<'_>)]) -> String {
    let mut fields = Vec::with_capacity(context.len() + 3);
    fields.extend_from_slice(&[
        ("v", KeyValue::Int(1)),
        ("kind", KeyValue::Str(kind)),
        ("job_id", KeyValue::Str(job_key)),
    ]);
    fields.extend_from_slice(context);
    ikey(&mut fields)
}

/// The op keys of the pipeline's side effects, with the SPEC contexts.
#[derive(Debug, Clone, Copy)]
pub struct OpKeys<'a> {
    /// The job.
    pub job_key: &'a str,
}

impl OpKeys<'_> {
    /// HEAD: `{"url": CANONICAL_URL}`.
    pub fn head(&self, canonical_url: &str) -> String {
        op_key(
            OpKind::Head.as_str(),
            self.job_key,
            &[("url", KeyValue::Str(canonical_url))],
        )
    }

    /// STREAM: `{"url": CANONICAL_URL, "range_start": OFFSET}`.
    pub fn stream(&self, canonical_url: &str, range_start: u64) -> String {
        let start = i64::try_from(range_start).unwrap_or(i64::MAX);
        op_key(
            OpKind::Stream.as_str(),
            self.job_key,
            &[
                ("url", KeyValue::Str(canonical_url)),
                ("range_start", KeyValue::Int(start)),
            ],
        )
    }

    /// FINALIZE, INDEX or DEDUPE: `{"sha256": HEX}`.
    pub fn content(&self, kind: OpKind, sha256: &str) -> String {
        op_key(kind.as_str(), self.job_key, &[("sha256", KeyValue::Str(sha256))])
    }

    /// A ledger-only action tied to an epoch (RELET, REQUEUE): `{"epoch": N}`.
    pub fn epoch_action(&self, kind: OpKind, epoch: i64) -> String {
        op_key(kind.as_str(), self.job_key, &[("epoch", KeyValue::Int(epoch))])
    }

    /// CLEANUP of one file: `{"file": NAME}`.
    pub fn cleanup(&self, file_name: &str) -> String {
        op_key(
            OpKind::Cleanup.as_str(),
            self.job_key,
            &[("file", KeyValue::Str(file_name))],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_python() {
        let mut out = Vec::new();
        write_json_str(&mut out, "a\"\\\n\u{1}é😀\u{7f}~");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#""a\"\\\n\u0001\u00e9\ud83d\ude00\u007f~""#
        );
    }

    #[test]
    fn job_key_is_the_ikey_of_its_object() {
        for (w, a, u) in [
            ("w", "a", "https://h/x"),
            ("", "", ""),
            ("w\"\\\n\u{1}é😀\u{7f}~", "a b", "https://h/%C3%A9?q=1&r=\"2\""),
        ] {
            let expected = ikey(&mut [
                ("v", KeyValue::Int(1)),
                ("kind", KeyValue::Str("JOB")),
                ("work_id", KeyValue::Str(w)),
                ("artifact_id", KeyValue::Str(a)),
                ("url", KeyValue::Str(u)),
                ("role", KeyValue::Str("artifact")),
            ]);
            assert_eq!(job_key(w, a, u), expected);
        }
    }

    #[test]
    fn sorts_keys() {
        // {"a":1,"b":"x"} in Python: sha256 of that exact text.
        let expected = hex::encode(Sha256::digest(br#"{"a":1,"b":"x"}"#));
        assert_eq!(
            ikey(&mut [("b", KeyValue::Str("x")), ("a", KeyValue::Int(1))]),
            expected
        );
    }
}
