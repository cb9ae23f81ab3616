//! `recwal import` and `recwal export`: files of events in and out.
//!
//! Import reads the file twice, line by line, through the csv crate
//! (quoting, any one-byte delimiter, a header row or `--columns`) or as
//! JSONL (one object per line, the shape of `POST /v1/events`' events, plus
//! `op` and `lsn`): the first reading checks every line and writes nothing
//! ([`check`]), the second ingests ([`replay`]). Neither holds the file or
//! its rows, only a batch (or one record's events) at a time, the distinct
//! user and item ids, and 20–40 bytes a row for the derived ids: a file of
//! tens of millions of events needs about the engine's memory, not ten
//! times it. Every event without an event id gets one derived from
//! its content (`import:<SHA-256 of the row's fields>:<occurrence>`), so a
//! second run of the same file, or of the file with rows added, is all
//! duplicates inside the dedup window. Export writes the log's records in
//! the same JSONL (or CSV) shape, one line per event, with the LSN of its
//! record, so an import of an export rebuilds the same records.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::Path;

use recwal::eval::Delimiter;
use recwal::record::{LogRecord, LoggedKind};
use recwal::{Engine, EngineConfig, Event};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::api::ApiEvent;

/// What one line of a file asks for.
#[derive(Clone, Debug)]
pub(crate) enum Action {
    /// Ingest the event (the API's shape, and the engine's).
    Event(Box<(ApiEvent, Event)>),
    /// `DELETE /v1/users/{user}`.
    ForgetUser(String),
    /// `DELETE /v1/items/{item}`.
    RemoveItem(String),
}

/// One line of an import file.
#[derive(Clone, Debug)]
pub(crate) struct Row {
    /// 1-based line in the file.
    pub(crate) line: u64,
    /// The LSN of the record it came from (an export's); consecutive events
    /// with the same LSN are ingested as one batch, one record.
    pub(crate) lsn: Option<u64>,
    pub(crate) action: Action,
}

/// One line of the JSONL format, in and out.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Line {
    /// `event` (the default), `forget_user` or `remove_item`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) op: Option<String>,
    /// LSN of the record the line came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) lsn: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) item: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) weight: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) timestamp_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) event_id: Option<String>,
}

/// The columns a CSV file may name (in a header row or `--columns`).
const COLUMNS: [&str; 10] =
    ["user", "item", "rating", "kind", "weight", "timestamp", "timestamp_ms", "event_id", "op", "lsn"];

/// The canonical column a header name stands for (`None`: not one).
fn column_name(raw: &str) -> Option<&'static str> {
    // RecBole headers carry a type: `user_id:token`.
    let name = raw.trim().split(':').next().unwrap_or("").to_ascii_lowercase();
    let canonical = match name.as_str() {
        "user" | "user_id" | "userid" => "user",
        "item" | "item_id" | "itemid" | "movie_id" | "movieid" => "item",
        "rating" | "value" | "score" => "rating",
        "timestamp" | "time" | "ts" => "timestamp",
        "-" | "_" | "skip" => "-",
        other => return COLUMNS.iter().copied().find(|known| *known == other),
    };
    Some(canonical)
}

/// How to read an import file.
#[derive(Clone)]
pub(crate) struct ReadOptions {
    pub(crate) delimiter: Option<Delimiter>,
    /// `--columns`: the names of the columns, in order; the file then has no
    /// header row unless `header` says so.
    pub(crate) columns: Option<Vec<String>>,
    pub(crate) header: bool,
    /// Derive an event id for events without one.
    pub(crate) derive_ids: bool,
}

fn is_jsonl(path: &Path) -> bool {
    path.extension().is_some_and(|ext| ext == "jsonl" || ext == "ndjson")
}

/// The rules `read` checks each line against.
pub(crate) enum Rules<'a> {
    /// Every rule of the engine with this configuration (an import into a
    /// data dir, opened with it).
    Engine(&'a EngineConfig),
    /// The rules every server applies whatever its configuration (ids,
    /// timestamps, the shape of each line); a server checks the rest (its
    /// rating scale, custom kinds, how far ahead a timestamp may be) as the
    /// batches arrive.
    AnyServer,
}

/// Reads and checks every line of `path` in order, deriving event ids when
/// asked, and hands each row to `visit`. `Err` names the file and line (or
/// is `visit`'s own). Returns how many rows there were.
fn scan(
    input: &Input,
    options: &ReadOptions,
    rules: &Rules<'_>,
    bytes: Option<u64>,
    visit: &mut dyn FnMut(Row) -> Result<(), String>,
) -> Result<u64, String> {
    let path = input.name.as_path();
    let source = path.display().to_string();
    let file = std::fs::File::open(input.read_from()).map_err(|err| format!("{source}: {err}"))?;
    let file = Checked::bytes_of(file, bytes);
    // A server's rating scale is its own: here, any finite value passes.
    let any_scale = EngineConfig { rating_min: f32::MIN, rating_max: f32::MAX, ..EngineConfig::default() };
    let check = Check { config: if let Rules::Engine(config) = rules { config } else { &any_scale }, rules };
    let mut ids = options.derive_ids.then(|| (IdDeriver::default(), Gone::default()));
    let mut rows = 0u64;
    let mut each = |mut row: Row| {
        if let Some((ids, gone)) = &mut ids {
            if gone.after_gone(&row) {
                without_id(&mut row);
            } else {
                ids.derive(&mut row);
            }
        }
        rows += 1;
        visit(row)
    };
    let reader = std::io::BufReader::with_capacity(1 << 16, file);
    if is_jsonl(path) {
        read_jsonl(reader, &source, &check, &mut each)?;
    } else {
        read_csv(reader, path, options, &check, &mut each)?;
    }
    if rows == 0 {
        return Err(format!("{source}: no ratings or events in it"));
    }
    Ok(rows)
}

/// The file an import reads twice. A regular file is read in place; a
/// pipe, a device or `/dev/stdin` can be read once, so it is copied first
/// into a temporary file (in `$TMPDIR`), removed when the import ends.
pub(crate) struct Input {
    /// The name given: messages name it, the format comes from it.
    name: std::path::PathBuf,
    spool: Option<tempfile::NamedTempFile>,
}

impl Input {
    pub(crate) fn open(path: &Path) -> Result<Input, String> {
        let source = path.display().to_string();
        let meta = std::fs::metadata(path).map_err(|err| format!("{source}: {err}"))?;
        if meta.is_file() {
            return Ok(Input { name: path.to_path_buf(), spool: None });
        }
        if meta.is_dir() {
            return Err(format!("{source}: a directory, not a file"));
        }
        // Opened first: a FIFO without a writer waits here, before a
        // temporary file exists to be left behind by a Ctrl-C.
        let mut from = std::fs::File::open(path).map_err(|err| format!("{source}: {err}"))?;
        let mut spool = tempfile::Builder::new()
            .prefix("recwal-import-")
            .tempfile()
            .map_err(|err| format!("{source}: a temporary file to copy it into: {err}"))?;
        std::io::copy(&mut from, spool.as_file_mut())
            .map_err(|err| format!("{source}: copying it into {}: {err}", spool.path().display()))?;
        Ok(Input { name: path.to_path_buf(), spool: Some(spool) })
    }

    fn read_from(&self) -> &Path {
        self.spool.as_ref().map_or(self.name.as_path(), tempfile::NamedTempFile::path)
    }
}

/// What the first reading of a file found: every line can be written.
pub(crate) struct Checked {
    /// Rows, and of them events.
    pub(crate) rows: u64,
    pub(crate) events: u64,
    /// Forget and remove lines whose id no event before them names: the
    /// data dir must know it ([`Checked::check_known`]).
    unresolved: Vec<(u64, Action)>,
    /// The file's size and modification time, to tell whether the second
    /// reading reads the same file.
    stamp: Option<(u64, std::time::SystemTime, (u64, u64))>,
}

fn stamp(path: &Path) -> Option<(u64, std::time::SystemTime, (u64, u64))> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    // The device and inode too: a file renamed over it with the same size
    // and time is another file.
    Some((meta.len(), meta.modified().ok()?, (meta.dev(), meta.ino())))
}

/// The first reading: checks every line of `path` against `rules` and
/// writes nothing.
pub(crate) fn check(input: &Input, options: &ReadOptions, rules: &Rules<'_>) -> Result<Checked, String> {
    let stamp = stamp(input.read_from());
    let (mut users, mut items) = (std::collections::HashSet::new(), std::collections::HashSet::new());
    let (mut events, mut unresolved) = (0u64, Vec::new());
    // The events of one LSN (an export's record) go in as one record: into
    // a data dir they must fit the engine's limits, or the lines before
    // them would be written and these refused.
    let limits = match rules {
        Rules::Engine(config) => Some((config.batch_events_max, record_limit(config).saturating_sub(RECORD_OVERHEAD))),
        Rules::AnyServer => None,
    };
    // (LSN, first line, events, estimated bytes) of the group being read.
    let mut group: Option<(u64, u64, usize, usize)> = None;
    // Ids are derived on the second reading only: none is needed here.
    let options = ReadOptions { derive_ids: false, ..options.clone() };
    let rows = scan(input, &options, rules, None, &mut |row| {
        let lsn = matches!(row.action, Action::Event(_)).then_some(row.lsn).flatten();
        match (&mut group, lsn) {
            (Some((open, _, count, bytes)), Some(lsn)) if *open == lsn => {
                *count += 1;
                *bytes += encoded_bytes(&row);
            }
            (_, Some(lsn)) => group = Some((lsn, row.line, 1, encoded_bytes(&row))),
            (_, None) => group = None,
        }
        if let (Some((lsn, line, count, bytes)), Some((events_max, bytes_max))) = (group, limits) {
            if count > events_max || bytes > bytes_max {
                return Err(format!(
                    "{}, line {line}: the events of lsn {lsn} ({count} so far, ~{bytes} bytes) go in as one \
                     record, over the engine's limit (engine.batch_events_max {events_max}, a record of at most \
                     {bytes_max} bytes)",
                    input.name.display()
                ));
            }
        }
        match row.action {
            Action::Event(pair) => {
                events += 1;
                let event = pair.1;
                users.insert(event.user);
                items.insert(event.item);
            }
            Action::ForgetUser(user) if !users.contains(&user) => {
                unresolved.push((row.line, Action::ForgetUser(user)));
            }
            Action::RemoveItem(item) if !items.contains(&item) => {
                unresolved.push((row.line, Action::RemoveItem(item)));
            }
            Action::ForgetUser(_) | Action::RemoveItem(_) => {}
        }
        Ok(())
    })?;
    Ok(Checked { rows, events, unresolved, stamp })
}

/// The bytes a file had when it was checked, and no more: a file cut short
/// since is an error when its end comes early (its last line may be cut
/// in the middle and still parse: it is not ingested), and what was
/// appended since is not read.
struct CheckedBytes<R> {
    inner: R,
    left: Option<u64>,
}

impl<R: std::io::Read> std::io::Read for CheckedBytes<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let Some(left) = self.left else { return self.inner.read(buf) };
        if left == 0 {
            return Ok(0);
        }
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("the file ended {left} bytes before the size it had when it was checked (cut short since)"),
            ));
        }
        self.left = Some(left - n as u64);
        Ok(n)
    }
}

impl Checked {
    /// `file`, read up to `bytes` (all of it with `None`).
    fn bytes_of(file: std::fs::File, bytes: Option<u64>) -> CheckedBytes<std::fs::File> {
        CheckedBytes { inner: file, left: bytes }
    }

    /// Refuses the input when it changed (size or modification time) since
    /// it was checked: the second reading would not read what was checked.
    pub(crate) fn unchanged(&self, input: &Input) -> Result<(), String> {
        if stamp(input.read_from()) == self.stamp {
            return Ok(());
        }
        Err(format!(
            "{}: the file changed after it was checked; nothing was written, import it again",
            input.name.display()
        ))
    }

    /// Refuses a `forget_user` or `remove_item` line whose id neither the
    /// data dir (`knows_user`, `knows_item`) nor an event earlier in the
    /// file names: the engine would refuse it, after the lines before it
    /// were written.
    pub(crate) fn check_known(
        &self,
        knows_user: &dyn Fn(&str) -> bool,
        knows_item: &dyn Fn(&str) -> bool,
    ) -> Result<(), String> {
        for (line, action) in &self.unresolved {
            match action {
                Action::ForgetUser(user) if !knows_user(user) => {
                    return Err(format!(
                        "line {line}: forget_user of unknown user {user:?} (no event in the data dir or before this line \
                         names it)"
                    ));
                }
                Action::RemoveItem(item) if !knows_item(item) => {
                    return Err(format!(
                        "line {line}: remove_item of unknown item {item:?} (no event in the data dir or before this line names it)"
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// The second reading: hands `write` the rows of `path` in groups of one
/// call each ([`Grouper`]), in order. A file changed since [`check`] is
/// refused before anything is written; one that changes while it is read
/// stops at the first line that no longer passes, with what was written
/// said (the derived ids make running the import again safe).
pub(crate) fn replay(
    input: &Input,
    options: &ReadOptions,
    rules: &Rules<'_>,
    checked: &Checked,
    batch: usize,
    write: &mut dyn FnMut(&[Row]) -> Result<(), String>,
) -> Result<(), String> {
    let source = input.name.display().to_string();
    // Into a data dir, a group without an LSN stays under the log's record
    // limit; a server splits nothing, its answer says.
    let record_bytes_max = match rules {
        Rules::Engine(config) => record_limit(config),
        Rules::AnyServer => usize::MAX,
    };
    checked.unchanged(input)?;
    // One thread reads and parses, this one writes: on two cores the
    // parsing no longer adds to the ingest. A few groups wait in between.
    const STOPPED: &str = "the writer stopped";
    let (rows, written) = std::thread::scope(|scope| {
        let (send, groups_read) = std::sync::mpsc::sync_channel::<Vec<Row>>(4);
        let reader = scope.spawn(move || {
            let mut groups = Grouper::new(batch, record_bytes_max);
            let bytes = checked.stamp.map(|(len, _, _)| len);
            let rows = scan(input, options, rules, bytes, &mut |row| match groups.push(row) {
                Some(group) => send.send(group).map_err(|_| STOPPED.to_string()),
                None => Ok(()),
            });
            // Also after a line that no longer passes: every line before it
            // is written, as the error says.
            if !groups.pending.is_empty() {
                send.send(groups.pending).map_err(|_| STOPPED.to_string())?;
            }
            rows
        });
        let mut written = Ok(());
        while let Ok(group) = groups_read.recv() {
            written = write(&group);
            if written.is_err() {
                break;
            }
        }
        // The reader, blocked on a full channel, sees the writer gone.
        drop(groups_read);
        let rows = reader.join().unwrap_or_else(|_| Err("the reading thread panicked".to_string()));
        (rows, written)
    });
    // The writer's errors name the line; the reader's the file and line.
    written.map_err(|err| format!("{source}: {err}"))?;
    let rows = rows
        .map_err(|err| format!("{err} (the file changed while it was imported? the lines before it were written)"))?;
    if rows != checked.rows || checked.unchanged(input).is_err() {
        return Err(format!(
            "{source}: the file changed while it was imported ({rows} rows read, {} when it was checked); the \
             rows read were written",
            checked.rows
        ));
    }
    Ok(())
}

/// What `row_of` checks a line with.
struct Check<'a> {
    /// The configuration the API shape is checked against.
    config: &'a EngineConfig,
    rules: &'a Rules<'a>,
}

fn read_jsonl(
    reader: impl BufRead,
    source: &str,
    check: &Check<'_>,
    visit: &mut dyn FnMut(Row) -> Result<(), String>,
) -> Result<(), String> {
    for (at, text) in reader.lines().enumerate() {
        let line_no = at as u64 + 1;
        let text = text.map_err(|err| format!("{source}, line {line_no}: {err}"))?;
        let text = text.trim_start_matches('\u{feff}');
        if text.trim().is_empty() {
            continue;
        }
        let line: Line = serde_json::from_str(text).map_err(|err| format!("{source}, line {line_no}: {err}"))?;
        visit(row_of(line, line_no, check).map_err(|err| format!("{source}, line {line_no}: {err}"))?)?;
    }
    Ok(())
}

/// A line's row: checks the fields its op needs, and the event against the
/// rules (the engine's own check: what ingest would refuse is refused here,
/// before anything is written).
fn row_of(line: Line, line_no: u64, check: &Check<'_>) -> Result<Row, String> {
    let lsn = line.lsn;
    let required = |field: Option<String>, name: &str| field.ok_or_else(|| format!("{name} is required"));
    let id = |field: &str, id: String| recwal::validate_id(field, &id).map(|()| id).map_err(|err| err.to_string());
    let action = match line.op.as_deref().unwrap_or("event") {
        "event" => {
            let api = ApiEvent {
                user: required(line.user, "user")?,
                item: required(line.item, "item")?,
                kind: line.kind.unwrap_or_else(|| if line.value.is_some() { "rating".into() } else { String::new() }),
                value: line.value,
                weight: line.weight,
                timestamp_ms: line.timestamp_ms,
                event_id: line.event_id,
            };
            if api.kind.is_empty() {
                return Err("kind is required (or a rating value)".to_string());
            }
            let event = api.clone().into_event("event", check.config).map_err(|problem| problem.detail)?;
            match check.rules {
                Rules::Engine(config) => event.check(config).map_err(|err| err.to_string())?,
                Rules::AnyServer => {
                    for (field, value) in [
                        ("event.user", Some(&event.user)),
                        ("event.item", Some(&event.item)),
                        ("event.event_id", event.event_id.as_ref()),
                    ] {
                        if let Some(value) = value {
                            recwal::validate_id(field, value).map_err(|err| err.to_string())?;
                        }
                    }
                    if event.timestamp_ms.is_some_and(|at| at < 0) {
                        return Err("invalid event.timestamp_ms: must be ≥ 0 (ms since the Unix epoch)".to_string());
                    }
                }
            }
            Action::Event(Box::new((api, event)))
        }
        "forget_user" => Action::ForgetUser(id("user", required(line.user, "user")?)?),
        "remove_item" => Action::RemoveItem(id("item", required(line.item, "item")?)?),
        other => return Err(format!("op {other:?}: expected event, forget_user or remove_item")),
    };
    Ok(Row { line: line_no, lsn, action })
}

/// The layout of a file that is not JSONL, from its name and the options:
/// delimiter, columns (if fixed) and whether a header row comes first.
fn layout(path: &Path, options: &ReadOptions) -> (u8, Option<Vec<String>>, bool) {
    let name = path.file_name().map(|name| name.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    let ext = path.extension().map(|ext| ext.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    let movielens = name == "u.data" || ext == "data";
    let tabbed = movielens || ext == "inter" || ext == "tsv";
    let delimiter = options.delimiter.map_or(if tabbed { '\t' } else { ',' }, Delimiter::as_char);
    let delimiter = u8::try_from(delimiter).unwrap_or(b',');
    match (&options.columns, movielens) {
        (Some(columns), _) => (delimiter, Some(columns.clone()), options.header),
        (None, true) => (delimiter, Some(["user", "item", "rating", "timestamp"].map(String::from).to_vec()), false),
        (None, false) => (delimiter, None, true),
    }
}

fn read_csv(
    file: impl std::io::Read,
    path: &Path,
    options: &ReadOptions,
    check: &Check<'_>,
    visit: &mut dyn FnMut(Row) -> Result<(), String>,
) -> Result<(), String> {
    let source = path.display().to_string();
    if options.delimiter.is_some_and(|delimiter| u8::try_from(delimiter.as_char()).is_err()) {
        return Err(format!("{source}: --delimiter must be a single-byte character for CSV"));
    }
    let (delimiter, fixed, header) = layout(path, options);
    // The csv crate's own line count leaves out blank lines and is one
    // short after CRLF line ends: lines are counted from byte offsets.
    let (file, lines) = recwal::eval::count_lines(file);
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(false)
        // Fields are taken as they are: an id keeps its spaces (what the
        // API accepted, and `export` wrote); numbers are trimmed when parsed.
        .trim(csv::Trim::None)
        .from_reader(file);
    let mut names: Option<Vec<&'static str>> = match &fixed {
        Some(columns) => Some(
            columns
                .iter()
                .map(|raw| {
                    column_name(raw)
                        .ok_or_else(|| format!("--columns: unknown column {raw:?}; known: {}", COLUMNS.join(", ")))
                })
                .collect::<Result<_, _>>()?,
        ),
        None => None,
    };
    if let Some(columns) = &names {
        refuse_repeated(columns).map_err(|err| format!("--columns: {err}"))?;
    }
    let mut header_pending = header;
    let mut record = csv::StringRecord::new();
    loop {
        let byte_before = reader.position().byte();
        match reader.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(err) => {
                let at = err.position().map_or(byte_before, csv::Position::byte);
                return Err(format!("{source}, line {}: {err}", lines.line_at(at)));
            }
        }
        let line_no = lines.line_at(record.position().map_or(byte_before, csv::Position::byte)) as u64;
        if record.iter().all(|field| field.trim().is_empty()) {
            continue;
        }
        if record.len() == 1 {
            // One field: the file is likely separated by another character.
            let field = &record[0];
            if let Some(other) =
                [';', '\t', '|', ','].into_iter().find(|c| *c as u32 != u32::from(delimiter) && field.contains(*c))
            {
                let shown = if other == '\t' { "tab".to_string() } else { format!("'{other}'") };
                return Err(format!(
                    "{source}, line {line_no}: one field {field:?}: the file seems separated by {shown}, not {:?}; pass --delimiter {shown}",
                    delimiter as char
                ));
            }
        }
        if header_pending {
            header_pending = false;
            if names.is_none() {
                let mut found = Vec::new();
                for raw in record.iter() {
                    let raw = raw.trim_start_matches('\u{feff}');
                    found.push(column_name(raw).ok_or_else(|| {
                        format!(
                            "{source}, line {line_no}: header column {raw:?} is not one of {} (a file without a header row needs --columns)",
                            COLUMNS.join(", ")
                        )
                    })?);
                }
                refuse_repeated(&found).map_err(|err| format!("{source}, line {line_no}: {err}"))?;
                names = Some(found);
            }
            continue;
        }
        let Some(columns) = &names else {
            return Err(format!("{source}, line {line_no}: no header row; name the columns with --columns"));
        };
        if record.len() != columns.len() {
            return Err(format!(
                "{source}, line {line_no}: {} fields, the columns are {}",
                record.len(),
                columns.join(",")
            ));
        }
        let line = line_of(columns, &record).map_err(|err| format!("{source}, line {line_no}: {err}"))?;
        visit(row_of(line, line_no, check).map_err(|err| format!("{source}, line {line_no}: {err}"))?)?;
    }
    if let Some(columns) = &names {
        if !columns.contains(&"user") && !columns.contains(&"op") {
            return Err(format!("{source}: the columns ({}) name no user column", columns.join(",")));
        }
    }
    Ok(())
}

/// A column named twice would have one of its fields dropped in silence.
fn refuse_repeated(columns: &[&'static str]) -> Result<(), String> {
    for (at, column) in columns.iter().enumerate() {
        if *column != "-" && columns[..at].contains(column) {
            return Err(format!("column {column:?} appears twice (a column to ignore is named -)"));
        }
    }
    Ok(())
}

/// A field as an error shows it: quoted, and cut after 64 characters (a
/// stray quote can make a field of the rest of the file).
fn shown(raw: &str) -> String {
    const SHOWN_MAX: usize = 64;
    match raw.char_indices().nth(SHOWN_MAX) {
        Some((cut, _)) => format!("{:?}… ({} bytes)", &raw[..cut], raw.len()),
        None => format!("{raw:?}"),
    }
}

/// A CSV record as a JSONL line.
fn line_of(columns: &[&'static str], record: &csv::StringRecord) -> Result<Line, String> {
    let mut line = Line::default();
    for (column, raw) in columns.iter().zip(record.iter()) {
        // Ids are taken as they are (spaces included: the API accepts them
        // and `export` writes them so); every other field is trimmed.
        let verbatim = matches!(*column, "user" | "item" | "event_id");
        let field = if verbatim { raw } else { raw.trim() };
        if field.is_empty() {
            continue;
        }
        let number = |name: &str| field.parse::<f64>().map_err(|_| format!("{name}: {} is not a number", shown(raw)));
        match *column {
            "user" => line.user = Some(field.to_string()),
            "item" => line.item = Some(field.to_string()),
            "rating" => line.value = Some(number("rating")?),
            "kind" => line.kind = Some(field.to_string()),
            "weight" => line.weight = Some(number("weight")?),
            "timestamp" => {
                let seconds = number("timestamp")?;
                line.timestamp_ms = Some((seconds * 1000.0).round() as i64);
            }
            "timestamp_ms" => {
                line.timestamp_ms =
                    Some(field.parse().map_err(|_| format!("timestamp_ms: {} is not an integer", shown(raw)))?)
            }
            "event_id" => line.event_id = Some(field.to_string()),
            "op" => line.op = Some(field.to_string()),
            "lsn" => line.lsn = Some(field.parse().map_err(|_| format!("lsn: {} is not an integer", shown(raw)))?),
            _ => {}
        }
    }
    Ok(line)
}

/// Gives each event without an id `import:<SHA-256 of its fields>:<n>`,
/// `n` counting identical rows before it: the same rows get the same ids
/// in every run, whatever else the file holds. It holds a count per
/// distinct row, keyed by the 12 bytes of the hash the id shows (20–40
/// bytes a row with the table's slack).
#[derive(Default)]
struct IdDeriver {
    seen: HashMap<[u8; 12], u64>,
}

/// The users forgotten and items removed so far in the file. A second run
/// of the file forgets the user (removes the item) again, so an event of
/// theirs after that line must be ingested again too: it goes in without
/// an event id (none derived, the file's own dropped), which the dedup
/// window would otherwise find from the first run and skip, losing it.
#[derive(Default)]
struct Gone {
    users: std::collections::HashSet<String>,
    items: std::collections::HashSet<String>,
}

impl Gone {
    /// Notes a forget or a remove; whether `row` is an event of a user or
    /// an item gone earlier in the file.
    fn after_gone(&mut self, row: &Row) -> bool {
        match &row.action {
            Action::ForgetUser(user) => {
                self.users.insert(user.clone());
                false
            }
            Action::RemoveItem(item) => {
                self.items.insert(item.clone());
                false
            }
            Action::Event(pair) => self.users.contains(&pair.1.user) || self.items.contains(&pair.1.item),
        }
    }
}

/// Takes the event id off an event that must go in again on every run
/// ([`Gone`]).
fn without_id(row: &mut Row) {
    if let Action::Event(pair) = &mut row.action {
        pair.0.event_id = None;
        pair.1.event_id = None;
    }
}

impl IdDeriver {
    fn derive(&mut self, row: &mut Row) {
        let Action::Event(pair) = &mut row.action else { return };
        let (api, event) = pair.as_mut();
        if api.event_id.is_some() {
            return;
        }
        let mut hash = Sha256::new();
        for field in [api.user.as_str(), api.item.as_str(), api.kind.as_str()] {
            hash.update((field.len() as u64).to_le_bytes());
            hash.update(field.as_bytes());
        }
        hash.update(api.value.map_or(u64::MAX, f64::to_bits).to_le_bytes());
        hash.update(api.weight.map_or(u64::MAX, f64::to_bits).to_le_bytes());
        hash.update(api.timestamp_ms.map_or(i64::MIN, |at| at).to_le_bytes());
        let digest: [u8; 32] = hash.finalize().into();
        let mut key = [0u8; 12];
        key.copy_from_slice(&digest[..12]);
        let count = self.seen.entry(key).or_insert(0);
        let id = format!("import:{}:{count}", key.iter().map(|byte| format!("{byte:02x}")).collect::<String>());
        *count += 1;
        api.event_id = Some(id.clone());
        event.event_id = Some(id);
    }
}

/// Gathers consecutive rows into the groups that go in one call each:
/// events of one LSN (or up to `batch` events without one), or a single
/// forget/remove.
struct Grouper {
    batch: usize,
    /// The most bytes a group without an LSN may encode to (estimated by
    /// `encoded_bytes`): the log's record limit.
    bytes_max: usize,
    pending: Vec<Row>,
    pending_bytes: usize,
}

/// An upper bound of what an event encodes to in a log record: its ids and
/// at most 32 bytes for the kind, weight, time and lengths.
fn encoded_bytes(row: &Row) -> usize {
    match &row.action {
        Action::Event(pair) => {
            let event = &pair.1;
            event.user.len() + event.item.len() + event.event_id.as_ref().map_or(0, String::len) + 32
        }
        Action::ForgetUser(id) | Action::RemoveItem(id) => id.len() + 32,
    }
}

/// What a record holds besides its events (its kind, the ingest time, the
/// count), at most.
const RECORD_OVERHEAD: usize = 64;

/// The most bytes a record's payload may have in the log `config` opens:
/// `record_bytes_max`, and never more than one segment holds.
fn record_limit(config: &EngineConfig) -> usize {
    let wal = config.wal.clone();
    let segment_bytes = wal.segment_bytes;
    wal.segment_bytes(segment_bytes).record_bytes_max as usize
}

impl Grouper {
    fn new(batch: usize, record_bytes_max: usize) -> Grouper {
        Grouper {
            batch: batch.max(1),
            bytes_max: record_bytes_max.saturating_sub(RECORD_OVERHEAD),
            pending: Vec::new(),
            pending_bytes: 0,
        }
    }

    /// Takes the next row; returns the group it closed, if it closed one.
    fn push(&mut self, row: Row) -> Option<Vec<Row>> {
        let bytes = encoded_bytes(&row);
        let joins = self.pending.first().is_some_and(|first| {
            matches!(first.action, Action::Event(_))
                && matches!(row.action, Action::Event(_))
                && row.lsn == first.lsn
                && (first.lsn.is_some()
                    || (self.pending.len() < self.batch && self.pending_bytes + bytes <= self.bytes_max))
        });
        if joins || self.pending.is_empty() {
            self.pending.push(row);
            self.pending_bytes += bytes;
            return None;
        }
        self.pending_bytes = bytes;
        Some(std::mem::replace(&mut self.pending, vec![row]))
    }
}

/// What an import did.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Imported {
    pub(crate) events: u64,
    pub(crate) duplicates: u64,
    pub(crate) users_forgotten: u64,
    pub(crate) items_removed: u64,
}

/// Ingests one group of rows into `engine`.
pub(crate) fn into_engine(engine: &Engine, group: &[Row], done: &mut Imported) -> Result<(), String> {
    let Some(first) = group.first() else { return Ok(()) };
    let line = first.line;
    match &first.action {
        Action::Event(_) => {
            let events: Vec<Event> = group
                .iter()
                .filter_map(|row| match &row.action {
                    Action::Event(pair) => Some(pair.1.clone()),
                    _ => None,
                })
                .collect();
            let receipts = engine.ingest_batch(&events).map_err(|err| format!("line {line}: {err}"))?;
            done.events += receipts.len() as u64;
            done.duplicates += receipts.iter().filter(|receipt| receipt.duplicate).count() as u64;
        }
        Action::ForgetUser(user) => {
            engine.forget_user(user).map_err(|err| format!("line {line}: {err}"))?;
            done.users_forgotten += 1;
        }
        Action::RemoveItem(item) => {
            engine.remove_item(item).map_err(|err| format!("line {line}: {err}"))?;
            done.items_removed += 1;
        }
    }
    Ok(())
}

/// Sends one group of rows to a running server, in batches of at most
/// `batch` events.
pub(crate) fn into_server(
    remote: &crate::client::Remote,
    group: &[Row],
    batch: usize,
    done: &mut Imported,
) -> Result<(), String> {
    let Some(first) = group.first() else { return Ok(()) };
    let line = first.line;
    match &first.action {
        Action::Event(_) => {
            for chunk in group.chunks(batch.max(1)) {
                let events: Vec<&ApiEvent> = chunk
                    .iter()
                    .filter_map(|row| match &row.action {
                        Action::Event(pair) => Some(&pair.0),
                        _ => None,
                    })
                    .collect();
                let body =
                    serde_json::to_vec(&serde_json::json!({ "events": events })).map_err(|err| err.to_string())?;
                let answer = remote
                    .call("POST", "/v1/events", "application/json", &body)
                    .map_err(|err| format!("line {line}: {err}"))?;
                let receipts = answer["receipts"].as_array().map_or(&[][..], Vec::as_slice);
                if receipts.len() != events.len() {
                    return Err(format!(
                        "line {line}: the server acknowledged {} of {} events",
                        receipts.len(),
                        events.len()
                    ));
                }
                done.events += receipts.len() as u64;
                done.duplicates += receipts.iter().filter(|receipt| receipt["duplicate"] == true).count() as u64;
            }
        }
        Action::ForgetUser(user) => {
            let path = format!("/v1/users/{}", crate::client::path_segment(user));
            remote.call("DELETE", &path, "application/json", b"").map_err(|err| format!("line {line}: {err}"))?;
            done.users_forgotten += 1;
        }
        Action::RemoveItem(item) => {
            let path = format!("/v1/items/{}", crate::client::path_segment(item));
            remote.call("DELETE", &path, "application/json", b"").map_err(|err| format!("line {line}: {err}"))?;
            done.items_removed += 1;
        }
    }
    Ok(())
}

/// `--format` of `export`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// One JSON object per line (the shape `import` reads).
    Jsonl,
    /// A header row, then one row per event (`import` reads it too).
    Csv,
}

/// The CSV columns of an export, in order.
const EXPORT_COLUMNS: [&str; 9] = ["op", "lsn", "user", "item", "kind", "rating", "weight", "timestamp_ms", "event_id"];

/// What an export wrote.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Exported {
    pub(crate) lines: u64,
    pub(crate) records: u64,
    /// Model and catalogue records, which an events export does not carry
    /// (the model files are in a backup; `export --items` writes the
    /// catalogue, as state).
    pub(crate) model_records_skipped: u64,
    pub(crate) lsn_first: u64,
    pub(crate) lsn_last: u64,
}

/// The JSONL lines of one log record.
fn lines_of(lsn: u64, record: &LogRecord<'_>) -> Vec<Line> {
    match record {
        LogRecord::Events(batch) => batch
            .events
            .iter()
            .map(|event| {
                let (kind, value, weight) = match event.kind {
                    LoggedKind::Rating => ("rating", Some(f64::from(event.weight)), None),
                    LoggedKind::View => ("view", None, Some(f64::from(event.weight))),
                    LoggedKind::Click => ("click", None, Some(f64::from(event.weight))),
                    LoggedKind::Cart => ("cart", None, Some(f64::from(event.weight))),
                    LoggedKind::Purchase => ("purchase", None, Some(f64::from(event.weight))),
                    // A custom kind's name is not logged (it is not needed to
                    // rebuild state): its weight is.
                    LoggedKind::Custom => ("view", None, Some(f64::from(event.weight))),
                };
                Line {
                    op: None,
                    lsn: Some(lsn),
                    user: Some(event.user.to_string()),
                    item: Some(event.item.to_string()),
                    kind: Some(kind.to_string()),
                    value,
                    weight,
                    timestamp_ms: Some(event.timestamp_ms),
                    event_id: event.event_id.map(str::to_string),
                }
            })
            .collect(),
        LogRecord::ForgetUser(forget) => vec![Line {
            op: Some("forget_user".to_string()),
            lsn: Some(lsn),
            user: Some(forget.user.to_string()),
            ..Line::default()
        }],
        LogRecord::RemoveItem(remove) => vec![Line {
            op: Some("remove_item".to_string()),
            lsn: Some(lsn),
            item: Some(remove.item.to_string()),
            ..Line::default()
        }],
        // A replica's record (docs/CLUSTER.md): the record it carries.
        LogRecord::Replicated { record, .. } => lines_of(lsn, record),
        // Model records (the files are in a backup) and the catalogue's
        // records (`recwal export --items` writes the catalogue as state):
        // counted by the caller and named in its warning.
        _ => Vec::new(),
    }
}

/// Writes every record of the log in `log` (a data dir's `wal/`, no
/// server holding it) to `out`. The log must start at LSN 1: events a
/// checkpoint released are only in the snapshot, as state, not events.
pub(crate) fn export(
    log: &Path,
    config: &recwal::wal::WalConfig,
    format: ExportFormat,
    out: &mut dyn Write,
) -> Result<Exported, String> {
    let mut done = Exported::default();
    let mut failure: Option<String> = None;
    let mut sink = match format {
        ExportFormat::Jsonl => Sink::Jsonl(out),
        ExportFormat::Csv => {
            let mut writer = csv::WriterBuilder::new().from_writer(out);
            writer.write_record(EXPORT_COLUMNS).map_err(|err| err.to_string())?;
            Sink::Csv(Box::new(writer))
        }
    };
    let mut lsn_expected = 1u64;
    let inspection = recwal::wal::inspect(log, config, &mut |info, payload| {
        if failure.is_some() {
            return;
        }
        if info.lsn != lsn_expected {
            failure = Some(if lsn_expected == 1 {
                format!(
                    "the log starts at LSN {}: the events before it were released by a checkpoint and are only in the \
                     snapshot, as state; export needs the whole history in the log (take a `recwal backup` instead)",
                    info.lsn
                )
            } else {
                format!(
                    "LSN {} follows LSN {}: the log has a gap (run `recwal wal verify`)",
                    info.lsn,
                    lsn_expected - 1
                )
            });
            return;
        }
        lsn_expected += 1;
        let record = match LogRecord::decode(info.lsn, info.kind, payload) {
            Ok(record) => record,
            Err(err) => {
                failure = Some(err.to_string());
                return;
            }
        };
        let lines = lines_of(info.lsn, &record);
        if lines.is_empty() {
            done.model_records_skipped += 1;
        }
        done.records += 1;
        if done.lsn_first == 0 {
            done.lsn_first = info.lsn;
        }
        done.lsn_last = info.lsn;
        for line in lines {
            done.lines += 1;
            if let Err(err) = sink.write(&line) {
                failure = Some(format!("writing the export: {err}"));
                return;
            }
        }
    })
    .map_err(|err| err.to_string())?;
    if let Some(failure) = failure {
        return Err(failure);
    }
    if !inspection.report.is_clean() {
        return Err(format!(
            "the log is damaged (run `recwal wal verify {}`); the export stopped at LSN {}",
            log.display(),
            done.lsn_last
        ));
    }
    sink.flush()?;
    Ok(done)
}

/// Where export lines go.
enum Sink<'a> {
    Jsonl(&'a mut dyn Write),
    Csv(Box<csv::Writer<&'a mut dyn Write>>),
}

impl Sink<'_> {
    fn write(&mut self, line: &Line) -> Result<(), String> {
        match self {
            Sink::Jsonl(out) => {
                let text = serde_json::to_string(line).map_err(|err| err.to_string())?;
                writeln!(out, "{text}").map_err(|err| err.to_string())
            }
            Sink::Csv(writer) => writer
                .write_record([
                    line.op.clone().unwrap_or_else(|| "event".to_string()),
                    line.lsn.map(|lsn| lsn.to_string()).unwrap_or_default(),
                    line.user.clone().unwrap_or_default(),
                    line.item.clone().unwrap_or_default(),
                    line.kind.clone().unwrap_or_default(),
                    line.value.map(|value| value.to_string()).unwrap_or_default(),
                    line.weight.map(|weight| weight.to_string()).unwrap_or_default(),
                    line.timestamp_ms.map(|at| at.to_string()).unwrap_or_default(),
                    line.event_id.clone().unwrap_or_default(),
                ])
                .map_err(|err| err.to_string()),
        }
    }

    fn flush(&mut self) -> Result<(), String> {
        match self {
            Sink::Jsonl(out) => out.flush().map_err(|err| err.to_string()),
            Sink::Csv(writer) => writer.flush().map_err(|err| err.to_string()),
        }
    }
}

/// `--out` of export: a file (written whole, then renamed) or stdout.
pub(crate) fn export_to(
    log: &Path,
    config: &recwal::wal::WalConfig,
    format: ExportFormat,
    out: Option<&Path>,
) -> Result<Exported, String> {
    match out {
        None => export(log, config, format, &mut std::io::stdout().lock()),
        Some(path) if path == Path::new("-") => export(log, config, format, &mut std::io::stdout().lock()),
        Some(path) => crate::output::write_output(path, |out| export(log, config, format, out)),
    }
}

#[cfg(test)]
mod line_tests {
    use super::*;

    #[test]
    fn a_bad_row_is_named_by_its_own_line_with_any_line_ends() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, text) in [
            ("lf.csv", "user,item,kind,value\nu1,i1,rating,4\n\nu2,i2,rating,x\n"),
            ("crlf.csv", "user,item,kind,value\r\nu1,i1,rating,4\r\n\r\nu2,i2,rating,x\r\n"),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, text).expect("write");
            let options = ReadOptions { delimiter: None, columns: None, header: true, derive_ids: false };
            let Err(err) = Input::open(&path).and_then(|input| check(&input, &options, &Rules::AnyServer)) else {
                panic!("{name}: the bad rating was read");
            };
            assert!(err.contains(", line 4:"), "{name}: {err}");
        }
    }
}

#[cfg(test)]
mod shown_tests {
    use super::*;

    /// An error shows at most the start of a long field, and its size.
    #[test]
    fn a_long_bad_field_is_cut_in_the_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("long.csv");
        std::fs::write(&path, format!("user,item,rating\nu1,i1,{}\n", "9x".repeat(10_000))).expect("write");
        let options = ReadOptions { delimiter: None, columns: None, header: true, derive_ids: false };
        let Err(err) = Input::open(&path).and_then(|input| check(&input, &options, &Rules::AnyServer)) else {
            panic!("the bad rating was read");
        };
        assert!(err.contains("line 2: rating: \"9x9x") && err.contains("… (20000 bytes) is not a number"), "{err}");
        assert!(err.len() < 300, "{} bytes: {err}", err.len());
    }
}

#[cfg(test)]
mod reading_tests {
    use super::*;

    fn options() -> ReadOptions {
        ReadOptions { delimiter: None, columns: None, header: true, derive_ids: true }
    }

    fn lines(rows: &[Row]) -> Vec<u64> {
        rows.iter().map(|row| row.line).collect()
    }

    /// Events of one LSN go together whatever `batch` says; others by
    /// `batch`; a forget or remove alone.
    #[test]
    fn groups_follow_lsns_batches_and_ops() -> Result<(), String> {
        let dir = tempfile::tempdir().map_err(|err| err.to_string())?;
        let path = dir.path().join("rows.jsonl");
        let text = [
            r#"{"lsn":1,"user":"u1","item":"a","kind":"view"}"#,
            r#"{"lsn":1,"user":"u1","item":"b","kind":"view"}"#,
            r#"{"lsn":1,"user":"u1","item":"c","kind":"view"}"#,
            r#"{"lsn":2,"user":"u2","item":"a","kind":"view"}"#,
            r#"{"user":"u3","item":"a","kind":"view"}"#,
            r#"{"user":"u3","item":"b","kind":"view"}"#,
            r#"{"user":"u3","item":"c","kind":"view"}"#,
            r#"{"op":"forget_user","user":"u3"}"#,
            r#"{"user":"u4","item":"a","kind":"view"}"#,
        ]
        .join("\n");
        std::fs::write(&path, text).map_err(|err| err.to_string())?;
        let checked = check(&Input::open(&path)?, &options(), &Rules::AnyServer)?;
        assert_eq!((checked.rows, checked.events), (9, 8));
        let mut groups = Vec::new();
        replay(&Input::open(&path)?, &options(), &Rules::AnyServer, &checked, 2, &mut |group| {
            groups.push(lines(group));
            Ok(())
        })?;
        assert_eq!(groups, vec![vec![1, 2, 3], vec![4], vec![5, 6], vec![7], vec![8], vec![9]]);
        Ok(())
    }

    /// A file changed between the readings writes nothing; the same rows
    /// get the same derived ids in both readings and in every run.
    #[test]
    fn a_file_changed_after_its_check_writes_nothing() -> Result<(), String> {
        let dir = tempfile::tempdir().map_err(|err| err.to_string())?;
        let path = dir.path().join("rows.csv");
        std::fs::write(&path, "user,item,rating\nu1,a,4\nu1,a,4\nu2,b,3\n").map_err(|err| err.to_string())?;
        let checked = check(&Input::open(&path)?, &options(), &Rules::AnyServer)?;
        let mut ids = Vec::new();
        replay(&Input::open(&path)?, &options(), &Rules::AnyServer, &checked, 100, &mut |group| {
            for row in group {
                if let Action::Event(pair) = &row.action {
                    ids.push(pair.1.event_id.clone().unwrap_or_default());
                }
            }
            Ok(())
        })?;
        assert_eq!(ids.len(), 3);
        assert!(ids[0].starts_with("import:") && ids[0].ends_with(":0") && ids[1].ends_with(":1"), "{ids:?}");
        assert_eq!(ids[0].trim_end_matches(":0"), ids[1].trim_end_matches(":1"), "identical rows, counted");
        assert_ne!(ids[0].trim_end_matches(":0"), ids[2].trim_end_matches(":0"));

        std::fs::write(&path, "user,item,rating\nu1,a,4\nu1,a,4\nu2,b,3\nu3,c,x\n").map_err(|err| err.to_string())?;
        let mut written = 0;
        let refused = replay(&Input::open(&path)?, &options(), &Rules::AnyServer, &checked, 100, &mut |group| {
            written += group.len();
            Ok(())
        });
        assert!(refused.as_ref().is_err_and(|err| err.contains("changed after it was checked")), "{refused:?}");
        assert_eq!(written, 0);
        Ok(())
    }

    /// A line appended while the file is written (after its check) is not
    /// read: every line checked is written, and the change is reported.
    #[test]
    fn a_line_appended_during_the_writing_is_not_read_and_the_change_is_reported() -> Result<(), String> {
        let dir = tempfile::tempdir().map_err(|err| err.to_string())?;
        let path = dir.path().join("rows.csv");
        let rows: String = (0..20_000).map(|at| format!("u{at},i{},4\n", at % 50)).collect();
        std::fs::write(&path, format!("user,item,rating\n{rows}")).map_err(|err| err.to_string())?;
        let input = Input::open(&path)?;
        let checked = check(&input, &options(), &Rules::AnyServer)?;
        let mut written = 0;
        let result = replay(&input, &options(), &Rules::AnyServer, &checked, 10, &mut |group| {
            if written == 0 {
                // The reader is a few groups and one buffer ahead.
                let mut file = std::fs::OpenOptions::new().append(true).open(&path).map_err(|err| err.to_string())?;
                std::io::Write::write_all(&mut file, b"u1,i1,lots\n").map_err(|err| err.to_string())?;
            }
            written += group.len();
            Ok(())
        });
        let err = result.err().unwrap_or_default();
        assert!(err.contains("the file changed while it was imported"), "{err}");
        assert_eq!(written, 20_000);
        Ok(())
    }

    /// A file cut short during the writing, in the middle of a line that
    /// still parses (an empty last field), stops there: that half line is
    /// not ingested.
    #[test]
    fn a_file_cut_short_during_the_writing_ingests_no_half_line() -> Result<(), String> {
        let dir = tempfile::tempdir().map_err(|err| err.to_string())?;
        let path = dir.path().join("rows.csv");
        let header = "user,item,rating,timestamp\n";
        let row = |at: u32| format!("u{at},i{at},4,{}\n", 1_600_000_000 + at);
        let rows: String = (0..20_000).map(row).collect();
        std::fs::write(&path, format!("{header}{rows}")).map_err(|err| err.to_string())?;
        // Cut right after "u15000,i15000,4,": the line would parse with no timestamp.
        let cut = header.len() + (0..15_000).map(|at| row(at).len()).sum::<usize>() + "u15000,i15000,4,".len();
        let input = Input::open(&path)?;
        let checked = check(&input, &options(), &Rules::AnyServer)?;
        let mut users = Vec::new();
        let result = replay(&input, &options(), &Rules::AnyServer, &checked, 10, &mut |group| {
            if users.is_empty() {
                let file = std::fs::OpenOptions::new().write(true).open(&path).map_err(|err| err.to_string())?;
                file.set_len(cut as u64).map_err(|err| err.to_string())?;
            }
            for row in group {
                if let Action::Event(pair) = &row.action {
                    users.push(pair.1.user.clone());
                }
            }
            Ok(())
        });
        let err = result.err().unwrap_or_default();
        assert!(err.contains("cut short"), "{err}");
        assert!(!users.contains(&"u15000".to_string()), "the half line was ingested");
        assert_eq!(users.last().map(String::as_str), Some("u14999"));
        Ok(())
    }

    /// The first reading refuses a forget of a user no event before it
    /// names, unless the data dir knows it.
    #[test]
    fn a_forget_before_any_event_of_its_user_needs_the_data_dir_to_know_it() -> Result<(), String> {
        let dir = tempfile::tempdir().map_err(|err| err.to_string())?;
        let path = dir.path().join("rows.jsonl");
        let text = [
            r#"{"op":"forget_user","user":"u1"}"#,
            r#"{"user":"u1","item":"a","kind":"view"}"#,
            r#"{"op":"forget_user","user":"u1"}"#,
            r#"{"op":"remove_item","item":"a"}"#,
        ]
        .join("\n");
        std::fs::write(&path, text).map_err(|err| err.to_string())?;
        let checked = check(&Input::open(&path)?, &options(), &Rules::AnyServer)?;
        let refused = checked.check_known(&|_| false, &|_| false);
        assert!(
            refused.as_ref().is_err_and(|err| err.starts_with("line 1: forget_user of unknown user")),
            "{refused:?}"
        );
        assert!(checked.check_known(&|user| user == "u1", &|_| false).is_ok());
        Ok(())
    }
}

#[cfg(test)]
mod replicated_tests {
    use recwal::record::{EventsV1, LoggedEvent};

    use super::*;

    /// A replica's log (record kind 12) exports the events it carries.
    #[test]
    fn a_replicated_record_exports_the_events_it_carries() {
        let event = LoggedEvent {
            user: "u1",
            item: "i1",
            kind: LoggedKind::Click,
            weight: 2.0,
            timestamp_ms: 7,
            event_id: Some("e1"),
        };
        let inner = LogRecord::Events(EventsV1 { ingested_ms: 5, events: vec![event] });
        let plain = lines_of(3, &inner);
        let replicated = lines_of(3, &LogRecord::Replicated { stream_seq: 9, record: Box::new(inner) });
        assert_eq!(replicated.len(), 1);
        assert_eq!(serde_json::to_string(&replicated).ok(), serde_json::to_string(&plain).ok());
        assert_eq!(replicated[0].event_id.as_deref(), Some("e1"));
    }
}
