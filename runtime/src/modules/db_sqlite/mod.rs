//! Kamailio's `db_sqlite` module: the SQLite driver. ksr has it built in (`crate::db`), so
//! loading it only makes `sqlite://` URLs available the way a Kamailio cfg expects.

use super::{ModuleDef, ParamDef, Registrar};

pub static MODULE: ModuleDef = ModuleDef {
    name: "db_sqlite",
    params: &[ParamDef::str("db_set_readonly").multi()],
    register,
    init: None,
    notice: None,
};

fn register(_: &mut Registrar<'_>) {}
