//! Micro-benchmarks of the state and plan parsers on generated documents shaped like Terraform's
//! (indented v4 states with nested attributes and long strings; compact `show -json` plans).
//!
//! `parse` is the byte scanner (falling back to serde_json), `parse_serde_json` the serde_json
//! reference it is held to, `parse_reader` the streaming path of very large files.
//!
//! `cargo bench --bench parsers`; `bench/run` runs them and quotes the medians.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Value, json};

/// A small deterministic generator (xorshift), so the inputs are the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn text(&mut self, len: usize) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        (0..len)
            .map(|_| ALPHABET[(self.next() % 64) as usize] as char)
            .collect()
    }
}

fn attributes(rng: &mut Rng) -> Value {
    let policy = json!({
        "Version": "2012-10-17",
        "Statement": (0..4).map(|_| json!({"Effect": "Allow", "Action": [rng.text(12), rng.text(12)], "Resource": rng.text(40)})).collect::<Vec<_>>(),
    });
    json!({
        "arn": format!("arn:aws:ec2:eu-west-1:123456789012:instance/i-{}", rng.text(17)),
        "id": rng.text(19),
        "instance_type": "m5.large",
        "policy": serde_json::to_string_pretty(&policy).unwrap(),
        "root_block_device": [{"encrypted": true, "iops": 3000, "volume_size": 50, "volume_type": "gp3", "tags": {}}],
        "tags": {"Name": rng.text(12), "team": rng.text(6), "env": "prod"},
        "user_data": rng.text(1200),
        "vpc_security_group_ids": [rng.text(20), rng.text(20)],
        "timeouts": null,
    })
}

/// An indented v4 state of at least `bytes`.
fn state(bytes: usize) -> Vec<u8> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut resources = Vec::new();
    let mut size = 0;
    while size < bytes {
        let resource = json!({
            "mode": if resources.len() % 5 == 4 { "data" } else { "managed" },
            "type": "aws_instance",
            "name": format!("r{}", resources.len()),
            "provider": "provider[\"registry.terraform.io/hashicorp/aws\"]",
            "instances": [{"schema_version": 1, "attributes": attributes(&mut rng), "sensitive_attributes": [],
                           "private": rng.text(200), "dependencies": ["aws_vpc.main"]}],
        });
        size += serde_json::to_string_pretty(&resource).unwrap().len();
        resources.push(resource);
    }
    let doc = json!({"version": 4, "terraform_version": "1.9.8", "serial": 42,
                     "lineage": "6d39eb43-ad9c-4dde-819d-7ca7b46108cc", "outputs": {}, "resources": resources,
                     "check_results": null});
    serde_json::to_vec_pretty(&doc).unwrap()
}

/// A compact plan with `changes` resource changes, every fourth one an update.
fn plan(changes: usize) -> Vec<u8> {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let resource_changes: Vec<Value> = (0..changes)
        .map(|i| {
            let before = attributes(&mut rng);
            json!({"address": format!("aws_instance.r{i}"), "mode": "managed", "type": "aws_instance", "name": format!("r{i}"),
                   "change": {"actions": [if i % 4 == 0 { "update" } else { "no-op" }], "before": before.clone(), "after": before,
                              "after_unknown": {}, "before_sensitive": {}, "after_sensitive": {}}})
        })
        .collect();
    serde_json::to_vec(&json!({"format_version": "1.2", "terraform_version": "1.9.8",
                               "planned_values": {"root_module": {}}, "resource_changes": resource_changes,
                               "resource_drift": [], "output_changes": {}, "errored": false}))
    .unwrap()
}

fn parsers(c: &mut Criterion) {
    let mut group = c.benchmark_group("state");
    for (label, bytes) in [("100KB", 100_000), ("10MB", 10_000_000)] {
        let doc = state(bytes);
        group.throughput(Throughput::Bytes(doc.len() as u64));
        group.bench_function(format!("parse/{label}"), |b| {
            b.iter(|| iacwatch::artifact::state::parse(black_box(&doc)).unwrap())
        });
        group.bench_function(format!("parse_serde_json/{label}"), |b| {
            b.iter(|| iacwatch::artifact::state::parse_with_serde_json(black_box(&doc)).unwrap())
        });
        group.bench_function(format!("parse_reader/{label}"), |b| {
            b.iter(|| iacwatch::artifact::state::parse_reader(black_box(&doc[..])).unwrap())
        });
    }
    group.finish();
    let mut group = c.benchmark_group("plan");
    for (label, changes) in [("40changes", 40), ("2000changes", 2000)] {
        let doc = plan(changes);
        group.throughput(Throughput::Bytes(doc.len() as u64));
        group.bench_function(format!("parse/{label}"), |b| {
            b.iter(|| iacwatch::artifact::plan::parse(black_box(&doc)).unwrap())
        });
        group.bench_function(format!("parse_serde_json/{label}"), |b| {
            b.iter(|| iacwatch::artifact::plan::parse_with_serde_json(black_box(&doc)).unwrap())
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = parsers
}
criterion_main!(benches);
