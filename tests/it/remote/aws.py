"""The writes the remote-state tests make to the real servers that iacwatch's own client cannot
make (the bucket, the lock table and its items), with the boto3 that moto's virtual environment
carries. Objects are written from the tests in Rust (`SeaweedFs::put_all`), with no process per
object.

    aws.py create-bucket BUCKET
    aws.py create-table TABLE
    aws.py put-items TABLE FILE               # a JSON list of items in DynamoDB's wire format
    aws.py put-many-items TABLE COUNT         # BUCKET-less digest items, for pagination

Endpoints come from S3_ENDPOINT and DYNAMODB_ENDPOINT, credentials from the AWS_* variables.
"""
import json
import os
import sys

import boto3
from botocore.config import Config

CONFIG = Config(retries={"max_attempts": 10, "mode": "standard"}, s3={"addressing_style": "path"})


def s3():
    return boto3.client("s3", endpoint_url=os.environ["S3_ENDPOINT"], region_name="us-east-1", config=CONFIG)


def dynamodb():
    return boto3.client("dynamodb", endpoint_url=os.environ["DYNAMODB_ENDPOINT"], region_name="us-east-1")


def main(cmd, *args):
    if cmd == "create-bucket":
        # Asked again when a first try lost its connection: a bucket it made is ours already.
        client = s3()
        try:
            client.create_bucket(Bucket=args[0])
        except (client.exceptions.BucketAlreadyOwnedByYou, client.exceptions.BucketAlreadyExists):
            pass
    elif cmd == "create-table":
        dynamodb().create_table(
            TableName=args[0],
            KeySchema=[{"AttributeName": "LockID", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "LockID", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    elif cmd == "put-items":
        client = dynamodb()
        with open(args[1]) as f:
            for item in json.load(f):
                client.put_item(TableName=args[0], Item=item)
    elif cmd == "put-many-items":
        table, count = args[0], int(args[1])
        client = dynamodb()
        items = [
            {"PutRequest": {"Item": {"LockID": {"S": f"many/{n}.tfstate-md5"}, "Digest": {"S": "0" * 32}}}}
            for n in range(count)
        ]
        for start in range(0, count, 25):
            client.batch_write_item(RequestItems={table: items[start : start + 25]})
    else:
        raise SystemExit(f"unknown command {cmd}")


if __name__ == "__main__":
    main(*sys.argv[1:])
