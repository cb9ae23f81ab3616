//! `recwal models …`: the model registry of a data directory (the engine
//! opened here) or of a running server (`--server`, through its admin
//! plane): list, add, activate, roll back, and versions side by side
//! (canary, shadow, promote, retire; docs/MODELS.md).

use std::io::Write;
use std::process::ExitCode;

use recwal::model::{ModelInfo, ModelStatus};
use recwal::{Engine, RouteChange};

use crate::{client, ModelsCommand};

macro_rules! out {
    ($($arg:tt)*) => {
        writeln!(std::io::stdout().lock(), $($arg)*).map_err(|err| format!("writing to stdout: {err}"))
    };
}

/// What a command answers: versions, or the ranking side's status.
enum Shown {
    Versions(Vec<ModelInfo>),
    Status(Box<ModelStatus>),
}

/// `percent` (1–99) as the engine's per mille.
fn per_mille(percent: u8) -> Result<u16, String> {
    match percent {
        1..=99 => Ok(u16::from(percent) * 10),
        _ => Err(format!("--percent must be 1–99, got {percent}")),
    }
}

/// Against a running server.
pub fn remote(remote: &client::Remote, command: ModelsCommand, json: bool) -> Result<ExitCode, String> {
    let json_type = "application/json";
    let call = |method: &str, path: &str, body: String| remote.call(method, path, json_type, body.as_bytes());
    let versions = |answer: serde_json::Value| -> Result<Shown, String> {
        let infos = match answer {
            serde_json::Value::Array(_) => serde_json::from_value(answer).map_err(|err| err.to_string())?,
            other => vec![serde_json::from_value(other).map_err(|err| err.to_string())?],
        };
        Ok(Shown::Versions(infos))
    };
    let status = |answer: serde_json::Value| -> Result<Shown, String> {
        Ok(Shown::Status(Box::new(serde_json::from_value(answer).map_err(|err| err.to_string())?)))
    };
    let shown = match command {
        ModelsCommand::List => versions(call("GET", "/admin/models", String::new())?["models"].take())?,
        ModelsCommand::Add { file } => {
            let bytes = std::fs::read(&file).map_err(|err| format!("{}: {err}", file.display()))?;
            versions(remote.call("POST", "/admin/models", "application/octet-stream", &bytes)?)?
        }
        ModelsCommand::Activate { version } => {
            versions(call("POST", &format!("/admin/models/{version}/activate"), String::new())?)?
        }
        ModelsCommand::Rollback => versions(call("POST", "/admin/models/rollback", String::new())?)?,
        ModelsCommand::Status => status(call("GET", "/admin/models/status", String::new())?)?,
        ModelsCommand::Canary { version, percent } => {
            per_mille(percent)?;
            let body = serde_json::json!({ "version": version, "percent": percent }).to_string();
            status(call("PUT", "/admin/models/canary", body)?)?
        }
        ModelsCommand::EndCanary => status(call("DELETE", "/admin/models/canary", String::new())?)?,
        ModelsCommand::Promote => versions(call("POST", "/admin/models/canary/promote", String::new())?)?,
        ModelsCommand::Shadow { version } => {
            let body = serde_json::json!({ "version": version }).to_string();
            status(call("PUT", "/admin/models/shadow", body)?)?
        }
        ModelsCommand::EndShadow => status(call("DELETE", "/admin/models/shadow", String::new())?)?,
        ModelsCommand::Retire { version } => {
            versions(call("DELETE", &format!("/admin/models/{version}"), String::new())?)?
        }
    };
    show(&shown, json)?;
    Ok(ExitCode::SUCCESS)
}

/// On a data directory (the engine opened by the caller; closed here).
pub fn local(engine: Engine, command: ModelsCommand, json: bool) -> Result<ExitCode, String> {
    let text = |err: recwal::EngineError| err.to_string();
    let shown = match command {
        ModelsCommand::List => Shown::Versions(engine.models()),
        ModelsCommand::Add { file } => Shown::Versions(vec![engine.add_model_file(&file).map_err(text)?]),
        ModelsCommand::Activate { version } => Shown::Versions(vec![engine.activate_model(version).map_err(text)?]),
        ModelsCommand::Rollback => Shown::Versions(vec![engine.rollback_model().map_err(text)?]),
        ModelsCommand::Status => Shown::Status(Box::new(engine.model_status())),
        ModelsCommand::Canary { version, percent } => {
            let change = RouteChange::Canary { version, per_mille: per_mille(percent)? };
            Shown::Status(Box::new(routes(&engine, change)?))
        }
        ModelsCommand::EndCanary => Shown::Status(Box::new(routes(&engine, RouteChange::ClearCanary)?)),
        ModelsCommand::Promote => Shown::Versions(vec![engine.promote_canary().map_err(text)?]),
        ModelsCommand::Shadow { version } => Shown::Status(Box::new(routes(&engine, RouteChange::Shadow(version))?)),
        ModelsCommand::EndShadow => Shown::Status(Box::new(routes(&engine, RouteChange::ClearShadow)?)),
        ModelsCommand::Retire { version } => Shown::Versions(vec![engine.retire_model(version).map_err(text)?]),
    };
    show(&shown, json)?;
    engine.close().map_err(text)?;
    Ok(ExitCode::SUCCESS)
}

fn routes(engine: &Engine, change: RouteChange) -> Result<ModelStatus, String> {
    let changed = match change {
        RouteChange::Canary { version, per_mille } => engine.set_canary(version, per_mille),
        RouteChange::ClearCanary => engine.clear_canary(),
        RouteChange::Shadow(version) => engine.set_shadow(version),
        RouteChange::ClearShadow => engine.clear_shadow(),
    };
    changed.map_err(|err| err.to_string())
}

fn show(shown: &Shown, json: bool) -> Result<(), String> {
    match (shown, json) {
        (Shown::Versions(infos), true) => out!("{}", serde_json::to_string(infos).map_err(|err| err.to_string())?),
        (Shown::Status(status), true) => out!("{}", serde_json::to_string(status).map_err(|err| err.to_string())?),
        (Shown::Versions(infos), false) => infos.iter().try_for_each(show_version),
        (Shown::Status(status), false) => show_status(status),
    }
}

fn show_version(info: &ModelInfo) -> Result<(), String> {
    out!(
        "v{}  sha256 {}  {} bytes  added LSN {}  activations {}{}{}",
        info.version,
        info.sha256,
        info.bytes,
        info.lsn_added,
        info.activations.len(),
        if info.active { "  ACTIVE" } else { "" },
        if info.retired { "  retired" } else { "" }
    )
}

fn show_status(status: &ModelStatus) -> Result<(), String> {
    let version = |version: Option<u32>| version.map_or("none".to_string(), |version| format!("v{version}"));
    let route = |route: &Option<recwal::model::RouteStatus>| match route {
        None => "none".to_string(),
        Some(route) => format!(
            "v{}{}{}",
            route.version,
            route.percent.map(|percent| format!(" for {percent}% of users")).unwrap_or_default(),
            if route.loaded { "" } else { " (not loaded)" }
        ),
    };
    out!("active {}  serving {}", version(status.active), version(status.serving))?;
    out!("canary {}  shadow {}", route(&status.canary), route(&status.shadow))?;
    if let Some(fault) = status.fault.as_ref().or(status.route_fault.as_ref()) {
        out!("fault: {fault}")?;
    }
    Ok(())
}
