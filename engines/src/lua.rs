//! The Lua engine (Kamailio's `app_lua`): one Lua 5.4 state per worker, a `KSR` object built
//! from the KSR table (`KSR.sl.sl_send_reply`, `KSR.pv.get`, `KSR.hdr.append`, ...), the
//! `ksr_request_route`/`ksr_reply_route`/`ksr_onsend_route` entry points and callbacks by
//! function name.
//!
//! Every KSR function is a raw Lua C function whose upvalue is its table index: a call costs
//! no string lookup, no closure and no argument vector (mlua's `create_function` wrapping
//! costs about four times as much per call). The worker's context is reached through a
//! thread-local pointer that is set only while the engine runs script code for a message.

use crate::common::{EntryNames, modf, with_boot_ctx};
use bytes::Bytes;
use mlua::{Function, Lua, MultiValue, Value as LuaValue};
use runtime::core::Core;
use runtime::ctx::Ctx;
use runtime::engine::{EngineFactory, Outcome, RouteEngine, RouteTarget};
use runtime::log::{L_ERR, L_INFO};
use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::rc::Rc;
use vm::Value;
use vm::ksr::{ParamType, RetType};

thread_local! {
    /// The context of the message being processed by this worker's script, if any.
    static CURRENT: Cell<*mut Ctx> = const { Cell::new(std::ptr::null_mut()) };
}

/// Registry name of the value `KSR.x.exit()` raises to unwind the script.
const SENTINEL_KEY: &str = "ksr.exit.sentinel";

/// Lua-side runner of entry points: `xpcall` that passes the exit sentinel through and adds
/// a traceback to real errors only.
const RUNNER: &str = "local sentinel = ...\n\
    local function handler(e)\n\
      if rawequal(e, sentinel) then return e end\n\
      return debug.traceback(e, 2)\n\
    end\n\
    return function(f, arg) return xpcall(f, handler, arg) end";

/// Runs `f` with the current context, when the script runs for a message.
fn with_ctx<R>(f: impl FnOnce(&mut Ctx) -> R) -> Option<R> {
    let p = CURRENT.with(|c| c.get());
    if p.is_null() {
        return None;
    }
    // SAFETY: the pointer is set by `LuaEngine::run` from a live `&mut Ctx` for exactly the
    // duration of the script call, on this thread; script code runs only inside that call,
    // and nested runs save and restore it.
    Some(f(unsafe { &mut *p }))
}

fn to_value(v: &LuaValue, want: ParamType) -> Value {
    match (v, want) {
        (LuaValue::Integer(i), ParamType::Int) => Value::Int(*i),
        (LuaValue::Number(n), ParamType::Int) => Value::Int(*n as i64),
        (LuaValue::String(s), ParamType::Int) => Value::Int(
            std::str::from_utf8(&s.as_bytes())
                .ok()
                .and_then(|t| t.trim().parse().ok())
                .unwrap_or(0),
        ),
        (LuaValue::Boolean(b), ParamType::Int) => Value::Int(*b as i64),
        (LuaValue::String(s), ParamType::Str) => Value::Str(Bytes::copy_from_slice(&s.as_bytes())),
        (LuaValue::Integer(i), ParamType::Str) => Value::Str(Bytes::from(i.to_string())),
        (LuaValue::Number(n), ParamType::Str) => Value::Str(Bytes::from(n.to_string())),
        _ => match want {
            ParamType::Int => Value::Int(0),
            ParamType::Str => Value::Str(Bytes::new()),
        },
    }
}

fn to_lua(lua: &Lua, v: Value, ret: RetType) -> mlua::Result<LuaValue> {
    Ok(match (ret, v) {
        (RetType::None, _) => LuaValue::Nil,
        (RetType::Bool, v) => LuaValue::Boolean(v.as_int().unwrap_or(-1) > 0),
        (_, Value::Int(i)) => LuaValue::Integer(i),
        (_, Value::Str(s)) => LuaValue::String(lua.create_string(&s[..])?),
        (_, Value::Null) => LuaValue::Nil,
    })
}

/// Calls export `idx` for the current message and converts its result.
fn call(lua: &Lua, idx: u32, ret: RetType, args: &[Value]) -> mlua::Result<LuaValue> {
    let r = with_ctx(|c| {
        let t = vm::Host::ksr_table(c);
        t.call(idx, c, args)
    });
    match r {
        Some(v) => to_lua(lua, v, ret),
        None => Err(mlua::Error::runtime(
            "KSR function called outside of a message",
        )),
    }
}

/// Most parameters a KSR export has (Kamailio's KEMI limit).
const MAX_PARAMS: usize = 6;

/// Reads argument `i` (1-based) of a raw call as `want`, with the coercions of [`to_value`].
///
/// # Safety
/// `l` is the running state and `i` a valid stack index.
unsafe fn raw_arg(l: *mut mlua::ffi::lua_State, i: i32, want: ParamType) -> Value {
    use mlua::ffi;
    // SAFETY: the caller guarantees a valid state and index; strings are copied out before
    // the stack can change.
    unsafe {
        match (ffi::lua_type(l, i), want) {
            (ffi::LUA_TNUMBER, ParamType::Int) => Value::Int(if ffi::lua_isinteger(l, i) != 0 {
                ffi::lua_tointeger(l, i)
            } else {
                ffi::lua_tonumber(l, i) as i64
            }),
            (ffi::LUA_TNUMBER, ParamType::Str) => {
                Value::Str(Bytes::from(if ffi::lua_isinteger(l, i) != 0 {
                    ffi::lua_tointeger(l, i).to_string()
                } else {
                    ffi::lua_tonumber(l, i).to_string()
                }))
            }
            (ffi::LUA_TSTRING, want) => {
                let mut len = 0usize;
                let p = ffi::lua_tolstring(l, i, &mut len);
                let bytes = if p.is_null() {
                    &[][..]
                } else {
                    std::slice::from_raw_parts(p.cast::<u8>(), len)
                };
                match want {
                    ParamType::Str => Value::Str(Bytes::copy_from_slice(bytes)),
                    ParamType::Int => Value::Int(
                        std::str::from_utf8(bytes)
                            .ok()
                            .and_then(|t| t.trim().parse().ok())
                            .unwrap_or(0),
                    ),
                }
            }
            (ffi::LUA_TBOOLEAN, ParamType::Int) => Value::Int(ffi::lua_toboolean(l, i) as i64),
            (_, ParamType::Int) => Value::Int(0),
            (_, ParamType::Str) => Value::Str(Bytes::new()),
        }
    }
}

/// Pushes a KSR result converted as Kamailio's app_lua does; returns the number of results.
///
/// # Safety
/// `l` is the running state with room for one value.
unsafe fn raw_push(l: *mut mlua::ffi::lua_State, v: Value, ret: RetType) -> i32 {
    use mlua::ffi;
    // SAFETY: see the function contract.
    unsafe {
        match (ret, v) {
            (RetType::None, _) | (_, Value::Null) => ffi::lua_pushnil(l),
            (RetType::Bool, v) => ffi::lua_pushboolean(l, (v.as_int().unwrap_or(-1) > 0) as i32),
            (_, Value::Int(i)) => ffi::lua_pushinteger(l, i),
            (_, Value::Str(s)) => {
                ffi::lua_pushlstring(l, s.as_ptr().cast(), s.len());
            }
        }
    }
    1
}

/// The raw C function behind every KSR export: upvalue 1 is the export index.
unsafe extern "C-unwind" fn ksr_cfunction(l: *mut mlua::ffi::lua_State) -> std::ffi::c_int {
    use mlua::ffi;
    // SAFETY: Lua calls this with a valid state; upvalue 1 was set when the closure was made.
    let idx = unsafe { ffi::lua_tointeger(l, ffi::lua_upvalueindex(1)) } as u32;
    let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        with_ctx(|c| {
            let t = vm::Host::ksr_table(c);
            let Some(e) = t.get(idx) else {
                return (Value::Null, RetType::None);
            };
            let ret = e.sig.ret;
            let n = e.sig.params.len().min(MAX_PARAMS);
            let mut args: [Value; MAX_PARAMS] = std::array::from_fn(|_| Value::Null);
            for (i, (slot, p)) in args.iter_mut().zip(&e.sig.params).take(n).enumerate() {
                // SAFETY: reading stack slots of this call; absent ones read as nil.
                *slot = unsafe { raw_arg(l, i as i32 + 1, *p) };
            }
            (t.call(idx, c, &args[..n]), ret)
        })
    }));
    match done {
        // SAFETY: the state is valid and a C function may push its results.
        Ok(Some((v, ret))) => unsafe { raw_push(l, v, ret) },
        Ok(None) => {
            // No Rust value with a destructor is alive in this frame when Lua unwinds it.
            let msg = "KSR function called outside of a message";
            // SAFETY: raising a Lua error from a C function, as the Lua manual describes.
            unsafe {
                ffi::lua_pushlstring(l, msg.as_ptr().cast(), msg.len());
                ffi::lua_error(l)
            }
        }
        Err(_) => {
            runtime::klog!(L_ERR, "app_lua", "internal error in KSR function #{idx}");
            // SAFETY: as above.
            unsafe { ffi::lua_pushnil(l) };
            1
        }
    }
}

/// A Lua function value for export `idx`: [`ksr_cfunction`] with the index as its upvalue.
fn raw_function(lua: &Lua, idx: u32) -> mlua::Result<Function> {
    // SAFETY: pushes an integer and a C closure over it; exec_raw checks the stack and takes
    // the closure as the result.
    unsafe {
        lua.exec_raw((), |state| {
            mlua::ffi::lua_pushinteger(state, idx as mlua::ffi::lua_Integer);
            mlua::ffi::lua_pushcclosure(state, ksr_cfunction, 1);
        })
    }
}

/// Builds the `KSR` global from the table.
fn build_ksr(lua: &Lua, core: &'static Core) -> mlua::Result<()> {
    let ksr = lua.create_table()?;
    for (idx, e) in core.ksr.exports() {
        if !e.sig.kemi {
            continue;
        }
        let params = e.sig.params.clone();
        let ret = e.sig.ret;
        let f = match params.len() {
            n if n <= MAX_PARAMS && std::env::var_os("KSR_LUA_CLOSURES").is_none() => {
                raw_function(lua, idx)?
            }
            // mlua closures, kept to measure against (`KSR_LUA_CLOSURES=1`).
            0 => lua.create_function(move |lua, ()| call(lua, idx, ret, &[]))?,
            1 => {
                let p = [params[0]];
                lua.create_function(move |lua, a: LuaValue| {
                    call(lua, idx, ret, &[to_value(&a, p[0])])
                })?
            }
            2 => {
                let p = [params[0], params[1]];
                lua.create_function(move |lua, (a, b): (LuaValue, LuaValue)| {
                    call(lua, idx, ret, &[to_value(&a, p[0]), to_value(&b, p[1])])
                })?
            }
            3 => {
                let p = [params[0], params[1], params[2]];
                lua.create_function(move |lua, (a, b, c): (LuaValue, LuaValue, LuaValue)| {
                    call(
                        lua,
                        idx,
                        ret,
                        &[to_value(&a, p[0]), to_value(&b, p[1]), to_value(&c, p[2])],
                    )
                })?
            }
            _ => lua.create_function(move |lua, args: MultiValue| {
                let vals: Vec<Value> = params
                    .iter()
                    .enumerate()
                    .map(|(i, p)| to_value(args.get(i).unwrap_or(&LuaValue::Nil), *p))
                    .collect();
                call(lua, idx, ret, &vals)
            })?,
        };
        let target = if e.sig.module.is_empty() {
            ksr.clone()
        } else {
            match ksr.get::<Option<mlua::Table>>(e.sig.module.as_str())? {
                Some(t) => t,
                None => {
                    let t = lua.create_table()?;
                    ksr.set(e.sig.module.as_str(), t.clone())?;
                    t
                }
            }
        };
        target.set(e.sig.name.as_str(), f)?;
    }
    // KSR.x: exit, drop, modf. exit/drop raise a private sentinel value from Lua code: an
    // error raised by a Rust callback would make mlua build a traceback on every exit
    // (measured: ~5 µs per message), while this costs a plain Lua error.
    let x = lua.create_table()?;
    let sentinel = lua.create_table()?;
    let set_drop = lua.create_function(|_, ()| {
        with_ctx(|c| c.drop = true);
        Ok(())
    })?;
    let (exit, drop): (Function, Function) = lua
        .load(
            "local sentinel, set_drop = ...\n\
             return function() error(sentinel, 0) end,\n\
                    function() set_drop() error(sentinel, 0) end",
        )
        .set_name("=KSR.x")
        .call((sentinel.clone(), set_drop))?;
    x.set("exit", exit)?;
    x.set("drop", drop)?;
    lua.set_named_registry_value(SENTINEL_KEY, sentinel)?;
    x.set(
        "modf",
        lua.create_function(|_, args: MultiValue| {
            let mut it = args.into_iter();
            let name = match it.next() {
                Some(LuaValue::String(s)) => s.to_str()?.to_string(),
                _ => return Ok(-1i64),
            };
            let rest: Vec<Value> = it.map(|a| to_value(&a, ParamType::Str)).collect();
            let r = with_ctx(|c| modf(c, "app_lua", &name, &rest));
            Ok(r.unwrap_or(-1))
        })?,
    )?;
    ksr.set("x", x)?;
    lua.globals().set("KSR", ksr)?;
    Ok(())
}

/// A loaded script: its Lua state and the three entry points (looked up once).
struct Loaded {
    lua: Lua,
    entry: [Option<Function>; 3],
    generation: u64,
    /// [`RUNNER`] and the exit sentinel it recognises.
    runner: Function,
    sentinel: mlua::Table,
}

fn load_script(
    core: &'static Core,
    script: &std::path::Path,
    names: &EntryNames,
    rank: i32,
    generation: u64,
) -> Result<Loaded, String> {
    let lua = Lua::new();
    build_ksr(&lua, core).map_err(|e| format!("building KSR: {e}"))?;
    let code = std::fs::read_to_string(script)
        .map_err(|e| format!("cannot read {}: {e}", script.display()))?;
    with_boot_ctx(&CURRENT, core, rank, || {
        lua.load(&code)
            .set_name(format!("@{}", script.display()))
            .exec()
    })
    .map_err(|e| format!("{}: {e}", script.display()))?;
    let get = |n: &str| lua.globals().get::<Option<Function>>(n).ok().flatten();
    let entry = [get(&names.request), get(&names.reply), get(&names.onsend)];
    if entry[0].is_none() {
        return Err(format!(
            "{}: the script has no function {}()",
            script.display(),
            names.request
        ));
    }
    let sentinel: mlua::Table = lua
        .named_registry_value(SENTINEL_KEY)
        .map_err(|e| format!("KSR.x: {e}"))?;
    let runner: Function = lua
        .load(RUNNER)
        .set_name("=ksr")
        .call(sentinel.clone())
        .map_err(|e| format!("KSR runner: {e}"))?;
    Ok(Loaded {
        lua,
        entry,
        generation,
        runner,
        sentinel,
    })
}

/// One worker's Lua state.
pub struct LuaEngine {
    core: &'static Core,
    rank: i32,
    script: PathBuf,
    names: EntryNames,
    state: RefCell<Loaded>,
    depth: Cell<u32>,
}

impl LuaEngine {
    pub fn load(
        core: &'static Core,
        script: &std::path::Path,
        rank: i32,
    ) -> Result<LuaEngine, String> {
        let names = EntryNames::from_core(core);
        let loaded = load_script(core, script, &names, rank, core.m.app_lua.reload.get())?;
        Ok(LuaEngine {
            core,
            rank,
            script: script.to_path_buf(),
            names,
            state: RefCell::new(loaded),
            depth: Cell::new(0),
        })
    }

    /// Reloads the script when `app_lua.reload` was called since it was loaded (a new Lua
    /// state, as Kamailio does); a script that fails to load is logged and the old code
    /// keeps serving.
    fn maybe_reload(&self) {
        let want = self.core.m.app_lua.reload.get();
        if self.state.borrow().generation == want {
            return;
        }
        runtime::klog!(
            L_INFO,
            "app_lua",
            "reloading {} (generation {want})",
            self.script.display()
        );
        match load_script(self.core, &self.script, &self.names, self.rank, want) {
            Ok(l) => *self.state.borrow_mut() = l,
            Err(e) => {
                runtime::klog!(
                    L_ERR,
                    "app_lua",
                    "reload failed, keeping the old script: {e}"
                );
                self.state.borrow_mut().generation = want;
            }
        }
    }

    fn function(&self, target: RouteTarget<'_>) -> Option<Function> {
        let st = self.state.borrow();
        match EntryNames::slot(target) {
            Some(i) => st.entry[i].clone(),
            None => st
                .lua
                .globals()
                .get::<Option<Function>>(self.names.of(target))
                .ok()
                .flatten(),
        }
    }
}

impl RouteEngine for LuaEngine {
    fn run(&self, ctx: &mut Ctx, target: RouteTarget<'_>) -> Outcome {
        if self.depth.get() == 0 {
            self.maybe_reload();
        }
        let name = self.names.of(target);
        let Some(f) = self.function(target) else {
            if !matches!(target, RouteTarget::Reply | RouteTarget::OnSend) {
                runtime::klog!(
                    L_ERR,
                    "app_lua",
                    "{}: function {name}() not found, message not routed",
                    self.script.display()
                );
            }
            return Outcome::default();
        };
        let (runner, sentinel, arg) = {
            let st = self.state.borrow();
            let arg = match target {
                RouteTarget::Event(n) => st
                    .lua
                    .create_string(n)
                    .map(LuaValue::String)
                    .unwrap_or(LuaValue::Nil),
                _ => LuaValue::Nil,
            };
            (st.runner.clone(), st.sentinel.to_pointer(), arg)
        };
        let saved = CURRENT.with(|c| c.replace(ctx as *mut Ctx));
        self.depth.set(self.depth.get() + 1);
        let r = runner.call::<(bool, LuaValue)>((f, arg));
        self.depth.set(self.depth.get() - 1);
        CURRENT.with(|c| c.set(saved));
        let error = |e: &dyn std::fmt::Display| {
            runtime::klog!(L_ERR, "app_lua", "error running {name}(): {e}");
            Outcome {
                code: -1,
                exit: true,
                drop: ctx.drop,
                missing: false,
            }
        };
        match r {
            Ok((true, v)) => Outcome {
                code: match v {
                    LuaValue::Integer(i) => i as i32,
                    _ => 1,
                },
                exit: false,
                drop: ctx.drop,
                missing: false,
            },
            Ok((false, LuaValue::Table(t))) if t.to_pointer() == sentinel => Outcome {
                code: 0,
                exit: true,
                drop: ctx.drop,
                missing: false,
            },
            Ok((false, LuaValue::String(s))) => error(&s.to_string_lossy()),
            Ok((false, LuaValue::Error(e))) => error(&e),
            Ok((false, other)) => error(&format!("{other:?}")),
            Err(e) => error(&e),
        }
    }

    fn exists(&self, target: RouteTarget<'_>) -> bool {
        self.function(target).is_some()
    }

    fn name(&self) -> &'static str {
        "lua"
    }
}

/// Creates a Lua state per worker from the script `app_lua`'s `load` parameter names.
pub struct LuaFactory {
    pub script: PathBuf,
}

impl EngineFactory for LuaFactory {
    fn create(&self, core: &'static Core, rank: i32) -> Result<Rc<dyn RouteEngine>, String> {
        Ok(Rc::new(LuaEngine::load(core, &self.script, rank)?))
    }
}
