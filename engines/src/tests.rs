//! The three KEMI engines on the same offline server: replies, return conversions, exit,
//! exceptions and deep recursion (the worker goes on), reload through the RPC registry,
//! load errors.

use bytes::Bytes;
use runtime::engine::EngineFactory;
use runtime::offline::Harness;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Eng {
    Lua,
    Python,
    Js,
}

const ALL: [Eng; 3] = [Eng::Lua, Eng::Python, Eng::Js];

impl Eng {
    fn ext(self) -> &'static str {
        match self {
            Eng::Lua => "lua",
            Eng::Python => "py",
            Eng::Js => "js",
        }
    }

    fn module(self) -> &'static str {
        match self {
            Eng::Lua => "app_lua",
            Eng::Python => "app_python3",
            Eng::Js => "app_jsdt",
        }
    }

    fn cfgengine(self) -> &'static str {
        match self {
            Eng::Lua => "lua",
            Eng::Python => "python",
            Eng::Js => "jsdt",
        }
    }

    fn reload_rpc(self) -> &'static str {
        match self {
            Eng::Lua => "app_lua.reload",
            Eng::Python => "app_python.reload",
            Eng::Js => "app_jsdt.reload",
        }
    }

    /// A script whose request route runs `body` (engine syntax, one statement per line,
    /// indented for Python's method body).
    fn script(self, body: &str, extra: &str) -> String {
        match self {
            Eng::Lua => format!("{extra}\nfunction ksr_request_route()\n{body}\nend\n"),
            Eng::Js => format!("{extra}\nfunction ksr_request_route() {{\n{body}\n}}\n"),
            Eng::Python => {
                let body: String = body.lines().map(|l| format!("        {l}\n")).collect();
                let extra: String = extra.lines().map(|l| format!("    {l}\n")).collect();
                format!(
                    "import KSR\nimport sys\n\ndef mod_init():\n    KSR.info('mod_init\\n')\n    return H()\n\nclass H:\n    def child_init(self, rank):\n        return 0\n\n{extra}\n    def ksr_request_route(self, msg):\n{body}        return 1\n"
                )
            }
        }
    }
}

static N: AtomicU32 = AtomicU32::new(0);

fn tempfile(ext: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ksr-engines-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    dir.join(format!("s{}.{ext}", N.fetch_add(1, Ordering::SeqCst)))
}

/// An offline server running `script` with engine `e`.
fn harness(e: Eng, script: &Path) -> Result<Harness, String> {
    let cfg = format!(
        "listen=udp:127.0.0.1:5060\nloadmodule \"pv.so\"\nloadmodule \"sl.so\"\nloadmodule \"xlog.so\"\nloadmodule \"kemix.so\"\nloadmodule \"textops.so\"\nloadmodule \"{m}.so\"\nmodparam(\"{m}\", \"load\", \"{s}\")\ncfgengine \"{c}\"\n",
        m = e.module(),
        s = script.display(),
        c = e.cfgengine()
    );
    let r = compiler::frontend::parse_str("test.cfg", &cfg, &Default::default());
    let config = r.config.ok_or("parse")?;
    let setup = runtime::Setup::from_config(&config).map_err(|_| "setup".to_string())?;
    let factory: Box<dyn EngineFactory> = match e {
        Eng::Lua => Box::new(crate::lua::LuaFactory {
            script: script.to_path_buf(),
        }),
        Eng::Python => Box::new(crate::python::PythonFactory {
            opts: crate::python::PythonOptions {
                script: script.to_path_buf(),
                mod_init: "mod_init".into(),
                child_init: "child_init".into(),
            },
        }),
        Eng::Js => Box::new(crate::js::JsFactory {
            script: script.to_path_buf(),
        }),
    };
    Harness::new(setup, factory.as_ref())
}

fn start(e: Eng, body: &str, extra: &str) -> (Harness, PathBuf) {
    let path = tempfile(e.ext());
    std::fs::write(&path, e.script(body, extra)).expect("write script");
    let h = harness(e, &path).unwrap_or_else(|err| panic!("{e:?}: {err}"));
    (h, path)
}

/// Feeds an OPTIONS with `callid` and returns the status lines sent back.
fn feed(h: &mut Harness, callid: &str) -> Vec<String> {
    let m = format!(
        "OPTIONS sip:bob@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-{callid};rport\r\nFrom: <sip:alice@127.0.0.1>;tag=a1\r\nTo: <sip:bob@127.0.0.1>\r\nCall-ID: {callid}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    h.feed(Bytes::from(m), "127.0.0.1:5999".parse().expect("addr"));
    h.take_sent()
        .into_iter()
        .map(|(_, b)| {
            String::from_utf8_lossy(&b)
                .split("\r\n")
                .next()
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

fn reply(e: Eng, code: u32, reason: &str) -> String {
    match e {
        Eng::Lua | Eng::Python => format!("KSR.sl.sl_send_reply({code}, {reason})"),
        Eng::Js => format!("KSR.sl.sl_send_reply({code}, {reason});"),
    }
}

#[test]
fn replies_and_return_conversions() {
    for e in ALL {
        // bool, str and none results, rendered by the script into the reason phrase.
        let reason = match e {
            Eng::Lua => {
                "tostring(KSR.is_myself_ruri()) .. '-' .. KSR.pv.get('$rm') .. '-' .. tostring(KSR.pv.get('$avp(nothing)'))"
            }
            Eng::Python => {
                "str(KSR.is_myself_ruri()).lower() + '-' + KSR.pv.get('$rm') + '-' + str(KSR.pv.get('$avp(nothing)'))"
            }
            Eng::Js => {
                "String(KSR.is_myself_ruri()) + '-' + KSR.pv.get('$rm') + '-' + String(KSR.pv.get('$avp(nothing)'))"
            }
        };
        let (mut h, _) = start(e, &reply(e, 200, reason), "");
        let want = match e {
            Eng::Lua => "SIP/2.0 200 true-OPTIONS-nil",
            Eng::Python => "SIP/2.0 200 true-OPTIONS-None",
            Eng::Js => "SIP/2.0 200 true-OPTIONS-undefined",
        };
        assert_eq!(feed(&mut h, "c1"), vec![want.to_string()], "{e:?}");
    }
}

#[test]
fn exit_stops_the_run() {
    for e in ALL {
        let body = match e {
            Eng::Lua => {
                "KSR.sl.sl_send_reply(200, 'A')\nKSR.x.exit()\nKSR.sl.sl_send_reply(500, 'B')"
            }
            Eng::Python => {
                "KSR.sl.sl_send_reply(200, 'A')\nKSR.x.exit()\nKSR.sl.sl_send_reply(500, 'B')"
            }
            Eng::Js => {
                "KSR.sl.sl_send_reply(200, 'A');\nKSR.x.exit();\nKSR.sl.sl_send_reply(500, 'B');"
            }
        };
        let (mut h, _) = start(e, body, "");
        assert_eq!(
            feed(&mut h, "x1"),
            vec!["SIP/2.0 200 A".to_string()],
            "{e:?}"
        );
        assert_eq!(
            feed(&mut h, "x2"),
            vec!["SIP/2.0 200 A".to_string()],
            "{e:?}"
        );
    }
    // Python's own convention: sys.exit() in the handler.
    let (mut h, _) = start(
        Eng::Python,
        "KSR.sl.sl_send_reply(200, 'A')\nsys.exit()\nKSR.sl.sl_send_reply(500, 'B')",
        "",
    );
    assert_eq!(feed(&mut h, "x3"), vec!["SIP/2.0 200 A".to_string()]);
}

#[test]
fn exceptions_are_logged_and_the_worker_goes_on() {
    for e in ALL {
        let body = match e {
            Eng::Lua => {
                "if KSR.pv.get('$ci') == 'boom' then error('boom') end\nKSR.sl.sl_send_reply(200, 'OK')"
            }
            Eng::Python => {
                "if KSR.pv.get('$ci') == 'boom':\n    raise ValueError('boom')\nKSR.sl.sl_send_reply(200, 'OK')"
            }
            Eng::Js => {
                "if (KSR.pv.get('$ci') == 'boom') { throw new Error('boom'); }\nKSR.sl.sl_send_reply(200, 'OK');"
            }
        };
        let (mut h, _) = start(e, body, "");
        assert!(feed(&mut h, "boom").is_empty(), "{e:?}");
        assert_eq!(
            feed(&mut h, "fine"),
            vec!["SIP/2.0 200 OK".to_string()],
            "{e:?}"
        );
    }
}

#[test]
fn wrong_argument_types_raise_in_python() {
    let (mut h, _) = start(
        Eng::Python,
        "if KSR.pv.get('$ci') == 'bad':\n    KSR.sl.sl_send_reply('200', 'OK')\nKSR.sl.sl_send_reply(200, 'OK')",
        "",
    );
    assert!(feed(&mut h, "bad").is_empty());
    assert_eq!(feed(&mut h, "good"), vec!["SIP/2.0 200 OK".to_string()]);
}

#[test]
fn infinite_recursion_ends_the_run_only() {
    for e in ALL {
        let (body, extra) = match e {
            Eng::Lua => (
                "if KSR.pv.get('$ci') == 'deep' then down(1) end\nKSR.sl.sl_send_reply(200, 'OK')",
                "function down(n) return down(n + 1) + 1 end",
            ),
            Eng::Python => (
                "if KSR.pv.get('$ci') == 'deep':\n    self.down(1)\nKSR.sl.sl_send_reply(200, 'OK')",
                "def down(self, n):\n    return self.down(n + 1) + 1",
            ),
            Eng::Js => (
                "if (KSR.pv.get('$ci') == 'deep') { down(1); }\nKSR.sl.sl_send_reply(200, 'OK');",
                "function down(n) { return down(n + 1) + 1; }",
            ),
        };
        let (mut h, _) = start(e, body, extra);
        assert!(feed(&mut h, "deep").is_empty(), "{e:?}");
        assert_eq!(
            feed(&mut h, "after"),
            vec!["SIP/2.0 200 OK".to_string()],
            "{e:?}"
        );
    }
}

#[test]
fn reload_through_the_rpc_registry() {
    for e in ALL {
        let (mut h, path) = start(e, &reply(e, 200, "'v1'"), "");
        assert_eq!(feed(&mut h, "r1"), vec!["SIP/2.0 200 v1".to_string()]);
        std::fs::write(&path, e.script(&reply(e, 200, "'v2'"), "")).expect("write");
        // Not reloaded until asked.
        assert_eq!(feed(&mut h, "r2"), vec!["SIP/2.0 200 v1".to_string()]);
        let core = h.core;
        let r = core
            .rpc
            .call(core, e.reload_rpc(), &[])
            .expect("reload rpc");
        assert_eq!(r["new"], 1, "{e:?}");
        assert_eq!(
            feed(&mut h, "r3"),
            vec!["SIP/2.0 200 v2".to_string()],
            "{e:?}"
        );
        // A broken script is refused and the old code keeps serving.
        std::fs::write(&path, "this is not a script (").expect("write");
        core.rpc
            .call(core, e.reload_rpc(), &[])
            .expect("reload rpc");
        assert_eq!(
            feed(&mut h, "r4"),
            vec!["SIP/2.0 200 v2".to_string()],
            "{e:?}"
        );
        let list = core
            .rpc
            .call(core, &e.reload_rpc().replace("reload", "api_list"), &[])
            .expect("api_list");
        assert!(list["msize"].as_u64().unwrap_or(0) > 10, "{e:?}");
    }
}

#[test]
fn load_errors_name_the_script() {
    for e in ALL {
        let path = tempfile(e.ext());
        std::fs::write(&path, "\n\nthis is ( not valid\n").expect("write");
        let err = harness(e, &path).err().expect("syntax error refused");
        assert!(err.contains(&path.display().to_string()), "{e:?}: {err}");
        assert!(err.contains('3'), "{e:?}: line 3 named: {err}");
        // No request route.
        let empty = match e {
            Eng::Lua => "function other() end\n",
            Eng::Python => {
                "def mod_init():\n    return H()\nclass H:\n    def child_init(self, rank):\n        return 0\n"
            }
            Eng::Js => "function other() {}\n",
        };
        std::fs::write(&path, empty).expect("write");
        let err = harness(e, &path).err().expect("missing entry refused");
        assert!(err.contains("ksr_request_route"), "{e:?}: {err}");
    }
    let path = tempfile("py");
    std::fs::write(&path, "x = 1\n").expect("write");
    let err = harness(Eng::Python, &path).err().expect("no mod_init");
    assert!(err.contains("mod_init"), "{err}");
}

#[test]
fn callbacks_by_name() {
    use runtime::engine::RouteTarget;
    for e in ALL {
        let extra = match e {
            Eng::Lua => {
                "function my_failure() return 5 end\nfunction my_event(name) if name == 'my_event' then return 7 end return 0 end"
            }
            Eng::Python => {
                "def my_failure(self, msg):\n    return 5\ndef my_event(self, msg, name):\n    return 7 if name == 'my_event' else 0"
            }
            Eng::Js => {
                "function my_failure() { return 5; }\nfunction my_event(name) { return name == 'my_event' ? 7 : 0; }"
            }
        };
        let (mut h, _) = start(e, &reply(e, 200, "'OK'"), extra);
        feed(&mut h, "cb");
        let out = h.ctx.run_route(RouteTarget::Failure("my_failure"));
        assert_eq!(
            (out.code, out.missing, out.exit),
            (5, false, false),
            "{e:?}"
        );
        // Event callbacks get the event name as their argument.
        let out = h.ctx.run_route(RouteTarget::Event("my_event"));
        assert_eq!((out.code, out.missing), (7, false), "{e:?}");
        let out = h.ctx.run_route(RouteTarget::Event("no_such_callback"));
        assert!(out.missing, "{e:?}");
        let eng = h.ctx.engine.clone().expect("engine");
        assert!(eng.exists(RouteTarget::Failure("my_failure")), "{e:?}");
        assert!(!eng.exists(RouteTarget::Branch("nothing_here")), "{e:?}");
        assert!(!eng.exists(RouteTarget::OnSend), "{e:?}");
    }
}

#[test]
fn python_is_debians_cpython() {
    // The binary must load the libpython it was built against (python3-dev, /usr), not a
    // pyenv or virtualenv interpreter found on PATH.
    let (mut h, _) = start(
        Eng::Python,
        "import sysconfig\nKSR.sl.sl_send_reply(200, sys.base_prefix + ' ' + sysconfig.get_config_var('LIBDIR'))",
        "",
    );
    assert_eq!(
        feed(&mut h, "py"),
        vec!["SIP/2.0 200 /usr /usr/lib/x86_64-linux-gnu".to_string()]
    );
}

#[test]
fn modf_runs_cfg_functions_by_name() {
    for e in ALL {
        let body = match e {
            Eng::Lua => {
                "if KSR.x.modf('no_such_function', 'x') == -1 then\n    KSR.x.modf('sl_send_reply', '200', 'Modf')\nend"
            }
            Eng::Python => {
                "if KSR.x.modf('no_such_function', 'x') == -1:\n    KSR.x.modf('sl_send_reply', '200', 'Modf')"
            }
            Eng::Js => {
                "if (KSR.x.modf('no_such_function', 'x') == -1) {\n    KSR.x.modf('sl_send_reply', '200', 'Modf');\n}"
            }
        };
        let (mut h, _) = start(e, body, "");
        assert_eq!(
            feed(&mut h, "m1"),
            vec!["SIP/2.0 200 Modf".to_string()],
            "{e:?}"
        );
    }
}
