//! The master's Prometheus numbers: adding up the workers' shared-memory slots with what
//! retired workers left behind, and writing it all in the text exposition format 0.0.4.
//!
//! Owns: metric names, help texts, label escaping, number formatting, the totals that must
//! outlive workers (their last counters, restarts by reason, boot times), and reading a
//! worker's memory and CPU from `/proc`. Must not touch: the shared region itself
//! (`sys::metrics`), sockets and HTTP (`arbiter::metrics_server`), and deciding when a
//! worker is retired or why it restarted (the arbiter says so through `Totals`).

use std::fmt::{Display, Write};
use std::time::Duration;

use crate::sys::metrics::{SlotSnapshot, BUCKET_LE, CLASS_LABELS, METHOD_LABELS};

/// Why a worker was replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartReason {
    /// Killed by the master for missing its heartbeat (or boot) deadline.
    Timeout,
    /// Asked to be replaced after `max_requests`.
    MaxRequests,
    /// Exited or died without being asked to.
    Crash,
    /// Replaced by a HUP or a reload.
    Reload,
    /// Replaced for using more than `max_worker_memory`.
    Memory,
}

impl RestartReason {
    pub const ALL: [RestartReason; 5] = [
        RestartReason::Timeout,
        RestartReason::MaxRequests,
        RestartReason::Crash,
        RestartReason::Reload,
        RestartReason::Memory,
    ];

    pub fn label(self) -> &'static str {
        match self {
            RestartReason::Timeout => "timeout",
            RestartReason::MaxRequests => "max_requests",
            RestartReason::Crash => "crash",
            RestartReason::Reload => "reload",
            RestartReason::Memory => "memory",
        }
    }
}

/// Upper bounds of the boot-duration histogram's finite buckets, in milliseconds.
pub const BOOT_BOUNDS_MS: [u64; 9] = [100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000];
const BOOT_LE: [&str; 10] = [
    "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30", "60", "+Inf",
];

/// What the master keeps across workers' lives.
#[derive(Debug, Clone, Default)]
pub struct Totals {
    /// Every reaped worker's last slot, in-flight count left out.
    retired: SlotSnapshot,
    restarts: [u64; 5],
    /// Non-cumulative, `BOOT_LE` order.
    boot_buckets: [u64; 10],
    boot_sum: Duration,
}

impl Totals {
    pub fn new() -> Self {
        Totals::default()
    }

    /// Keep a reaped worker's counters (call before its slot is reset and reused). Its
    /// in-flight count is dropped: a dead worker serves nothing.
    pub fn retire_worker(&mut self, last: &SlotSnapshot) {
        let mut last = *last;
        last.in_flight = 0;
        self.retired.add(&last);
    }

    pub fn count_restart(&mut self, reason: RestartReason) {
        let i = RestartReason::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(0);
        self.restarts[i] += 1;
    }

    /// A worker finished booting `took` after it was forked.
    pub fn observe_boot(&mut self, took: Duration) {
        let i = BOOT_BOUNDS_MS
            .iter()
            .position(|&ms| took <= Duration::from_millis(ms))
            .unwrap_or(BOOT_BOUNDS_MS.len());
        self.boot_buckets[i] += 1;
        self.boot_sum = self.boot_sum.saturating_add(took);
    }
}

/// How many workers are in each phase right now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerStates {
    pub booting: u64,
    pub serving: u64,
    pub stopping: u64,
}

/// One live worker process, as `/proc` shows it (None when it could not be read).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WorkerProc {
    pub pid: i32,
    pub rss_bytes: Option<u64>,
    pub cpu_seconds: Option<f64>,
}

/// What only the master knows at scrape time.
#[derive(Debug, Clone, Copy)]
pub struct MasterFacts<'a> {
    pub workers_by_state: WorkerStates,
    pub target_workers: u64,
    /// Unix time the master started, in seconds.
    pub start_time_unix: f64,
    /// Each listener's URL (as "Listening at" names it) and its accept-queue length.
    pub listeners: &'a [(String, u64)],
    pub workers: &'a [WorkerProc],
    /// StatsD datagrams the master itself dropped (workers publish theirs in their slots).
    pub master_statsd_dropped: u64,
}

/// The whole exposition: every family with `# HELP` and `# TYPE`, ending in a newline.
pub fn render(totals: &Totals, live: &[SlotSnapshot], facts: &MasterFacts) -> String {
    let mut all = totals.retired;
    for s in live {
        all.add(s);
    }
    let mut out = Out(String::with_capacity(8 * 1024));

    out.family(
        "ferrocorn_requests_total",
        "counter",
        "Requests answered, by method and status class.",
    );
    for (m, row) in all.counters.iter().enumerate() {
        for (c, n) in row.iter().enumerate() {
            // GET/2xx always, so the family has a sample before the first request.
            if *n != 0 || (m == 0 && c == 1) {
                let labels = [("method", METHOD_LABELS[m]), ("status", CLASS_LABELS[c])];
                out.sample("ferrocorn_requests_total", &labels, n);
            }
        }
    }

    out.family(
        "ferrocorn_request_duration_seconds",
        "histogram",
        "Time from reading a request to finishing its response.",
    );
    out.histogram(
        "ferrocorn_request_duration_seconds",
        &all.buckets,
        &BUCKET_LE,
        Seconds(all.sum_us as f64 / 1e6),
    );

    out.family(
        "ferrocorn_requests_in_flight",
        "gauge",
        "Requests the workers are serving now.",
    );
    // A slot's count can dip below zero for a moment when a request leaves between reads.
    let in_flight: i64 = live.iter().map(|s| s.in_flight).sum::<i64>().max(0);
    out.sample("ferrocorn_requests_in_flight", &[], in_flight);

    out.family("ferrocorn_workers", "gauge", "Worker processes by state.");
    let states = facts.workers_by_state;
    for (state, n) in [
        ("booting", states.booting),
        ("serving", states.serving),
        ("stopping", states.stopping),
    ] {
        out.sample("ferrocorn_workers", &[("state", state)], n);
    }

    out.family(
        "ferrocorn_workers_target",
        "gauge",
        "Worker processes the master aims to run.",
    );
    out.sample("ferrocorn_workers_target", &[], facts.target_workers);

    out.family(
        "ferrocorn_worker_restarts_total",
        "counter",
        "Workers replaced, by reason.",
    );
    for (reason, n) in RestartReason::ALL.iter().zip(totals.restarts) {
        let labels = [("reason", reason.label())];
        out.sample("ferrocorn_worker_restarts_total", &labels, n);
    }

    out.family(
        "ferrocorn_worker_boot_duration_seconds",
        "histogram",
        "Time from fork to a worker ready to serve.",
    );
    out.histogram(
        "ferrocorn_worker_boot_duration_seconds",
        &totals.boot_buckets,
        &BOOT_LE,
        Seconds(totals.boot_sum.as_secs_f64()),
    );

    out.family(
        "ferrocorn_master_start_time_seconds",
        "gauge",
        "Start time of the master since the Unix epoch, in seconds.",
    );
    out.sample(
        "ferrocorn_master_start_time_seconds",
        &[],
        Seconds(facts.start_time_unix),
    );

    out.family(
        "ferrocorn_listener_backlog",
        "gauge",
        "Connections waiting to be accepted, by listener.",
    );
    for (url, n) in facts.listeners {
        out.sample("ferrocorn_listener_backlog", &[("listener", url)], n);
    }

    out.family(
        "ferrocorn_worker_resident_memory_bytes",
        "gauge",
        "Resident memory of each worker process.",
    );
    for w in facts.workers {
        if let Some(rss) = w.rss_bytes {
            let pid = w.pid.to_string();
            out.sample(
                "ferrocorn_worker_resident_memory_bytes",
                &[("pid", &pid)],
                rss,
            );
        }
    }

    out.family(
        "ferrocorn_worker_cpu_seconds_total",
        "counter",
        "User and system CPU time of each worker process.",
    );
    for w in facts.workers {
        if let Some(cpu) = w.cpu_seconds {
            let pid = w.pid.to_string();
            let labels = [("pid", pid.as_str())];
            out.sample("ferrocorn_worker_cpu_seconds_total", &labels, Seconds(cpu));
        }
    }

    out.family(
        "ferrocorn_statsd_dropped_total",
        "counter",
        "StatsD datagrams dropped because the socket could not take them.",
    );
    let dropped = all.statsd_dropped.wrapping_add(facts.master_statsd_dropped);
    out.sample("ferrocorn_statsd_dropped_total", &[], dropped);

    out.0
}

/// A float as the exposition format spells it: Rust's shortest round-trip decimal (never an
/// exponent, which every parser's float reader takes) and `+Inf`, `-Inf`, `NaN`.
struct Seconds(f64);

impl Display for Seconds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            v if v.is_nan() => f.write_str("NaN"),
            v if v == f64::INFINITY => f.write_str("+Inf"),
            v if v == f64::NEG_INFINITY => f.write_str("-Inf"),
            v => write!(f, "{v}"),
        }
    }
}

struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        // Writing to a String cannot fail.
        let _ = write!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                self.0.push_str(k);
                self.0.push_str("=\"");
                escape_label_into(&mut self.0, v);
                self.0.push('"');
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }

    /// `_bucket` lines from non-cumulative counts, then `_sum` and `_count`.
    fn histogram(&mut self, name: &str, counts: &[u64], le: &[&str], sum: Seconds) {
        let mut running = 0u64;
        for (n, le) in counts.iter().zip(le) {
            running = running.wrapping_add(*n);
            self.sample(&format!("{name}_bucket"), &[("le", le)], running);
        }
        self.sample(&format!("{name}_sum"), &[], sum);
        self.sample(&format!("{name}_count"), &[], running);
    }
}

/// Label values escape backslash, double quote and line feed; nothing else.
fn escape_label_into(out: &mut String, value: &str) {
    for ch in value.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// A process's resident memory in bytes and its user+system CPU time in seconds, from
/// `/proc/<pid>/stat`; None once the process is gone or the file cannot be understood.
pub fn proc_usage(pid: i32) -> Option<(u64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (ticks, pages) = parse_stat(&stat)?;
    use nix::unistd::{sysconf, SysconfVar};
    let hz = sysconf(SysconfVar::CLK_TCK).ok()??;
    let page = sysconf(SysconfVar::PAGE_SIZE).ok()??;
    if hz <= 0 || page <= 0 {
        return None;
    }
    Some((pages.saturating_mul(page as u64), ticks as f64 / hz as f64))
}

/// utime+stime (ticks) and rss (pages) from a `/proc/<pid>/stat` line. The command name in
/// parentheses may hold spaces and parentheses itself, so fields are counted from the last
/// `)`: after it come field 3 (state) onwards, so field N is at index N-3.
fn parse_stat(stat: &str) -> Option<(u64, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    let ticks = field(14)?.saturating_add(field(15)?);
    // rss is signed in the kernel's format; a negative one reads as unparseable, not huge.
    let pages = field(24)?;
    Some((ticks, pages))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::metrics::BUCKETS;

    fn facts<'a>(listeners: &'a [(String, u64)], workers: &'a [WorkerProc]) -> MasterFacts<'a> {
        MasterFacts {
            workers_by_state: WorkerStates {
                booting: 1,
                serving: 2,
                stopping: 0,
            },
            target_workers: 3,
            start_time_unix: 1_764_000_000.25,
            listeners,
            workers,
            master_statsd_dropped: 1,
        }
    }

    fn lines(text: &str) -> Vec<&str> {
        text.lines().collect()
    }

    #[test]
    fn an_idle_server_still_has_every_family() {
        let text = render(&Totals::new(), &[], &facts(&[], &[]));
        assert!(text.ends_with('\n'));
        let l = lines(&text);
        for family in [
            "ferrocorn_requests_total counter",
            "ferrocorn_request_duration_seconds histogram",
            "ferrocorn_requests_in_flight gauge",
            "ferrocorn_workers gauge",
            "ferrocorn_workers_target gauge",
            "ferrocorn_worker_restarts_total counter",
            "ferrocorn_worker_boot_duration_seconds histogram",
            "ferrocorn_master_start_time_seconds gauge",
            "ferrocorn_listener_backlog gauge",
            "ferrocorn_worker_resident_memory_bytes gauge",
            "ferrocorn_worker_cpu_seconds_total counter",
            "ferrocorn_statsd_dropped_total counter",
        ] {
            let name = family.split(' ').next().unwrap();
            let at = l.iter().position(|x| *x == format!("# TYPE {family}"));
            let at = at.unwrap_or_else(|| panic!("{family} missing:\n{text}"));
            assert!(l[at - 1].starts_with(&format!("# HELP {name} ")), "{text}");
        }
        assert!(l.contains(&r#"ferrocorn_requests_total{method="GET",status="2xx"} 0"#));
        assert_eq!(
            l.iter()
                .filter(|x| x.starts_with("ferrocorn_requests_total"))
                .count(),
            1
        );
        assert!(l.contains(&r#"ferrocorn_request_duration_seconds_bucket{le="+Inf"} 0"#));
        assert!(l.contains(&"ferrocorn_request_duration_seconds_sum 0"));
        assert!(l.contains(&"ferrocorn_requests_in_flight 0"));
        assert!(l.contains(&r#"ferrocorn_workers{state="booting"} 1"#));
        assert!(l.contains(&r#"ferrocorn_workers{state="stopping"} 0"#));
        assert!(l.contains(&"ferrocorn_workers_target 3"));
        for reason in ["timeout", "max_requests", "crash", "reload", "memory"] {
            let line = format!(r#"ferrocorn_worker_restarts_total{{reason="{reason}"}} 0"#);
            assert!(l.contains(&line.as_str()), "{text}");
        }
        assert!(l.contains(&"ferrocorn_master_start_time_seconds 1764000000.25"));
        assert!(l.contains(&"ferrocorn_statsd_dropped_total 1"));
    }

    #[test]
    fn live_and_retired_workers_add_up_with_cumulative_buckets() {
        let mut a = SlotSnapshot::default();
        a.counters[0][1] = 5;
        a.counters[2][3] = 2;
        a.buckets[0] = 4;
        a.buckets[6] = 3;
        a.sum_us = 301_500;
        a.in_flight = 3;
        a.statsd_dropped = 10;
        let mut b = SlotSnapshot::default();
        b.counters[7][5] = 1;
        b.buckets[13] = 1;
        b.sum_us = 12_000_000;
        b.in_flight = -1;
        let mut totals = Totals::new();
        totals.retire_worker(&a);
        totals.count_restart(RestartReason::MaxRequests);
        totals.count_restart(RestartReason::MaxRequests);
        totals.count_restart(RestartReason::Crash);
        totals.observe_boot(Duration::from_millis(100));
        totals.observe_boot(Duration::from_millis(700));
        totals.observe_boot(Duration::from_secs(90));
        let text = render(&totals, &[a, b], &facts(&[], &[]));
        let l = lines(&text);
        for want in [
            r#"ferrocorn_requests_total{method="GET",status="2xx"} 10"#,
            r#"ferrocorn_requests_total{method="POST",status="4xx"} 4"#,
            r#"ferrocorn_requests_total{method="other",status="other"} 1"#,
            r#"ferrocorn_request_duration_seconds_bucket{le="0.001"} 8"#,
            r#"ferrocorn_request_duration_seconds_bucket{le="0.05"} 8"#,
            r#"ferrocorn_request_duration_seconds_bucket{le="0.1"} 14"#,
            r#"ferrocorn_request_duration_seconds_bucket{le="10"} 14"#,
            r#"ferrocorn_request_duration_seconds_bucket{le="+Inf"} 15"#,
            "ferrocorn_request_duration_seconds_sum 12.603",
            "ferrocorn_request_duration_seconds_count 15",
            "ferrocorn_requests_in_flight 2",
            r#"ferrocorn_worker_restarts_total{reason="max_requests"} 2"#,
            r#"ferrocorn_worker_restarts_total{reason="crash"} 1"#,
            r#"ferrocorn_worker_boot_duration_seconds_bucket{le="0.1"} 1"#,
            r#"ferrocorn_worker_boot_duration_seconds_bucket{le="0.5"} 1"#,
            r#"ferrocorn_worker_boot_duration_seconds_bucket{le="1"} 2"#,
            r#"ferrocorn_worker_boot_duration_seconds_bucket{le="60"} 2"#,
            r#"ferrocorn_worker_boot_duration_seconds_bucket{le="+Inf"} 3"#,
            "ferrocorn_worker_boot_duration_seconds_sum 90.8",
            "ferrocorn_worker_boot_duration_seconds_count 3",
            "ferrocorn_statsd_dropped_total 21",
        ] {
            assert!(l.contains(&want), "{want} not in:\n{text}");
        }
        let requests = l
            .iter()
            .filter(|x| x.starts_with("ferrocorn_requests_total{"));
        assert_eq!(requests.count(), 3, "zero pairs are left out");
        let buckets = l.iter().filter(|x| x.contains("duration_seconds_bucket{"));
        assert_eq!(buckets.count(), BUCKETS + 10);
    }

    #[test]
    fn labels_are_escaped_and_processes_listed() {
        let listeners = [
            ("http://127.0.0.1:8000".to_string(), 4),
            ("unix:/tmp/a \"b\"\\c\nd".to_string(), 0),
        ];
        let workers = [
            WorkerProc {
                pid: 41,
                rss_bytes: Some(1_048_576),
                cpu_seconds: Some(1.5),
            },
            WorkerProc {
                pid: 42,
                rss_bytes: None,
                cpu_seconds: None,
            },
        ];
        let text = render(&Totals::new(), &[], &facts(&listeners, &workers));
        let l = lines(&text);
        assert!(l.contains(&r#"ferrocorn_listener_backlog{listener="http://127.0.0.1:8000"} 4"#));
        assert!(l.contains(&r#"ferrocorn_listener_backlog{listener="unix:/tmp/a \"b\"\\c\nd"} 0"#));
        assert!(l.contains(&r#"ferrocorn_worker_resident_memory_bytes{pid="41"} 1048576"#));
        assert!(l.contains(&r#"ferrocorn_worker_cpu_seconds_total{pid="41"} 1.5"#));
        assert!(
            !text.contains(r#"pid="42""#),
            "unreadable processes are left out"
        );
    }

    #[test]
    fn floats_use_exposition_spellings() {
        let s = |v: f64| Seconds(v).to_string();
        assert_eq!(s(0.0), "0");
        assert_eq!(s(2.5), "2.5");
        assert_eq!(s(1e-7), "0.0000001");
        assert_eq!(s(f64::INFINITY), "+Inf");
        assert_eq!(s(f64::NEG_INFINITY), "-Inf");
        assert_eq!(s(f64::NAN), "NaN");
    }

    #[test]
    fn stat_lines_parse_around_odd_command_names() {
        let line = "1234 (we ird) (name) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0 99 \
                    1000000 300 18446744073709551615 0";
        assert_eq!(parse_stat(line), Some((300, 300)));
        assert_eq!(parse_stat("1 (x) S 1 2"), None);
        assert_eq!(parse_stat("garbage"), None);
        let (rss, cpu) = proc_usage(std::process::id() as i32).expect("our own stat");
        assert!(rss > 0);
        assert!(cpu >= 0.0);
        assert_eq!(proc_usage(i32::MAX), None, "above any pid_max");
    }
}
