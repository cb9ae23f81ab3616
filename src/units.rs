//! How durations and optional limits are written in configuration files
//! (serde `with` modules): durations as whole milliseconds in keys ending
//! `_ms`, an absent threshold as `"off"`, a derived default as `"auto"`.
//! Numbers are also accepted as strings (`"300"`), as environment variables
//! deliver them. A leaf: imports nothing from the crate.

use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::Serializer;

/// `Duration` as whole milliseconds.
pub mod ms {
    use super::*;

    /// Writes the duration in whole milliseconds.
    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
    }

    /// Reads whole milliseconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let millis = deserializer.deserialize_any(NumberOr::<u64>::new(None))?;
        millis.map(Duration::from_millis).ok_or_else(|| de::Error::custom("expected a number of milliseconds"))
    }
}

/// `Option<Duration>` as whole milliseconds, `None` as `"off"`.
pub mod ms_or_off {
    use super::*;

    /// Writes whole milliseconds, or `"off"`.
    pub fn serialize<S: Serializer>(duration: &Option<Duration>, serializer: S) -> Result<S::Ok, S::Error> {
        match duration {
            Some(duration) => ms::serialize(duration, serializer),
            None => serializer.serialize_str("off"),
        }
    }

    /// Reads whole milliseconds, or `"off"`.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Duration>, D::Error> {
        Ok(deserializer.deserialize_any(NumberOr::<u64>::new(Some("off")))?.map(Duration::from_millis))
    }
}

/// `Option<u64>` as a number, `None` as `"off"`.
pub mod count_or_off {
    use super::*;

    /// Writes the number, or `"off"`.
    pub fn serialize<S: Serializer>(count: &Option<u64>, serializer: S) -> Result<S::Ok, S::Error> {
        match count {
            Some(count) => serializer.serialize_u64(*count),
            None => serializer.serialize_str("off"),
        }
    }

    /// Reads a number, or `"off"`.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
        deserializer.deserialize_any(NumberOr::<u64>::new(Some("off")))
    }
}

/// `Option<u32>` as a number, `None` as `"auto"` (a default derived from
/// other settings).
pub mod u32_or_auto {
    use super::*;

    /// Writes the number, or `"auto"`.
    pub fn serialize<S: Serializer>(value: &Option<u32>, serializer: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(value) => serializer.serialize_u32(*value),
            None => serializer.serialize_str("auto"),
        }
    }

    /// Reads a number, or `"auto"`.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u32>, D::Error> {
        deserializer.deserialize_any(NumberOr::<u32>::new(Some("auto")))
    }
}

/// A non-negative integer (given as a number or a numeric string) or, when
/// `word` is set, that word for `None`.
struct NumberOr<T> {
    word: Option<&'static str>,
    marker: PhantomData<T>,
}

impl<T> NumberOr<T> {
    fn new(word: Option<&'static str>) -> Self {
        NumberOr { word, marker: PhantomData }
    }
}

impl<'de, T: TryFrom<u64> + FromStr> Visitor<'de> for NumberOr<T> {
    type Value = Option<T>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        match self.word {
            Some(word) => write!(formatter, "a non-negative integer or \"{word}\""),
            None => formatter.write_str("a non-negative integer"),
        }
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Self::Value, E> {
        T::try_from(value).map(Some).map_err(|_| E::custom(format!("{value} is too large")))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Self::Value, E> {
        match u64::try_from(value) {
            Ok(value) => self.visit_u64(value),
            Err(_) => Err(E::invalid_value(de::Unexpected::Signed(value), &self)),
        }
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
        let trimmed = value.trim();
        if self.word.is_some_and(|word| word == trimmed) {
            return Ok(None);
        }
        match trimmed.parse::<u64>() {
            Ok(number) => self.visit_u64(number),
            Err(_) => Err(E::invalid_value(de::Unexpected::Str(value), &self)),
        }
    }
}
