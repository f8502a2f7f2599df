//! Remote state against real servers: SeaweedFS (S3), moto (DynamoDB) and the real Terraform
//! writing through `backend "s3"` (`tools/install-remote`, `tools/install-terraform`).

mod bucket;
mod faults;
mod listed_once;
mod markers;
mod poll;
mod publish;
mod requests;
mod servers;
mod shard;
mod terraform;
mod wired;
