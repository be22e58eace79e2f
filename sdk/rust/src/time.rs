//! Conversions between [`SystemTime`] and [`prost_types::Timestamp`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prost_types::Timestamp;

/// Converts a `SystemTime` to a protobuf timestamp (times before 1970 clamp to the epoch).
pub fn to_timestamp(t: SystemTime) -> Timestamp {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    Timestamp {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

/// The current time as a protobuf timestamp.
pub fn now() -> Timestamp {
    to_timestamp(SystemTime::now())
}

/// Converts a protobuf timestamp to a `SystemTime` (negative or invalid values clamp to the epoch).
pub fn from_timestamp(ts: &Timestamp) -> SystemTime {
    let secs = u64::try_from(ts.seconds).unwrap_or(0);
    let nanos = u32::try_from(ts.nanos).unwrap_or(0).min(999_999_999);
    UNIX_EPOCH + Duration::new(secs, nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_nanoseconds() {
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
        assert_eq!(from_timestamp(&to_timestamp(t)), t);
    }

    #[test]
    fn negative_timestamp_clamps_to_epoch() {
        let ts = Timestamp {
            seconds: -5,
            nanos: 0,
        };
        assert_eq!(from_timestamp(&ts), UNIX_EPOCH);
    }
}
