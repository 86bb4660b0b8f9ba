//! The model's own RFC 3339 reader for `not_before`/`not_after`: splits the text, checks each
//! part, counts days year by year; the window bounds the proxy's clock can tell.

/// Why a text is not a window bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StampError {
    /// Not RFC 3339 §5.6 `date-time`, or no such date or time.
    Syntax,
    /// A real instant outside 1970-01-01T00:00:00Z..=2554-07-21T23:34:33.709551615Z (u64 ns).
    Range,
}

fn ascii_number(text: &str, len: usize) -> Option<i64> {
    (text.len() == len && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

fn leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn month_days(year: i64, month: i64) -> i64 {
    [
        31,
        if leap(year) { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ][(month - 1) as usize]
}

/// An RFC 3339 `date-time` as nanoseconds since 1970 UTC, from RFC 3339 §5.6 and the contract
/// (docs/filter.md): `T`/`Z` in either case; `Z` or `±hh:mm`; fractional seconds of any length,
/// counted to the nanosecond (the rest dropped); `:60` only for a leap second, which is
/// 23:59:60 in UTC, counted as the next second (as the Unix clock does). Written apart from
/// the filter's parser: it splits the text, and counts days year by year.
pub fn rfc3339(text: &str) -> Result<u64, StampError> {
    use StampError::{Range, Syntax};
    if !text.is_ascii() || text.len() < 20 {
        return Err(Syntax);
    }
    let (date, rest) = text.split_at(10);
    let rest = rest.strip_prefix(['T', 't']).ok_or(Syntax)?;
    let mut ymd = date.split('-');
    let (Some(y), Some(mo), Some(d), None) = (ymd.next(), ymd.next(), ymd.next(), ymd.next())
    else {
        return Err(Syntax);
    };
    let (year, month, day) = (
        ascii_number(y, 4).ok_or(Syntax)?,
        ascii_number(mo, 2).ok_or(Syntax)?,
        ascii_number(d, 2).ok_or(Syntax)?,
    );
    let (time, offset_minutes) = if let Some(time) = rest.strip_suffix(['Z', 'z']) {
        (time, 0)
    } else {
        let cut = rest.len().checked_sub(6).ok_or(Syntax)?;
        let (time, offset) = rest.split_at(cut);
        let sign = match &offset[..1] {
            "+" => 1,
            "-" => -1,
            _ => return Err(Syntax),
        };
        let (oh, om) = offset[1..].split_once(':').ok_or(Syntax)?;
        let (oh, om) = (
            ascii_number(oh, 2).ok_or(Syntax)?,
            ascii_number(om, 2).ok_or(Syntax)?,
        );
        if oh > 23 || om > 59 {
            return Err(Syntax);
        }
        (time, sign * (oh * 60 + om))
    };
    let (hms, fraction) = match time.split_once('.') {
        Some((hms, f)) => (hms, Some(f)),
        None => (time, None),
    };
    let mut parts = hms.split(':');
    let (Some(h), Some(mi), Some(sec), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Syntax);
    };
    let (hour, minute, second) = (
        ascii_number(h, 2).ok_or(Syntax)?,
        ascii_number(mi, 2).ok_or(Syntax)?,
        ascii_number(sec, 2).ok_or(Syntax)?,
    );
    let nanos: i128 = match fraction {
        None => 0,
        Some(f) if !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()) => {
            let mut nine: String = f.chars().take(9).collect();
            while nine.len() < 9 {
                nine.push('0');
            }
            nine.parse().map_err(|_| Syntax)?
        }
        Some(_) => return Err(Syntax),
    };
    if !(1..=12).contains(&month)
        || day < 1
        || day > month_days(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return Err(Syntax);
    }
    let utc_minute_of_day = (hour * 60 + minute - offset_minutes).rem_euclid(24 * 60);
    if second == 60 && utc_minute_of_day != 23 * 60 + 59 {
        return Err(Syntax);
    }
    // Nothing before 1969 or after 2554 can land in range, whatever its offset.
    if !(1969..=2554).contains(&year) {
        return Err(Range);
    }
    let mut days: i64 = (1..month).map(|m| month_days(year, m)).sum::<i64>() + day - 1;
    if year >= 1970 {
        days += (1970..year)
            .map(|y| if leap(y) { 366 } else { 365 })
            .sum::<i64>();
    } else {
        days -= (year..1970)
            .map(|y| if leap(y) { 366 } else { 365 })
            .sum::<i64>();
    }
    let seconds = i128::from(days) * 86_400 + i128::from(hour * 3600 + minute * 60 + second)
        - i128::from(offset_minutes) * 60;
    u64::try_from(seconds * 1_000_000_000 + nanos).map_err(|_| Range)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_reads_rfc_3339_from_the_contract() {
        const S: u64 = 1_000_000_000;
        assert_eq!(rfc3339("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(rfc3339("2026-12-31T23:59:59Z"), Ok(1_798_761_599 * S));
        assert_eq!(
            rfc3339("2027-01-01t01:59:59.5+02:00"),
            Ok(1_798_761_599 * S + S / 2)
        );
        assert_eq!(rfc3339("1969-12-31T19:00:00-05:00"), Ok(0));
        assert_eq!(rfc3339("2016-12-31T23:59:60Z"), Ok(1_483_228_800 * S));
        assert_eq!(rfc3339("2017-01-01T00:59:60+01:00"), Ok(1_483_228_800 * S));
        assert_eq!(rfc3339("2554-07-21T23:34:33.709551615Z"), Ok(u64::MAX));
        assert_eq!(
            rfc3339("2554-07-21T23:34:33.709551616Z"),
            Err(StampError::Range)
        );
        assert_eq!(rfc3339("1969-12-31T23:59:59Z"), Err(StampError::Range));
        assert_eq!(rfc3339("0000-02-29T00:00:00Z"), Err(StampError::Range));
        for bad in [
            "2026-02-29T00:00:00Z",
            "2100-02-29T00:00:00Z",
            "2026-12-31T23:59:59",
            "2026-12-31 23:59:59Z",
            "2026-12-31T23:59:60Z+01:00",
            "2026-12-31T22:59:60Z",
            "2026-12-31T23:59:59.Z",
            "2026-12-31T23:59:59+0200",
            "2026-12-31T24:00:00Z",
            "\u{ff12}026-12-31T23:59:59Z",
        ] {
            assert_eq!(rfc3339(bad), Err(StampError::Syntax), "{bad}");
        }
        assert_eq!(rfc3339("2400-02-29T00:00:00Z").map(|_| ()), Ok(()));
    }
}
