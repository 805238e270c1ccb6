//! Medians, ratios against the peers, the targets from the issue, and their table and JSON.

use std::fmt::Write as _;

use serde_json::{json, Value};

use super::peers::{Client, Sample};
use super::split_crash::CrashResume;

/// What a series of runs did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Workload {
    /// Download the small files.
    Small,
    /// Download the large file.
    Large,
    /// Download one file from a server that limits each connection's rate: what splitting it into
    /// ranged connections gains.
    Split,
    /// `oncefetch plan` of a large manifest (nothing downloaded).
    Plan,
}

impl Workload {
    /// `small`, `large`, `split` or `plan`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Workload::Small => "small",
            Workload::Large => "large",
            Workload::Split => "split",
            Workload::Plan => "plan",
        }
    }
}

/// The timed runs of one client on one workload.
#[derive(Debug, Clone)]
pub(crate) struct Series {
    /// The workload.
    pub(crate) workload: Workload,
    /// The client (for planning, always oncefetch).
    pub(crate) client: Client,
    /// One command line as run (the output folder differs per run).
    pub(crate) command: String,
    /// Files (small), bytes (large, split) or manifest lines (plan) per run.
    pub(crate) units: u64,
    /// The timed runs, in order.
    pub(crate) samples: Vec<Sample>,
}

impl Series {
    /// Median wall-clock seconds.
    pub(crate) fn median_wall(&self) -> f64 {
        median(self.samples.iter().map(|s| s.wall_s))
    }

    /// The largest peak RSS of any run, in MiB.
    fn max_rss_mib(&self) -> f64 {
        self.samples.iter().map(|s| s.peak_rss_kib).max().unwrap_or(0) as f64 / 1024.0
    }

    fn median_rss_mib(&self) -> f64 {
        median(self.samples.iter().map(|s| s.peak_rss_kib as f64 / 1024.0))
    }

    fn median_cpu(&self) -> f64 {
        median(self.samples.iter().map(|s| s.user_s + s.sys_s))
    }

    fn median_server_cpu(&self) -> Option<f64> {
        let cpu: Vec<f64> = self.samples.iter().filter_map(|s| s.server_cpu_s).collect();
        (!cpu.is_empty()).then(|| median(cpu.into_iter()))
    }

    fn median_load(&self) -> Option<f64> {
        let load: Vec<f64> = self.samples.iter().filter_map(|s| s.load_before).collect();
        (!load.is_empty()).then(|| median(load.into_iter()))
    }

    /// Units per second at the median wall time, and their unit.
    fn rate(&self) -> (f64, &'static str) {
        let per_s = self.units as f64 / self.median_wall();
        match self.workload {
            Workload::Small => (per_s, "files/s"),
            Workload::Large | Workload::Split => (per_s / f64::from(1 << 20), "MiB/s"),
            Workload::Plan => (per_s, "lines/s"),
        }
    }
}

/// Issue 18: a SIGKILL mid-split, then the same command, costs nginx less than this many times the
/// file.
const SPLIT_CRASH_SERVED: f64 = 1.1;

/// One target from the issue, judged.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    name: String,
    value: f64,
    limit: f64,
    /// `true`: the value must be at most the limit; `false`: at least.
    at_most: bool,
}

impl Target {
    fn pass(&self) -> bool {
        if self.at_most {
            self.value <= self.limit
        } else {
            self.value >= self.limit
        }
    }
}

/// Everything measured, ready to print and to write.
#[derive(Debug)]
pub(crate) struct Report {
    /// The series, in the order they are printed.
    pub(crate) series: Vec<Series>,
    /// Facts about the run (sizes, rounds, versions) copied into the JSON as they are.
    pub(crate) setup: Value,
    /// The split workload's crash-resume measurement, when it ran.
    pub(crate) split_crash: Option<CrashResume>,
    /// Clients that were not run, and why (e.g. `split: oncefetch --split 16 — …`), printed under
    /// the targets so that a missing target line is explained.
    pub(crate) skipped: Vec<String>,
}

impl Report {
    fn find(&self, workload: Workload, client: Client) -> Option<&Series> {
        self.series
            .iter()
            .find(|s| s.workload == workload && s.client == client)
    }

    /// Median-wall ratio of `a` over `b` on `workload`, when both ran.
    fn ratio(&self, workload: Workload, a: Client, b: Client) -> Option<f64> {
        Some(self.find(workload, a)?.median_wall() / self.find(workload, b)?.median_wall())
    }

    /// The split workload's oncefetch and aria2c clients (with the connection count it ran with),
    /// when it ran.
    fn split_clients(&self) -> Option<(Client, Client)> {
        self.series.iter().find_map(|s| match s.client {
            Client::OncefetchSplit { connections } | Client::Aria2cSplit { connections }
                if s.workload == Workload::Split =>
            {
                Some((
                    Client::OncefetchSplit { connections },
                    Client::Aria2cSplit { connections },
                ))
            }
            _ => None,
        })
    }

    /// The targets from the issue, for the workloads that ran.
    pub(crate) fn targets(&self) -> Vec<Target> {
        let once = Client::Oncefetch { fsync: true };
        let mut targets = Vec::new();
        let mut push = |name: &str, value: Option<f64>, limit: f64, at_most: bool| {
            if let Some(value) = value {
                targets.push(Target {
                    name: name.to_owned(),
                    value,
                    limit,
                    at_most,
                });
            }
        };
        push(
            "small files, fsync on: oncefetch / aria2c time",
            self.ratio(Workload::Small, once, Client::Aria2c),
            0.3,
            true,
        );
        push(
            "small files, fsync on: oncefetch / curl -Z time",
            self.ratio(Workload::Small, once, Client::CurlParallel),
            1.5,
            true,
        );
        push(
            "large file: oncefetch / curl time",
            self.ratio(Workload::Large, once, Client::Curl),
            1.0,
            true,
        );
        push(
            "large file: oncefetch peak RSS (MiB, worst run)",
            self.find(Workload::Large, once).map(Series::max_rss_mib),
            64.0,
            true,
        );
        if let Some((split, aria2c)) = self.split_clients() {
            push(
                &format!("split: {} / {}", split.label(), aria2c.label()),
                self.ratio(Workload::Split, split, aria2c),
                1.0,
                true,
            );
        }
        push(
            "split crash: bytes served / file",
            self.split_crash.as_ref().map(CrashResume::served_ratio),
            SPLIT_CRASH_SERVED,
            true,
        );
        let plan = self.find(Workload::Plan, once);
        push("planning: lines/s", plan.map(|s| s.rate().0), 200_000.0, false);
        push(
            "planning: peak RSS (MiB, worst run)",
            plan.map(Series::max_rss_mib),
            100.0,
            true,
        );
        targets
    }

    /// Informational ratios (no target): the `--no-fsync` runs against the same peers, and the split
    /// workload's clients against one connection.
    fn other_ratios(&self) -> Vec<(String, f64)> {
        let loose = Client::Oncefetch { fsync: false };
        let once = Client::Oncefetch { fsync: true };
        [
            (
                "small files: oncefetch --no-fsync / aria2c time",
                Workload::Small,
                Client::Aria2c,
            ),
            (
                "small files: oncefetch --no-fsync / curl -Z time",
                Workload::Small,
                Client::CurlParallel,
            ),
            (
                "small files: oncefetch --no-fsync / oncefetch time",
                Workload::Small,
                once,
            ),
            (
                "large file: oncefetch --no-fsync / curl time",
                Workload::Large,
                Client::Curl,
            ),
            (
                "large file: oncefetch --no-fsync / oncefetch time",
                Workload::Large,
                once,
            ),
        ]
        .into_iter()
        .filter_map(|(name, workload, peer)| Some((name.to_owned(), self.ratio(workload, loose, peer)?)))
        .chain(self.split_clients().into_iter().flat_map(|(split, aria2c)| {
            [split, aria2c].into_iter().filter_map(move |client| {
                let name = format!("split: {} / curl time", client.label());
                Some((name, self.ratio(Workload::Split, client, Client::Curl)?))
            })
        }))
        .collect()
    }

    /// The table of medians, then ratios and targets with PASS/MISS.
    pub(crate) fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<8} {:<22} {:>4} {:>9} {:>18} {:>13} {:>12} {:>11} {:>5}",
            "workload", "client", "runs", "median s", "rate", "peak RSS MiB", "client CPU s", "nginx CPU s", "load"
        );
        for series in &self.series {
            let (rate, unit) = series.rate();
            let server = series
                .median_server_cpu()
                .map_or_else(|| "-".to_owned(), |s| format!("{s:.2}"));
            let load = series
                .median_load()
                .map_or_else(|| "-".to_owned(), |l| format!("{l:.1}"));
            let _ = writeln!(
                out,
                "{:<8} {:<22} {:>4} {:>9.3} {:>10.0} {:<7} {:>5.1} ({:>5.1}) {:>12.2} {:>11} {:>5}",
                series.workload.name(),
                series.client.label(),
                series.samples.len(),
                series.median_wall(),
                rate,
                unit,
                series.median_rss_mib(),
                series.max_rss_mib(),
                series.median_cpu(),
                server,
                load
            );
        }
        let _ = writeln!(
            out,
            "(medians; peak RSS as median (worst); CPU = user + system; load = 1-min load average before each run)"
        );
        for line in self.split_crash.iter().flat_map(CrashResume::lines) {
            let _ = writeln!(out, "{line}");
        }
        let _ = writeln!(out);
        for target in self.targets() {
            let _ = writeln!(
                out,
                "{:<4} {:<50} {:>12} {} {}",
                if target.pass() { "PASS" } else { "MISS" },
                target.name,
                number(target.value),
                if target.at_most { "<=" } else { ">=" },
                number(target.limit)
            );
        }
        for (name, value) in self.other_ratios() {
            let _ = writeln!(out, "{:<4} {:<50} {:>12}", "info", name, number(value));
        }
        for note in &self.skipped {
            let _ = writeln!(out, "skip {note}");
        }
        out
    }

    /// The same as [`Report::table`], as JSON, with every run.
    pub(crate) fn json(&self) -> Value {
        let series: Vec<Value> = self
            .series
            .iter()
            .map(|s| {
                let (rate, unit) = s.rate();
                json!({
                    "workload": s.workload.name(),
                    "client": s.client.label(),
                    "command": s.command,
                    "units_per_run": s.units,
                    "median_wall_s": s.median_wall(),
                    "rate": rate,
                    "rate_unit": unit,
                    "median_peak_rss_mib": s.median_rss_mib(),
                    "max_peak_rss_mib": s.max_rss_mib(),
                    "median_client_cpu_s": s.median_cpu(),
                    "median_server_cpu_s": s.median_server_cpu(),
                    "median_load_before": s.median_load(),
                    "runs": s.samples.iter().map(|r| json!({
                        "wall_s": r.wall_s,
                        "peak_rss_kib": r.peak_rss_kib,
                        "user_s": r.user_s,
                        "sys_s": r.sys_s,
                        "server_cpu_s": r.server_cpu_s,
                        "load_before": r.load_before,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let targets: Vec<Value> = self
            .targets()
            .iter()
            .map(|t| {
                json!({
                    "name": t.name,
                    "value": t.value,
                    "limit": t.limit,
                    "comparison": if t.at_most { "<=" } else { ">=" },
                    "pass": t.pass(),
                })
            })
            .collect();
        let other: serde_json::Map<String, Value> = self
            .other_ratios()
            .into_iter()
            .map(|(name, value)| (name, json!(value)))
            .collect();
        json!({
            "setup": self.setup,
            "series": series,
            "targets": targets,
            "other_ratios": other,
            "split_crash": self.split_crash.as_ref().map(CrashResume::json),
            "skipped": self.skipped,
        })
    }
}

/// A value printed with as many decimals as its size needs.
fn number(value: f64) -> String {
    if value >= 1000.0 {
        format!("{value:.0}")
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.3}")
    }
}

/// The median (the mean of the middle two for an even count); 0 for none.
fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.collect();
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(wall_s: f64, peak_rss_kib: u64) -> Sample {
        Sample {
            wall_s,
            peak_rss_kib,
            user_s: 0.5,
            sys_s: 0.25,
            server_cpu_s: Some(0.1),
            load_before: None,
        }
    }

    fn series(workload: Workload, client: Client, walls: &[f64]) -> Series {
        Series {
            workload,
            client,
            command: "x".to_owned(),
            units: 1000,
            samples: walls.iter().map(|&w| sample(w, 20 * 1024)).collect(),
        }
    }

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median([3.0, 1.0, 2.0].into_iter()), 2.0);
        assert_eq!(median([4.0, 1.0, 2.0, 3.0].into_iter()), 2.5);
        assert_eq!(median(std::iter::empty()), 0.0);
    }

    #[test]
    fn targets_compare_medians_and_say_pass_or_miss() {
        let once = Client::Oncefetch { fsync: true };
        let report = Report {
            series: vec![
                series(Workload::Small, once, &[1.0, 9.0, 2.0]),
                series(Workload::Small, Client::Aria2c, &[7.0, 8.0, 6.0]),
                series(Workload::Small, Client::CurlParallel, &[1.0, 1.0, 1.0]),
                series(Workload::Plan, once, &[0.001]),
            ],
            setup: json!({}),
            split_crash: None,
            skipped: Vec::new(),
        };
        let targets = report.targets();
        assert_eq!(targets.len(), 4, "no large-file targets without large-file runs");
        assert!((targets[0].value - 2.0 / 7.0).abs() < 1e-9 && targets[0].pass());
        assert!((targets[1].value - 2.0).abs() < 1e-9 && !targets[1].pass());
        assert!(targets[2].pass(), "1e6 lines/s");
        let table = report.table();
        assert!(table.contains("PASS small files, fsync on: oncefetch / aria2c time"));
        assert!(table.contains("MISS small files, fsync on: oncefetch / curl -Z time"));
        let json = report.json();
        assert_eq!(json["series"][0]["runs"].as_array().unwrap().len(), 3);
        assert_eq!(json["targets"][1]["pass"], json!(false));
    }

    #[test]
    fn the_split_crash_is_judged_on_the_bytes_served() {
        let request = |status, range: Option<&str>, body_bytes| super::super::access_log::Request {
            start_ms: 0,
            status,
            body_bytes,
            bytes: body_bytes,
            range: range.map(str::to_owned),
            request: "GET /limited/f HTTP/1.1".to_owned(),
        };
        let crash = CrashResume {
            client: Client::OncefetchSplit { connections: 16 },
            command: "x".to_owned(),
            file_bytes: 100,
            written_at_kill: 40,
            killed_after_s: 1.0,
            // Restarted from byte 0: 1.6 × the file.
            killed: vec![request(200, None, 60)],
            resumed: vec![request(200, None, 100)],
            resumed_run: sample(2.0, 1024),
            resumed_idle_s: None,
        };
        let mut report = Report {
            series: Vec::new(),
            setup: json!({}),
            split_crash: Some(crash),
            skipped: Vec::new(),
        };
        let targets = report.targets();
        assert_eq!(targets.len(), 1);
        assert_eq!(targets[0].name, "split crash: bytes served / file");
        assert!(!targets[0].pass());
        let table = report.table();
        assert!(
            table.contains("\ncrash    oncefetch --split 16: SIGKILL after 1.00 s"),
            "{table}"
        );
        assert!(table.contains("MISS split crash: bytes served / file"), "{table}");
        assert_eq!(report.json()["split_crash"]["served_ratio"], json!(1.6));
        report.split_crash = None;
        assert!(report.targets().is_empty());
        assert_eq!(report.json()["split_crash"], Value::Null);
    }

    #[test]
    fn the_split_workload_is_judged_against_aria2c_and_compared_with_curl() {
        let split = Client::OncefetchSplit { connections: 16 };
        let aria2c = Client::Aria2cSplit { connections: 16 };
        let mut report = Report {
            series: vec![
                series(Workload::Split, split, &[4.0, 5.0]),
                series(Workload::Split, aria2c, &[4.0, 4.0]),
                series(Workload::Split, Client::Curl, &[50.0]),
            ],
            setup: json!({}),
            split_crash: None,
            skipped: Vec::new(),
        };
        let targets = report.targets();
        assert_eq!(targets.len(), 1);
        assert_eq!(targets[0].name, "split: oncefetch --split 16 / aria2c -x16 -s16");
        assert!((targets[0].value - 1.125).abs() < 1e-9 && !targets[0].pass());
        let table = report.table();
        assert!(table.contains("\nsplit    oncefetch --split 16"), "{table}");
        assert!(table.contains("MiB/s"));
        assert!(table.contains("MISS split: oncefetch --split 16 / aria2c -x16 -s16"));
        assert!(table.contains("info split: oncefetch --split 16 / curl time"));
        assert!(table.contains("info split: aria2c -x16 -s16 / curl time"));
        assert_eq!(
            report.json()["other_ratios"]["split: aria2c -x16 -s16 / curl time"],
            json!(0.08)
        );

        // Without oncefetch's runs: no target, the peers' ratio, and the reason printed.
        report.series.remove(0);
        report
            .skipped
            .push("split: oncefetch --split 16 (not in this build)".to_owned());
        assert!(report.targets().is_empty());
        let table = report.table();
        assert!(table.contains("info split: aria2c -x16 -s16 / curl time"));
        assert!(table.contains("skip split: oncefetch --split 16 (not in this build)"));
        assert_eq!(
            report.json()["skipped"][0],
            json!("split: oncefetch --split 16 (not in this build)")
        );
    }
}
