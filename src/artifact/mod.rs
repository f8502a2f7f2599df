//! Parsers for what Terraform, OpenTofu and pipelines leave in a workspace directory.
//!
//! Every parser is pure: bytes (or a reader) in, small metadata structs out. None of them keeps an
//! attribute, output or variable value: the serde structs name only the metadata fields, and
//! everything else is skipped with `serde::de::IgnoredAny`. Errors carry a bounded kind and a
//! position, never a piece of the input.

pub mod backend;
pub mod marker;
pub mod plan;
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

/// Keeps printable text up to a length, replacing control characters; for human fields such as a
/// lock's `Who`. Not used on anything read from a state or plan.
pub fn printable(text: &str, max_len: usize) -> String {
    text.chars()
        .take(max_len)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}
