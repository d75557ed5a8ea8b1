//! Go's `time.ParseDuration`, which MetalLB uses for hold and keepalive times.

/// Parse a Go duration ("90s", "1m30s", "1.5h", "300ms", "0") into nanoseconds.
pub fn parse_go_duration(s: &str) -> Result<i128, String> {
    let orig = s;
    let invalid = || not_a_duration(orig);
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let (value, next) = term(orig, rest)?;
        total = total
            .checked_add(value)
            .ok_or_else(|| not_a_duration(orig))?;
        if total > i64::MAX as i128 {
            return Err(format!("{orig:?} is too long a duration"));
        }
        rest = next;
    }
    Ok(if neg { -total } else { total })
}

fn not_a_duration(orig: &str) -> String {
    format!(
        "{orig:?} is not a duration (use a number with a unit: ns, us, ms, s, m, h, e.g. \"90s\")"
    )
}

/// The first term of `rest` ("1.5h" of "1.5h30m"), in nanoseconds, and what follows it.
fn term<'a>(orig: &str, rest: &'a str) -> Result<(i128, &'a str), String> {
    let invalid = || not_a_duration(orig);
    let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
    let (int_part, after) = rest.split_at(int_len);
    let (frac_part, after) = match after.strip_prefix('.') {
        Some(a) => {
            let n = a.bytes().take_while(u8::is_ascii_digit).count();
            a.split_at(n)
        }
        None => ("", after),
    };
    if int_part.is_empty() && frac_part.is_empty() {
        return Err(invalid());
    }
    let unit_len = after
        .char_indices()
        .find(|(_, c)| c.is_ascii_digit() || *c == '.')
        .map(|(i, _)| i)
        .unwrap_or(after.len());
    let (unit, next) = after.split_at(unit_len);
    let scale = scale(orig, unit)?;
    let int: i128 = match int_part {
        "" => 0,
        digits => digits.parse().map_err(|_| invalid())?,
    };
    let mut value = int.checked_mul(scale).ok_or_else(invalid)?;
    if !frac_part.is_empty() {
        // Go keeps only what fits; truncating past 18 digits changes nothing that matters.
        let digits = &frac_part[..frac_part.len().min(18)];
        let f: i128 = digits.parse().map_err(|_| invalid())?;
        value += f * scale / 10i128.pow(digits.len() as u32);
    }
    Ok((value, next))
}

/// Nanoseconds in a `unit`.
fn scale(orig: &str, unit: &str) -> Result<i128, String> {
    Ok(match unit {
        "ns" => 1,
        "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        "" => return Err(format!("{orig:?} is missing a unit (ns, us, ms, s, m, h)")),
        other => {
            return Err(format!(
                "{orig:?} has unknown unit {other:?} (use ns, us, ms, s, m, h)"
            ));
        }
    })
}

/// Go's `time.Duration(int(d.Seconds())) * time.Second`: whole seconds, truncated toward zero.
pub fn whole_seconds(nanos: i128) -> i64 {
    (nanos / 1_000_000_000) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_forms() {
        assert_eq!(parse_go_duration("90s"), Ok(90_000_000_000));
        assert_eq!(parse_go_duration("1m30s"), Ok(90_000_000_000));
        assert_eq!(parse_go_duration("1.5h"), Ok(5_400_000_000_000));
        assert_eq!(parse_go_duration("300ms"), Ok(300_000_000));
        assert_eq!(parse_go_duration(".5s"), Ok(500_000_000));
        assert_eq!(parse_go_duration("0"), Ok(0));
        assert_eq!(parse_go_duration("-3s"), Ok(-3_000_000_000));
        assert_eq!(parse_go_duration("2\u{b5}s"), Ok(2_000));
    }

    #[test]
    fn rejects_what_go_rejects() {
        for s in ["", "90", "s", "1x", "1.2.3s", "-", ".s", "10 s"] {
            assert!(parse_go_duration(s).is_err(), "{s:?}");
        }
        assert!(
            parse_go_duration("90")
                .unwrap_err()
                .contains("missing a unit")
        );
        assert!(
            parse_go_duration("99999999999h")
                .unwrap_err()
                .contains("too long")
        );
    }

    #[test]
    fn whole_seconds_truncates() {
        assert_eq!(whole_seconds(2_999_999_999), 2);
        assert_eq!(whole_seconds(-2_500_000_000), -2);
    }
}
