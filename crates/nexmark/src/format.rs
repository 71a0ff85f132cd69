//! Hand-written text formatting for the hot paths: decimal integers (itoa-style, two digits
//! at a time) and RFC 3339 UTC timestamps with milliseconds.
//!
//! Both append to a `Vec<u8>` and never allocate anything else. Timestamps are formatted as
//! `YYYY-MM-DDTHH:MM:SS.mmmZ` for years 0000..=9999; years outside that range (which RFC
//! 3339 cannot express) get a sign and as many digits as needed, as chrono does.

/// "00", "01", ..., "99".
const DIGIT_PAIRS: &[u8; 200] = b"\
0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// Milliseconds in one day.
const DAY_MS: i64 = 86_400_000;

/// The two ASCII digits of `v` (`v < 100`).
#[inline]
fn pair(v: usize) -> [u8; 2] {
    [DIGIT_PAIRS[2 * v], DIGIT_PAIRS[2 * v + 1]]
}

/// Writes the decimal digits of `v` right-aligned in `buf`; returns where they start.
#[inline]
pub(crate) fn u64_digits(buf: &mut [u8; 20], mut v: u64) -> usize {
    let mut i = buf.len();
    while v >= 100 {
        let r = (v % 100) as usize;
        v /= 100;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&pair(r));
    }
    if v >= 10 {
        i -= 2;
        buf[i..i + 2].copy_from_slice(&pair(v as usize));
    } else {
        i -= 1;
        buf[i] = b'0' + v as u8;
    }
    i
}

/// Appends `v` in decimal.
#[inline]
pub(crate) fn push_u64(out: &mut Vec<u8>, v: u64) {
    let mut buf = [0u8; 20];
    let start = u64_digits(&mut buf, v);
    out.extend_from_slice(&buf[start..]);
}

/// Appends `v` in decimal, with a leading `-` when negative.
#[inline]
pub(crate) fn push_i64(out: &mut Vec<u8>, v: i64) {
    if v < 0 {
        out.push(b'-');
    }
    push_u64(out, v.unsigned_abs());
}

/// Appends `v` zero-padded to exactly four digits (`v < 10_000`).
#[inline]
pub(crate) fn push_4_digits(out: &mut Vec<u8>, v: u32) {
    debug_assert!(v < 10_000);
    let [a, b] = pair((v / 100) as usize);
    let [c, d] = pair((v % 100) as usize);
    out.extend_from_slice(&[a, b, c, d]);
}

/// The proleptic Gregorian (year, month, day) of a day number counted from 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097) as u64; // day of era, 0..=146_096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // year of era
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of (March-based) year
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe as i64 + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Formats RFC 3339 timestamps, remembering the date part of the last day it formatted:
/// consecutive rows almost always fall on the same day.
#[derive(Debug)]
pub(crate) struct TimestampFormatter {
    day: i64,
    /// `YYYY-MM-DDT` of `day` (longer for years outside 0..=9999).
    date: Vec<u8>,
}

impl TimestampFormatter {
    /// A formatter with nothing remembered yet.
    pub(crate) fn new() -> TimestampFormatter {
        TimestampFormatter {
            day: i64::MIN,
            date: Vec::with_capacity(24),
        }
    }

    /// Appends `ms` (milliseconds since the epoch) as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
    #[inline]
    pub(crate) fn push(&mut self, out: &mut Vec<u8>, ms: i64) {
        let day = ms.div_euclid(DAY_MS);
        if day != self.day {
            self.set_day(day);
        }
        let ms_of_day = ms.rem_euclid(DAY_MS) as u32;
        let secs = ms_of_day / 1000;
        let millis = ms_of_day % 1000;
        let [h1, h2] = pair((secs / 3600) as usize);
        let [m1, m2] = pair((secs / 60 % 60) as usize);
        let [s1, s2] = pair((secs % 60) as usize);
        let [_, f2] = pair((millis / 100) as usize);
        let [f3, f4] = pair((millis % 100) as usize);
        out.extend_from_slice(&self.date);
        out.extend_from_slice(&[h1, h2, b':', m1, m2, b':', s1, s2, b'.', f2, f3, f4, b'Z']);
    }

    fn set_day(&mut self, day: i64) {
        let (year, month, dom) = civil_from_days(day);
        self.day = day;
        self.date.clear();
        if (0..=9999).contains(&year) {
            push_4_digits(&mut self.date, year as u32);
        } else {
            self.date.push(if year < 0 { b'-' } else { b'+' });
            let abs = year.unsigned_abs();
            if abs < 10_000 {
                push_4_digits(&mut self.date, abs as u32);
            } else {
                push_u64(&mut self.date, abs);
            }
        }
        let [m1, m2] = pair(month as usize);
        let [d1, d2] = pair(dom as usize);
        self.date
            .extend_from_slice(&[b'-', m1, m2, b'-', d1, d2, b'T']);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int(v: i64) -> String {
        let mut out = Vec::new();
        push_i64(&mut out, v);
        String::from_utf8(out).expect("ascii")
    }

    fn ts(ms: i64) -> String {
        let mut out = Vec::new();
        TimestampFormatter::new().push(&mut out, ms);
        String::from_utf8(out).expect("ascii")
    }

    #[test]
    fn integers_match_std() {
        let mut cases = vec![
            0,
            1,
            9,
            10,
            99,
            100,
            101,
            999,
            1000,
            i64::MAX,
            i64::MIN,
            -1,
            -10,
        ];
        let mut x = 1i64;
        while let Some(next) = x.checked_mul(10) {
            cases.extend([x - 1, x, x + 1, -x]);
            x = next;
        }
        for v in cases {
            assert_eq!(int(v), v.to_string());
        }
        let mut out = Vec::new();
        push_4_digits(&mut out, 7);
        push_4_digits(&mut out, 9999);
        assert_eq!(out, b"00079999");
    }

    #[test]
    fn base_time_formats_as_the_spec_says() {
        assert_eq!(ts(crate::BASE_TIME_MS), "2015-07-15T00:00:00.000Z");
        assert_eq!(ts(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(ts(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(ts(951_782_400_000 + 86_399_999), "2000-02-29T23:59:59.999Z");
    }

    #[test]
    fn timestamps_match_chrono_across_the_ingest_range() {
        let mut fmt = TimestampFormatter::new();
        let mut ms = -2_208_988_800_000i64; // 1900-01-01
        let step = 7_777_777_777i64 + 123; // about 90 days, not a whole number of seconds
        while ms < 32_503_679_999_999 {
            for probe in [ms, ms + 1, ms + 86_399_999] {
                let mut out = Vec::new();
                fmt.push(&mut out, probe);
                assert_eq!(
                    String::from_utf8(out).expect("ascii"),
                    chrono_rfc3339(probe)
                );
            }
            ms += step;
        }
    }

    /// The reference formatting, by chrono.
    fn chrono_rfc3339(ms: i64) -> String {
        chrono::DateTime::from_timestamp_millis(ms)
            .expect("in range")
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string()
    }
}
