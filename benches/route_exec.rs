//! Whole-message processing through the native engine, offline: parse, run
//! `examples/kamailio.cfg`'s request_route on the register VM with the real modules, build
//! the reply and hand it to a recording transport — and the same routing in Lua
//! (`examples/kamailio-lua.cfg`). Prints the time per message for each engine.

use bytes::Bytes;
use compiler::frontend::parse_file;
use compiler::preprocess::Options;
use criterion::{Criterion, criterion_group, criterion_main};
use runtime::native::NativeFactory;
use runtime::offline::Harness;
use std::sync::Arc;

fn harness(cfg: &str) -> Harness {
    harness_with(cfg, false)
}

fn harness_with(cfg: &str, lua: bool) -> Harness {
    let r = parse_file(std::path::Path::new(cfg), &Options::default()).expect("read cfg");
    let config = r.config.expect("parsed");
    let setup = runtime::Setup::from_config(&config).unwrap_or_else(|_| panic!("setup"));
    let program = compiler::lower::compile(&config, &setup.table, &setup.pvs)
        .unwrap_or_else(|_| panic!("compile"));
    if lua {
        let root = env!("CARGO_MANIFEST_DIR");
        let factory = engines::lua::LuaFactory {
            script: format!("{root}/examples/kamailio.lua").into(),
        };
        return Harness::new(setup, &factory).expect("harness");
    }
    let factory = NativeFactory {
        program: Arc::new(program),
    };
    Harness::new(setup, &factory).expect("harness")
}

fn options(port: u16) -> Bytes {
    Bytes::from(format!(
        "OPTIONS sip:bob@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-1;rport\r\nFrom: <sip:alice@127.0.0.1>;tag=a1\r\nTo: <sip:bob@127.0.0.1>\r\nCall-ID: bench-1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ))
}

fn route_exec(c: &mut Criterion) {
    runtime::log::set_level(-1);
    let root = env!("CARGO_MANIFEST_DIR");
    let mut h = harness(&format!("{root}/examples/kamailio.cfg"));
    let port = h
        .core
        .listeners
        .first()
        .map(|l| l.addr.port())
        .unwrap_or(5060);
    let msg = options(port);
    let src = "127.0.0.1:5999".parse().expect("addr");
    c.bench_function("native/options_200", |b| {
        b.iter(|| {
            h.feed(msg.clone(), src);
            h.take_sent()
        })
    });
    let mut l = harness_with(&format!("{root}/examples/kamailio-lua.cfg"), true);
    c.bench_function("lua/options_200", |b| {
        b.iter(|| {
            l.feed(msg.clone(), src);
            l.take_sent()
        })
    });
}

criterion_group!(benches, route_exec);
criterion_main!(benches);
