#!/usr/bin/env python3
"""Ask Kamailio 5.6 (the behavioural oracle) what pseudo-variables and transformations
evaluate to. Used to produce the expected values of the Rust tests in vm/src/transform and
vm/src/pv (the tests say which values came from here).

Usage:
  pv_oracle.py eval CASES.json     # evaluate; prints one JSON object per case
  pv_oracle.py check TEXT...       # does Kamailio start with xlog("TEXT")? prints ok/error

CASES.json is a list of objects:
  {"id": "...", "input": "text" | 12, "expr": "{s.substr,1,2}", "vars": {"i": 2},
   "pv": "avp(none)"}   (pv: read this pseudo-variable instead of $var(x), e.g. for null)
or {"id": "...", "format": "$rU@$rd"} for a plain format string printed by xlog.
For an "expr" case the value printed is $(var(x)EXPR) where $var(x) holds the input.

For each case the result has:
  raw   what xlog printed (failed transformation: empty, null: <null>)
  hex   the same through {s.encode.hexa} (exact bytes; empty for null/failure)
  len   through {s.len} (empty for null/failure, so "" vs "0" tells failure from empty)
  plus1 $var(t) + 1 after $var(t) = value: an integer result adds, a string appends "1"

The request sent is an OPTIONS to sip:alice@127.0.0.1 from "Al" <sip:al@example.com>;tag=12.
Everything runs on 127.0.0.1 with a private run directory; the script stops what it starts.
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

MODDIR = "/usr/lib/x86_64-linux-gnu/kamailio/modules"
KAMAILIO = "/usr/sbin/kamailio"


def cfg_string(s):
    """Text as a Kamailio cfg double-quoted string."""
    out = []
    for ch in s:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


HEADER = """#!KAMAILIO
debug=1
log_stderror=yes
children=1
auto_aliases=no
listen=udp:127.0.0.1:{port}
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "xlog.so"
loadmodule "textops.so"
loadmodule "corex.so"
loadmodule "htable.so"
modparam("htable", "htable", "t=>size=4;")
request_route {{
"""


def build_cfg(cases, port):
    lines = [HEADER.format(port=port)]
    for c in cases:
        cid = c["id"]
        if "format" in c:
            lines.append('    xlog("L_ERR", "@@%s@@%s@@END@@\\n");' % (cid, c["format"].replace('"', '\\"')))
            continue
        for name, val in c.get("vars", {}).items():
            if isinstance(val, int):
                lines.append("    $var(%s) = %d;" % (name, val))
            else:
                lines.append("    $var(%s) = %s;" % (name, cfg_string(val)))
        inp = c.get("input")
        if inp is None:
            lines.append("    $var(x) = $null;")
        elif isinstance(inp, int):
            lines.append("    $var(x) = %d;" % inp)
        else:
            lines.append("    $var(x) = %s;" % cfg_string(inp))
        # The cfg lexer turns \\ into \ inside strings: escape so Kamailio sees `expr` as is.
        e = c["expr"].replace("\\", "\\\\")
        src = c.get("pv", "var(x)")
        pv = "$(%s%s)" % (src, e)
        hexpv = "$(%s%s{s.encode.hexa})" % (src, e)
        lenpv = "$(%s%s{s.len})" % (src, e)
        # Outside strings the cfg lexer keeps backslashes: use the expression as written.
        lines.append("    $var(t) = $(%s%s);" % (src, c["expr"]))
        lines.append("    $var(u) = $var(t) + 1;")
        # One line per field: a NUL byte in a value cuts only its own line.
        for field, text in (("raw", pv), ("hex", hexpv), ("len", lenpv), ("plus1", "$var(u)")):
            lines.append('    xlog("L_ERR", "@@%s@@%s@@%s@@END@@\\n");' % (cid, field, text))
    lines.append('    sl_send_reply("200", "done");\n    exit;\n}\n')
    return "\n".join(lines)


def run_cfg(cfg_text):
    port = free_port()
    cfg_text = cfg_text.replace("{PORT}", str(port))
    with tempfile.TemporaryDirectory(prefix="pvoracle") as d:
        cfg = os.path.join(d, "k.cfg")
        with open(cfg, "w") as f:
            f.write(cfg_text.replace("listen=udp:127.0.0.1:0", "listen=udp:127.0.0.1:%d" % port))
        chk = subprocess.run([KAMAILIO, "-c", "-M", "256", "-f", cfg, "-L", MODDIR], capture_output=True, text=True)
        if chk.returncode != 0:
            return None, chk.stderr
        log = open(os.path.join(d, "log"), "w")
        proc = subprocess.Popen(
            [KAMAILIO, "-M", "256", "-m", "256", "-f", cfg, "-L", MODDIR, "-P", os.path.join(d, "k.pid"), "-Y", d, "-w", d, "-E", "-DD"],
            stdout=log, stderr=log)
        try:
            reply = send_options(port)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()
        with open(os.path.join(d, "log"), "rb") as f:
            return f.read().decode("latin-1"), reply


def send_options(port):
    msg = (
        "OPTIONS sip:alice@127.0.0.1 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK-1\r\n"
        "Via: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bK-2\r\n"
        "From: \"Al\" <sip:al@example.com>;tag=12\r\n"
        "To: <sip:alice@127.0.0.1>\r\n"
        "Call-ID: oracle-1\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Max-Forwards: 70\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(1.0)
    deadline = time.time() + 15
    try:
        while time.time() < deadline:
            s.sendto(msg.encode(), ("127.0.0.1", port))
            try:
                data, _ = s.recvfrom(65535)
                return data.decode("latin-1")
            except socket.timeout:
                continue
    finally:
        s.close()
    return None


def evaluate(cases):
    port = 0
    cfg = build_cfg(cases, port)
    log, reply = run_cfg(cfg)
    if log is None:
        print(json.dumps({"error": "config rejected", "detail": reply[-3000:]}))
        return
    results = {}
    # Values may contain newlines, so match across lines; a field cut by a NUL byte has no
    # END marker and is reported as missing.
    # A value cut by a NUL byte loses its newline too: stop at the next log line prefix.
    value = r"((?:(?!@@END@@)(?!\s*\d+\(\d+\) [A-Z]+: ).)*)@@END@@"
    for m in re.finditer(r"@@([^@\n]+)@@(raw|hex|len|plus1)@@" + value, log, re.S):
        results.setdefault(m.group(1), {})[m.group(2)] = m.group(3)
    for m in re.finditer(r"@@([^@\n]+)@@" + value, log, re.S):
        if "@@" not in m.group(2) and m.group(1) not in results:
            results[m.group(1)] = {"raw": m.group(2)}
    for c in cases:
        r = results.get(c["id"], {"missing": True})
        r["id"] = c["id"]
        if r.get("hex"):
            try:
                r["bytes"] = bytes.fromhex(r["hex"]).decode("latin-1")
            except ValueError:
                pass
        print(json.dumps(r))


def check(texts):
    """Starts Kamailio with xlog("TEXT") in the route: `kamailio -c` does not run fixups, so
    only a real start shows whether the format parses."""
    for t in texts:
        port = free_port()
        cfg = HEADER.format(port=port) + '    xlog("L_ERR", "%s\\n");\n    sl_send_reply("200", "ok");\n}\n' % (
            t.replace("\\", "\\\\").replace('"', '\\"'))
        with tempfile.TemporaryDirectory(prefix="pvcheck") as d:
            p = os.path.join(d, "k.cfg")
            open(p, "w").write(cfg)
            logp = os.path.join(d, "log")
            log = open(logp, "w")
            proc = subprocess.Popen(
                [KAMAILIO, "-M", "64", "-f", p, "-L", MODDIR, "-P", os.path.join(d, "k.pid"), "-Y", d,
                 "-w", d, "-E", "-DD"], stdout=log, stderr=log)
            ok = False
            deadline = time.time() + 8
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(0.3)
            while time.time() < deadline and proc.poll() is None:
                try:
                    s.sendto(b"OPTIONS sip:a@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK1\r\n"
                             b"From: <sip:b@c>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n"
                             b"Content-Length: 0\r\n\r\n", ("127.0.0.1", port))
                    s.recvfrom(65535)
                except socket.timeout:
                    pass
                # The route ran when xlog printed.
                if "<script>" in open(logp, errors="replace").read():
                    ok = True
                    break
            s.close()
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            log.close()
            errs = [l.strip() for l in open(logp, errors="replace") if "ERROR" in l or "CRITICAL" in l]
            print(json.dumps({"text": t, "ok": ok, "err": [] if ok else errs[:3]}))


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "eval":
        evaluate(json.load(open(sys.argv[2])))
    elif len(sys.argv) >= 3 and sys.argv[1] == "check":
        check(sys.argv[2:])
    else:
        print(__doc__)
        sys.exit(2)
