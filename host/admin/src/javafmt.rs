//! Java's text renderings that ZooKeeper's admin output depends on: `Double.toString`,
//! `Long.toHexString`, `Date.toString` (in UTC) and the 4-decimal half-up rounding of
//! `AvgMinMaxCounter.getAvg`.

/// `Double.toString(d)`: plain decimal for 1e-3 <= |d| < 1e7 with at least one fractional digit
/// (`0.0`, `12.5`), computerized scientific notation otherwise (`1.0E-4`, `1.2345E7`).
pub(crate) fn java_double(d: f64) -> String {
    if d.is_nan() {
        return "NaN".to_owned();
    }
    if d.is_infinite() {
        return if d > 0.0 { "Infinity" } else { "-Infinity" }.to_owned();
    }
    if d == 0.0 {
        return if d.is_sign_negative() { "-0.0" } else { "0.0" }.to_owned();
    }
    let abs = d.abs();
    if (1e-3..1e7).contains(&abs) {
        let s = format!("{d}");
        if s.contains('.') {
            s
        } else {
            s + ".0"
        }
    } else {
        // Rust: "1.5e-4" / "2e23"; Java: "1.5E-4" / "2.0E23".
        let s = format!("{d:e}");
        match s.split_once('e') {
            Some((mantissa, exp)) if mantissa.contains('.') => format!("{mantissa}E{exp}"),
            Some((mantissa, exp)) => format!("{mantissa}.0E{exp}"),
            None => s,
        }
    }
}

/// `Long.toHexString(v)`: lower-case, no padding, two's complement for negatives.
pub(crate) fn java_hex(v: i64) -> String {
    format!("{v:x}")
}

/// `BigDecimal(v).setScale(4, HALF_UP).doubleValue()` for the non-negative averages we round.
pub(crate) fn round4(v: f64) -> f64 {
    if !v.is_finite() {
        return v;
    }
    (v * 10_000.0).round() / 10_000.0
}

/// `new Date(ms).toString()` with the JVM in UTC: `Thu Jan 01 00:00:00 UTC 1970`.
pub fn java_date_utc(ms: i64) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    // 1970-01-01 was a Thursday.
    let weekday = (days + 4).rem_euclid(7) as usize;
    format!(
        "{} {} {:02} {:02}:{:02}:{:02} UTC {}",
        DAYS[weekday],
        MONTHS[(month - 1) as usize],
        day,
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60,
        year
    )
}

/// Days since 1970-01-01 to (year, month 1..=12, day 1..=31), proleptic Gregorian
/// (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_like_java() {
        assert_eq!(java_double(0.0), "0.0");
        assert_eq!(java_double(-0.0), "-0.0");
        assert_eq!(java_double(1.0), "1.0");
        assert_eq!(java_double(0.5), "0.5");
        assert_eq!(java_double(12.3456), "12.3456");
        assert_eq!(java_double(0.001), "0.001");
        assert_eq!(java_double(0.0001), "1.0E-4");
        assert_eq!(java_double(0.00015), "1.5E-4");
        assert_eq!(java_double(1e7), "1.0E7");
        assert_eq!(java_double(12_345_678.0), "1.2345678E7");
        assert_eq!(java_double(9_999_999.0), "9999999.0");
        assert_eq!(java_double(-2.5), "-2.5");
        assert_eq!(java_double(f64::NAN), "NaN");
        assert_eq!(java_double(f64::INFINITY), "Infinity");
    }

    #[test]
    fn hex_like_java() {
        assert_eq!(java_hex(0), "0");
        assert_eq!(java_hex(0x1_0000_0002), "100000002");
        assert_eq!(java_hex(-1), "ffffffffffffffff");
    }

    #[test]
    fn rounding_half_up() {
        assert_eq!(round4(1.0 / 3.0), 0.3333);
        assert_eq!(round4(2.0 / 3.0), 0.6667);
        assert_eq!(round4(0.00005), 0.0001);
    }

    #[test]
    fn dates_like_java_in_utc() {
        assert_eq!(java_date_utc(0), "Thu Jan 01 00:00:00 UTC 1970");
        assert_eq!(
            java_date_utc(951_782_400_000),
            "Tue Feb 29 00:00:00 UTC 2000"
        );
        assert_eq!(
            java_date_utc(1_700_000_000_123),
            "Tue Nov 14 22:13:20 UTC 2023"
        );
        assert_eq!(java_date_utc(-1), "Wed Dec 31 23:59:59 UTC 1969");
    }
}
