//! KEMI engines: each binds the same KSR table and implements
//! `runtime::engine::RouteEngine`: Lua (`app_lua`), Python 3 (`app_python3`) and
//! JavaScript (`app_jsdt`, on QuickJS).

mod common;
pub mod js;
pub mod lua;
pub mod python;

#[cfg(test)]
mod tests;
