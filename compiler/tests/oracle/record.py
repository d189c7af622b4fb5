#!/usr/bin/env python3
"""Records Kamailio's answers for every oracle cfg here into <cfg>.expected.

Each cfg lists its cases on a `# cases:` line. Ports in answers are normalized to 5070
(the port the toy host in compiler/tests uses). Run after changing a cfg:
    compiler/tests/oracle/record.py
"""
import os, re, subprocess, sys

here = os.path.dirname(os.path.abspath(__file__))
for name in sorted(os.listdir(here)):
    if not name.endswith(".cfg"):
        continue
    path = os.path.join(here, name)
    m = re.search(r"^# cases: (.*)$", open(path).read(), re.M)
    if not m:
        continue
    out = subprocess.run([sys.executable, os.path.join(here, "run.py"), path] + m.group(1).split(),
                         capture_output=True, text=True, check=True).stdout
    out = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:5070", out)
    open(path[:-4] + ".expected", "w").write(out)
    print(name, len(out.splitlines()), "cases")
