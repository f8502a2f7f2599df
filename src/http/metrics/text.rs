//! Writing the exposition by hand: the two formats (text 0.0.4 and OpenMetrics 1.0), family
//! headers, label escaping and numbers, without going through floating point where it can be
//! avoided.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

/// The exposition formats served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4.
    Text,
    /// OpenMetrics 1.0.0 text: counters named without `_total` in `# TYPE`, `# UNIT` lines,
    /// `# EOF` at the end.
    OpenMetrics,
}

/// The `Content-Type` of OpenMetrics 1.0.
pub const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
        }
    }

    /// Index into per-format arrays.
    pub(crate) fn index(self) -> usize {
        match self {
            Format::Text => 0,
            Format::OpenMetrics => 1,
        }
    }
}

/// The kinds of family written by hand.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Gauge,
    /// `name` is given without `_total`; samples are written as `name_total`.
    Counter,
}

/// The unit OpenMetrics names for a family, from its name's suffix.
fn unit(name: &str) -> Option<&'static str> {
    ["seconds", "bytes"]
        .into_iter()
        .find(|u| name.strip_suffix(u).is_some_and(|rest| rest.ends_with('_')))
}

/// `# HELP`, `# TYPE` and (OpenMetrics) `# UNIT` of a family. `help` has no `\` or newline.
pub(crate) fn family(out: &mut String, format: Format, name: &str, help: &str, kind: Kind) {
    let (type_name, kind_text) = match kind {
        Kind::Gauge => ("", "gauge"),
        Kind::Counter => ("_total", "counter"),
    };
    match format {
        Format::Text => {
            let _ = write!(
                out,
                "# HELP {name}{type_name} {help}\n# TYPE {name}{type_name} {kind_text}\n"
            );
        }
        Format::OpenMetrics => {
            let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind_text}\n");
            if let Some(unit) = unit(name) {
                let _ = writeln!(out, "# UNIT {name} {unit}");
            }
        }
    }
}

/// A label value escaped as both formats want it.
pub(crate) fn escape_into(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// `{key="value",...}` with the values escaped; nothing for no labels.
pub(crate) fn labels_into(out: &mut String, labels: &[(&str, &str)]) {
    if labels.is_empty() {
        return;
    }
    out.push('{');
    for (i, (key, value)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(key);
        out.push_str("=\"");
        escape_into(out, value);
        out.push('"');
    }
    out.push('}');
}

/// Unix time in seconds with milliseconds, without going through floating point.
pub(crate) fn push_seconds(out: &mut String, time: DateTime<Utc>) {
    let millis = time.timestamp_millis();
    if millis < 0 {
        out.push('-');
    }
    let millis = millis.unsigned_abs();
    out.push_str(itoa::Buffer::new().format(millis / 1000));
    let _ = write!(out, ".{:03}", millis % 1000);
}

/// A sample's value.
#[derive(Clone, Copy)]
pub(crate) enum Number {
    Count(u64),
    /// A time, written as Unix seconds.
    Time(DateTime<Utc>),
    Float(f64),
}

pub(crate) fn push_number(out: &mut String, value: Number) {
    match value {
        Number::Count(n) => out.push_str(itoa::Buffer::new().format(n)),
        Number::Time(at) => push_seconds(out, at),
        Number::Float(x) => {
            let _ = write!(out, "{x}");
        }
    }
}

/// One sample: `name{labels} value`.
pub(crate) fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: Number) {
    out.push_str(name);
    labels_into(out, labels);
    out.push(' ');
    push_number(out, value);
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_units_are_written_as_each_format_wants() {
        let mut text = String::new();
        family(&mut text, Format::Text, "x_cpu_seconds", "Help", Kind::Counter);
        assert_eq!(
            text,
            "# HELP x_cpu_seconds_total Help\n# TYPE x_cpu_seconds_total counter\n"
        );
        let mut om = String::new();
        family(&mut om, Format::OpenMetrics, "x_cpu_seconds", "Help", Kind::Counter);
        assert_eq!(
            om,
            "# HELP x_cpu_seconds Help\n# TYPE x_cpu_seconds counter\n# UNIT x_cpu_seconds seconds\n"
        );
        let mut om = String::new();
        family(&mut om, Format::OpenMetrics, "x_open_fds", "Help", Kind::Gauge);
        assert_eq!(om, "# HELP x_open_fds Help\n# TYPE x_open_fds gauge\n");
        assert_eq!(unit("x_resident_memory_bytes"), Some("bytes"));
        assert_eq!(unit("xbytes"), None);
    }

    #[test]
    fn label_values_are_escaped_and_times_keep_milliseconds() {
        let mut out = String::new();
        sample(
            &mut out,
            "m",
            &[("a", "x\"y\\z\nw")],
            Number::Time("1969-12-31T23:59:58.5Z".parse().unwrap_or_default()),
        );
        assert_eq!(out, "m{a=\"x\\\"y\\\\z\\nw\"} -1.500\n");
    }
}
