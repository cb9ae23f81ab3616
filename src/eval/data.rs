//! Ratings files: MovieLens `u.data`, RecBole atomic `.inter`, and CSV.
//!
//! Every parser keeps the rows in file order, skips blank lines, and reports
//! the first broken rule with its 1-based line number and field name.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

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

/// The layout of a ratings file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// MovieLens 100k `u.data`: tab-separated `user item rating timestamp`,
    /// the timestamp in seconds, no header.
    MovieLens,
    /// RecBole atomic file: a header of tab-separated `name:type` fields, then
    /// rows; columns are found by name (`user_id`, `item_id`, and optionally
    /// `rating` and `timestamp`, the latter in seconds).
    Inter,
    /// `user,item,rating[,timestamp]`, the timestamp in seconds, with an
    /// optional header line. Fields are not quoted.
    Csv,
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

    /// The line split on this delimiter, each field trimmed.
    fn split(self, line: &str) -> Vec<&str> {
        line.split(self.0).map(str::trim).collect()
    }

    /// A delimiter other than `self` that the line holds and that splits it
    /// into a number of fields `fits`: the file's delimiter, most likely.
    fn other_in(self, line: &str, fits: impl Fn(usize) -> bool) -> Option<Delimiter> {
        Delimiter::CANDIDATES
            .into_iter()
            .filter(|candidate| *candidate != self && line.contains(candidate.0))
            .find(|candidate| fits(line.split(candidate.0).count()))
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

impl Format {
    /// The delimiter the format uses unless told otherwise: tab for
    /// MovieLens and `.inter`, comma for CSV.
    pub fn delimiter(self) -> Delimiter {
        match self {
            Format::MovieLens | Format::Inter => Delimiter::TAB,
            Format::Csv => Delimiter::COMMA,
        }
    }
}

/// Picks the format from the file's extension: `.inter` → [`Format::Inter`],
/// `.csv` → [`Format::Csv`], anything else → [`Format::MovieLens`] (`u.data`).
pub fn detect_format(path: &Path) -> Format {
    match path.extension().and_then(|extension| extension.to_str()) {
        Some(extension) if extension.eq_ignore_ascii_case("inter") => Format::Inter,
        Some(extension) if extension.eq_ignore_ascii_case("csv") => Format::Csv,
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
    let file = File::open(path).map_err(|source| EvalError::Open { path: path.to_path_buf(), source })?;
    let format = detect_format(path);
    parse_ratings_with(
        BufReader::new(file),
        format,
        delimiter.unwrap_or(format.delimiter()),
        &path.display().to_string(),
    )
}

/// Parses ratings from `reader` in `format`, with its own delimiter;
/// `source` names the input in errors. Rows keep the order they have in
/// the input.
pub fn parse_ratings(reader: impl BufRead, format: Format, source: &str) -> Result<Vec<Rating>, EvalError> {
    parse_ratings_with(reader, format, format.delimiter(), source)
}

/// [`parse_ratings`] with fields separated by `delimiter`. The input is
/// taken as a whole or refused: every row must have the number of fields of
/// the first (or of the header), a line that would split on another
/// delimiter is refused as [`EvalError::Delimiter`], and an input without a
/// single rating as [`EvalError::Empty`].
pub fn parse_ratings_with(
    reader: impl BufRead,
    format: Format,
    delimiter: Delimiter,
    source: &str,
) -> Result<Vec<Rating>, EvalError> {
    let mut parser = LineParser::new(format, delimiter);
    let mut ratings = Vec::new();
    for_each_line(reader, source, |line_no, line| {
        let fail = |failure: Failure| match failure {
            Failure::Field(field, rule) => EvalError::Parse { input: source.to_string(), line: line_no, field, rule },
            Failure::Delimiter(found) => {
                EvalError::Delimiter { input: source.to_string(), line: line_no, expected: delimiter, found }
            }
        };
        if let Some(rating) = parser.parse(line).map_err(fail)? {
            ratings.push(rating);
        }
        Ok(())
    })?;
    if let LineParser::Inter { columns: None, .. } = parser {
        return Err(EvalError::Parse {
            input: source.to_string(),
            line: 1,
            field: "header",
            rule: "missing: a .inter file starts with a header line".to_string(),
        });
    }
    if ratings.is_empty() {
        return Err(EvalError::Empty { input: source.to_string() });
    }
    Ok(ratings)
}

/// Calls `f(line_no, line)` for each non-blank line, without its line ending.
fn for_each_line(
    mut reader: impl BufRead,
    source: &str,
    mut f: impl FnMut(usize, &str) -> Result<(), EvalError>,
) -> Result<(), EvalError> {
    let mut buffer = String::new();
    let mut line_no = 0;
    loop {
        buffer.clear();
        line_no += 1;
        let n_bytes = reader.read_line(&mut buffer).map_err(|err| EvalError::Read {
            input: source.to_string(),
            line: line_no,
            source: err,
        })?;
        if n_bytes == 0 {
            return Ok(());
        }
        let mut line = buffer.trim_end_matches(['\n', '\r']);
        if line_no == 1 {
            line = line.trim_start_matches('\u{feff}');
        }
        if line.trim().is_empty() {
            continue;
        }
        f(line_no, line)?;
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

/// Column positions of a `.inter` file, read from its header.
#[derive(Debug, Clone, Copy)]
struct InterColumns {
    user: usize,
    item: usize,
    rating: Option<usize>,
    timestamp: Option<usize>,
    /// How many fields a row must have to reach every column used.
    n_fields_min: usize,
    /// How many fields the header has, which every row must have.
    n_fields: usize,
}

/// Per-format state carried from line to line.
enum LineParser {
    MovieLens {
        delimiter: Delimiter,
    },
    /// `columns` is `None` until the header has been read.
    Inter {
        delimiter: Delimiter,
        columns: Option<InterColumns>,
    },
    /// `n_fields` is `None` until the first non-blank line, which may be a
    /// header; every later row must have as many fields.
    Csv {
        delimiter: Delimiter,
        n_fields: Option<usize>,
    },
}

impl LineParser {
    fn new(format: Format, delimiter: Delimiter) -> LineParser {
        match format {
            Format::MovieLens => LineParser::MovieLens { delimiter },
            Format::Inter => LineParser::Inter { delimiter, columns: None },
            Format::Csv => LineParser::Csv { delimiter, n_fields: None },
        }
    }

    /// Parses one non-blank line; `Ok(None)` for a header.
    fn parse(&mut self, line: &str) -> Result<Option<Rating>, Failure> {
        match self {
            LineParser::MovieLens { delimiter } => parse_movielens(line, *delimiter).map(Some),
            LineParser::Inter { delimiter, columns: None } => {
                let delimiter = *delimiter;
                *self = LineParser::Inter { delimiter, columns: Some(parse_inter_header(line, delimiter)?) };
                Ok(None)
            }
            LineParser::Inter { delimiter, columns: Some(columns) } => {
                parse_inter_row(line, *delimiter, columns).map(Some)
            }
            LineParser::Csv { delimiter, n_fields } => {
                let delimiter = *delimiter;
                let fields = delimiter.split(line);
                match *n_fields {
                    None => {
                        if let Some(other) = delimiter.other_in(line, |n| (3..=4).contains(&n)) {
                            if !(3..=4).contains(&fields.len()) {
                                return Err(Failure::Delimiter(other));
                            }
                        }
                        *n_fields = Some(fields.len());
                        if is_csv_header(&fields) {
                            if !(3..=4).contains(&fields.len()) {
                                return Err(Failure::Field(
                                    "header",
                                    format!(
                                        "expected 3 or 4 {} names (user, item, rating[, timestamp]), found {}",
                                        delimiter.separated(),
                                        fields.len()
                                    ),
                                ));
                            }
                            return Ok(None);
                        }
                    }
                    Some(expected) if fields.len() != expected => {
                        if let Some(other) = delimiter.other_in(line, |n| n == expected) {
                            return Err(Failure::Delimiter(other));
                        }
                        // Too few or too many for any row: parse_csv_row names the field.
                        if (3..=4).contains(&fields.len()) {
                            return Err(Failure::Field(
                                "record",
                                format!(
                                    "expected {expected} {} fields, as on the first line, found {}",
                                    delimiter.separated(),
                                    fields.len()
                                ),
                            ));
                        }
                    }
                    Some(_) => {}
                }
                parse_csv_row(&fields, delimiter).map(Some).map_err(Failure::from)
            }
        }
    }
}

fn parse_movielens(line: &str, delimiter: Delimiter) -> Result<Rating, Failure> {
    const NAMES: [&str; 4] = ["user", "item", "rating", "timestamp"];
    let fields = delimiter.split(line);
    if fields.len() != NAMES.len() {
        if let Some(other) = delimiter.other_in(line, |n| n == NAMES.len()) {
            return Err(Failure::Delimiter(other));
        }
    }
    if fields.len() < NAMES.len() {
        return Err(Failure::Field(
            NAMES[fields.len()],
            format!("missing: expected 4 {} fields, found {}", delimiter.separated(), fields.len()),
        ));
    }
    if fields.len() > NAMES.len() {
        return Err(Failure::Field(
            "record",
            format!("expected 4 {} fields, found {}", delimiter.separated(), fields.len()),
        ));
    }
    Ok(Rating {
        user: parse_id("user", fields[0])?,
        item: parse_id("item", fields[1])?,
        value: parse_value("rating", fields[2])?,
        timestamp_ms: Some(parse_seconds_as_ms("timestamp", fields[3])?),
    })
}

fn parse_inter_header(line: &str, delimiter: Delimiter) -> Result<InterColumns, Failure> {
    let mut user = None;
    let mut item = None;
    let mut rating = None;
    let mut timestamp = None;
    let fields = delimiter.split(line);
    if fields.len() < 2 {
        if let Some(other) = delimiter.other_in(line, |n| n >= 2) {
            return Err(Failure::Delimiter(other));
        }
    }
    for (column, field) in fields.iter().enumerate() {
        let name = field.split(':').next().unwrap_or(field).trim();
        let slot = match name {
            "user_id" => &mut user,
            "item_id" => &mut item,
            "rating" => &mut rating,
            "timestamp" => &mut timestamp,
            _ => continue,
        };
        if slot.is_some() {
            return Err(Failure::Field("header", format!("column `{name}` appears twice")));
        }
        *slot = Some(column);
    }
    let user = user.ok_or(Failure::Field("user_id", "column missing from the header".to_string()))?;
    let item = item.ok_or(Failure::Field("item_id", "column missing from the header".to_string()))?;
    let n_fields_min = [Some(user), Some(item), rating, timestamp].into_iter().flatten().max().unwrap_or(0) + 1;
    Ok(InterColumns { user, item, rating, timestamp, n_fields_min, n_fields: fields.len() })
}

fn parse_inter_row(line: &str, delimiter: Delimiter, columns: &InterColumns) -> Result<Rating, Failure> {
    let fields = delimiter.split(line);
    if fields.len() != columns.n_fields {
        if let Some(other) = delimiter.other_in(line, |n| n == columns.n_fields) {
            return Err(Failure::Delimiter(other));
        }
    }
    if fields.len() < columns.n_fields_min {
        let named = [
            (Some(columns.user), "user_id"),
            (Some(columns.item), "item_id"),
            (columns.rating, "rating"),
            (columns.timestamp, "timestamp"),
        ];
        let missing = named
            .into_iter()
            .filter_map(|(column, name)| column.map(|column| (column, name)))
            .filter(|(column, _)| *column >= fields.len())
            .min()
            .map_or("record", |(_, name)| name);
        return Err(Failure::Field(
            missing,
            format!(
                "missing: the header needs {} {} fields, found {}",
                columns.n_fields_min,
                delimiter.separated(),
                fields.len()
            ),
        ));
    }
    if fields.len() != columns.n_fields {
        return Err(Failure::Field(
            "record",
            format!("the header has {} {} fields, found {}", columns.n_fields, delimiter.separated(), fields.len()),
        ));
    }
    Ok(Rating {
        user: parse_id("user_id", fields[columns.user])?,
        item: parse_id("item_id", fields[columns.item])?,
        value: match columns.rating {
            Some(column) => parse_value("rating", fields[column])?,
            None => 1.0,
        },
        timestamp_ms: match columns.timestamp {
            Some(column) => Some(parse_seconds_as_ms("timestamp", fields[column])?),
            None => None,
        },
    })
}

/// A CSV's first line is a header when none of its fields is a number (a
/// row's rating always is; its ids may be). `1,2,abc` is a row with a bad
/// rating, not a header.
fn is_csv_header(fields: &[&str]) -> bool {
    fields.iter().all(|field| field.parse::<f64>().is_err())
}

fn parse_csv_row(fields: &[&str], delimiter: Delimiter) -> Result<Rating, FieldError> {
    const NAMES: [&str; 4] = ["user", "item", "rating", "timestamp"];
    if fields.len() < 3 {
        return Err((
            NAMES[fields.len()],
            format!("missing: expected 3 or 4 {} fields, found {}", delimiter.separated(), fields.len()),
        ));
    }
    if fields.len() > NAMES.len() {
        return Err(("record", format!("expected 3 or 4 {} fields, found {}", delimiter.separated(), fields.len())));
    }
    Ok(Rating {
        user: parse_id("user", fields[0])?,
        item: parse_id("item", fields[1])?,
        value: parse_value("rating", fields[2])?,
        timestamp_ms: match fields.get(3) {
            Some(text) => Some(parse_seconds_as_ms("timestamp", text)?),
            None => None,
        },
    })
}

fn parse_id(field: &'static str, text: &str) -> Result<String, FieldError> {
    if text.is_empty() {
        return Err((field, "empty id".to_string()));
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
            "test.txt line 1: field `timestamp`: missing: expected 4 tab-separated fields, found 3"
        );
        assert_eq!(
            error_message("1\t2\t3\t4\t5\n", Format::MovieLens),
            "test.txt line 1: field `record`: expected 4 tab-separated fields, found 5"
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
            "test.txt line 3: field `rating`: missing: the header needs 4 tab-separated fields, found 2"
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
    fn csv_with_and_without_header() {
        let expected =
            vec![rating("1", "31", 2.5, Some(1_260_759_144_000)), rating("1", "1029", 3.0, Some(1_260_759_179_000))];
        let with_header = "userId,movieId,rating,timestamp\n1,31,2.5,1260759144\n1,1029,3.0,1260759179\n";
        assert_eq!(parse(with_header, Format::Csv).unwrap(), expected);
        let without_header = "1,31,2.5,1260759144\n1,1029,3.0,1260759179\n";
        assert_eq!(parse(without_header, Format::Csv).unwrap(), expected);
        // Three fields: no timestamp.
        assert_eq!(parse("u, i, 4\n", Format::Csv).unwrap(), vec![rating("u", "i", 4.0, None)]);
    }

    #[test]
    fn csv_header_only_on_the_first_line() {
        assert_eq!(
            error_message("user,item,rating\n1,2,3\n1,2,abc\n", Format::Csv),
            "test.txt line 3: field `rating`: not a finite number: \"abc\""
        );
        assert_eq!(
            error_message("1,2,3\n1,2\n", Format::Csv),
            "test.txt line 2: field `rating`: missing: expected 3 or 4 comma-separated fields, found 2"
        );
        assert_eq!(
            error_message("1,2,3,4,5\n", Format::Csv),
            "test.txt line 1: field `record`: expected 3 or 4 comma-separated fields, found 5"
        );
        assert_eq!(error_message("1,,3\n", Format::Csv), "test.txt line 1: field `item`: empty id");
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
            "test.txt line 2: field `record`: expected 3 comma-separated fields, as on the first line, found 4"
        );
        assert_eq!(
            error_message("user,item,rating\nu,i,5,881250949\n", Format::Csv),
            "test.txt line 2: field `record`: expected 3 comma-separated fields, as on the first line, found 4"
        );
        assert_eq!(
            error_message("user,item\nu,i\n", Format::Csv),
            "test.txt line 1: field `header`: expected 3 or 4 comma-separated names (user, item, rating[, timestamp]), found 2"
        );
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
            ("1;2;3,5\n", Format::Csv, ';'),
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
            "test.txt line 1: field `rating`: missing: expected 3 or 4 comma-separated fields, found 2"
        );
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
            "test.txt line 2: field `rating`: missing: expected 3 or 4 `;`-separated fields, found 2"
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
}
