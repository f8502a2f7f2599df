#!/usr/bin/env python3
"""Builds a benchmark corpus: N Terraform workspaces under one root, deterministic from a seed.

States are shaped like Terraform's own v4 state files (indented by two spaces, resources with
instances, nested blocks, long strings such as IAM policies, user data and provider `private`
blobs); most are 10-200 KB, a few are 10-50 MB and one is about 200 MB. A share of the workspaces
hold plans, Terraform locks, pipeline markers, errored states and crash logs, so that every one of
the seven statuses is present. Modification times are fixed (relative to 2026-01-01), so the same
seed gives the same tree, byte for byte and time for time.

Pipeline locks name another host and start at a fixed time: scan and serve the corpus with
`--stale-lock-after 100000h` to see them as live (provisioning, destroying) rather than stale.

    bench/corpus.py --out DIR --workspaces 10000 [--seed 1] [--large 10] [--huge-mb 200]

Writes DIR/manifest.json: every workspace with its expected status, and the file sizes.
"""

import argparse
import base64
import json
import math
import os
import random
import shutil
import sys
import uuid

BASE = 1767225600  # 2026-01-01T00:00:00Z
HOST = "ci-runner-7"
VERSIONS = ["1.5.7", "1.6.6", "1.7.5", "1.9.8", "1.10.5"]
REGIONS = ["eu-west-1", "us-east-1", "us-west-2", "ap-southeast-2"]

# Status shares (percent), in the order the generator assigns them.
SHARES = [
    ("active", 50),
    ("apply_needed", 14),
    ("failed", 12),
    ("inactive", 10),
    ("drifted", 8),
    ("provisioning", 3),
    ("destroying", 3),
]


def iso(t):
    import datetime

    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Pool:
    """Resource objects rendered once as indented JSON text, reused to build states of any size."""

    def __init__(self, rng, size):
        self.rng = rng
        self.items = []  # (text with __NAME__, managed instance count, approximate length)
        makers = [
            self.instance, self.iam_policy, self.bucket, self.security_group, self.helm_release,
            self.small, self.small, self.policy_document, self.rds, self.route53,
        ]
        for i in range(size):
            resource = makers[i % len(makers)]()
            text = json.dumps(resource, indent=2)
            text = "\n".join("    " + line for line in text.split("\n"))
            managed = len(resource["instances"]) if resource["mode"] == "managed" else 0
            self.items.append((text, managed))

    def word(self, n=8):
        return "".join(self.rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(n))

    def hexid(self, prefix, n=17):
        return prefix + "".join(self.rng.choice("0123456789abcdef") for _ in range(n))

    def blob(self, n):
        return base64.b64encode(self.rng.randbytes(n)).decode()

    def tags(self):
        return {
            "Name": self.word(12),
            "team": self.word(6),
            "env": self.rng.choice(["prod", "staging", "dev"]),
            "cost-center": str(self.rng.randrange(1000, 9999)),
            "managed-by": "terraform",
        }

    def wrap(self, rtype, attrs_list, provider="hashicorp/aws", mode="managed", module=None, keys=None):
        instances = []
        for i, attrs in enumerate(attrs_list):
            inst = {"schema_version": self.rng.choice([0, 1, 2])}
            if keys:
                inst["index_key"] = keys[i]
            inst["attributes"] = attrs
            inst["sensitive_attributes"] = []
            if mode == "managed":
                inst["private"] = self.blob(self.rng.randrange(60, 300))
                inst["dependencies"] = [f"aws_vpc.{self.word(6)}", f"aws_subnet.{self.word(6)}"]
            instances.append(inst)
        res = {}
        if module:
            res["module"] = module
        res.update({
            "mode": mode,
            "type": rtype,
            "name": "__NAME__",
            "provider": f'provider["registry.terraform.io/{provider}"]',
            "instances": instances,
        })
        return res

    def count(self):
        n = self.rng.choice([1, 1, 1, 1, 2, 3, 5])
        return n, (list(range(n)) if n > 1 else None)

    def instance(self):
        n, keys = self.count()
        attrs = []
        for _ in range(n):
            attrs.append({
                "ami": self.hexid("ami-"),
                "arn": f"arn:aws:ec2:{self.rng.choice(REGIONS)}:123456789012:instance/{self.hexid('i-')}",
                "associate_public_ip_address": False,
                "availability_zone": self.rng.choice(REGIONS) + "a",
                "cpu_core_count": self.rng.choice([1, 2, 4]),
                "ebs_block_device": [],
                "id": self.hexid("i-"),
                "instance_type": self.rng.choice(["t3.micro", "m5.large", "c6g.xlarge"]),
                "metadata_options": [{"http_endpoint": "enabled", "http_put_response_hop_limit": 1,
                                      "http_tokens": "required", "instance_metadata_tags": "disabled"}],
                "private_ip": f"10.{self.rng.randrange(256)}.{self.rng.randrange(256)}.{self.rng.randrange(256)}",
                "root_block_device": [{"delete_on_termination": True, "encrypted": True, "iops": 3000,
                                       "kms_key_id": "", "tags": {}, "throughput": 125,
                                       "volume_id": self.hexid("vol-"), "volume_size": 50, "volume_type": "gp3"}],
                "subnet_id": self.hexid("subnet-"),
                "tags": self.tags(),
                "tags_all": self.tags(),
                "timeouts": None,
                "user_data": self.blob(self.rng.randrange(400, 3000)),
                "vpc_security_group_ids": [self.hexid("sg-") for _ in range(self.rng.randrange(1, 4))],
            })
        return self.wrap("aws_instance", attrs, keys=keys,
                         module=self.rng.choice([None, "module.compute", 'module.app["api"]']))

    def policy_text(self):
        statements = []
        for _ in range(self.rng.randrange(2, 9)):
            statements.append({
                "Sid": self.word(10),
                "Effect": "Allow",
                "Action": [f"{self.rng.choice(['s3', 'ec2', 'kms', 'logs'])}:{self.word(9)}"
                           for _ in range(self.rng.randrange(2, 8))],
                "Resource": [f"arn:aws:s3:::{self.word(14)}/*" for _ in range(self.rng.randrange(1, 4))],
            })
        return json.dumps({"Version": "2012-10-17", "Statement": statements}, indent=2)

    def iam_policy(self):
        name = self.word(10)
        return self.wrap("aws_iam_policy", [{
            "arn": f"arn:aws:iam::123456789012:policy/{name}",
            "description": "Managed by Terraform " + self.word(30),
            "id": f"arn:aws:iam::123456789012:policy/{name}",
            "name": name,
            "path": "/",
            "policy": self.policy_text(),
            "policy_id": self.hexid("ANPA", 17).upper(),
            "tags": self.tags(),
        }])

    def policy_document(self):
        return self.wrap("aws_iam_policy_document", [{
            "id": str(self.rng.randrange(10**9)),
            "json": self.policy_text(),
            "statement": [{"actions": [self.word(8) for _ in range(4)], "effect": "Allow",
                           "resources": ["*"], "sid": self.word(6)}],
        }], mode="data")

    def bucket(self):
        name = f"{self.word(6)}-{self.word(8)}"
        rules = []
        for _ in range(self.rng.randrange(1, 5)):
            rules.append({"id": self.word(8), "enabled": True, "prefix": self.word(5) + "/",
                          "expiration": [{"days": self.rng.randrange(30, 400), "date": "",
                                          "expired_object_delete_marker": False}],
                          "noncurrent_version_expiration": [{"days": 90}],
                          "transition": [{"days": 30, "storage_class": "STANDARD_IA", "date": ""}]})
        return self.wrap("aws_s3_bucket", [{
            "acceleration_status": "",
            "arn": f"arn:aws:s3:::{name}",
            "bucket": name,
            "bucket_domain_name": f"{name}.s3.amazonaws.com",
            "force_destroy": False,
            "hosted_zone_id": "Z1BKCTXD74EZPE",
            "id": name,
            "lifecycle_rule": rules,
            "policy": self.policy_text(),
            "server_side_encryption_configuration": [{"rule": [{
                "apply_server_side_encryption_by_default": [{"kms_master_key_id": "", "sse_algorithm": "AES256"}],
                "bucket_key_enabled": False}]}],
            "tags": self.tags(),
            "versioning": [{"enabled": True, "mfa_delete": False}],
        }])

    def security_group(self):
        def rule():
            port = self.rng.choice([22, 80, 443, 5432, 6379, 8080])
            return {"cidr_blocks": [f"10.{self.rng.randrange(256)}.0.0/16" for _ in range(self.rng.randrange(1, 6))],
                    "description": self.word(20), "from_port": port, "ipv6_cidr_blocks": [],
                    "prefix_list_ids": [], "protocol": "tcp", "security_groups": [], "self": False,
                    "to_port": port}
        return self.wrap("aws_security_group", [{
            "arn": "arn:aws:ec2:eu-west-1:123456789012:security-group/" + self.hexid("sg-"),
            "description": "Managed by Terraform",
            "egress": [rule() for _ in range(self.rng.randrange(1, 4))],
            "id": self.hexid("sg-"),
            "ingress": [rule() for _ in range(self.rng.randrange(1, 10))],
            "name": self.word(12),
            "owner_id": "123456789012",
            "revoke_rules_on_delete": False,
            "tags": self.tags(),
            "vpc_id": self.hexid("vpc-"),
        }])

    def helm_release(self):
        values = "\n".join(f"{self.word(8)}:\n  {self.word(6)}: {self.word(20)}\n  replicas: {self.rng.randrange(1, 9)}"
                           for _ in range(self.rng.randrange(10, 80)))
        return self.wrap("helm_release", [{
            "atomic": False,
            "chart": self.word(8),
            "id": self.word(8),
            "manifest": None,
            "metadata": [{"app_version": "1.2.3", "chart": self.word(8), "name": self.word(8),
                          "namespace": "default", "revision": self.rng.randrange(1, 50),
                          "values": json.dumps({"image": {"tag": self.word(12)}}), "version": "4.5.6"}],
            "namespace": "default",
            "repository": "https://charts.example.com",
            "set": [{"name": self.word(10), "type": "", "value": self.word(16)} for _ in range(5)],
            "status": "deployed",
            "timeout": 300,
            "values": [values],
            "version": "4.5.6",
        }], provider="hashicorp/helm")

    def rds(self):
        return self.wrap("aws_db_instance", [{
            "address": f"{self.word(10)}.{self.word(12)}.eu-west-1.rds.amazonaws.com",
            "allocated_storage": 100,
            "arn": "arn:aws:rds:eu-west-1:123456789012:db:" + self.word(10),
            "backup_retention_period": 7,
            "engine": "postgres",
            "engine_version": "15.4",
            "id": "db-" + self.word(26).upper(),
            "instance_class": "db.r6g.large",
            "parameter_group_name": "default.postgres15",
            "password": None,
            "tags": self.tags(),
            "vpc_security_group_ids": [self.hexid("sg-")],
        }])

    def route53(self):
        n, keys = self.count()
        keys = [f"{self.word(6)}.example.com" for _ in range(n)]
        return self.wrap("aws_route53_record", [{
            "alias": [], "fqdn": keys[i], "health_check_id": "", "id": "Z" + self.word(13).upper(),
            "name": keys[i], "records": [f"10.0.{self.rng.randrange(256)}.{self.rng.randrange(256)}"],
            "ttl": 300, "type": "A", "zone_id": "Z" + self.word(13).upper(),
        } for i in range(n)], keys=keys)

    def small(self):
        return self.wrap("random_id", [{"b64_std": self.blob(6), "byte_length": 8, "dec": str(self.rng.randrange(10**12)),
                                        "hex": self.word(16), "id": self.word(11), "keepers": None, "prefix": None}],
                         provider="hashicorp/random")


def state_text(rng, pool, target_bytes, empty=False, tainted=False):
    """A v4 state of about `target_bytes`; returns (text, managed instance count)."""
    head = ("{\n"
            '  "version": 4,\n'
            f'  "terraform_version": "{rng.choice(VERSIONS)}",\n'
            f'  "serial": {rng.randrange(1, 5000)},\n'
            f'  "lineage": "{uuid.UUID(int=rng.getrandbits(128), version=4)}",\n'
            '  "outputs": {\n'
            '    "endpoint": {\n'
            f'      "value": "https://{pool.word(10)}.example.com",\n'
            '      "type": "string"\n'
            "    },\n"
            '    "subnet_ids": {\n'
            f'      "value": ["{pool.hexid("subnet-")}", "{pool.hexid("subnet-")}"],\n'
            '      "type": ["list", "string"]\n'
            "    }\n"
            "  },\n"
            '  "resources": [')
    tail = "  ],\n  \"check_results\": null\n}\n"
    if empty:
        return head + "]" + tail[3:], 0
    parts = []
    size = len(head) + len(tail)
    managed = 0
    n = 0
    while size < target_bytes or n == 0:
        text, count = pool.items[rng.randrange(len(pool.items))]
        text = text.replace("__NAME__", f"r{n}", 1)
        if tainted and count and managed == 0:
            text = text.replace('"schema_version"', '"status": "tainted",\n        "schema_version"', 1)
        parts.append(text)
        size += len(text) + 2
        managed += count
        n += 1
    return head + "\n" + ",\n".join(parts) + "\n" + tail, managed


def plan_text(rng, pool, kind):
    """`terraform show -json` output: changes (`pending`), drift (`drift`) or no-op."""
    changes = []
    drift = []
    planned = []
    for i in range(rng.randrange(3, 40)):
        text, count = pool.items[rng.randrange(len(pool.items))]
        resource = json.loads(text.replace("__NAME__", f"r{i}"))
        if resource["mode"] != "managed":
            continue
        attrs = resource["instances"][0]["attributes"]
        address = f'{resource["type"]}.r{i}'
        actions = ["no-op"]
        if kind == "pending" and i % 4 == 0:
            actions = rng.choice([["update"], ["create"], ["delete", "create"], ["delete"]])
        planned.append({"address": address, "mode": "managed", "type": resource["type"], "name": f"r{i}",
                        "provider_name": "registry.terraform.io/hashicorp/aws", "schema_version": 0,
                        "values": attrs, "sensitive_values": {}})
        changes.append({"address": address, "mode": "managed", "type": resource["type"], "name": f"r{i}",
                        "provider_name": "registry.terraform.io/hashicorp/aws",
                        "change": {"actions": actions, "before": attrs, "after": attrs, "after_unknown": {},
                                   "before_sensitive": {}, "after_sensitive": {}}})
        if kind == "drift" and i % 5 == 0:
            drift.append({"address": address, "mode": "managed", "type": resource["type"], "name": f"r{i}",
                          "provider_name": "registry.terraform.io/hashicorp/aws",
                          "change": {"actions": ["update"], "before": attrs, "after": attrs,
                                     "after_unknown": {}, "before_sensitive": {}, "after_sensitive": {}}})
    if kind == "pending" and not any(c["change"]["actions"] != ["no-op"] for c in changes):
        changes.append({"address": "random_id.extra", "mode": "managed", "type": "random_id", "name": "extra",
                        "change": {"actions": ["create"], "before": None, "after": {"byte_length": 8}}})
    if kind == "drift" and not drift:
        drift.append({"address": "aws_instance.x", "mode": "managed", "type": "aws_instance", "name": "x",
                      "change": {"actions": ["update"], "before": {}, "after": {}}})
    plan = {
        "format_version": "1.2",
        "terraform_version": rng.choice(VERSIONS),
        "planned_values": {"root_module": {"resources": planned}},
        "resource_drift": drift,
        "resource_changes": changes,
        "output_changes": {"endpoint": {"actions": ["no-op"], "before": "x", "after": "x",
                                        "after_unknown": False, "before_sensitive": False, "after_sensitive": False}},
        "configuration": {"provider_config": {"aws": {"name": "aws", "full_name": "registry.terraform.io/hashicorp/aws"}},
                          "root_module": {}},
        "timestamp": iso(BASE),
        "errored": False,
    }
    return json.dumps(plan)


MAIN_TF = """terraform {{
  required_providers {{
    aws = {{
      source  = "hashicorp/aws"
      version = "~> 5.0"
    }}
  }}
}}

module "{name}" {{
  source = "../../../modules/{module}"
  name   = "{name}"
}}
"""

LOCK_HCL = """# This file is maintained automatically by "terraform init".
# Manual edits may be lost in future updates.

provider "registry.terraform.io/hashicorp/aws" {
  version     = "5.31.0"
  constraints = "~> 5.0"
  hashes = [
    "h1:ltxyuBWIy9cq0kIKDJH1jeWJy/y7XJLjS4QrsQK4plA=",
    "zh:0cdb9c2083bf0902442384f7309367791e4640581652dda456f2d6d7abf0de8d",
  ]
}
"""


def write(path, text, mtime):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    os.utime(path, (mtime, mtime))


def statuses(rng, n):
    out = []
    for status, share in SHARES:
        out += [status] * round(n * share / 100)
    out = (out + ["active"] * n)[:n]
    rng.shuffle(out)
    return out


def log_uniform(rng, low, high):
    return int(math.exp(rng.uniform(math.log(low), math.log(high))))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--workspaces", type=int, required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--large", type=int, default=None, help="states of 10-50 MB (default: N/1000, at least 1)")
    ap.add_argument("--large-mb", type=str, default="10-50")
    ap.add_argument("--huge-mb", type=float, default=200, help="size of the one huge state (0: none)")
    ap.add_argument("--small-kb", type=str, default="10-200")
    args = ap.parse_args()

    rng = random.Random(args.seed)
    if os.path.exists(args.out):
        shutil.rmtree(args.out)
    os.makedirs(args.out)
    pool = Pool(random.Random(args.seed * 7919 + 1), 600)
    n = args.workspaces
    large = args.large if args.large is not None else max(1, n // 1000)
    lo_kb, hi_kb = (float(x) for x in args.small_kb.split("-"))
    lo_mb, hi_mb = (float(x) for x in args.large_mb.split("-"))
    assigned = statuses(rng, n)
    teams = max(4, n // 250)
    active = [i for i, s in enumerate(assigned) if s == "active"]
    big = rng.sample(active, min(len(active), large + (1 if args.huge_mb else 0)))
    huge = big[0] if args.huge_mb else None
    large_set = set(big[1:] if args.huge_mb else big)

    manifest = {"seed": args.seed, "workspaces": [], "files": {"states": 0, "state_bytes": 0, "other": 0},
                "stale_lock_after": "100000h"}
    # Directories that are not workspaces: shared modules and a git folder, walked by discovery.
    for m in ("network", "compute", "storage", "dns"):
        write(os.path.join(args.out, "modules", m, "main.tf"), f'variable "name" {{}}\n# {m}\n', BASE)
        write(os.path.join(args.out, "modules", m, "README.md"), f"# {m} module\n", BASE)
    write(os.path.join(args.out, ".git", "HEAD"), "ref: refs/heads/main\n", BASE)

    for i, status in enumerate(assigned):
        team = i % teams
        env = ["prod", "staging", "dev"][(i // teams) % 3]
        rel = f"team-{team:03d}/{env}/stack-{i:05d}"
        d = os.path.join(args.out, rel)
        t0 = BASE + rng.randrange(0, 200 * 86400)
        write(os.path.join(d, "main.tf"), MAIN_TF.format(name=f"stack{i}", module=rng.choice(["network", "compute", "storage", "dns"])), t0)
        write(os.path.join(d, "variables.tf"), 'variable "region" {\n  default = "eu-west-1"\n}\n', t0)
        write(os.path.join(d, ".terraform.lock.hcl"), LOCK_HCL, t0)
        os.makedirs(os.path.join(d, ".terraform", "providers"), exist_ok=True)
        if i == huge:
            target = int(args.huge_mb * 1e6)
        elif i in large_set:
            target = int(rng.uniform(lo_mb, hi_mb) * 1e6)
        else:
            target = log_uniform(rng, lo_kb * 1000, hi_kb * 1000)
        variant = ""
        entry = {"path": rel, "status": status}
        state = True
        empty = False
        tainted = False
        ts = t0 + 60  # state written after the configuration
        if status == "inactive":
            variant = rng.choice(["no_state", "empty_state"])
            state = variant == "empty_state"
            empty = True
        elif status == "failed":
            variant = rng.choice(["tainted", "errored_tfstate", "dead_lock", "last_run_failed", "crash_log"])
            tainted = variant == "tainted"
        elif status == "apply_needed":
            variant = rng.choice(["plan", "plan", "plan", "config_changed"])
        entry["variant"] = variant
        if state:
            text, managed = state_text(rng, pool, target, empty=empty, tainted=tainted)
            write(os.path.join(d, "terraform.tfstate"), text, ts)
            manifest["files"]["states"] += 1
            manifest["files"]["state_bytes"] += len(text)
            entry["state_bytes"] = len(text)
            entry["resources"] = managed
        if status == "apply_needed" and variant == "plan":
            write(os.path.join(d, "plan.json"), plan_text(rng, pool, "pending"), ts + 30)
        elif status == "apply_needed":
            os.utime(os.path.join(d, "main.tf"), (ts + 30, ts + 30))
        elif status == "drifted":
            write(os.path.join(d, "plan.json"), plan_text(rng, pool, "drift"), ts + 30)
        elif status == "active" and rng.random() < 0.2:
            write(os.path.join(d, "plan.json"), plan_text(rng, pool, "noop"), ts + 30)
        elif variant == "errored_tfstate":
            write(os.path.join(d, "errored.tfstate"), text, ts + 30)
        elif variant == "crash_log":
            write(os.path.join(d, "crash.log"), "panic: runtime error: invalid memory address\n" * 40, ts + 30)
        elif variant == "dead_lock":
            lock = {"ID": str(uuid.UUID(int=rng.getrandbits(128), version=4)), "Operation": "OperationTypeApply",
                    "Info": "", "Who": "runner@ci-runner-3", "Version": "1.5.7", "Created": iso(ts + 30),
                    "Path": "terraform.tfstate"}
            write(os.path.join(d, ".terraform.tfstate.lock.info"), json.dumps(lock), ts + 30)
        elif variant == "last_run_failed":
            run = {"operation": "provision", "outcome": "failed", "exit_code": 1, "started_at": iso(ts + 20),
                   "finished_at": iso(ts + 25), "run_id": str(rng.randrange(10**6))}
            write(os.path.join(d, ".iacwatch", "default", "last-run.json"), json.dumps(run), ts + 30)
        elif status in ("provisioning", "destroying"):
            lock = {"operation": "provision" if status == "provisioning" else "destroy", "started_at": iso(ts + 30),
                    "pid": 4242, "host": HOST, "run_id": str(rng.randrange(10**6)), "pipeline": "deploy"}
            write(os.path.join(d, ".iacwatch", "default", "lock.json"), json.dumps(lock), ts + 30)
        if status == "active" and i not in large_set and i != huge and rng.random() < 0.05:
            # A second CLI workspace beside the default one.
            text, managed = state_text(rng, pool, log_uniform(rng, lo_kb * 1000, hi_kb * 1000))
            write(os.path.join(d, "terraform.tfstate.d", "staging", "terraform.tfstate"), text, ts)
            manifest["files"]["states"] += 1
            manifest["files"]["state_bytes"] += len(text)
            entry["named"] = {"staging": "active"}
        manifest["workspaces"].append(entry)
        if i % 1000 == 999:
            print(f"  {i + 1}/{n} workspaces", file=sys.stderr)
    # Directory times: as Terraform leaves them, the time of their last write.
    for dirpath, _, _ in sorted(os.walk(args.out), key=lambda w: -w[0].count(os.sep)):
        os.utime(dirpath, (BASE + 200 * 86400, BASE + 200 * 86400))
    if huge is not None:
        manifest["huge"] = assigned and manifest["workspaces"][huge]["path"]
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)


if __name__ == "__main__":
    main()
