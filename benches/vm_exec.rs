//! Compile time and route execution time of the register VM, with the toy host of
//! `compiler/tests/toy` (so only the compiler and interpreter are measured).
//!
//! * `compile/typical_cfg`: preprocess, parse, check, lower, optimize, generate code.
//! * `image/load`: load the compiled program back from its image.
//! * `vm/request_route_invite`: one initial INVITE through the request route (eleven
//!   function calls, a switch, two sub-route levels, a format string) on a warm stack.

#[path = "../compiler/tests/toy/mod.rs"]
mod toy;

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::sync::Arc;
use vm::RouteKind;
use vm::interp::{Limits, Stack, run};

const CFG: &str = include_str!("vm_exec.cfg");

fn bench(c: &mut Criterion) {
    c.bench_function("compile/typical_cfg", |b| {
        b.iter(|| black_box(toy::compile(black_box(CFG))))
    });
    let prog = Arc::new(toy::compile(CFG));
    let image = vm::image::write(&prog);
    c.bench_function("image/load", |b| {
        b.iter(|| {
            black_box(
                vm::image::load(black_box(&image), toy::table(), toy::registry())
                    .unwrap_or_default(),
            )
        })
    });
    let mut msg = toy::Msg::options("bob");
    msg.method = "INVITE".into();
    let mut host = toy::Toy::new(msg);
    host.program = Some(prog.clone());
    let id = prog.route(RouteKind::Request, None).unwrap_or(0);
    let limits = Limits::default();
    let mut stack = Stack::new();
    let mut rc = 0;
    // Sanity: the INVITE reaches t_relay and exits there.
    let out = run(&prog, &mut host, id, &limits, &mut stack, &mut rc);
    assert!(out.exit && host.stubs == 11, "{out:?} {} stubs", host.stubs);
    c.bench_function("vm/request_route_invite", |b| {
        b.iter(|| {
            host.stubs = 0;
            black_box(run(&prog, &mut host, id, &limits, &mut stack, &mut rc))
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
