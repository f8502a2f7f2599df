//! The daemon's log lines on stderr: logfmt (`ts=... level=info msg="..." key=value`, as
//! Prometheus and its exporters write them) or one JSON object a line. A level from the
//! configuration; filter directives from `RUST_LOG`. A list logged through [`json`] is a real
//! JSON array in the JSON format.

use std::fmt::{self, Write as _};

use serde_json::Value;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Logfmt,
    Json,
}

impl LogFormat {
    /// `logfmt` or `json`; `text`, the name of the first release's format, means logfmt.
    pub fn parse(text: &str) -> Option<LogFormat> {
        match text.trim() {
            "logfmt" | "text" => Some(LogFormat::Logfmt),
            "json" => Some(LogFormat::Json),
            _ => None,
        }
    }
}

/// The levels `--log.level` takes.
pub const LEVELS: [&str; 5] = ["trace", "debug", "info", "warn", "error"];

/// One of [`LEVELS`] (any case), else `None`: a typo must not silence the log.
pub fn parse_level(text: &str) -> Option<Level> {
    match text.trim().to_ascii_lowercase().as_str() {
        "trace" => Some(Level::TRACE),
        "debug" => Some(Level::DEBUG),
        "info" => Some(Level::INFO),
        "warn" => Some(Level::WARN),
        "error" => Some(Level::ERROR),
        _ => None,
    }
}

/// Installs the process's logger: `level` for everything, then the directives of `RUST_LOG`
/// (e.g. `iacwatch::watch=trace`) on top. A second call keeps the first logger.
pub fn init(format: LogFormat, level: Level) -> anyhow::Result<()> {
    let extra = std::env::var("RUST_LOG").unwrap_or_default();
    // The watcher library's own chatter (a watch removed twice) is not the operator's concern.
    let directives = format!("{},notify=warn,{extra}", level.as_str().to_ascii_lowercase());
    let filter = tracing_subscriber::EnvFilter::builder()
        .parse(directives.trim_end_matches(','))
        .map_err(|e| anyhow::anyhow!("RUST_LOG: '{extra}' is not a list of filter directives ({e})"))?;
    let _already_set = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .event_format(Lines { format })
        .try_init();
    Ok(())
}

/// A field value written as JSON: `roots = %logging::json(&labels)` is an array in JSON logs and
/// its JSON text in logfmt.
pub fn json<T: serde::Serialize>(value: &T) -> JsonField {
    JsonField(serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned()))
}

/// See [`json`].
pub struct JsonField(String);

/// Marks a value as JSON text on its way through `tracing`, which passes only text and numbers.
const JSON_MARK: &str = "\u{1}json\u{1}";

impl fmt::Display for JsonField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{JSON_MARK}{}", self.0)
    }
}

impl fmt::Debug for JsonField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The event formatter of both formats.
struct Lines {
    format: LogFormat,
}

impl<S, N> FormatEvent<S, N> for Lines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, _: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let meta = event.metadata();
        let ts = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let line = match self.format {
            LogFormat::Json => json_line(&ts, *meta.level(), meta.target(), fields),
            LogFormat::Logfmt => logfmt_line(&ts, *meta.level(), meta.target(), fields),
        };
        writeln!(writer, "{line}")
    }
}

/// An event's message and fields, in the order they were given.
#[derive(Default)]
struct Fields {
    message: String,
    values: Vec<(&'static str, Value)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::from(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        let value = match text.strip_prefix(JSON_MARK) {
            Some(json) => serde_json::from_str(json).unwrap_or(Value::Null),
            None => Value::from(text),
        };
        self.put(field, value);
    }
}

impl Fields {
    fn put(&mut self, field: &Field, value: Value) {
        if field.name() == "message" {
            self.message = match value {
                Value::String(text) => text,
                other => other.to_string(),
            };
        } else {
            self.values.push((field.name(), value));
        }
    }
}

/// The JSON shape of the first release, in this order: `timestamp`, `level`, `message`, the
/// fields, `target`.
fn json_line(ts: &str, level: Level, target: &str, fields: Fields) -> String {
    let text = |value: &str| Value::from(value).to_string();
    let mut out = format!(
        "{{\"timestamp\":{},\"level\":{},\"message\":{}",
        text(ts),
        text(level.as_str()),
        text(&fields.message)
    );
    for (name, value) in fields.values {
        let _ = write!(out, ",{}:{value}", text(name));
    }
    let _ = write!(out, ",\"target\":{}}}", text(target));
    out
}

fn logfmt_line(ts: &str, level: Level, target: &str, fields: Fields) -> String {
    let mut out = format!(
        "ts={ts} level={} target={target} msg=",
        level.as_str().to_ascii_lowercase()
    );
    quoted(&mut out, &fields.message);
    for (name, value) in fields.values {
        let _ = write!(out, " {name}=");
        match value {
            Value::String(text) => logfmt_value(&mut out, &text),
            other => logfmt_value(&mut out, &other.to_string()),
        }
    }
    out
}

/// A logfmt value: bare when it is one plain word, else quoted.
fn logfmt_value(out: &mut String, text: &str) {
    let bare = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_graphic() && c != '"' && c != '=' && c != '\\');
    if bare {
        out.push_str(text);
    } else {
        quoted(out, text);
    }
}

fn quoted(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lines a closure logs, in `format`.
    fn lines_of(format: LogFormat, log: impl FnOnce()) -> Vec<String> {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Buffer(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buffer {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(Level::TRACE)
            .with_writer(move || writer.clone())
            .event_format(Lines { format })
            .finish();
        tracing::subscriber::with_default(subscriber, log);
        let bytes = buffer.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap().lines().map(str::to_owned).collect()
    }

    #[test]
    fn json_lines_carry_lists_as_arrays_and_numbers_as_numbers() {
        let roots = vec!["/srv/a b".to_owned(), "rel/\"q\"".to_owned()];
        let lines = lines_of(LogFormat::Json, || {
            tracing::info!(roots = %json(&roots), workspaces = 3_u64, address = %"[::1]:9814", "serving");
        });
        assert_eq!(lines.len(), 1, "{lines:?}");
        let line: Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(line["message"], "serving");
        assert_eq!(line["roots"], serde_json::json!(["/srv/a b", "rel/\"q\""]), "{line}");
        assert_eq!(line["workspaces"], 3);
        assert_eq!(line["address"], "[::1]:9814");
        assert_eq!(line["level"], "INFO");
        assert!(line["timestamp"].as_str().unwrap().ends_with('Z'), "{line}");
    }

    #[test]
    fn logfmt_lines_quote_what_needs_it() {
        let lines = lines_of(LogFormat::Logfmt, || {
            tracing::warn!(root = %"/srv/a b", kind = "io", empty = "", n = 2_i64, "root cannot be \"read\"");
        });
        let line = &lines[0];
        assert!(line.starts_with("ts=") && line.contains(" level=warn "), "{line}");
        assert!(line.contains(r#"msg="root cannot be \"read\"""#), "{line}");
        assert!(line.ends_with(r#"root="/srv/a b" kind=io empty="" n=2"#), "{line}");
        assert!(!line.contains('\x1b'), "{line}");
    }

    #[test]
    fn levels_and_formats_are_a_closed_list() {
        for level in LEVELS {
            assert!(parse_level(level).is_some(), "{level}");
        }
        assert_eq!(parse_level("WARN"), Some(Level::WARN));
        for bad in ["warning", "iacwatch=debug", "", "information"] {
            assert_eq!(parse_level(bad), None, "{bad}");
        }
        assert_eq!(LogFormat::parse("text"), Some(LogFormat::Logfmt));
        assert_eq!(LogFormat::parse("logfmt"), Some(LogFormat::Logfmt));
        assert_eq!(LogFormat::parse("json"), Some(LogFormat::Json));
        assert_eq!(LogFormat::parse("xml"), None);
    }
}
