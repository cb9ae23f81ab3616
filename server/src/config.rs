//! `recwal serve`'s one configuration: `[server]` (this file's
//! `ServerConfig`) and `[engine]` (the engine's own `EngineConfig`, every
//! log, event, algorithm, checkpoint and model setting), one typed
//! `Deserialize` value. Layers, each over the one before, merged by
//! `figment`: the defaults, a TOML file (`--config`), `RECWAL_<SECTION>__<KEY>`
//! environment variables (`RECWAL_ENGINE__WAL__SYNC`), then flags (the
//! named ones, which also read their old flat variables such as
//! `RECWAL_SYNC`, and `--set KEY=VALUE` for any key). Unknown keys are
//! refused with the valid ones at that level; `validate` checks every rule,
//! and an error names the key (`engine.wal.sync`), the rule and the source.
//!
//! Adding a key is one change: a field of `ServerConfig` here, or of
//! `EngineConfig` (or one of its parts) in the engine, with its default
//! and its rule; then its row in docs/SERVER.md, which
//! `docs_list_every_key_with_its_default` requires.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use recwal::wal::{SyncPolicy, WalError};
use recwal::{EngineConfig, EngineError};
use serde::{Deserialize, Serialize};

/// Everything `serve` reads.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeConfig {
    /// The HTTP server.
    pub server: ServerConfig,
    /// The engine: `[engine]`, `[engine.wal]`, `[engine.weights]`,
    /// `[engine.checkpoint]`, `[engine.models]`, … (see `EngineConfig`).
    pub engine: EngineConfig,
    /// Replicas on NATS JetStream (`src/cluster/`, docs/CLUSTER.md).
    pub cluster: crate::cluster::ClusterConfig,
    /// Where each key that is not a default was set (dotted key → file,
    /// variable or flag), for messages.
    #[serde(skip)]
    pub origins: BTreeMap<String, String>,
}

/// `[server]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on. Loopback by default; any other address needs a token.
    pub listen: String,
    /// The engine's data directory.
    pub data_dir: PathBuf,
    /// Bearer token required by every endpoint except /healthz and /readyz.
    pub token: Option<String>,
    /// Largest request body (JSON), bytes.
    pub body_limit_bytes: usize,
    /// Largest model upload, bytes.
    pub model_limit_bytes: usize,
    /// Requests taking longer are answered 503.
    pub request_timeout_ms: u64,
    /// Most items one request may ask for.
    pub max_n: usize,
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
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8089".into(),
            data_dir: PathBuf::from("./recwal-data"),
            token: None,
            body_limit_bytes: 1 << 20,
            model_limit_bytes: 256 << 20,
            request_timeout_ms: 10_000,
            max_n: recwal::N_MAX,
            concurrency: 512,
            header_read_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            body_read_timeout_ms: 30_000,
            max_connections: 4096,
            fd_reserve: 128,
            snapshot_on_shutdown: true,
            log_format: "auto".into(),
        }
    }
}

/// Shortest token accepted, in characters.
pub const TOKEN_CHARS_MIN: usize = 16;
/// Fewest descriptors `fd_reserve` may keep for the engine.
pub const FD_RESERVE_MIN: u64 = 16;

/// The prefix of the environment variables that set keys.
pub const ENV_PREFIX: &str = "RECWAL_";
/// What separates the parts of a key in a variable's name.
pub const ENV_SEPARATOR: &str = "__";

/// Keys of the flat file format before issue 14, and where each went.
const MOVED_KEYS: &[(&str, &str)] = &[
    ("listen", "[server] listen"),
    ("data_dir", "[server] data_dir"),
    ("token", "[server] token"),
    ("sync", "[engine.wal] sync"),
    ("body_limit_bytes", "[server] body_limit_bytes"),
    ("model_limit_bytes", "[server] model_limit_bytes"),
    ("request_timeout_ms", "[server] request_timeout_ms"),
    ("max_n", "[server] max_n"),
    ("max_batch", "[engine] batch_events_max"),
    ("concurrency", "[server] concurrency"),
    ("header_read_timeout_ms", "[server] header_read_timeout_ms"),
    ("idle_timeout_ms", "[server] idle_timeout_ms"),
    ("body_read_timeout_ms", "[server] body_read_timeout_ms"),
    ("max_connections", "[server] max_connections"),
    ("fd_reserve", "[server] fd_reserve"),
    ("snapshot_on_shutdown", "[server] snapshot_on_shutdown"),
    ("log_format", "[server] log_format"),
    ("wal_segment_bytes", "[engine.wal] segment_bytes"),
    ("wal_recovery", "[engine.wal] recovery"),
    ("model_runtime", "[engine.models] runtime_path"),
];

/// A configuration error: the key, the rule, and where the value came from.
#[derive(Debug, thiserror::Error)]
#[error("configuration {key}: {rule}{}", source_suffix(.origin))]
pub struct ConfigError {
    /// The key, dotted (`engine.wal.sync`), or `--config` for the file itself.
    pub key: String,
    /// The rule it broke.
    pub rule: String,
    /// The layer that set it (`file x.toml`, `RECWAL_…`, `--set …`), when known.
    pub origin: Option<String>,
}

fn source_suffix(origin: &Option<String>) -> String {
    origin.as_ref().map(|origin| format!(" (set by {origin})")).unwrap_or_default()
}

fn bad(key: &str, rule: impl Into<String>) -> ConfigError {
    ConfigError { key: key.to_string(), rule: rule.into(), origin: None }
}

/// The layers above the defaults, as given.
#[derive(Debug, Default)]
pub struct Sources {
    /// The TOML file.
    pub file: Option<PathBuf>,
    /// Environment variables (all of them; those named
    /// `RECWAL_<SECTION>__<KEY>` are read).
    pub env: Vec<(String, String)>,
    /// Flags: (key, value, how it was given), in order; a later one wins.
    pub flags: Vec<(String, String, String)>,
}

/// `--set KEY=VALUE` pairs as the flags of [`Sources`] (`serve`, `import`).
pub fn set_flags(pairs: &[String]) -> Result<Vec<(String, String, String)>, ConfigError> {
    pairs
        .iter()
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) => Ok((key.trim().to_string(), value.to_string(), format!("--set {pair}"))),
            None => Err(ConfigError {
                key: pair.clone(),
                rule: "--set takes KEY=VALUE".into(),
                origin: Some(format!("--set {pair}")),
            }),
        })
        .collect()
}

/// One layer: its values and a name for messages.
struct Layer {
    name: String,
    dict: Dict,
    /// Where each key was set (dotted key → its variable or flag).
    origins: BTreeMap<String, String>,
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.name.clone())
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.dict.clone()))
    }
}

impl Layer {
    fn new(name: impl Into<String>) -> Layer {
        Layer { name: name.into(), dict: Dict::new(), origins: BTreeMap::new() }
    }

    /// Sets the dotted `key` to a string (typed later: the extraction reads
    /// numbers and booleans from strings).
    fn set(&mut self, key: &str, value: String, origin: String) -> Result<(), ConfigError> {
        let parts: Vec<&str> = key.split('.').collect();
        if parts.iter().any(|part| part.is_empty()) {
            return Err(ConfigError { key: key.into(), rule: "is not a key".into(), origin: Some(origin) });
        }
        let mut dict = &mut self.dict;
        for part in &parts[..parts.len() - 1] {
            let entry = dict.entry((*part).to_string()).or_insert_with(|| Value::from(Dict::new()));
            if entry.as_dict().is_none() {
                *entry = Value::from(Dict::new());
            }
            dict = match entry {
                Value::Dict(_, inner) => inner,
                _ => return Err(bad(key, "is not a key")),
            };
        }
        if let Some(last) = parts.last() {
            dict.insert((*last).to_string(), Value::from(value));
        }
        self.origins.insert(key.to_string(), origin);
        Ok(())
    }
}

impl ServeConfig {
    /// Defaults, then each source in turn; unknown keys and values of the
    /// wrong type are refused, naming the key and its source. The rules are
    /// checked by `validate`.
    pub fn load(sources: &Sources) -> Result<ServeConfig, ConfigError> {
        let mut layers = Vec::new();
        if let Some(path) = &sources.file {
            layers.push(file_layer(path)?);
        }
        let mut env = Layer::new("the environment");
        for (name, value) in &sources.env {
            let Some(rest) = name.strip_prefix(ENV_PREFIX) else { continue };
            // Only nested names are keys: RECWAL_DATA_DIR, RECWAL_SERVER (the
            // tools' server URL) and the like are flags' variables.
            if !rest.contains(ENV_SEPARATOR) {
                continue;
            }
            let key = rest.split(ENV_SEPARATOR).map(str::to_ascii_lowercase).collect::<Vec<_>>().join(".");
            env.set(&key, value.clone(), name.clone())?;
        }
        layers.push(env);
        let mut flags = Layer::new("the command line");
        for (key, value, origin) in &sources.flags {
            flags.set(key, value.clone(), origin.clone())?;
        }
        layers.push(flags);

        let mut figment = Figment::from(figment::providers::Serialized::defaults(ServeConfig::default()));
        for layer in &layers {
            figment =
                figment.merge(Layer { name: layer.name.clone(), dict: layer.dict.clone(), origins: BTreeMap::new() });
        }
        let mut config = figment.extract_lossy::<ServeConfig>().map_err(|err| from_figment(err, &layers))?;
        for layer in layers {
            config.origins.extend(layer.origins);
        }
        Ok(config)
    }

    /// Checks every rule; the address it will listen on. The error names
    /// the key, the rule and where the value was set.
    pub fn validate(&self) -> Result<SocketAddr, ConfigError> {
        self.check_rules().map_err(|mut err| {
            err.origin = err.origin.take().or_else(|| origin_of(&self.origins, &err.key));
            err
        })
    }

    fn check_rules(&self) -> Result<SocketAddr, ConfigError> {
        let server = &self.server;
        let addr: SocketAddr = server
            .listen
            .parse()
            .map_err(|err| bad("server.listen", format!("{:?} is not an address:port: {err}", server.listen)))?;
        if !addr.ip().is_loopback() && server.token.as_deref().is_none_or(str::is_empty) {
            return Err(bad(
                "server.listen",
                format!("{addr} is not a loopback address: set a token (--token or RECWAL_TOKEN) to listen there"),
            ));
        }
        if let Some(token) = server.token.as_deref() {
            check_token(token)?;
        }
        if !["auto", "human", "json"].contains(&server.log_format.as_str()) {
            return Err(bad("server.log_format", format!("{:?}: must be auto, human or json", server.log_format)));
        }
        for (key, value) in [
            ("server.body_limit_bytes", server.body_limit_bytes),
            ("server.model_limit_bytes", server.model_limit_bytes),
            ("server.concurrency", server.concurrency),
            ("server.max_connections", server.max_connections),
        ] {
            if value == 0 {
                return Err(bad(key, "must be ≥ 1"));
            }
        }
        if server.max_n == 0 || server.max_n > recwal::N_MAX {
            return Err(bad("server.max_n", format!("must be 1–{}, got {}", recwal::N_MAX, server.max_n)));
        }
        for (key, value) in [
            ("server.request_timeout_ms", server.request_timeout_ms),
            ("server.header_read_timeout_ms", server.header_read_timeout_ms),
            ("server.idle_timeout_ms", server.idle_timeout_ms),
            ("server.body_read_timeout_ms", server.body_read_timeout_ms),
        ] {
            if value == 0 {
                return Err(bad(key, "must be ≥ 1"));
            }
        }
        if server.fd_reserve < FD_RESERVE_MIN {
            return Err(bad(
                "server.fd_reserve",
                format!("must be ≥ {FD_RESERVE_MIN}: the engine needs descriptors for its log, snapshots and models"),
            ));
        }
        self.engine.validate().map_err(engine_error)?;
        self.cluster.validate(self.engine.feedback.ttl.is_some())?;
        Ok(addr)
    }

    /// The log's sync policy.
    pub fn sync_policy(&self) -> SyncPolicy {
        self.engine.wal.sync_policy
    }

    /// The engine's configuration.
    pub fn engine(&self) -> Result<EngineConfig, ConfigError> {
        self.engine.validate().map_err(engine_error)?;
        Ok(self.engine.clone())
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.server.request_timeout_ms)
    }

    /// The configuration as TOML, the token hidden.
    pub fn to_toml(&self) -> String {
        let mut shown = self.clone();
        if shown.server.token.is_some() {
            shown.server.token = Some("<set>".into());
        }
        // Through JSON: f32 settings print as written (0.85, not
        // 0.8500000238418579), and unset options are left out.
        match serde_json::to_value(&shown).map(tidy).map(|value| toml::to_string(&value)) {
            Ok(Ok(text)) => text,
            Ok(Err(err)) => format!("# cannot render: {err}\n"),
            Err(err) => format!("# cannot render: {err}\n"),
        }
    }

    /// Every key (dotted) with its value, unset options as `null`, an
    /// empty table (custom kinds) as one key.
    pub fn keys(&self) -> BTreeMap<String, serde_json::Value> {
        let mut keys = BTreeMap::new();
        if let Ok(value) = serde_json::to_value(self) {
            flatten("", &tidy_floats(value), &mut keys);
        }
        keys
    }
}

fn flatten(prefix: &str, value: &serde_json::Value, into: &mut BTreeMap<String, serde_json::Value>) {
    match value {
        serde_json::Value::Object(map) if !map.is_empty() => {
            for (key, inner) in map {
                let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                flatten(&path, inner, into);
            }
        }
        _ => {
            into.insert(prefix.to_string(), value.clone());
        }
    }
}

/// Unset options left out, floats as written.
fn tidy(value: serde_json::Value) -> serde_json::Value {
    match tidy_floats(value) {
        serde_json::Value::Object(map) => {
            map.into_iter().filter(|(_, inner)| !inner.is_null()).map(|(key, inner)| (key, tidy(inner))).collect()
        }
        other => other,
    }
}

/// Every float setting is an `f32`, which JSON widens to the nearest
/// `f64` (0.85 becomes 0.8500000238418579): back to the `f32`'s shortest
/// decimal form.
fn tidy_floats(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => map.into_iter().map(|(key, inner)| (key, tidy_floats(inner))).collect(),
        serde_json::Value::Number(number) if number.is_f64() => {
            let wide = number.as_f64().unwrap_or_default();
            let narrow = wide as f32;
            match (f64::from(narrow) == wide).then(|| narrow.to_string().parse::<f64>().ok()).flatten() {
                Some(short) => serde_json::json!(short),
                None => serde_json::json!(wide),
            }
        }
        other => other,
    }
}

/// The TOML file as a layer; a key of the old flat format is refused,
/// naming where it went.
fn file_layer(path: &Path) -> Result<Layer, ConfigError> {
    let source = Some(format!("file {}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|err| ConfigError {
        key: "--config".into(),
        rule: err.to_string(),
        origin: source.clone(),
    })?;
    let table: toml::Table = toml::from_str(&text).map_err(|err| ConfigError {
        key: "--config".into(),
        rule: err.to_string(),
        origin: source.clone(),
    })?;
    for key in table.keys() {
        if let Some((_, moved)) = MOVED_KEYS.iter().find(|(old, _)| old == key) {
            return Err(ConfigError {
                key: key.clone(),
                rule: format!("moved: write it as {moved} (every key is now in a section; docs/SERVER.md)"),
                origin: source,
            });
        }
    }
    let value = Value::serialize(&table).map_err(|err| ConfigError {
        key: "--config".into(),
        rule: err.to_string(),
        origin: source.clone(),
    })?;
    let mut layer = Layer::new(format!("file {}", path.display()));
    layer.dict = value.into_dict().unwrap_or_default();
    let mut keys = BTreeMap::new();
    if let Ok(json) = serde_json::to_value(&table) {
        flatten("", &json, &mut keys);
    }
    layer.origins = keys.into_keys().map(|key| (key, format!("file {}", path.display()))).collect();
    Ok(layer)
}

/// A figment error as a `ConfigError`: the dotted key, the rule (with the
/// valid keys for an unknown one) and the layer that set it.
fn from_figment(err: figment::Error, layers: &[Layer]) -> ConfigError {
    use figment::error::Kind;
    let mut path = err.path.clone();
    let rule = match &err.kind {
        Kind::UnknownField(found, expected) => {
            if path.last() != Some(found) {
                path.push(found.clone());
            }
            format!("unknown key; the keys here are {}", expected.join(", "))
        }
        Kind::UnknownVariant(found, expected) => {
            format!("{found:?}: must be one of {}", expected.join(", "))
        }
        Kind::InvalidType(actual, expected) => format!("{actual}: expected {expected}"),
        Kind::InvalidValue(actual, expected) => format!("{actual}: expected {expected}"),
        other => other.to_string(),
    };
    let key = path.join(".");
    // The highest layer that sets the key (or a key below it) set it.
    let source = layers.iter().rev().find_map(|layer| origin_of(&layer.origins, &key));
    ConfigError { key, rule, origin: source }
}

/// Who set `key`, or a key below it.
fn origin_of(origins: &BTreeMap<String, String>, key: &str) -> Option<String> {
    let below = format!("{key}.");
    origins.iter().find(|(set, _)| set.as_str() == key || set.starts_with(&below)).map(|(_, origin)| origin.clone())
}

/// The engine's and the log's rule errors, named by their keys.
fn engine_error(err: EngineError) -> ConfigError {
    let keys = ServeConfig::default().keys();
    match err {
        EngineError::InvalidConfig { field, rule } => {
            let key = format!("engine.{field}");
            let key = if keys.contains_key(&key) || !keys.contains_key(&format!("{key}_ms")) {
                key
            } else {
                format!("{key}_ms")
            };
            bad(&key, rule)
        }
        EngineError::Wal(WalError::InvalidConfig { field, rule }) => {
            let key = match field {
                "sync_policy.max_delay" => "sync_batch_delay_us",
                "sync_policy.max_bytes" => "sync_batch_bytes",
                other => other,
            };
            bad(&format!("engine.wal.{key}"), rule)
        }
        other => bad("engine", other.to_string()),
    }
}

/// A token is sent as `Authorization: Bearer <token>`, and clients and
/// proxies trim header values: one with blanks at either end (or only
/// blanks) could never be presented as configured, so every protected route
/// would answer 401 to everyone. Characters outside visible ASCII cannot be
/// sent in a header value at all. A short token can be guessed.
fn check_token(token: &str) -> Result<(), ConfigError> {
    const KEY: &str = "server.token";
    if token.trim().is_empty() {
        return Err(bad(KEY, "is empty or only whitespace: no client could present it; set a real secret"));
    }
    if token.trim() != token {
        return Err(bad(
            KEY,
            "has leading or trailing whitespace, which HTTP clients and proxies strip from header values, \
             so no client could present it as configured",
        ));
    }
    if let Some(bad_char) = token.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(bad(
            KEY,
            format!(
                "holds {bad_char:?}: only visible ASCII characters (no spaces or control characters) \
                 can be sent in an Authorization header"
            ),
        ));
    }
    let chars = token.chars().count();
    if chars < TOKEN_CHARS_MIN {
        return Err(bad(
            KEY,
            format!("is {chars} characters: at least {TOKEN_CHARS_MIN} are required, so that it cannot be guessed"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
