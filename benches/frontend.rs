//! Preprocess + parse of Kamailio's default config (`/etc/kamailio/kamailio.cfg`, from the
//! Debian package that `.ci/run` installs), plain and with every `WITH_*` feature enabled.

use compiler::frontend::parse_str;
use compiler::preprocess::Options;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

const DEFAULT_CFG: &str = "/etc/kamailio/kamailio.cfg";
const FEATURES: &[&str] = &[
    "WITH_DEBUG",
    "WITH_MYSQL",
    "WITH_AUTH",
    "WITH_USRLOCDB",
    "WITH_IPAUTH",
    "WITH_PRESENCE",
    "WITH_NAT",
    "WITH_TLS",
    "WITH_ANTIFLOOD",
    "WITH_ACCDB",
    "WITH_PSTN",
    "WITH_XHTTP",
    "WITH_JSONRPC",
    "WITH_MULTIDOMAIN",
    "WITH_BLOCK3XX",
    "WITH_BLOCK401407",
];

fn frontend(c: &mut Criterion) {
    let Ok(text) = std::fs::read_to_string(DEFAULT_CFG) else {
        eprintln!("{DEFAULT_CFG} not found: install the kamailio package");
        return;
    };
    let mut group = c.benchmark_group("frontend");
    group.throughput(Throughput::Bytes(text.len() as u64));
    let plain = Options::default();
    group.bench_function("default_cfg", |b| {
        b.iter(|| {
            let r = parse_str(DEFAULT_CFG, black_box(&text), &plain);
            assert!(!r.has_errors());
            r
        })
    });
    let all = Options {
        defines: FEATURES.iter().map(|d| (d.to_string(), None)).collect(),
    };
    group.bench_function("default_cfg_all_features", |b| {
        b.iter(|| parse_str(DEFAULT_CFG, black_box(&text), &all))
    });
    group.finish();
}

criterion_group!(benches, frontend);
criterion_main!(benches);
