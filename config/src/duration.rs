//! Durations in the file: `"60s"`, `"5m"`, `"1h 30m"`, `"7d"`, `"500ms"`, or a whole
//! number of seconds.
//!
//! Strings are read with `humantime`; an integer (or a string of only digits, which is
//! what a quoted environment variable delivers) is a number of seconds. Writing uses
//! the `humantime` form, so a written config reads back the same. Use it on a field as
//! `#[serde(with = "crate::duration")]`.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::Serializer;

/// The accepted forms, for the end of an error message.
pub const FORMS: &str =
    "write it like \"90s\", \"30m\", \"24h\", \"7d\", \"500ms\" or \"1h 30m\", or as a whole number of seconds";

/// Reads a duration string; `Err` says why, quoting `text`.
pub fn parse(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    if !trimmed.is_empty() && trimmed.bytes().all(|byte| byte.is_ascii_digit()) {
        return trimmed
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| format!("{text:?} is too many seconds; {FORMS}"));
    }
    humantime::parse_duration(trimmed)
        .map_err(|reason| format!("{text:?} is not a duration ({reason}); {FORMS}"))
}

/// The `humantime` spelling of `duration`, such as `"1m 30s"`; [`parse`] reads it back.
pub(crate) fn format(duration: Duration) -> String {
    humantime::format_duration(duration).to_string()
}

/// Writes `duration` as a `humantime` string.
pub(crate) fn serialize<S: Serializer>(
    duration: &Duration,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format(*duration))
}

/// Reads a duration string or a whole number of seconds.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Duration, D::Error> {
    deserializer.deserialize_any(DurationVisitor)
}

/// Accepts a string or a non-negative integer.
struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a duration such as \"60s\" or a whole number of seconds")
    }

    fn visit_u64<E: de::Error>(self, seconds: u64) -> Result<Duration, E> {
        Ok(Duration::from_secs(seconds))
    }

    fn visit_i64<E: de::Error>(self, seconds: i64) -> Result<Duration, E> {
        u64::try_from(seconds)
            .map(Duration::from_secs)
            .map_err(|_| E::custom(format!("{seconds} is negative; {FORMS}")))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
        parse(text).map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{format, parse};

    #[test]
    fn parses_units_and_plain_seconds() {
        let cases = [
            ("90s", Duration::from_secs(90)),
            ("30m", Duration::from_secs(30 * 60)),
            ("24h", Duration::from_secs(24 * 3600)),
            ("7d", Duration::from_secs(7 * 86_400)),
            ("500ms", Duration::from_millis(500)),
            ("1h 30m", Duration::from_secs(5400)),
            ("0s", Duration::ZERO),
            ("60", Duration::from_secs(60)),
            (" 5m ", Duration::from_secs(300)),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text), Ok(want), "{text:?}");
        }
    }

    #[test]
    fn rejects_with_the_value_and_the_forms() {
        for text in [
            "x",
            "",
            "soon",
            "5 parsecs",
            "-1s",
            "99999999999999999999999",
        ] {
            let Err(message) = parse(text) else {
                panic!("{text:?} parsed");
            };
            assert!(message.starts_with(&format!("{text:?} ")), "{message}");
            assert!(message.contains("\"24h\""), "{message}");
        }
    }

    #[test]
    fn format_reads_back() {
        for duration in [
            Duration::ZERO,
            Duration::from_millis(500),
            Duration::from_secs(90),
            Duration::from_secs(86_400 * 7 + 1),
        ] {
            assert_eq!(parse(&format(duration)), Ok(duration));
        }
        assert_eq!(format(Duration::from_secs(60)), "1m");
    }
}
