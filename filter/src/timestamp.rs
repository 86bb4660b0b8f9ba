//! RFC 3339 timestamps (`2026-12-31T23:59:59Z`, `2026-12-31T23:59:59.5+02:00`) to nanoseconds
//! since 1970 in UTC, the unit of the proxy's clock (`proxy_get_current_time_nanoseconds`).
//!
//! Read once, at configure time, for the tokens' validity windows. The grammar is RFC 3339
//! §5.6 `date-time`: `T` and `Z` in either case, fractional seconds of any length (read to the
//! nanosecond, further digits dropped), an offset `Z` or `±hh:mm` (`-00:00` is UTC). A leap
//! second (`:60`) is accepted where RFC 3339 allows one, at 23:59:60 UTC, and counts as the
//! second after it, as the Unix clock the proxy reads does. The result must fit the clock:
//! 1970-01-01T00:00:00Z to 2554-07-21T23:34:33.709551615Z.

/// Why a timestamp was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampError {
    /// Not an RFC 3339 `date-time`, or not a real date or time.
    Syntax,
    /// A real time, but before 1970 or past what 64 bits of nanoseconds hold.
    OutOfRange,
}

const NANOS_PER_SECOND: u64 = 1_000_000_000;
const SECONDS_PER_DAY: i64 = 86_400;
/// Days from 0001-01-01 to 1970-01-01 in the proleptic Gregorian calendar.
const DAYS_BEFORE_1970: i64 = 719_162;

/// Parses an RFC 3339 `date-time` into nanoseconds since 1970-01-01T00:00:00Z.
pub fn parse_rfc3339(text: &str) -> Result<u64, TimestampError> {
    read(text.as_bytes()).ok_or(TimestampError::Syntax)?
}

/// `None` for a syntax error; `Some(Err)` for a real time the clock cannot hold. Seconds are
/// counted in `i64` (four-digit years keep every step far from overflow), nanoseconds in
/// `u64`, the clock's own type: no 128-bit arithmetic in the module.
fn read(bytes: &[u8]) -> Option<Result<u64, TimestampError>> {
    let year = digits(bytes, 0, 4)?;
    expect(bytes, 4, b"-")?;
    let month = digits(bytes, 5, 2)?;
    expect(bytes, 7, b"-")?;
    let day = digits(bytes, 8, 2)?;
    expect(bytes, 10, b"Tt")?;
    let hour = digits(bytes, 11, 2)?;
    expect(bytes, 13, b":")?;
    let minute = digits(bytes, 14, 2)?;
    expect(bytes, 16, b":")?;
    let second = digits(bytes, 17, 2)?;
    if !(1..=12).contains(&month)
        || !(1..=days_in_month(year, month)).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }

    let mut at = 19usize;
    let mut nanos: u64 = 0;
    if bytes.get(at) == Some(&b'.') {
        at = at.checked_add(1)?;
        let start = at;
        while let Some(&b) = bytes.get(at).filter(|b| b.is_ascii_digit()) {
            // The first nine digits are nanoseconds; further ones are below the clock's unit.
            if at.checked_sub(start)? < 9 {
                nanos = nanos
                    .checked_mul(10)?
                    .checked_add(u64::from(b.wrapping_sub(b'0')))?;
            }
            at = at.checked_add(1)?;
        }
        let read = at.checked_sub(start)?;
        if read == 0 {
            return None;
        }
        for _ in read..9 {
            nanos = nanos.checked_mul(10)?;
        }
    }

    // The offset: local time minus UTC, in seconds.
    let offset: i64 = match bytes.get(at)? {
        b'Z' | b'z' => {
            at = at.checked_add(1)?;
            0
        }
        sign @ (b'+' | b'-') => {
            let oh = digits(bytes, at.checked_add(1)?, 2)?;
            expect(bytes, at.checked_add(3)?, b":")?;
            let om = digits(bytes, at.checked_add(4)?, 2)?;
            if oh > 23 || om > 59 {
                return None;
            }
            at = at.checked_add(6)?;
            let seconds = oh.checked_mul(3600)?.checked_add(om.checked_mul(60)?)?;
            if *sign == b'-' {
                seconds.checked_neg()?
            } else {
                seconds
            }
        }
        _ => return None,
    };
    if at != bytes.len() {
        return None;
    }

    let days = days_since_1970(year, month, day)?;
    let seconds = days
        .checked_mul(SECONDS_PER_DAY)?
        .checked_add(hour.checked_mul(3600)?)?
        .checked_add(minute.checked_mul(60)?)?
        .checked_add(second)?
        .checked_sub(offset)?;
    // RFC 3339 allows `:60` only for a leap second, which comes at the end of a UTC day: the
    // second it stands for is then exactly midnight UTC.
    if second == 60 && seconds.checked_rem_euclid(SECONDS_PER_DAY)? != 0 {
        return None;
    }
    Some(
        u64::try_from(seconds)
            .ok()
            .and_then(|s| s.checked_mul(NANOS_PER_SECOND))
            .and_then(|ns| ns.checked_add(nanos))
            .ok_or(TimestampError::OutOfRange),
    )
}

/// `n` ASCII digits at `at`, as a number.
fn digits(bytes: &[u8], at: usize, n: usize) -> Option<i64> {
    let field = bytes.get(at..at.checked_add(n)?)?;
    field.iter().try_fold(0i64, |value, &b| {
        if b.is_ascii_digit() {
            value
                .checked_mul(10)?
                .checked_add(i64::from(b.wrapping_sub(b'0')))
        } else {
            None
        }
    })
}

/// The byte at `at` is one of `allowed`.
fn expect(bytes: &[u8], at: usize, allowed: &[u8]) -> Option<()> {
    bytes.get(at).filter(|b| allowed.contains(b)).map(|_| ())
}

fn is_leap_year(year: i64) -> bool {
    let divides = |n: i64| year.checked_rem_euclid(n) == Some(0);
    divides(4) && (!divides(100) || divides(400))
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to `year-month-day` (negative before), proleptic Gregorian calendar.
fn days_since_1970(year: i64, month: i64, day: i64) -> Option<i64> {
    // Days from 0001-01-01 to the year's first day (year 0, a leap year, gives -366).
    let y = year.checked_sub(1)?;
    let before_year = y
        .checked_mul(365)?
        .checked_add(y.checked_div_euclid(4)?)?
        .checked_sub(y.checked_div_euclid(100)?)?
        .checked_add(y.checked_div_euclid(400)?)?;
    let mut before_month = 0i64;
    for m in 1..month {
        before_month = before_month.checked_add(days_in_month(year, m))?;
    }
    before_year
        .checked_add(before_month)?
        .checked_add(day.checked_sub(1)?)?
        .checked_sub(DAYS_BEFORE_1970)
}

#[cfg(test)]
mod tests {
    use super::*;
    // In Node.js (`make test-wasm-bindgen`) the same tests run under wasm-bindgen-test.
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    const S: u64 = 1_000_000_000;

    fn ok(text: &str) -> u64 {
        parse_rfc3339(text).unwrap_or_else(|e| panic!("{text}: {e:?}"))
    }

    #[test]
    fn the_epoch_and_known_instants() {
        assert_eq!(ok("1970-01-01T00:00:00Z"), 0);
        assert_eq!(ok("1970-01-01T00:00:01Z"), S);
        assert_eq!(ok("2000-01-01T00:00:00Z"), 946_684_800 * S);
        assert_eq!(ok("2026-12-31T23:59:59Z"), 1_798_761_599 * S);
        // The wasmtime host's clock starts here (wasm-host/HOST.md).
        assert_eq!(
            ok("2026-01-02T03:04:05.678901234Z"),
            1_767_323_045_678_901_234
        );
        assert_eq!(ok("2038-01-19T03:14:08Z"), (1u64 << 31) * S);
    }

    #[test]
    fn offsets_move_the_instant_to_utc() {
        let utc = ok("2026-06-30T22:00:00Z");
        assert_eq!(ok("2026-07-01T00:00:00+02:00"), utc);
        assert_eq!(ok("2026-06-30T18:30:00-03:30"), utc);
        assert_eq!(ok("2026-06-30T22:00:00+00:00"), utc);
        assert_eq!(ok("2026-06-30T22:00:00-00:00"), utc);
        assert_eq!(ok("2026-07-01T21:59:00+23:59"), utc);
        assert_eq!(ok("2026-06-29T22:01:00-23:59"), utc);
        // Across a year boundary, both ways.
        assert_eq!(ok("2027-01-01T01:00:00+02:00"), ok("2026-12-31T23:00:00Z"));
        assert_eq!(ok("2026-12-31T23:00:00-02:00"), ok("2027-01-01T01:00:00Z"));
    }

    #[test]
    fn fractions_are_read_to_the_nanosecond() {
        let base = ok("2026-12-31T23:59:59Z");
        assert_eq!(ok("2026-12-31T23:59:59.5Z"), base + 500_000_000);
        assert_eq!(ok("2026-12-31T23:59:59.000000001Z"), base + 1);
        assert_eq!(ok("2026-12-31T23:59:59.123456789Z"), base + 123_456_789);
        // Below the clock's unit: dropped.
        assert_eq!(ok("2026-12-31T23:59:59.1234567899999Z"), base + 123_456_789);
        assert_eq!(
            ok("2026-12-31T23:59:59.999999999+00:00"),
            base + 999_999_999
        );
        assert_eq!(ok("2026-12-31T23:59:59.0Z"), base);
    }

    #[test]
    fn lower_case_t_and_z_are_rfc_3339_too() {
        assert_eq!(ok("2026-12-31t23:59:59z"), ok("2026-12-31T23:59:59Z"));
    }

    #[test]
    fn leap_years_follow_the_gregorian_rules() {
        assert_eq!(
            ok("2024-03-01T00:00:00Z") - ok("2024-02-28T00:00:00Z"),
            2 * 86_400 * S
        );
        assert_eq!(
            ok("2000-03-01T00:00:00Z") - ok("2000-02-28T00:00:00Z"),
            2 * 86_400 * S
        );
        assert_eq!(
            ok("2100-03-01T00:00:00Z") - ok("2100-02-28T00:00:00Z"),
            86_400 * S
        );
        for bad in [
            "2100-02-29T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2024-02-30T00:00:00Z",
            "2026-04-31T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-00-01T00:00:00Z",
            "2026-01-00T00:00:00Z",
            "2026-01-32T00:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(bad), Err(TimestampError::Syntax), "{bad}");
        }
        assert!(parse_rfc3339("2400-02-29T00:00:00Z").is_ok());
        assert!(parse_rfc3339("2024-02-29T23:59:59Z").is_ok());
    }

    #[test]
    fn a_leap_second_is_the_next_seconds_start_and_only_at_the_end_of_a_utc_day() {
        assert_eq!(
            ok("2016-12-31T23:59:60Z"),
            ok("2017-01-01T00:00:00Z"),
            "the Unix clock repeats no second: :60 reads as the next one"
        );
        assert_eq!(ok("2016-12-31T23:59:60.5Z"), ok("2017-01-01T00:00:00.5Z"));
        assert_eq!(ok("2017-01-01T01:59:60+02:00"), ok("2017-01-01T00:00:00Z"));
        for bad in [
            "2016-12-31T23:58:60Z",
            "2016-12-31T12:59:60Z",
            "2016-12-31T23:59:60+01:00",
            "2016-12-31T23:59:61Z",
        ] {
            assert_eq!(parse_rfc3339(bad), Err(TimestampError::Syntax), "{bad}");
        }
    }

    #[test]
    fn the_clocks_range_is_1970_to_2554() {
        assert_eq!(ok("2554-07-21T23:34:33.709551615Z"), u64::MAX);
        assert_eq!(ok("1969-12-31T23:00:00-01:00"), 0);
        for out in [
            "1969-12-31T23:59:59.999999999Z",
            "1970-01-01T00:00:00+00:01",
            "0000-01-01T00:00:00Z",
            "1900-01-01T00:00:00Z",
            "2554-07-21T23:34:33.709551616Z",
            "2554-07-21T23:34:34Z",
            "9999-12-31T23:59:59.999999999Z",
            "9999-12-31T23:59:59-23:59",
        ] {
            assert_eq!(parse_rfc3339(out), Err(TimestampError::OutOfRange), "{out}");
        }
        assert_eq!(
            parse_rfc3339("0000-02-29T00:00:00Z"),
            Err(TimestampError::OutOfRange),
            "year 0 is a leap year, just out of range"
        );
    }

    #[test]
    fn anything_else_is_a_syntax_error() {
        for bad in [
            "",
            "2026-12-31",
            "2026-12-31T23:59:59",
            "2026-12-31T23:59Z",
            "2026-12-31 23:59:59Z",
            "2026-12-31T23:59:59ZZ",
            "2026-12-31T23:59:59.Z",
            "2026-12-31T23:59:59,5Z",
            "2026-12-31T24:00:00Z",
            "2026-12-31T23:60:00Z",
            "2026-12-31T23:59:59+2:00",
            "2026-12-31T23:59:59+02",
            "2026-12-31T23:59:59+0200",
            "2026-12-31T23:59:59+24:00",
            "2026-12-31T23:59:59+02:60",
            "2026-12-31T23:59:59 Z",
            " 2026-12-31T23:59:59Z",
            "2026-12-31T23:59:59Z ",
            "+2026-12-31T23:59:59Z",
            "20261-12-31T23:59:59Z",
            "2026-1-31T23:59:59Z",
            "2026-12-31T23:59:59UTC",
            "２026-12-31T23:59:59Z",
            "1798761599",
        ] {
            assert_eq!(parse_rfc3339(bad), Err(TimestampError::Syntax), "{bad:?}");
        }
    }
}
