//! The engine's metrics in the Prometheus text exposition format (0.0.4):
//! state sizes, the log's counters, watermarks and histograms, and the
//! ranking side (runtime, active and serving versions, fault, breaker).
//! `Engine::metrics_text` renders them; a server serves them at `/metrics`.

use std::fmt::Write;

use recwal_wal::HistogramSnapshot;

use crate::engine::EngineStats;
use crate::model::{BreakerState, ModelStatus};

/// Renders `stats` and `models` as Prometheus text.
pub(crate) fn render(stats: &EngineStats, models: &ModelStatus) -> String {
    let mut out = Metrics(String::with_capacity(4096));
    out.gauge("recwal_users", "Users ever seen.", stats.users as u64);
    out.gauge("recwal_items", "Items ever seen.", stats.items as u64);
    out.gauge("recwal_catalogue_items", "Items with a catalogue entry (metadata).", stats.catalogue_items as u64);
    out.gauge("recwal_pairs", "Stored (user, item) pairs.", stats.pairs);
    out.counter("recwal_events_applied_total", "Events applied (including forgotten users').", stats.events_applied);
    out.gauge("recwal_applied_lsn", "LSN of the last record applied.", stats.lsn_applied);
    out.gauge("recwal_dedup_ids", "Client event ids in the dedup window.", stats.dedup_ids as u64);
    out.gauge("recwal_snapshot_lsn", "LSN of the newest snapshot (0: none).", stats.lsn_snapshot);
    out.gauge(
        "recwal_disk_full",
        "1 while a log segment or snapshot cannot be written for lack of space (writes answer 503).",
        u64::from(stats.disk_full.is_some()),
    );
    out.gauge(
        "recwal_poisoned",
        "1 once the engine accepts no more writes (a failed log write or sync, a panicked writer): restart it.",
        u64::from(stats.poisoned.is_some()),
    );
    out.counter(
        "recwal_checkpoint_failures_total",
        "Automatic checkpoints that failed (retried with exponential backoff).",
        stats.checkpoint_failures,
    );

    let wal = &stats.wal;
    out.counter("recwal_wal_records_appended_total", "Records appended to the log.", wal.records_appended);
    out.counter("recwal_wal_bytes_appended_total", "Payload bytes appended to the log.", wal.bytes_appended);
    out.counter("recwal_wal_syncs_total", "Log syncs (fdatasync).", wal.syncs);
    out.counter(
        "recwal_wal_sync_failures_total",
        "Failed log syncs or writes of staged records (the log is then poisoned).",
        wal.sync_failures,
    );
    out.counter("recwal_wal_full_waits_total", "Appends that waited for a full ring.", wal.full_waits);
    out.counter("recwal_wal_full_errors_total", "Appends refused by a full ring.", wal.full_errors);
    out.counter("recwal_wal_segments_created_total", "Segment files created.", wal.segments_created);
    out.counter("recwal_wal_segments_recycled_total", "Segments recycled.", wal.segments_recycled);
    out.gauge("recwal_wal_segments_live", "Segments holding unreleased records.", wal.segments_live);
    out.gauge("recwal_wal_segments_free", "Segments ready for reuse.", wal.segments_free);
    out.gauge("recwal_wal_staged_bytes", "Bytes of records staged in memory, not yet written.", wal.staged_bytes);
    out.counter(
        "recwal_wal_staging_overflows_total",
        "Appends that wrote staged records themselves because syncs fell behind.",
        wal.staging_overflows,
    );
    out.gauge("recwal_wal_lsn_written", "Last LSN in its file with every record before it.", wal.lsn_written);
    out.gauge("recwal_wal_lsn_appended", "Last LSN handed out (written or still staged in memory).", wal.lsn_appended);
    out.gauge("recwal_wal_lsn_durable", "Last LSN known durable.", wal.lsn_durable);
    out.gauge("recwal_wal_lsn_released", "Last LSN released by a checkpoint.", wal.lsn_released);
    out.histogram("recwal_wal_sync_latency_us", "Log sync latency in microseconds.", &wal.sync_latency_us);
    out.histogram("recwal_wal_group_records", "Records made durable per sync (group commit size).", &wal.group_records);

    out.gauge(
        "recwal_model_runtime_loaded",
        "1 if the ONNX Runtime library is loaded.",
        u64::from(models.runtime.is_ok()),
    );
    out.gauge(
        "recwal_model_active_version",
        "Active model version per the log (0: none).",
        models.active.map_or(0, u64::from),
    );
    out.gauge(
        "recwal_model_serving_version",
        "Model version answers are ranked with (0: un-ranked).",
        models.serving.map_or(0, u64::from),
    );
    out.gauge(
        "recwal_model_fault",
        "1 if the active version cannot serve (see the status).",
        u64::from(models.fault.is_some()),
    );
    out.gauge(
        "recwal_model_canary_version",
        "The canary version per the log (0: none).",
        models.canary.as_ref().map_or(0, |canary| u64::from(canary.version)),
    );
    out.gauge(
        "recwal_model_canary_share_per_mille",
        "Users routed to the canary, per mille (0: no canary).",
        models.canary.as_ref().and_then(|canary| canary.percent).map_or(0, |percent| (percent * 10.0).round() as u64),
    );
    out.gauge(
        "recwal_model_shadow_version",
        "The shadow version per the log (0: none).",
        models.shadow.as_ref().map_or(0, |shadow| u64::from(shadow.version)),
    );
    out.gauge(
        "recwal_model_route_fault",
        "1 if a canary or shadow the log names is not loaded (see the status).",
        u64::from(models.route_fault.is_some()),
    );
    out.gauge("recwal_model_loaded_versions", "Model versions loaded in the process.", models.loaded_versions as u64);
    out.header("recwal_model_breaker_state", "The serving version's circuit breaker (1 for its state).", "gauge");
    for state in [BreakerState::Closed, BreakerState::Open, BreakerState::HalfOpen] {
        let value = u64::from(models.breaker == Some(state));
        out.line(&format!("recwal_model_breaker_state{{state=\"{}\"}}", state.name()), value);
    }
    let counts = models.breaker_counts.unwrap_or_default();
    out.counter("recwal_model_breaker_opened_total", "Times the serving version's breaker opened.", counts.opened);
    out.counter(
        "recwal_model_breaker_failures_total",
        "Inferences of the serving version that failed or ran over budget.",
        counts.failures,
    );
    out.counter(
        "recwal_model_breaker_skipped_total",
        "Requests answered without the serving version because its breaker was open.",
        counts.skipped,
    );
    out.header(
        "recwal_model_inference_seconds",
        "Inference latency in seconds per model version loaded in this process (the run alone, not the wait for a session).",
        "histogram",
    );
    let versions = crate::model::latency::snapshot();
    for (version, latency) in &versions {
        for (upper, count) in &latency.buckets {
            out.line(&format!("recwal_model_inference_seconds_bucket{{version=\"{version}\",le=\"{upper}\"}}"), *count);
        }
        out.line(&format!("recwal_model_inference_seconds_bucket{{version=\"{version}\",le=\"+Inf\"}}"), latency.count);
        let _ = writeln!(out.0, "recwal_model_inference_seconds_sum{{version=\"{version}\"}} {}", latency.sum_s);
        out.line(&format!("recwal_model_inference_seconds_count{{version=\"{version}\"}}"), latency.count);
    }
    out.header(
        "recwal_model_answers_total",
        "Requests a model version was asked to rank, per version, role (stable: the active version; canary; shadow: \
         scored, never served) and outcome (ranked, failed, busy, skipped by an open breaker).",
        "counter",
    );
    for (version, latency) in &versions {
        for (role, answer, count) in &latency.answers {
            // Every outcome of a role the version played, zeros included.
            let played = latency.answers.iter().any(|(other, _, count)| other == role && *count > 0);
            if played {
                out.line(
                    &format!(
                        "recwal_model_answers_total{{version=\"{version}\",role=\"{}\",outcome=\"{}\"}}",
                        role.name(),
                        answer.name()
                    ),
                    *count,
                );
            }
        }
    }
    out.0
}

/// The item model's series (`recwal_item_model_*`), appended to `render`'s.
pub(crate) fn render_item_model(status: &crate::engine::ItemModelStatus) -> String {
    let mut out = Metrics(String::with_capacity(1024));
    out.gauge(
        "recwal_item_model_version",
        "Version of the active item model (record 11; 0: none trained).",
        status.active.as_ref().map_or(0, |active| u64::from(active.version)),
    );
    out.gauge(
        "recwal_item_model_serving",
        "1 while the active item model is loaded and its strategy (ease or ials) scores with it (0: popular items).",
        u64::from(status.serving),
    );
    out.header(
        "recwal_item_model_family",
        "1 for the family of the item model serving (ease: the ease strategy; ials: the ials strategy), 0 for the other.",
        "gauge",
    );
    for family in [crate::config::ItemModelFamily::Ease, crate::config::ItemModelFamily::Ials] {
        let _ = writeln!(
            out.0,
            "recwal_item_model_family{{family=\"{}\"}} {}",
            family.name(),
            u64::from(status.family == Some(family))
        );
    }
    out.gauge(
        "recwal_item_model_items",
        "Items the active item model covers.",
        status.active.as_ref().map_or(0, |active| u64::from(active.n_items)),
    );
    out.gauge(
        "recwal_item_model_age_seconds",
        "Seconds since the active item model was activated (0: none).",
        status.age_ms.map_or(0, |age_ms| age_ms / 1000),
    );
    out.gauge(
        "recwal_item_model_trained_lsn",
        "applied LSN of the state the active item model was trained on.",
        status.active.as_ref().map_or(0, |active| active.lsn_trained),
    );
    out.gauge("recwal_item_model_training", "1 while an item model trains.", u64::from(status.training));
    out.gauge(
        "recwal_item_model_training_steps_done",
        "Steps of the running (or last) training done.",
        status.progress.0,
    );
    out.gauge("recwal_item_model_training_steps", "Steps of the running (or last) training in all.", status.progress.1);
    out.counter(
        "recwal_item_model_trainings_total",
        "Item-model trainings that activated a model since the engine opened.",
        status.trainings,
    );
    out.counter(
        "recwal_item_model_failures_total",
        "Item-model trainings that failed or were refused since the engine opened (the reason is logged).",
        status.failures,
    );
    out.header("recwal_item_model_last_train_seconds", "Duration of the last successful training, seconds.", "gauge");
    let _ = writeln!(out.0, "recwal_item_model_last_train_seconds {}", status.last_train_ms as f64 / 1000.0);
    out.gauge(
        "recwal_item_model_fault",
        "1 while the active item model cannot serve (missing or altered artefact) or the last training failed with none serving.",
        u64::from(status.fault.is_some()),
    );
    out.0
}

struct Metrics(String);

impl Metrics {
    fn header(&mut self, name: &str, help: &str, kind: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn line(&mut self, series: &str, value: u64) {
        let _ = writeln!(self.0, "{series} {value}");
    }

    fn gauge(&mut self, name: &str, help: &str, value: u64) {
        self.header(name, help, "gauge");
        self.line(name, value);
    }

    fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.header(name, help, "counter");
        self.line(name, value);
    }

    fn histogram(&mut self, name: &str, help: &str, histogram: &HistogramSnapshot) {
        self.header(name, help, "histogram");
        let mut cumulative = 0;
        for &(upper, count) in &histogram.buckets {
            cumulative += count;
            self.line(&format!("{name}_bucket{{le=\"{upper}\"}}"), cumulative);
        }
        self.line(&format!("{name}_bucket{{le=\"+Inf\"}}"), histogram.count);
        self.line(&format!("{name}_sum"), histogram.sum);
        self.line(&format!("{name}_count"), histogram.count);
    }
}

#[cfg(test)]
mod tests {
    use crate::{Engine, EngineConfig, Event, EventKind};

    /// Every line is a comment or `name{labels} value`; every series has a
    /// TYPE; histogram buckets are cumulative and end at the count.
    #[test]
    fn the_text_is_valid_exposition_format() -> Result<(), crate::EngineError> {
        let dir = tempfile::tempdir().map_err(|err| crate::EngineError::io("tempdir", err))?;
        let mut config = EngineConfig::default();
        config.wal = config.wal.segment_bytes(1 << 20).segments_initial(2);
        let engine = Engine::open(dir.path(), config)?;
        for at in 0..5 {
            engine.ingest(Event::new(format!("u{at}"), "i", EventKind::Click))?;
        }
        let text = engine.metrics_text();
        let mut typed = std::collections::HashSet::new();
        let mut last_bucket: Option<(String, f64)> = None;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut parts = rest.split(' ');
                typed.insert(parts.next().unwrap_or_default().to_string());
                assert!(matches!(parts.next(), Some("gauge" | "counter" | "histogram")), "{line}");
                continue;
            }
            if line.starts_with("# HELP ") {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').unwrap_or_default();
            // Integers, but a histogram sum in seconds is fractional.
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value in {line:?}"));
            let name = series.split('{').next().unwrap_or_default();
            let base = name.trim_end_matches("_bucket").trim_end_matches("_sum").trim_end_matches("_count");
            assert!(typed.contains(name) || typed.contains(base), "{name} has no TYPE");
            assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "{name}");
            if name.ends_with("_bucket") {
                // One histogram: the series but its `le` label.
                let histogram =
                    series.split(",le=").next().unwrap_or_default().split("{le=").next().unwrap_or_default();
                if let Some((previous, count)) = &last_bucket {
                    if previous == histogram {
                        assert!(value >= *count, "buckets of {histogram} not cumulative");
                    }
                }
                last_bucket = Some((histogram.to_string(), value));
            }
        }
        assert!(text.contains("recwal_users 5\n"));
        assert!(text.contains("recwal_wal_records_appended_total 5\n"));
        assert!(text.contains("recwal_model_serving_version 0\n"));
        assert!(text.contains("recwal_model_breaker_state{state=\"closed\"} 0\n"));
        Ok(())
    }
}
