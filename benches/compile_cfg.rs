//! Compile time of Debian's default `kamailio.cfg` (installed by `.ci/run`), stage by stage:
//! preprocess + parse, module set-up (the KSR table the checks resolve against), then the
//! semantic checks + typed IR + optimization + lowering to register bytecode — and all of it
//! together, which is what `ksr run -f kamailio.cfg` pays once at start-up.

use compiler::frontend::parse_str;
use compiler::preprocess::Options;
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

const DEFAULT_CFG: &str = "/etc/kamailio/kamailio.cfg";

fn compile_cfg(c: &mut Criterion) {
    runtime::log::set_level(-1);
    let Ok(text) = std::fs::read_to_string(DEFAULT_CFG) else {
        eprintln!("{DEFAULT_CFG} not found: install the kamailio package");
        return;
    };
    let opts = Options::default();
    let parsed = parse_str(DEFAULT_CFG, &text, &opts);
    let Some(config) = parsed.config else {
        eprintln!("{DEFAULT_CFG} does not parse");
        return;
    };
    let Ok(setup) = runtime::Setup::from_config(&config) else {
        eprintln!("{DEFAULT_CFG}: module set-up failed");
        return;
    };
    if compiler::lower::compile(&config, &setup.table, &setup.pvs).is_err() {
        eprintln!("{DEFAULT_CFG} does not compile");
        return;
    }
    let mut group = c.benchmark_group("compile_default_cfg");
    group.bench_function("parse", |b| {
        b.iter(|| parse_str(DEFAULT_CFG, black_box(&text), &opts))
    });
    group.bench_function("setup_modules", |b| {
        b.iter(|| runtime::Setup::from_config(black_box(&config)).is_ok())
    });
    group.bench_function("check_and_lower", |b| {
        b.iter(|| compiler::lower::compile(black_box(&config), &setup.table, &setup.pvs).is_ok())
    });
    group.bench_function("total", |b| {
        b.iter(|| {
            let parsed = parse_str(DEFAULT_CFG, black_box(&text), &opts);
            let config = parsed.config?;
            let setup = runtime::Setup::from_config(&config).ok()?;
            compiler::lower::compile(&config, &setup.table, &setup.pvs).ok()
        })
    });
    group.finish();
}

criterion_group!(benches, compile_cfg);
criterion_main!(benches);
