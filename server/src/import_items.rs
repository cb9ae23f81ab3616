//! `recwal import --items FILE`: a catalogue file (CSV or JSONL) into a
//! data dir, one logged upsert per item through `Engine::upsert_item`.
//!
//! The whole file is read and checked before the data dir is touched: a
//! line that does not parse, or an item that breaks a limit of the catalogue
//! (the engine's constants), is refused naming the line and the field, and
//! nothing is written. (The engine checks every item again as it logs it.)
//!
//! Formats, by the file's extension:
//! - `.jsonl` / `.ndjson`: one JSON object per line, the body of
//!   `PUT /v1/items/{item}` with `id` required: `{"id": "i1", "categories":
//!   ["drama"], "labels": {"price": 9.5}, "hidden": false, "timestamp_ms":
//!   …, "expires_ms": …}`. Blank lines are skipped.
//! - `.csv` (comma) / `.tsv` (tab): a header row, then one item per row.
//!   Columns: `id` (required), `categories` (`|`-separated), `hidden`
//!   (`true`/`false`/`1`/`0`, empty: false), `timestamp` and `expires`
//!   (milliseconds since the Unix epoch, `YYYY-MM-DD`, or
//!   `YYYY-MM-DDTHH:MM:SS[.fff]Z`, all UTC; empty: none; `timestamp_ms` and
//!   `expires_ms` are accepted as names too), and any number of
//!   `label.<key>` columns: the item's label `<key>`, a number when the
//!   cell reads as a finite number, text otherwise, none when empty. Quoting
//!   follows RFC 4180 (the `csv` crate). Any other column is refused.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, IsTerminal};
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use recwal::{
    Durability, Engine, Item, LabelValue, CATEGORY_BYTES_MAX, ID_BYTES_MAX, ITEM_CATEGORIES_MAX, LABELS_MAX,
    LABEL_KEY_BYTES_MAX, LABEL_TEXT_BYTES_MAX,
};
use tracing::info;

use crate::catalogue::ItemBody;
use crate::datadir;

/// Reads `file` whole, checks every item, then upserts them into `data_dir`
/// (created if absent or empty) and writes a snapshot.
pub(crate) fn import_items(
    file: &Path,
    data_dir: &Path,
    engine: &crate::tools::EngineConfigArgs,
) -> Result<ExitCode, String> {
    let data_dir = datadir::existing_or_new(data_dir).map_err(|err| err.to_string())?;
    let items = load_items(file)?;
    let config = engine.engine_config(&data_dir)?;
    let engine = Engine::open(&data_dir, config).map_err(|err| format!("opening {}: {err}", data_dir.display()))?;
    let started = Instant::now();
    let mut last = Instant::now();
    let total = items.len();
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(total as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("import {bar:40} {pos}/{len} items ({per_sec}, eta {eta})")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    for (done, (line, item)) in items.iter().enumerate() {
        // Durable together at the end: the checkpoint below syncs the log
        // before its snapshot, and nothing is acknowledged before that.
        engine
            .upsert_item_with(item, Durability::Never)
            .map_err(|err| format!("{}, line {line}: {err}", file.display()))?;
        if let Some(bar) = &bar {
            bar.set_position(done as u64 + 1);
        }
        if last.elapsed().as_secs() >= 1 || done + 1 == total {
            last = Instant::now();
            info!(items = done + 1, total, "import progress");
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    engine.checkpoint().map_err(|err| err.to_string())?;
    engine.close().map_err(|err| err.to_string())?;
    let message = format!("imported {total} items from {} in {:.1} s", file.display(), started.elapsed().as_secs_f64());
    std::io::Write::write_all(&mut std::io::stdout().lock(), format!("{message}\n").as_bytes())
        .map_err(|err| format!("writing to stdout: {err}"))?;
    Ok(ExitCode::SUCCESS)
}

/// Every item of `file` with its line number, checked.
pub(crate) fn load_items(file: &Path) -> Result<Vec<(u64, Item)>, String> {
    let extension = file.extension().and_then(|extension| extension.to_str()).unwrap_or("").to_ascii_lowercase();
    let items = match extension.as_str() {
        "jsonl" | "ndjson" => read_jsonl(file)?,
        "csv" => read_csv(file, b',')?,
        "tsv" => read_csv(file, b'\t')?,
        _ => {
            return Err(format!(
                "{}: an items file must end in .csv, .tsv, .jsonl or .ndjson (its format), got {extension:?}",
                file.display()
            ))
        }
    };
    if items.is_empty() {
        return Err(format!("{}: no items", file.display()));
    }
    for (line, item) in &items {
        check(item).map_err(|err| format!("{}, line {line}: invalid {err}", file.display()))?;
    }
    Ok(items)
}

fn read_jsonl(file: &Path) -> Result<Vec<(u64, Item)>, String> {
    let reader = BufReader::new(std::fs::File::open(file).map_err(|err| format!("{}: {err}", file.display()))?);
    let mut items = Vec::new();
    for (at, line) in reader.lines().enumerate() {
        let number = at as u64 + 1;
        let line = line.map_err(|err| format!("{}, line {number}: {err}", file.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let body: ItemBody =
            serde_json::from_str(&line).map_err(|err| format!("{}, line {number}: {err}", file.display()))?;
        let id = body.id.clone().ok_or_else(|| format!("{}, line {number}: missing field `id`", file.display()))?;
        let item = body.into_item(id);
        items.push((number, item));
    }
    Ok(items)
}

/// What a CSV column holds.
enum Column {
    Id,
    Categories,
    Hidden,
    Timestamp,
    Expires,
    Label(String),
}

fn column(name: &str) -> Result<Column, String> {
    Ok(match name {
        "id" => Column::Id,
        "categories" => Column::Categories,
        "hidden" => Column::Hidden,
        "timestamp" | "timestamp_ms" => Column::Timestamp,
        "expires" | "expires_ms" => Column::Expires,
        _ => match name.strip_prefix("label.") {
            Some(key) => Column::Label(key.to_string()),
            None => {
                return Err(format!(
                    "unknown column {name:?}: expected id, categories, hidden, timestamp, expires or label.<key>"
                ))
            }
        },
    })
}

fn read_csv(file: &Path, delimiter: u8) -> Result<Vec<(u64, Item)>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(true)
        .from_path(file)
        .map_err(|err| format!("{}: {err}", file.display()))?;
    let headers = reader.headers().map_err(|err| format!("{}, line 1: {err}", file.display()))?.clone();
    let columns: Vec<Column> = headers
        .iter()
        .map(|name| column(name.trim()))
        .collect::<Result<_, _>>()
        .map_err(|err| format!("{}, line 1: {err}", file.display()))?;
    let mut seen = std::collections::HashSet::new();
    for name in headers.iter() {
        if !seen.insert(name.trim()) {
            return Err(format!("{}, line 1: column {name:?} appears twice", file.display()));
        }
    }
    if !columns.iter().any(|column| matches!(column, Column::Id)) {
        return Err(format!("{}, line 1: no `id` column", file.display()));
    }
    let mut items = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|err| format!("{}: {err}", file.display()))?;
        let line = record.position().map_or(0, |position| position.line());
        let at = |err: String| format!("{}, line {line}: {err}", file.display());
        let mut item = Item::default();
        for (column, cell) in columns.iter().zip(record.iter()) {
            match column {
                Column::Id => item.id = cell.to_string(),
                Column::Categories => {
                    item.categories =
                        cell.split('|').filter(|category| !category.is_empty()).map(String::from).collect()
                }
                Column::Hidden => {
                    item.hidden = match cell.trim() {
                        "" | "false" | "0" => false,
                        "true" | "1" => true,
                        other => return Err(at(format!("hidden: {other:?} is not true, false, 1 or 0"))),
                    }
                }
                Column::Timestamp => {
                    item.timestamp_ms = time_ms(cell).map_err(|err| at(format!("timestamp: {err}")))?
                }
                Column::Expires => item.expires_ms = time_ms(cell).map_err(|err| at(format!("expires: {err}")))?,
                Column::Label(key) => {
                    if !cell.is_empty() {
                        let value = match cell.trim().parse::<f64>() {
                            Ok(number) if number.is_finite() => LabelValue::Number(number),
                            _ => LabelValue::Text(cell.to_string()),
                        };
                        item.labels.insert(key.clone(), value);
                    }
                }
            }
        }
        items.push((line, item));
    }
    Ok(items)
}

/// A time cell: empty (none), milliseconds since the Unix epoch, a date
/// `YYYY-MM-DD`, or `YYYY-MM-DDTHH:MM:SS[.fff]Z` (UTC).
fn time_ms(cell: &str) -> Result<Option<i64>, String> {
    let cell = cell.trim();
    if cell.is_empty() {
        return Ok(None);
    }
    if let Ok(ms) = cell.parse::<i64>() {
        return Ok(Some(ms));
    }
    let bad = || format!("{cell:?} is not milliseconds, YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS[.fff]Z");
    let (date, time) = match cell.split_once('T') {
        Some((date, time)) => (date, Some(time.strip_suffix('Z').ok_or_else(bad)?)),
        None => (cell, None),
    };
    let mut parts = date.splitn(3, '-');
    let (Some(year), Some(month), Some(day)) = (parts.next(), parts.next(), parts.next()) else { return Err(bad()) };
    if year.len() != 4 || month.len() != 2 || day.len() != 2 {
        return Err(bad());
    }
    let (year, month, day) = match (year.parse::<i64>(), month.parse::<u32>(), day.parse::<u32>()) {
        (Ok(year), Ok(month), Ok(day)) if (1..=12).contains(&month) && day >= 1 => (year, month, day),
        _ => return Err(bad()),
    };
    if day > days_in_month(year, month) {
        return Err(bad());
    }
    let mut ms = days_from_civil(year, month, day) * 86_400_000;
    if let Some(time) = time {
        let (clock, fraction) = match time.split_once('.') {
            Some((clock, fraction)) => (clock, Some(fraction)),
            None => (time, None),
        };
        let fields: Vec<&str> = clock.split(':').collect();
        let [hours, minutes, seconds] = fields.as_slice() else { return Err(bad()) };
        let (Ok(hours), Ok(minutes), Ok(seconds)) =
            (hours.parse::<i64>(), minutes.parse::<i64>(), seconds.parse::<i64>())
        else {
            return Err(bad());
        };
        if !(0..24).contains(&hours) || !(0..60).contains(&minutes) || !(0..60).contains(&seconds) {
            return Err(bad());
        }
        ms += ((hours * 60 + minutes) * 60 + seconds) * 1000;
        if let Some(fraction) = fraction {
            if fraction.is_empty() || fraction.len() > 9 || !fraction.bytes().all(|byte| byte.is_ascii_digit()) {
                return Err(bad());
            }
            let padded = format!("{fraction:0<3}");
            ms += padded[..3].parse::<i64>().map_err(|_| bad())?;
        }
    }
    Ok(Some(ms))
}

fn days_in_month(year: i64, month: u32) -> u32 {
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The catalogue's limits (`recwal::limits`), checked before anything is
/// written; the error names the field.
fn check(item: &Item) -> Result<(), String> {
    let control = |text: &str| text.chars().any(char::is_control);
    if item.id.is_empty() || item.id.len() > ID_BYTES_MAX || control(&item.id) {
        return Err(format!("id: must be 1–{ID_BYTES_MAX} bytes with no control characters, got {:?}", item.id));
    }
    let mut distinct: Vec<&str> = Vec::new();
    for (at, category) in item.categories.iter().enumerate() {
        if category.is_empty() || category.len() > CATEGORY_BYTES_MAX || control(category) {
            return Err(format!(
                "categories[{at}]: must be 1–{CATEGORY_BYTES_MAX} bytes with no control characters, got {category:?}"
            ));
        }
        if !distinct.contains(&category.as_str()) {
            distinct.push(category);
        }
    }
    if distinct.len() > ITEM_CATEGORIES_MAX {
        return Err(format!("categories: at most {ITEM_CATEGORIES_MAX} distinct, got {}", distinct.len()));
    }
    check_labels(&item.labels)?;
    if let (Some(from), Some(until)) = (item.timestamp_ms, item.expires_ms) {
        if until <= from {
            return Err(format!("expires: must be after the timestamp ({from}), got {until}"));
        }
    }
    Ok(())
}

fn check_labels(labels: &BTreeMap<String, LabelValue>) -> Result<(), String> {
    if labels.len() > LABELS_MAX {
        return Err(format!("labels: at most {LABELS_MAX}, got {}", labels.len()));
    }
    for (key, value) in labels {
        if key.is_empty() || key.len() > LABEL_KEY_BYTES_MAX || key.chars().any(char::is_control) {
            return Err(format!(
                "labels.{key}: a key must be 1–{LABEL_KEY_BYTES_MAX} bytes with no control characters"
            ));
        }
        match value {
            LabelValue::Number(number) if !number.is_finite() => {
                return Err(format!("labels.{key}: must be a finite number"))
            }
            LabelValue::Text(text) if text.len() > LABEL_TEXT_BYTES_MAX || text.chars().any(char::is_control) => {
                return Err(format!(
                    "labels.{key}: text must be at most {LABEL_TEXT_BYTES_MAX} bytes with no control characters"
                ))
            }
            _ => {}
        }
    }
    Ok(())
}

/// Writes the catalogue of `data_dir` (every item with a catalogue entry,
/// in catalogue order) as the JSONL `import_items` reads: one item per line,
/// its id and whole entry. Written whole to `out` (then renamed) or stdout.
pub(crate) fn export_items(
    data_dir: &Path,
    out: Option<&Path>,
    engine: &crate::tools::EngineConfigArgs,
) -> Result<u64, String> {
    let data_dir = datadir::existing(data_dir).map_err(|err| err.to_string())?;
    let mut config = engine.engine_config(&data_dir)?;
    // It only reads: no checkpoint may write a snapshot replayed under
    // settings (the dedup window) other than the server's.
    config.checkpoint.disable_automatic();
    let engine = Engine::open(&data_dir, config).map_err(|err| format!("opening {}: {err}", data_dir.display()))?;
    let mut text = String::new();
    let mut after: Option<String> = None;
    let mut count = 0u64;
    loop {
        let page = engine.items(after.as_deref(), recwal::N_MAX).map_err(|err| err.to_string())?;
        for item in &page.items {
            text.push_str(&serde_json::to_string(item).map_err(|err| err.to_string())?);
            text.push('\n');
            count += 1;
        }
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    engine.close().map_err(|err| err.to_string())?;
    match out {
        Some(path) => crate::output::write_output(path, |out| {
            out.write_all(text.as_bytes()).map_err(|err| format!("writing {}: {err}", path.display()))
        })?,
        None => {
            use std::io::Write;
            std::io::stdout().write_all(text.as_bytes()).map_err(|err| format!("writing stdout: {err}"))?;
        }
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_milliseconds_dates_or_utc_instants() {
        assert_eq!(time_ms(""), Ok(None));
        assert_eq!(time_ms("1234"), Ok(Some(1234)));
        assert_eq!(time_ms("1970-01-01"), Ok(Some(0)));
        assert_eq!(time_ms("1995-01-01"), Ok(Some(788_918_400_000)));
        assert_eq!(time_ms("2000-02-29T12:30:15.25Z"), Ok(Some(951_827_415_250)));
        assert_eq!(time_ms("1969-12-31"), Ok(Some(-86_400_000)));
        for bad in ["01-Jan-1995", "1995-02-29", "1995-13-01", "1995-01-01T25:00:00Z", "1995-01-01T10:00:00", "x"] {
            assert!(time_ms(bad).is_err(), "{bad}");
        }
    }
}
