//! The server-rendered pages: the status page, a job's page with its ledger
//! trail, and a list of jobs. Every value is escaped; credentials in URLs
//! and errors are redacted as everywhere else.

use std::fmt::Write as _;

use oncefetch_core::url::redact;
use oncefetch_core::{Job, JobState, Millis, OpRecord};

use super::report::Report;
use crate::output::timestamp;
use crate::table::{bytes, op_row};

/// `text` safe in HTML text and attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A whole page around `main` (already HTML), refreshed every `refresh`
/// seconds (by script, or by reload without one).
pub(crate) fn page(title: &str, refresh: u64, main: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n<link rel=\"stylesheet\" href=\"/assets/watch.css\">\n\
         <noscript><meta http-equiv=\"refresh\" content=\"{refresh}\"></noscript>\n\
         <script src=\"/assets/watch.js\" defer></script>\n</head>\n\
         <body data-refresh=\"{refresh}\">\n<nav><a href=\"/\">status</a><a href=\"/jobs\">jobs</a>\
         <a href=\"/jobs?state=FAILED\">failed</a><a href=\"/api/status\">/api/status</a></nav>\n\
         <main>\n{main}</main>\n</body>\n</html>\n",
        title = escape(title)
    )
}

fn duration(seconds: u64) -> String {
    match seconds {
        s if s < 90 => format!("{s} s"),
        s if s < 90 * 60 => format!("{} min", s.div_ceil(60)),
        s if s < 48 * 3600 => format!("{:.1} h", s as f64 / 3600.0),
        s => format!("{:.1} days", s as f64 / 86_400.0),
    }
}

fn job_link(job: &Job) -> String {
    format!(
        "<a class=\"key\" href=\"/job/{key}\">{short}</a>",
        key = escape(&job.job_key),
        short = escape(&job.job_key.chars().take(12).collect::<String>())
    )
}

/// The throughput of the last hour: one bar a minute, finished jobs high,
/// the failed part red.
fn chart(report: &Report) -> String {
    let now_minute = oncefetch_core::watch::MinuteCounts::minute_of(report.watch.now);
    let (width, height, bar) = (600, 80, 10);
    let top = report
        .watch
        .minutes
        .iter()
        .map(|m| m.succeeded + m.skipped + m.failed)
        .max()
        .unwrap_or(0)
        .max(1);
    let mut svg = format!(
        "<svg class=\"chart\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\" \
         aria-label=\"jobs finished per minute over the last hour\">"
    );
    for m in &report.watch.minutes {
        let ago = (now_minute - m.minute) / 60_000;
        if !(0..60).contains(&ago) {
            continue;
        }
        let x = width - (ago + 1) * bar;
        let all = m.succeeded + m.skipped + m.failed;
        let h = |n: u64| (n * (height as u64 - 4) / top) as i64;
        let (h_all, h_failed) = (h(all), h(m.failed));
        let _ = write!(
            svg,
            "<g><title>{} UTC: {} succeeded, {} skipped, {} failed</title>\
             <rect class=\"ok\" x=\"{x}\" y=\"{}\" width=\"{}\" height=\"{}\"/>\
             <rect class=\"failed\" x=\"{x}\" y=\"{}\" width=\"{}\" height=\"{h_failed}\"/></g>",
            escape(&timestamp(m.minute)),
            m.succeeded,
            m.skipped,
            m.failed,
            height - h_all,
            bar - 1,
            h_all - h_failed,
            height - h_failed,
            bar - 1,
        );
    }
    svg.push_str("</svg>");
    svg
}

/// One row of a jobs table.
fn job_row(job: &Job, now: Millis) -> String {
    let lease = match (&job.lease_owner, job.lease_expires_at) {
        (Some(owner), Some(at)) if at > now => {
            format!("{} until {}", escape(owner), escape(&timestamp(at)))
        }
        _ => String::new(),
    };
    format!(
        "<tr class=\"job\" data-job=\"{key}\"><td>{link}</td><td>{state}</td><td>{work}/{artifact}</td>\
         <td class=\"n\">{size}</td><td class=\"n\">{attempts}</td><td>{lease}</td><td class=\"error\">{error}</td></tr>\n",
        key = escape(&job.job_key),
        link = job_link(job),
        state = job.state.as_str(),
        work = escape(&job.work_id),
        artifact = escape(&job.artifact_id),
        size = job.size.map_or_else(|| "-".to_owned(), bytes),
        attempts = job.attempts,
        error = escape(&job.last_error.as_deref().map(redact).unwrap_or_default()),
    )
}

const JOB_HEAD: &str = "<tr><th>job</th><th>state</th><th>work/artifact</th><th class=\"n\">size</th>\
     <th class=\"n\">attempts</th><th>lease</th><th>last error</th></tr>\n";

/// A table of jobs.
pub(crate) fn jobs_table(id: &str, jobs: &[Job], now: Millis) -> String {
    let mut out = format!("<table id=\"{id}\">\n{JOB_HEAD}");
    for job in jobs {
        out.push_str(&job_row(job, now));
    }
    out.push_str("</table>\n");
    out
}

/// The status page's `<main>`.
pub(crate) fn status_main(report: &Report, source: &str) -> String {
    let s = &report.status;
    let now = report.watch.now;
    let mut out = format!(
        "<h1>oncefetch</h1>\n<p class=\"muted\">{} · read {}</p>\n",
        escape(source),
        escape(&timestamp(now))
    );
    let failed = s.failed(report.max_attempts);
    let eta = report.eta_seconds().map_or_else(|| "—".to_owned(), duration);
    let _ = write!(
        out,
        "<h2>Totals</h2>\n<table class=\"totals\" id=\"totals\">\n\
         <tr><th>total</th><td class=\"n\" id=\"total\">{}</td></tr>\n\
         <tr><th>succeeded</th><td class=\"n\" id=\"succeeded\">{}</td></tr>\n\
         <tr><th>skipped as duplicates</th><td class=\"n\" id=\"skipped\">{}</td></tr>\n\
         <tr><th>in flight</th><td class=\"n\" id=\"in-flight\">{}</td></tr>\n\
         <tr><th>planned</th><td class=\"n\" id=\"planned\">{}</td></tr>\n\
         <tr><th>failed (retryable / final)</th><td class=\"n\" id=\"failed\">{} / {}</td></tr>\n\
         <tr><th>bytes done</th><td class=\"n\" id=\"bytes-done\">{}</td></tr>\n\
         <tr><th>rate</th><td class=\"n\" id=\"rate\">{:.1} jobs/min</td></tr>\n\
         <tr><th>remaining · ETA</th><td class=\"n\" id=\"eta\">{} · {}</td></tr>\n</table>\n",
        s.total(),
        s.get(JobState::Success),
        s.get(JobState::SkippedDuplicate),
        JobState::ALL
            .iter()
            .filter(|st| st.is_in_flight())
            .map(|st| s.get(*st))
            .sum::<u64>(),
        s.get(JobState::Planned),
        failed.retryable,
        failed.final_,
        bytes(s.bytes_done),
        report.rate_per_minute(),
        report.remaining(),
        eta,
    );
    out.push_str("<h2>Throughput, last hour</h2>\n");
    out.push_str(&chart(report));
    out.push_str(
        "\n<h2>Hosts</h2>\n<table id=\"hosts\">\n<tr><th>host</th><th class=\"n\">done</th>\
                  <th class=\"n\">failed</th><th class=\"n\">in flight</th><th class=\"n\">planned</th>\
                  <th class=\"n\">rate /min</th></tr>\n",
    );
    for host in &report.watch.hosts {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{:.1}</td></tr>",
            escape(&host.host),
            host.succeeded + host.skipped,
            host.failed,
            host.in_flight,
            host.planned,
            report.host_rate(host)
        );
    }
    out.push_str("</table>\n<h2>Failures by reason</h2>\n");
    let groups = report.failure_groups();
    if groups.is_empty() {
        out.push_str("<p class=\"muted\" id=\"failures\">no FAILED job</p>\n");
    } else {
        let _ = writeln!(
            out,
            "<p class=\"muted\">of the first {} FAILED jobs</p>\n<table id=\"failures\">\
             <tr><th>reason</th><th class=\"n\">jobs</th><th>examples</th></tr>",
            report.watch.failed.len()
        );
        for group in groups {
            let examples: Vec<String> = group.examples.iter().map(|j| job_link(j)).collect();
            let _ = writeln!(
                out,
                "<tr><td class=\"error\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
                escape(&group.reason),
                group.jobs,
                examples.join(" ")
            );
        }
        out.push_str("</table>\n");
    }
    out.push_str("<h2>Oldest in flight</h2>\n");
    out.push_str(&jobs_table("in-flight-jobs", &report.watch.in_flight, now));
    out.push_str(
        "<h2>Workers seen (last 10 min)</h2>\n<table id=\"workers\">\n<tr><th>lease owner</th>\
                  <th class=\"n\">live leases</th><th>last lease expiry</th></tr>\n",
    );
    for w in &report.watch.workers {
        let _ = writeln!(
            out,
            "<tr><td><code>{}</code></td><td class=\"n\">{}</td><td>{}</td></tr>",
            escape(&w.owner),
            w.live_leases,
            escape(&timestamp(w.last_expiry))
        );
    }
    out.push_str("</table>\n");
    out
}

/// A job's page: its fields and its ledger trail (`ledger --job`).
pub(crate) fn job_main(job: &Job, ops: &[OpRecord], now: Millis) -> String {
    let mut out = format!("<h1>Job <span class=\"key\">{}</span></h1>\n", escape(&job.job_key));
    out.push_str(&jobs_table("job", std::slice::from_ref(job), now));
    let _ = write!(
        out,
        "<table id=\"fields\">\n<tr><th>url</th><td>{}</td></tr>\n<tr><th>path</th><td>{}</td></tr>\n\
         <tr><th>sha256</th><td><code>{}</code></td></tr>\n</table>\n",
        escape(&redact(&job.url)),
        escape(job.path.as_deref().unwrap_or("-")),
        escape(job.sha256.as_deref().unwrap_or("-")),
    );
    out.push_str(
        "<h2>Ledger</h2>\n<table id=\"ledger\">\n<tr><th>kind</th><th class=\"n\">epoch</th><th>code</th>\
                  <th>started</th><th>finished</th><th>result</th></tr>\n",
    );
    for op in ops {
        let cells = op_row(op);
        let _ = writeln!(
            out,
            "<tr class=\"op\"><td>{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
            escape(&cells[1]),
            escape(&cells[2]),
            escape(&cells[3]),
            escape(&cells[4]),
            escape(&cells[5]),
            escape(&cells[6]),
        );
    }
    out.push_str("</table>\n");
    out
}

/// The jobs list's `<main>`, with a link to the next page.
pub(crate) fn jobs_main(state: Option<JobState>, jobs: &[Job], next: Option<&str>, now: Millis) -> String {
    let title = state.map_or("All jobs".to_owned(), |s| format!("{} jobs", s.as_str()));
    let mut out = format!("<h1>{}</h1>\n", escape(&title));
    out.push_str(&jobs_table("jobs", jobs, now));
    if let Some(after) = next {
        let state = state.map_or(String::new(), |s| format!("state={}&", s.as_str()));
        let _ = writeln!(
            out,
            "<p><a href=\"/jobs?{state}after={}\">next page</a></p>",
            escape(after)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn markup_is_escaped() {
        assert_eq!(escape("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
    }
}
