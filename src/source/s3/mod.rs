//! S3 buckets as roots: Terraform's `backend "s3"` state objects, their workspaces, and their
//! locks (DynamoDB lock table items, S3 native `.tflock` objects), read where they live.
//!
//! Layout:
//! - `settings`: the `s3://BUCKET[/PREFIX]` URL and the per-root settings, as plain data;
//! - `keys`: which objects are state and which workspace each is (the identity rule); pure;
//! - `locktable`: the DynamoDB lock table's items from DynamoDB's JSON wire format; pure;
//! - `backed`: `serve`'s merge of the bucket's reading into directories whose backend is S3;
//! - `backend`: a directory's `s3` backend (`.terraform/terraform.tfstate`): bucket, key, settings; pure;
//! - `env`: the AWS environment (and shared-profile static keys) a client is built from;
//! - `client`: the S3 client of one root (paginated listing, conditional GET);
//! - `directory`: directories whose backend is S3, read from their bucket with their local evidence;
//! - `dynamodb`: one paginated `Scan` of the lock table, signed with the same credentials;
//! - `poll`: one poll of a root (listing, GETs only for changed ETags, the lock table), per workspace;
//! - `read`: a poll's result as classified workspaces and `errors` entries; pure;
//! - `watch`: `scan`'s one poll of every root, and `serve`'s thread per root polling into a `Sink`;
//! - `transport`, `error`: the counting HTTP layer, and the bounded error kinds with safe messages.
//!
//! The S3 native lock object holds the same LockInfo JSON as `.terraform.tfstate.lock.info`:
//! `artifact::tflock::parse` reads it.

pub mod backed;
pub mod backend;
pub mod client;
pub mod directory;
pub mod dynamodb;
pub mod env;
pub mod error;
pub mod keys;
pub mod locktable;
pub mod poll;
pub mod read;
pub mod settings;
pub mod transport;
pub mod watch;

pub use client::{Fetched, ObjectInfo, S3Client};
pub use env::AwsEnvironment;
pub use error::{ErrorKind, Operation, RemoteError};
pub use keys::StateIdentity;
pub use locktable::LockTable;
pub use poll::{DigestCheck, PollResult, Poller, RemoteState, RemoteWorkspace};
pub use settings::{RemoteRoot, RemoteSettings, S3Root};
