//! Transformations (`{s.len}`, `{uri.user}`, `{param.value,tag}` ...): functions from a value
//! (and evaluated parameters) to a new value. `None` means the transformation failed.

mod strs;
mod uri;

use crate::pv::TransFn;

pub struct TransDef {
    pub name: &'static str,
    pub func: TransFn,
    pub min_params: usize,
    pub max_params: usize,
    /// Numeric-looking parameters are passed as integers.
    pub int_params: bool,
    /// The whole parameter text is one value (`{re.subst,/a/b/g}`).
    pub raw_param: bool,
}

const fn def(name: &'static str, func: TransFn, min: usize, max: usize) -> TransDef {
    TransDef {
        name,
        func,
        min_params: min,
        max_params: max,
        int_params: true,
        raw_param: false,
    }
}

const fn def_str(name: &'static str, func: TransFn, min: usize, max: usize) -> TransDef {
    TransDef {
        name,
        func,
        min_params: min,
        max_params: max,
        int_params: false,
        raw_param: false,
    }
}

static TABLE: &[TransDef] = &[
    def("s.len", strs::len, 0, 0),
    def("s.int", strs::int, 0, 0),
    def("s.substr", strs::substr, 2, 2),
    def_str("s.select", strs::select, 2, 2),
    def("s.tolower", strs::tolower, 0, 0),
    def("s.toupper", strs::toupper, 0, 0),
    def("s.trim", strs::trim, 0, 0),
    def("s.rtrim", strs::rtrim, 0, 0),
    def("s.ltrim", strs::ltrim, 0, 0),
    def("s.strip", strs::strip, 1, 1),
    def("s.striptail", strs::striptail, 1, 1),
    def_str("s.prefixes", strs::prefixes, 0, 1),
    def_str("s.replace", strs::replace, 2, 2),
    def("s.encode.hexa", strs::encode_hexa, 0, 0),
    def("s.decode.hexa", strs::decode_hexa, 0, 0),
    def("s.numeric", strs::numeric, 0, 0),
    def("s.unquote", strs::unquote, 0, 0),
    def("s.unbracket", strs::unbracket, 0, 0),
    def("s.escape.common", strs::escape_common, 0, 0),
    def("s.unescape.common", strs::unescape_common, 0, 0),
    def("s.md5", strs::md5, 0, 0),
    def("s.encode.base64", strs::b64enc, 0, 0),
    def("s.decode.base64", strs::b64dec, 0, 0),
    def("s.dec2hex", strs::dec2hex, 0, 0),
    def("s.hex2dec", strs::hex2dec, 0, 0),
    def_str("s.ftime", strs::ftime, 1, 1),
    def("uri.user", uri::user, 0, 0),
    def("uri.host", uri::host, 0, 0),
    def("uri.domain", uri::host, 0, 0),
    def("uri.port", uri::port, 0, 0),
    def("uri.passwd", uri::passwd, 0, 0),
    def("uri.params", uri::params, 0, 0),
    def_str("uri.param", uri::param, 1, 1),
    def("uri.headers", uri::headers, 0, 0),
    def("uri.transport", uri::transport, 0, 0),
    def("uri.ttl", uri::ttl, 0, 0),
    def("uri.uparam", uri::uparam, 0, 0),
    def("uri.maddr", uri::maddr, 0, 0),
    def("uri.method", uri::method, 0, 0),
    def("uri.lr", uri::lr, 0, 0),
    def("uri.r2", uri::r2, 0, 0),
    def("uri.scheme", uri::scheme, 0, 0),
    def("uri.tosocket", uri::tosocket, 0, 0),
    def_str("param.value", uri::param_value, 1, 2),
    def("param.valueat", uri::param_valueat, 1, 2),
    def("param.name", uri::param_name, 1, 2),
    def_str("param.count", uri::param_count, 0, 1),
    def_str("param.in", uri::param_in, 1, 2),
    def("nameaddr.name", uri::na_name, 0, 0),
    def("nameaddr.uri", uri::na_uri, 0, 0),
    def("nameaddr.len", uri::na_len, 0, 0),
    def("tobody.uri", uri::tb_uri, 0, 0),
    def("tobody.display", uri::tb_display, 0, 0),
    def("tobody.tag", uri::tb_tag, 0, 0),
    def("tobody.user", uri::tb_user, 0, 0),
    def("tobody.host", uri::tb_host, 0, 0),
    def("tobody.params", uri::tb_params, 0, 0),
    def("line.count", strs::line_count, 0, 0),
    def("line.at", strs::line_at, 1, 1),
    def_str("line.sw", strs::line_sw, 1, 1),
    TransDef {
        name: "re.subst",
        func: strs::re_subst,
        min_params: 1,
        max_params: 1,
        int_params: false,
        raw_param: true,
    },
];

/// Finds a transformation by `class.name`.
pub fn lookup(name: &str) -> Option<&'static TransDef> {
    TABLE.iter().find(|d| d.name == name)
}

/// Every transformation ksr implements (for `ksr api` and docs).
pub fn all() -> impl Iterator<Item = &'static TransDef> {
    TABLE.iter()
}

/// Parses a Kamailio substitution `/re/repl/flags` into a regex, a replacement in the
/// `regex` crate's syntax (`\1` becomes `${1}`) and the global flag.
pub fn parse_subst_expr(expr: &[u8]) -> Option<(regex::Regex, String, bool)> {
    strs::parse_subst_public(expr)
}
