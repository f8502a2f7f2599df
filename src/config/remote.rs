//! The `s3://` roots and their settings: each root's `[remote."s3://..."]` table of the file, the
//! one-bucket flags (`--s3-endpoint`, ...) and their `IACWATCH_*` variables, and the same keys at
//! the top of the file. A flag (or variable) wins over the root's table, which wins over the
//! top-level key. No credential is ever a key: those come from the AWS environment only.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ConfigError, FileConfig, duration, invalid, pick};
use crate::cli::CommonArgs;
use crate::source::s3::{RemoteRoot, RemoteSettings, S3Root};

/// One `[remote."s3://BUCKET/PREFIX"]` table.
#[derive(Deserialize, Serialize, Default, Debug, Clone)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct RemoteTable {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub force_path_style: Option<bool>,
    pub workspace_key_prefix: Option<String>,
    pub dynamodb_table: Option<String>,
    pub dynamodb_endpoint: Option<String>,
    pub poll_interval: Option<String>,
}

/// The S3 roots among `labels`, with their settings; every table must name one of them.
pub fn roots(labels: &[String], args: &CommonArgs, file: &FileConfig) -> Result<Vec<RemoteRoot>, ConfigError> {
    let mut tables: BTreeMap<String, (String, RemoteTable)> = BTreeMap::new();
    for (name, table) in file.remote.clone().unwrap_or_default() {
        let root = S3Root::parse(&name).map_err(|e| invalid("remote", format!("'{name}': {e}")))?;
        tables.insert(root.url, (name, table));
    }
    let mut out = Vec::new();
    for label in labels.iter().filter(|l| S3Root::is_s3_url(l)) {
        let root = S3Root::parse(label).map_err(|e| invalid("roots", format!("'{label}': {e}")))?;
        let table = tables.remove(&root.url).map(|(_, t)| t).unwrap_or_default();
        let settings = settings(args, file, &table)?;
        out.push(RemoteRoot { root, settings });
    }
    if let Some((_, (name, _))) = tables.into_iter().next() {
        return Err(invalid("remote", format!("'{name}' is not one of the roots")));
    }
    Ok(out)
}

fn settings(args: &CommonArgs, file: &FileConfig, table: &RemoteTable) -> Result<RemoteSettings, ConfigError> {
    let mut settings = RemoteSettings::default();
    let one = |flag: &Option<String>, table: &Option<String>, top: &Option<String>| {
        pick(flag, table)
            .or_else(|| top.clone())
            .filter(|v| !v.trim().is_empty())
    };
    settings.endpoint = one(&args.s3_endpoint, &table.endpoint, &file.s3_endpoint);
    if let Some(endpoint) = &settings.endpoint
        && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
    {
        return Err(invalid("s3_endpoint", format!("'{endpoint}' is not an http(s) URL")));
    }
    settings.dynamodb_endpoint = one(
        &args.dynamodb_endpoint,
        &table.dynamodb_endpoint,
        &file.dynamodb_endpoint,
    );
    settings.dynamodb_table = one(&args.dynamodb_table, &table.dynamodb_table, &file.dynamodb_table);
    settings.region = table.region.clone();
    settings.force_path_style = pick(&args.s3_force_path_style, &table.force_path_style)
        .or(file.s3_force_path_style)
        .unwrap_or(false);
    if let Some(prefix) = &table.workspace_key_prefix {
        settings.workspace_key_prefix = prefix.clone();
    }
    if let Some(text) = one(
        &args.remote_poll_interval,
        &table.poll_interval,
        &file.remote_poll_interval,
    ) {
        let interval = duration("remote_poll_interval", &text)?;
        if interval.is_zero() {
            return Err(invalid("remote_poll_interval", "the interval must be more than 0"));
        }
        settings.poll_interval = interval;
    }
    Ok(settings)
}

/// How often the buckets of directories whose backend is S3 are polled: the flag, else the
/// top-level key, else the default.
pub fn dirs_poll_interval(args: &CommonArgs, file: &FileConfig) -> Result<std::time::Duration, ConfigError> {
    let table = RemoteTable::default();
    Ok(settings(args, file, &table)?.poll_interval)
}
