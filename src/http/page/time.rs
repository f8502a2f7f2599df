//! Times as the page shows them: relative ("5 min ago") in the cell, exact in the tooltip. The
//! script in `assets/page.js` writes the same words when it refreshes the page.

use chrono::{DateTime, Utc};

/// `t` relative to `now`: "just now", "42 s ago", "5 min ago", "3 h ago", "2 d ago", or "in 5 min"
/// for a time ahead of the clock (a file touched on a machine whose clock runs ahead).
pub fn relative(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let seconds = (now - t).num_seconds();
    if seconds.abs() < 10 {
        return "just now".to_owned();
    }
    let amount = span(seconds.unsigned_abs());
    if seconds < 0 {
        format!("in {amount}")
    } else {
        format!("{amount} ago")
    }
}

/// A duration in its largest whole unit: "42 s", "5 min", "3 h", "2 d".
pub fn span(seconds: u64) -> String {
    match seconds {
        0..60 => format!("{seconds} s"),
        60..3_600 => format!("{} min", seconds / 60),
        3_600..86_400 => format!("{} h", seconds / 3_600),
        _ => format!("{} d", seconds / 86_400),
    }
}

/// The tooltip: "2026-11-29 10:00:20 UTC".
pub fn exact(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// Reads a time the API wrote (RFC 3339).
pub fn parse(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text).ok().map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        parse(s).unwrap()
    }

    #[test]
    fn relative_picks_the_largest_unit() {
        let now = at("2026-11-29T10:00:00Z");
        assert_eq!(relative(at("2026-11-29T09:59:55Z"), now), "just now");
        assert_eq!(relative(at("2026-11-29T09:59:18Z"), now), "42 s ago");
        assert_eq!(relative(at("2026-11-29T09:55:00Z"), now), "5 min ago");
        assert_eq!(relative(at("2026-11-29T07:00:00Z"), now), "3 h ago");
        assert_eq!(relative(at("2026-11-27T09:00:00Z"), now), "2 d ago");
        assert_eq!(relative(at("2026-11-29T10:05:00Z"), now), "in 5 min");
    }

    #[test]
    fn exact_is_utc_to_the_second() {
        assert_eq!(exact(at("2026-11-29T10:00:20.123Z")), "2026-11-29 10:00:20 UTC");
    }
}
