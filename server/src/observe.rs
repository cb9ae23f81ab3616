//! Observability of the HTTP side: request ids, the per-route latency
//! histograms (prometheus-client, in seconds), the gauges the alerting rules
//! in `deploy/prometheus/` need (process start, replay time, data-dir
//! filesystem space, newest snapshot's age) and the count of log lines
//! dropped by the non-blocking log writer.

use std::fmt::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, Method, StatusCode};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Upper bounds of the HTTP latency buckets, in seconds (Prometheus
/// convention); fixed, so every route's histogram can be aggregated.
pub const HTTP_BUCKETS_S: [f64; 16] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Longest `X-Request-ID` taken from a client; a longer one is replaced.
pub const REQUEST_ID_BYTES_MAX: usize = 128;

/// The header carrying the request id, in and out.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: &'static str,
    route: String,
    status: u16,
}

/// The HTTP metrics. Recording takes no lock shared by all requests: the
/// family's map is read-locked (write-locked only the first time a
/// (method, route, status) is seen), and each series has its own.
pub struct HttpMetrics {
    registry: Registry,
    requests: Family<RouteLabels, Histogram, fn() -> Histogram>,
    request_id_prefix: String,
    next_request: AtomicU64,
}

fn http_histogram() -> Histogram {
    Histogram::new(HTTP_BUCKETS_S)
}

impl Default for HttpMetrics {
    fn default() -> Self {
        HttpMetrics::new()
    }
}

impl HttpMetrics {
    pub fn new() -> HttpMetrics {
        let mut registry = Registry::default();
        let requests = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(http_histogram);
        registry.register(
            "recwal_http_request_duration_seconds",
            "HTTP request latency in seconds, per method, route template and status",
            requests.clone(),
        );
        // Ids generated here are unique across restarts of the process: a
        // prefix from the start time and pid, then a counter.
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_nanos() as u64);
        let prefix = nanos ^ (u64::from(std::process::id()) << 40);
        HttpMetrics {
            registry,
            requests,
            request_id_prefix: format!("{:012x}", prefix & 0xffff_ffff_ffff),
            next_request: AtomicU64::new(1),
        }
    }

    /// Counts one request and its latency.
    pub fn record(&self, method: &Method, route: &str, status: StatusCode, seconds: f64) {
        let labels = RouteLabels { method: method_label(method), route: route.to_string(), status: status.as_u16() };
        self.requests.get_or_create(&labels).observe(seconds);
    }

    /// The request id: the client's `X-Request-ID` when it is usable, else a
    /// new one.
    pub fn request_id(&self, headers: &HeaderMap) -> String {
        if let Some(presented) = headers.get(REQUEST_ID_HEADER).and_then(|value| value.to_str().ok()) {
            if valid_request_id(presented) {
                return presented.to_string();
            }
        }
        let sequence = self.next_request.fetch_add(1, Ordering::Relaxed);
        format!("{}-{sequence}", self.request_id_prefix)
    }

    /// The histograms in the Prometheus text format.
    pub fn text(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode_registry(&mut out, &self.registry);
        out
    }
}

/// 1–128 visible ASCII characters (no spaces or control characters), so it
/// can go into a log line and a response header as it came.
pub fn valid_request_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= REQUEST_ID_BYTES_MAX && id.bytes().all(|byte| byte.is_ascii_graphic())
}

/// Standard methods only: a client inventing method names must not grow the
/// series without bound (routes are templates, statuses few).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "OTHER",
    }
}

static LOG_DROPS: OnceLock<tracing_appender::non_blocking::ErrorCounter> = OnceLock::new();

/// Remembers the non-blocking log writer's count of dropped lines, for
/// `/metrics`.
pub fn set_log_drops(counter: tracing_appender::non_blocking::ErrorCounter) {
    let _ = LOG_DROPS.set(counter);
}

/// What `/metrics` adds beside the engine's and the edge's series.
pub struct ProcessGauges<'a> {
    pub started: SystemTime,
    pub data_dir: &'a Path,
    /// Start-up replay: its start, and its length once done.
    pub replay_started: Instant,
    pub replay_took: Option<std::time::Duration>,
    /// The engine is open and neither poisoned nor out of disk.
    pub ready: bool,
    /// The most segments the log's ring may hold (once the engine is open).
    pub segments_max: Option<u32>,
}

/// Renders the process-level gauges.
pub fn process_text(gauges: &ProcessGauges<'_>) -> String {
    let mut out = String::new();
    let started = gauges.started.duration_since(UNIX_EPOCH).map_or(0.0, |since| since.as_secs_f64());
    gauge(&mut out, "process_start_time_seconds", "Start time of the process since the Unix epoch.", started);
    gauge(
        &mut out,
        "recwal_ready",
        "1 once the log is replayed, while the engine accepts writes (not poisoned, disk not full).",
        f64::from(u8::from(gauges.ready)),
    );
    gauge(
        &mut out,
        "recwal_replaying",
        "1 while the start-up replay runs.",
        f64::from(u8::from(gauges.replay_took.is_none())),
    );
    let replay_seconds = gauges.replay_took.unwrap_or_else(|| gauges.replay_started.elapsed()).as_secs_f64();
    gauge(
        &mut out,
        "recwal_replay_seconds",
        "Time the start-up replay took, or has taken so far while it runs.",
        replay_seconds,
    );
    if let Some(segments_max) = gauges.segments_max {
        gauge(
            &mut out,
            "recwal_wal_segments_max",
            "The most segments the log's ring may hold (appends are refused when all hold unreleased records).",
            f64::from(segments_max),
        );
    }
    match rustix::fs::statvfs(gauges.data_dir) {
        Ok(stat) => {
            let fragment = stat.f_frsize;
            gauge(
                &mut out,
                "recwal_data_dir_fs_avail_bytes",
                "Bytes of the data dir's filesystem available to the server.",
                (stat.f_bavail.saturating_mul(fragment)) as f64,
            );
            gauge(
                &mut out,
                "recwal_data_dir_fs_size_bytes",
                "Size in bytes of the data dir's filesystem.",
                (stat.f_blocks.saturating_mul(fragment)) as f64,
            );
        }
        Err(err) => tracing::debug!(%err, "statvfs of the data dir failed"),
    }
    if let Some(newest) = newest_snapshot(&gauges.data_dir.join("snapshots")) {
        let at = newest.duration_since(UNIX_EPOCH).map_or(0.0, |since| since.as_secs_f64());
        gauge(
            &mut out,
            "recwal_snapshot_timestamp_seconds",
            "When the newest snapshot file was written, since the Unix epoch (absent: no snapshot).",
            at,
        );
    }
    let dropped = LOG_DROPS.get().map_or(0, |counter| counter.dropped_lines());
    let _ = writeln!(
        out,
        "# HELP recwal_log_lines_dropped_total Log lines dropped because the log writer fell behind (logging never blocks a request).\n\
         # TYPE recwal_log_lines_dropped_total counter\nrecwal_log_lines_dropped_total {dropped}"
    );
    out
}

fn gauge(out: &mut String, name: &str, help: &str, value: f64) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
}

/// The modification time of the newest `snapshot-*.bin` in `dir`.
fn newest_snapshot(dir: &Path) -> Option<SystemTime> {
    let entries = std::fs::read_dir(dir).ok()?;
    entries
        .filter_map(Result::ok)
        .filter(|entry| {
            entry.file_name().to_str().is_some_and(|name| name.starts_with("snapshot-") && name.ends_with(".bin"))
        })
        .filter_map(|entry| entry.metadata().ok()?.modified().ok())
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_id_is_kept_only_when_it_is_short_visible_ascii() {
        assert!(valid_request_id("abc-123_XYZ.:/"));
        assert!(valid_request_id(&"a".repeat(REQUEST_ID_BYTES_MAX)));
        assert!(!valid_request_id(&"a".repeat(REQUEST_ID_BYTES_MAX + 1)));
        assert!(!valid_request_id(""));
        assert!(!valid_request_id("has space"));
        assert!(!valid_request_id("tab\there"));
        assert!(!valid_request_id("é"));
    }

    #[test]
    fn a_generated_request_id_is_new_each_time_and_a_valid_one_is_kept() {
        let metrics = HttpMetrics::new();
        let mut headers = HeaderMap::new();
        let first = metrics.request_id(&headers);
        let second = metrics.request_id(&headers);
        assert_ne!(first, second);
        assert!(valid_request_id(&first), "{first}");
        headers.insert(REQUEST_ID_HEADER, "client-id-7".parse().unwrap_or_else(|_| unreachable!()));
        assert_eq!(metrics.request_id(&headers), "client-id-7");
        headers.insert(REQUEST_ID_HEADER, "x".repeat(200).parse().unwrap_or_else(|_| unreachable!()));
        assert_ne!(metrics.request_id(&headers), "x".repeat(200));
    }

    #[test]
    fn latencies_are_in_seconds_with_fixed_buckets() {
        let metrics = HttpMetrics::new();
        metrics.record(&Method::GET, "/v1/popular", StatusCode::OK, 0.003);
        metrics.record(
            &Method::from_bytes(b"BREW").unwrap_or_else(|_| unreachable!()),
            "unmatched",
            StatusCode::NOT_FOUND,
            0.5,
        );
        let text = metrics.text();
        let labels = "method=\"GET\",route=\"/v1/popular\",status=\"200\"";
        assert!(text.contains("# TYPE recwal_http_request_duration_seconds histogram"), "{text}");
        // 3 ms: below 5 ms, not below 2.5 ms; the bounds are seconds.
        assert!(
            text.contains(&format!("recwal_http_request_duration_seconds_bucket{{le=\"0.0025\",{labels}}} 0")),
            "{text}"
        );
        assert!(
            text.contains(&format!("recwal_http_request_duration_seconds_bucket{{le=\"0.005\",{labels}}} 1")),
            "{text}"
        );
        assert!(
            text.contains(&format!("recwal_http_request_duration_seconds_bucket{{le=\"10.0\",{labels}}} 1")),
            "{text}"
        );
        assert!(text.contains(&format!("recwal_http_request_duration_seconds_sum{{{labels}}} 0.003")), "{text}");
        assert!(text.contains("method=\"OTHER\",route=\"unmatched\",status=\"404\""), "{text}");
        assert!(!text.contains("# EOF"), "{text}");
    }
}
