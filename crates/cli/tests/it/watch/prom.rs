//! A strict parser of the Prometheus text format (0.0.4), with the checks
//! of SPEC §11: every sample under a `# TYPE` of its family given before it,
//! a family's samples together, names prefixed `oncefetch_`, counters ending
//! `_total`, histogram buckets cumulative with `+Inf` equal to `_count`.

use std::collections::{BTreeMap, HashMap};

/// One sample.
#[derive(Debug, Clone)]
pub(crate) struct Sample {
    pub(crate) name: String,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) value: f64,
}

/// A parsed scrape.
#[derive(Debug)]
pub(crate) struct Scrape {
    pub(crate) samples: Vec<Sample>,
    pub(crate) types: HashMap<String, String>,
}

impl Scrape {
    /// The sum of the samples named `name` whose labels include `labels`
    /// (0 when none: a counter not yet incremented is absent).
    pub(crate) fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
            .sum()
    }

    /// Whether any sample is named `name`.
    pub(crate) fn has(&self, name: &str) -> bool {
        self.samples.iter().any(|s| s.name == name)
    }
}

fn is_name(s: &str, colon: bool) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || (colon && c == ':'))
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (colon && c == ':'))
}

fn value(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => s.parse().map_err(|_| format!("bad value {s:?}")),
    }
}

/// The family a sample name belongs to, given the declared types.
fn family<'a>(name: &'a str, types: &HashMap<String, String>) -> &'a str {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if types.get(base).is_some_and(|t| t == "histogram" || t == "summary") {
                return base;
            }
        }
    }
    name
}

/// Labels `{a="x",b="y"}` (the braces removed), escapes `\\ \" \n` decoded.
fn labels(mut s: &str, line: usize) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    while !s.is_empty() {
        let (name, rest) = s.split_once("=\"").ok_or(format!("line {line}: label without =\""))?;
        if !is_name(name, false) {
            return Err(format!("line {line}: bad label name {name:?}"));
        }
        let mut val = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err(format!("line {line}: unterminated label value")),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => val.push('\\'),
                    Some((_, '"')) => val.push('"'),
                    Some((_, 'n')) => val.push('\n'),
                    _ => return Err(format!("line {line}: bad escape")),
                },
                Some((_, c)) => val.push(c),
            }
        };
        if out.insert(name.to_owned(), val).is_some() {
            return Err(format!("line {line}: label {name} twice"));
        }
        s = &rest[end + 1..];
        s = s.strip_prefix(',').unwrap_or(s);
    }
    Ok(out)
}

/// Parses `text` strictly; an error names the line.
pub(crate) fn parse(text: &str) -> Result<Scrape, String> {
    let mut types = HashMap::new();
    let mut samples = Vec::new();
    let mut seen_families: Vec<String> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix("# ") {
            let mut parts = comment.splitn(3, ' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("TYPE"), Some(name), Some(kind)) => {
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                        return Err(format!("line {n}: bad type {kind}"));
                    }
                    if types.insert(name.to_owned(), kind.to_owned()).is_some() {
                        return Err(format!("line {n}: second TYPE for {name}"));
                    }
                }
                (Some("HELP"), Some(name), _) if is_name(name, true) => {}
                (Some("HELP" | "TYPE"), _, _) => return Err(format!("line {n}: malformed {line:?}")),
                _ => {}
            }
            continue;
        }
        let (series, rest) = match line.find('{') {
            Some(_) => {
                let close = line.rfind('}').ok_or(format!("line {n}: no closing brace"))?;
                (&line[..close + 1], line[close + 1..].trim_start())
            }
            None => line.split_once(' ').ok_or(format!("line {n}: no value"))?,
        };
        let (name, label_map) = match series.split_once('{') {
            Some((name, l)) => (name, labels(l.strip_suffix('}').unwrap_or(l), n)?),
            None => (series, BTreeMap::new()),
        };
        if !is_name(name, true) {
            return Err(format!("line {n}: bad metric name {name:?}"));
        }
        let mut fields = rest.split(' ');
        let v = value(fields.next().ok_or(format!("line {n}: no value"))?).map_err(|e| format!("line {n}: {e}"))?;
        if let Some(ts) = fields.next() {
            ts.parse::<i64>()
                .map_err(|_| format!("line {n}: bad timestamp {ts:?}"))?;
        }
        if fields.next().is_some() {
            return Err(format!("line {n}: trailing fields"));
        }
        let fam = family(name, &types).to_owned();
        let kind = types
            .get(&fam)
            .ok_or(format!("line {n}: {name} has no TYPE before it"))?;
        if seen_families.last() != Some(&fam) {
            if seen_families.contains(&fam) {
                return Err(format!("line {n}: samples of {fam} are not together"));
            }
            seen_families.push(fam.clone());
        }
        if !fam.starts_with("oncefetch_") {
            return Err(format!("line {n}: {fam} lacks the oncefetch_ prefix"));
        }
        if kind == "counter" && !fam.ends_with("_total") {
            return Err(format!("line {n}: counter {fam} does not end in _total"));
        }
        if name.ends_with("_bucket") && !label_map.contains_key("le") {
            return Err(format!("line {n}: bucket without le"));
        }
        samples.push(Sample {
            name: name.to_owned(),
            labels: label_map,
            value: v,
        });
    }
    check_histograms(&samples, &types)?;
    Ok(Scrape { samples, types })
}

fn check_histograms(samples: &[Sample], types: &HashMap<String, String>) -> Result<(), String> {
    for (fam, _) in types.iter().filter(|(_, t)| *t == "histogram") {
        let buckets: Vec<&Sample> = samples.iter().filter(|s| s.name == format!("{fam}_bucket")).collect();
        let mut last = 0.0;
        let mut last_le = f64::NEG_INFINITY;
        for b in &buckets {
            let le = value(&b.labels["le"])?;
            if le <= last_le || b.value < last {
                return Err(format!("{fam}: buckets not cumulative at le={le}"));
            }
            (last, last_le) = (b.value, le);
        }
        let count: f64 = samples
            .iter()
            .filter(|s| s.name == format!("{fam}_count"))
            .map(|s| s.value)
            .sum();
        if !buckets.is_empty() && (last_le != f64::INFINITY || last != count) {
            return Err(format!("{fam}: +Inf bucket {last} is not _count {count}"));
        }
    }
    Ok(())
}

#[test]
fn the_parser_is_strict() {
    let good = "# HELP oncefetch_x_total X.\n# TYPE oncefetch_x_total counter\noncefetch_x_total{a=\"q\\\"\"} 3\n";
    assert_eq!(parse(good).unwrap().sum("oncefetch_x_total", &[("a", "q\"")]), 3.0);
    for bad in [
        "oncefetch_x_total 3\n",
        "# TYPE oncefetch_x counter\noncefetch_x 3\n",
        "# TYPE oncefetch_x_total counter\noncefetch_x_total{a=\"q} 3\n",
        "# TYPE oncefetch_x_total counter\noncefetch_x_total three\n",
        "# TYPE x_total counter\nx_total 1\n",
        "# TYPE oncefetch_h histogram\noncefetch_h_bucket{le=\"1\"} 2\noncefetch_h_bucket{le=\"+Inf\"} 1\noncefetch_h_count 1\n",
    ] {
        assert!(parse(bad).is_err(), "{bad}");
    }
}
