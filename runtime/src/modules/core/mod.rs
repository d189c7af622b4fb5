//! The core's own exports: `KSR.*`, `KSR.hdr.*`, `KSR.pv.*` and the native core actions
//! (`forward`, `setflag`, `seturi`, ...). Always loaded.

use super::{ModuleDef, Registrar};

pub static MODULE: ModuleDef = ModuleDef {
    name: "core",
    params: &[],
    register,
    init: None,
    notice: None,
};

fn register(_r: &mut Registrar<'_>) {}
