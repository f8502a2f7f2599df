//! Parsers for what Terraform, OpenTofu and pipelines leave in a workspace directory.
//!
//! Every parser is pure: bytes (or a reader) in, small metadata structs out. None of them keeps an
//! attribute, output or variable value: the serde structs name only the metadata fields, and
//! everything else is skipped with `serde::de::IgnoredAny`. States and plans held in memory are
//! first walked by a byte scanner (`scan`) that skips the values faster and gives any document it
//! does not take whole to serde_json, so both give the same answer. Errors carry a bounded kind
//! and a position, never a piece of the input.

#[cfg(test)]
mod agree;
pub mod backend;
mod block;
pub mod marker;
pub mod plan;
mod scan;
mod split;
pub mod state;
pub mod tflock;
pub mod url;

use std::fmt;
use std::io::Read;

use serde::de::DeserializeOwned;

/// Why an artifact could not be read. `kind()` is a short fixed label (used in metrics).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// The file has no bytes.
    Empty,
    /// The JSON ends early: typically a file being written.
    Truncated { line: usize, column: usize },
    /// Not JSON at all (binary, text, invalid UTF-8).
    NotJson { line: usize, column: usize },
    /// JSON, but not of the expected shape (a field of the wrong type, a required field missing).
    WrongShape { line: usize, column: usize },
    /// Nesting deeper than the parser follows.
    TooDeep { line: usize, column: usize },
    /// A state format version this program does not know.
    UnsupportedVersion { version: u64 },
    /// JSON that is not this kind of artifact (for example a state where a plan was expected).
    NotThisArtifact { expected: &'static str },
    /// The file could not be read.
    Io { kind: std::io::ErrorKind },
}

impl ParseError {
    /// A bounded label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            ParseError::Empty => "empty",
            ParseError::Truncated { .. } => "truncated",
            ParseError::NotJson { .. } => "not_json",
            ParseError::WrongShape { .. } => "wrong_shape",
            ParseError::TooDeep { .. } => "too_deep",
            ParseError::UnsupportedVersion { .. } => "unsupported_version",
            ParseError::NotThisArtifact { .. } => "wrong_artifact",
            ParseError::Io { .. } => "io",
        }
    }

    fn from_json(err: &serde_json::Error) -> ParseError {
        use serde_json::error::Category;
        let (line, column) = (err.line(), err.column());
        match err.classify() {
            Category::Eof => ParseError::Truncated { line, column },
            Category::Io => ParseError::Io {
                kind: err.io_error_kind().unwrap_or(std::io::ErrorKind::Other),
            },
            // serde_json reports its recursion limit as a syntax error; its message is fixed text
            // with no input in it, so it is safe to look at.
            Category::Syntax if err.to_string().starts_with("recursion limit exceeded") => {
                ParseError::TooDeep { line, column }
            }
            Category::Syntax => ParseError::NotJson { line, column },
            Category::Data => ParseError::WrongShape { line, column },
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Empty => f.write_str("the file is empty"),
            ParseError::Truncated { line, column } => {
                write!(
                    f,
                    "the JSON ends early at line {line} column {column} (truncated, or still being written)"
                )
            }
            ParseError::NotJson { line, column } => {
                write!(f, "not valid JSON (syntax error at line {line} column {column})")
            }
            ParseError::WrongShape { line, column } => {
                write!(f, "JSON of an unexpected shape (at line {line} column {column})")
            }
            ParseError::TooDeep { line, column } => {
                write!(f, "JSON nested too deeply (at line {line} column {column})")
            }
            ParseError::UnsupportedVersion { version } => {
                write!(f, "unsupported format version {version}")
            }
            ParseError::NotThisArtifact { expected } => write!(f, "JSON that is not {expected}"),
            ParseError::Io { kind } => write!(f, "could not be read ({kind})"),
        }
    }
}

impl std::error::Error for ParseError {}

/// Deserialises a whole in-memory document, refusing trailing garbage.
fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ParseError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ParseError::Empty);
    }
    serde_json::from_slice(bytes).map_err(|e| ParseError::from_json(&e))
}

/// Deserialises a document from a reader in constant memory (for files too large to hold).
fn from_reader<T: DeserializeOwned, R: Read>(reader: R) -> Result<T, ParseError> {
    let mut watched = ContentWatch {
        inner: reader,
        seen_content: false,
    };
    let result = {
        let mut de = serde_json::Deserializer::from_reader(std::io::BufReader::with_capacity(1 << 20, &mut watched));
        T::deserialize(&mut de).and_then(|value| de.end().map(|()| value))
    };
    match result {
        Ok(value) => Ok(value),
        Err(_) if !watched.seen_content => Err(ParseError::Empty),
        Err(e) => Err(ParseError::from_json(&e)),
    }
}

/// Notes whether anything but white space went through, so that an empty stream is told apart
/// from a truncated one, as for an in-memory document.
struct ContentWatch<R> {
    inner: R,
    seen_content: bool,
}

impl<R: Read> Read for ContentWatch<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if !self.seen_content {
            self.seen_content = buf[..n].iter().any(|b| !b.is_ascii_whitespace());
        }
        Ok(n)
    }
}

/// Keeps a short identifier-like string (a version, a lineage, a name) and drops anything else.
///
/// Metadata fields are free text in the file format; passing only short strings of a safe
/// alphabet guarantees that whatever a file holds in them, no arbitrary content reaches an output.
pub fn identifier(text: &str, max_len: usize) -> Option<String> {
    let ok = !text.is_empty()
        && text.len() <= max_len
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '+' | '@' | ':' | '/'));
    ok.then(|| text.to_owned())
}

/// Keeps human text as it was written, up to `max_len` characters, for fields such as a lock's
/// `Who` (`user@host`, or `DOMAIN\user@host` from Windows), a run id or a pipeline name: an
/// operator compares them with what Terraform and the CI system print, so they are not narrowed to
/// the identifier alphabet. Only characters that could hide or disguise text become a space:
/// control characters and invisible formatting ones (bidirectional overrides and isolates,
/// zero-width characters). Not used on anything read from a state or plan.
pub fn printable(text: &str, max_len: usize) -> String {
    text.chars()
        .take(max_len)
        .map(|c| {
            if c.is_control() || is_invisible_format(c) {
                ' '
            } else {
                c
            }
        })
        .collect()
}

/// Unicode formatting characters that change how the text around them is shown without showing
/// themselves.
fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_keeps_what_people_write_and_blanks_what_hides_text() {
        for kept in [
            r"CORP\jdoe@WS-0142",
            "ci@runner-1.example.com",
            "Jürgen Groß",
            "deploy prod #42",
        ] {
            assert_eq!(printable(kept, 128), kept);
        }
        assert_eq!(printable("a\nb\tc\u{7f}d", 128), "a b c d");
        // "user@host" shown right to left after the override would read as something else.
        assert_eq!(printable("admin\u{202E}tsoh@resu", 128), "admin tsoh@resu");
        assert_eq!(printable("ci\u{200B}@\u{2066}runner\u{FEFF}", 128), "ci @ runner ");
        assert_eq!(printable(&"x".repeat(200), 128).chars().count(), 128);
        assert_eq!(printable(&"ä".repeat(200), 128).chars().count(), 128);
    }

    #[test]
    fn identifier_keeps_only_short_safe_strings() {
        assert_eq!(
            identifier("runner-7.example.com", 253).as_deref(),
            Some("runner-7.example.com")
        );
        assert_eq!(identifier(r"CORP\runner", 253), None);
        assert_eq!(identifier("", 253), None);
        assert_eq!(identifier("abc", 2), None);
    }
}
