//! `recwal serve`'s configuration: defaults, then a TOML file (`--config`),
//! then environment variables and flags (clap gives each flag an `RECWAL_*`
//! variable; a flag wins over its variable). `--print-config` shows the
//! result.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use recwal::wal::SyncPolicy;
use recwal::EngineConfig;
use serde::{Deserialize, Serialize};

/// Everything `serve` reads.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeConfig {
    /// Address to listen on. Loopback by default; any other address needs a token.
    pub listen: String,
    /// The engine's data directory.
    pub data_dir: PathBuf,
    /// Bearer token required by every endpoint except /healthz and /readyz.
    pub token: Option<String>,
    /// Default durability of ingest: "always", "batch" or "never".
    pub sync: String,
    /// Largest request body (JSON), bytes.
    pub body_limit_bytes: usize,
    /// Largest model upload, bytes.
    pub model_limit_bytes: usize,
    /// Requests taking longer are answered 503.
    pub request_timeout_ms: u64,
    /// Most items one request may ask for.
    pub max_n: usize,
    /// Most events one ingest request may carry.
    pub max_batch: usize,
    /// Requests handled at once; more are answered 503.
    pub concurrency: usize,
    /// Write a snapshot on SIGTERM / SIGINT before exiting.
    pub snapshot_on_shutdown: bool,
    /// "auto" (human in a terminal, JSON otherwise), "human" or "json".
    pub log_format: String,
    /// Size of each log segment file, bytes (the log grows and recycles
    /// whole segments; see docs/DURABILITY.md).
    pub wal_segment_bytes: u64,
    /// The ONNX Runtime library (default: `$ORT_DYLIB_PATH`, then
    /// `.onnxruntime/lib/libonnxruntime.so`).
    pub model_runtime: Option<PathBuf>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: "127.0.0.1:8089".into(),
            data_dir: PathBuf::from("./recwal-data"),
            token: None,
            sync: "batch".into(),
            body_limit_bytes: 1 << 20,
            model_limit_bytes: 256 << 20,
            request_timeout_ms: 10_000,
            max_n: recwal::N_MAX,
            max_batch: 10_000,
            concurrency: 512,
            snapshot_on_shutdown: true,
            log_format: "auto".into(),
            model_runtime: None,
            wal_segment_bytes: recwal::wal::WalConfig::default().segment_bytes,
        }
    }
}

/// A configuration error: the setting and the rule.
#[derive(Debug, thiserror::Error)]
#[error("configuration {field}: {rule}")]
pub struct ConfigError {
    pub field: &'static str,
    pub rule: String,
}

fn bad(field: &'static str, rule: impl Into<String>) -> ConfigError {
    ConfigError { field, rule: rule.into() }
}

impl ServeConfig {
    /// Reads a TOML file over the defaults.
    pub fn from_file(path: &std::path::Path) -> Result<ServeConfig, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|err| bad("--config", format!("{}: {err}", path.display())))?;
        toml::from_str(&text).map_err(|err| bad("--config", format!("{}: {err}", path.display())))
    }

    /// Checks every rule; the address it will listen on.
    pub fn validate(&self) -> Result<SocketAddr, ConfigError> {
        let addr: SocketAddr = self
            .listen
            .parse()
            .map_err(|err| bad("listen", format!("{:?} is not an address:port: {err}", self.listen)))?;
        if !addr.ip().is_loopback() && self.token.as_deref().is_none_or(str::is_empty) {
            return Err(bad(
                "listen",
                format!("{addr} is not a loopback address: set a token (--token or RECWAL_TOKEN) to listen there"),
            ));
        }
        if self.token.as_deref().is_some_and(|token| token.len() < 16) {
            return Err(bad("token", "must be at least 16 characters"));
        }
        self.sync_policy()?;
        if !["auto", "human", "json"].contains(&self.log_format.as_str()) {
            return Err(bad("log_format", "must be auto, human or json"));
        }
        for (field, value) in [
            ("body_limit_bytes", self.body_limit_bytes),
            ("model_limit_bytes", self.model_limit_bytes),
            ("max_batch", self.max_batch),
            ("concurrency", self.concurrency),
        ] {
            if value == 0 {
                return Err(bad(field, "must be ≥ 1"));
            }
        }
        if self.max_n == 0 || self.max_n > recwal::N_MAX {
            return Err(bad("max_n", format!("must be 1–{}", recwal::N_MAX)));
        }
        if self.request_timeout_ms == 0 {
            return Err(bad("request_timeout_ms", "must be ≥ 1"));
        }
        Ok(addr)
    }

    fn sync_policy(&self) -> Result<SyncPolicy, ConfigError> {
        match self.sync.as_str() {
            "always" => Ok(SyncPolicy::Always),
            "batch" => Ok(SyncPolicy::batch_default()),
            "never" => Ok(SyncPolicy::Never),
            other => Err(bad("sync", format!("{other:?}: must be always, batch or never"))),
        }
    }

    /// The engine's configuration.
    pub fn engine(&self) -> Result<EngineConfig, ConfigError> {
        let mut config = EngineConfig::default();
        config.wal = config.wal.sync_policy(self.sync_policy()?);
        config.batch_events_max = self.max_batch;
        config.wal = config.wal.segment_bytes(self.wal_segment_bytes);
        config.validate().map_err(|err| bad("engine", err.to_string()))?;
        config.models.runtime_path = self.model_runtime.clone();
        Ok(config)
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// The configuration as TOML, the token hidden.
    pub fn to_toml(&self) -> String {
        let mut shown = self.clone();
        if shown.token.is_some() {
            shown.token = Some("<set>".into());
        }
        toml::to_string(&shown).unwrap_or_else(|err| format!("# cannot render: {err}\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_loopback_needs_a_token() {
        let mut config = ServeConfig { listen: "0.0.0.0:8089".into(), ..ServeConfig::default() };
        assert!(config.validate().is_err_and(|err| err.field == "listen"));
        config.token = Some("a-long-enough-secret".into());
        assert!(config.validate().is_ok());
        assert!(ServeConfig::default().validate().is_ok());
    }

    #[test]
    fn toml_round_trips_and_rejects_unknown_keys() {
        let config = ServeConfig { max_n: 50, ..ServeConfig::default() };
        let text = toml::to_string(&config).unwrap_or_default();
        assert_eq!(toml::from_str::<ServeConfig>(&text).ok(), Some(config));
        assert!(toml::from_str::<ServeConfig>("no_such_key = 1").is_err());
        assert!(ServeConfig { sync: "sometimes".into(), ..ServeConfig::default() }.validate().is_err());
    }
}
