//! Aligned tables for a person at a terminal (`jobs`, `ledger`, `status`).
//!
//! A listing may hold millions of rows, so a table streams: the first page of
//! rows sets each column's width (at least its title's, at most the column's
//! cap), every later row is cut to those widths. Cells show control
//! characters escaped (`\n`, `\u{1b}`), so an id or an error cannot move the
//! cursor, and a cut cell ends in `…`.

use std::io::{self, Write};

use oncefetch_core::url::redact;
use oncefetch_core::{Job, Millis, OpRecord};
use unicode_width::UnicodeWidthChar;

use crate::output::{redacted, timestamp};

/// One column: its title, its widest cells, and whether numbers align right.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Column {
    /// Header.
    title: &'static str,
    /// Widest cell shown (terminal cells); wider ones are cut.
    cap: usize,
    /// Right-aligned (numbers).
    right: bool,
}

const fn left(title: &'static str, cap: usize) -> Column {
    Column {
        title,
        cap,
        right: false,
    }
}

const fn right(title: &'static str, cap: usize) -> Column {
    Column {
        title,
        cap,
        right: true,
    }
}

/// Characters of a job key shown: enough for `ledger --job PREFIX`.
const KEY: usize = 12;

/// The `jobs` table.
pub(crate) const JOBS: &[Column] = &[
    left("KEY", KEY),
    left("STATE", 17),
    left("WORK/ARTIFACT", 48),
    right("SIZE", 10),
    right("ATTEMPTS", 8),
    left("LAST ERROR", 72),
];

/// The `ledger` table.
pub(crate) const LEDGER: &[Column] = &[
    left("JOB", KEY),
    left("KIND", 8),
    right("EPOCH", 6),
    left("CODE", 9),
    left("STARTED", 20),
    left("FINISHED", 20),
    left("RESULT", 72),
];

/// A table being written.
#[derive(Debug)]
pub(crate) struct Table {
    columns: &'static [Column],
    /// Set by the first page.
    widths: Option<Vec<usize>>,
}

impl Table {
    /// A table of `columns`.
    pub(crate) fn new(columns: &'static [Column]) -> Self {
        Self { columns, widths: None }
    }

    /// Writes a page of rows (one cell per column each) to `out`; the first
    /// page sets the widths and writes the header.
    pub(crate) fn page(&mut self, out: &mut impl Write, rows: &[Vec<String>]) -> io::Result<()> {
        let rows: Vec<Vec<String>> = rows
            .iter()
            .map(|row| row.iter().map(|cell| escaped(cell)).collect())
            .collect();
        if self.widths.is_none() {
            let widths: Vec<usize> = self
                .columns
                .iter()
                .enumerate()
                .map(|(i, column)| {
                    let widest = rows.iter().map(|row| width(&row[i])).max().unwrap_or(0);
                    widest.min(column.cap).max(width(column.title))
                })
                .collect();
            let titles: Vec<String> = self.columns.iter().map(|c| c.title.to_owned()).collect();
            self.widths = Some(widths);
            self.row(out, &titles)?;
        }
        for row in &rows {
            self.row(out, row)?;
        }
        Ok(())
    }

    /// Ends the table: writes the header alone when no page came.
    pub(crate) fn finish(mut self, out: &mut impl Write) -> io::Result<()> {
        if self.widths.is_none() {
            self.page(out, &[])?;
        }
        Ok(())
    }

    fn row(&self, out: &mut impl Write, cells: &[String]) -> io::Result<()> {
        let widths = self.widths.as_deref().unwrap_or_default();
        let mut line = String::new();
        for (i, ((cell, column), &w)) in cells.iter().zip(self.columns).zip(widths).enumerate() {
            let cell = cut(cell, w);
            let pad = " ".repeat(w - width(&cell));
            if i > 0 {
                line.push_str("  ");
            }
            if column.right {
                line.push_str(&pad);
                line.push_str(&cell);
            } else {
                line.push_str(&cell);
                if i + 1 < cells.len() {
                    line.push_str(&pad);
                }
            }
        }
        writeln!(out, "{}", line.trim_end())
    }
}

/// One `jobs` row: key, state, work/artifact, size, attempts, last error
/// (credentials redacted).
pub(crate) fn job_row(job: &Job) -> Vec<String> {
    vec![
        job.job_key.chars().take(KEY).collect(),
        job.state.as_str().to_owned(),
        format!("{}/{}", job.work_id, job.artifact_id),
        job.size.map_or_else(|| "-".to_owned(), bytes),
        job.attempts.to_string(),
        job.last_error.as_deref().map(redact).unwrap_or_default().into_owned(),
    ]
}

/// One `ledger` row: job, kind, epoch, result code, start and end (to the
/// second, UTC), and the result as compact JSON (credentials redacted).
pub(crate) fn op_row(op: &OpRecord) -> Vec<String> {
    let second = |at: Millis| {
        let full = timestamp(at);
        // `2025-01-02T03:04:05.678Z` → `2025-01-02T03:04:05Z`
        match full.split_once('.') {
            Some((seconds, _)) => format!("{seconds}Z"),
            None => full,
        }
    };
    vec![
        op.job_key.chars().take(KEY).collect(),
        op.kind.as_str().to_owned(),
        op.epoch.to_string(),
        op.result_code.map_or("running", |c| c.as_str()).to_owned(),
        second(op.started_at),
        op.finished_at.map_or_else(|| "-".to_owned(), second),
        op.result
            .clone()
            .map(redacted)
            .map(|r| r.to_string())
            .unwrap_or_default(),
    ]
}

/// A size for a person: `512 B`, `1.5 KiB`, `3.2 GiB`.
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    // Display only: the precision lost above 2^53 bytes does not show.
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Terminal cells `s` takes.
fn width(s: &str) -> usize {
    s.chars().map(|c| c.width().unwrap_or(0)).sum()
}

/// `s` with control characters escaped.
fn escaped(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let escape = c.is_control().then(|| c.escape_debug().collect::<String>());
            escape.unwrap_or_else(|| c.to_string()).chars().collect::<Vec<_>>()
        })
        .collect()
}

/// `s` cut to `max` cells, ending in `…` when cut.
fn cut(s: &str, max: usize) -> String {
    if width(s) <= max {
        return s.to_owned();
    }
    let mut kept = String::new();
    let mut used = 0;
    for c in s.chars() {
        let w = c.width().unwrap_or(0);
        if used + w + 1 > max {
            break;
        }
        kept.push(c);
        used += w;
    }
    kept.push('…');
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_a_person_writes_them() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(5 << 30), "5.0 GiB");
    }

    #[test]
    fn cells_are_escaped_cut_and_aligned() {
        assert_eq!(escaped("a\nb\u{1b}[2J"), "a\\nb\\u{1b}[2J");
        assert_eq!(cut("abcdef", 4), "abc…");
        assert_eq!(cut("日本語", 5), "日本…");
        const COLUMNS: &[Column] = &[left("NAME", 6), right("N", 5), left("NOTE", 10)];
        let mut out = Vec::new();
        let mut table = Table::new(COLUMNS);
        let first = [
            vec!["a".into(), "1".into(), "x".into()],
            vec!["bbbbbbbbb".into(), "22".into(), String::new()],
        ];
        table.page(&mut out, &first).unwrap();
        table
            .page(&mut out, &[vec!["c".into(), "333333".into(), "y".into()]])
            .unwrap();
        table.finish(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "NAME     N  NOTE\na        1  x\nbbbbb…  22\nc       3…  y\n"
        );
    }
}
