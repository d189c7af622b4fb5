//! KEMI engines: each binds the same KSR table and implements
//! `runtime::engine::RouteEngine`. Lua today; Python and JavaScript to follow.

pub mod lua;
