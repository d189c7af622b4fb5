//! KEMI engines: Lua, Python and JavaScript, each binding the same KSR table.
