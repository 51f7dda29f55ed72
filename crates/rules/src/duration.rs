//! One way to write a length of time, everywhere tenure takes one (flags, token expiries): a
//! whole number and a unit, `30s`, `30m`, `12h` or `7d`.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("{0:?}: give a duration such as 30s, 30m, 12h or 7d")]
    Malformed(String),
    #[error("{0:?}: a duration must be longer than zero")]
    Zero(String),
    #[error("{0:?}: too long a duration")]
    TooLong(String),
}

/// `30s`, `30m`, `12h`, `7d`: longer than zero.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let s = text.trim();
    let bad = || DurationError::Malformed(text.to_string());
    // The unit is the last character, whatever its width (`5Ñ` is refused, not split inside).
    let unit = s.chars().last().ok_or_else(bad)?;
    let digits = &s[..s.len() - unit.len_utf8()];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: u64 = digits.parse().map_err(|_| DurationError::TooLong(text.to_string()))?;
    let per = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3_600,
        'd' => 86_400,
        _ => return Err(bad()),
    };
    let secs = n.checked_mul(per).ok_or_else(|| DurationError::TooLong(text.to_string()))?;
    if secs == 0 {
        return Err(DurationError::Zero(text.to_string()));
    }
    Ok(Duration::from_secs(secs))
}

/// A schedule's interval: a duration, `0` for none, or (as before durations) bare seconds.
pub fn interval(text: &str) -> Result<Duration, DurationError> {
    let s = text.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().map(Duration::from_secs).map_err(|_| DurationError::TooLong(text.to_string()));
    }
    parse(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unit_and_every_mistake() {
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse(" 30m "), Ok(Duration::from_secs(1_800)));
        assert_eq!(parse("12h"), Ok(Duration::from_secs(43_200)));
        assert_eq!(parse("7d"), Ok(Duration::from_secs(604_800)));
        for bad in ["", "m", "30", "30x", "-5m", "+5m", "1.5h", "5Ñ", "Ñ", "5 m", "h5"] {
            assert_eq!(parse(bad), Err(DurationError::Malformed(bad.to_string())), "{bad:?}");
        }
        assert_eq!(parse("0m"), Err(DurationError::Zero("0m".into())));
        assert_eq!(parse("99999999999999999999d"), Err(DurationError::TooLong("99999999999999999999d".into())));
        assert_eq!(parse("999999999999999999d"), Err(DurationError::TooLong("999999999999999999d".into())));
        assert!(parse("5Ñ").unwrap_err().to_string().contains("such as 30s, 30m, 12h or 7d"));
    }

    #[test]
    fn an_interval_also_takes_bare_seconds_and_zero() {
        assert_eq!(interval("300"), Ok(Duration::from_secs(300)));
        assert_eq!(interval("0"), Ok(Duration::ZERO));
        assert_eq!(interval("5m"), Ok(Duration::from_secs(300)));
        assert!(interval("5 minutes").is_err());
    }
}
