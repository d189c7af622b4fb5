//! End to end, the KEMI engines in the real `ksr` binary over UDP on 127.0.0.1: a script
//! that raises, one that calls `KSR.x.exit()`, one that recurses forever — the worker logs
//! the error (with file and line) and keeps serving; `ksr check` reporting a syntax error or a
//! missing entry point in a Python or JavaScript script; reload through `ksr rpc`; `ksr api
//! --format pyi|dts`; `ksr bench` running the four engines' example configs side by side.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ksr-engines-e2e-{tag}-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&d);
    d
}

/// A cfg running `script` with engine `engine` (module `module`), `children=2`.
fn cfg(dir: &Path, module: &str, engine: &str, script: &Path) -> PathBuf {
    let c = dir.join(format!("{engine}.cfg"));
    std::fs::write(
        &c,
        format!(
            "#!trydef PORT 5060\ndebug=2\nlog_stderror=yes\nchildren=2\nlisten=udp:127.0.0.1:PORT\nloadmodule \"pv.so\"\nloadmodule \"sl.so\"\nloadmodule \"kemix.so\"\nloadmodule \"{module}.so\"\nmodparam(\"{module}\", \"load\", \"{}\")\ncfgengine \"{engine}\"\n",
            script.display()
        ),
    )
    .expect("write cfg");
    c
}

const PY: &str = r#"import KSR
import sys

def mod_init():
    return Handler()

class Handler:
    def child_init(self, rank):
        return 0

    def deep(self, n):
        return self.deep(n + 1) + 1

    def ksr_request_route(self, msg):
        ci = KSR.pv.get("$ci")
        if ci == "raise":
            raise RuntimeError("scripted failure")
        if ci == "deep":
            self.deep(0)
        if ci == "exit":
            KSR.sl.sl_send_reply(200, "Exited")
            KSR.x.exit()
        if ci == "sysexit":
            KSR.sl.sl_send_reply(200, "Exited")
            sys.exit()
        KSR.sl.sl_send_reply(200, "Alive")
        return 1
"#;

const JS: &str = r#"function deep(n) { return deep(n + 1) + 1; }

function ksr_request_route() {
    var ci = KSR.pv.get("$ci");
    if (ci == "raise") {
        throw new Error("scripted failure");
    }
    if (ci == "deep") {
        deep(0);
    }
    if (ci == "exit" || ci == "sysexit") {
        KSR.sl.sl_send_reply(200, "Exited");
        KSR.x.exit();
    }
    KSR.sl.sl_send_reply(200, "Alive");
    return 1;
}
"#;

/// Sends `callid`'s OPTIONS and returns the reply's status line (None when no reply).
fn status(s: &Server, callid: &str) -> Option<String> {
    let c = client();
    let m = request(
        "OPTIONS",
        &format!("sip:bob@127.0.0.1:{}", s.port),
        &c,
        callid,
        "",
    );
    c.send_to(m.as_bytes(), ("127.0.0.1", s.port)).ok()?;
    recv(&c, 700).map(|r| status_line(&r).to_string())
}

fn misbehaving_scripts_do_not_stop_the_server(module: &str, engine: &str, ext: &str, code: &str) {
    let d = dir(engine);
    let script = d.join(format!("script.{ext}"));
    std::fs::write(&script, code).expect("write script");
    let s = start_ksr(&cfg(&d, module, engine, &script), &[]);
    // Twice each, so both workers have met every case.
    for _ in 0..2 {
        assert_eq!(status(&s, "raise"), None, "{engine}: no reply after raise");
        assert_eq!(
            status(&s, "deep"),
            None,
            "{engine}: no reply after recursion"
        );
        assert_eq!(
            status(&s, "exit").as_deref(),
            Some("SIP/2.0 200 Exited"),
            "{engine}"
        );
        assert_eq!(
            status(&s, "sysexit").as_deref(),
            Some("SIP/2.0 200 Exited"),
            "{engine}"
        );
        assert_eq!(
            status(&s, "fine").as_deref(),
            Some("SIP/2.0 200 Alive"),
            "{engine}"
        );
    }
    let log = std::fs::read_to_string(s.dir.join("ksr.log")).unwrap_or_default();
    assert!(log.contains("scripted failure"), "{engine}: {log}");
    // The error names the script file and the line that raised.
    let line = code
        .lines()
        .position(|l| l.contains("scripted failure"))
        .map(|i| i + 1)
        .unwrap_or(0);
    assert!(
        log.contains(&format!("script.{ext}\", line {line}"))
            || log.contains(&format!("script.{ext}:{line}")),
        "{engine}: line {line} not in {log}"
    );
}

#[test]
fn python_errors_exit_and_recursion_keep_the_server_serving() {
    misbehaving_scripts_do_not_stop_the_server("app_python3", "python", "py", PY);
}

#[test]
fn js_errors_exit_and_recursion_keep_the_server_serving() {
    misbehaving_scripts_do_not_stop_the_server("app_jsdt", "jsdt", "js", JS);
}

fn check(module: &str, engine: &str, ext: &str, name: &str, code: &str) -> (bool, String) {
    let d = dir(&format!("check-{engine}-{name}"));
    let script = d.join(format!("{name}.{ext}"));
    std::fs::write(&script, code).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_ksr"))
        .args(["check", "-f"])
        .arg(cfg(&d, module, engine, &script))
        .output()
        .expect("ksr check");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_loads_python_and_js_scripts() {
    let (ok, err) = check("app_python3", "python", "py", "good", PY);
    assert!(ok, "{err}");
    let (ok, err) = check("app_jsdt", "jsdt", "js", "good", JS);
    assert!(ok, "{err}");

    let (ok, err) = check(
        "app_python3",
        "python",
        "py",
        "misspelled",
        "def mod_init():\n    return H()\nclass H:\n    def child_init(self, r):\n        return 0\n    def ksr_request_rout(self, msg):\n        return 1\n",
    );
    assert!(!ok);
    assert!(err.contains("no method ksr_request_route()"), "{err}");
    let (ok, err) = check(
        "app_jsdt",
        "jsdt",
        "js",
        "misspelled",
        "function ksr_request_rout() {}\n",
    );
    assert!(!ok);
    assert!(err.contains("no function ksr_request_route()"), "{err}");

    let (ok, err) = check("app_python3", "python", "py", "broken", "def mod_init(:\n");
    assert!(!ok);
    assert!(
        err.contains("broken.py") && err.contains("SyntaxError"),
        "{err}"
    );
    let (ok, err) = check(
        "app_jsdt",
        "jsdt",
        "js",
        "broken",
        "function ksr_request_route( {\n",
    );
    assert!(!ok);
    assert!(
        err.contains("broken.js") && err.contains("SyntaxError"),
        "{err}"
    );
}

fn api(format: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_ksr"))
        .args(["api", "--format", format])
        .output()
        .expect("ksr api");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn api_stubs_for_python_and_typescript() {
    let pyi = api("pyi");
    assert!(pyi.contains("class _sl:\n"));
    assert!(pyi.contains("    @staticmethod\n    def sl_send_reply(p0: int, p1: str) -> int: ..."));
    assert!(pyi.contains("\nsl: _sl\n"));
    assert!(pyi.contains("def modf(name: str, *args: str) -> int: ..."));
    // The stub is valid Python.
    let d = dir("api");
    let f = d.join("KSR.pyi");
    std::fs::write(&f, &pyi).expect("write");
    let ok = Command::new("python3")
        .args(["-c", "import ast,sys; ast.parse(open(sys.argv[1]).read())"])
        .arg(&f)
        .status()
        .expect("python3");
    assert!(ok.success(), "KSR.pyi does not parse");

    let dts = api("dts");
    assert!(dts.starts_with("// KSR declarations"));
    assert!(dts.contains("    namespace sl {\n"));
    assert!(dts.contains("        function sl_send_reply(p0: number, p1: string): number;\n"));
    assert!(dts.contains("function exit(): never;"));
    assert_eq!(dts.matches('{').count(), dts.matches('}').count());
    for l in dts
        .lines()
        .filter(|l| l.trim_start().starts_with("function "))
    {
        assert!(l.ends_with(';'), "{l}");
    }
}

#[test]
fn bench_compares_the_four_engines() {
    let out = Command::new(env!("CARGO_BIN_EXE_ksr"))
        .current_dir(root())
        .args(["bench", "-n", "3", "-w", "2", "--json"])
        .args([
            "-f",
            "examples/kamailio.cfg",
            "-f",
            "examples/kamailio-lua.cfg",
        ])
        .args([
            "-f",
            "examples/kamailio-python.cfg",
            "-f",
            "examples/kamailio-jsdt.cfg",
        ])
        .output()
        .expect("ksr bench");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = &text[text.find('[').expect("json")..];
    let v: serde_json::Value = serde_json::from_str(json).expect("bench json");
    let engines: Vec<&str> = v
        .as_array()
        .expect("array")
        .iter()
        .map(|r| r["engine"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(engines, ["native", "lua", "python", "jsdt"]);
    for r in v.as_array().into_iter().flatten() {
        // 6 corpus messages x 3 passes x 2 workers.
        assert_eq!(r["messages"], 36, "{r}");
        assert_eq!(r["workers"], 2, "{r}");
    }
}

/// `ksr rpc -s SOCK method` against a running server; the reply document.
fn ksr_rpc(sock: &Path, method: &str) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_ksr"))
        .arg("rpc")
        .arg("-s")
        .arg(sock)
        .arg(method)
        .output()
        .expect("ksr rpc");
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "bad reply {text:?} ({e}); stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn reload_through_ksr_rpc() {
    for (module, engine, ext, rpc, v1, v2) in [
        (
            "app_lua",
            "lua",
            "lua",
            "app_lua.reload",
            "function ksr_request_route() KSR.sl.sl_send_reply(200, 'v1') end\n",
            "function ksr_request_route() KSR.sl.sl_send_reply(200, 'v2') end\n",
        ),
        (
            "app_python3",
            "python",
            "py",
            "app_python.reload",
            "import KSR\ndef mod_init():\n    return H()\nclass H:\n    def child_init(self, r):\n        return 0\n    def ksr_request_route(self, msg):\n        KSR.sl.sl_send_reply(200, 'v1')\n        return 1\n",
            "import KSR\ndef mod_init():\n    return H()\nclass H:\n    def child_init(self, r):\n        return 0\n    def ksr_request_route(self, msg):\n        KSR.sl.sl_send_reply(200, 'v2')\n        return 1\n",
        ),
        (
            "app_jsdt",
            "jsdt",
            "js",
            "app_jsdt.reload",
            "function ksr_request_route() { KSR.sl.sl_send_reply(200, 'v1'); }\n",
            "function ksr_request_route() { KSR.sl.sl_send_reply(200, 'v2'); }\n",
        ),
    ] {
        let d = dir(&format!("reload-{engine}"));
        let script = d.join(format!("reload.{ext}"));
        std::fs::write(&script, v1).expect("write");
        let sock = d.join("rpc.sock");
        let c = cfg(&d, module, engine, &script);
        let mut text = std::fs::read_to_string(&c).expect("cfg");
        text = text.replace(
            "cfgengine",
            &format!(
                "loadmodule \"jsonrpcs.so\"\nmodparam(\"jsonrpcs\", \"transport\", 4)\nmodparam(\"jsonrpcs\", \"dgram_socket\", \"{}\")\ncfgengine",
                sock.display()
            ),
        );
        std::fs::write(&c, text).expect("cfg");
        let s = start_ksr(&c, &[]);
        // Both workers serve v1, and keep doing so after the file changed.
        for i in 0..4 {
            assert_eq!(
                status(&s, &format!("a{i}")).as_deref(),
                Some("SIP/2.0 200 v1")
            );
        }
        std::fs::write(&script, v2).expect("write");
        assert_eq!(
            status(&s, "b").as_deref(),
            Some("SIP/2.0 200 v1"),
            "{engine}"
        );
        let r = ksr_rpc(&sock, rpc);
        assert_eq!(r["result"]["new"], 1, "{engine}: {r}");
        // Every worker reloads before its next message.
        for i in 0..4 {
            assert_eq!(
                status(&s, &format!("c{i}")).as_deref(),
                Some("SIP/2.0 200 v2"),
                "{engine}"
            );
        }
    }
}

/// Reload under a steady load (Lua, Python, JS): a client sends requests one after another
/// while the script is replaced by a new version and then by a broken one, each followed by
/// the engine's reload RPC. No request goes unanswered; every request sent after the first
/// reload returned is answered by the new code, and the broken script changes nothing.
#[test]
fn reload_under_load_switches_once_and_survives_a_broken_script() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    for (module, engine, ext, rpc, v1, v2, broken) in [
        (
            "app_lua",
            "lua",
            "lua",
            "app_lua.reload",
            "function ksr_request_route() KSR.sl.sl_send_reply(200, 'v1') end\n",
            "function ksr_request_route() KSR.sl.sl_send_reply(200, 'v2') end\n",
            "function ksr_request_route( KSR.sl.sl_send_reply(200, 'v3')\n",
        ),
        (
            "app_python3",
            "python",
            "py",
            "app_python.reload",
            "import KSR\ndef mod_init():\n    return H()\nclass H:\n    def child_init(self, r):\n        return 0\n    def ksr_request_route(self, msg):\n        KSR.sl.sl_send_reply(200, 'v1')\n        return 1\n",
            "import KSR\ndef mod_init():\n    return H()\nclass H:\n    def child_init(self, r):\n        return 0\n    def ksr_request_route(self, msg):\n        KSR.sl.sl_send_reply(200, 'v2')\n        return 1\n",
            "import KSR\ndef mod_init(:\n",
        ),
        (
            "app_jsdt",
            "jsdt",
            "js",
            "app_jsdt.reload",
            "function ksr_request_route() { KSR.sl.sl_send_reply(200, 'v1'); }\n",
            "function ksr_request_route() { KSR.sl.sl_send_reply(200, 'v2'); }\n",
            "function ksr_request_route() { KSR.sl.sl_send_reply(200, 'v3');\n",
        ),
    ] {
        let d = dir(&format!("reload-load-{engine}"));
        let script = d.join(format!("reload.{ext}"));
        std::fs::write(&script, v1).expect("write");
        let sock = d.join("rpc.sock");
        let c = cfg(&d, module, engine, &script);
        let mut text = std::fs::read_to_string(&c).expect("cfg");
        text = text.replace(
            "cfgengine",
            &format!(
                "loadmodule \"jsonrpcs.so\"\nmodparam(\"jsonrpcs\", \"transport\", 4)\nmodparam(\"jsonrpcs\", \"dgram_socket\", \"{}\")\ncfgengine",
                sock.display()
            ),
        );
        std::fs::write(&c, text).expect("cfg");
        let s = start_ksr(&c, &[]);
        let port = s.port;
        let sent = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        // (sequence number, status line or None when unanswered)
        type Answers = Vec<(usize, Option<String>)>;
        let log: Arc<Mutex<Answers>> = Arc::new(Mutex::new(Vec::new()));
        let load = {
            let (sent, stop, log) = (sent.clone(), stop.clone(), log.clone());
            std::thread::spawn(move || {
                let c = client();
                for i in 0..3000 {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let m = request(
                        "OPTIONS",
                        &format!("sip:bob@127.0.0.1:{port}"),
                        &c,
                        &format!("load-{i}"),
                        "",
                    );
                    sent.store(i, Ordering::SeqCst);
                    let _ = c.send_to(m.as_bytes(), ("127.0.0.1", port));
                    let r = recv(&c, 1000).map(|r| status_line(&r).to_string());
                    log.lock().unwrap().push((i, r));
                }
            })
        };
        let wait_for = |n: usize| {
            for _ in 0..500 {
                if sent.load(Ordering::SeqCst) >= n {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        };
        wait_for(100);
        std::fs::write(&script, v2).expect("write");
        let r = ksr_rpc(&sock, rpc);
        assert!(r.get("error").is_none(), "{engine}: {r}");
        let after_reload = sent.load(Ordering::SeqCst) + 1;
        wait_for(after_reload + 100);
        std::fs::write(&script, broken).expect("write");
        let r = ksr_rpc(&sock, rpc);
        assert!(r.get("error").is_none(), "{engine}: {r}");
        let after_broken = sent.load(Ordering::SeqCst) + 1;
        wait_for(after_broken + 100);
        stop.store(true, Ordering::SeqCst);
        load.join().expect("load thread");
        let log = log.lock().unwrap();
        assert!(log.len() >= 300, "{engine}: only {} requests", log.len());
        for (i, r) in log.iter() {
            let want = if *i < 100 {
                Some("SIP/2.0 200 v1")
            } else if *i >= after_reload {
                Some("SIP/2.0 200 v2")
            } else {
                None
            };
            let got = r.as_deref();
            assert!(got.is_some(), "{engine}: request {i} unanswered");
            if let Some(w) = want {
                assert_eq!(got, Some(w), "{engine}: request {i}");
            } else {
                assert!(
                    matches!(got, Some("SIP/2.0 200 v1") | Some("SIP/2.0 200 v2")),
                    "{engine}: request {i}: {got:?}"
                );
            }
        }
    }
}
