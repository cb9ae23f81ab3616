//! Ratings files: MovieLens 100k `u.data` and 1M `ratings.dat`, RecBole
//! atomic `.inter`, and CSV/TSV with or without a header, read through the
//! csv crate (quoted fields as pandas writes them).
//!
//! Every parser keeps the rows in file order, skips blank lines, and reports
//! the first broken rule with the file's 1-based line (the header counted)
//! and the field's name.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use super::lines::{count_lines, CountLines, LineNumbers};
use super::EvalError;

/// One rating of one item by one user, as read from a file.
#[derive(Debug, Clone, PartialEq)]
pub struct Rating {
    /// The user's id, as written in the file (never empty).
    pub user: String,
    /// The item's id, as written in the file (never empty).
    pub item: String,
    /// The rating (always finite); 1.0 where the file has no rating column.
    pub value: f32,
    /// When the rating was given, in milliseconds since the Unix epoch, where
    /// the file says.
    pub timestamp_ms: Option<i64>,
}

impl Rating {
    /// The rating as an engine event (kind rating, at its time if known).
    pub fn to_event(&self) -> crate::event::Event {
        let event =
            crate::event::Event::new(self.user.clone(), self.item.clone(), crate::event::EventKind::Rating(self.value));
        match self.timestamp_ms {
            Some(at) => event.at(at),
            None => event,
        }
    }
}

/// The layout of a ratings file. Timestamps are in seconds since the epoch
/// (integer or decimal) in every format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `ml100k`: MovieLens 100k `u.data`, tab-separated
    /// `user item rating timestamp`, no header.
    MovieLens,
    /// `ml1m`: MovieLens 1M/10M `ratings.dat`, `user::item::rating::timestamp`,
    /// no header.
    MovieLens1m,
    /// `inter`: RecBole atomic file, a header of tab-separated `name:type`
    /// fields, then rows; columns found by name (`user_id`, `item_id`, and
    /// optionally `rating` and `timestamp`).
    Inter,
    /// `csv`: comma-separated, quoted as RFC 4180 (and pandas) quote, a header
    /// row or none (see [`LoadOptions::header`]); 2 columns
    /// `user,item` (implicit feedback), 3 `user,item,rating` or 4
    /// `user,item,rating,timestamp`, or any columns named in the header.
    Csv,
    /// `tsv`: as `csv`, tab-separated.
    Tsv,
    /// `jsonl`: one JSON object per line with `user` and `item` (strings or
    /// numbers), optionally `rating` (or `value` with no `kind` or kind
    /// `rating`, as `recwal export` writes it) and `timestamp` (seconds) or
    /// `timestamp_ms`; other keys are ignored. The first line decides
    /// whether the file has ratings; every line must agree.
    Jsonl,
}

impl Format {
    /// Every format, in the order `--help` lists them.
    pub const ALL: [Format; 6] =
        [Format::MovieLens, Format::MovieLens1m, Format::Inter, Format::Csv, Format::Tsv, Format::Jsonl];

    /// The name `--format` takes.
    pub fn name(self) -> &'static str {
        match self {
            Format::MovieLens => "ml100k",
            Format::MovieLens1m => "ml1m",
            Format::Inter => "inter",
            Format::Csv => "csv",
            Format::Tsv => "tsv",
            Format::Jsonl => "jsonl",
        }
    }

    /// The delimiter the format uses unless told otherwise: tab for
    /// MovieLens 100k, `.inter` and TSV, comma for CSV, `::` (no one
    /// character) for MovieLens 1M.
    pub fn delimiter(self) -> Delimiter {
        match self {
            Format::MovieLens | Format::Inter | Format::Tsv => Delimiter::TAB,
            Format::Csv => Delimiter::COMMA,
            // Not used: ml1m lines are split on `::`, JSON lines parsed whole.
            Format::MovieLens1m | Format::Jsonl => Delimiter(':'),
        }
    }

    /// `ml100k, ml1m, inter, csv, tsv, jsonl`, for messages.
    pub fn names() -> String {
        Format::ALL.map(Format::name).join(", ")
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Format {
    type Err = String;

    /// A name of [`Format::name`] (any case), or `movielens`/`u.data` for
    /// ml100k, `ratings.dat` for ml1m.
    fn from_str(text: &str) -> Result<Format, String> {
        let lower = text.to_ascii_lowercase();
        match lower.as_str() {
            "movielens" | "u.data" => return Ok(Format::MovieLens),
            "ratings.dat" | "dat" => return Ok(Format::MovieLens1m),
            "ndjson" | "json" => return Ok(Format::Jsonl),
            _ => {}
        }
        Format::ALL
            .into_iter()
            .find(|format| format.name() == lower)
            .ok_or_else(|| format!("unknown format {text:?}: the formats are {}", Format::names()))
    }
}

/// The field separator of a ratings file: one character that cannot be part
/// of a number or a line ending (tab, `,`, `;`, `|`, a space, …).
///
/// ```
/// use recwal::eval::Delimiter;
/// assert_eq!("tab".parse::<Delimiter>()?.as_char(), '\t');
/// assert_eq!(";".parse::<Delimiter>()?.as_char(), ';');
/// assert!("7".parse::<Delimiter>().is_err());
/// assert!(",,".parse::<Delimiter>().is_err());
/// # Ok::<(), String>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delimiter(char);

impl Delimiter {
    /// A tab: MovieLens `u.data` and RecBole `.inter`.
    pub const TAB: Delimiter = Delimiter('\t');
    /// A comma: CSV.
    pub const COMMA: Delimiter = Delimiter(',');
    /// What a line that lacks the expected delimiter is tried with, to say
    /// which one the file uses instead.
    const CANDIDATES: [Delimiter; 4] = [Delimiter('\t'), Delimiter(','), Delimiter(';'), Delimiter('|')];

    /// Any character but a letter, a digit, `.`, `-`, `+`, `"`, `'` (parts of
    /// ids and numbers, or quotes, which are not supported) or a control
    /// character other than tab.
    pub fn new(separator: char) -> Result<Delimiter, String> {
        let refused = separator.is_alphanumeric()
            || matches!(separator, '.' | '-' | '+' | '"' | '\'')
            || (separator.is_control() && separator != '\t');
        if refused {
            return Err(format!(
                "{separator:?} cannot be a delimiter: letters, digits, `.`, `-`, `+`, quotes and control characters \
                 (but tab) can be part of a field"
            ));
        }
        Ok(Delimiter(separator))
    }

    /// The character.
    pub fn as_char(self) -> char {
        self.0
    }

    /// `tab`, `space`, or the character in backquotes, for messages.
    pub fn name(self) -> String {
        match self.0 {
            '\t' => "tab".to_string(),
            ' ' => "space".to_string(),
            other => format!("`{other}`"),
        }
    }

    /// How to write it as a `--delimiter` value.
    pub fn flag(self) -> String {
        match self.0 {
            '\t' => "tab".to_string(),
            ' ' => "space".to_string(),
            other => format!("'{other}'"),
        }
    }

    /// `tab-separated`, `comma-separated`, or `` `;`-separated ``.
    fn separated(self) -> String {
        match self.0 {
            ',' => "comma-separated".to_string(),
            _ => format!("{}-separated", self.name()),
        }
    }
}

impl std::str::FromStr for Delimiter {
    type Err = String;

    /// One character, or `tab` (also `\t`), `space`, `comma`, `semicolon`, `pipe`.
    fn from_str(text: &str) -> Result<Delimiter, String> {
        let separator = match text {
            "tab" | "\\t" => '\t',
            "space" => ' ',
            "comma" => ',',
            "semicolon" => ';',
            "pipe" => '|',
            _ => {
                let mut chars = text.chars();
                match (chars.next(), chars.next()) {
                    (Some(only), None) => only,
                    _ => {
                        return Err(format!(
                            "{text:?} is not a delimiter: give one character, or tab, space, comma, semicolon, pipe"
                        ))
                    }
                }
            }
        };
        Delimiter::new(separator)
    }
}

/// A rating scale `MIN..MAX`: ratings outside it are refused with their line.
///
/// ```
/// use recwal::eval::RatingScale;
/// let scale: RatingScale = "1..10".parse()?;
/// assert_eq!((scale.min, scale.max), (1.0, 10.0));
/// assert!("5..1".parse::<RatingScale>().is_err());
/// # Ok::<(), String>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RatingScale {
    /// The lowest rating allowed.
    pub min: f32,
    /// The highest rating allowed.
    pub max: f32,
}

impl RatingScale {
    /// The engine's default scale, 0..5 (MovieLens' 1–5 stars and half stars).
    pub const DEFAULT: RatingScale = RatingScale { min: 0.0, max: 5.0 };

    /// Whether `value` is on the scale.
    pub fn contains(self, value: f32) -> bool {
        value >= self.min && value <= self.max
    }
}

impl std::fmt::Display for RatingScale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}..{}", self.min, self.max)
    }
}

impl std::str::FromStr for RatingScale {
    type Err = String;

    /// `MIN..MAX`, finite, `0 ≤ MIN < MAX ≤ 1e6` (the engine's limits).
    fn from_str(text: &str) -> Result<RatingScale, String> {
        let bad = || format!("{text:?} is not a rating scale: give MIN..MAX with 0 ≤ MIN < MAX ≤ 1e6, e.g. 1..10");
        let (min, max) = text.split_once("..").ok_or_else(bad)?;
        let min: f32 = min.trim().parse().map_err(|_| bad())?;
        let max: f32 = max.trim().parse().map_err(|_| bad())?;
        if !(min.is_finite() && max.is_finite() && min >= 0.0 && min < max && max <= crate::limits::WEIGHT_MAX) {
            return Err(bad());
        }
        Ok(RatingScale { min, max })
    }
}

/// How to read a ratings file; `Default` guesses everything.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LoadOptions {
    /// The layout; `None`: [`detect_format`] from the path (CSV for input
    /// without a path).
    pub format: Option<Format>,
    /// The field separator; `None`: the format's own. One byte (ASCII).
    pub delimiter: Option<Delimiter>,
    /// Whether a CSV/TSV file starts with a header row; `None`: detected. The
    /// first row is a header when every field is a known column name (see
    /// [`COLUMN_NAMES`]), or when none of its fields is a number while the
    /// next row has a number in a column where it has none (`uid,iid,score`
    /// over `u1,i1,4`). A header's names place the columns when they name
    /// both the user and the item; otherwise columns go by position.
    pub header: Option<bool>,
    /// Ratings outside this scale are refused with their line; `None`: any
    /// finite rating is read.
    pub scale: Option<RatingScale>,
    /// Where a CSV/TSV file's columns are (`--columns`), instead of a
    /// header's names or their positions. The first row is then data
    /// unless `header` says it is a header, or every field of it is a known
    /// column name (see [`COLUMN_NAMES`]).
    pub columns: Option<ColumnOrder>,
}

/// The columns of a CSV/TSV file in order, by name: `user`, `item`,
/// `rating`, `timestamp` (seconds), or `-` for one to ignore; e.g.
/// `user,-,item,timestamp`. User and item are required; without `rating`
/// the file is implicit feedback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColumnOrder {
    user: usize,
    item: usize,
    rating: Option<usize>,
    timestamp: Option<usize>,
    n_fields: usize,
}

impl ColumnOrder {
    /// Most columns a row may have.
    pub const MAX: usize = 64;
}

impl std::str::FromStr for ColumnOrder {
    type Err = String;

    fn from_str(text: &str) -> Result<ColumnOrder, String> {
        const NAMES: [&str; 4] = ["user", "item", "rating", "timestamp"];
        let names: Vec<&str> = text.split(',').map(str::trim).collect();
        if names.len() > ColumnOrder::MAX {
            return Err(format!("{} columns; at most {}", names.len(), ColumnOrder::MAX));
        }
        let mut slots: [Option<usize>; 4] = [None; 4];
        for (column, name) in names.iter().enumerate() {
            if *name == "-" {
                continue;
            }
            let slot = NAMES.iter().position(|known| known == name).ok_or_else(|| {
                format!("unknown column {name:?}: the names are user, item, rating, timestamp, and - for one to ignore")
            })?;
            if slots[slot].is_some() {
                return Err(format!("column {name:?} is named twice"));
            }
            slots[slot] = Some(column);
        }
        let [Some(user), Some(item), rating, timestamp] = slots else {
            return Err("the columns must name a user and an item (e.g. user,item,timestamp)".to_string());
        };
        Ok(ColumnOrder { user, item, rating, timestamp, n_fields: names.len() })
    }
}

/// A ratings file as read: its ratings in file order, and what it held.
#[derive(Debug, Clone, PartialEq)]
pub struct RatingFile {
    /// The ratings, in file order.
    pub ratings: Vec<Rating>,
    /// The format it was read as.
    pub format: Format,
    /// Whether it has a rating column: without one it is implicit feedback,
    /// every value 1.0.
    pub has_rating: bool,
    /// Whether it has a timestamp column.
    pub has_timestamp: bool,
}

/// The names a CSV/TSV header may give each column (compared in lower case,
/// after a RecBole `:type` suffix is removed).
pub const COLUMN_NAMES: [(&str, &[&str]); 4] = [
    ("user", &["user", "user_id", "userid", "uid", "customer_id", "customerid", "visitorid", "reviewerid"]),
    (
        "item",
        &[
            "item",
            "item_id",
            "itemid",
            "iid",
            "movie",
            "movie_id",
            "movieid",
            "product_id",
            "productid",
            "track_id",
            "book_id",
            "isbn",
            "asin",
        ],
    ),
    ("rating", &["rating", "score", "value", "stars", "preference", "rate"]),
    ("timestamp", &["timestamp", "time", "ts", "unix_timestamp", TIMESTAMP_MS]),
];

/// The header name of a timestamp column in milliseconds (`recwal export
/// --format csv` writes it); every other timestamp column is in seconds.
const TIMESTAMP_MS: &str = "timestamp_ms";

/// Picks the format from the file's extension: `.inter` → `inter`, `.csv` →
/// `csv`, `.tsv` → `tsv`, `.dat` → `ml1m`, `.jsonl`/`.ndjson` → `jsonl`,
/// anything else → `ml100k` (`u.data`).
pub fn detect_format(path: &Path) -> Format {
    match path.extension().and_then(|extension| extension.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("inter") => Format::Inter,
        Some("csv") => Format::Csv,
        Some("tsv") => Format::Tsv,
        Some("dat") => Format::MovieLens1m,
        Some("jsonl" | "ndjson") => Format::Jsonl,
        _ => Format::MovieLens,
    }
}

/// Reads a ratings file in the format [`detect_format`] picks for its path,
/// with that format's delimiter.
pub fn load_ratings(path: &Path) -> Result<Vec<Rating>, EvalError> {
    load_ratings_with(path, None)
}

/// [`load_ratings`] with another delimiter than the format's (`None`: the
/// format's own).
pub fn load_ratings_with(path: &Path, delimiter: Option<Delimiter>) -> Result<Vec<Rating>, EvalError> {
    Ok(load_rating_file(path, &LoadOptions { delimiter, ..LoadOptions::default() })?.ratings)
}

/// Reads a ratings file as `options` say; errors name the file (as given)
/// and the line.
pub fn load_rating_file(path: &Path, options: &LoadOptions) -> Result<RatingFile, EvalError> {
    let file = File::open(path).map_err(|source| EvalError::Open { path: path.to_path_buf(), source })?;
    let options = LoadOptions { format: Some(options.format.unwrap_or_else(|| detect_format(path))), ..*options };
    parse_rating_file(BufReader::new(file), &options, &path.display().to_string())
}

/// Parses ratings from `reader` in `format`, with its own delimiter;
/// `source` names the input in errors. Rows keep the order they have in
/// the input.
pub fn parse_ratings(reader: impl BufRead, format: Format, source: &str) -> Result<Vec<Rating>, EvalError> {
    parse_ratings_with(reader, format, format.delimiter(), source)
}

/// [`parse_ratings`] with fields separated by `delimiter`.
pub fn parse_ratings_with(
    reader: impl BufRead,
    format: Format,
    delimiter: Delimiter,
    source: &str,
) -> Result<Vec<Rating>, EvalError> {
    let options = LoadOptions { format: Some(format), delimiter: Some(delimiter), ..LoadOptions::default() };
    Ok(parse_rating_file(reader, &options, source)?.ratings)
}

/// Parses a whole input as `options` say (format `None`: CSV); `source`
/// names it in errors. The input is taken as a whole or refused: every row
/// must have the number of fields of the first (or of the header), a line
/// that would split on another delimiter is refused as
/// [`EvalError::Delimiter`], and an input without a single rating as
/// [`EvalError::Empty`].
pub fn parse_rating_file(reader: impl Read, options: &LoadOptions, source: &str) -> Result<RatingFile, EvalError> {
    let format = options.format.unwrap_or(Format::Csv);
    let delimiter = options.delimiter.unwrap_or(format.delimiter());
    let parse_error = |line: usize, field: &'static str, rule: String| EvalError::Parse {
        input: source.to_string(),
        line,
        field,
        rule,
    };
    if format == Format::Jsonl {
        return parse_jsonl(reader, options.scale, source);
    }
    if format != Format::MovieLens1m && !delimiter.as_char().is_ascii() {
        return Err(parse_error(1, "delimiter", format!("{} is not one byte (ASCII)", delimiter.name())));
    }
    let fail = |line: usize, failure: Failure| match failure {
        Failure::Field(field, rule) => parse_error(line, field, rule),
        // MovieLens 1M's layout is always `::`: --delimiter does not apply
        // to it, so the way out is another format.
        Failure::Delimiter(found) if format == Format::MovieLens1m => parse_error(
            line,
            "record",
            format!(
                "the line has no `::` but splits on {}: it is not MovieLens 1M's ratings.dat layout; pass --format \
                 csv --delimiter {} (with --columns if it has no header)",
                found.name(),
                found.flag()
            ),
        ),
        Failure::Delimiter(found) => {
            EvalError::Delimiter { input: source.to_string(), line, expected: delimiter, found }
        }
    };
    let mut records = Records::new(reader, format, delimiter, source);
    let mut layout: Option<Layout> = None;
    let mut ratings = Vec::new();
    // The first record of a CSV/TSV, while it waits for the second (header
    // detection).
    let mut pending: Option<(usize, Vec<String>)> = None;
    while let Some((line, fields)) = records.next_record()? {
        if layout.is_none() {
            match format {
                // (JSON lines were parsed above.)
                Format::MovieLens | Format::MovieLens1m | Format::Jsonl => layout = Some(Layout::movielens(format)),
                Format::Inter => {
                    layout = Some(Layout::inter(&fields, delimiter).map_err(|failure| fail(line, failure))?);
                    continue;
                }
                Format::Csv | Format::Tsv if options.columns.is_some() => {
                    let chosen = options.columns.map(|order| Layout::named(&order, delimiter));
                    layout = chosen;
                    let all_named = fields.iter().all(|field| field.trim() == "-" || column_of(field).is_some());
                    if options.header.unwrap_or(all_named) {
                        continue;
                    }
                }
                Format::Csv | Format::Tsv => match pending.take() {
                    None if options.header.is_none() => {
                        pending = Some((line, fields));
                        continue;
                    }
                    None => {
                        let (chosen, is_header) = Layout::tabular(&fields, None, options.header, delimiter)
                            .map_err(|failure| fail(line, failure))?;
                        layout = Some(chosen);
                        if is_header {
                            continue;
                        }
                    }
                    Some((first_line, first)) => {
                        let (chosen, is_header) = Layout::tabular(&first, Some(&fields), None, delimiter)
                            .map_err(|failure| fail(first_line, failure))?;
                        if !is_header {
                            let rating = chosen
                                .row(&first, delimiter, options.scale)
                                .map_err(|failure| fail(first_line, failure))?;
                            ratings.push(rating);
                        }
                        layout = Some(chosen);
                    }
                },
            }
        }
        if let Some(layout) = &layout {
            ratings.push(layout.row(&fields, delimiter, options.scale).map_err(|failure| fail(line, failure))?);
        }
    }
    if let Some((line, first)) = pending {
        // A one-row file: that row is data unless it is all column names.
        let (chosen, is_header) =
            Layout::tabular(&first, None, None, delimiter).map_err(|failure| fail(line, failure))?;
        if !is_header {
            ratings.push(chosen.row(&first, delimiter, options.scale).map_err(|failure| fail(line, failure))?);
        }
        layout = Some(chosen);
    }
    let Some(layout) = layout else {
        if format == Format::Inter {
            return Err(parse_error(1, "header", "missing: a .inter file starts with a header line".to_string()));
        }
        return Err(EvalError::Empty { input: source.to_string() });
    };
    if ratings.is_empty() {
        return Err(EvalError::Empty { input: source.to_string() });
    }
    Ok(RatingFile { ratings, format, has_rating: layout.rating.is_some(), has_timestamp: layout.timestamp.is_some() })
}

/// One line of a `jsonl` file.
#[derive(serde::Deserialize)]
struct JsonLine {
    /// `event` (the default), `forget_user` or `remove_item`, as `recwal
    /// export` writes them.
    op: Option<String>,
    user: Option<JsonId>,
    item: Option<JsonId>,
    rating: Option<f64>,
    value: Option<f64>,
    kind: Option<String>,
    timestamp: Option<f64>,
    timestamp_ms: Option<i64>,
}

/// An id written as a string or a number.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum JsonId {
    Text(String),
    Number(serde_json::Number),
}

impl JsonId {
    fn text(self) -> String {
        match self {
            JsonId::Text(text) => text,
            JsonId::Number(number) => number.to_string(),
        }
    }
}

fn parse_jsonl(reader: impl Read, scale: Option<RatingScale>, source: &str) -> Result<RatingFile, EvalError> {
    let mut ratings = Vec::new();
    let mut has_rating: Option<bool> = None;
    for (index, line) in BufReader::new(reader).lines().enumerate() {
        let line_no = index + 1;
        let line = line.map_err(|source_err| EvalError::Read {
            input: source.to_string(),
            line: line_no,
            source: source_err,
        })?;
        let text = line.trim().trim_start_matches('\u{feff}');
        if text.is_empty() {
            continue;
        }
        let fail = |field: &'static str, rule: String| EvalError::Parse {
            input: source.to_string(),
            line: line_no,
            field,
            rule,
        };
        let parsed: JsonLine = serde_json::from_str(text)
            .map_err(|err| fail("record", format!("not a JSON object of a rating: {err}")))?;
        // An export's forget and remove lines do what they did in the log:
        // the user's (or the item's) ratings before them are gone.
        match parsed.op.as_deref() {
            None | Some("event") => {}
            Some(op @ ("forget_user" | "remove_item")) => {
                let (field, id) = if op == "forget_user" { ("user", parsed.user) } else { ("item", parsed.item) };
                let id = parse_id(field, &id.map(JsonId::text).unwrap_or_default()).map_err(|(f, r)| fail(f, r))?;
                if op == "forget_user" {
                    ratings.retain(|rating: &Rating| rating.user != id);
                } else {
                    ratings.retain(|rating: &Rating| rating.item != id);
                }
                continue;
            }
            Some(other) => {
                return Err(fail("op", format!("{other:?}: expected event, forget_user or remove_item")));
            }
        }
        let user = parse_id("user", &parsed.user.map(JsonId::text).unwrap_or_default()).map_err(|(f, r)| fail(f, r))?;
        let item = parse_id("item", &parsed.item.map(JsonId::text).unwrap_or_default()).map_err(|(f, r)| fail(f, r))?;
        let is_rating_kind = parsed.kind.as_deref().is_none_or(|kind| kind == "rating");
        let value = parsed.rating.or(if is_rating_kind { parsed.value } else { None });
        let expected = *has_rating.get_or_insert(value.is_some());
        let value = match (value, expected) {
            (Some(value), true) => {
                let value = value as f32;
                if !value.is_finite() {
                    return Err(fail("rating", format!("not a finite number: {value}")));
                }
                if let Some(scale) = scale.filter(|scale| !scale.contains(value)) {
                    return Err(fail(
                        "rating",
                        format!(
                            "{value} is outside the rating scale {scale}; give the file's scale with --rating-scale \
                             MIN..MAX"
                        ),
                    ));
                }
                value
            }
            (None, false) => 1.0,
            (Some(_), false) => {
                return Err(fail(
                    "rating",
                    "the first line has none: a file is all ratings or all interactions".to_string(),
                ))
            }
            (None, true) => return Err(fail("rating", "missing: the first line has one".to_string())),
        };
        let timestamp_ms = match (parsed.timestamp_ms, parsed.timestamp) {
            (Some(ms), _) if ms < 0 => {
                return Err(fail("timestamp_ms", format!("a time before 1970 (negative): {ms}")));
            }
            (Some(ms), _) => Some(ms),
            (None, Some(seconds)) => {
                Some(parse_seconds_as_ms("timestamp", &seconds.to_string()).map_err(|(f, r)| fail(f, r))?)
            }
            (None, None) => None,
        };
        ratings.push(Rating { user, item, value, timestamp_ms });
    }
    if ratings.is_empty() {
        return Err(EvalError::Empty { input: source.to_string() });
    }
    let has_timestamp = ratings.iter().all(|rating| rating.timestamp_ms.is_some());
    Ok(RatingFile { ratings, format: Format::Jsonl, has_rating: has_rating.unwrap_or(false), has_timestamp })
}

/// The records of an input with their 1-based first line; blank lines (and
/// records whose fields are all empty) are skipped.
struct Records<R: Read> {
    kind: RecordsKind<R>,
    source: String,
}

enum RecordsKind<R: Read> {
    Csv(csv::Reader<CountLines<R>>, csv::StringRecord, LineNumbers),
    /// MovieLens 1M: lines split on `::`.
    Lines(std::io::Lines<BufReader<R>>, usize),
}

impl<R: Read> Records<R> {
    fn new(reader: R, format: Format, delimiter: Delimiter, source: &str) -> Records<R> {
        let kind = match format {
            Format::MovieLens1m => RecordsKind::Lines(BufReader::new(reader).lines(), 0),
            _ => {
                let quoting = matches!(format, Format::Csv | Format::Tsv);
                let byte = u8::try_from(u32::from(delimiter.as_char())).unwrap_or(b'\t');
                let (reader, newlines) = count_lines(reader);
                let reader = csv::ReaderBuilder::new()
                    .delimiter(byte)
                    .has_headers(false)
                    .flexible(true)
                    .quoting(quoting)
                    // Ids are the file's text, spaces included (as `recwal
                    // import` reads them); ratings and timestamps are
                    // trimmed where they are parsed.
                    .trim(csv::Trim::None)
                    .from_reader(reader);
                RecordsKind::Csv(reader, csv::StringRecord::new(), newlines)
            }
        };
        Records { kind, source: source.to_string() }
    }

    fn next_record(&mut self) -> Result<Option<(usize, Vec<String>)>, EvalError> {
        loop {
            match &mut self.kind {
                RecordsKind::Csv(reader, record, newlines) => {
                    // The csv crate's line numbers leave out blank lines: the
                    // line is counted from the record's byte offset instead.
                    let line_at = |byte: u64| newlines.line_at(byte);
                    let byte_before = reader.position().byte();
                    match reader.read_record(record) {
                        Ok(false) => return Ok(None),
                        Ok(true) => {
                            let line = line_at(record.position().map_or(byte_before, csv::Position::byte));
                            if record.iter().all(|field| field.trim().is_empty()) {
                                continue;
                            }
                            let mut fields: Vec<String> = record.iter().map(str::to_string).collect();
                            if line == 1 {
                                if let Some(first) = fields.first_mut() {
                                    *first = first.trim_start_matches('\u{feff}').to_string();
                                }
                            }
                            return Ok(Some((line, fields)));
                        }
                        Err(err) => {
                            let line = line_at(err.position().map_or(byte_before, csv::Position::byte));
                            let source = match err.into_kind() {
                                csv::ErrorKind::Io(err) => err,
                                csv::ErrorKind::Utf8 { err, .. } => {
                                    std::io::Error::new(std::io::ErrorKind::InvalidData, err.to_string())
                                }
                                other => std::io::Error::other(format!("{other:?}")),
                            };
                            return Err(EvalError::Read { input: self.source.clone(), line, source });
                        }
                    }
                }
                RecordsKind::Lines(lines, line_no) => {
                    *line_no += 1;
                    let line = *line_no;
                    match lines.next() {
                        None => return Ok(None),
                        Some(Err(source)) => return Err(EvalError::Read { input: self.source.clone(), line, source }),
                        Some(Ok(text)) => {
                            let text = text.trim_end_matches('\r');
                            if text.trim().is_empty() {
                                continue;
                            }
                            return Ok(Some((line, text.split("::").map(str::to_string).collect())));
                        }
                    }
                }
            }
        }
    }
}

/// A broken rule: the field and what was wrong with it.
type FieldError = (&'static str, String);

/// Why a line was refused.
enum Failure {
    /// A field broke a rule.
    Field(&'static str, String),
    /// The line is separated by another delimiter.
    Delimiter(Delimiter),
}

impl From<FieldError> for Failure {
    fn from((field, rule): FieldError) -> Failure {
        Failure::Field(field, rule)
    }
}

/// Where the columns are, and what the fields are called in messages.
#[derive(Debug, Clone)]
struct Layout {
    user: usize,
    item: usize,
    rating: Option<usize>,
    timestamp: Option<usize>,
    /// The number of fields every row has.
    n_fields: usize,
    /// The names of the fields, for messages (`user_id` in `.inter` files).
    names: [&'static str; 4],
    /// What the field count should be, for the field-count message.
    expected: String,
    /// Said after the count: what else there is.
    hint: String,
}

impl Layout {
    fn movielens(format: Format) -> Layout {
        let separated = match format {
            Format::MovieLens1m => "`::`-separated".to_string(),
            _ => "tab-separated".to_string(),
        };
        Layout {
            user: 0,
            item: 1,
            rating: Some(2),
            timestamp: Some(3),
            n_fields: 4,
            names: ["user", "item", "rating", "timestamp"],
            expected: format!("expected 4 {separated} fields (user, item, rating, timestamp)"),
            hint: format!("; the formats are {} (--format, --delimiter)", Format::names()),
        }
    }

    fn inter(fields: &[String], delimiter: Delimiter) -> Result<Layout, Failure> {
        if fields.len() < 2 {
            if let Some(other) = other_delimiter(fields, delimiter, |n| n >= 2) {
                return Err(Failure::Delimiter(other));
            }
        }
        let mut slots: [Option<usize>; 4] = [None; 4];
        for (column, field) in fields.iter().enumerate() {
            let name = field.split(':').next().unwrap_or(field).trim();
            let slot = match name {
                "user_id" => 0,
                "item_id" => 1,
                "rating" => 2,
                "timestamp" => 3,
                _ => continue,
            };
            if slots[slot].is_some() {
                return Err(Failure::Field("header", format!("column `{name}` appears twice")));
            }
            slots[slot] = Some(column);
        }
        let user = slots[0].ok_or(Failure::Field("user_id", "column missing from the header".to_string()))?;
        let item = slots[1].ok_or(Failure::Field("item_id", "column missing from the header".to_string()))?;
        Ok(Layout {
            user,
            item,
            rating: slots[2],
            timestamp: slots[3],
            n_fields: fields.len(),
            names: ["user_id", "item_id", "rating", "timestamp"],
            expected: format!("the header has {} {} fields", fields.len(), delimiter.separated()),
            hint: String::new(),
        })
    }

    /// The layout `--columns` gives.
    fn named(order: &ColumnOrder, delimiter: Delimiter) -> Layout {
        Layout {
            user: order.user,
            item: order.item,
            rating: order.rating,
            timestamp: order.timestamp,
            n_fields: order.n_fields,
            names: ["user", "item", "rating", "timestamp"],
            expected: format!("expected {} {} fields, as --columns names", order.n_fields, delimiter.separated()),
            hint: String::new(),
        }
    }

    /// The layout of a CSV/TSV from its first record (and the second, to
    /// detect a header), and whether the first record is a header.
    fn tabular(
        first: &[String],
        second: Option<&[String]>,
        header: Option<bool>,
        delimiter: Delimiter,
    ) -> Result<(Layout, bool), Failure> {
        let is_header = match header {
            Some(said) => said,
            None => {
                let all_named = first.iter().all(|field| column_of(field).is_some());
                let is_number = |text: &str| text.parse::<f64>().is_ok();
                let numbers_below = second.is_some_and(|second| {
                    !first.iter().any(|field| is_number(field))
                        && second.iter().zip(first).any(|(below, above)| is_number(below) && !is_number(above))
                });
                all_named || numbers_below
            }
        };
        if !(2..=4).contains(&first.len()) {
            if let Some(other) = other_delimiter(first, delimiter, |n| (2..=4).contains(&n)) {
                return Err(Failure::Delimiter(other));
            }
        }
        let expected = |n: usize| format!("expected {n} {} fields, as on the first line", delimiter.separated());
        let hint = format!(
            "; a row is user, item[, rating[, timestamp]]; the formats are {} (--format, --delimiter, \
             --header/--no-header, --columns)",
            Format::names()
        );
        if is_header {
            let mut slots: [Option<usize>; 4] = [None; 4];
            for (column, field) in first.iter().enumerate() {
                if let Some(slot) = column_of(field) {
                    if slots[slot].is_some() {
                        return Err(Failure::Field(
                            "header",
                            format!("two columns name the {}: {field:?} and another", COLUMN_NAMES[slot].0),
                        ));
                    }
                    slots[slot] = Some(column);
                }
            }
            if let [Some(user), Some(item), rating, timestamp] = slots {
                let in_ms = timestamp.is_some_and(|column| {
                    first[column].split(':').next().unwrap_or_default().trim().eq_ignore_ascii_case(TIMESTAMP_MS)
                });
                let layout = Layout {
                    user,
                    item,
                    rating,
                    timestamp,
                    n_fields: first.len(),
                    names: ["user", "item", "rating", if in_ms { TIMESTAMP_MS } else { "timestamp" }],
                    expected: format!("the header has {} {} fields", first.len(), delimiter.separated()),
                    hint: String::new(),
                };
                return Ok((layout, true));
            }
        }
        let layout = match first.len() {
            2..=4 => Layout {
                user: 0,
                item: 1,
                rating: (first.len() >= 3).then_some(2),
                timestamp: (first.len() == 4).then_some(3),
                n_fields: first.len(),
                names: ["user", "item", "rating", "timestamp"],
                expected: expected(first.len()),
                hint,
            },
            n => {
                let what = if is_header {
                    format!(
                        "the header names no user and item column (names: {}) and has {n} fields, not 2 to 4 to take by position",
                        COLUMN_NAMES.map(|(column, names)| format!("{column}: {}", names.join("/"))).join("; ")
                    )
                } else {
                    format!(
                        "expected 2, 3 or 4 {} fields (user, item[, rating[, timestamp]]), found {n}; the formats are {} \
                         (--format, --delimiter, --header/--no-header, --columns)",
                        delimiter.separated(),
                        Format::names()
                    )
                };
                return Err(Failure::Field(if is_header { "header" } else { "record" }, what));
            }
        };
        Ok((layout, is_header))
    }

    fn row(&self, fields: &[String], delimiter: Delimiter, scale: Option<RatingScale>) -> Result<Rating, Failure> {
        if fields.len() != self.n_fields {
            if let Some(other) = other_delimiter(fields, delimiter, |n| n == self.n_fields) {
                return Err(Failure::Delimiter(other));
            }
            let columns = [Some(self.user), Some(self.item), self.rating, self.timestamp];
            let missing = columns
                .iter()
                .zip(self.names)
                .filter_map(|(column, name)| column.map(|column| (column, name)))
                .filter(|(column, _)| *column >= fields.len())
                .min()
                .map_or("record", |(_, name)| name);
            let what = if missing == "record" { "" } else { "missing: " };
            return Err(Failure::Field(
                missing,
                format!("{what}{}, found {}{}", self.expected, fields.len(), self.hint),
            ));
        }
        let value = match self.rating {
            Some(column) => {
                let value = parse_value(self.names[2], fields[column].trim())?;
                if let Some(scale) = scale {
                    if !scale.contains(value) {
                        return Err(Failure::Field(
                            self.names[2],
                            format!(
                                "{value} is outside the rating scale {scale}; give the file's scale with --rating-scale MIN..MAX \
                                 (or, if that column is not a rating, name the columns with --columns)"
                            ),
                        ));
                    }
                }
                value
            }
            None => 1.0,
        };
        Ok(Rating {
            user: parse_id(self.names[0], &fields[self.user])?,
            item: parse_id(self.names[1], &fields[self.item])?,
            value,
            timestamp_ms: match self.timestamp {
                Some(column) if self.names[3] == TIMESTAMP_MS => Some(parse_ms(fields[column].trim())?),
                Some(column) => Some(parse_seconds_as_ms(self.names[3], fields[column].trim())?),
                None => None,
            },
        })
    }
}

/// The column a header name stands for (0 user, 1 item, 2 rating, 3 timestamp).
fn column_of(name: &str) -> Option<usize> {
    let name = name.split(':').next().unwrap_or(name).trim().to_ascii_lowercase();
    COLUMN_NAMES.iter().position(|(_, names)| names.contains(&name.as_str()))
}

/// A record read as one field (or too few) that another delimiter would
/// split into a number of fields `fits`: the file's delimiter, most likely.
fn other_delimiter(fields: &[String], delimiter: Delimiter, fits: impl Fn(usize) -> bool) -> Option<Delimiter> {
    let [only] = fields else {
        return None;
    };
    Delimiter::CANDIDATES
        .into_iter()
        .filter(|candidate| *candidate != delimiter && only.contains(candidate.0))
        .find(|candidate| fits(only.split(candidate.0).count()))
}

/// An id under the rules every write applies (what `import` and the API
/// refuse is refused here too: an engine could not be trained on it).
fn parse_id(field: &'static str, text: &str) -> Result<String, FieldError> {
    if text.is_empty() {
        return Err((field, "empty id".to_string()));
    }
    if let Some(rule) = crate::ids::id_rule(text) {
        return Err((field, format!("id {rule}")));
    }
    Ok(text.to_string())
}

fn parse_value(field: &'static str, text: &str) -> Result<f32, FieldError> {
    match text.parse::<f32>() {
        Ok(value) if value.is_finite() => Ok(value),
        _ => Err((field, format!("not a finite number: {text:?}"))),
    }
}

/// Seconds since the epoch, integer or decimal (`.inter` files declare them
/// `float`), to whole milliseconds.
fn parse_seconds_as_ms(field: &'static str, text: &str) -> Result<i64, FieldError> {
    let ms = seconds_as_ms(field, text)?;
    if ms < 0 {
        // The engine keeps times from the epoch on (`timestamp_ms` ≥ 0): a
        // negative one passed the hashed split and failed a temporal one
        // deep inside, naming no line.
        return Err((field, format!("a time before 1970 (negative): {text:?}; times are seconds since the epoch")));
    }
    Ok(ms)
}

/// Milliseconds since the epoch, an integer (a `timestamp_ms` column).
fn parse_ms(text: &str) -> Result<i64, FieldError> {
    match text.parse::<i64>() {
        Ok(ms) if ms >= 0 => Ok(ms),
        Ok(_) => Err((TIMESTAMP_MS, format!("a time before 1970 (negative): {text:?}"))),
        Err(_) => Err((TIMESTAMP_MS, format!("not a timestamp in milliseconds: {text:?}"))),
    }
}

fn seconds_as_ms(field: &'static str, text: &str) -> Result<i64, FieldError> {
    let out_of_range = || (field, format!("timestamp out of range: {text:?}"));
    if let Ok(seconds) = text.parse::<i64>() {
        return seconds.checked_mul(1000).ok_or_else(out_of_range);
    }
    match text.parse::<f64>() {
        Ok(seconds) if seconds.is_finite() => {
            let ms = (seconds * 1000.0).round();
            // i64::MAX as f64 rounds up to 2^63, which is out of range itself.
            if ms >= -(2f64.powi(63)) && ms < 2f64.powi(63) {
                Ok(ms as i64)
            } else {
                Err(out_of_range())
            }
        }
        _ => Err((field, format!("not a timestamp in seconds: {text:?}"))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(text: &str, format: Format) -> Result<Vec<Rating>, EvalError> {
        parse_ratings(text.as_bytes(), format, "test.txt")
    }

    fn rating(user: &str, item: &str, value: f32, timestamp_ms: Option<i64>) -> Rating {
        Rating { user: user.to_string(), item: item.to_string(), value, timestamp_ms }
    }

    fn error_message(text: &str, format: Format) -> String {
        parse(text, format).unwrap_err().to_string()
    }

    #[test]
    fn detects_format_from_extension() {
        assert_eq!(detect_format(Path::new("data/ml-100k/ml-100k.inter")), Format::Inter);
        assert_eq!(detect_format(Path::new("ratings.CSV")), Format::Csv);
        assert_eq!(detect_format(Path::new("ml-100k/u.data")), Format::MovieLens);
        assert_eq!(detect_format(Path::new("ratings")), Format::MovieLens);
    }

    #[test]
    fn movielens_keeps_file_order_and_converts_seconds() {
        let text = "196\t242\t3\t881250949\n186\t302\t3\t891717742\r\n\n22\t377\t1\t878887116\n";
        let ratings = parse(text, Format::MovieLens).unwrap();
        assert_eq!(
            ratings,
            vec![
                rating("196", "242", 3.0, Some(881_250_949_000)),
                rating("186", "302", 3.0, Some(891_717_742_000)),
                rating("22", "377", 1.0, Some(878_887_116_000)),
            ]
        );
    }

    #[test]
    fn movielens_errors_name_line_and_field() {
        assert_eq!(
            error_message("1\t2\t3\t4\n\n1\t2\tabc\t4\n", Format::MovieLens),
            "test.txt line 3: field `rating`: not a finite number: \"abc\""
        );
        assert_eq!(
            error_message("1\t2\t3\n", Format::MovieLens),
            "test.txt line 1: field `timestamp`: missing: expected 4 tab-separated fields (user, item, rating, timestamp), found 3; the formats are ml100k, ml1m, inter, csv, tsv, jsonl (--format, --delimiter)"
        );
        assert_eq!(
            error_message("1\t2\t3\t4\t5\n", Format::MovieLens),
            "test.txt line 1: field `record`: expected 4 tab-separated fields (user, item, rating, timestamp), found 5; the formats are ml100k, ml1m, inter, csv, tsv, jsonl (--format, --delimiter)"
        );
        assert_eq!(error_message("\t2\t3\t4\n", Format::MovieLens), "test.txt line 1: field `user`: empty id");
        assert_eq!(
            error_message("1\t2\tNaN\t4\n", Format::MovieLens),
            "test.txt line 1: field `rating`: not a finite number: \"NaN\""
        );
        assert_eq!(
            error_message("1\t2\tinf\t4\n", Format::MovieLens),
            "test.txt line 1: field `rating`: not a finite number: \"inf\""
        );
        assert_eq!(
            error_message("1\t2\t3\tyesterday\n", Format::MovieLens),
            "test.txt line 1: field `timestamp`: not a timestamp in seconds: \"yesterday\""
        );
        assert_eq!(
            error_message("1\t2\t3\t99999999999999999\n", Format::MovieLens),
            "test.txt line 1: field `timestamp`: timestamp out of range: \"99999999999999999\""
        );
    }

    #[test]
    fn inter_locates_columns_by_name() {
        let text = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n\
                    196\t242\t3\t881250949\n\
                    186\t302\t4.5\t891717742.25\n";
        assert_eq!(
            parse(text, Format::Inter).unwrap(),
            vec![rating("196", "242", 3.0, Some(881_250_949_000)), rating("186", "302", 4.5, Some(891_717_742_250))]
        );
        // Columns in another order, an unused column, no rating: every rating is 1.0.
        let text = "timestamp:float\tsession:token\titem_id:token\tuser_id:token\n10\ts\ta\tu\n";
        assert_eq!(parse(text, Format::Inter).unwrap(), vec![rating("u", "a", 1.0, Some(10_000))]);
        // Neither rating nor timestamp.
        let text = "user_id:token\titem_id:token\nu\ta\n";
        assert_eq!(parse(text, Format::Inter).unwrap(), vec![rating("u", "a", 1.0, None)]);
    }

    #[test]
    fn inter_errors_name_line_and_field() {
        assert_eq!(
            error_message("user_id:token\trating:float\n", Format::Inter),
            "test.txt line 1: field `item_id`: column missing from the header"
        );
        assert_eq!(
            error_message("user_id:token\titem_id:token\titem_id:token\n", Format::Inter),
            "test.txt line 1: field `header`: column `item_id` appears twice"
        );
        assert_eq!(
            error_message("", Format::Inter),
            "test.txt line 1: field `header`: missing: a .inter file starts with a header line"
        );
        let header = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n";
        assert_eq!(
            error_message(&format!("{header}1\t2\t3\t4\n1\t2\n"), Format::Inter),
            "test.txt line 3: field `rating`: missing: the header has 4 tab-separated fields, found 2"
        );
        assert_eq!(
            error_message(&format!("{header}1\t\t3\t4\n"), Format::Inter),
            "test.txt line 2: field `item_id`: empty id"
        );
        assert_eq!(
            error_message(&format!("{header}1\t2\tx\t4\n"), Format::Inter),
            "test.txt line 2: field `rating`: not a finite number: \"x\""
        );
    }

    #[test]
    fn an_exports_forget_and_remove_lines_drop_what_came_before_them() {
        let text = concat!(
            r#"{"op":"event","user":"a","item":"1","kind":"rating","rating":4,"timestamp_ms":1000}"#,
            "\n",
            r#"{"op":"event","user":"b","item":"1","kind":"rating","rating":5,"timestamp_ms":2000}"#,
            "\n",
            r#"{"op":"event","user":"b","item":"2","kind":"rating","rating":3,"timestamp_ms":3000}"#,
            "\n",
            r#"{"op":"forget_user","user":"a"}"#,
            "\n",
            r#"{"op":"remove_item","item":"2"}"#,
            "\n",
            r#"{"op":"event","user":"a","item":"2","kind":"rating","rating":2,"timestamp_ms":4000}"#,
            "\n",
        );
        let options = LoadOptions { format: Some(Format::Jsonl), ..LoadOptions::default() };
        let file = parse_rating_file(text.as_bytes(), &options, "export.jsonl").unwrap();
        assert_eq!(file.ratings, vec![rating("b", "1", 5.0, Some(2000)), rating("a", "2", 2.0, Some(4000))]);
        let bad = r#"{"op":"merge","user":"a"}"#;
        let err = parse_rating_file(bad.as_bytes(), &options, "x.jsonl").unwrap_err().to_string();
        assert!(err.contains("line 1: field `op`"), "{err}");
    }

    #[test]
    fn csv_with_and_without_header() {
        let expected =
            vec![rating("1", "31", 2.5, Some(1_260_759_144_000)), rating("1", "1029", 3.0, Some(1_260_759_179_000))];
        let with_header = "userId,movieId,rating,timestamp\n1,31,2.5,1260759144\n1,1029,3.0,1260759179\n";
        assert_eq!(parse(with_header, Format::Csv).unwrap(), expected);
        let without_header = "1,31,2.5,1260759144\n1,1029,3.0,1260759179\n";
        assert_eq!(parse(without_header, Format::Csv).unwrap(), expected);
        // Three fields: no timestamp. Ids are the file's text, spaces
        // included, as `recwal import` reads them; the rating is trimmed.
        assert_eq!(parse("u, i, 4 \n", Format::Csv).unwrap(), vec![rating("u", " i", 4.0, None)]);
        assert_eq!(parse("u::i ::4:: 5\n", Format::MovieLens1m).unwrap(), vec![rating("u", "i ", 4.0, Some(5000))]);
        // A comma-separated .dat: MovieLens 1M's layout takes no
        // --delimiter, so the hint names another format.
        let err = parse("1,2,5,100\n", Format::MovieLens1m).unwrap_err().to_string();
        assert!(err.contains("not MovieLens 1M's ratings.dat layout; pass --format csv"), "{err}");
        // `recwal export --format csv`'s header: a timestamp in milliseconds.
        let exported = "op,lsn,user,item,kind,rating,weight,timestamp_ms,event_id\n\
                        event,1,u,i,rating,4,,1500,e1\n";
        assert_eq!(parse(exported, Format::Csv).unwrap(), vec![rating("u", "i", 4.0, Some(1500))]);
        // A time before 1970 is refused with its line, as the engine would.
        assert!(parse("u,i,4,-7\n", Format::Csv)
            .unwrap_err()
            .to_string()
            .contains("line 1: field `timestamp`: a time before 1970"));
    }

    #[test]
    fn csv_header_only_on_the_first_line() {
        assert_eq!(
            error_message("user,item,rating\n1,2,3\n1,2,abc\n", Format::Csv),
            "test.txt line 3: field `rating`: not a finite number: \"abc\""
        );
        assert_eq!(
            error_message("1,2,3\n1,2\n", Format::Csv),
            "test.txt line 2: field `rating`: missing: expected 3 comma-separated fields, as on the first line, found 2; a row is user, item[, rating[, timestamp]]; the formats are ml100k, ml1m, inter, csv, tsv, jsonl (--format, --delimiter, --header/--no-header, --columns)"
        );
        assert_eq!(
            error_message("1,2,3,4,5\n", Format::Csv),
            "test.txt line 1: field `record`: expected 2, 3 or 4 comma-separated fields (user, item[, rating[, timestamp]]), \
             found 5; the formats are ml100k, ml1m, inter, csv, tsv, jsonl (--format, --delimiter, --header/--no-header, --columns)"
        );
        assert_eq!(error_message("1,,3\n", Format::Csv), "test.txt line 1: field `item`: empty id");
        // The rules every write applies: at most 256 bytes, no control
        // characters (an engine would refuse to be trained on them).
        let long = "u".repeat(257);
        assert_eq!(
            error_message(&format!("{long},i,3\n"), Format::Csv),
            "test.txt line 1: field `user`: id must be at most 256 bytes, got 257"
        );
        assert_eq!(
            error_message("u,i\u{7}x,3\n", Format::Csv),
            "test.txt line 1: field `item`: id must not contain control characters"
        );
        assert_eq!(
            parse(&format!("{},i,3\n", "u".repeat(256)), Format::Csv).map(|ratings| ratings.len()).ok(),
            Some(1)
        );
    }

    #[test]
    fn load_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ml.csv");
        std::fs::write(&path, "user,item,rating\n1,2,3\n\n1,2,4\n\n\n1,2,abc\n").unwrap();
        let message = load_ratings(&path).unwrap_err().to_string();
        assert_eq!(message, format!("{} line 7: field `rating`: not a finite number: \"abc\"", path.display()));
        let missing = dir.path().join("missing.inter");
        assert!(matches!(load_ratings(&missing), Err(EvalError::Open { .. })));
    }

    fn parse_with(text: &str, format: Format, delimiter: char) -> Result<Vec<Rating>, EvalError> {
        parse_ratings_with(text.as_bytes(), format, Delimiter::new(delimiter).unwrap(), "test.txt")
    }

    #[test]
    fn an_input_without_ratings_is_refused() {
        for (text, format) in [
            ("", Format::Csv),
            ("\n \n\r\n", Format::Csv),
            ("user,item,rating\n", Format::Csv),
            ("", Format::MovieLens),
            ("user_id:token\titem_id:token\n\n", Format::Inter),
        ] {
            assert_eq!(error_message(text, format), "test.txt: no ratings: the file holds no data rows", "{text:?}");
        }
    }

    #[test]
    fn csv_rows_have_the_field_count_of_the_first_line() {
        assert_eq!(
            error_message("u,i,4\nu,i,5,881250949\n", Format::Csv),
            "test.txt line 2: field `record`: expected 3 comma-separated fields, as on the first line, found 4; a row is user, item[, rating[, timestamp]]; the formats are ml100k, ml1m, inter, csv, tsv, jsonl (--format, --delimiter, --header/--no-header, --columns)"
        );
        assert_eq!(
            error_message("user,item,rating\nu,i,5,881250949\n", Format::Csv),
            "test.txt line 2: field `record`: the header has 3 comma-separated fields, found 4"
        );
        // Two columns: implicit feedback, every value 1.
        assert_eq!(parse("user,item\nu,i\n", Format::Csv).unwrap(), vec![rating("u", "i", 1.0, None)]);
    }

    #[test]
    fn a_first_csv_line_with_a_number_is_a_row_not_a_header() {
        // Taken for a header, this row would be dropped without a word.
        assert_eq!(
            error_message("1,2,abc\n1,3,4\n", Format::Csv),
            "test.txt line 1: field `rating`: not a finite number: \"abc\""
        );
        assert_eq!(parse("a,b,4\n", Format::Csv).unwrap(), vec![rating("a", "b", 4.0, None)]);
    }

    #[test]
    fn a_line_separated_by_another_delimiter_is_refused_with_its_name() {
        let cases = [
            ("u1;i1;4\n", Format::Csv, ';'),
            ("user;item;rating;timestamp\nu1;i1;4;5\n", Format::Csv, ';'),
            ("u,i,4\nu|i|4\n", Format::Csv, '|'),
            ("1,2,3,4\n", Format::MovieLens, ','),
            ("user_id,item_id\nu,i\n", Format::Inter, ','),
        ];
        for (text, format, found) in cases {
            match parse(text, format) {
                Err(EvalError::Delimiter { found: named, .. }) => assert_eq!(named.as_char(), found, "{text:?}"),
                other => panic!("{text:?}: {other:?}"),
            }
        }
        assert_eq!(
            error_message("u1;i1;4\n", Format::Csv),
            "test.txt line 1: the line has no `,` but splits on `;`: the file looks `;`-separated; \
             pass --delimiter ';' to `recwal import` / `recwal eval`"
        );
        assert_eq!(
            error_message("1,2\n1\t2\t3\t4\n", Format::Csv),
            "test.txt line 2: field `item`: missing: expected 2 comma-separated fields, as on the first line, found 1; a row is user, item[, rating[, timestamp]]; the formats are ml100k, ml1m, inter, csv, tsv, jsonl (--format, --delimiter, --header/--no-header, --columns)"
        );
        // Two fields, one of them with a `;`: a two-column (implicit) row
        // whose user id holds `;`, as ids may.
        assert_eq!(parse("1;2;3,5\n", Format::Csv).unwrap(), vec![rating("1;2;3", "5", 1.0, None)]);
    }

    #[test]
    fn a_given_delimiter_replaces_the_formats() {
        let expected = vec![rating("u1", "i1", 4.0, Some(5000)), rating("u2", "i1", 3.5, Some(6000))];
        let text = "user;item;rating;timestamp\nu1;i1;4;5\nu2;i1;3.5;6\n";
        assert_eq!(parse_with(text, Format::Csv, ';').unwrap(), expected);
        assert_eq!(parse_with("u1|i1|4|5\nu2|i1|3.5|6\n", Format::MovieLens, '|').unwrap(), expected);
        let text = "user_id:token,item_id:token,rating:float,timestamp:float\nu1,i1,4,5\nu2,i1,3.5,6\n";
        assert_eq!(parse_with(text, Format::Inter, ',').unwrap(), expected);
        assert_eq!(
            parse_with("u1;i1;4\nu2;i1\n", Format::Csv, ';').unwrap_err().to_string(),
            "test.txt line 2: field `rating`: missing: expected 3 `;`-separated fields, as on the first line, found 2; a row is user, item[, rating[, timestamp]]; the formats are ml100k, ml1m, inter, csv, tsv, jsonl (--format, --delimiter, --header/--no-header, --columns)"
        );
    }

    #[test]
    fn inter_rows_have_the_field_count_of_the_header() {
        assert_eq!(
            error_message("user_id:token\titem_id:token\nu\ti\t4\n", Format::Inter),
            "test.txt line 2: field `record`: the header has 2 tab-separated fields, found 3"
        );
    }

    #[test]
    fn delimiters_are_one_character_that_no_field_holds() {
        for (text, separator) in
            [("tab", '\t'), ("\\t", '\t'), ("\t", '\t'), (";", ';'), ("semicolon", ';'), ("space", ' ')]
        {
            assert_eq!(text.parse::<Delimiter>().unwrap().as_char(), separator, "{text:?}");
        }
        for text in ["", ";;", "a", "7", ".", "-", "\"", "\n"] {
            assert!(text.parse::<Delimiter>().is_err(), "{text:?}");
        }
    }

    #[test]
    fn invalid_utf8_names_the_line() {
        let bytes: &[u8] = b"1\t2\t3\t4\n1\t\xff\t3\t4\n";
        let err = parse_ratings(bytes, Format::MovieLens, "bad.data").unwrap_err();
        assert!(matches!(err, EvalError::Read { line: 2, .. }), "{err}");
    }

    fn load(text: &str, options: LoadOptions) -> Result<RatingFile, EvalError> {
        parse_rating_file(text.as_bytes(), &options, "r.csv")
    }

    #[test]
    fn quoted_fields_as_pandas_writes_them() {
        // (A line end inside a quoted id is a control character, refused;
        // inside a number it is space around it.)
        let text = "\"user\",\"item\",\"rating\"\n\"Smith, J\",\"a \"\"b\"\"\",4.5\n\"xy\",\"i\",\"3\n\"\n";
        let file = load(text, LoadOptions::default()).unwrap();
        assert_eq!(file.ratings, vec![rating("Smith, J", "a \"b\"", 4.5, None), rating("xy", "i", 3.0, None)]);
        let err = load("user,item,rating\n\"x\ny\",i,3\n", LoadOptions::default()).unwrap_err().to_string();
        assert_eq!(err, "r.csv line 2: field `user`: id must not contain control characters");
        assert!(file.has_rating && !file.has_timestamp);
        // After a record spanning two lines, lines are still the file's.
        let err = load(&format!("{text}u,i,x\n"), LoadOptions::default()).unwrap_err().to_string();
        assert_eq!(err, "r.csv line 5: field `rating`: not a finite number: \"x\"");
    }

    #[test]
    fn headers_are_detected_or_declared() {
        let auto = LoadOptions::default();
        // Known names, in any order, any case, with RecBole types.
        let file = load("Timestamp,movieId,userId\n5,m,u\n", auto).unwrap();
        assert_eq!(file.ratings, vec![rating("u", "m", 1.0, Some(5000))]);
        assert!(!file.has_rating && file.has_timestamp);
        // Unknown names over a numeric column: a header, columns by position.
        assert_eq!(load("uid,iid,score\nu,i,4\n", auto).unwrap().ratings, vec![rating("u", "i", 4.0, None)]);
        // String ids and no numbers: rows.
        assert_eq!(load("a,b\nc,d\n", auto).unwrap().ratings.len(), 2);
        // Declared.
        let no_header = LoadOptions { header: Some(false), ..auto };
        assert_eq!(
            load("uid,iid,score\nu,i,4\n", no_header).unwrap_err().to_string(),
            "r.csv line 1: field `rating`: not a finite number: \"score\""
        );
        let header = LoadOptions { header: Some(true), ..auto };
        assert_eq!(load("a,b\nc,d\n", header).unwrap().ratings, vec![rating("c", "d", 1.0, None)]);
        // A lone header is no data.
        assert!(matches!(load("user,item,rating\n", auto), Err(EvalError::Empty { .. })));
    }

    #[test]
    fn columns_place_the_fields_of_a_file_by_name() {
        let columns = |text: &str| LoadOptions { columns: Some(text.parse().unwrap()), ..LoadOptions::default() };
        // Implicit feedback with a timestamp, and columns to ignore.
        let file = load("7,x,u1,i1,100\n7,y,u2,i2,50\n", columns("-,-,user,item,timestamp")).unwrap();
        assert!(!file.has_rating && file.has_timestamp);
        let rows: Vec<(&str, &str, f32, Option<i64>)> =
            file.ratings.iter().map(|r| (r.user.as_str(), r.item.as_str(), r.value, r.timestamp_ms)).collect();
        assert_eq!(rows, [("u1", "i1", 1.0, Some(100_000)), ("u2", "i2", 1.0, Some(50_000))]);
        // The same file without --columns is refused: 5 fields.
        assert!(load("7,x,u1,i1,100\n", LoadOptions::default()).is_err());
        // A header row: skipped when every field is a column name or `-`,
        // or when --header says so; otherwise data.
        let file = load("item,user,-\ni1,u1,z\n", columns("item,user,-")).unwrap();
        assert_eq!((file.ratings.len(), file.ratings[0].user.as_str()), (1, "u1"));
        let said = LoadOptions { header: Some(true), ..columns("item,user,-") };
        assert_eq!(load("a,b,c\ni1,u1,z\n", said).unwrap().ratings.len(), 1);
        assert_eq!(load("a,b,c\ni1,u1,z\n", columns("item,user,-")).unwrap().ratings.len(), 2);
        // Every row must have the columns named; the rating is checked.
        let err = load("u1,i1,4\nu2,i2\n", columns("user,item,rating")).unwrap_err().to_string();
        assert!(
            err.contains("line 2") && err.contains("expected 3 comma-separated fields, as --columns names"),
            "{err}"
        );
        let scaled = LoadOptions { scale: Some("0..5".parse().unwrap()), ..columns("user,item,rating") };
        assert!(load("u1,i1,9\n", scaled).is_err());
        // The names' rules.
        for (bad, says) in [
            ("user,rating", "must name a user and an item"),
            ("user,item,user", "named twice"),
            ("user,item,stars", "unknown column \"stars\""),
        ] {
            let err = bad.parse::<ColumnOrder>().unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
        assert!(vec!["-"; 70].join(",").parse::<ColumnOrder>().is_err());
    }

    #[test]
    fn the_rating_scale_is_checked_with_the_line() {
        let scale = |text: &str| LoadOptions { scale: Some(text.parse().unwrap()), ..LoadOptions::default() };
        let text = "u,i,4\nu,j,8\n";
        assert_eq!(
            load(text, scale("0..5")).unwrap_err().to_string(),
            "r.csv line 2: field `rating`: 8 is outside the rating scale 0..5; give the file's scale with \
             --rating-scale MIN..MAX (or, if that column is not a rating, name the columns with --columns)"
        );
        assert_eq!(load(text, scale("1..10")).unwrap().ratings.len(), 2);
        assert!(load("u,i,0.5\n", scale("1..10")).is_err());
        for bad in ["5..1", "1..", "a..b", "-1..5", "1..1", "0..2e6", "1-5"] {
            assert!(bad.parse::<RatingScale>().is_err(), "{bad}");
        }
    }

    #[test]
    fn formats_by_name_and_extension() {
        for format in Format::ALL {
            assert_eq!(format.name().parse::<Format>().unwrap(), format);
        }
        let err = "parquet".parse::<Format>().unwrap_err();
        assert_eq!(err, "unknown format \"parquet\": the formats are ml100k, ml1m, inter, csv, tsv, jsonl");
        assert_eq!(detect_format(Path::new("x/ratings.dat")), Format::MovieLens1m);
        assert_eq!(detect_format(Path::new("x/r.TSV")), Format::Tsv);
        let ml1m = LoadOptions { format: Some(Format::MovieLens1m), ..LoadOptions::default() };
        assert_eq!(
            load("1::1193::5::978300760\n\n1::661::3::978302109\n", ml1m).unwrap().ratings,
            vec![rating("1", "1193", 5.0, Some(978_300_760_000)), rating("1", "661", 3.0, Some(978_302_109_000))]
        );
        assert_eq!(
            load("1::2::3\n", ml1m).unwrap_err().to_string(),
            "r.csv line 1: field `timestamp`: missing: expected 4 `::`-separated fields (user, item, rating, \
             timestamp), found 3; the formats are ml100k, ml1m, inter, csv, tsv, jsonl (--format, --delimiter)"
        );
        let tsv = LoadOptions { format: Some(Format::Tsv), ..LoadOptions::default() };
        assert_eq!(load("user\titem\na b\tc\n", tsv).unwrap().ratings, vec![rating("a b", "c", 1.0, None)]);
    }

    #[test]
    fn json_lines_with_or_without_ratings() {
        let jsonl = LoadOptions { format: Some(Format::Jsonl), ..LoadOptions::default() };
        let text = "{\"user\":\"a\",\"item\":7,\"rating\":4.5,\"timestamp\":5}\n\n\
                    {\"user\":1,\"item\":\"x\",\"kind\":\"rating\",\"value\":2,\"timestamp_ms\":9,\"lsn\":3}\n";
        let file = load(text, jsonl).unwrap();
        assert_eq!(file.ratings, vec![rating("a", "7", 4.5, Some(5000)), rating("1", "x", 2.0, Some(9))]);
        assert!(file.has_rating && file.has_timestamp);
        let file = load("{\"user\":\"a\",\"item\":\"b\",\"kind\":\"click\",\"weight\":2}\n", jsonl).unwrap();
        assert_eq!(file.ratings, vec![rating("a", "b", 1.0, None)]);
        assert!(!file.has_rating && !file.has_timestamp);
        assert_eq!(
            load("{\"user\":\"a\",\"item\":\"b\",\"rating\":4}\n{\"user\":\"a\",\"item\":\"c\"}\n", jsonl)
                .unwrap_err()
                .to_string(),
            "r.csv line 2: field `rating`: missing: the first line has one"
        );
        let err = load("{\"user\":\"a\"\n", jsonl).unwrap_err().to_string();
        assert!(err.starts_with("r.csv line 1: field `record`: not a JSON object of a rating"), "{err}");
        assert_eq!(load("{\"item\":\"b\"}\n", jsonl).unwrap_err().to_string(), "r.csv line 1: field `user`: empty id");
        assert_eq!(detect_format(Path::new("events.jsonl")), Format::Jsonl);
    }

    #[test]
    fn lines_are_counted_across_blank_lines_crlf_and_buffers() {
        assert_eq!(
            load("u,i,4\r\n\r\n\r\nu,j,x\r\n", LoadOptions::default()).unwrap_err().to_string(),
            "r.csv line 4: field `rating`: not a finite number: \"x\""
        );
        // Far past the csv crate's buffer, with blank lines on the way.
        let mut text = String::new();
        for row in 0..20_000 {
            text.push_str(&format!("user{row},item{row},4\n"));
            if row % 7 == 0 {
                text.push('\n');
            }
        }
        let lines = text.lines().count();
        text.push_str("u,i,x\n");
        let err = load(&text, LoadOptions::default()).unwrap_err().to_string();
        assert_eq!(err, format!("r.csv line {}: field `rating`: not a finite number: \"x\"", lines + 1));
    }
}
