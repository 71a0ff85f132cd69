//! Human-written durations: `'4s'`, `'100ms'`, `'7 days'`, `INTERVAL '4' SECOND`.

use std::time::Duration;

/// Parse a duration such as `4s`, `100 ms`, `2 minutes`, `7d`, `1h30m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let original = text;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err("empty duration".into());
    }
    let mut total_ms: u128 = 0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!(
                "cannot read {original:?} as a duration (like '4s' or '100ms')"
            ));
        }
        let number = &rest[..digits];
        rest = rest[digits..].trim_start();
        let unit_len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let unit = rest[..unit_len].to_ascii_lowercase();
        rest = rest[unit_len..].trim_start();
        let ms_per: u128 = match unit.as_str() {
            "ms" | "millisecond" | "milliseconds" => 1,
            "" | "s" | "sec" | "secs" | "second" | "seconds" => 1_000,
            "m" | "min" | "mins" | "minute" | "minutes" => 60_000,
            "h" | "hr" | "hour" | "hours" => 3_600_000,
            "d" | "day" | "days" => 86_400_000,
            "w" | "week" | "weeks" => 7 * 86_400_000,
            other => {
                return Err(format!(
                    "unknown time unit {other:?} in {original:?} (use ms, s, m, h, d or w)"
                ));
            }
        };
        let bad = || format!("bad number in duration {original:?}");
        // Whole numbers exactly; fractions through f64, rounded to the millisecond. Either
        // saturates rather than wraps: a value too large is refused below, never read as a
        // small one.
        let ms = if number.contains('.') {
            let value: f64 = number.parse().map_err(|_| bad())?;
            (value * ms_per as f64).round() as u128
        } else {
            match number.parse::<u128>() {
                Ok(n) => n.saturating_mul(ms_per),
                Err(e) if *e.kind() == std::num::IntErrorKind::PosOverflow => u128::MAX,
                Err(_) => return Err(bad()),
            }
        };
        total_ms = total_ms.saturating_add(ms);
    }
    // Durations become signed milliseconds (event-time arithmetic), so that is the bound.
    if total_ms > i64::MAX as u128 {
        return Err(format!(
            "duration {original:?} is too long: at most {} ms",
            i64::MAX
        ));
    }
    Ok(Duration::from_millis(total_ms as u64))
}

/// Render a duration the way `parse_duration` reads it.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    for (unit, per) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if ms >= per && ms.is_multiple_of(per) {
            return format!("{}{unit}", ms / per);
        }
    }
    format!("{ms}ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 20: `18446744073709551616ms` wrapped to 0.
    #[test]
    fn issue_20_a_duration_too_long_is_refused_not_wrapped() {
        for text in [
            "18446744073709551616ms",
            "9223372036854775808ms",
            "99999999999999999999999999999999999999999d",
        ] {
            let error = parse_duration(text).expect_err(text);
            assert!(error.contains("too long"), "{text}: {error}");
        }
        assert_eq!(
            parse_duration("9223372036854775807ms").expect("the largest"),
            Duration::from_millis(i64::MAX as u64)
        );
    }

    #[test]
    fn parses_common_forms() {
        assert_eq!(parse_duration("4s").unwrap(), Duration::from_secs(4));
        assert_eq!(parse_duration("4").unwrap(), Duration::from_secs(4));
        assert_eq!(
            parse_duration("100 ms").unwrap(),
            Duration::from_millis(100)
        );
        assert_eq!(
            parse_duration("2 MINUTES").unwrap(),
            Duration::from_secs(120)
        );
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("0.5s").unwrap(), Duration::from_millis(500));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("3 fortnights").is_err());
    }

    #[test]
    fn formats_round_trip() {
        for d in [
            Duration::from_secs(4),
            Duration::from_millis(1500),
            Duration::from_secs(86400),
        ] {
            assert_eq!(parse_duration(&format_duration(d)).unwrap(), d);
        }
    }
}
