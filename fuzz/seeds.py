#!/usr/bin/env python3
"""Writes generated states and plans into a fuzz corpus directory, for the `agree` target:
escapes, unicode, deep nesting, huge strings, numbers of every form, and truncated copies.
    fuzz/seeds.py DIR"""
import json
import os
import random
import sys

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
rng = random.Random(14)

VALUES = [
    "plain", 'with "quotes" and \\ and / \b\f\n\r\t', "\u00e9\u20ac\U0001F600", "J\u00fcrgen Gro\u00df \u6771\u4eac",
    json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:*"]}]}),
    0, -0.0, -12.5e-3, 1e9, 18446744073709551615, 18446744073709551616, True, False, None, [], {},
    [[], [{}], {"a": [None, [True, {"b": -1}]]}],
]


def value(depth=0):
    r = rng.random()
    if depth > 4 or r < 0.5:
        return rng.choice(VALUES)
    if r < 0.75:
        return [value(depth + 1) for _ in range(rng.randint(0, 4))]
    return {rng.choice(["id", "arn", "tags", "policy", "\u00e9", "a\"b"]) + str(i): value(depth + 1) for i in range(rng.randint(0, 4))}


def state(i):
    resources = []
    for r in range(rng.randint(0, 6)):
        instances = []
        for _ in range(rng.randint(0, 3)):
            inst = {"schema_version": 0, "attributes": {"v": value(), "user_data": "x" * rng.choice([0, 10, 5000])}}
            if rng.random() < 0.3:
                inst["status"] = "tainted"
            if rng.random() < 0.2:
                inst["deposed"] = "0000000%d" % r
            instances.append(inst)
        resources.append({"mode": rng.choice(["managed", "managed", "data"]), "type": "t", "name": "r%d" % r,
                          "instances": instances})
    doc = {"version": 4, "terraform_version": "1.5.7", "serial": i, "lineage": "ab-%d" % i,
           "outputs": {"o": {"value": value(), "sensitive": True}}, "resources": resources}
    return json.dumps(doc, indent=rng.choice([None, 2]), ensure_ascii=rng.random() < 0.5)


def v3(i):
    return json.dumps({"version": 3, "serial": i, "lineage": "l", "modules": [{"path": ["root"], "resources": {
        "aws_instance.a": {"primary": {"id": "i", "attributes": {"x": value()}, "tainted": rng.random() < 0.5},
                           "tainted": [{}] * rng.randint(0, 2)},
        "data.x.y": {"primary": {"id": "d"}}}}]}, indent=2)


def plan(i):
    actions = [["create"], ["update"], ["delete"], ["forget"], ["delete", "create"], ["create", "delete"], ["read"],
               ["no-op"], ["teleport"], ["no-op", "read", "update"], []]
    return json.dumps({
        "format_version": "1.2", "terraform_version": "1.9.8", "planned_values": value(),
        "resource_changes": [{"address": "a%d" % k, "change": {"actions": rng.choice(actions), "before": value(),
                                                                "after": value()}} for k in range(rng.randint(0, 5))],
        "resource_drift": [{"change": {"actions": rng.choice(actions)}}],
        "output_changes": {"o%d" % k: {"actions": rng.choice(actions)} for k in range(rng.randint(0, 3))},
        "errored": rng.random() < 0.2,
    }, indent=rng.choice([None, 2]))


docs = []
for i in range(40):
    docs += [state(i), plan(i)]
for i in range(5):
    docs.append(v3(i))
docs.append('{"version":4,"resources":[{"mode":"managed","instances":[{"attributes":' + "[" * 3000 + "]" * 3000 + "}]}]}")
docs.append('{"version":4,"resources":[{"mode":"managed","instances":[{"attributes":"' + "A\\n" * 60000 + '"}]}]}')
for n, doc in enumerate(docs):
    data = doc.encode()
    with open(os.path.join(out, "gen-%03d.json" % n), "wb") as f:
        f.write(data)
    if n % 3 == 0 and len(data) > 2:
        with open(os.path.join(out, "gen-%03d-cut.json" % n), "wb") as f:
            f.write(data[:rng.randint(1, len(data) - 1)])
