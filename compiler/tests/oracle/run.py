#!/usr/bin/env python3
"""Runs one oracle cfg on Kamailio 5.6 and prints the reply reason of each case.

Usage: run.py CFG CASE [CASE...]
Each case is sent as an OPTIONS request whose R-URI user is the case name; the cfg
answers with sl_send_reply("200", "<computed text>"). A case that gets no reply within
the timeout prints <no reply>. The Kamailio process is stopped by its pid at the end.
"""
import os, socket, subprocess, sys, tempfile, time

MODS = "/usr/lib/x86_64-linux-gnu/kamailio/modules"

def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p

def main():
    cfg, cases = sys.argv[1], sys.argv[2:]
    port = free_port()
    d = tempfile.mkdtemp(prefix="ksr-oracle-")
    pid = os.path.join(d, "k.pid")
    log = open(os.path.join(d, "k.log"), "w")
    k = subprocess.Popen(["kamailio", "-f", cfg, "-L", MODS, "-P", pid, "-Y", d, "-w", d,
                          "-E", "-DD", "-A", "PORT=%d" % port], stdout=log, stderr=log)
    c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    c.bind(("127.0.0.1", 0))
    c.settimeout(0.5)
    me = c.getsockname()[1]
    try:
        for _ in range(50):
            try:
                c.sendto(b"x", ("127.0.0.1", port))
            except OSError:
                pass
            if os.path.exists(pid):
                break
            time.sleep(0.1)
        time.sleep(0.3)
        for i, case in enumerate(cases):
            msg = ("OPTIONS sip:%s@127.0.0.1:%d SIP/2.0\r\n"
                   "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bK-o%d\r\n"
                   "From: <sip:alice@127.0.0.1>;tag=f%d\r\n"
                   "To: <sip:bob@127.0.0.1>\r\n"
                   "Call-ID: oracle-%d-%s\r\n"
                   "CSeq: 1 OPTIONS\r\n"
                   "X-Test: first\r\nX-Test: second\r\n"
                   "Max-Forwards: 70\r\n"
                   "Content-Length: 0\r\n\r\n") % (case, port, me, i, i, i, case)
            c.sendto(msg.encode(), ("127.0.0.1", port))
            try:
                data = c.recv(65535).decode(errors="replace")
                line = data.split("\r\n", 1)[0]
                print("%s\t%s" % (case, line.split(" ", 2)[2] if line.count(" ") >= 2 else line))
            except socket.timeout:
                print("%s\t<no reply>" % case)
    finally:
        k.terminate()
        try:
            k.wait(5)
        except subprocess.TimeoutExpired:
            k.kill()
        log.close()
        if os.environ.get("ORACLE_LOG"):
            print(open(os.path.join(d, "k.log")).read(), file=sys.stderr)

main()
