//! Manifest reading (SPEC §1): JSON Lines or CSV, streamed line by line, each
//! bad line rejected with its number and reason.

use std::borrow::Cow;
use std::io::{self, BufRead};

use serde_json::{Map, Value};

use crate::job::NewJob;
use crate::key::job_key;
use crate::url::canonicalize;

/// A rejected manifest line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct LineError {
    /// 1-based line number.
    pub line: u64,
    /// Why it was rejected.
    pub reason: String,
}

/// The manifest format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line.
    JsonLines,
    /// A header row, then one record per line.
    Csv,
}

impl Format {
    /// CSV for names ending in `.csv`, JSON Lines otherwise.
    pub fn for_path(path: &str) -> Self {
        if path.to_ascii_lowercase().ends_with(".csv") {
            Self::Csv
        } else {
            Self::JsonLines
        }
    }
}

/// Streams manifest entries: `Ok(job)` or `Err(LineError)` per non-empty line;
/// an I/O error ends the stream.
#[derive(Debug)]
pub struct ManifestReader<R> {
    input: R,
    format: Format,
    line_no: u64,
    buf: Vec<u8>,
    csv_header: Option<Vec<String>>,
}

impl<R: BufRead> ManifestReader<R> {
    /// Reads `input` in `format`.
    pub fn new(input: R, format: Format) -> Self {
        Self {
            input,
            format,
            line_no: 0,
            buf: Vec::with_capacity(512),
            csv_header: None,
        }
    }

    /// The 1-based number of the line the last entry came from (0 before
    /// the first).
    pub fn line_number(&self) -> u64 {
        self.line_no
    }

    /// The next entry; `None` at the end.
    pub fn next_entry(&mut self) -> Option<io::Result<Result<NewJob, LineError>>> {
        loop {
            self.buf.clear();
            match self.input.read_until(b'\n', &mut self.buf) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(err) => return Some(Err(err)),
            }
            self.line_no += 1;
            let line_no = self.line_no;
            let mut bytes: &[u8] = &self.buf;
            if line_no == 1 {
                bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
            }
            let text = match std::str::from_utf8(bytes) {
                Ok(text) => text.trim_end_matches(['\n', '\r']),
                Err(_) => return Some(Ok(Err(reject(line_no, "not valid UTF-8")))),
            };
            if text.trim().is_empty() {
                continue;
            }
            let entry = match self.format {
                Format::JsonLines => match fast_json_job(text) {
                    Some(job) => return Some(Ok(job.map_err(|reason| reject(line_no, &reason)))),
                    None => parse_json_line(text),
                },
                Format::Csv => match &self.csv_header {
                    None => {
                        self.csv_header = Some(
                            parse_csv_record(text)
                                .into_iter()
                                .map(|h| h.trim().to_owned())
                                .collect(),
                        );
                        continue;
                    }
                    Some(header) => csv_to_object(header, text),
                },
            };
            return Some(Ok(entry.and_then(to_job).map_err(|reason| reject(line_no, &reason))));
        }
    }
}

impl<R: BufRead> Iterator for ManifestReader<R> {
    type Item = io::Result<Result<NewJob, LineError>>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_entry()
    }
}

fn reject(line: u64, reason: &str) -> LineError {
    LineError {
        line,
        reason: reason.to_owned(),
    }
}

/// A manifest line with the fields of a job, borrowed from the line where
/// they hold no escapes.
#[derive(serde::Deserialize)]
struct JsonJob<'a> {
    #[serde(borrow)]
    work_id: Cow<'a, str>,
    #[serde(borrow)]
    artifact_id: Cow<'a, str>,
    #[serde(borrow)]
    url: Cow<'a, str>,
    #[serde(default, borrow)]
    sha256: Option<Cow<'a, str>>,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default, borrow)]
    content_type: Option<Cow<'a, str>>,
}

/// The job of a well-formed JSON line without building a [`Value`] first:
/// `None` when the line is anything else (not JSON, a field missing, of
/// another type, empty or given twice, a bad hash, not an object), which
/// [`parse_json_line`] and [`to_job`] then reject with their reason; a bad
/// URL is rejected here with the same reason as there.
fn fast_json_job(text: &str) -> Option<Result<NewJob, String>> {
    // Serde would also take the fields from an array.
    if !text.trim_start_matches([' ', '\t', '\n', '\r']).starts_with('{') {
        return None;
    }
    let line: JsonJob<'_> = serde_json::from_str(text).ok()?;
    if line.work_id.is_empty() || line.artifact_id.is_empty() || line.url.is_empty() {
        return None;
    }
    let expected_sha256 = match line.sha256 {
        None => None,
        Some(s) if is_sha256(&s) => Some(s.to_ascii_lowercase()),
        Some(_) => return None,
    };
    let expected_content_type = match line.content_type {
        None => None,
        Some(t) => Some(crate::content::parse_expected(&t).ok()?),
    };
    let canonical_url = match canonicalize(&line.url) {
        Ok(url) => url,
        Err(e) => return Some(Err(format!("url: {e}"))),
    };
    Some(Ok(NewJob {
        job_key: job_key(&line.work_id, &line.artifact_id, &canonical_url),
        work_id: line.work_id.into_owned(),
        artifact_id: line.artifact_id.into_owned(),
        url: line.url.into_owned(),
        canonical_url,
        expected_sha256,
        expected_size: line.size,
        expected_content_type,
    }))
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn parse_json_line(text: &str) -> Result<Map<String, Value>, String> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err("not a JSON object".to_owned()),
        Err(err) => Err(format!("not valid JSON: {err}")),
    }
}

/// One CSV record (RFC 4180 quoting) on one line.
fn parse_csv_record(text: &str) -> Vec<String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    reader
        .records()
        .next()
        .and_then(Result::ok)
        .map(|r| r.iter().map(str::to_owned).collect())
        .unwrap_or_default()
}

fn csv_to_object(header: &[String], text: &str) -> Result<Map<String, Value>, String> {
    let fields = parse_csv_record(text);
    if fields.len() != header.len() {
        return Err(format!("expected {} CSV fields, found {}", header.len(), fields.len()));
    }
    let mut map = Map::new();
    for (name, value) in header.iter().zip(fields) {
        let value = match name.as_str() {
            // Empty optional fields are absent; size is a number.
            "sha256" | "size" | "content_type" if value.is_empty() => continue,
            "size" => match serde_json::from_str::<serde_json::Number>(value.trim()) {
                Ok(n) => Value::Number(n),
                Err(_) => return Err(format!("size must be a non-negative integer, got {value:?}")),
            },
            _ => Value::String(value),
        };
        map.insert(name.clone(), value);
    }
    Ok(map)
}

fn required_id(map: &Map<String, Value>, field: &str) -> Result<String, String> {
    match map.get(field) {
        None | Some(Value::Null) => Err(format!("missing {field}")),
        Some(Value::String(s)) if s.is_empty() => Err(format!("empty {field}")),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(format!("{field} must be a JSON string, found {}", type_name(other))),
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A `size` value in bytes: a non-negative JSON integer. Negative zero
/// (`-0`) is zero: Python's `json`, the reference design's reader, reads it
/// as the integer 0; serde_json reads it as the float -0.0, so `-0.0` cannot
/// be told apart and is taken as zero as well. Any other fraction or
/// exponent notation (`1000.0`, `1e3`) is refused, whatever its value.
fn size(n: &serde_json::Number) -> Result<u64, String> {
    if let Some(size) = n.as_u64() {
        return Ok(size);
    }
    match n.as_f64() {
        // Matches -0.0 too (float patterns compare with `==`).
        Some(0.0) => Ok(0),
        // Parsed as a float because it does not fit a u64 (2^64 and up).
        Some(whole) if whole >= u64::MAX as f64 && whole.fract() == 0.0 => {
            Err(format!("size must be at most {} bytes, got {n}", u64::MAX))
        }
        _ => Err(format!("size must be a non-negative integer, got {n}")),
    }
}

fn to_job(map: Map<String, Value>) -> Result<NewJob, String> {
    let work_id = required_id(&map, "work_id")?;
    let artifact_id = required_id(&map, "artifact_id")?;
    let url = required_id(&map, "url")?;
    let canonical_url = canonicalize(&url).map_err(|e| format!("url: {e}"))?;
    let expected_sha256 = match map.get("sha256") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if is_sha256(s) => Some(s.to_ascii_lowercase()),
        Some(Value::String(s)) => return Err(format!("sha256 {s:?} is not 64 hex digits")),
        Some(other) => return Err(format!("sha256 must be a string, found {}", type_name(other))),
    };
    let expected_size = match map.get("size") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(size(n)?),
        Some(other) => return Err(format!("size must be a number, found {}", type_name(other))),
    };
    let expected_content_type = match map.get("content_type") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(crate::content::parse_expected(s)?),
        Some(other) => return Err(format!("content_type must be a string, found {}", type_name(other))),
    };
    Ok(NewJob {
        job_key: job_key(&work_id, &artifact_id, &canonical_url),
        work_id,
        artifact_id,
        url,
        canonical_url,
        expected_sha256,
        expected_size,
        expected_content_type,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str, format: Format) -> Vec<Result<NewJob, LineError>> {
        ManifestReader::new(text.as_bytes(), format)
            .map(|r| r.unwrap())
            .collect()
    }

    #[test]
    fn content_type_values() {
        let typed = |field: &str| {
            let line = format!(r#"{{"work_id":"w","artifact_id":"a","url":"https://h/x"{field}}}"#);
            read(&line, Format::JsonLines)
                .remove(0)
                .map(|job| job.expected_content_type)
                .map_err(|e| e.to_string())
        };
        assert_eq!(typed(""), Ok(None));
        assert_eq!(typed(r#","content_type":null"#), Ok(None));
        assert_eq!(
            typed(r#","content_type":"Application/PDF""#),
            Ok(Some("application/pdf".into()))
        );
        assert_eq!(
            typed(r#","content_type":"text/html; charset=utf-8""#),
            Ok(Some("text/html".into())),
            "parameters are dropped"
        );
        assert_eq!(typed(r#","content_type":"image/*""#), Ok(Some("image/*".into())));
        assert_eq!(
            typed(r#","content_type":"pdf""#),
            Err(r#"line 1: content_type "pdf" is not a media type (type/subtype or type/*)"#.into())
        );
        assert_eq!(
            typed(r#","content_type":7"#),
            Err("line 1: content_type must be a string, found a number".into())
        );
        let csv = "work_id,artifact_id,url,content_type\nw,a,https://h/x,application/pdf\nw,b,https://h/y,\n";
        let types: Vec<_> = read(csv, Format::Csv)
            .into_iter()
            .map(|job| job.expect("good line").expected_content_type)
            .collect();
        assert_eq!(
            types,
            vec![Some("application/pdf".to_owned()), None],
            "an empty CSV cell is absent"
        );
    }

    #[test]
    fn size_values() {
        let sized = |size: &str| {
            let line = format!(r#"{{"work_id":"w","artifact_id":"a","url":"https://h/x","size":{size}}}"#);
            read(&line, Format::JsonLines)
                .remove(0)
                .map(|job| job.expected_size)
                .map_err(|e| e.to_string())
        };
        assert_eq!(sized("1000"), Ok(Some(1000)));
        assert_eq!(sized("-0"), Ok(Some(0)), "negative zero is zero");
        assert_eq!(sized("-0.0"), Ok(Some(0)));
        assert_eq!(sized("18446744073709551615"), Ok(Some(u64::MAX)));
        let refused = "line 1: size must be a non-negative integer, got";
        assert_eq!(sized("1000.0"), Err(format!("{refused} 1000.0")));
        assert_eq!(sized("1e3"), Err(format!("{refused} 1000.0")));
        assert_eq!(sized("0.5"), Err(format!("{refused} 0.5")));
        assert_eq!(sized("-1"), Err(format!("{refused} -1")));
        assert_eq!(sized("-1.5"), Err(format!("{refused} -1.5")));
        assert_eq!(
            sized("18446744073709551616"),
            Err("line 1: size must be at most 18446744073709551615 bytes, got 1.8446744073709552e+19".to_owned())
        );
        let csv = |size: &str| {
            let text = format!("work_id,artifact_id,url,size\nw,a,https://h/x,{size}\n");
            read(&text, Format::Csv).remove(0).map_err(|e| e.to_string())
        };
        assert_eq!(csv("-0").unwrap().expected_size, Some(0));
        assert_eq!(csv("12").unwrap().expected_size, Some(12));
        assert_eq!(
            csv("7.5").unwrap_err(),
            "line 2: size must be a non-negative integer, got 7.5"
        );
        assert_eq!(
            csv("ten").unwrap_err(),
            "line 2: size must be a non-negative integer, got \"ten\""
        );
    }

    #[test]
    fn good_and_bad_lines() {
        let text = "\u{feff}{\"work_id\":\"w\",\"artifact_id\":\"a\",\"url\":\"https://h/x\"}\r\n\
                    \n   \n\
                    not json\n\
                    {\"work_id\":\"w\",\"url\":\"https://h/x\"}\n\
                    {\"work_id\":1,\"artifact_id\":\"a\",\"url\":\"https://h/x\"}\n\
                    {\"work_id\":\"w\",\"artifact_id\":\"a\",\"url\":\"ftp://h/x\"}\n\
                    {\"work_id\":\"w\",\"artifact_id\":\"a\",\"url\":\"https://h/x\",\"sha256\":\"xyz\"}\n\
                    {\"work_id\":\"w\",\"artifact_id\":\"a\",\"url\":\"https://h/x\",\"size\":-1}\n\
                    {\"work_id\":\"\",\"artifact_id\":\"a\",\"url\":\"https://h/x\"}\n\
                    {\"work_id\":\"w\\u0000\",\"artifact_id\":\"a\",\"url\":\"https://h/y\",\"size\":5}\n";
        let out = read(text, Format::JsonLines);
        assert_eq!(out.len(), 9);
        assert!(out[0].is_ok());
        let errors: Vec<_> = out
            .iter()
            .filter_map(|r| r.as_ref().err())
            .map(|e| e.to_string())
            .collect();
        assert_eq!(errors.len(), 7, "{errors:?}");
        assert!(errors[0].starts_with("line 4: not valid JSON"), "{errors:?}");
        assert_eq!(errors[1], "line 5: missing artifact_id");
        assert_eq!(errors[2], "line 6: work_id must be a JSON string, found a number");
        assert!(errors[3].starts_with("line 7: url: scheme \"ftp\""), "{}", errors[3]);
        assert!(errors[4].starts_with("line 8: sha256"));
        assert_eq!(errors[5], "line 9: size must be a non-negative integer, got -1");
        assert_eq!(errors[6], "line 10: empty work_id");
        let last = out[8].as_ref().unwrap();
        assert_eq!(last.work_id, "w\0");
        assert_eq!(last.expected_size, Some(5));
    }

    #[test]
    fn fast_path_agrees_with_the_general_one() {
        let lines = [
            r#"{"work_id":"w","artifact_id":"a","url":"https://h/x"}"#,
            r#"  {"url":"HTTPS://H:443/a/../b?q=%7e#f","artifact_id":"a\u00e9\"","work_id":"w\n","extra":[1,{"x":null}]}  "#,
            r#"{"work_id":"w","artifact_id":"a","url":"https://h/x","sha256":"ABCDEF0123456789abcdef0123456789ABCDEF0123456789abcdef0123456789","size":0}"#,
            r#"{"work_id":"w","artifact_id":"a","url":"https://h/x","sha256":null,"size":null}"#,
            r#"{"work_id":"w","artifact_id":"a","url":"https://h/x","size":-0}"#,
            r#"{"work_id":"w","artifact_id":"a","url":"https://h/x","size":18446744073709551615}"#,
            r#"{"work_id":"w","artifact_id":"a","url":"https://h/x","size":18446744073709551616}"#,
            r#"{"work_id":"w","artifact_id":"a","url":"https://h/x","size":5.0}"#,
            r#"{"work_id":"w","artifact_id":"a","url":"https://h/x","size":1e3}"#,
            r#"{"work_id":"w","artifact_id":"a","url":"https://h/x","size":-1}"#,
            r#"{"work_id":"w","artifact_id":"a","url":"https://h/x","size":"1"}"#,
            r#"{"work_id":"w","artifact_id":"a","url":"https://h/x","sha256":"abc"}"#,
            r#"{"work_id":"w","artifact_id":"a","url":"https://h/x","sha256":7}"#,
            r#"{"work_id":"w","artifact_id":"a","url":"https://h/x","work_id":"z"}"#,
            r#"{"work_id":"w","artifact_id":"a","url":"ftp://h/x","sha256":"abc"}"#,
            r#"{"work_id":"w","artifact_id":"a","url":"ftp://h/x"}"#,
            r#"{"work_id":"w","artifact_id":"a","url":"not a url"}"#,
            r#"{"work_id":"","artifact_id":"a","url":"https://h/x"}"#,
            r#"{"work_id":null,"artifact_id":"a","url":"https://h/x"}"#,
            r#"{"work_id":1,"artifact_id":"a","url":"https://h/x"}"#,
            r#"{"artifact_id":"a","url":"https://h/x"}"#,
            r#"{"work_id":"w","artifact_id":"a","url":"https://h/x"} x"#,
            r#"["w","a","https://h/x"]"#,
            r#"{"work_id":"\ud800","artifact_id":"a","url":"https://h/x"}"#,
        ];
        let mut fast = 0;
        for line in lines {
            let general = parse_json_line(line).and_then(to_job);
            if let Some(quick) = fast_json_job(line) {
                fast += 1;
                assert_eq!(quick, general, "{line}");
            }
        }
        assert!(fast >= 7, "the fast path took {fast} lines");
    }

    #[test]
    fn csv_with_quotes() {
        let text = "work_id,artifact_id,url,sha256,size\n\"w,1\",a,https://h/x,,\nw2,a,https://h/y,,12\n";
        let out = read(text, Format::Csv);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].as_ref().unwrap().work_id, "w,1");
        assert_eq!(out[1].as_ref().unwrap().expected_size, Some(12));
    }
}
