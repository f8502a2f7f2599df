#!/usr/bin/env python3
"""The Python alternative: what a cron job does today. Loads each state file named in LIST (one
path a line) with json.load and prints its count of managed resource instances."""

import json
import sys


def main():
    with open(sys.argv[1]) as names:
        for name in names:
            name = name.rstrip("\n")
            if not name:
                continue
            with open(name) as f:
                state = json.load(f)
            count = sum(len(r.get("instances", [])) for r in state.get("resources", []) if r.get("mode") == "managed")
            print(name, count)


if __name__ == "__main__":
    main()
