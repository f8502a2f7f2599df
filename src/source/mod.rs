//! Sources: where workspaces are found (a local tree, an S3 bucket), each a sibling that sends what it read.

pub mod s3;
