#!/usr/bin/env python3
"""Joins gen_cases.py's cases with pv_oracle.py's results into transforms.json, the
table vm/tests/oracle_transforms.rs checks ksr against.

  merge.py cases.json results.jsonl > transforms.json
"""
import json
import sys

cases = json.load(open(sys.argv[1]))
res = {}
for line in open(sys.argv[2]):
    r = json.loads(line)
    res[r["id"]] = r
out = []
for c in cases:
    r = res.get(c["id"], {})
    d = dict(c)
    # A field missing here was cut by a NUL byte in Kamailio's log output.
    d["oracle"] = {k: r[k] for k in ("raw", "hex", "len", "plus1") if k in r}
    out.append(d)
json.dump(out, sys.stdout, indent=0, ensure_ascii=False)
print()
