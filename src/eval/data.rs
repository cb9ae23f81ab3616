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

/// Picks the format from the file's extension: `.inter` → [`Format::Inter`],
/// `.csv` → [`Format::Csv`], anything else → [`Format::MovieLens`] (`u.data`).
pub fn detect_format(path: &Path) -> Format {
    match path.extension().and_then(|extension| extension.to_str()) {
        Some(extension) if extension.eq_ignore_ascii_case("inter") => Format::Inter,
        Some(extension) if extension.eq_ignore_ascii_case("csv") => Format::Csv,
        _ => Format::MovieLens,
    }
}

/// Reads a ratings file in the format [`detect_format`] picks for its path.
pub fn load_ratings(path: &Path) -> Result<Vec<Rating>, EvalError> {
    let file = File::open(path).map_err(|source| EvalError::Open { path: path.to_path_buf(), source })?;
    parse_ratings(BufReader::new(file), detect_format(path), &path.display().to_string())
}

/// Parses ratings from `reader` in `format`; `source` names the input in
/// errors. Rows keep the order they have in the input.
pub fn parse_ratings(reader: impl BufRead, format: Format, source: &str) -> Result<Vec<Rating>, EvalError> {
    let mut parser = LineParser::new(format);
    let mut ratings = Vec::new();
    for_each_line(reader, source, |line_no, line| {
        let fail = |field: &'static str, rule: String| EvalError::Parse {
            input: source.to_string(),
            line: line_no,
            field,
            rule,
        };
        if let Some(rating) = parser.parse(line).map_err(|(field, rule)| fail(field, rule))? {
            ratings.push(rating);
        }
        Ok(())
    })?;
    if let LineParser::Inter { columns: None } = parser {
        return Err(EvalError::Parse {
            input: source.to_string(),
            line: 1,
            field: "header",
            rule: "missing: a .inter file starts with a header line".to_string(),
        });
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

/// Column positions of a `.inter` file, read from its header.
#[derive(Debug, Clone, Copy)]
struct InterColumns {
    user: usize,
    item: usize,
    rating: Option<usize>,
    timestamp: Option<usize>,
    /// How many fields a row must have to reach every column used.
    n_fields_min: usize,
}

/// Per-format state carried from line to line.
enum LineParser {
    MovieLens,
    /// `columns` is `None` until the header has been read.
    Inter {
        columns: Option<InterColumns>,
    },
    /// `first_line` is true until the first non-blank line, which may be a header.
    Csv {
        first_line: bool,
    },
}

impl LineParser {
    fn new(format: Format) -> LineParser {
        match format {
            Format::MovieLens => LineParser::MovieLens,
            Format::Inter => LineParser::Inter { columns: None },
            Format::Csv => LineParser::Csv { first_line: true },
        }
    }

    /// Parses one non-blank line; `Ok(None)` for a header.
    fn parse(&mut self, line: &str) -> Result<Option<Rating>, FieldError> {
        match self {
            LineParser::MovieLens => parse_movielens(line).map(Some),
            LineParser::Inter { columns: None } => {
                *self = LineParser::Inter { columns: Some(parse_inter_header(line)?) };
                Ok(None)
            }
            LineParser::Inter { columns: Some(columns) } => parse_inter_row(line, columns).map(Some),
            LineParser::Csv { first_line } => {
                let is_first_line = *first_line;
                *first_line = false;
                if is_first_line && is_csv_header(line) {
                    return Ok(None);
                }
                parse_csv_row(line).map(Some)
            }
        }
    }
}

fn parse_movielens(line: &str) -> Result<Rating, FieldError> {
    const NAMES: [&str; 4] = ["user", "item", "rating", "timestamp"];
    let fields: Vec<&str> = line.split('\t').map(str::trim).collect();
    if fields.len() < NAMES.len() {
        return Err((NAMES[fields.len()], format!("missing: expected 4 tab-separated fields, found {}", fields.len())));
    }
    if fields.len() > NAMES.len() {
        return Err(("record", format!("expected 4 tab-separated fields, found {}", fields.len())));
    }
    Ok(Rating {
        user: parse_id("user", fields[0])?,
        item: parse_id("item", fields[1])?,
        value: parse_value("rating", fields[2])?,
        timestamp_ms: Some(parse_seconds_as_ms("timestamp", fields[3])?),
    })
}

fn parse_inter_header(line: &str) -> Result<InterColumns, FieldError> {
    let mut user = None;
    let mut item = None;
    let mut rating = None;
    let mut timestamp = None;
    for (column, field) in line.split('\t').enumerate() {
        let name = field.split(':').next().unwrap_or(field).trim();
        let slot = match name {
            "user_id" => &mut user,
            "item_id" => &mut item,
            "rating" => &mut rating,
            "timestamp" => &mut timestamp,
            _ => continue,
        };
        if slot.is_some() {
            return Err(("header", format!("column `{name}` appears twice")));
        }
        *slot = Some(column);
    }
    let user = user.ok_or(("user_id", "column missing from the header".to_string()))?;
    let item = item.ok_or(("item_id", "column missing from the header".to_string()))?;
    let n_fields_min = [Some(user), Some(item), rating, timestamp].into_iter().flatten().max().unwrap_or(0) + 1;
    Ok(InterColumns { user, item, rating, timestamp, n_fields_min })
}

fn parse_inter_row(line: &str, columns: &InterColumns) -> Result<Rating, FieldError> {
    let fields: Vec<&str> = line.split('\t').map(str::trim).collect();
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
        return Err((
            missing,
            format!("missing: the header needs {} tab-separated fields, found {}", columns.n_fields_min, fields.len()),
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

/// A CSV's first line is a header when its rating field is not a number.
fn is_csv_header(line: &str) -> bool {
    match line.split(',').nth(2) {
        Some(rating) => rating.trim().parse::<f32>().is_err(),
        None => true,
    }
}

fn parse_csv_row(line: &str) -> Result<Rating, FieldError> {
    const NAMES: [&str; 4] = ["user", "item", "rating", "timestamp"];
    let fields: Vec<&str> = line.split(',').map(str::trim).collect();
    if fields.len() < 3 {
        return Err((
            NAMES[fields.len()],
            format!("missing: expected 3 or 4 comma-separated fields, found {}", fields.len()),
        ));
    }
    if fields.len() > NAMES.len() {
        return Err(("record", format!("expected 3 or 4 comma-separated fields, found {}", fields.len())));
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

    #[test]
    fn invalid_utf8_names_the_line() {
        let bytes: &[u8] = b"1\t2\t3\t4\n1\t\xff\t3\t4\n";
        let err = parse_ratings(bytes, Format::MovieLens, "bad.data").unwrap_err();
        assert!(matches!(err, EvalError::Read { line: 2, .. }), "{err}");
    }
}
