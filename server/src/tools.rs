//! The command-line tools: `import`, `eval`, `wal inspect|verify`,
//! `checkpoint` and `models`. Every one that takes a data dir checks it
//! first (`datadir`): only `import` may create one, and none writes into a
//! path that is not a data dir.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use recwal::eval::Delimiter;
use recwal::wal::{RecoveryReport, WalError};
use recwal::{Engine, EngineConfig};
use tracing::info;

use crate::{datadir, models_cmd, Command, WalCommand};

/// `println!` that returns an error instead of panicking when stdout is
/// closed (`recwal wal inspect | head`) or its disk is full.
macro_rules! out {
    ($($arg:tt)*) => {
        writeln!(std::io::stdout().lock(), $($arg)*).map_err(|err| format!("writing to stdout: {err}"))
    };
}

/// Runs a tool (not `serve`).
pub(crate) fn run(command: Command) -> Result<ExitCode, String> {
    match command {
        Command::Serve(_) => Ok(ExitCode::SUCCESS),
        Command::Import(args) => import(&args),
        Command::Backup(args) => backup(&args),
        Command::Restore(args) => restore(&args),
        Command::Export(args) => export(&args),
        Command::Eval(args) => crate::eval_cmd::run(&args),
        Command::Wal { command } => wal(command),
        Command::Checkpoint { data_dir, remote, json, engine } => {
            if let Some(remote) = remote.remote()? {
                let info = remote.call("POST", "/admin/checkpoint", "application/json", b"")?;
                if json {
                    out!("{info}")?;
                    return Ok(ExitCode::SUCCESS);
                }
                if info["path"].is_null() {
                    out!("snapshot at LSN {}: the newest one already covers the log, nothing written", info["lsn"])?;
                    return Ok(ExitCode::SUCCESS);
                }
                out!(
                    "snapshot at LSN {} ({} bytes), {} segment(s) released",
                    info["lsn"],
                    info["bytes"],
                    info["segments_released"]
                )?;
                return Ok(ExitCode::SUCCESS);
            }
            let engine = open_existing(&data_dir, &engine)?;
            let info = engine.checkpoint().map_err(|err| err.to_string())?;
            if json {
                out!(
                    "{}",
                    serde_json::json!({
                        "lsn": info.lsn,
                        "path": info.path,
                        "bytes": info.bytes,
                        "segments_released": info.segments_released,
                    })
                )?;
            } else if info.path.is_none() {
                out!("snapshot at LSN {}: the newest one already covers the log, nothing written", info.lsn)?;
            } else {
                out!(
                    "snapshot at LSN {} ({} bytes), {} segment(s) released",
                    info.lsn,
                    info.bytes,
                    info.segments_released
                )?;
            }
            engine.close().map_err(|err| err.to_string())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Models { data_dir, remote, command, json, engine } => match remote.remote()? {
            Some(remote) => models_cmd::remote(&remote, command, json),
            None => models_cmd::local(open_existing(&data_dir, &engine)?, command, json),
        },
    }
}

/// The server's configuration, for a tool that opens a data dir itself
/// (`import`, `checkpoint`, `backup`, `models`): the engine must run with
/// the settings the server runs with, or what it writes differs. The dedup
/// window is one: replaying the log under a smaller window evicts ids, a
/// snapshot then keeps fewer, and retries the server would have refused
/// are accepted again.
#[derive(clap::Args, Clone, Debug, Default)]
pub(crate) struct EngineConfigArgs {
    /// The server's TOML configuration, whose `[engine]` the data dir is
    /// opened with (`RECWAL_ENGINE__…` variables apply too, as for
    /// `serve`). Unused with --server.
    #[arg(long, env = "RECWAL_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Any engine key, as KEY=VALUE (e.g. --set engine.dedup.max_ids=30000000).
    #[arg(long = "set", value_name = "KEY=VALUE", global = true)]
    set: Vec<String>,
}

impl EngineConfigArgs {
    /// The server's engine configuration (--config, `RECWAL_ENGINE__…`,
    /// --set), checked.
    pub(crate) fn load(&self) -> Result<EngineConfig, String> {
        let sources = crate::config::Sources {
            file: self.config.clone(),
            env: std::env::vars().collect(),
            flags: crate::config::set_flags(&self.set).map_err(|err| err.to_string())?,
        };
        let loaded = crate::config::ServeConfig::load(&sources).map_err(|err| err.to_string())?;
        loaded.engine().map_err(|err| err.to_string())
    }

    /// The engine configuration to open `data_dir` with: the server's
    /// (--config, `RECWAL_ENGINE__…`, --set), with the segment size the log
    /// was created with.
    pub(crate) fn engine_config(&self, data_dir: &Path) -> Result<EngineConfig, String> {
        let mut config = self.load()?;
        config.wal = fitted_to_log(config.wal, &data_dir.join("wal"))?;
        Ok(config)
    }
}

fn open(dir: &Path, engine: &EngineConfigArgs) -> Result<Engine, String> {
    let config = engine.engine_config(dir)?;
    Engine::open(dir, config).map_err(|err| format!("opening {}: {err}", dir.display()))
}

/// The log configuration a tool opens an existing log with: the defaults,
/// with the segment size the log was created with (a server may have been
/// configured with another one).
pub(crate) fn log_config(log: &Path) -> Result<recwal::wal::WalConfig, String> {
    fitted_to_log(EngineConfig::default().wal, log)
}

/// `config` with the segment size the log at `log` was created with (as it
/// is when there is no log yet).
fn fitted_to_log(config: recwal::wal::WalConfig, log: &Path) -> Result<recwal::wal::WalConfig, String> {
    match recwal::wal::log_segment_bytes(log) {
        Ok(Some(segment_bytes)) => Ok(config.segment_bytes(segment_bytes)),
        Ok(None) => Ok(config),
        Err(err) => Err(format!("reading {}: {err}", log.display())),
    }
}

/// Opens a data dir that must exist already.
fn open_existing(dir: &Path, engine: &EngineConfigArgs) -> Result<Engine, String> {
    let dir = datadir::existing(dir).map_err(|err| err.to_string())?;
    open(&dir, engine)
}

/// `recwal import`.
#[derive(clap::Args)]
pub(crate) struct ImportArgs {
    /// The file: .jsonl/.ndjson (events as `recwal export` writes them),
    /// u.data (MovieLens), .inter (RecBole), or CSV/TSV.
    file: PathBuf,
    #[arg(long, env = "RECWAL_DATA_DIR", default_value = "./recwal-data")]
    data_dir: PathBuf,
    #[command(flatten)]
    remote: crate::RemoteArgs,
    /// Events per log record (per request, with --server); at least 1, at
    /// most engine.batch_events_max into a data dir [default: 1000, or
    /// engine.batch_events_max if lower]. Fewer where long ids would make
    /// a record larger than the log takes.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    batch: Option<u32>,
    /// Field separator: one character, or tab, space, comma, semicolon,
    /// pipe (default: tab for u.data, .inter and .tsv, comma otherwise).
    #[arg(long)]
    delimiter: Option<Delimiter>,
    /// The columns of a CSV file without a header row, in order, e.g.
    /// `user,item,rating,timestamp` (names: user, item, rating, kind,
    /// weight, timestamp (seconds), timestamp_ms, event_id, op, lsn, and
    /// `-` for a column to ignore).
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    columns: Option<Vec<String>>,
    /// With --columns: the file has a header row all the same (skipped).
    #[arg(long, requires = "columns")]
    header: bool,
    /// Import events without an event id as they are, without deriving one
    /// (a second run then ingests them again).
    #[arg(long)]
    no_derived_ids: bool,
    /// One JSON object instead of the human line.
    #[arg(long)]
    json: bool,
    /// Into a data dir: the server's configuration, whose rules the file is
    /// checked against (rating scale, custom kinds) and whose dedup window
    /// keeps a second run idempotent.
    #[command(flatten)]
    engine: EngineConfigArgs,
    /// The file is a catalogue of items (CSV, TSV or JSONL with id,
    /// categories, labels, hidden, timestamp, expires), not events; into a
    /// data dir (see docs/SERVER.md, "Importing items").
    #[arg(long, conflicts_with_all = ["delimiter", "columns", "no_derived_ids"])]
    items: bool,
}

fn import(args: &ImportArgs) -> Result<ExitCode, String> {
    if args.items {
        if args.remote.remote()?.is_some() {
            return Err("import --items writes into a data dir (--data-dir), not through --server".into());
        }
        return crate::import_items::import_items(&args.file, &args.data_dir, &args.engine);
    }
    let remote = args.remote.remote()?;
    let data_dir = match remote {
        Some(_) => None,
        None => Some(datadir::existing_or_new(&args.data_dir).map_err(|err| err.to_string())?),
    };
    // The whole file is read and checked before anything is written: a file
    // that cannot be parsed as a whole writes nothing. A second reading
    // writes it, a batch at a time (neither holds the file).
    let options = crate::import::ReadOptions {
        delimiter: args.delimiter,
        columns: args.columns.clone(),
        header: args.header,
        derive_ids: !args.no_derived_ids,
    };
    // Into a data dir, every rule of the engine (opened with the server's
    // configuration) is checked here; a server checks its own.
    let config = match &data_dir {
        Some(data_dir) => args.engine.engine_config(data_dir)?,
        None => EngineConfig::default(),
    };
    let rules = match remote {
        Some(_) => crate::import::Rules::AnyServer,
        None => crate::import::Rules::Engine(&config),
    };
    const BATCH_DEFAULT: usize = 1000;
    let batch = match (args.batch, &data_dir) {
        (Some(batch), Some(_)) if batch as usize > config.batch_events_max => {
            return Err(format!(
                "--batch {batch}: at most engine.batch_events_max ({}) events go in one record",
                config.batch_events_max
            ));
        }
        (Some(batch), _) => batch as usize,
        (None, Some(_)) => BATCH_DEFAULT.min(config.batch_events_max),
        (None, None) => BATCH_DEFAULT,
    };
    let input = crate::import::Input::open(&args.file)?;
    let checked = crate::import::check(&input, &options, &rules)?;
    let started = Instant::now();
    let total = checked.events;
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template("import {bar:40} {pos}/{len} events ({per_sec}, eta {eta})")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let mut last = Instant::now();
    let mut progress = |done: u64| {
        if let Some(bar) = &bar {
            bar.set_position(done);
        }
        if last.elapsed().as_secs() >= 1 || done == total {
            last = Instant::now();
            info!(
                percent = format!("{:.1}", 100.0 * done as f64 / total.max(1) as f64),
                events_per_sec = (done as f64 / started.elapsed().as_secs_f64()) as u64,
                "import progress"
            );
        }
    };
    let mut done = crate::import::Imported::default();
    match (&remote, &data_dir) {
        (Some(remote), _) => {
            crate::import::replay(&input, &options, &rules, &checked, batch, &mut |group| {
                crate::import::into_server(remote, group, batch, &mut done)?;
                progress(done.events);
                Ok(())
            })
            .map_err(|err| written(err, &done))?;
        }
        (None, Some(data_dir)) => {
            // A forget or remove of an id nobody knows is refused before the
            // data dir is created or anything is written to it.
            let fresh = !data_dir.join("wal").exists();
            if fresh {
                checked.check_known(&|_| false, &|_| false).map_err(|err| format!("{}, {err}", args.file.display()))?;
            }
            // Nor when the file changed since it was checked.
            checked.unchanged(&input)?;
            let engine = Engine::open(data_dir, config.clone())
                .map_err(|err| format!("opening {}: {err}", data_dir.display()))?;
            if !fresh {
                checked
                    .check_known(&|user| engine.knows_user(user), &|item| engine.knows_item(item))
                    .map_err(|err| format!("{}, {err}", args.file.display()))?;
            }
            crate::import::replay(&input, &options, &rules, &checked, batch, &mut |group| {
                crate::import::into_engine(&engine, group, &mut done)?;
                progress(done.events);
                Ok(())
            })
            .map_err(|err| written(err, &done))?;
            engine.checkpoint().map_err(|err| err.to_string())?;
            engine.close().map_err(|err| err.to_string())?;
        }
        (None, None) => return Err("no data dir and no server".to_string()),
    };
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if args.json {
        out!(
            "{}",
            serde_json::json!({ "file": args.file, "imported": done, "seconds": started.elapsed().as_secs_f64() })
        )?;
    } else {
        out!(
            "imported {} events ({} new, {} duplicates) from {} in {:.1} s",
            done.events,
            done.events - done.duplicates,
            done.duplicates,
            args.file.display(),
            started.elapsed().as_secs_f64()
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// An import's error, with what it had written before it (nothing, when
/// the first reading refused the file).
fn written(err: String, done: &crate::import::Imported) -> String {
    if done.events + done.users_forgotten + done.items_removed == 0 {
        return err;
    }
    format!(
        "{err}; written before it: {} events ({} duplicates), {} users forgotten, {} items removed",
        done.events, done.duplicates, done.users_forgotten, done.items_removed
    )
}

/// `recwal backup`.
#[derive(clap::Args)]
pub(crate) struct BackupArgs {
    #[arg(long, env = "RECWAL_DATA_DIR", default_value = "./recwal-data")]
    data_dir: PathBuf,
    #[command(flatten)]
    remote: crate::RemoteArgs,
    /// The backup directory to create (new, or an empty directory). With
    /// --server: an absolute path on the server's machine.
    #[arg(long)]
    out: PathBuf,
    /// One JSON object (the backup's BACKUP.json) instead of the human line.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    engine: EngineConfigArgs,
}

/// `recwal restore`.
#[derive(clap::Args)]
pub(crate) struct RestoreArgs {
    /// The backup directory.
    #[arg(long)]
    from: PathBuf,
    /// The data dir to create (new, or an empty directory; never over one).
    #[arg(long, env = "RECWAL_DATA_DIR", default_value = "./recwal-data")]
    data_dir: PathBuf,
    /// One JSON object instead of the human line.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    engine: EngineConfigArgs,
}

/// `recwal export`.
#[derive(clap::Args)]
pub(crate) struct ExportArgs {
    #[arg(long, env = "RECWAL_DATA_DIR", default_value = "./recwal-data")]
    data_dir: PathBuf,
    #[arg(long, value_enum, default_value = "jsonl")]
    format: crate::import::ExportFormat,
    /// The file to write: a regular file is written whole, then renamed over
    /// the old one; a device or FIFO is written through; a symbolic link is
    /// followed. stdout by default (or `-`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The catalogue instead of the events: every item with a catalogue
    /// entry as the JSONL `recwal import --items` reads.
    #[arg(long, conflicts_with = "format")]
    items: bool,
    #[command(flatten)]
    engine: EngineConfigArgs,
}

/// `recwal wal salvage`.
#[derive(clap::Args)]
pub(crate) struct SalvageArgs {
    /// The damaged data dir (read, never changed).
    #[arg(default_value = "./recwal-data", env = "RECWAL_DATA_DIR", value_name = "DATA_DIR")]
    dir: PathBuf,
    /// The same as DATA_DIR, as the other commands take it.
    #[arg(long = "data-dir", value_name = "DATA_DIR", conflicts_with = "dir")]
    data_dir: Option<PathBuf>,
    /// The new data dir to write (new, or an empty directory).
    #[arg(long)]
    out: PathBuf,
    /// One JSON object instead of the human report.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    engine: EngineConfigArgs,
}

fn backup(args: &BackupArgs) -> Result<ExitCode, String> {
    let manifest = match args.remote.remote()? {
        Some(remote) => {
            let body = serde_json::to_vec(&serde_json::json!({ "out": args.out })).map_err(|err| err.to_string())?;
            let answer = remote.call("POST", "/admin/backup", "application/json", &body)?;
            serde_json::from_value::<crate::backup::Manifest>(answer["manifest"].clone())
                .map_err(|err| format!("the server's answer: {err}"))?
        }
        None => {
            let engine = open_existing(&args.data_dir, &args.engine)?;
            let written = crate::backup::backup(&engine, &args.out).map_err(|err| err.to_string())?;
            engine.close().map_err(|err| err.to_string())?;
            written.manifest
        }
    };
    if args.json {
        out!("{}", serde_json::to_string(&manifest).map_err(|err| err.to_string())?)?;
    } else {
        let bytes: u64 = manifest.files.iter().map(|file| file.bytes).sum();
        out!(
            "backup {}: snapshot at LSN {}, {} log records, state at LSN {}; {} files, {bytes} bytes, verified",
            args.out.display(),
            manifest.lsn_snapshot,
            manifest.records,
            manifest.lsn_last,
            manifest.files.len() + 1
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn restore(args: &RestoreArgs) -> Result<ExitCode, String> {
    // Refuses a path inside a data dir or a log, as every command does,
    // whether it exists yet or not.
    datadir::existing_or_new(&args.data_dir).map_err(|err| err.to_string())?;
    let config = args.engine.load()?;
    let (manifest, digest) =
        crate::backup::restore(&args.from, &args.data_dir, &config).map_err(|err| err.to_string())?;
    if args.json {
        out!(
            "{}",
            serde_json::json!({ "data_dir": args.data_dir, "lsn_last": manifest.lsn_last, "state_digest": format!("{digest:016x}") })
        )?;
    } else {
        out!(
            "restored {} into {}: state at LSN {} (digest {digest:016x})",
            args.from.display(),
            args.data_dir.display(),
            manifest.lsn_last
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn export(args: &ExportArgs) -> Result<ExitCode, String> {
    if args.items {
        let items = crate::import_items::export_items(&args.data_dir, args.out.as_deref(), &args.engine)?;
        info!(items, "catalogue exported");
        return Ok(ExitCode::SUCCESS);
    }
    let data_dir = datadir::existing(&args.data_dir).map_err(|err| err.to_string())?;
    let log = data_dir.join("wal");
    let config = log_config(&log)?;
    let done = crate::import::export_to(&log, &config, args.format, args.out.as_deref())?;
    if done.model_records_skipped > 0 {
        tracing::warn!(
            records = done.model_records_skipped,
            "model and catalogue records are not in an events export (a backup holds the models; \
             `recwal export --items` writes the catalogue)"
        );
    }
    info!(lines = done.lines, records = done.records, lsn_last = done.lsn_last, "exported");
    Ok(ExitCode::SUCCESS)
}

fn salvage(args: &SalvageArgs) -> Result<ExitCode, String> {
    let dir = args.data_dir.as_ref().unwrap_or(&args.dir);
    let failed = |err: String| -> Result<ExitCode, String> {
        if args.json {
            out!("{}", serde_json::json!({ "source": dir, "error": err }))?;
        } else {
            eprintln!("recwal: salvage failed: {err}");
        }
        Ok(ExitCode::from(EXIT_UNCHECKED))
    };
    if !dir.join("wal").is_dir() && !dir.join("snapshots").is_dir() {
        return failed(format!("{} is not a recwal data dir (no wal/ and no snapshots/)", dir.display()));
    }
    if args.out.exists() {
        if let Err(err) = datadir::existing_or_new(&args.out) {
            return failed(err.to_string());
        }
    }
    let mut config = match args.engine.load() {
        Ok(config) => config,
        Err(err) => return failed(err),
    };
    match fitted_to_log(config.wal.clone(), &dir.join("wal")) {
        Ok(wal) => config.wal = wal,
        Err(err) => tracing::warn!(%err, "the log's segment size is unreadable; using the configured one"),
    }
    let report = match crate::salvage::salvage(dir, &args.out, &config) {
        Ok(report) => report,
        Err(err) => return failed(err.to_string()),
    };
    if args.json {
        out!("{}", serde_json::to_string(&report).map_err(|err| err.to_string())?)?;
    } else {
        out!("{}", report.human())?;
    }
    Ok(if report.lossy { ExitCode::from(EXIT_DAMAGE) } else { ExitCode::SUCCESS })
}

/// Exit status of `wal verify` when it found damage.
const EXIT_DAMAGE: u8 = 1;
/// Exit status of `wal verify` when it could not check the log.
const EXIT_UNCHECKED: u8 = 2;

/// What `serve` does with one damage, or with the whole log.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Action {
    Open,
    CutTornTail,
    Refuse,
}

impl Action {
    fn key(self) -> &'static str {
        match self {
            Action::Open => "open",
            Action::CutTornTail => "cut_torn_tail",
            Action::Refuse => "refuse",
        }
    }

    fn words(self) -> &'static str {
        match self {
            Action::Open => "serve opens the log as it is",
            Action::CutTornTail => {
                "serve cuts the torn tail (records that were never acknowledged as durable) and reports it"
            }
            Action::Refuse => {
                "serve refuses to open: a record that was durable is damaged (recovery options: docs/DURABILITY.md; \
                 restore the data dir from a backup)"
            }
        }
    }
}

/// One damage `wal verify` found.
struct Damage {
    kind: &'static str,
    segment: Option<u32>,
    offset: Option<u64>,
    lsn: Option<u64>,
    reason: String,
    action: Action,
}

impl Damage {
    fn from_corruption(kind: &'static str, found: &recwal::wal::Corruption, action: Action) -> Damage {
        Damage {
            kind,
            segment: Some(found.position.segment_index),
            offset: Some(found.position.offset),
            lsn: (found.lsn_expected > 0).then_some(found.lsn_expected),
            reason: found.reason.clone(),
            action,
        }
    }

    fn file(&self, log: &Path) -> Option<PathBuf> {
        self.segment.map(|index| log.join(format!("seg-{index:08}.wal")))
    }

    /// A segment file that is missing or cut short: `serve` refuses it.
    fn segment_file(kind: &'static str, segment: u32, reason: String) -> Damage {
        Damage { kind, segment: Some(segment), offset: None, lsn: None, reason, action: Action::Refuse }
    }
}

/// Every damage in a report of the scan that `open` runs, with what `open`
/// (in its default mode, as `serve` runs it) does about it.
fn damages(report: &RecoveryReport) -> Vec<Damage> {
    let mut found = Vec::new();
    if let Some(corruption) = &report.corruption {
        found.push(Damage::from_corruption("corruption", corruption, Action::Refuse));
    }
    for index in &report.segments_damaged {
        let listed = found.iter().any(|damage| damage.segment == Some(*index) && damage.offset == Some(0));
        if !listed {
            found.push(Damage {
                kind: "damaged_segment_header",
                segment: Some(*index),
                offset: Some(0),
                lsn: None,
                reason: "segment header is damaged".to_string(),
                action: Action::Refuse,
            });
        }
    }
    for index in &report.segments_missing {
        let reason = "the segment file is missing; a segment file is never deleted".to_string();
        found.push(Damage::segment_file("missing_segment", *index, reason));
    }
    for index in &report.segments_extended {
        let reason = "the segment file is shorter than segment_bytes; a segment file is never truncated".to_string();
        found.push(Damage::segment_file("short_segment", *index, reason));
    }
    if let Some(tail) = &report.tail_damage {
        found.push(Damage::from_corruption("torn_tail", tail, Action::CutTornTail));
    }
    if found.is_empty() && !report.is_clean() {
        found.push(Damage {
            kind: "cut",
            segment: None,
            offset: None,
            lsn: None,
            reason: format!(
                "the scan would cut {} bytes and drop {} records",
                report.bytes_cut, report.records_dropped
            ),
            action: Action::CutTornTail,
        });
    }
    found
}

fn wal(command: WalCommand) -> Result<ExitCode, String> {
    let (dir, list_segments, json) = match command {
        WalCommand::Inspect { dir, data_dir, json } => (data_dir.unwrap_or(dir), true, json),
        WalCommand::Verify { dir, data_dir, json } => (data_dir.unwrap_or(dir), false, json),
        WalCommand::Salvage(args) => return salvage(&args),
    };
    let log = match datadir::log_dir(&dir) {
        Ok(log) => log,
        Err(err) if json => return unchecked_json(&dir, &err.to_string()),
        Err(err) => {
            eprintln!("recwal: {err}");
            return Ok(ExitCode::from(EXIT_UNCHECKED));
        }
    };
    // A damaged manifest is damage `serve` refuses, found before the scan.
    let geometry = match recwal::wal::log_segment_bytes(&log) {
        Err(err @ WalError::Damaged { .. }) => Err(err),
        other => Ok(other),
    };
    let config = match geometry {
        Ok(Ok(bytes)) => {
            let config = EngineConfig::default().wal;
            bytes.map_or(config.clone(), |bytes| config.segment_bytes(bytes))
        }
        Ok(Err(err)) if json => return unchecked_json(&log, &err.to_string()),
        Ok(Err(err)) => {
            eprintln!("recwal: cannot check {}: {err}", log.display());
            return Ok(ExitCode::from(EXIT_UNCHECKED));
        }
        Err(err) => return show_verdict(&log, None, &[damaged_file(err)], json, None),
    };
    let inspection = match recwal::wal::inspect(&log, &config, &mut |_, _| {}) {
        Ok(inspection) => inspection,
        // Damage the scan cannot get past: `open` refuses it too.
        Err(WalError::Corruption(found)) => {
            let damage = Damage::from_corruption("corruption", &found, Action::Refuse);
            return show_verdict(&log, None, &[damage], json, None);
        }
        Err(WalError::BadSegment { segment_index, reason }) => {
            let damage = Damage {
                kind: "bad_segment",
                segment: Some(segment_index),
                offset: None,
                lsn: None,
                reason,
                action: Action::Refuse,
            };
            return show_verdict(&log, None, &[damage], json, None);
        }
        Err(err @ WalError::Damaged { .. }) => return show_verdict(&log, None, &[damaged_file(err)], json, None),
        Err(err) if json => return unchecked_json(&log, &err.to_string()),
        Err(err) => {
            eprintln!("recwal: cannot check {}: {err}", log.display());
            return Ok(ExitCode::from(EXIT_UNCHECKED));
        }
    };
    let segments = list_segments.then(|| segment_table(&inspection.segments, config.segment_bytes));
    if let (Some((lines, _)), false) = (&segments, json) {
        for line in lines {
            out!("{line}")?;
        }
    }
    let found = damages(&inspection.report);
    show_verdict(&log, Some(&inspection.report), &found, json, segments.map(|(_, rows)| rows))
}

/// A file of the log that `open` refuses as damaged (the manifest).
fn damaged_file(err: WalError) -> Damage {
    let reason = match err {
        WalError::Damaged { path, reason, .. } => format!("{}: {reason}", path.display()),
        other => other.to_string(),
    };
    Damage { kind: "damaged_file", segment: None, offset: None, lsn: None, reason, action: Action::Refuse }
}

/// The segments of `wal inspect`: a table for people (with a header line),
/// and one JSON object per segment.
fn segment_table(segments: &[recwal::wal::SegmentInfo], segment_bytes: u64) -> (Vec<String>, Vec<serde_json::Value>) {
    use recwal::wal::SegmentStatus;
    let mut lines = vec![
        format!("{} segment file(s) of {} bytes", segments.len(), segment_bytes),
        format!(
            "{:>7}  {:<8}  {:>5}  {:>10}  {:>12}  {:>8}  {:>12}",
            "segment", "status", "lap", "first LSN", "released LSN", "records", "bytes used"
        ),
    ];
    let mut rows = Vec::new();
    for segment in segments {
        let status = match segment.status {
            SegmentStatus::Live => "live",
            SegmentStatus::Free => "free",
            SegmentStatus::Released => "released",
            SegmentStatus::Empty => "empty",
            SegmentStatus::Damaged => "damaged",
        };
        let (seq, first, released) = match segment.header {
            Some((seq, first, released)) => (Some(seq), Some(first), Some(released)),
            None => (None, None, None),
        };
        let shown = |value: Option<u64>| value.map_or_else(|| "-".to_string(), |value| value.to_string());
        let first_shown = if segment.status == SegmentStatus::Live { shown(first) } else { "-".to_string() };
        lines.push(format!(
            "{:>7}  {:<8}  {:>5}  {:>10}  {:>12}  {:>8}  {:>12}",
            segment.index,
            status,
            shown(seq),
            first_shown,
            shown(released),
            segment.records,
            segment.bytes_used
        ));
        rows.push(serde_json::json!({
            "index": segment.index,
            "file": format!("seg-{:08}.wal", segment.index),
            "status": status,
            "lap": seq,
            "lsn_first": first,
            "lsn_released": released,
            "records": segment.records,
            "bytes_used": segment.bytes_used,
        }));
    }
    (lines, rows)
}

/// Prints what verify found (a human report, or one JSON object) and
/// returns the exit status: 0 clean, 1 damage.
fn show_verdict(
    log: &Path,
    report: Option<&RecoveryReport>,
    found: &[Damage],
    json: bool,
    segments: Option<Vec<serde_json::Value>>,
) -> Result<ExitCode, String> {
    let action = found.iter().map(|damage| damage.action).max().unwrap_or(Action::Open);
    let clean = found.is_empty() && report.is_some_and(RecoveryReport::is_clean);
    let records = report.map_or(0, |report| report.records_recovered);
    if json {
        let damage: Vec<serde_json::Value> = found
            .iter()
            .map(|damage| {
                serde_json::json!({
                    "kind": damage.kind,
                    "file": damage.file(log),
                    "segment": damage.segment,
                    "offset": damage.offset,
                    "lsn": damage.lsn,
                    "reason": damage.reason,
                    "serve": damage.action.key(),
                })
            })
            .collect();
        let mut object = serde_json::json!({
            "log_dir": log,
            "clean": clean,
            "serve": action.key(),
            "records_checked": records,
            "segments_scanned": report.map(|report| report.segments_scanned),
            "first_lsn": report.map(|report| report.lsn_first),
            "last_lsn": report.map(|report| report.lsn_last),
            "released_lsn": report.map(|report| report.lsn_released),
            "bytes_cut": report.map(|report| report.bytes_cut),
            "records_dropped": report.map(|report| report.records_dropped),
            "damage": damage,
            "error": null,
        });
        if let Some(segments) = segments {
            object["segments"] = serde_json::Value::Array(segments);
        }
        out!("{object}")?;
    } else {
        match report {
            Some(report) => {
                let range = if report.lsn_last >= report.lsn_first {
                    format!("LSNs {}..{}", report.lsn_first, report.lsn_last)
                } else {
                    "no records".to_string()
                };
                out!(
                    "log {}: {} segment file(s), {range}, released up to LSN {}",
                    log.display(),
                    report.segments_scanned,
                    report.lsn_released
                )?;
                if report.bytes_cut > 0 || report.records_dropped > 0 {
                    out!(
                        "beyond the valid log: {} bytes to cut, {} records to drop",
                        report.bytes_cut,
                        report.records_dropped
                    )?;
                }
            }
            None => out!("log {}: the scan stopped at damage it cannot get past", log.display())?,
        }
        for (at, damage) in found.iter().enumerate() {
            let place = match (damage.file(log), damage.offset) {
                (Some(file), Some(offset)) => format!("{} at offset {offset}", file.display()),
                (Some(file), None) => file.display().to_string(),
                _ => "the log".to_string(),
            };
            let lsn = damage.lsn.map(|lsn| format!(", LSN {lsn}")).unwrap_or_default();
            out!("damage {} ({}): {place}{lsn}: {}", at + 1, damage.kind, damage.reason)?;
            out!("  {}", damage.action.words())?;
        }
        let verdict = match action {
            Action::Refuse => "CORRUPTION FOUND (serve refuses to open this log)",
            Action::CutTornTail => "TORN TAIL FOUND (serve cuts it; nothing acknowledged as durable is lost)",
            Action::Open if clean => "no corruption",
            Action::Open => "DAMAGE FOUND",
        };
        out!("{records} records checked: {verdict}")?;
    }
    Ok(if clean { ExitCode::SUCCESS } else { ExitCode::from(EXIT_DAMAGE) })
}

/// `wal verify --json` when the log could not be checked: exit 2.
fn unchecked_json(dir: &Path, error: &str) -> Result<ExitCode, String> {
    out!("{}", serde_json::json!({ "log_dir": dir, "clean": false, "error": error }))?;
    Ok(ExitCode::from(EXIT_UNCHECKED))
}
