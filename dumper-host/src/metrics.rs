//! What a dumper-host has done, for Prometheus: `GET /metrics` (Bearer `dumper_token`) in the text
//! exposition format. One registry per process; the pieces that do the work record into it, and the
//! probe service renders it with the queues' depths read at scrape time.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// Where the metrics are served, beside the probe.
pub const METRICS_PATH: &str = "/metrics";

/// Dump durations, in seconds: a small database takes seconds, a big one hours.
const SECONDS_BUCKETS: [f64; 9] = [1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 10800.0, 43200.0];
/// Stored backup sizes, in bytes: 1 MiB to 256 GiB by factors of 4 and 16.
const BYTES_BUCKETS: [f64; 8] =
    [1048576.0, 16777216.0, 268435456.0, 1073741824.0, 4294967296.0, 17179869184.0, 68719476736.0, 274877906944.0];

#[derive(Debug, Clone)]
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram { bounds, counts: vec![0; bounds.len()], sum: 0.0, count: 0 }
    }

    fn observe(&mut self, v: f64) {
        for (b, c) in self.bounds.iter().zip(&mut self.counts) {
            if v <= *b {
                *c += 1;
            }
        }
        self.sum += v;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {c}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", self.count);
        let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

#[derive(Debug, Default)]
struct Recorded {
    /// (engine, outcome): `completed` or the failure's class.
    dumps: BTreeMap<(String, String), u64>,
    dump_seconds: BTreeMap<String, Histogram>,
    dump_bytes: BTreeMap<String, Histogram>,
    /// outcome: `completed` or the failure's class.
    restores: BTreeMap<String, u64>,
    /// (queue, outcome): `done`, `retry_later` or `guest_failed`.
    jobs: BTreeMap<(String, &'static str), u64>,
    /// Unix time of each database's last completed dump on this host.
    last_success: BTreeMap<String, i64>,
}

/// The registry.
#[derive(Debug, Default)]
pub struct Metrics {
    recorded: Mutex<Recorded>,
    dumps_running: AtomicI64,
    restores_running: AtomicI64,
    /// Bytes the running dumps have stored so far in blobs they have not committed yet.
    bytes_in_flight: AtomicU64,
}

/// This process's registry.
pub fn global() -> &'static Metrics {
    static GLOBAL: OnceLock<Metrics> = OnceLock::new();
    GLOBAL.get_or_init(Metrics::default)
}

/// Counts one running dump or restore while it lives.
pub struct Running<'a>(&'a AtomicI64);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One dump's stored bytes: counted in flight until it is dropped (committed or abandoned).
pub struct Staged<'a> {
    metrics: &'a Metrics,
    total: u64,
}

impl Staged<'_> {
    pub fn add(&mut self, n: u64) {
        self.total += n;
        self.metrics.bytes_in_flight.fetch_add(n, Ordering::Relaxed);
    }

    pub fn total(&self) -> u64 {
        self.total
    }
}

impl Drop for Staged<'_> {
    fn drop(&mut self) {
        self.metrics.bytes_in_flight.fetch_sub(self.total, Ordering::Relaxed);
    }
}

impl Metrics {
    fn recorded(&self) -> std::sync::MutexGuard<'_, Recorded> {
        // A panic elsewhere while holding it leaves counts, not broken invariants.
        self.recorded.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn dump_running(&self) -> Running<'_> {
        self.dumps_running.fetch_add(1, Ordering::Relaxed);
        Running(&self.dumps_running)
    }

    pub fn restore_running(&self) -> Running<'_> {
        self.restores_running.fetch_add(1, Ordering::Relaxed);
        Running(&self.restores_running)
    }

    pub fn staged(&self) -> Staged<'_> {
        Staged { metrics: self, total: 0 }
    }

    /// A completed dump of `database_id` (when known) at `unix_time`.
    pub fn dump_completed(&self, engine: &str, database_id: Option<&str>, took: Duration, bytes: u64, unix_time: i64) {
        let mut r = self.recorded();
        *r.dumps.entry((engine.into(), "completed".into())).or_default() += 1;
        r.dump_seconds
            .entry(engine.into())
            .or_insert_with(|| Histogram::new(&SECONDS_BUCKETS))
            .observe(took.as_secs_f64());
        r.dump_bytes.entry(engine.into()).or_insert_with(|| Histogram::new(&BYTES_BUCKETS)).observe(bytes as f64);
        if let Some(id) = database_id {
            r.last_success.insert(id.into(), unix_time);
        }
    }

    pub fn dump_failed(&self, engine: &str, class: &str) {
        *self.recorded().dumps.entry((engine.into(), class.into())).or_default() += 1;
    }

    /// `outcome`: `completed` or the failure's class.
    pub fn restore_finished(&self, outcome: &str) {
        *self.recorded().restores.entry(outcome.into()).or_default() += 1;
    }

    /// `outcome`: `done`, `retry_later` or `guest_failed`.
    pub fn job_settled(&self, queue: &str, outcome: &'static str) {
        *self.recorded().jobs.entry((queue.into(), outcome)).or_default() += 1;
    }

    /// The exposition text; `queues` are (name, approximate depth) read just now.
    pub fn render(&self, queues: &[(String, u64)]) -> String {
        let r = self.recorded();
        let mut out = String::new();
        let family = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        family(&mut out, "dilux_dumps_total", "counter", "Dumps finished, by engine and outcome.");
        for ((engine, outcome), n) in &r.dumps {
            let _ = writeln!(out, "dilux_dumps_total{{engine=\"{engine}\",outcome=\"{outcome}\"}} {n}");
        }
        family(&mut out, "dilux_dump_duration_seconds", "histogram", "Completed dumps' durations.");
        for (engine, h) in &r.dump_seconds {
            h.render(&mut out, "dilux_dump_duration_seconds", &format!("engine=\"{engine}\""));
        }
        family(&mut out, "dilux_dump_stored_bytes", "histogram", "Completed dumps' stored (compressed) sizes.");
        for (engine, h) in &r.dump_bytes {
            h.render(&mut out, "dilux_dump_stored_bytes", &format!("engine=\"{engine}\""));
        }
        family(&mut out, "dilux_dumps_running", "gauge", "Dumps running now.");
        let _ = writeln!(out, "dilux_dumps_running {}", self.dumps_running.load(Ordering::Relaxed));
        family(&mut out, "dilux_dump_bytes_in_flight", "gauge", "Bytes running dumps stored, not yet committed.");
        let _ = writeln!(out, "dilux_dump_bytes_in_flight {}", self.bytes_in_flight.load(Ordering::Relaxed));
        family(&mut out, "dilux_restores_total", "counter", "Restores and drills finished, by outcome.");
        for (outcome, n) in &r.restores {
            let _ = writeln!(out, "dilux_restores_total{{outcome=\"{outcome}\"}} {n}");
        }
        family(&mut out, "dilux_restores_running", "gauge", "Restores and drills running now.");
        let _ = writeln!(out, "dilux_restores_running {}", self.restores_running.load(Ordering::Relaxed));
        family(&mut out, "dilux_jobs_total", "counter", "Queue messages this worker settled, by queue and outcome.");
        for ((queue, outcome), n) in &r.jobs {
            let _ = writeln!(out, "dilux_jobs_total{{queue=\"{queue}\",outcome=\"{outcome}\"}} {n}");
        }
        family(&mut out, "dilux_queue_depth", "gauge", "Messages waiting in each jobs queue (approximate).");
        for (queue, n) in queues {
            let _ = writeln!(out, "dilux_queue_depth{{queue=\"{queue}\"}} {n}");
        }
        family(
            &mut out,
            "dilux_last_success_timestamp_seconds",
            "gauge",
            "Unix time of each database's last completed dump on this worker.",
        );
        for (id, at) in &r.last_success {
            let _ = writeln!(out, "dilux_last_success_timestamp_seconds{{database_id=\"{id}\"}} {at}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_counts_what_happened_in_prometheus_form() {
        let m = Metrics::default();
        {
            let _running = m.dump_running();
            let mut staged = m.staged();
            staged.add(3 << 20);
            let text = m.render(&[]);
            assert!(text.contains("dilux_dumps_running 1\n") && text.contains("dilux_dump_bytes_in_flight 3145728\n"));
        }
        m.dump_completed("postgresql", Some("db-1"), Duration::from_secs(12), 2 << 20, 1_700_000_000);
        m.dump_failed("mysql", "auth_failed");
        m.restore_finished("completed");
        m.job_settled("backup-jobs", "done");
        let text = m.render(&[("backup-jobs".into(), 4)]);
        for line in [
            "dilux_dumps_running 0",
            "dilux_dump_bytes_in_flight 0",
            "dilux_dumps_total{engine=\"postgresql\",outcome=\"completed\"} 1",
            "dilux_dumps_total{engine=\"mysql\",outcome=\"auth_failed\"} 1",
            "dilux_dump_duration_seconds_bucket{engine=\"postgresql\",le=\"5\"} 0",
            "dilux_dump_duration_seconds_bucket{engine=\"postgresql\",le=\"15\"} 1",
            "dilux_dump_duration_seconds_bucket{engine=\"postgresql\",le=\"+Inf\"} 1",
            "dilux_dump_duration_seconds_sum{engine=\"postgresql\"} 12",
            "dilux_dump_stored_bytes_bucket{engine=\"postgresql\",le=\"1048576\"} 0",
            "dilux_dump_stored_bytes_bucket{engine=\"postgresql\",le=\"16777216\"} 1",
            "dilux_restores_total{outcome=\"completed\"} 1",
            "dilux_jobs_total{queue=\"backup-jobs\",outcome=\"done\"} 1",
            "dilux_queue_depth{queue=\"backup-jobs\"} 4",
            "dilux_last_success_timestamp_seconds{database_id=\"db-1\"} 1700000000",
        ] {
            assert!(text.lines().any(|l| l == line), "missing `{line}` in:\n{text}");
        }
        // Every sample belongs to a family declared before it.
        let mut declared = std::collections::HashSet::new();
        for l in text.lines() {
            if let Some(rest) = l.strip_prefix("# TYPE ") {
                declared.insert(rest.split(' ').next().unwrap().to_string());
            } else if !l.starts_with('#') {
                let name = l.split(['{', ' ']).next().unwrap();
                let base = ["_bucket", "_sum", "_count"].iter().fold(name, |n, s| n.strip_suffix(s).unwrap_or(n));
                assert!(declared.contains(name) || declared.contains(base), "{l}");
            }
        }
    }
}
