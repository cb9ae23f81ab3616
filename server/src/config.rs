//! `recwal serve`'s configuration: defaults, then a TOML file (`--config`),
//! then environment variables and flags (clap gives each flag an `RECWAL_*`
//! variable; a flag wins over its variable). `--print-config` shows the
//! result.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use recwal::wal::{RecoveryMode, SyncPolicy};
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
    /// A request head (line and header fields) must be complete this long
    /// after its first byte; otherwise 408 and the connection is closed.
    pub header_read_timeout_ms: u64,
    /// A connection with no request in flight and no bytes moving this long
    /// is closed.
    pub idle_timeout_ms: u64,
    /// A request body must be complete this long after its head; otherwise
    /// 408 (not counted in `request_timeout_ms`).
    pub body_read_timeout_ms: u64,
    /// Most open connections; also at most `RLIMIT_NOFILE` − `fd_reserve`.
    /// At the cap a new connection evicts the longest-idle one.
    pub max_connections: usize,
    /// File descriptors kept for the engine (log, snapshots, models), not
    /// given to connections.
    pub fd_reserve: u64,
    /// Write a snapshot on SIGTERM / SIGINT before exiting.
    pub snapshot_on_shutdown: bool,
    /// "auto" (human in a terminal, JSON otherwise), "human" or "json".
    pub log_format: String,
    /// Size of each log segment file, bytes (the log grows and recycles
    /// whole segments; see docs/DURABILITY.md).
    pub wal_segment_bytes: u64,
    /// What a start does about a damaged log (docs/DURABILITY.md, "Damage
    /// at rest"): "tolerate-corrupted-tail" (default), "point-in-time" (the
    /// way out named in every refusal: keep the longest valid prefix, drop
    /// and report the rest) or "absolute-consistency".
    pub wal_recovery: String,
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
            // The log's own default, by name.
            sync: sync_policy_name(recwal::wal::WalConfig::default().sync_policy).into(),
            body_limit_bytes: 1 << 20,
            model_limit_bytes: 256 << 20,
            request_timeout_ms: 10_000,
            max_n: recwal::N_MAX,
            max_batch: 10_000,
            concurrency: 512,
            header_read_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            body_read_timeout_ms: 30_000,
            max_connections: 4096,
            fd_reserve: 128,
            snapshot_on_shutdown: true,
            log_format: "auto".into(),
            model_runtime: None,
            wal_segment_bytes: recwal::wal::WalConfig::default().segment_bytes,
            wal_recovery: "tolerate-corrupted-tail".into(),
        }
    }
}

/// Shortest token accepted, in characters.
pub const TOKEN_CHARS_MIN: usize = 16;
/// Fewest descriptors `fd_reserve` may keep for the engine.
pub const FD_RESERVE_MIN: u64 = 16;

/// A token is sent as `Authorization: Bearer <token>`, and clients and
/// proxies trim header values: one with blanks at either end (or only
/// blanks) could never be presented as configured, so every protected route
/// would answer 401 to everyone. Characters outside visible ASCII cannot be
/// sent in a header value at all. A short token can be guessed.
fn check_token(token: &str) -> Result<(), ConfigError> {
    if token.trim().is_empty() {
        return Err(bad("token", "is empty or only whitespace: no client could present it; set a real secret"));
    }
    if token.trim() != token {
        return Err(bad(
            "token",
            "has leading or trailing whitespace, which HTTP clients and proxies strip from header values, \
             so no client could present it as configured",
        ));
    }
    if let Some(bad_char) = token.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(bad(
            "token",
            format!(
                "holds {bad_char:?}: only visible ASCII characters (no spaces or control characters) \
                 can be sent in an Authorization header"
            ),
        ));
    }
    let chars = token.chars().count();
    if chars < TOKEN_CHARS_MIN {
        return Err(bad(
            "token",
            format!("is {chars} characters: at least {TOKEN_CHARS_MIN} are required, so that it cannot be guessed"),
        ));
    }
    Ok(())
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

/// Every sync policy the server offers, in the order its help lists them
/// (`batch` with the log's default parameters).
const SYNC_POLICIES: [SyncPolicy; 3] = [SyncPolicy::Always, SyncPolicy::batch_default(), SyncPolicy::Never];

/// The name `sync` gives `policy`. Exhaustive on purpose: a new policy does
/// not compile until it is named here; list it in `SYNC_POLICIES` above at
/// the same time (`sync_policies_round_trip` checks the two agree).
fn sync_policy_name(policy: SyncPolicy) -> &'static str {
    match policy {
        SyncPolicy::Always => "always",
        SyncPolicy::Batch { .. } => "batch",
        SyncPolicy::Never => "never",
    }
}

/// Parses a sync policy name into the log's enum.
pub fn parse_sync_policy(name: &str) -> Result<SyncPolicy, ConfigError> {
    SYNC_POLICIES.into_iter().find(|policy| sync_policy_name(*policy) == name).ok_or_else(|| {
        let names: Vec<&str> = SYNC_POLICIES.into_iter().map(sync_policy_name).collect();
        bad("sync", format!("{name:?}: must be one of {}", names.join(", ")))
    })
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
        if let Some(token) = self.token.as_deref() {
            check_token(token)?;
        }
        self.sync_policy()?;
        self.recovery_mode()?;
        if !["auto", "human", "json"].contains(&self.log_format.as_str()) {
            return Err(bad("log_format", "must be auto, human or json"));
        }
        for (field, value) in [
            ("body_limit_bytes", self.body_limit_bytes),
            ("model_limit_bytes", self.model_limit_bytes),
            ("max_batch", self.max_batch),
            ("concurrency", self.concurrency),
            ("max_connections", self.max_connections),
        ] {
            if value == 0 {
                return Err(bad(field, "must be ≥ 1"));
            }
        }
        if self.max_n == 0 || self.max_n > recwal::N_MAX {
            return Err(bad("max_n", format!("must be 1–{}", recwal::N_MAX)));
        }
        for (field, value) in [
            ("request_timeout_ms", self.request_timeout_ms),
            ("header_read_timeout_ms", self.header_read_timeout_ms),
            ("idle_timeout_ms", self.idle_timeout_ms),
            ("body_read_timeout_ms", self.body_read_timeout_ms),
        ] {
            if value == 0 {
                return Err(bad(field, "must be ≥ 1"));
            }
        }
        if self.fd_reserve < FD_RESERVE_MIN {
            return Err(bad(
                "fd_reserve",
                format!("must be ≥ {FD_RESERVE_MIN}: the engine needs descriptors for its log, snapshots and models"),
            ));
        }
        Ok(addr)
    }

    /// The log's sync policy `sync` names; an unknown name is refused with
    /// the list of valid ones.
    pub fn sync_policy(&self) -> Result<SyncPolicy, ConfigError> {
        parse_sync_policy(&self.sync)
    }

    fn recovery_mode(&self) -> Result<RecoveryMode, ConfigError> {
        match self.wal_recovery.as_str() {
            "tolerate-corrupted-tail" => Ok(RecoveryMode::TolerateCorruptedTail),
            "point-in-time" => Ok(RecoveryMode::PointInTime),
            "absolute-consistency" => Ok(RecoveryMode::AbsoluteConsistency),
            other => Err(bad(
                "wal_recovery",
                format!("{other:?}: must be tolerate-corrupted-tail, point-in-time or absolute-consistency"),
            )),
        }
    }

    /// The engine's configuration.
    pub fn engine(&self) -> Result<EngineConfig, ConfigError> {
        let mut config = EngineConfig::default();
        config.wal = config.wal.sync_policy(self.sync_policy()?);
        config.batch_events_max = self.max_batch;
        config.wal = config.wal.segment_bytes(self.wal_segment_bytes).recovery_mode(self.recovery_mode()?);
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
    fn whitespace_only_short_or_padded_tokens_are_refused() {
        for (token, says) in [
            ("                    ", "whitespace"),
            ("\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t", "whitespace"),
            ("", "empty"),
            ("short-secret", "at least 16"),
            ("  a-long-enough-secret", "leading or trailing"),
            ("a-long-enough-secret\n", "leading or trailing"),
            ("a-long enough-secret", "visible ASCII"),
            ("ünïcödé-ünïcödé-ünïcödé", "visible ASCII"),
        ] {
            let config = ServeConfig { token: Some(token.into()), ..ServeConfig::default() };
            let err = config.validate().err().map(|err| err.to_string()).unwrap_or_default();
            assert!(err.starts_with("configuration token: ") && err.contains(says), "{token:?}: {err:?}");
        }
        let config = ServeConfig { token: Some("a-long-enough-secret".into()), ..ServeConfig::default() };
        assert!(config.validate().is_ok());
    }

    #[test]
    fn edge_limits_must_be_positive() {
        for config in [
            ServeConfig { header_read_timeout_ms: 0, ..ServeConfig::default() },
            ServeConfig { idle_timeout_ms: 0, ..ServeConfig::default() },
            ServeConfig { body_read_timeout_ms: 0, ..ServeConfig::default() },
            ServeConfig { max_connections: 0, ..ServeConfig::default() },
            ServeConfig { fd_reserve: 3, ..ServeConfig::default() },
        ] {
            assert!(config.validate().is_err(), "{config:?}");
        }
    }

    #[test]
    fn toml_round_trips_and_rejects_unknown_keys() {
        let config = ServeConfig { max_n: 50, ..ServeConfig::default() };
        let text = toml::to_string(&config).unwrap_or_default();
        assert_eq!(toml::from_str::<ServeConfig>(&text).ok(), Some(config));
        assert!(toml::from_str::<ServeConfig>("no_such_key = 1").is_err());
        assert!(ServeConfig { sync: "sometimes".into(), ..ServeConfig::default() }.validate().is_err());
        let unknown_recovery = ServeConfig { wal_recovery: "best-effort".into(), ..ServeConfig::default() };
        let refused = unknown_recovery.validate().err().map(|err| err.to_string()).unwrap_or_default();
        assert!(refused.contains("wal_recovery") && refused.contains("point-in-time"), "{refused}");
        let point_in_time = ServeConfig { wal_recovery: "point-in-time".into(), ..ServeConfig::default() };
        assert_eq!(point_in_time.engine().map(|config| config.wal.recovery_mode).ok(), Some(RecoveryMode::PointInTime));
    }

    #[test]
    fn sync_policies_round_trip() {
        for policy in SYNC_POLICIES {
            assert_eq!(parse_sync_policy(sync_policy_name(policy)).ok(), Some(policy));
        }
        assert_eq!(sync_policy_name(ServeConfig::default().sync_policy().unwrap_or(SyncPolicy::Never)), "batch");
    }

    #[test]
    fn an_unknown_sync_policy_is_refused_with_the_valid_names() {
        let config = ServeConfig { sync: "sometimes".into(), ..ServeConfig::default() };
        let err = config.validate().err().map(|err| err.to_string()).unwrap_or_default();
        assert!(err.contains("\"sometimes\": must be one of always, batch, never"), "{err}");
    }
}
