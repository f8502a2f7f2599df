//! `.terraform/terraform.tfstate`: backend configuration written by `init`, not state. Only the
//! backend's type is read.

use serde::Deserialize;

use super::{ParseError, from_slice, identifier};

#[derive(Deserialize)]
struct RawBackendState {
    backend: Option<RawBackend>,
}

#[derive(Deserialize)]
struct RawBackend {
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// The backend type (`s3`, `gcs`, `local`, ...), or `None` when the file names none.
pub fn parse(bytes: &[u8]) -> Result<Option<String>, ParseError> {
    let raw: RawBackendState = from_slice(bytes)?;
    Ok(raw.backend.and_then(|b| b.kind).and_then(|k| identifier(&k, 32)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_type() {
        let text =
            br#"{"version":3,"serial":0,"backend":{"type":"s3","config":{"bucket":"b","secret_key":"x"},"hash":1}}"#;
        assert_eq!(super::parse(text).unwrap().as_deref(), Some("s3"));
    }
}
