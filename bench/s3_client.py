"""The boto3 side of bench/run's remote section, run with the Python of `.tools/remote/venv` (moto
brings boto3). Endpoints come from S3_ENDPOINT and DYNAMODB_ENDPOINT, credentials from AWS_*.

    s3_client.py fill BUCKET TABLE COUNT SEED   # COUNT states, their -md5 items, a few lock items
    s3_client.py loop BUCKET [THREADS]          # list every object, GET it, json.loads it
    s3_client.py serve BUCKET TABLE             # reads "taint KEY" lines on stdin: rewrites that
                                                # state with one instance tainted, then its -md5 item,
                                                # and answers "ok T" (time.monotonic() when the
                                                # state's PUT returned)

`fill` prints a JSON manifest: the keys, the named workspaces and the locked states.
"""
import hashlib
import json
import os
import random
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config

CONFIG = Config(retries={"max_attempts": 10, "mode": "standard"}, s3={"addressing_style": "path"},
                max_pool_connections=32)


def s3():
    return boto3.client("s3", endpoint_url=os.environ["S3_ENDPOINT"], region_name="us-east-1", config=CONFIG)


def dynamodb():
    return boto3.client("dynamodb", endpoint_url=os.environ["DYNAMODB_ENDPOINT"], region_name="us-east-1")


def state(rng, serial, lineage):
    """A Terraform v4 state with 3 to 80 managed instances (most small, as in a real fleet)."""
    count = min(80, int(3 * rng.paretovariate(1.0)))
    resources = []
    for i in range(count):
        resources.append({
            "mode": "managed", "type": "aws_s3_object", "name": f"r{i}",
            "provider": "provider[\"registry.terraform.io/hashicorp/aws\"]",
            "instances": [{
                "schema_version": 0,
                "attributes": {
                    "id": f"obj-{lineage[:8]}-{i}", "bucket": f"bucket-{i}", "key": f"path/{i}/object",
                    "etag": hashlib.md5(f"{lineage}{i}".encode()).hexdigest(),
                    "policy": json.dumps({"Version": "2012-10-17", "Statement": [
                        {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": f"arn:aws:s3:::bucket-{i}/*"}]}),
                    "tags": {"team": f"team-{i % 7}", "env": "prod"},
                },
                "sensitive_attributes": [], "private": "eyJzY2hlbWFfdmVyc2lvbiI6IjAifQ==",
            }],
        })
    return {"version": 4, "terraform_version": "1.9.8", "serial": serial, "lineage": lineage,
            "outputs": {}, "resources": resources}


def fill(bucket, table, count, seed):
    rng = random.Random(seed)
    client, ddb = s3(), dynamodb()
    client.create_bucket(Bucket=bucket)
    ddb.create_table(TableName=table, KeySchema=[{"AttributeName": "LockID", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "LockID", "AttributeType": "S"}],
                     BillingMode="PAY_PER_REQUEST")
    objects = []
    for n in range(count):
        path = f"teams/team-{n % 40:02d}/svc-{n:05d}/terraform.tfstate"
        # One in ten is a named CLI workspace beside its default one, as `env:/NAME/KEY`.
        key = f"env:/staging/{path}" if n % 10 == 9 else path
        lineage = hashlib.sha1(f"{seed}-{n}".encode()).hexdigest()
        body = json.dumps(state(rng, 1 + n % 50, lineage), indent=2).encode()
        objects.append((key, body))

    def put(item):
        key, body = item
        client.put_object(Bucket=bucket, Key=key, Body=body)
        return len(body)

    with ThreadPoolExecutor(max_workers=32) as pool:
        sizes = list(pool.map(put, objects))
    # Terraform's lock table: a digest item for every state, a lock item for one in a hundred.
    items = [{"LockID": {"S": f"{bucket}/{key}-md5"}, "Digest": {"S": hashlib.md5(body).hexdigest()}}
             for key, body in objects]
    locked = [key for n, (key, _) in enumerate(objects) if n % 100 == 50]
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for key in locked:
        info = {"ID": "bench", "Operation": "OperationTypeApply", "Who": "ci@runner", "Version": "1.9.8",
                "Created": created, "Path": f"{bucket}/{key}", "Info": ""}
        items.append({"LockID": {"S": f"{bucket}/{key}"}, "Info": {"S": json.dumps(info)}})

    def write(batch):
        ddb.batch_write_item(RequestItems={table: [{"PutRequest": {"Item": i}} for i in batch]})

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(write, [items[i:i + 25] for i in range(0, len(items), 25)]))
    sizes.sort()
    print(json.dumps({"keys": [k for k, _ in objects], "locked": locked, "items": len(items),
                      "state_bytes": sum(sizes), "median_state": sizes[len(sizes) // 2], "largest": sizes[-1]}))


def loop(bucket, threads):
    """What a user scripts: list every object, GET it, parse it, count its managed instances."""
    client = s3()
    keys = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys += [o["Key"] for o in page.get("Contents", [])]

    def read(key):
        doc = json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())
        return sum(len(r.get("instances", [])) for r in doc.get("resources", []) if r.get("mode") == "managed")

    if threads > 1:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            total = sum(pool.map(read, keys))
    else:
        total = sum(read(k) for k in keys)
    print(len(keys), total)


def serve(bucket, table):
    client, ddb = s3(), dynamodb()
    for line in sys.stdin:
        _, key = line.split()
        doc = json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())
        doc["resources"][0]["instances"][0]["status"] = "tainted"
        doc["serial"] += 1
        body = json.dumps(doc, indent=2).encode()
        client.put_object(Bucket=bucket, Key=key, Body=body)
        written = time.monotonic()
        ddb.put_item(TableName=table, Item={"LockID": {"S": f"{bucket}/{key}-md5"},
                                            "Digest": {"S": hashlib.md5(body).hexdigest()}})
        print("ok", written, flush=True)


if __name__ == "__main__":
    cmd, *args = sys.argv[1:]
    if cmd == "fill":
        fill(args[0], args[1], int(args[2]), int(args[3]))
    elif cmd == "loop":
        loop(args[0], int(args[1]) if len(args) > 1 else 1)
    elif cmd == "serve":
        serve(args[0], args[1])
    else:
        raise SystemExit(f"unknown command {cmd}")
