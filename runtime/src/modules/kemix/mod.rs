//! Kamailio's `kemix` module: `KSR.kx.*`, direct getters for what KEMI scripts read most
//! (`get_ruri`, `gete_ua`, `get_srcip`, ...), each the same as the matching pseudo-variable.
//! The `get` form returns nil when missing, `gete` an empty string, `getw` `<null>`.

use super::pv::msgpv as m;
use super::{ModuleDef, Registrar};
use crate::ctx::Ctx;
use vm::Value;
use vm::ksr::{ParamType::Str as S, RetType};
use vm::pv::{PvGetFn, PvIndex, PvParam, PvSpec};

pub static MODULE: ModuleDef = ModuleDef {
    name: "kemix",
    params: &[],
    register,
    init: None,
    notice: None,
};

fn read(ctx: &mut Ctx, get: PvGetFn<Ctx>) -> Value {
    let spec = PvSpec {
        class: 0,
        param: PvParam::None,
        index: PvIndex::None,
        trans: Box::new([]),
        text: "".into(),
    };
    get(ctx, &spec)
}

fn e(v: Value) -> Value {
    if v.is_null() { Value::from("") } else { v }
}

fn w(v: Value) -> Value {
    if v.is_null() {
        Value::from("<null>")
    } else {
        v
    }
}

macro_rules! getters {
    ($r:expr, $( $name:literal => $get:path ),* $(,)?) => {
        $( $r.kemi("kx", $name, &[], RetType::Xval, |c, _| read(c, $get)); )*
    };
}

macro_rules! getters_e {
    ($r:expr, $( $name:literal => $get:path ),* $(,)?) => {
        $( $r.kemi("kx", $name, &[], RetType::Xval, |c, _| e(read(c, $get))); )*
    };
}

macro_rules! getters_w {
    ($r:expr, $( $name:literal => $get:path ),* $(,)?) => {
        $( $r.kemi("kx", $name, &[], RetType::Xval, |c, _| w(read(c, $get))); )*
    };
}

fn register(r: &mut Registrar<'_>) {
    getters!(r,
        "get_ruri" => m::ruri, "get_ruser" => m::ruri_user, "get_rhost" => m::ruri_host,
        "get_ouri" => m::ouri, "get_furi" => m::from_uri, "get_fuser" => m::from_user,
        "get_fhost" => m::from_host, "get_turi" => m::to_uri, "get_tuser" => m::to_user,
        "get_thost" => m::to_host, "get_duri" => m::dst_uri, "get_srcuri" => m::src_uri,
        "get_ua" => m::user_agent, "get_srcip" => m::src_ip, "get_srcport" => m::src_port,
        "get_send_sock" => m::force_sock, "get_send_sock_name" => m::force_sock_name,
        "get_rcvip" => m::rcv_ip, "get_rcvport" => m::rcv_port, "get_rcvadvip" => m::rcv_adv_ip,
        "get_rcvadvport" => m::rcv_adv_port, "get_proto" => m::proto, "get_au" => m::auth_user,
        "get_method" => m::method, "get_body" => m::body, "get_callid" => m::callid,
        "get_msgbuf" => m::msg_buf,
    );
    getters_e!(r,
        "gete_ruser" => m::ruri_user, "gete_rhost" => m::ruri_host, "gete_fuser" => m::from_user,
        "gete_fhost" => m::from_host, "gete_tuser" => m::to_user, "gete_thost" => m::to_host,
        "gete_duri" => m::dst_uri, "gete_ua" => m::user_agent, "gete_au" => m::auth_user,
        "gete_body" => m::body,
    );
    getters_w!(r,
        "getw_ruser" => m::ruri_user, "getw_rhost" => m::ruri_host, "getw_fuser" => m::from_user,
        "getw_fhost" => m::from_host, "getw_tuser" => m::to_user, "getw_thost" => m::to_host,
        "getw_duri" => m::dst_uri, "getw_ua" => m::user_agent, "getw_au" => m::auth_user,
        "getw_body" => m::body,
    );
    r.kemi("kx", "get_nhuri", &[], RetType::Xval, |c, _| {
        c.dst_uri
            .clone()
            .or_else(|| c.msg.ruri().cloned())
            .map_or(Value::Null, Value::Str)
    });
    r.kemi("kx", "get_cturi", &[], RetType::Xval, |c, _| cturi(c));
    r.kemi("kx", "gete_cturi", &[], RetType::Xval, |c, _| e(cturi(c)));
    r.kemi("kx", "getw_cturi", &[], RetType::Xval, |c, _| w(cturi(c)));
    r.kemi("kx", "get_send_sock_port", &[], RetType::Int, |c, _| {
        read(c, m::force_sock_port)
    });
    r.kemi("kx", "get_protoid", &[], RetType::Int, |c, _| {
        read(c, m::proto_id)
    });
    r.kemi("kx", "get_status", &[], RetType::Int, |c, _| {
        match read(c, m::status) {
            Value::Null => Value::Int(-1),
            v => v,
        }
    });
    r.kemi("kx", "gets_status", &[], RetType::Xval, |c, _| {
        match c.msg.status() {
            Some(s) => Value::from(s.to_string()),
            None => Value::Null,
        }
    });
    r.kemi("kx", "get_bodylen", &[], RetType::Int, |c, _| {
        read(c, m::body_len)
    });
    r.kemi("kx", "get_msglen", &[], RetType::Int, |c, _| {
        read(c, m::msg_len)
    });
    r.kemi("kx", "get_msgtype", &[], RetType::Int, |c, _| {
        read(c, m::msg_type)
    });
    r.kemi("kx", "get_timestamp", &[], RetType::Int, |_, _| {
        Value::Int(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0),
        )
    });
    r.kemi("kx", "get_conid", &[], RetType::Int, |c, _| {
        Value::Int(c.rcv.conn.map_or(-1, |x| x as i64))
    });
    r.kemi("kx", "get_env", &[S], RetType::Xval, |_, a| {
        let n = super::core::actions::arg_bytes(a, 0);
        std::env::var(String::from_utf8_lossy(&n).as_ref()).map_or(Value::Null, Value::from)
    });
    r.kemi("kx", "get_envn", &[S], RetType::Int, |_, a| {
        let n = super::core::actions::arg_bytes(a, 0);
        Value::Int(
            std::env::var(String::from_utf8_lossy(&n).as_ref())
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0),
        )
    });
}

/// The URI of the first Contact.
fn cturi(c: &mut Ctx) -> Value {
    match c.msg.contacts() {
        Ok(Some(crate::sip::Contacts::List(l))) => l
            .first()
            .map_or(Value::Null, |na| Value::Str(na.uri_raw.clone())),
        Ok(Some(crate::sip::Contacts::Star)) => Value::from("*"),
        _ => Value::Null,
    }
}
