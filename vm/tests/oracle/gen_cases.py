#!/usr/bin/env python3
"""Writes the transformation cases evaluated by pv_oracle.py (JSON on stdout).

  gen_cases.py > cases.json
  pv_oracle.py eval cases.json > results.jsonl
  merge.py cases.json results.jsonl > transforms.json   (the file the Rust test reads)
"""
import json

cases = []


def add(expr, inputs, pv=None, vars=None):
    for inp in inputs:
        c = {"id": "c%d" % len(cases), "input": inp, "expr": expr}
        if pv:
            c["pv"] = pv
        if vars:
            c["vars"] = vars
        cases.append(c)


S = "abcdef"
add("{s.len}", [S, "", 123, -5])
add("{s.int}", ["12", "-12", "+7", "12abc", " 1", "2147483647", "2147483648", "-2147483648", "", 5])
for h in ["md5", "sha256", "sha384", "sha512"]:
    add("{s.%s}" % h, ["abc", "", 1])
add("{s.rmws}", [" a b\r\n\tc "])
add("{s.tolower}", ["AbC-1", 12])
add("{s.toupper}", ["AbC-1"])
add("{s.numeric}", ["040/123-456", "abc", -12])
add("{s.encode.hexa}", ["Az\n", ""])
add("{s.decode.hexa}", ["417A0a", "417", "4g", ""])
add("{s.encode.7bit}", ["hellohello", "a", "abcdefgh"])
add("{s.decode.7bit}", ["E8329BFD4697D9EC37", "61"])
add("{s.encode.base58}", ["hello", "", "Hello World!"])
add("{s.decode.base58}", ["Cn8eVZg", "0OIl", "2NEpo7TZRRrLZSi2U"])
add("{s.encode.base64}", ["abcd", "", "ab", "abc"])
add("{s.decode.base64}", ["YWJjZA==", "YWJjZA", "YWI=", "!!!!", "YQ", ""])
add("{s.encode.base64t}", ["abcd", "ab", "abc"])
add("{s.decode.base64t}", ["YWJjZA", "YWI", "YWJj"])
add("{s.encode.base64url}", ["abcd", "\u00fb\u00ff"])
add("{s.decode.base64url}", ["YWJjZA==", "YWI", "a+b=", ""])
add("{s.encode.base64urlt}", ["abcd"])
add("{s.decode.base64urlt}", ["YWJjZA", "YWI"])
add("{s.escape.common}", ["a'b\"c\\", "plain"])
add("{s.unescape.common}", ["a\\'b\\\"c\\\\d\\x", "x\\"])
add("{s.escape.user}", ["a b@c/d;e?f", "\u00e9"])
add("{s.unescape.user}", ["a%20b%40c", "a%0a", "a%2", "%41%4a"])
add("{s.escape.param}", ["a b;c:d[e]"])
add("{s.unescape.param}", ["a%3bb"])
add("{s.escape.csv}", ["a\"b", ""])
add("{s.prefixes}", ["1234", "", 56])
add("{s.prefixes,2}", ["1234"])
add("{s.prefixes,0}", ["1234"])
add("{s.prefixes.quoted}", ["123"])
add("{s.prefixes.quoted,2}", ["123"])
for a, b in [(1, 2), (1, 0), (4, 5), (6, 1), (-2, 0), (-4, 2), (-2, 5), (-6, 1), (-7, 1), (0, 6), (5, 1)]:
    add("{s.substr,%d,%d}" % (a, b), [S])
add("{s.substr,0,0}", [""])
add("{s.substr,1,2}", [12345])
add("{s.substr,$var(i),1}", [S], vars={"i": 2})
add("{s.substr,$var(i),1}", [S], vars={"i": "2"})
add("{s.substr, 1 , 2 }", [S])
for i in [0, 2, 3, -1, -3, -4]:
    add("{s.select,%d,,}" % i, ["a,b,c"])
for i in [0, 1, -1]:
    add("{s.select,%d,,}" % i, [",x,"])
add("{s.select,1,.}", ["a.b.c"])
add("{s.select,$var(i),.}", ["a.b.c"], vars={"i": -2})
for n in [1, 9, 0, -1]:
    add("{s.strip,%d}" % n, ["abcd"])
    add("{s.striptail,%d}" % n, ["abcd"])
add("{s.stripto,@}", ["abc@d", "abcd"])
add("{s.stripto,@x}", ["abc@d"])
add("{s.ftime,%s}", [86400, "86400", "12x"])
add("{s.ftime,%%}", [0])
add("{s.replace,.,::}", ["a.b.c", "abc"])
add("{s.replace,ab,X}", ["abcabc", "aab"])
add("{s.trim}", [" \t a b \r\n", "   ", "x"])
add("{s.rtrim}", [" a "])
add("{s.ltrim}", [" a "])
add("{s.rm,.}", ["a.b.c"])
add("{s.rm,ab}", ["abcab"])
add("{s.urlencode.param}", ["a b&c~/\u00e9"])
add("{s.urldecode.param}", ["a%20b+c%", "%zz", "%41%4", "%C3%A9"])
add("{s.unquote}", ["\"ab\"", "'ab'", "'ab\"", "a", "\"\""])
add("{s.unbracket}", ["<sip:a>", "(x]", "[y]", "{z}", "<"])
add("{s.count,,}", ["a,b,,c"])
add("{s.count,a}", ["banana", ""])
add("{s.before,@}", ["user@host", "userhost", "@x"])
add("{s.after,@}", ["user@host", "userhost", "x@"])
add("{s.rbefore,.}", ["a.b."])
add("{s.rafter,.}", ["a.b."])
add("{s.fmtlines,3,1}", ["abcdef"])
add("{s.fmtlinet,2,0}", ["abcdefgh"])
add("{s.fmtlines,10,2}", ["abc"])
add("{s.corehash}", ["abc", "", "abcdefghij", "\u00e9t\u00e9"])
add("{s.corehash,16}", ["abc", "Call-ID-123@host"])

URIS = [
    "sip:alice:pw@example.com:5070;transport=TCP;lr;ttl=5?subject=x",
    "sip:example.com:5060",
    "sip:example.com",
    "sip:alice;x=1@h",
    "sip:[2001:db8::1]:5060",
    "tel:+1-555;phone-context=x",
    "sip:+123;npdi@h;user=phone",
    "sips:bob@h",
    "sip:a@b;",
    "http://x",
    "sip:@h",
    "sip:a@b@c",
    "sip:a@h:99999",
    "sip:a@h:5x",
    "sip:a@h_x",
    "sip:a@h;maddr=1.2.3.4;method=INVITE;user=ip;r2=on;lr=on",
    "sip:a@h:05060",
    "urn:service:sos",
    "SIP:Bob@H;TRANSPORT=udp",
    "sip:h:",
    "sip:a@h;transport=ws",
    "sip:a@h;transport=sctp",
    "sip:h:5060;transport=tls",
]
for f in ["user", "host", "domain", "passwd", "port", "params", "headers", "transport", "ttl",
          "uparam", "maddr", "method", "lr", "r2", "scheme", "tosocket"]:
    add("{uri.%s}" % f, URIS)
add("{uri.param,x}", ["sip:a@h;x=1;Y=q;x=2;z", "sip:a@h"])
add("{uri.param,y}", ["sip:a@h;x=1;Y=q;x=2;z"])
add("{uri.param,z}", ["sip:a@h;x=1;Y=q;x=2;z"])
add("{uri.param,transport}", [URIS[0]])
add("{uri.user}", [12])
add("{uri.user}", [None], pv="avp(none)")
add("{s.len}", [None], pv="avp(none)")

PL = "a=1;b=2;A=3;c"
for n in ["a", "b", "c", "x"]:
    add("{param.value,%s}" % n, [PL])
for n in ["c", "x"]:
    add("{param.in,%s}" % n, [PL])
for i in [0, 1, -1, -2, 9, -9]:
    add("{param.valueat,%d}" % i, [PL])
    add("{param.name,%d}" % i, [PL])
add("{param.count}", [PL, "a=1;b;", "a", ";", "a;;b", " a=1"])
add("{param.value,b,|}", ["a=1|b=2"])
add("{param.count,|}", ["a=1|b=2"])
add("{param.count,,}", ["a=1,b=2"])
add("{param.value,a}", ["a=;b", "a = 1 ; b", "a=\"x;y\";b", "a='q'"])
add("{param.value,b}", ["a=1,b=2", "a=1;b=2;"])

NA = ["\"Alice\" <sip:alice@h>;tag=1", "sip:a@h", "<sip:a@h", "\"a<b\" <sip:x@y>", "Bob <sip:b@h> x"]
for f in ["name", "uri", "len"]:
    add("{nameaddr.%s}" % f, NA)

TB = [
    "\"Alice A\" <sip:alice@example.com;transport=udp>;tag=abc;x=1",
    "sip:bob@h;tag=9",
    "Bob Smith <sip:bob@h>",
    "<sip:bob@h>",
    "Bob Smith",
    "<sip:bob@h",
    "<http://x>",
    "  <sip:a@b> ; tag = 5 ",
    "<sip:a@b>;tag=1;tag=2",
    "<sip:a@b>;x",
    "<sip:a@b>;;x",
    "\"A\\\"q\" <sip:a@b>",
    "tel:+123;tag=x",
]
for f in ["uri", "tag", "user", "host", "params", "display"]:
    add("{tobody.%s}" % f, TB)

SDP = "v=0\r\no=x\r\ns=-\r\n"
for n in [0, 1, 2, 3, 4, -1, -2, -3, -4]:
    add("{line.at,%d}" % n, [SDP])
for n in [0, 1, -1, -2, -3]:
    add("{line.at,%d}" % n, ["a\n\nb"])
add("{line.count}", [SDP, "a\nb", "a", "\n"])
add("{line.sw,o=}", [SDP])
add("{line.sw,m=}", [SDP])
add("{line.sw,abc}", ["ab"])
add("{line.sw,v}", ["x\nv1\r\nv2"])

add("{re.subst,/a/b/}", ["banana"])
add("{re.subst,/a/b/g}", ["banana"])
add("{re.subst,/A/b/gi}", ["bAnana"])
add("{re.subst,/x/y/}", ["banana"])
add("{re.subst,/^b/X/g}", ["ab\nbc"])
add("{re.subst,/^b/X/gs}", ["ab\nbc"])
add("{re.subst,/x*/y/}", ["abc"])
add("{re.subst,/(a)(n)/[\\2\\1]/g}", ["banana"])
add("{re.subst,/n/$var(r)/g}", ["banana"], vars={"r": "<N>"})
add("{re.subst,/a|an/X/}", ["banana"])
add("{re.subst,/b.*a/X/}", ["banana x"])

add("{urialias.encode}", ["sip:1.2.3.4:5070;transport=tcp", "sip:1.2.3.4", "sip:h;transport=tls", "bad"])
add("{urialias.decode}", ["1.2.3.4~5070~2", "1.2.3.4~5060~1", "1.2.3.4~5060~9", "h~5~0"])

SOCK = ["udp:1.2.3.4:5060", "tcp:h:5", "h:5", "tls:h", "[::1]:5060", "xyz:h", "a:b:c:d", "h", "UDP:h:1"]
for f in ["host", "port", "proto", "touri"]:
    add("{sock.%s}" % f, SOCK)

add("{s.len}{s.int}", ["abc"])
add("{s.len} {s.int}", ["abc"])
add("{s.LEN}", ["abc"])
add("{s. len }", ["abc"])

print(json.dumps(cases, indent=0))
