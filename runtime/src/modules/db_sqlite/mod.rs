//! Kamailio's `db_sqlite` module. ksr's SQLite driver is built in (runtime::db), so loading
//! the module only makes `sqlite://` URLs the configs use explicit, as in Kamailio. Its two
//! per-file settings are refused rather than ignored: ignoring `db_set_readonly` would let
//! ksr write to a database the admin meant to protect.

use super::{InitCtx, ModuleDef, ParamDef, Registrar};

pub static MODULE: ModuleDef = ModuleDef {
    name: "db_sqlite",
    params: &[
        ParamDef::str("db_set_readonly").multi(),
        ParamDef::str("db_set_journal_mode").multi(),
    ],
    register,
    init: Some(init),
    notice: None,
};

fn register(_r: &mut Registrar<'_>) {}

fn init(i: &mut InitCtx<'_>) -> Result<(), String> {
    for p in ["db_set_readonly", "db_set_journal_mode"] {
        if i.params.get(p).is_some() {
            return Err(format!("parameter {p} is not supported yet"));
        }
    }
    Ok(())
}
