//! Durations the way Kubernetes users type them: Go's `time.ParseDuration` grammar
//! (`300ms`, `1.5h`, `2h45m`, `10us`, `1µs`, `3ns`), parsed exactly in nanoseconds, plus a bare
//! number meaning seconds (`30`, `1.5`), which vk's flags have always accepted. Negative
//! durations are refused: everything vk configures is a non-negative span.

use std::time::Duration;

/// Why a duration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Empty input.
    #[error("empty duration")]
    Empty,
    /// Not in the grammar.
    #[error("invalid duration {0:?}: expected e.g. 500ms, 30s, 1m30s or 2h")]
    Invalid(String),
    /// A unit that Go does not know.
    #[error("invalid duration {input:?}: unknown unit {unit:?} (use ns, us, ms, s, m or h)")]
    UnknownUnit {
        /// The whole input.
        input: String,
        /// The unit found.
        unit: String,
    },
    /// Below zero.
    #[error("invalid duration {0:?}: must not be negative")]
    Negative(String),
    /// Larger than the range of a duration.
    #[error("invalid duration {0:?}: out of range")]
    OutOfRange(String),
}

/// Parses a duration: Go's grammar, or a bare number of seconds.
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    let (negative, body) = match s.as_bytes()[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let invalid = || DurationError::Invalid(input.to_string());
    let out_of_range = || DurationError::OutOfRange(input.to_string());
    // A bare number: seconds (Go accepts only "0" here; vk's flags accept any number).
    let nanos = if body.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        scaled(body, NANOS_PER_SECOND).ok_or_else(invalid)?
    } else {
        let mut total: u128 = 0;
        let mut rest = body;
        while !rest.is_empty() {
            let number_len = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(rest.len());
            let (number, tail) = rest.split_at(number_len);
            let unit_len = tail
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(tail.len());
            let (unit, tail) = tail.split_at(unit_len);
            let per = unit_nanos(unit).ok_or_else(|| DurationError::UnknownUnit {
                input: input.to_string(),
                unit: unit.to_string(),
            })?;
            let value = scaled(number, per).ok_or_else(invalid)?;
            total = total.checked_add(value).ok_or_else(out_of_range)?;
            rest = tail;
        }
        total
    };
    if negative && nanos != 0 {
        return Err(DurationError::Negative(input.to_string()));
    }
    let secs = u64::try_from(nanos / NANOS_PER_SECOND).map_err(|_| out_of_range())?;
    // The remainder is below 10^9 and always fits.
    let sub = u32::try_from(nanos % NANOS_PER_SECOND).map_err(|_| out_of_range())?;
    Ok(Duration::new(secs, sub))
}

const NANOS_PER_SECOND: u128 = 1_000_000_000;

fn unit_nanos(unit: &str) -> Option<u128> {
    Some(match unit {
        "ns" => 1,
        "us" | "µs" | "μs" => 1_000,
        "ms" => 1_000_000,
        "s" => NANOS_PER_SECOND,
        "m" => 60 * NANOS_PER_SECOND,
        "h" => 3600 * NANOS_PER_SECOND,
        _ => return None,
    })
}

/// `number × per`, exactly, with the fraction truncated below a nanosecond (as Go does).
/// `None` if `number` is not a decimal number with at least one digit, or overflows.
fn scaled(number: &str, per: u128) -> Option<u128> {
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    if (int_part.is_empty() && frac_part.is_empty()) || frac_part.contains('.') {
        return None;
    }
    let whole: u128 = if int_part.is_empty() {
        0
    } else {
        int_part.parse().ok()?
    };
    let mut value = whole.checked_mul(per)?;
    let mut scale = per;
    for digit in frac_part.bytes() {
        scale /= 10;
        if scale == 0 {
            break;
        }
        value = value.checked_add(u128::from(digit - b'0') * scale)?;
    }
    Some(value)
}

/// Prints a duration compactly for messages: `250ms`, `30s`, `1.5s`.
pub fn format_duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Duration {
        parse_duration(s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn go_forms_parse_exactly() {
        assert_eq!(d("300ms"), Duration::from_millis(300));
        assert_eq!(d("1.5h"), Duration::from_secs(5400));
        assert_eq!(d("2h45m"), Duration::from_secs(2 * 3600 + 45 * 60));
        assert_eq!(d("1m30s"), Duration::from_secs(90));
        assert_eq!(d("10us"), Duration::from_micros(10));
        assert_eq!(d("1µs"), Duration::from_micros(1));
        assert_eq!(d("3ns"), Duration::from_nanos(3));
        assert_eq!(d("0.1s"), Duration::from_millis(100));
        assert_eq!(d(".5s"), Duration::from_millis(500));
        assert_eq!(d("1.s"), Duration::from_secs(1));
        assert_eq!(d("+5s"), Duration::from_secs(5));
        assert_eq!(d("-0"), Duration::ZERO);
        assert_eq!(d("1.0000000001s"), Duration::from_secs(1));
    }

    #[test]
    fn bare_numbers_are_seconds() {
        assert_eq!(d("30"), Duration::from_secs(30));
        assert_eq!(d("1.5"), Duration::from_millis(1500));
        assert_eq!(d("0"), Duration::ZERO);
    }

    #[test]
    fn bad_input_says_why() {
        assert_eq!(parse_duration(""), Err(DurationError::Empty));
        assert!(matches!(
            parse_duration("10x"),
            Err(DurationError::UnknownUnit { .. })
        ));
        assert!(matches!(
            parse_duration("3 parsecs"),
            Err(DurationError::UnknownUnit { .. })
        ));
        assert!(matches!(
            parse_duration("-1s"),
            Err(DurationError::Negative(_))
        ));
        assert!(matches!(
            parse_duration("-1"),
            Err(DurationError::Negative(_))
        ));
        for bad in ["s", "1..2s", ".s", "1s2", "ms5"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(matches!(
            parse_duration("99999999999999999999999999h"),
            Err(DurationError::Invalid(_) | DurationError::OutOfRange(_))
        ));
    }

    #[test]
    fn formats_compactly() {
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_duration(Duration::from_secs(30)), "30s");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
    }
}
