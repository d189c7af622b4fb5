//! What the KEMI engines share: `KSR.x.modf` and the names of a route target.

use bytes::Bytes;
use runtime::ctx::Ctx;
use runtime::engine::RouteTarget;
use runtime::log::L_ERR;
use vm::Value;
use vm::ksr::ParamType;

/// `KSR.x.modf(name, ...)`: runs the cfg function `name` with string arguments (converted to
/// integers where the function takes integers), as Kamailio's `modf` does. -1 when there is
/// no such function with that many parameters.
pub fn modf(ctx: &mut Ctx, engine: &'static str, name: &str, args: &[Value]) -> i64 {
    let t = vm::Host::ksr_table(ctx);
    let Some(alias) = u8::try_from(args.len())
        .ok()
        .and_then(|n| t.native(name, n))
    else {
        runtime::klog!(
            L_ERR,
            engine,
            "KSR.x.modf: no function {name}/{}",
            args.len()
        );
        return -1;
    };
    let Some(e) = t.get(alias.export) else {
        return -1;
    };
    let conv: Vec<Value> = args
        .iter()
        .zip(e.sig.params.iter())
        .map(|(v, p)| match (p, v) {
            (ParamType::Int, Value::Str(s)) => Value::Int(
                std::str::from_utf8(s)
                    .ok()
                    .and_then(|x| x.trim().parse().ok())
                    .unwrap_or(0),
            ),
            (ParamType::Str, Value::Int(i)) => Value::Str(Bytes::from(i.to_string())),
            _ => v.clone(),
        })
        .collect();
    t.call(alias.export, ctx, &conv).as_int().unwrap_or(-1)
}

/// The callback names of the three entry points (`kemi.*_callback` cfg settings).
pub struct EntryNames {
    pub request: String,
    pub reply: String,
    pub onsend: String,
}

impl EntryNames {
    pub fn from_core(core: &runtime::core::Core) -> EntryNames {
        EntryNames {
            request: core
                .cfg
                .kemi_callback("request_route_callback", "ksr_request_route"),
            reply: core
                .cfg
                .kemi_callback("reply_route_callback", "ksr_reply_route"),
            onsend: core
                .cfg
                .kemi_callback("onsend_route_callback", "ksr_onsend_route"),
        }
    }

    /// The script function `target` runs.
    pub fn of<'a>(&'a self, t: RouteTarget<'a>) -> &'a str {
        match t {
            RouteTarget::Request => &self.request,
            RouteTarget::Reply => &self.reply,
            RouteTarget::OnSend => &self.onsend,
            RouteTarget::Failure(n)
            | RouteTarget::Branch(n)
            | RouteTarget::OnReply(n)
            | RouteTarget::BranchFailure(n)
            | RouteTarget::Event(n) => n,
        }
    }

    /// Index of an entry point in a 3-slot cache, `None` for named callbacks.
    pub fn slot(t: RouteTarget<'_>) -> Option<usize> {
        match t {
            RouteTarget::Request => Some(0),
            RouteTarget::Reply => Some(1),
            RouteTarget::OnSend => Some(2),
            _ => None,
        }
    }
}

/// Runs `f` (loading a script: its top-level code, `mod_init`, `child_init`) with a context
/// that has no message installed in `current`, so KSR functions that need none (`KSR.info`,
/// `KSR.pv.get("$var(x)")`, ...) work at load time as they do in Kamailio.
pub fn with_boot_ctx<R>(
    current: &'static std::thread::LocalKey<std::cell::Cell<*mut Ctx>>,
    core: &'static runtime::core::Core,
    rank: i32,
    f: impl FnOnce() -> R,
) -> R {
    struct Restore(
        &'static std::thread::LocalKey<std::cell::Cell<*mut Ctx>>,
        *mut Ctx,
    );
    impl Drop for Restore {
        fn drop(&mut self) {
            let saved = self.1;
            self.0.with(|c| c.set(saved));
        }
    }
    let mut boot = Ctx::new(core, rank);
    let _restore = Restore(current, current.with(|c| c.replace(&mut boot as *mut Ctx)));
    f()
}
