use super::*;

use serde_json::{json, Value as Json};

fn with_server(edit: impl FnOnce(&mut ServerConfig)) -> ServeConfig {
    let mut config = ServeConfig::default();
    edit(&mut config.server);
    config
}

fn load(file: Option<&str>, env: &[(&str, &str)], flags: &[(&str, &str)]) -> Result<ServeConfig, ConfigError> {
    let dir = tempfile::tempdir().map_err(|err| bad("test", err.to_string()))?;
    let path = dir.path().join("recwal.toml");
    if let Some(text) = file {
        std::fs::write(&path, text).map_err(|err| bad("test", err.to_string()))?;
    }
    let sources = Sources {
        file: file.map(|_| path.clone()),
        env: env.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect(),
        flags: flags.iter().map(|(key, value)| (key.to_string(), value.to_string(), format!("--set {key}"))).collect(),
    };
    ServeConfig::load(&sources)
}

#[test]
fn non_loopback_needs_a_token() {
    let config = with_server(|server| server.listen = "0.0.0.0:8089".into());
    assert!(config.validate().is_err_and(|err| err.key == "server.listen"));
    let config = with_server(|server| {
        server.listen = "0.0.0.0:8089".into();
        server.token = Some("a-long-enough-secret".into());
    });
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
        let config = with_server(|server| server.token = Some(token.into()));
        let err = config.validate().err().map(|err| err.to_string()).unwrap_or_default();
        assert!(err.starts_with("configuration server.token: ") && err.contains(says), "{token:?}: {err:?}");
    }
}

#[test]
fn edge_limits_must_be_positive() {
    for (key, value) in [
        ("server.header_read_timeout_ms", "0"),
        ("server.idle_timeout_ms", "0"),
        ("server.body_read_timeout_ms", "0"),
        ("server.max_connections", "0"),
        ("server.fd_reserve", "3"),
        ("server.max_n", "1001"),
        ("server.log_format", "xml"),
    ] {
        let config = load(None, &[], &[(key, value)]);
        let err = config.and_then(|config| config.validate()).err().map(|err| err.to_string()).unwrap_or_default();
        assert!(err.starts_with(&format!("configuration {key}: ")) && err.contains(key), "{key}={value}: {err}");
    }
}

#[test]
fn every_sync_policy_and_recovery_mode_is_reachable_by_name() {
    for (name, policy) in
        [("always", SyncPolicy::Always), ("batch", SyncPolicy::batch_default()), ("never", SyncPolicy::Never)]
    {
        let config = load(None, &[], &[("engine.wal.sync", name)]).ok();
        assert_eq!(config.map(|config| config.sync_policy()), Some(policy), "{name}");
    }
    let err = load(None, &[], &[("engine.wal.sync", "sometimes")]).err().map(|err| err.to_string()).unwrap_or_default();
    assert!(err.contains("engine.wal.sync") && err.contains("always, batch, never"), "{err}");
    let config = load(Some("[engine.wal]\nrecovery = \"point-in-time\"\n"), &[], &[]).ok();
    assert_eq!(config.map(|config| config.engine.wal.recovery_mode), Some(recwal::wal::RecoveryMode::PointInTime));
}

/// The engine's own rules run too, named by their keys.
#[test]
fn engine_rules_are_named_by_their_keys() {
    for (key, value, named) in [
        ("engine.itemrank.alpha", "1.5", "engine.itemrank.alpha"),
        ("engine.checkpoint.every_records", "0", "engine.checkpoint.every_records"),
        ("engine.checkpoint.log_per_snapshot_byte", "-1", "engine.checkpoint.log_per_snapshot_byte"),
        ("engine.checkpoint.log_per_snapshot_byte", "1e9", "engine.checkpoint.log_per_snapshot_byte"),
        ("engine.popularity.half_life_ms", "0", "engine.popularity.half_life_ms"),
        ("engine.wal.segments_initial", "0", "engine.wal.segments_initial"),
        ("engine.wal.sync_batch_delay_us", "0", "engine.wal.sync_batch_delay_us"),
        ("engine.weights.custom.share", "-1", "engine.weights.custom"),
        ("engine.models.sessions", "0", "engine.models.sessions"),
    ] {
        let err = load(None, &[], &[(key, value)])
            .and_then(|config| config.validate())
            .err()
            .map(|err| err.to_string())
            .unwrap_or_default();
        assert!(err.starts_with(&format!("configuration {named}")), "{key}={value}: {err}");
        assert!(err.contains(&format!("--set {key}")), "{key}={value}: the source is not named: {err}");
    }
}

/// A value for `key` other than its default, that the rules accept.
fn sample(key: &str, default: &Json) -> Json {
    match key {
        "server.listen" => json!("127.0.0.1:9090"),
        "server.data_dir" => json!("/srv/recwal"),
        "server.token" => json!("a-long-enough-secret"),
        "server.log_format" => json!("json"),
        "engine.wal.sync" => json!("always"),
        "engine.wal.recovery" => json!("point-in-time"),
        "engine.wal.record_bytes_max" => json!(4096),
        "engine.models.device" => json!("cuda:1"),
        "engine.models.runtime_path" => json!("/opt/onnxruntime/lib/libonnxruntime.so"),
        "engine.popularity.half_life_ms" => json!(86_400_000),
        "engine.feedback.ttl_ms" => json!(604_800_000),
        "engine.item_model.input" => json!("binary"),
        "engine.item_model.family" => json!("ials"),
        "engine.weights.custom" => json!({ "share": 3.5 }),
        "cluster.url" => json!("nats://127.0.0.1:4222,nats://127.0.0.1:4223"),
        "cluster.stream" => json!("RECWAL_TEST"),
        "cluster.subject" => json!("recwal.test.records"),
        _ => match default {
            Json::Bool(flag) => json!(!flag),
            Json::Number(number) if number.is_u64() => {
                let value = number.as_u64().unwrap_or_default();
                json!(if value >= 2 { value / 2 } else { value + 1 })
            }
            Json::Number(number) => {
                let value = number.as_f64().unwrap_or_default();
                json!(if value > 0.0 { value / 2.0 } else { 0.5 })
            }
            other => panic!("{key} (default {other}) needs a sample value in this test"),
        },
    }
}

/// A JSON leaf as a string, as a variable or `--set` gives it.
fn as_text(value: &Json) -> String {
    match value {
        Json::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Every key of the configuration type can be set from a file, from its
/// `RECWAL_…__…` variable and from `--set`, and each way lands in the typed
/// value that `serve` runs with (and prints), valid.
#[test]
fn every_key_is_reachable_from_a_file_a_variable_and_a_flag() {
    let defaults = ServeConfig::default().keys();
    assert!(defaults.len() > 50, "{} keys", defaults.len());
    for (key, default) in &defaults {
        let value = sample(key, default);
        assert_ne!(&value, default, "{key}: the sample is the default");
        // A table of custom kinds is set one kind at a time.
        let leaves: Vec<(String, Json)> = match &value {
            Json::Object(map) => map.iter().map(|(name, inner)| (format!("{key}.{name}"), inner.clone())).collect(),
            leaf => vec![(key.clone(), leaf.clone())],
        };
        let mut file = toml::Table::new();
        for (leaf, inner) in &leaves {
            let parts: Vec<&str> = leaf.split('.').collect();
            let mut table = &mut file;
            for part in &parts[..parts.len() - 1] {
                table = table
                    .entry(part.to_string())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                    .as_table_mut()
                    .unwrap_or_else(|| panic!("{leaf}"));
            }
            let inner = toml::Value::try_from(inner).unwrap_or_else(|err| panic!("{leaf}: {err}"));
            table.insert(parts[parts.len() - 1].to_string(), inner);
        }
        let text = toml::to_string(&file).unwrap_or_default();
        let env: Vec<(String, String)> = leaves
            .iter()
            .map(|(leaf, inner)| (format!("RECWAL_{}", leaf.replace('.', "__").to_ascii_uppercase()), as_text(inner)))
            .collect();
        let flags: Vec<(String, String)> = leaves.iter().map(|(leaf, inner)| (leaf.clone(), as_text(inner))).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect();
        let flags: Vec<(&str, &str)> = flags.iter().map(|(key, value)| (key.as_str(), value.as_str())).collect();
        for (how, loaded) in [
            ("file", load(Some(&text), &[], &[])),
            ("variable", load(None, &env, &[])),
            ("flag", load(None, &[], &flags)),
        ] {
            let config = loaded.unwrap_or_else(|err| panic!("{key} by {how}: {err}"));
            if let Err(err) = config.validate() {
                panic!("{key} by {how}: {err}");
            }
            let keys = config.keys();
            for (leaf, inner) in &leaves {
                assert_eq!(keys.get(leaf), Some(inner), "{key} by {how}");
            }
            let printed = config.to_toml();
            let shown: toml::Table = toml::from_str(&printed).unwrap_or_else(|err| panic!("{key}: {err}\n{printed}"));
            let found = key.split('.').try_fold(toml::Value::Table(shown), |value, part| value.get(part).cloned());
            assert!(found.is_some(), "{key} by {how}: not in --print-config:\n{printed}");
        }
    }
}

#[test]
fn what_print_config_prints_loads_back_to_the_same_configuration() {
    let config = load(Some("[engine.weights.custom]\nshare = 3.5\n[engine.wal]\nsync = \"never\"\n"), &[], &[])
        .unwrap_or_else(|err| panic!("{err}"));
    let dir = tempfile::tempdir().unwrap_or_else(|err| panic!("{err}"));
    let path = dir.path().join("printed.toml");
    std::fs::write(&path, config.to_toml()).unwrap_or_else(|err| panic!("{err}"));
    let again =
        ServeConfig::load(&Sources { file: Some(path), ..Sources::default() }).unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(again.keys(), config.keys());
}

const DOC_START: &str = "<!-- configuration keys: start (checked by server/src/config/tests.rs) -->";
const DOC_END: &str = "<!-- configuration keys: end -->";

/// A default as the docs write it.
fn doc_default(value: &Json) -> String {
    match value {
        Json::Null => "none".into(),
        Json::Object(map) if map.is_empty() => "{}".into(),
        other => other.to_string(),
    }
}

/// docs/SERVER.md lists exactly the keys of the configuration type, each
/// with its real default. `RECWAL_BLESS_DOCS=1` rewrites the table's key and
/// default columns (keeping each row's description; new rows say TODO).
#[test]
fn docs_list_every_key_with_its_default() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/SERVER.md");
    let doc = std::fs::read_to_string(&path).unwrap_or_default();
    let (Some(start), Some(end)) = (doc.find(DOC_START), doc.find(DOC_END)) else {
        panic!("docs/SERVER.md has no configuration table between {DOC_START:?} and {DOC_END:?}");
    };
    let table = &doc[start + DOC_START.len()..end];
    let mut documented: BTreeMap<String, (String, String)> = BTreeMap::new();
    for line in table.lines().filter(|line| line.starts_with("| `")) {
        let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
        if let [key, default, meaning] = cells[..] {
            documented.insert(key.trim_matches('`').to_string(), (default.to_string(), meaning.to_string()));
        } else {
            panic!("docs/SERVER.md: a row that is not `key` | default | meaning: {line}");
        }
    }
    let keys = ServeConfig::default().keys();
    let mut expected = String::from("\n| key | default | rule and meaning |\n|---|---|---|\n");
    let mut problems = Vec::new();
    for (key, default) in &keys {
        // A build with the engine's `cuda` feature defaults to the GPU; the
        // table documents the default build (and says so in the row).
        let default = match (key.as_str(), default) {
            ("engine.models.device", Json::String(device)) if device.starts_with("cuda") => &json!("cpu"),
            _ => default,
        };
        let cell = format!("`{}`", doc_default(default));
        let meaning = match documented.get(key) {
            Some((shown, meaning)) => {
                if shown != &cell {
                    problems.push(format!("{key}: documented default {shown}, real default {cell}"));
                }
                meaning.clone()
            }
            None => {
                problems.push(format!("{key}: not documented"));
                "TODO".into()
            }
        };
        expected.push_str(&format!("| `{key}` | {cell} | {meaning} |\n"));
    }
    for key in documented.keys().filter(|key| !keys.contains_key(*key)) {
        problems.push(format!("{key}: documented, but the configuration has no such key"));
    }
    if problems.is_empty() {
        return;
    }
    if std::env::var_os("RECWAL_BLESS_DOCS").is_some() {
        let blessed = format!("{}{DOC_START}{expected}{}", &doc[..start], &doc[end..]);
        std::fs::write(&path, blessed).unwrap_or_else(|err| panic!("{err}"));
    }
    panic!(
        "docs/SERVER.md's configuration table is out of date (RECWAL_BLESS_DOCS=1 rewrites it):\n{}",
        problems.join("\n")
    );
}

#[test]
fn cluster_rules_are_named_by_their_keys() {
    let refused = [
        (vec![("cluster.url", "http://127.0.0.1:4222")], "cluster.url"),
        (vec![("cluster.url", "nats://a:4222,")], "cluster.url"),
        (vec![("cluster.url", "nats://a:4222"), ("engine.feedback.ttl_ms", "86400000")], "cluster.url"),
        (vec![("cluster.replicas", "0")], "cluster.replicas"),
        (vec![("cluster.replicas", "6")], "cluster.replicas"),
        (vec![("cluster.stream", "a.b")], "cluster.stream"),
        (vec![("cluster.subject", "recwal.>")], "cluster.subject"),
        (vec![("cluster.apply_wait_ms", "0")], "cluster.apply_wait_ms"),
    ];
    for (flags, key) in refused {
        let config = load(None, &[], &flags).unwrap_or_else(|err| panic!("{flags:?}: {err}"));
        let err = config.validate().err().map(|err| err.key).unwrap_or_default();
        assert_eq!(err, key, "{flags:?}");
    }
    let config = load(None, &[], &[("cluster.url", "nats://127.0.0.1:4222, tls://n2.example:4222")])
        .unwrap_or_else(|err| panic!("{err}"));
    assert!(config.validate().is_ok());
    assert_eq!(config.cluster.urls(), ["nats://127.0.0.1:4222", "tls://n2.example:4222"]);
}
