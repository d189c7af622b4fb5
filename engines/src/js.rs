//! The JavaScript engine (Kamailio's `app_jsdt`), on QuickJS through rquickjs where
//! Kamailio embeds Duktape: one JS runtime and context per worker, the script's global
//! functions `ksr_request_route()`, `ksr_reply_route()`, `ksr_onsend_route()` and callbacks
//! by name, a `KSR` object built from the KSR table, `KSR.x.exit()`/`drop()`/`modf()`.
//!
//! Every KSR function is a QuickJS C function whose `magic` is its table index; the worker's
//! context is reached through a thread-local pointer set only while script code runs for a
//! message.
//! Exceptions are logged with their stack (file:line) and end the run; the worker goes on.

use crate::common::{EntryNames, modf, with_boot_ctx};
use bytes::Bytes;
use rquickjs::function::Rest;
use rquickjs::qjs;
use rquickjs::{
    Context, Ctx as JsCtx, Exception, Function, Object, Persistent, Runtime, String as JsString,
    Value as JsValue,
};
use runtime::core::Core;
use runtime::ctx::Ctx;
use runtime::engine::{EngineFactory, Outcome, RouteEngine, RouteTarget};
use runtime::log::{L_DBG, L_ERR, L_INFO};
use std::cell::{Cell, RefCell};
use std::ffi::c_int;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::rc::Rc;
use vm::Value;
use vm::ksr::{ParamType, RetType};

const MODNAME: &str = "app_jsdt";

/// What `KSR.x.exit()` throws to unwind the script.
const EXIT_MARK: &str = "~~ksr~exit~~";

/// The JS stack a script may use: well inside a worker thread's 2 MiB, so deep recursion
/// ends in a `RangeError` rather than overflowing the thread.
const MAX_STACK: usize = 512 * 1024;

thread_local! {
    /// The context of the message being processed by this worker's script, if any.
    static CURRENT: Cell<*mut Ctx> = const { Cell::new(std::ptr::null_mut()) };
}

fn with_ctx<R>(f: impl FnOnce(&mut Ctx) -> R) -> Option<R> {
    let p = CURRENT.with(|c| c.get());
    if p.is_null() {
        return None;
    }
    // SAFETY: set by `JsEngine::run` from a live `&mut Ctx` for exactly the duration of the
    // script call on this thread; nested runs save and restore it.
    Some(f(unsafe { &mut *p }))
}

/// Converts a JS argument like Duktape's coercions in Kamailio's engine: numbers, booleans
/// and numeric strings for integers; strings and numbers for strings.
fn to_value(v: Option<&JsValue<'_>>, want: ParamType) -> Value {
    let Some(v) = v else {
        return match want {
            ParamType::Int => Value::Int(0),
            ParamType::Str => Value::Str(Bytes::new()),
        };
    };
    match want {
        ParamType::Int => Value::Int(if let Some(i) = v.as_int() {
            i as i64
        } else if let Some(f) = v.as_float() {
            f as i64
        } else if let Some(b) = v.as_bool() {
            b as i64
        } else if let Some(s) = v.as_string() {
            s.to_string()
                .ok()
                .and_then(|t| t.trim().parse().ok())
                .unwrap_or(0)
        } else {
            0
        }),
        ParamType::Str => Value::Str(if let Some(s) = v.as_string() {
            s.to_string().map(Bytes::from).unwrap_or_default()
        } else if let Some(i) = v.as_int() {
            Bytes::from(i.to_string())
        } else if let Some(f) = v.as_float() {
            Bytes::from(f.to_string())
        } else if let Some(b) = v.as_bool() {
            Bytes::from(b.to_string())
        } else {
            Bytes::new()
        }),
    }
}

fn to_js<'js>(c: &JsCtx<'js>, v: Value, ret: RetType) -> rquickjs::Result<JsValue<'js>> {
    Ok(match (ret, v) {
        (RetType::None, _) | (_, Value::Null) => JsValue::new_undefined(c.clone()),
        (RetType::Bool, v) => JsValue::new_bool(c.clone(), v.as_int().unwrap_or(-1) > 0),
        (_, Value::Int(i)) => match i32::try_from(i) {
            Ok(i) => JsValue::new_int(c.clone(), i),
            Err(_) => JsValue::new_float(c.clone(), i as f64),
        },
        (_, Value::Str(s)) => JsString::from_str(c.clone(), &String::from_utf8_lossy(&s))?.into(),
    })
}

/// Most parameters a KSR function takes (Kamailio's `SR_KEMI_PARAMS_MAX`).
const MAX_PARAMS: usize = 6;

/// The C function behind every `KSR.<module>.<name>`: QuickJS passes the export index as the
/// function's `magic`, so a call needs no closure, no argument vector and no name lookup.
unsafe extern "C" fn ksr_call(
    ctx: *mut qjs::JSContext,
    _this: qjs::JSValue,
    argc: c_int,
    argv: *mut qjs::JSValue,
    magic: c_int,
) -> qjs::JSValue {
    let Some(raw) = NonNull::new(ctx) else {
        return qjs::JS_EXCEPTION;
    };
    // SAFETY: QuickJS calls this with its live context, inside a run that holds the runtime.
    let c = unsafe { JsCtx::from_raw(raw) };
    let p = CURRENT.with(|x| x.get());
    if p.is_null() {
        let _ = Exception::throw_internal(&c, "KSR function called outside of a message");
        return qjs::JS_EXCEPTION;
    }
    // SAFETY: see `with_ctx`.
    let x = unsafe { &mut *p };
    let table = vm::Host::ksr_table(x);
    let Some(e) = u32::try_from(magic).ok().and_then(|i| table.get(i)) else {
        let _ = Exception::throw_internal(&c, "bad KSR function");
        return qjs::JS_EXCEPTION;
    };
    let n = e.sig.params.len().min(MAX_PARAMS);
    let argc = usize::try_from(argc).unwrap_or(0);
    let mut vals: [Value; MAX_PARAMS] = Default::default();
    for (i, (slot, want)) in vals.iter_mut().zip(&e.sig.params).take(n).enumerate() {
        *slot = if i < argc && !argv.is_null() {
            // SAFETY: `argv` holds `argc` values owned by the caller; the duplicate is
            // released when `v` drops.
            let v = unsafe { JsValue::from_raw(c.clone(), qjs::JS_DupValue(ctx, *argv.add(i))) };
            to_value(Some(&v), *want)
        } else {
            to_value(None, *want)
        };
    }
    let ret = e.sig.ret;
    let r = (e.func)(x, &vals[..n]);
    match to_js(&c, r, ret) {
        // QuickJS takes a reference of its own (`v`, dropped here, releases ours and its
        // hold on the context).
        // SAFETY: `v` is a live value of this context.
        Ok(v) => unsafe { qjs::JS_DupValue(ctx, v.as_raw()) },
        Err(_) => qjs::JS_EXCEPTION,
    }
}

/// A native JS function for export `idx`.
fn ksr_function<'js>(
    c: &JsCtx<'js>,
    idx: u32,
    name: &str,
    nparams: usize,
) -> rquickjs::Result<JsValue<'js>> {
    let magic = c_int::try_from(idx).map_err(|_| rquickjs::Error::Unknown)?;
    let cname = std::ffi::CString::new(name).unwrap_or_default();
    // SAFETY: QuickJS calls a `JS_CFUNC_generic_magic` function through the generic
    // pointer type with the magic signature, as its own C API does with a cast.
    let f: qjs::JSCFunction =
        unsafe { std::mem::transmute::<qjs::JSCFunctionMagic, qjs::JSCFunction>(Some(ksr_call)) };
    // SAFETY: the context is live (we are inside `with`); the name is copied by QuickJS.
    let raw = unsafe {
        qjs::JS_NewCFunction2(
            c.as_raw().as_ptr(),
            f,
            cname.as_ptr(),
            nparams as c_int,
            qjs::JSCFunctionEnum_JS_CFUNC_generic_magic,
            magic,
        )
    };
    // SAFETY: a new owned value of this context (or the exception marker, checked).
    let v = unsafe { JsValue::from_raw(c.clone(), raw) };
    if v.is_exception() {
        return Err(rquickjs::Error::Exception);
    }
    Ok(v)
}

/// Builds the global `KSR` object from the table.
fn build_ksr<'js>(c: &JsCtx<'js>, core: &'static Core) -> rquickjs::Result<()> {
    let ksr = Object::new(c.clone())?;
    for (idx, e) in core.ksr.exports() {
        if !e.sig.kemi {
            continue;
        }
        let f = ksr_function(c, idx, &e.sig.name, e.sig.params.len())?;
        if e.sig.module.is_empty() {
            ksr.set(e.sig.name.as_str(), f)?;
        } else {
            let sub = match ksr.get::<_, Option<Object>>(e.sig.module.as_str())? {
                Some(o) => o,
                None => {
                    let o = Object::new(c.clone())?;
                    ksr.set(e.sig.module.as_str(), o.clone())?;
                    o
                }
            };
            sub.set(e.sig.name.as_str(), f)?;
        }
    }
    let x = Object::new(c.clone())?;
    x.set(
        "exit",
        Function::new(c.clone(), |c: JsCtx<'js>| -> rquickjs::Result<()> {
            Err(c.throw(JsString::from_str(c.clone(), EXIT_MARK)?.into()))
        })?,
    )?;
    x.set(
        "drop",
        Function::new(c.clone(), |c: JsCtx<'js>| -> rquickjs::Result<()> {
            with_ctx(|x| x.drop = true);
            Err(c.throw(JsString::from_str(c.clone(), EXIT_MARK)?.into()))
        })?,
    )?;
    x.set(
        "modf",
        Function::new(c.clone(), |c: JsCtx<'js>, args: Rest<JsValue<'js>>| {
            let vals: Vec<Value> = args
                .0
                .iter()
                .map(|a| to_value(Some(a), ParamType::Str))
                .collect();
            let Some(name) = vals.first() else {
                return Ok(-1i64);
            };
            let name = String::from_utf8_lossy(name.as_bytes().unwrap_or_default()).into_owned();
            with_ctx(|x| modf(x, MODNAME, &name, &vals[1..])).ok_or_else(|| {
                Exception::throw_internal(&c, "KSR function called outside of a message")
            })
        })?,
    )?;
    ksr.set("x", x)?;
    c.globals().set("KSR", ksr)?;
    Ok(())
}

/// An exception as a log line: message and stack (with file:line), or the thrown value.
fn describe<'js>(c: &JsCtx<'js>, thrown: JsValue<'js>) -> String {
    if let Some(e) = thrown.as_exception() {
        let kind = e
            .as_object()
            .get::<_, Option<std::string::String>>("name")
            .ok()
            .flatten()
            .unwrap_or_else(|| "Error".into());
        let mut s = format!("{kind}: {}", e.message().unwrap_or_default());
        if let Some(stack) = e.stack() {
            s.push('\n');
            s.push_str(stack.trim_end());
        }
        return s;
    }
    if let Some(s) = thrown.as_string() {
        return s.to_string().unwrap_or_default();
    }
    c.json_stringify(thrown)
        .ok()
        .flatten()
        .and_then(|s| s.to_string().ok())
        .unwrap_or_else(|| "exception".into())
}

fn is_exit(thrown: &JsValue<'_>) -> bool {
    thrown
        .as_string()
        .and_then(|s| s.to_string().ok())
        .is_some_and(|s| s == EXIT_MARK)
}

/// One loaded script: its runtime, context and cached entry points. Field order matters:
/// the saved functions must be released before the context and runtime go.
struct Loaded {
    entry: [Option<Persistent<Function<'static>>>; 3],
    ctx: Context,
    _rt: Runtime,
    generation: u64,
}

fn load_script(
    core: &'static Core,
    script: &Path,
    names: &EntryNames,
    rank: i32,
    generation: u64,
) -> Result<Loaded, String> {
    let code =
        std::fs::read(script).map_err(|e| format!("cannot read {}: {e}", script.display()))?;
    let rt = Runtime::new().map_err(|e| format!("JS runtime: {e}"))?;
    rt.set_max_stack_size(MAX_STACK);
    let ctx = Context::full(&rt).map_err(|e| format!("JS context: {e}"))?;
    let entry = ctx.with(|c| -> Result<_, String> {
        build_ksr(&c, core).map_err(|e| format!("building KSR: {e}"))?;
        let mut opts = rquickjs::context::EvalOptions::default();
        opts.global = true;
        opts.strict = false;
        opts.filename = Some(script.display().to_string());
        let r = with_boot_ctx(&CURRENT, core, rank, || {
            c.eval_with_options::<(), _>(code, opts)
        });
        if let Err(e) = r {
            let msg = match e {
                rquickjs::Error::Exception => describe(&c, c.catch()),
                e => e.to_string(),
            };
            return Err(format!("{}: {msg}", script.display()));
        }
        let get = |n: &str| {
            c.globals()
                .get::<_, Option<Function>>(n)
                .ok()
                .flatten()
                .map(|f| Persistent::save(&c, f))
        };
        Ok([get(&names.request), get(&names.reply), get(&names.onsend)])
    })?;
    if entry[0].is_none() {
        return Err(format!(
            "{}: the script has no function {}()",
            script.display(),
            names.request
        ));
    }
    Ok(Loaded {
        entry,
        ctx,
        _rt: rt,
        generation,
    })
}

/// One worker's JavaScript runtime.
pub struct JsEngine {
    core: &'static Core,
    rank: i32,
    script: PathBuf,
    names: EntryNames,
    state: RefCell<Loaded>,
    depth: Cell<u32>,
    /// The QuickJS context while a run is in progress (nested runs use it, since the
    /// runtime lock is already held by the outer run).
    active: Cell<Option<NonNull<rquickjs::qjs::JSContext>>>,
}

impl JsEngine {
    pub fn load(core: &'static Core, script: &Path, rank: i32) -> Result<JsEngine, String> {
        let names = EntryNames::from_core(core);
        let loaded = load_script(core, script, &names, rank, core.m.app_jsdt.reload.get())?;
        Ok(JsEngine {
            core,
            rank,
            script: script.to_path_buf(),
            names,
            state: RefCell::new(loaded),
            depth: Cell::new(0),
            active: Cell::new(None),
        })
    }

    /// Reloads the script when `app_jsdt.reload` was called since it was loaded; a script
    /// that fails to load is logged and the old code keeps serving.
    fn maybe_reload(&self) {
        let want = self.core.m.app_jsdt.reload.get();
        if self.state.borrow().generation == want {
            return;
        }
        runtime::klog!(
            L_INFO,
            MODNAME,
            "reloading {} (generation {want})",
            self.script.display()
        );
        match load_script(self.core, &self.script, &self.names, self.rank, want) {
            Ok(l) => *self.state.borrow_mut() = l,
            Err(e) => {
                runtime::klog!(L_ERR, MODNAME, "reload failed, keeping the old script: {e}");
                self.state.borrow_mut().generation = want;
            }
        }
    }

    fn function<'js>(
        &self,
        c: &JsCtx<'js>,
        st: &Loaded,
        target: RouteTarget<'_>,
    ) -> Option<Function<'js>> {
        match EntryNames::slot(target) {
            Some(i) => st.entry[i].clone().and_then(|p| p.restore(c).ok()),
            None => c
                .globals()
                .get::<_, Option<Function>>(self.names.of(target))
                .ok()
                .flatten(),
        }
    }

    fn run_in<'js>(
        &self,
        c: &JsCtx<'js>,
        st: &Loaded,
        ctx: &mut Ctx,
        target: RouteTarget<'_>,
    ) -> Outcome {
        let name = self.names.of(target);
        let Some(f) = self.function(c, st, target) else {
            if !matches!(target, RouteTarget::Reply | RouteTarget::OnSend) {
                runtime::klog!(
                    L_ERR,
                    MODNAME,
                    "{}: function {name}() not found, message not routed",
                    self.script.display()
                );
            }
            return Outcome::default();
        };
        let saved = CURRENT.with(|x| x.replace(ctx as *mut Ctx));
        let saved_active = self.active.replace(Some(c.as_raw()));
        self.depth.set(self.depth.get() + 1);
        let r = match target {
            RouteTarget::Event(n) => f.call::<_, JsValue>((n,)),
            _ => f.call::<_, JsValue>(()),
        };
        self.depth.set(self.depth.get() - 1);
        self.active.set(saved_active);
        CURRENT.with(|x| x.set(saved));
        match r {
            Ok(v) => Outcome {
                code: v.as_int().unwrap_or(1),
                exit: false,
                drop: ctx.drop,
                missing: false,
            },
            Err(rquickjs::Error::Exception) => {
                let thrown = c.catch();
                if is_exit(&thrown) {
                    runtime::klog!(L_DBG, MODNAME, "{name}(): exit");
                    return Outcome {
                        code: 0,
                        exit: true,
                        drop: ctx.drop,
                        missing: false,
                    };
                }
                runtime::klog!(
                    L_ERR,
                    MODNAME,
                    "error running {name}(): {}",
                    describe(c, thrown)
                );
                Outcome {
                    code: -1,
                    exit: true,
                    drop: ctx.drop,
                    missing: false,
                }
            }
            Err(e) => {
                runtime::klog!(L_ERR, MODNAME, "error running {name}(): {e}");
                Outcome {
                    code: -1,
                    exit: true,
                    drop: ctx.drop,
                    missing: false,
                }
            }
        }
    }
}

impl RouteEngine for JsEngine {
    fn run(&self, ctx: &mut Ctx, target: RouteTarget<'_>) -> Outcome {
        if self.depth.get() == 0 {
            self.maybe_reload();
        }
        let st = self.state.borrow();
        match self.active.get() {
            // A KSR function of an outer run routes again (e.g. a branch route): the runtime
            // is already locked by that run, so use its context directly.
            // SAFETY: the pointer is the context of the outer run, alive and locked for
            // its whole duration on this thread.
            Some(raw) if self.depth.get() > 0 => {
                let c = unsafe { JsCtx::from_raw(raw) };
                self.run_in(&c, &st, ctx, target)
            }
            _ => st.ctx.with(|c| self.run_in(&c, &st, ctx, target)),
        }
    }

    fn exists(&self, target: RouteTarget<'_>) -> bool {
        let st = self.state.borrow();
        if let Some(i) = EntryNames::slot(target) {
            return st.entry[i].is_some();
        }
        let name = self.names.of(target);
        let has = |c: JsCtx<'_>| {
            c.globals()
                .get::<_, Option<Function>>(name)
                .ok()
                .flatten()
                .is_some()
        };
        match self.active.get() {
            // SAFETY: as in `run`.
            Some(raw) if self.depth.get() > 0 => has(unsafe { JsCtx::from_raw(raw) }),
            _ => st.ctx.with(has),
        }
    }

    fn name(&self) -> &'static str {
        "jsdt"
    }
}

/// Creates each worker's JavaScript runtime from `app_jsdt`'s `load` parameter.
pub struct JsFactory {
    pub script: PathBuf,
}

impl EngineFactory for JsFactory {
    fn create(&self, core: &'static Core, rank: i32) -> Result<Rc<dyn RouteEngine>, String> {
        Ok(Rc::new(JsEngine::load(core, &self.script, rank)?))
    }
}
