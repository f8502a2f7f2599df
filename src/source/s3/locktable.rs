//! Terraform's DynamoDB lock table, from DynamoDB's JSON wire format. Pure: a `Scan` request body
//! in, a `Scan` response page out.
//!
//! Terraform's S3 backend writes two kinds of item (its `client.go`):
//! - `LockID = "BUCKET/KEY"` with `Info` = the LockInfo JSON (`ID`, `Operation`, `Info`, `Who`,
//!   `Version`, `Created`, `Path`) while an operation holds the lock;
//! - `LockID = "BUCKET/KEY-md5"` with `Digest` = the hex MD5 of the state it last wrote.
//!
//! Only those attributes are asked for (`ProjectionExpression`) and read. A malformed `Info` is
//! kept as a parse error beside its `LockID` (the lock is still there), never a panic.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::keys::DIGEST_ITEM_SUFFIX;
use crate::artifact::{ParseError, identifier, tflock};

/// The `X-Amz-Target` of a `Scan`.
pub const SCAN_TARGET: &str = "DynamoDB_20120810.Scan";

/// Items asked for per page (DynamoDB also ends a page at 1 MB).
pub const SCAN_PAGE_ITEMS: u32 = 1000;

/// A lock item: a Terraform operation holds the state `lock_id` names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockItem {
    /// `BUCKET/KEY`.
    pub lock_id: String,
    /// The parsed `Info`, or why it could not be read.
    pub lock: Result<tflock::TerraformLock, ParseError>,
}

/// A digest item: the MD5 of the state Terraform last wrote for `BUCKET/KEY`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DigestItem {
    /// `BUCKET/KEY`, without the `-md5` suffix.
    pub lock_id: String,
    /// 32 lower-case hex digits; `None` when the item holds no valid MD5.
    pub digest: Option<String>,
}

/// What one page of a `Scan` held.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScanPage {
    pub locks: Vec<LockItem>,
    pub digests: Vec<DigestItem>,
    /// Items with no string `LockID` (not Terraform's), counted and skipped.
    pub skipped: usize,
    /// The `LockID` to start the next page from, when there is one.
    pub next: Option<String>,
}

/// The whole table, all pages merged, by `BUCKET/KEY`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LockTable {
    pub locks: BTreeMap<String, Result<tflock::TerraformLock, ParseError>>,
    pub digests: BTreeMap<String, Option<String>>,
    pub skipped: usize,
}

impl LockTable {
    pub fn add(&mut self, page: ScanPage) {
        for item in page.locks {
            self.locks.insert(item.lock_id, item.lock);
        }
        for item in page.digests {
            self.digests.insert(item.lock_id, item.digest);
        }
        self.skipped += page.skipped;
    }
}

#[derive(Deserialize)]
struct RawPage {
    #[serde(rename = "Items", default)]
    items: Vec<RawItem>,
    #[serde(rename = "LastEvaluatedKey")]
    last_evaluated_key: Option<RawKey>,
}

#[derive(Deserialize)]
struct RawItem {
    #[serde(rename = "LockID")]
    lock_id: Option<RawString>,
    #[serde(rename = "Info")]
    info: Option<RawString>,
    #[serde(rename = "Digest")]
    digest: Option<RawString>,
}

#[derive(Deserialize)]
struct RawKey {
    #[serde(rename = "LockID")]
    lock_id: Option<RawString>,
}

/// An attribute value; only the string type (`{"S": "..."}`) is Terraform's.
#[derive(Deserialize)]
struct RawString {
    #[serde(rename = "S")]
    s: Option<String>,
}

/// The body of a `Scan` of `table`, from `start` (the previous page's `next`).
pub fn scan_request(table: &str, start: Option<&str>) -> String {
    let mut body = serde_json::json!({
        "TableName": table,
        "ConsistentRead": true,
        "ProjectionExpression": "LockID, Info, Digest",
        "Limit": SCAN_PAGE_ITEMS,
    });
    if let (Some(start), Some(map)) = (start, body.as_object_mut()) {
        map.insert(
            "ExclusiveStartKey".to_owned(),
            serde_json::json!({"LockID": {"S": start}}),
        );
    }
    body.to_string()
}

/// Parses one `Scan` response page.
pub fn parse_scan(bytes: &[u8]) -> Result<ScanPage, ParseError> {
    let raw: RawPage = serde_json::from_slice(bytes).map_err(|e| json_error(&e))?;
    let mut page = ScanPage {
        next: raw.last_evaluated_key.and_then(|k| k.lock_id).and_then(|s| s.s),
        ..ScanPage::default()
    };
    for item in raw.items {
        let Some(lock_id) = item.lock_id.and_then(|s| s.s) else {
            page.skipped += 1;
            continue;
        };
        if let Some(state) = lock_id.strip_suffix(DIGEST_ITEM_SUFFIX) {
            let digest = item.digest.and_then(|s| s.s).and_then(|d| valid_md5(&d));
            page.digests.push(DigestItem {
                lock_id: state.to_owned(),
                digest,
            });
        } else {
            let info = item.info.and_then(|s| s.s).unwrap_or_default();
            page.locks.push(LockItem {
                lock_id,
                lock: tflock::parse(info.as_bytes()),
            });
        }
    }
    Ok(page)
}

/// The S3 native lock object `KEY.tflock` (Terraform and OpenTofu >= 1.10, `use_lockfile`):
/// Terraform's `lockWithFile` writes `json.Marshal(LockInfo)`, the same JSON as the lock table's
/// `Info` and as `.terraform.tfstate.lock.info`.
pub fn parse_lock_object(bytes: &[u8]) -> Result<tflock::TerraformLock, ParseError> {
    tflock::parse(bytes)
}

/// The short error name of a DynamoDB error body (`__type` after its `#`), when it has one.
pub fn error_type(bytes: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct RawError {
        #[serde(rename = "__type")]
        kind: Option<String>,
    }
    let raw: RawError = serde_json::from_slice(bytes).ok()?;
    let kind = raw.kind?;
    let short = kind.rsplit('#').next().unwrap_or(&kind);
    identifier(short, 80)
}

/// The artifact parsers' error for JSON that is not what was expected (kind and position only).
pub(super) fn json_error(err: &serde_json::Error) -> ParseError {
    use serde_json::error::Category;
    let (line, column) = (err.line(), err.column());
    match err.classify() {
        Category::Eof => ParseError::Truncated { line, column },
        Category::Data => ParseError::WrongShape { line, column },
        Category::Syntax | Category::Io => ParseError::NotJson { line, column },
    }
}

fn valid_md5(text: &str) -> Option<String> {
    (text.len() == 32 && text.bytes().all(|b| b.is_ascii_hexdigit())).then(|| text.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::tflock::LockOperation;

    const CANARY: &str = "CANARY-lock-info-secret";

    #[test]
    fn reads_lock_and_digest_items() {
        let info = format!(
            r#"{{"ID":"8f2c","Operation":"OperationTypeApply","Info":"{CANARY}","Who":"ci@runner","Version":"1.0.3","Created":"2026-11-29T10:00:00.5Z","Path":"tfstate/app.tfstate"}}"#
        );
        let body = serde_json::json!({
            "Count": 3,
            "Items": [
                {"LockID": {"S": "tfstate/app.tfstate"}, "Info": {"S": info}},
                {"LockID": {"S": "tfstate/app.tfstate-md5"}, "Digest": {"S": "0123456789ABCDEF0123456789abcdef"}},
                {"LockID": {"S": "tfstate/env:/qa/app.tfstate-md5"}, "Digest": {"S": "not-an-md5"}},
                {"Other": {"N": "1"}},
            ],
            "ScannedCount": 4,
        });
        let page = parse_scan(body.to_string().as_bytes()).unwrap();
        assert_eq!(page.locks.len(), 1);
        let lock = page.locks[0].lock.as_ref().unwrap();
        assert_eq!(page.locks[0].lock_id, "tfstate/app.tfstate");
        assert_eq!(lock.operation, LockOperation::Apply);
        assert_eq!(lock.who.as_deref(), Some("ci@runner"));
        assert_eq!(
            page.digests,
            [
                DigestItem {
                    lock_id: "tfstate/app.tfstate".into(),
                    digest: Some("0123456789abcdef0123456789abcdef".into())
                },
                DigestItem {
                    lock_id: "tfstate/env:/qa/app.tfstate".into(),
                    digest: None
                },
            ]
        );
        assert_eq!(page.skipped, 1);
        assert_eq!(page.next, None);
        assert!(
            !format!("{page:?}").contains(CANARY),
            "the lock's free text is not kept"
        );
    }

    #[test]
    fn a_malformed_info_is_a_reason_not_a_panic() {
        let cases: &[(&str, &str)] = &[
            (
                r#"{"LockID":{"S":"b/k.tfstate"},"Info":{"S":"{\"ID\": \"x\", \"Oper"}}"#,
                "truncated",
            ),
            (
                r#"{"LockID":{"S":"b/k.tfstate"},"Info":{"S":"CANARY not json"}}"#,
                "not_json",
            ),
            (r#"{"LockID":{"S":"b/k.tfstate"},"Info":{"S":"[1,2]"}}"#, "wrong_shape"),
            (r#"{"LockID":{"S":"b/k.tfstate"}}"#, "empty"),
            (r#"{"LockID":{"S":"b/k.tfstate"},"Info":{"N":"5"}}"#, "empty"),
        ];
        for (item, kind) in cases {
            let body = format!(r#"{{"Items":[{item}]}}"#);
            let page = parse_scan(body.as_bytes()).unwrap();
            let err = page.locks[0].lock.as_ref().unwrap_err();
            assert_eq!(err.kind(), *kind, "{item}");
            assert!(!err.to_string().contains("CANARY"));
        }
    }

    #[test]
    fn pages_carry_the_next_start_key() {
        let body = r#"{"Items":[],"LastEvaluatedKey":{"LockID":{"S":"b/x.tfstate-md5"}}}"#;
        let page = parse_scan(body.as_bytes()).unwrap();
        assert_eq!(page.next.as_deref(), Some("b/x.tfstate-md5"));
        let request: serde_json::Value = serde_json::from_str(&scan_request("locks", page.next.as_deref())).unwrap();
        assert_eq!(request["ExclusiveStartKey"]["LockID"]["S"], "b/x.tfstate-md5");
        assert_eq!(request["TableName"], "locks");
        let first: serde_json::Value = serde_json::from_str(&scan_request("locks", None)).unwrap();
        assert!(first.get("ExclusiveStartKey").is_none());
    }

    #[test]
    fn merges_pages() {
        let mut table = LockTable::default();
        for body in [
            r#"{"Items":[{"LockID":{"S":"b/a.tfstate-md5"},"Digest":{"S":"00000000000000000000000000000000"}}]}"#,
            r#"{"Items":[{"LockID":{"S":"b/a.tfstate"},"Info":{"S":"{\"Operation\":\"OperationTypePlan\"}"}}]}"#,
        ] {
            table.add(parse_scan(body.as_bytes()).unwrap());
        }
        assert_eq!(table.digests.len(), 1);
        assert_eq!(
            table.locks["b/a.tfstate"].as_ref().unwrap().operation,
            LockOperation::Plan
        );
    }

    #[test]
    fn an_s3_native_lock_object_is_the_same_lock_info() {
        // As Terraform 1.10 writes it (Go's json.Marshal of statemgr.LockInfo).
        let object = br#"{"ID":"e3a3b7c2-1f0d-4c1e-9d2a-6b0b1c2d3e4f","Operation":"OperationTypePlan","Info":"","Who":"runner@ci-7","Version":"1.10.0","Created":"2026-11-29T10:00:00.123456789Z","Path":"tfstate/apps/web/terraform.tfstate"}"#;
        let lock = parse_lock_object(object).unwrap();
        assert_eq!(lock.operation, LockOperation::Plan);
        assert_eq!(lock.version.as_deref(), Some("1.10.0"));
        assert_eq!(lock.who.as_deref(), Some("runner@ci-7"));
        assert_eq!(parse_lock_object(b"").unwrap_err().kind(), "empty");
    }

    #[test]
    fn a_bad_page_is_an_error() {
        assert_eq!(parse_scan(b"<html>").unwrap_err().kind(), "not_json");
        assert_eq!(parse_scan(br#"{"Items": 5}"#).unwrap_err().kind(), "wrong_shape");
    }

    #[test]
    fn names_dynamodb_errors() {
        let body = br#"{"__type":"com.amazonaws.dynamodb.v20120810#ResourceNotFoundException","message":"Requested resource not found"}"#;
        assert_eq!(error_type(body).as_deref(), Some("ResourceNotFoundException"));
        assert_eq!(
            error_type(br#"{"__type":"ThrottlingException"}"#).as_deref(),
            Some("ThrottlingException")
        );
        assert_eq!(error_type(b"nope"), None);
    }
}
