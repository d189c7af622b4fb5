//! The Python 3 engine (Kamailio's `app_python3`): CPython embedded through pyo3.
//!
//! Kamailio semantics: the script's `mod_init()` returns the handler object, whose
//! `child_init(rank)` runs once per worker and whose methods `ksr_request_route(msg)`,
//! `ksr_reply_route(msg)`, `ksr_onsend_route(msg)` and callbacks (by method name) route the
//! messages. `import KSR` gives the KSR table (`KSR.sl.sl_send_reply`, `KSR.pv.get`, ...,
//! `KSR.x.modf`). `sys.exit()` (and ksr's `KSR.x.exit()`/`KSR.x.drop()`) end the run like the
//! cfg `exit`; any other exception is logged with its traceback and the worker goes on.
//!
//! One interpreter serves the process and its GIL is shared by every worker: a worker holds
//! it only while script code runs for its message (parsing, sending and the KSR functions'
//! own work in Rust still hold it, since they run inside the script call; see README, "Python
//! and the GIL"). Each worker loads the script as its own module object, so module globals
//! are per worker as in Kamailio's forked processes.
//!
//! KSR functions are CPython `METH_FASTCALL` C functions whose `self` is the export's table
//! index: a call converts the arguments straight from the argument vector, with no tuple, no
//! closure and no name lookup.

use crate::common::{EntryNames, modf, with_boot_ctx};
use bytes::Bytes;
use pyo3::exceptions::PySystemExit;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyModule, PyString};
use runtime::core::Core;
use runtime::ctx::Ctx;
use runtime::engine::{EngineFactory, Outcome, RouteEngine, RouteTarget};
use runtime::log::{L_DBG, L_ERR, L_INFO};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ffi::{CStr, CString, c_char};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Mutex;
use vm::Value;
use vm::ksr::{ParamType, RetType};

const MODNAME: &str = "app_python3";

/// Most parameters a KSR function takes (Kamailio's `SR_KEMI_PARAMS_MAX`).
const MAX_PARAMS: usize = 6;

thread_local! {
    /// The context of the message being processed by this worker's script, if any.
    static CURRENT: Cell<*mut Ctx> = const { Cell::new(std::ptr::null_mut()) };
}

/// Runs `f` with the current context, when the script runs for a message.
fn with_ctx<R>(f: impl FnOnce(&mut Ctx) -> R) -> Option<R> {
    let p = CURRENT.with(|c| c.get());
    if p.is_null() {
        return None;
    }
    // SAFETY: set by `PythonEngine::run` from a live `&mut Ctx` for exactly the duration of
    // the script call on this thread; nested runs save and restore it.
    Some(f(unsafe { &mut *p }))
}

/// Sets a Python exception and returns the NULL result that signals it.
///
/// # Safety
/// The GIL must be held.
unsafe fn raise(exc: *mut ffi::PyObject, msg: &CStr) -> *mut ffi::PyObject {
    unsafe { ffi::PyErr_SetString(exc, msg.as_ptr()) };
    std::ptr::null_mut()
}

/// Converts a Python argument to the parameter type, as CPython's `PyArg_ParseTuple` does for
/// Kamailio's "i" and "s" formats: ints (and bools) for integers, str for strings.
///
/// # Safety
/// The GIL must be held and `o` be a valid object.
unsafe fn arg_value(o: *mut ffi::PyObject, want: ParamType) -> Option<Value> {
    unsafe {
        match want {
            ParamType::Int => {
                if ffi::PyLong_Check(o) == 0 {
                    return None;
                }
                let i = ffi::PyLong_AsLongLong(o);
                if i == -1 && !ffi::PyErr_Occurred().is_null() {
                    ffi::PyErr_Clear();
                    return None;
                }
                Some(Value::Int(i))
            }
            ParamType::Str => {
                if ffi::PyUnicode_Check(o) == 0 {
                    return None;
                }
                let mut n: ffi::Py_ssize_t = 0;
                let p = ffi::PyUnicode_AsUTF8AndSize(o, &mut n);
                if p.is_null() {
                    // Lone surrogates cannot be encoded.
                    ffi::PyErr_Clear();
                    return None;
                }
                let s = std::slice::from_raw_parts(p as *const u8, n as usize);
                Some(Value::Str(Bytes::copy_from_slice(s)))
            }
        }
    }
}

/// A `str` from bytes; invalid UTF-8 is replaced rather than failing the script.
///
/// # Safety
/// The GIL must be held.
unsafe fn py_str(b: &[u8]) -> *mut ffi::PyObject {
    unsafe {
        ffi::PyUnicode_DecodeUTF8(
            b.as_ptr() as *const c_char,
            b.len() as ffi::Py_ssize_t,
            c"replace".as_ptr(),
        )
    }
}

/// Converts a KSR function's result as Kamailio's Python engine does.
///
/// # Safety
/// The GIL must be held.
unsafe fn ret_value(v: Value, ret: RetType) -> *mut ffi::PyObject {
    unsafe {
        match (ret, v) {
            (RetType::None, _) | (_, Value::Null) => ffi::Py_NewRef(ffi::Py_None()),
            (RetType::Bool, v) => ffi::PyBool_FromLong((v.as_int().unwrap_or(-1) > 0) as _),
            (_, Value::Int(i)) => ffi::PyLong_FromLongLong(i),
            (_, Value::Str(s)) => py_str(&s),
        }
    }
}

/// The C function behind every `KSR.<module>.<name>`: `slf` holds the export index.
unsafe extern "C" fn ksr_call(
    slf: *mut ffi::PyObject,
    args: *mut *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
) -> *mut ffi::PyObject {
    unsafe {
        let idx = ffi::PyLong_AsLong(slf);
        if idx < 0 {
            ffi::PyErr_Clear();
            return raise(ffi::PyExc_RuntimeError, c"bad KSR function");
        }
        let p = CURRENT.with(|c| c.get());
        if p.is_null() {
            return raise(
                ffi::PyExc_RuntimeError,
                c"KSR function called outside of a message",
            );
        }
        // SAFETY: see `with_ctx`.
        let ctx = &mut *p;
        let table = vm::Host::ksr_table(ctx);
        let Some(e) = table.get(idx as u32) else {
            return raise(ffi::PyExc_RuntimeError, c"bad KSR function");
        };
        let params = &e.sig.params;
        let n = params.len().min(MAX_PARAMS);
        if nargs as usize != params.len() {
            let msg = format!(
                "KSR.{}{}{}() takes {} arguments ({nargs} given)",
                e.sig.module,
                if e.sig.module.is_empty() { "" } else { "." },
                e.sig.name,
                params.len()
            );
            let msg = CString::new(msg).unwrap_or_default();
            return raise(ffi::PyExc_TypeError, &msg);
        }
        let mut vals: [Value; MAX_PARAMS] = Default::default();
        for i in 0..n {
            match arg_value(*args.add(i), params[i]) {
                Some(v) => vals[i] = v,
                None => {
                    let msg = format!(
                        "KSR.{}.{}(): argument {} must be {}",
                        e.sig.module,
                        e.sig.name,
                        i + 1,
                        if params[i] == ParamType::Int {
                            "int"
                        } else {
                            "str"
                        }
                    );
                    let msg = CString::new(msg).unwrap_or_default();
                    return raise(ffi::PyExc_TypeError, &msg);
                }
            }
        }
        let ret = e.sig.ret;
        let r = (e.func)(ctx, &vals[..n]);
        ret_value(r, ret)
    }
}

/// `KSR.x.exit()`: ends the run like the cfg `exit` (raises `SystemExit`, which is also what
/// `sys.exit()` does in a Kamailio Python script).
unsafe extern "C" fn x_exit(
    _slf: *mut ffi::PyObject,
    _args: *mut *mut ffi::PyObject,
    _nargs: ffi::Py_ssize_t,
) -> *mut ffi::PyObject {
    unsafe { raise(ffi::PyExc_SystemExit, c"ksr-exit") }
}

/// `KSR.x.drop()`: `drop` — exit and do not forward.
unsafe extern "C" fn x_drop(
    _slf: *mut ffi::PyObject,
    _args: *mut *mut ffi::PyObject,
    _nargs: ffi::Py_ssize_t,
) -> *mut ffi::PyObject {
    with_ctx(|c| c.drop = true);
    unsafe { raise(ffi::PyExc_SystemExit, c"ksr-drop") }
}

/// `KSR.x.modf(name, ...)`.
unsafe extern "C" fn x_modf(
    _slf: *mut ffi::PyObject,
    args: *mut *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
) -> *mut ffi::PyObject {
    unsafe {
        if nargs < 1 {
            return raise(ffi::PyExc_TypeError, c"KSR.x.modf() needs a function name");
        }
        let mut vals = Vec::with_capacity(nargs as usize);
        for i in 0..nargs as usize {
            match arg_value(*args.add(i), ParamType::Str) {
                Some(v) => vals.push(v),
                None => return raise(ffi::PyExc_TypeError, c"KSR.x.modf() takes str arguments"),
            }
        }
        let name = String::from_utf8_lossy(vals[0].as_bytes().unwrap_or_default()).into_owned();
        match with_ctx(|c| modf(c, MODNAME, &name, &vals[1..])) {
            Some(r) => ffi::PyLong_FromLongLong(r),
            None => raise(
                ffi::PyExc_RuntimeError,
                c"KSR function called outside of a message",
            ),
        }
    }
}

/// Method definitions live for the whole process (CPython keeps a pointer to them in every
/// function object); one per (name, C function), shared by all workers and reloads.
static DEFS: Mutex<Option<HashMap<(String, usize), usize>>> = Mutex::new(None);

fn method_def(name: &str, f: ffi::PyCFunctionFast) -> *mut ffi::PyMethodDef {
    let mut g = DEFS.lock().unwrap_or_else(|e| e.into_inner());
    let map = g.get_or_insert_with(HashMap::new);
    let key = (name.to_string(), f as usize);
    if let Some(p) = map.get(&key) {
        return *p as *mut ffi::PyMethodDef;
    }
    let cname: &'static CStr = Box::leak(
        CString::new(name)
            .unwrap_or_else(|_| c"ksr".into())
            .into_boxed_c_str(),
    );
    let def = Box::leak(Box::new(ffi::PyMethodDef {
        ml_name: cname.as_ptr(),
        ml_meth: ffi::PyMethodDefPointer { PyCFunctionFast: f },
        ml_flags: ffi::METH_FASTCALL,
        ml_doc: std::ptr::null(),
    }));
    let p = def as *mut ffi::PyMethodDef;
    map.insert(key, p as usize);
    p
}

/// A Python function object for `f`, with `slf` as its bound self.
fn c_function<'py>(
    py: Python<'py>,
    name: &str,
    f: ffi::PyCFunctionFast,
    slf: Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let def = method_def(name, f);
    // SAFETY: GIL held; `def` lives for the process; `slf` is a valid object (the new
    // function takes its own reference).
    unsafe {
        Bound::from_owned_ptr_or_err(
            py,
            ffi::PyCFunction_NewEx(def, slf.as_ptr(), std::ptr::null_mut()),
        )
    }
}

/// Builds the `KSR` module from the table.
fn build_ksr<'py>(py: Python<'py>, core: &'static Core) -> PyResult<Bound<'py, PyModule>> {
    let ksr = PyModule::new(py, "KSR")?;
    let mut subs: HashMap<&str, Bound<'py, PyModule>> = HashMap::new();
    for (idx, e) in core.ksr.exports() {
        if !e.sig.kemi {
            continue;
        }
        let f = c_function(py, &e.sig.name, ksr_call, idx.into_pyobject(py)?.into_any())?;
        if e.sig.module.is_empty() {
            ksr.setattr(e.sig.name.as_str(), f)?;
        } else {
            let m = match subs.get(e.sig.module.as_str()) {
                Some(m) => m.clone(),
                None => {
                    let m = PyModule::new(py, &format!("KSR.{}", e.sig.module))?;
                    ksr.setattr(e.sig.module.as_str(), &m)?;
                    subs.insert(e.sig.module.as_str(), m.clone());
                    m
                }
            };
            m.setattr(e.sig.name.as_str(), f)?;
        }
    }
    let x = PyModule::new(py, "KSR.x")?;
    let none = py.None().into_bound(py);
    x.setattr("exit", c_function(py, "exit", x_exit, none.clone())?)?;
    x.setattr("drop", c_function(py, "drop", x_drop, none.clone())?)?;
    x.setattr("modf", c_function(py, "modf", x_modf, none)?)?;
    ksr.setattr("x", x)?;
    Ok(ksr)
}

/// The object passed as `msg` to the handler's methods. Kamailio's legacy `msg` methods
/// (`getMethod()`, `rewrite_ruri()`, ...) are not provided: scripts use `KSR`.
#[pyclass(name = "SipMsg", module = "KSR", frozen)]
struct SipMsg;

/// A Python exception as Kamailio logs it: the formatted traceback.
fn describe(py: Python<'_>, e: &PyErr) -> String {
    let formatted = py.import("traceback").and_then(|tb| {
        let lines = tb.call_method1(
            "format_exception",
            (e.get_type(py), e.value(py), e.traceback(py)),
        )?;
        let joined = PyString::new(py, "").call_method1("join", (lines,))?;
        joined.extract::<String>()
    });
    formatted.unwrap_or_else(|_| e.to_string())
}

thread_local! {
    static THREAD_STATE_KEPT: Cell<bool> = const { Cell::new(false) };
}

/// Keeps this worker thread's Python thread state for the thread's whole life. Without it,
/// every message's GIL acquisition (`PyGILState_Ensure`) would create a thread state and its
/// release destroy it again, since nothing else holds one on a worker thread.
fn keep_thread_state() {
    if THREAD_STATE_KEPT.with(|k| k.replace(true)) {
        return;
    }
    // Initializes the interpreter if needed (pyo3 `auto-initialize`).
    Python::attach(|_| {});
    // SAFETY: the interpreter is initialized and this thread does not hold the GIL here
    // (engines are created outside any script call): Ensure takes it and counts one use
    // that is never released, SaveThread gives the GIL back while keeping the state.
    unsafe {
        ffi::PyGILState_Ensure();
        ffi::PyEval_SaveThread();
    }
}

/// A loaded script: the handler object and its cached entry-point methods.
struct Loaded {
    handler: Py<PyAny>,
    entry: [Option<Py<PyAny>>; 3],
    generation: u64,
}

/// Options from the `app_python3` parameters.
#[derive(Clone, Debug)]
pub struct PythonOptions {
    pub script: PathBuf,
    pub mod_init: String,
    pub child_init: String,
}

impl PythonOptions {
    pub fn from_params(p: &runtime::modules::ModParams) -> PythonOptions {
        PythonOptions {
            script: PathBuf::from(runtime::modules::app_python3::script(p)),
            mod_init: p.str_or("mod_init_function", "mod_init"),
            child_init: p.str_or("child_init_method", "child_init"),
        }
    }
}

/// One worker's view of the interpreter: its KSR module, its script module and handler.
pub struct PythonEngine {
    core: &'static Core,
    opts: PythonOptions,
    rank: i32,
    names: EntryNames,
    ksr: Py<PyModule>,
    msg: Py<PyAny>,
    state: RefCell<Loaded>,
    depth: Cell<u32>,
}

/// Runs the script as a module and returns its handler (after `child_init(rank)`).
fn load_script(
    py: Python<'_>,
    ksr: &Bound<'_, PyModule>,
    opts: &PythonOptions,
    rank: i32,
) -> Result<Py<PyAny>, String> {
    let script = &opts.script;
    let code = std::fs::read_to_string(script)
        .map_err(|e| format!("cannot read {}: {e}", script.display()))?;
    let code =
        CString::new(code).map_err(|_| format!("{}: NUL byte in the script", script.display()))?;
    let file = CString::new(script.display().to_string())
        .map_err(|_| format!("{}: bad path", script.display()))?;
    let stem = script
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("ksr_script");
    let modname = CString::new(stem).unwrap_or_else(|_| c"ksr_script".into());
    let sys = py.import("sys").map_err(|e| describe(py, &e))?;
    let prep = || -> PyResult<()> {
        // `import KSR` in this worker's script gives this worker's table.
        sys.getattr("modules")?
            .cast_into::<PyDict>()?
            .set_item("KSR", ksr)?;
        // Like Kamailio: modules next to the script can be imported.
        let dir = script
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .display()
            .to_string();
        let path = sys.getattr("path")?;
        if !path.contains(&dir)? {
            path.call_method1("insert", (0, dir))?;
        }
        Ok(())
    };
    prep().map_err(|e| describe(py, &e))?;
    let m = PyModule::from_code(py, &code, &file, &modname)
        .map_err(|e| format!("{}: {}", script.display(), describe(py, &e)))?;
    let init = m.getattr(opts.mod_init.as_str()).map_err(|_| {
        format!(
            "{}: the script has no function {}()",
            script.display(),
            opts.mod_init
        )
    })?;
    let handler = init.call0().map_err(|e| {
        format!(
            "{}: {}(): {}",
            script.display(),
            opts.mod_init,
            describe(py, &e)
        )
    })?;
    if handler.is_none() {
        return Err(format!(
            "{}: {}() returned None instead of the handler object",
            script.display(),
            opts.mod_init
        ));
    }
    let ci = handler.getattr(opts.child_init.as_str()).map_err(|_| {
        format!(
            "{}: the handler object has no method {}()",
            script.display(),
            opts.child_init
        )
    })?;
    let r = ci.call1((rank,)).map_err(|e| {
        format!(
            "{}: {}({rank}): {}",
            script.display(),
            opts.child_init,
            describe(py, &e)
        )
    })?;
    match r.extract::<i64>() {
        Ok(v) if v >= 0 => Ok(handler.unbind()),
        Ok(v) => Err(format!(
            "{}: {}({rank}) returned {v}",
            script.display(),
            opts.child_init
        )),
        Err(_) => Err(format!(
            "{}: method {}() should return an int",
            script.display(),
            opts.child_init
        )),
    }
}

impl PythonEngine {
    pub fn load(
        core: &'static Core,
        opts: PythonOptions,
        rank: i32,
    ) -> Result<PythonEngine, String> {
        let names = EntryNames::from_core(core);
        keep_thread_state();
        Python::attach(|py| {
            let ksr = build_ksr(py, core).map_err(|e| format!("building KSR: {e}"))?;
            let msg = Py::new(py, SipMsg).map_err(|e| format!("{e}"))?.into_any();
            let handler =
                with_boot_ctx(&CURRENT, core, rank, || load_script(py, &ksr, &opts, rank))?;
            let loaded = Self::entries(py, &names, handler, core.m.app_python3.reload.get());
            if loaded.entry[0].is_none() {
                return Err(format!(
                    "{}: the handler object has no method {}()",
                    opts.script.display(),
                    names.request
                ));
            }
            Ok(PythonEngine {
                core,
                opts,
                rank,
                names,
                ksr: ksr.unbind(),
                msg,
                state: RefCell::new(loaded),
                depth: Cell::new(0),
            })
        })
    }

    fn entries(py: Python<'_>, names: &EntryNames, handler: Py<PyAny>, generation: u64) -> Loaded {
        let get = |n: &str| {
            handler
                .bind(py)
                .getattr(n)
                .ok()
                .filter(|f| f.is_callable())
                .map(|f| f.unbind())
        };
        let entry = [get(&names.request), get(&names.reply), get(&names.onsend)];
        Loaded {
            handler,
            entry,
            generation,
        }
    }

    /// Reloads the script when `app_python.reload` was called since it was loaded. A script
    /// that fails to load is logged and the old code keeps serving.
    fn maybe_reload(&self, py: Python<'_>) {
        let want = self.core.m.app_python3.reload.get();
        if self.state.borrow().generation == want {
            return;
        }
        runtime::klog!(
            L_INFO,
            MODNAME,
            "reloading {} (generation {want})",
            self.opts.script.display()
        );
        let r = with_boot_ctx(&CURRENT, self.core, self.rank, || {
            load_script(py, self.ksr.bind(py), &self.opts, self.rank)
        });
        match r {
            Ok(h) => {
                let l = Self::entries(py, &self.names, h, want);
                if l.entry[0].is_none() {
                    runtime::klog!(
                        L_ERR,
                        MODNAME,
                        "reload: {}: no method {}(), keeping the old script",
                        self.opts.script.display(),
                        self.names.request
                    );
                    self.state.borrow_mut().generation = want;
                } else {
                    *self.state.borrow_mut() = l;
                }
            }
            Err(e) => {
                runtime::klog!(L_ERR, MODNAME, "reload failed, keeping the old script: {e}");
                self.state.borrow_mut().generation = want;
            }
        }
    }

    fn method<'py>(&self, py: Python<'py>, target: RouteTarget<'_>) -> Option<Bound<'py, PyAny>> {
        let st = self.state.borrow();
        match EntryNames::slot(target) {
            Some(i) => st.entry[i].as_ref().map(|f| f.bind(py).clone()),
            None => st
                .handler
                .bind(py)
                .getattr(self.names.of(target))
                .ok()
                .filter(|f| f.is_callable()),
        }
    }
}

impl RouteEngine for PythonEngine {
    fn run(&self, ctx: &mut Ctx, target: RouteTarget<'_>) -> Outcome {
        Python::attach(|py| {
            if self.depth.get() == 0 {
                self.maybe_reload(py);
            }
            let name = self.names.of(target);
            let Some(f) = self.method(py, target) else {
                if !matches!(target, RouteTarget::Reply | RouteTarget::OnSend) {
                    runtime::klog!(L_ERR, MODNAME, "{} not found or is not callable", name);
                }
                return Outcome::default();
            };
            let msg = self.msg.bind(py);
            let saved = CURRENT.with(|c| c.replace(ctx as *mut Ctx));
            self.depth.set(self.depth.get() + 1);
            let r = match target {
                RouteTarget::Event(n) => f.call1((msg, n)),
                _ => f.call1((msg,)),
            };
            self.depth.set(self.depth.get() - 1);
            CURRENT.with(|c| c.set(saved));
            match r {
                Ok(v) => Outcome {
                    code: v.extract::<i64>().map(|c| c as i32).unwrap_or(1),
                    exit: false,
                    drop: ctx.drop,
                    missing: false,
                },
                Err(e) if e.is_instance_of::<PySystemExit>(py) => {
                    runtime::klog!(L_DBG, MODNAME, "{name}(): exit");
                    Outcome {
                        code: 0,
                        exit: true,
                        drop: ctx.drop,
                        missing: false,
                    }
                }
                Err(e) => {
                    runtime::klog!(
                        L_ERR,
                        MODNAME,
                        "apy_exec: {name}(None): Unhandled exception in the Python code:\n{}",
                        describe(py, &e).trim_end()
                    );
                    Outcome {
                        code: -1,
                        exit: true,
                        drop: ctx.drop,
                        missing: false,
                    }
                }
            }
        })
    }

    fn exists(&self, target: RouteTarget<'_>) -> bool {
        Python::attach(|py| self.method(py, target).is_some())
    }

    fn name(&self) -> &'static str {
        "python"
    }
}

/// Creates each worker's Python engine from the `app_python3` parameters.
pub struct PythonFactory {
    pub opts: PythonOptions,
}

impl EngineFactory for PythonFactory {
    fn create(&self, core: &'static Core, rank: i32) -> Result<Rc<dyn RouteEngine>, String> {
        Ok(Rc::new(PythonEngine::load(core, self.opts.clone(), rank)?))
    }
}
