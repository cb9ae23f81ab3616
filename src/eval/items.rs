//! Item files: the movies of MovieLens 100k with their genres and release
//! dates, as catalogue items (genres as categories, the release date as the
//! publication time, the release year as the numeric label `year`).
//!
//! Two layouts of the same data are read:
//!
//! - MovieLens `u.item` (GroupLens' archive): pipe-separated
//!   `id | title | release date (dd-Mon-yyyy) | video date | URL | 19 flags`,
//!   one 0/1 flag per genre in the order of `u.genre` (`name|index` lines);
//!   the file is Latin-1, not UTF-8. An empty release date (item 267) gives
//!   an item without publication time.
//! - RecBole `ml-100k.item` (what scripts/fetch-movielens.sh extracts): a
//!   header of tab-separated `name:type` fields, then rows; `item_id`, and
//!   optionally `release_year` (published on 1 January of that year, UTC;
//!   empty or a word such as `unknown`: no publication time) and `class`
//!   (genres separated by spaces).
//!
//! Errors name the input, the 1-based line, the field and the rule.

use std::fs;
use std::path::Path;

use super::EvalError;
use crate::catalogue::Item;

/// MovieLens 100k's genres, in the order of its `u.genre` (the flags of `u.item`).
pub const MOVIELENS_GENRES: [&str; 19] = [
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
];

/// The layout of an item file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemFormat {
    /// MovieLens `u.item`: pipe-separated, Latin-1, genre flags.
    MovieLens,
    /// RecBole atomic `.item`: a `name:type` header, tab-separated.
    Atomic,
}

/// Picks the format from the file's name: `.item` → [`ItemFormat::Atomic`],
/// anything else (`u.item`) → [`ItemFormat::MovieLens`].
pub fn detect_item_format(path: &Path) -> ItemFormat {
    let atomic = path.extension().and_then(|extension| extension.to_str()).is_some_and(|extension| {
        extension.eq_ignore_ascii_case("item") && path.file_stem().is_some_and(|stem| !stem.eq_ignore_ascii_case("u"))
    });
    if atomic {
        ItemFormat::Atomic
    } else {
        ItemFormat::MovieLens
    }
}

/// Reads an item file in the format [`detect_item_format`] picks. For
/// `u.item` the genre names come from `u.genre` beside it when there is one,
/// else [`MOVIELENS_GENRES`].
pub fn load_items(path: &Path) -> Result<Vec<Item>, EvalError> {
    let read = |path: &Path| fs::read(path).map_err(|source| EvalError::Open { path: path.to_path_buf(), source });
    let bytes = read(path)?;
    let source = path.display().to_string();
    match detect_item_format(path) {
        ItemFormat::Atomic => parse_atomic_items(&latin1_or_utf8(&bytes), &source),
        ItemFormat::MovieLens => {
            let genre_path = path.with_file_name("u.genre");
            let genres = if genre_path.is_file() {
                parse_genres(&latin1_or_utf8(&read(&genre_path)?), &genre_path.display().to_string())?
            } else {
                MOVIELENS_GENRES.iter().map(|genre| genre.to_string()).collect()
            };
            parse_movielens_items(&latin1_or_utf8(&bytes), &genres, &source)
        }
    }
}

/// The text of a file: UTF-8 when it is, else Latin-1 (every byte one
/// character), which is what GroupLens' files are.
fn latin1_or_utf8(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_string(),
        Err(_) => bytes.iter().map(|&byte| char::from(byte)).collect(),
    }
}

fn parse_error(source: &str, line: usize, field: &'static str, rule: impl Into<String>) -> EvalError {
    EvalError::Parse { input: source.to_string(), line, field, rule: rule.into() }
}

/// Genre names from `u.genre` (`name|index` lines, index 0, 1, … in order).
pub fn parse_genres(text: &str, source: &str) -> Result<Vec<String>, EvalError> {
    let mut genres = Vec::new();
    for (at, line) in text.lines().enumerate() {
        let line_no = at + 1;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let (name, index) = line
            .rsplit_once('|')
            .ok_or_else(|| parse_error(source, line_no, "genre", format!("expected `name|index`, got {line:?}")))?;
        let index: usize = index
            .trim()
            .parse()
            .map_err(|_| parse_error(source, line_no, "index", format!("not a whole number: {index:?}")))?;
        if index != genres.len() {
            return Err(parse_error(source, line_no, "index", format!("expected {}, got {index}", genres.len())));
        }
        genres.push(name.trim().to_string());
    }
    if genres.is_empty() {
        return Err(EvalError::Empty { input: source.to_string() });
    }
    Ok(genres)
}

/// Items from `u.item` text; `genres` names the flags in order.
pub fn parse_movielens_items(text: &str, genres: &[String], source: &str) -> Result<Vec<Item>, EvalError> {
    const FIXED: usize = 5;
    let mut items = Vec::new();
    for (at, line) in text.lines().enumerate() {
        let line_no = at + 1;
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('|').collect();
        if fields.len() != FIXED + genres.len() {
            return Err(parse_error(
                source,
                line_no,
                "genres",
                format!(
                    "expected {} `|`-separated fields ({} genre flags), got {}",
                    FIXED + genres.len(),
                    genres.len(),
                    fields.len()
                ),
            ));
        }
        let id = fields[0].trim();
        if id.is_empty() {
            return Err(parse_error(source, line_no, "id", "empty"));
        }
        let mut item = Item::new(id);
        let date = fields[2].trim();
        if !date.is_empty() {
            let (timestamp_ms, year) = parse_release_date(date).ok_or_else(|| {
                parse_error(source, line_no, "release_date", format!("not a dd-Mon-yyyy date: {date:?}"))
            })?;
            item = item.published(timestamp_ms).label("year", f64::from(year));
        }
        for (flag, genre) in fields[FIXED..].iter().zip(genres) {
            match flag.trim() {
                "1" => item.categories.push(genre.clone()),
                "0" => {}
                other => {
                    return Err(parse_error(
                        source,
                        line_no,
                        "genres",
                        format!("flag of {genre:?} is not 0 or 1: {other:?}"),
                    ))
                }
            }
        }
        items.push(item);
    }
    if items.is_empty() {
        return Err(EvalError::Empty { input: source.to_string() });
    }
    Ok(items)
}

/// Items from a RecBole atomic `.item` file's text.
pub fn parse_atomic_items(text: &str, source: &str) -> Result<Vec<Item>, EvalError> {
    let mut lines = text.lines().enumerate().filter(|(_, line)| !line.trim().is_empty());
    let Some((_, header)) = lines.next() else { return Err(EvalError::Empty { input: source.to_string() }) };
    let names: Vec<&str> = header.split('\t').map(|field| field.split(':').next().unwrap_or("").trim()).collect();
    let column = |name: &str| names.iter().position(|&found| found == name);
    let id_at = column("item_id").ok_or_else(|| parse_error(source, 1, "header", "no `item_id` column"))?;
    let (year_at, class_at) = (column("release_year"), column("class"));
    let mut items = Vec::new();
    for (at, line) in lines {
        let line_no = at + 1;
        let fields: Vec<&str> = line.split('\t').map(str::trim).collect();
        if fields.len() != names.len() {
            return Err(parse_error(
                source,
                line_no,
                "fields",
                format!("expected {} tab-separated fields (as the header), got {}", names.len(), fields.len()),
            ));
        }
        let id = fields[id_at];
        if id.is_empty() {
            return Err(parse_error(source, line_no, "item_id", "empty"));
        }
        let mut item = Item::new(id);
        // A word instead of a year marks it unknown (RecBole's item 267
        // says `unkonwn`): no publication time.
        let year = year_at.map(|at| fields[at]).filter(|year| !year.chars().all(char::is_alphabetic));
        if let Some(year) = year {
            let year: i32 = year
                .parse()
                .ok()
                .filter(|year| (1000..=9999).contains(year))
                .ok_or_else(|| parse_error(source, line_no, "release_year", format!("not a year: {year:?}")))?;
            item = item.published(day_ms(year, 1, 1)).label("year", f64::from(year));
        }
        if let Some(class) = class_at.map(|at| fields[at]) {
            for genre in class.split_whitespace() {
                if !item.categories.iter().any(|known| known == genre) {
                    item.categories.push(genre.to_string());
                }
            }
        }
        items.push(item);
    }
    if items.is_empty() {
        return Err(EvalError::Empty { input: source.to_string() });
    }
    Ok(items)
}

/// `dd-Mon-yyyy` (e.g. `01-Jan-1995`) as ms since the Unix epoch at 00:00
/// UTC, and the year.
fn parse_release_date(date: &str) -> Option<(i64, i32)> {
    const MONTHS: [&str; 12] = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
    let mut parts = date.split('-');
    let (day, month, year) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let day: u32 = day.parse().ok()?;
    let month = MONTHS.iter().position(|name| name.eq_ignore_ascii_case(month))? as u32 + 1;
    let year: i32 = year.parse().ok().filter(|year| (1000..=9999).contains(year))?;
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days_in_month = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if day == 0 || day > days_in_month {
        return None;
    }
    Some((day_ms(year, month, day), year))
}

/// Midnight UTC of a (proleptic Gregorian) date, in ms since the Unix epoch
/// (H. Hinnant's `days_from_civil`).
fn day_ms(year: i32, month: u32, day: u32) -> i64 {
    let year = i64::from(year) - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    (era * 146_097 + day_of_era - 719_468) * 86_400_000
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn genres() -> Vec<String> {
        MOVIELENS_GENRES.iter().map(|genre| genre.to_string()).collect()
    }

    #[test]
    fn dates_are_midnight_utc() {
        assert_eq!(day_ms(1970, 1, 1), 0);
        // date -u -d 1995-01-01 +%s → 788918400
        assert_eq!(parse_release_date("01-Jan-1995"), Some((788_918_400_000, 1995)));
        // date -u -d 1996-02-29 +%s → 825552000
        assert_eq!(parse_release_date("29-Feb-1996"), Some((825_552_000_000, 1996)));
        // date -u -d 1922-03-04 +%s → -1509408000 (before the epoch)
        assert_eq!(parse_release_date("04-Mar-1922"), Some((-1_509_408_000_000, 1922)));
        for bad in ["29-Feb-1995", "31-Apr-1995", "00-Jan-1995", "01-Foo-1995", "1995", "01-Jan-95", "01-Jan-1995-x"] {
            assert_eq!(parse_release_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn movielens_items_take_genres_dates_and_latin1() {
        // Item 1 of u.item, item 267 (no date), and a Latin-1 title (0xE9).
        let mut bytes = b"1|Toy Story (1995)|01-Jan-1995||http://x|0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n".to_vec();
        bytes.extend_from_slice(b"267|unknown||||1|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0\n\n");
        bytes.extend_from_slice(
            b"1453|Ang\xe9lique (1964)|01-Jan-1964||http://y|0|0|0|0|0|0|0|0|0|0|0|0|0|0|1|0|0|0|0\n",
        );
        let items = parse_movielens_items(&latin1_or_utf8(&bytes), &genres(), "u.item").unwrap();
        assert_eq!(items.len(), 3);
        assert_eq!(items[0].id, "1");
        assert_eq!(items[0].categories, ["Animation", "Children's", "Comedy"]);
        assert_eq!(items[0].timestamp_ms, Some(788_918_400_000));
        assert_eq!(items[0].labels.get("year"), Some(&1995.0.into()));
        assert_eq!((items[1].id.as_str(), items[1].timestamp_ms), ("267", None));
        assert_eq!(items[1].categories, ["unknown"]);
        assert_eq!(items[2].categories, ["Romance"]);
    }

    #[test]
    fn movielens_errors_name_line_and_field() {
        let text = "1|A|01-Jan-1995||u|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0\n2|B|1995||u|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0\n";
        let message = parse_movielens_items(text, &genres(), "u.item").unwrap_err().to_string();
        assert!(message.contains("line 2") && message.contains("release_date"), "{message}");
        let text = "1|A|01-Jan-1995||u|0|0|1\n";
        let message = parse_movielens_items(text, &genres(), "u.item").unwrap_err().to_string();
        assert!(message.contains("line 1") && message.contains("19 genre flags"), "{message}");
        let text = "1|A|01-Jan-1995||u|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|2\n";
        let message = parse_movielens_items(text, &genres(), "u.item").unwrap_err().to_string();
        assert!(message.contains("Western") && message.contains("not 0 or 1"), "{message}");
    }

    #[test]
    fn genre_file_names_the_flags() {
        assert_eq!(parse_genres("unknown|0\nAction|1\n\n", "u.genre").unwrap(), ["unknown", "Action"]);
        let message = parse_genres("unknown|0\nAction|2\n", "u.genre").unwrap_err().to_string();
        assert!(message.contains("line 2") && message.contains("index"), "{message}");
    }

    #[test]
    fn atomic_items_take_class_and_year() {
        let text = "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n\
                    1\tToy Story\t1995\tAnimation Children's Comedy\n\
                    19\tAntonia's Line\t1995\t\n\
                    20\tNo Year\t\tDrama Drama\n\
                    267\tunknown\tunkonwn\tunknown\n";
        let items = parse_atomic_items(text, "ml-100k.item").unwrap();
        assert_eq!(items.len(), 4);
        assert_eq!(items[0].categories, ["Animation", "Children's", "Comedy"]);
        assert_eq!(items[0].timestamp_ms, Some(788_918_400_000));
        assert!(items[1].categories.is_empty());
        assert_eq!((items[3].timestamp_ms, items[3].categories.clone()), (None, vec!["unknown".to_string()]));
        assert_eq!((items[2].timestamp_ms, items[2].categories.clone()), (None, vec!["Drama".to_string()]));
        let message = parse_atomic_items("item_id:token\tclass:token_seq\n1\tA\textra\n", "x.item").unwrap_err();
        assert!(message.to_string().contains("line 2"), "{message}");
        let message = parse_atomic_items("id:token\n1\n", "x.item").unwrap_err().to_string();
        assert!(message.contains("item_id"), "{message}");
        let message =
            parse_atomic_items("item_id:token\trelease_year:token\n1\t19x5\n", "x.item").unwrap_err().to_string();
        assert!(message.contains("release_year"), "{message}");
    }

    #[test]
    fn formats_are_told_by_name() {
        assert_eq!(detect_item_format(Path::new("data/ml-100k/ml-100k.item")), ItemFormat::Atomic);
        assert_eq!(detect_item_format(Path::new("data/ml-100k/u.item")), ItemFormat::MovieLens);
    }
}
