//! Parser, evaluation and cache tests over a toy host with a few pseudo-variable classes
//! shaped like the runtime's (`$var`, `$avp`, `$hdr`, `$sht`, `$xavp`, `$ru`, ...).

use super::*;
use crate::host::Host;
use crate::ksr::KsrTable;
use std::sync::OnceLock;

#[derive(Default)]
struct Ctx {
    ru: String,
    vars: Vec<(String, Value)>,
    hdrs: Vec<(String, String)>,
    sht: Vec<(String, Value)>,
    rc: i64,
    calls: u32,
}

impl Ctx {
    fn new() -> Ctx {
        Ctx {
            ru: "sip:alice@example.com;transport=udp".into(),
            hdrs: vec![
                ("Via".into(), "SIP/2.0/UDP a".into()),
                ("Via".into(), "SIP/2.0/UDP b".into()),
                (
                    "From".into(),
                    "\"Al\" <sip:alice@example.com>;tag=12".into(),
                ),
            ],
            ..Ctx::default()
        }
    }

    fn var(&self, n: &str) -> Value {
        self.vars
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.clone())
            .unwrap_or(Value::Null)
    }

    fn set_var(&mut self, n: &str, v: Value) {
        self.vars.retain(|(k, _)| k != n);
        self.vars.push((n.into(), v));
    }
}

impl Host for Ctx {
    fn ksr_table(&self) -> &'static KsrTable<Self> {
        static T: OnceLock<KsrTable<Ctx>> = OnceLock::new();
        T.get_or_init(KsrTable::new)
    }

    fn pv_registry(&self) -> &'static PvRegistry<Self> {
        registry()
    }
}

fn name_text(ctx: &mut Ctx, p: &PvParam) -> Option<String> {
    param_bytes(ctx, p).map(|b| String::from_utf8_lossy(&b).into_owned())
}

fn get_ru(c: &mut Ctx, _: &PvSpec) -> Value {
    c.calls += 1;
    Value::str(&c.ru)
}

fn set_ru(c: &mut Ctx, _: &PvSpec, v: &Value) -> Result<(), PvError> {
    match v {
        Value::Str(s) => {
            c.ru = String::from_utf8_lossy(s).into_owned();
            Ok(())
        }
        _ => Err(PvError::BadValue("string expected".into())),
    }
}

fn get_ru_user(c: &mut Ctx, _: &PvSpec) -> Value {
    let u = c.ru.split(['@', ':']).nth(1).unwrap_or("").to_string();
    Value::from(u)
}

fn get_ru_domain(c: &mut Ctx, _: &PvSpec) -> Value {
    let d = c.ru.split('@').nth(1).unwrap_or("");
    Value::from(d.split(';').next().unwrap_or(""))
}

fn parse_plain(s: &str) -> Result<PvParam, String> {
    Ok(PvParam::Str(Bytes::copy_from_slice(s.as_bytes())))
}

fn get_var(c: &mut Ctx, s: &PvSpec) -> Value {
    match name_text(c, &s.param) {
        Some(n) => c.var(&n),
        None => Value::Null,
    }
}

fn set_var(c: &mut Ctx, s: &PvSpec, v: &Value) -> Result<(), PvError> {
    let n = name_text(c, &s.param).ok_or(PvError::Failed("no name".into()))?;
    c.set_var(&n, v.clone());
    Ok(())
}

fn parse_dyn(s: &str, p: &dyn PvParser) -> Result<PvParam, String> {
    parse_dynamic_name(s, p).map_err(|e| e.to_string())
}

fn get_hdr(c: &mut Ctx, s: &PvSpec) -> Value {
    let Some(n) = name_text(c, &s.param) else {
        return Value::Null;
    };
    let all: Vec<String> = c
        .hdrs
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(&n))
        .map(|(_, v)| v.clone())
        .collect();
    match index_of(c, s) {
        Some(ResolvedIndex::None) => all.first().map_or(Value::Null, |v| Value::from(v.as_str())),
        Some(ResolvedIndex::All) => Value::from(all.join(",")),
        Some(ResolvedIndex::At(i)) => position(i, all.len())
            .and_then(|k| all.get(k))
            .map_or(Value::Null, |v| Value::from(v.as_str())),
        None => Value::Null,
    }
}

/// `$sht(table=>key)`: the key is a format string.
fn parse_sht(s: &str, p: &dyn PvParser) -> Result<PvParam, String> {
    let (t, k) = s.split_once("=>").ok_or("expected table=>key")?;
    let f = p.parse_format(k).map_err(|e| e.to_string())?;
    Ok(PvParam::Custom(Arc::new((t.to_string(), f))))
}

fn sht_key(c: &mut Ctx, s: &PvSpec) -> Option<String> {
    let PvParam::Custom(a) = &s.param else {
        return None;
    };
    let (t, f) = a.downcast_ref::<(String, Format)>()?;
    let k = format(c, f);
    Some(format!("{t}/{}", String::from_utf8_lossy(&k)))
}

fn get_sht(c: &mut Ctx, s: &PvSpec) -> Value {
    let Some(k) = sht_key(c, s) else {
        return Value::Null;
    };
    c.sht
        .iter()
        .find(|(n, _)| *n == k)
        .map_or(Value::Null, |(_, v)| v.clone())
}

fn set_sht(c: &mut Ctx, s: &PvSpec, v: &Value) -> Result<(), PvError> {
    let k = sht_key(c, s).ok_or(PvError::Failed("bad key".into()))?;
    c.sht.retain(|(n, _)| *n != k);
    c.sht.push((k, v.clone()));
    Ok(())
}

/// `$xavp(a[0]=>b)`: kept as text; the toy getter just echoes it.
fn parse_xavp(s: &str) -> Result<PvParam, String> {
    if s.is_empty() || s.starts_with("=>") {
        return Err("bad xavp name".into());
    }
    Ok(PvParam::Str(Bytes::copy_from_slice(s.as_bytes())))
}

fn get_echo(c: &mut Ctx, s: &PvSpec) -> Value {
    name_text(c, &s.param).map_or(Value::Null, Value::from)
}

fn get_rc(c: &mut Ctx, _: &PvSpec) -> Value {
    Value::Int(c.rc)
}

fn get_zero(_: &mut Ctx, _: &PvSpec) -> Value {
    Value::Int(0)
}

fn get_null(_: &mut Ctx, _: &PvSpec) -> Value {
    Value::Null
}

fn get_si(_: &mut Ctx, _: &PvSpec) -> Value {
    Value::from_static("10.0.0.1")
}

fn get_from(c: &mut Ctx, _: &PvSpec) -> Value {
    Value::from(c.hdrs[2].1.clone())
}

fn registry() -> &'static PvRegistry<Ctx> {
    static R: OnceLock<PvRegistry<Ctx>> = OnceLock::new();
    R.get_or_init(|| {
        let mut r = PvRegistry::new();
        let plain = |name, get: PvGetFn<Ctx>, set: Option<PvSetFn<Ctx>>| PvClass {
            name,
            get,
            set,
            parse_name: None,
            name_required: false,
            takes_index: false,
        };
        r.add(plain("ru", get_ru, Some(set_ru)));
        r.add(plain("rU", get_ru_user, None));
        r.add(plain("rd", get_ru_domain, None));
        r.add(plain("fu", get_ru, None));
        r.add(plain("si", get_si, None));
        r.add(plain("T_branch_idx", get_zero, None));
        r.add(plain("?", get_rc, None));
        r.add(plain("rc", get_rc, None));
        r.add(plain("retcode", get_rc, None));
        r.add(plain("null", get_null, None));
        r.add(plain("ruri.user", get_ru_user, None));
        r.add(plain("hdr.from", get_from, None));
        r.add(PvClass {
            name: "var",
            get: get_var,
            set: Some(set_var),
            parse_name: Some(parse_plain),
            name_required: true,
            takes_index: false,
        });
        let avp = r.add(PvClass {
            name: "avp",
            get: get_var,
            set: Some(set_var),
            parse_name: Some(parse_plain),
            name_required: true,
            takes_index: true,
        });
        r.set_dyn_name_parser(avp, parse_dyn);
        let hdr = r.add(PvClass {
            name: "hdr",
            get: get_hdr,
            set: None,
            parse_name: Some(parse_plain),
            name_required: true,
            takes_index: true,
        });
        r.set_dyn_name_parser(hdr, parse_dyn);
        let sht = r.add(PvClass {
            name: "sht",
            get: get_sht,
            set: Some(set_sht),
            parse_name: Some(parse_plain),
            name_required: true,
            takes_index: false,
        });
        r.set_dyn_name_parser(sht, parse_sht);
        r.add(PvClass {
            name: "xavp",
            get: get_echo,
            set: None,
            parse_name: Some(parse_xavp),
            name_required: true,
            takes_index: true,
        });
        r
    })
}

fn spec(t: &str) -> PvSpec {
    match parse_spec(t, registry()) {
        Ok(s) => s,
        Err(e) => panic!("{t}: {e}"),
    }
}

fn err(t: &str) -> PvParseError {
    match parse_spec(t, registry()) {
        Ok(s) => panic!("{t} parsed as {s:?}"),
        Err(e) => e,
    }
}

fn fmt_err(t: &str) -> PvParseError {
    match parse_format(t, registry()) {
        Ok(f) => panic!("{t} parsed as {f:?}"),
        Err(e) => e,
    }
}

fn class_of(t: &str) -> &'static str {
    let s = spec(t);
    registry().class(s.class).map_or("$", |c| c.name)
}

fn eval(ctx: &mut Ctx, t: &str) -> Value {
    get(ctx, &spec(t))
}

fn out(ctx: &mut Ctx, t: &str) -> String {
    let f = parse_format(t, registry()).unwrap_or_else(|e| panic!("{t}: {e}"));
    String::from_utf8_lossy(&format(ctx, &f)).into_owned()
}

#[test]
fn parses_every_form() {
    assert_eq!(class_of("$ru"), "ru");
    assert_eq!(class_of("$?"), "?");
    assert_eq!(class_of("$rc"), "rc");
    assert_eq!(class_of("$retcode"), "retcode");
    assert_eq!(class_of("$T_branch_idx"), "T_branch_idx");
    assert_eq!(class_of("$ruri.user"), "ruri.user");
    assert_eq!(class_of("$(ru)"), "ru");
    assert_eq!(class_of("$$"), "$");
    assert_eq!(class_of("$($)"), "$");

    let s = spec("$var(x)");
    assert!(matches!(&s.param, PvParam::Str(b) if &b[..] == b"x"));
    assert_eq!(&*s.text, "$var(x)");

    let s = spec("$avp(s:x)");
    assert!(matches!(&s.param, PvParam::Str(b) if &b[..] == b"s:x"));
    let s = spec("$avp(i:3)");
    assert!(matches!(&s.param, PvParam::Str(b) if &b[..] == b"i:3"));
    let s = spec("$avp($var(n))");
    assert!(matches!(&s.param, PvParam::Spec(inner) if &*inner.text == "$var(n)"));

    let s = spec("$hdr(From)");
    assert!(matches!(s.index, PvIndex::None));
    let s = spec("$(hdr(Via)[*])");
    assert!(matches!(s.index, PvIndex::All));
    let s = spec("$(hdr(Via)[-1])");
    assert!(matches!(s.index, PvIndex::Int(-1)));
    let s = spec("$(avp(x)[$var(i)])");
    assert!(matches!(&s.index, PvIndex::Dyn(i) if &*i.text == "$var(i)"));

    // Nested parentheses in names.
    let s = spec("$var(a(b)c)");
    assert!(matches!(&s.param, PvParam::Str(b) if &b[..] == b"a(b)c"));
    let s = spec("$xavp(a[0]=>b)");
    assert!(matches!(&s.param, PvParam::Str(b) if &b[..] == b"a[0]=>b"));
    let s = spec("$sht(t=>$si)");
    assert!(matches!(&s.param, PvParam::Custom(_)));

    let s = spec("$(var(x){s.substr,1,2}{s.len})");
    assert_eq!(s.trans.len(), 2);
    assert_eq!(&*s.trans[0].text, "{s.substr,1,2}");
    let s = spec("$(hdr(Via)[1]{s.len} {s.int})");
    assert_eq!(s.trans.len(), 2);
    let s = spec("$(ru{uri.user})");
    assert_eq!(s.trans.len(), 1);
    let s = spec("$(var(x){s.substr,$var(i),1})");
    assert!(matches!(&s.trans[0].params[0], TransParam::Pv(p) if &*p.text == "$var(i)"));
    let s = spec("$(var(x){re.subst,/a{2}/b/g})");
    assert_eq!(&*s.trans[0].text, "{re.subst,/a{2}/b/g}");
    // Blanks around the spec are ignored.
    assert_eq!(&*spec("  $ru ").text, "$ru");
}

#[test]
fn prefix_parsing_reports_the_length() {
    let (s, n) = parse_spec_prefix("$rU@$rd", registry()).unwrap();
    assert_eq!((&*s.text, n), ("$rU", 3));
    let (s, n) = parse_spec_prefix("$hdr(Via)[1]", registry()).unwrap();
    assert_eq!((&*s.text, n), ("$hdr(Via)", 9));
    let (_, n) = parse_spec_prefix("$(var(x){s.len})abc", registry()).unwrap();
    assert_eq!(n, 16);
    assert_eq!(locate_name("$fu;tag").unwrap(), 3);
    assert_eq!(locate_name("$$x").unwrap(), 2);
    assert_eq!(locate_name("$(a(b)c)d").unwrap(), 8);
    assert_eq!(locate_name("$var(x(y))z").unwrap(), 10);
    assert!(locate_name("$").is_err());
    assert!(locate_name("$var(x").is_err());
}

#[test]
fn errors_have_offsets() {
    let e = err("$nosuch");
    assert_eq!(e.offset, 1);
    assert!(e.message.contains("unknown pseudo-variable $nosuch"), "{e}");
    let e = err("$hdr");
    assert!(e.message.contains("expects an inner name"), "{e}");
    let e = err("$ru(x)");
    assert_eq!(e.offset, 3);
    assert!(e.message.contains("does not take an inner name"), "{e}");
    let e = err("$(ru[1])");
    assert_eq!(e.offset, 4);
    assert!(e.message.contains("does not take an index"), "{e}");
    let e = err("$var()");
    assert_eq!(e.offset, 5);
    let e = err("$var(x");
    assert_eq!(e.offset, 4);
    let e = err("$(hdr(Via)[x])");
    assert_eq!(e.offset, 11);
    assert!(e.message.contains("invalid index"), "{e}");
    let e = err("$(hdr(Via)[])");
    assert!(e.message.contains("empty index"), "{e}");
    let e = err("$(var(x){s.nosuch})");
    assert_eq!(e.offset, 11);
    assert!(
        e.message.contains("unknown transformation {s.nosuch}"),
        "{e}"
    );
    let e = err("$(var(x){zz.len})");
    assert_eq!(e.offset, 9);
    assert!(
        e.message.contains("unknown transformation class 'zz'"),
        "{e}"
    );
    let e = err("$(var(x){json.parse,a})");
    assert!(e.message.contains("not implemented"), "{e}");
    let e = err("$(var(x){s.substr,1})");
    assert!(e.message.contains("needs more parameters"), "{e}");
    let e = err("$(var(x){s.substr,1,-2})");
    assert!(e.message.contains("negative"), "{e}");
    let e = err("$(var(x){s.substr,a,1})");
    assert_eq!(e.offset, 18);
    let e = err("$(var(x){s.len,1})");
    assert!(e.message.contains("takes no parameters"), "{e}");
    let e = err("$(var(x){s.len}");
    assert_eq!(e.offset, 15);
    assert!(e.message.contains("')'"), "{e}");
    let e = err("$(var(x){s.len)");
    assert!(e.message.contains("'}'"), "{e}");
    let e = err("$(var(x){s.substr,$nosuch,1})");
    assert_eq!(e.offset, 19);
    let e = err("$(var(x){re.subst,/a/b})");
    assert!(e.message.contains("missing separator"), "{e}");
    let e = err("$(var(x){param.value,a,;;})");
    assert!(e.message.contains("separator"), "{e}");
    let e = err("$ru garbage");
    assert_eq!(e.offset, 3);
    let e = err("$(var(x)x)");
    assert_eq!(e.offset, 8);
    let e = err("$(ru");
    assert!(e.message.contains("missing ')'"), "{e}");
    let e = err("$");
    assert!(e.message.contains("missing pseudo-variable name"), "{e}");
    let e = err("ru");
    assert_eq!(e.offset, 0);
    let e = err("$sht(nokey)");
    assert!(e.message.contains("table=>key"), "{e}");
    let e = err("$(hdr(Via)[+])");
    assert!(e.message.contains("not supported"), "{e}");
    // Hostile nesting is refused instead of exhausting the stack.
    let deep = format!("{}x{}", "$avp(".repeat(10_000), ")".repeat(10_000));
    let e = parse_spec(&deep, registry()).err().map(|e| e.message);
    assert!(e.is_some_and(|m| m.contains("nested too deeply")));
    let deep = format!("{}x{}", "$avp(".repeat(20), ")".repeat(20));
    assert!(parse_spec(&deep, registry()).is_ok());
    // Errors inside nested names are anchored in the outer text.
    let e = err("$avp($nosuch)");
    assert!(e.message.contains("$nosuch"), "{e}");
}

#[test]
fn format_strings() {
    let f = parse_format("$rU@$rd", registry()).unwrap();
    assert_eq!(f.parts.len(), 3);
    assert!(matches!(&f.parts[1], FormatPart::Lit(b) if &b[..] == b"@"));
    let f = parse_format("cost: 100$$ each", registry()).unwrap();
    assert_eq!(f.as_literal().as_deref(), Some(&b"cost: 100$ each"[..]));
    let f = parse_format("", registry()).unwrap();
    assert_eq!(f.as_literal().as_deref(), Some(&b""[..]));
    let f = parse_format("plain", registry()).unwrap();
    assert_eq!(f.as_literal().as_deref(), Some(&b"plain"[..]));
    let e = fmt_err("100$");
    assert_eq!(e.offset, 3);
    let e = fmt_err("a $ b");
    assert_eq!(e.offset, 3);
    let e = fmt_err("x=$ru.x");
    assert!(e.message.contains("$ru.x"), "{e}");
    assert_eq!(e.offset, 3);
    let e = fmt_err("[$var(x]");
    assert_eq!(e.offset, 5);
    assert!(has_pv("a$b"));
    assert!(!has_pv("ab"));
}

#[test]
fn evaluation_and_printing() {
    let mut c = Ctx::new();
    assert_eq!(out(&mut c, "$rU@$rd"), "alice@example.com");
    assert_eq!(
        out(&mut c, "$fu;tag"),
        "sip:alice@example.com;transport=udp;tag"
    );
    assert_eq!(out(&mut c, "[$var(none)]"), "[<null>]");
    assert_eq!(out(&mut c, "$hdr(Via)[1]"), "SIP/2.0/UDP a[1]");
    assert_eq!(out(&mut c, "$(hdr(Via)[1])"), "SIP/2.0/UDP b");
    assert_eq!(out(&mut c, "$(hdr(Via)[-1])"), "SIP/2.0/UDP b");
    assert_eq!(out(&mut c, "$(hdr(Via)[2])"), "<null>");
    assert_eq!(out(&mut c, "$(hdr(Via)[*])"), "SIP/2.0/UDP a,SIP/2.0/UDP b");
    assert_eq!(out(&mut c, "$$ru"), "$ru");
    c.rc = -2;
    assert_eq!(out(&mut c, "rc=$? $rc $retcode"), "rc=-2 -2 -2");

    set(&mut c, &spec("$var(x)"), &Value::from("abcdef")).unwrap();
    assert_eq!(eval(&mut c, "$(var(x){s.substr,1,2})"), Value::from("bc"));
    assert_eq!(eval(&mut c, "$(var(x){s.len})"), Value::Int(6));
    assert_eq!(
        eval(&mut c, "$(var(x){s.toupper}{s.substr,0,1})"),
        Value::from("A")
    );
    // A failed transformation reads as null and prints nothing.
    assert_eq!(eval(&mut c, "$(var(x){s.int})"), Value::Null);
    assert_eq!(out(&mut c, "[$(var(x){s.int})]"), "[]");
    assert_eq!(try_get(&mut c, &spec("$(var(x){s.int})")), None);
    assert_eq!(try_get(&mut c, &spec("$var(none)")), Some(Value::Null));
    // From the Kamailio oracle: a transformation of a null value fails, so it prints
    // nothing, while the null itself prints <null> ("[$(avp(none){s.len})][$avp(none)]").
    assert_eq!(
        out(&mut c, "[$(avp(none){s.len})][$avp(none)]"),
        "[][<null>]"
    );

    // Parameters from pseudo-variables are evaluated per use and must be integers.
    set(&mut c, &spec("$var(i)"), &Value::Int(2)).unwrap();
    assert_eq!(
        eval(&mut c, "$(var(x){s.substr,$var(i),1})"),
        Value::from("c")
    );
    set(&mut c, &spec("$var(i)"), &Value::Int(4)).unwrap();
    assert_eq!(
        eval(&mut c, "$(var(x){s.substr,$var(i),1})"),
        Value::from("e")
    );
    set(&mut c, &spec("$var(i)"), &Value::from("4")).unwrap();
    assert_eq!(eval(&mut c, "$(var(x){s.substr,$var(i),1})"), Value::Null);

    // Dynamic names.
    set(&mut c, &spec("$var(n)"), &Value::from("x")).unwrap();
    assert_eq!(eval(&mut c, "$avp($var(n))"), Value::from("abcdef"));
    set(&mut c, &spec("$var(h)"), &Value::from("From")).unwrap();
    assert_eq!(
        eval(&mut c, "$(hdr($var(h)){tobody.tag})"),
        Value::from("12")
    );
    set(&mut c, &spec("$sht(t=>k-$si)"), &Value::Int(7)).unwrap();
    assert_eq!(c.sht[0].0, "t/k-10.0.0.1");
    assert_eq!(eval(&mut c, "$sht(t=>k-$si)"), Value::Int(7));
    assert_eq!(out(&mut c, "$xavp(a[0]=>b)"), "a[0]=>b");

    // Writes.
    set(&mut c, &spec("$ru"), &Value::from("sip:bob@b.org")).unwrap();
    assert_eq!(out(&mut c, "$rU"), "bob");
    assert_eq!(
        set(&mut c, &spec("$rU"), &Value::from("x")),
        Err(PvError::ReadOnly)
    );
    assert_eq!(
        set(&mut c, &spec("$$"), &Value::from("x")),
        Err(PvError::ReadOnly)
    );
    assert!(matches!(
        set(&mut c, &spec("$ru"), &Value::Int(1)),
        Err(PvError::BadValue(_))
    ));
    // Like Kamailio, writing through a spec with transformations writes the variable.
    set(&mut c, &spec("$(var(y){s.len})"), &Value::from("zz")).unwrap();
    assert_eq!(eval(&mut c, "$var(y)"), Value::from("zz"));

    // Format helpers.
    let mut buf = Vec::new();
    format_into(
        &mut c,
        &parse_format("a$var(i)b", registry()).unwrap(),
        &mut buf,
    );
    assert_eq!(buf, b"a4b");
    let f = parse_format("$T_branch_idx", registry()).unwrap();
    assert_eq!(&format(&mut c, &f)[..], b"0");
    let mut v = Vec::new();
    push_value(&mut v, &Value::Int(i64::MIN));
    assert_eq!(v, b"-9223372036854775808");
}

#[test]
fn index_helpers() {
    assert_eq!(position(0, 3), Some(0));
    assert_eq!(position(2, 3), Some(2));
    assert_eq!(position(3, 3), None);
    assert_eq!(position(-1, 3), Some(2));
    assert_eq!(position(-3, 3), Some(0));
    assert_eq!(position(-4, 3), None);
    assert_eq!(position(0, 0), None);
    let mut c = Ctx::new();
    set(&mut c, &spec("$var(i)"), &Value::from("1")).unwrap();
    assert_eq!(index_of(&mut c, &spec("$(avp(x)[$var(i)])")), None);
    set(&mut c, &spec("$var(i)"), &Value::Int(-1)).unwrap();
    assert_eq!(
        index_of(&mut c, &spec("$(avp(x)[$var(i)])")),
        Some(ResolvedIndex::At(-1))
    );
    assert_eq!(
        index_of(&mut c, &spec("$avp(x)")),
        Some(ResolvedIndex::None)
    );
    assert_eq!(
        param_bytes(&mut c, &PvParam::Int(-5)).as_deref(),
        Some(&b"-5"[..])
    );
    assert_eq!(
        param_value(&mut c, &spec("$avp($var(i))").param),
        Some(Value::Int(-1))
    );
    assert_eq!(param_bytes(&mut c, &spec("$avp($var(zz))").param), None);
}

#[test]
fn cache_is_bounded_and_reuses_entries() {
    let reg = registry();
    let mut cache = PvCache::new(8);
    let a = cache.spec("$var(x)", reg).unwrap();
    let b = cache.spec("$var(x)", reg).unwrap();
    assert!(Arc::ptr_eq(&a, &b));
    // Like Kamailio's pv_cache_get, only the located name counts.
    let c2 = cache.spec("$var(x) trailing", reg).unwrap();
    assert!(Arc::ptr_eq(&a, &c2));
    assert!(cache.spec("$nosuch", reg).is_err());
    for i in 0..100 {
        cache.spec(&format!("$var(v{i})"), reg).unwrap();
        cache.format(&format!("x{i}$ru"), reg).unwrap();
        // A hot entry survives the churn.
        let again = cache.spec("$var(x)", reg).unwrap();
        assert!(Arc::ptr_eq(&a, &again));
        let (s, f) = cache.len();
        assert!(s <= 8 && f <= 8, "{s} {f}");
    }
    let f1 = cache.format("$rU@$rd", reg).unwrap();
    let f2 = cache.format("$rU@$rd", reg).unwrap();
    assert!(Arc::ptr_eq(&f1, &f2));
    let mut ctx = Ctx::new();
    assert_eq!(&format(&mut ctx, &f1)[..], b"alice@example.com");
    cache.clear();
    assert!(cache.is_empty());
}

#[test]
fn static_spec_without_transformations_calls_the_getter_once() {
    let mut c = Ctx::new();
    let s = spec("$ru");
    let _ = get(&mut c, &s);
    assert_eq!(c.calls, 1);
    let f = parse_format("$ru", registry()).unwrap();
    let b = format(&mut c, &f);
    assert_eq!(c.calls, 2);
    assert_eq!(&b[..], c.ru.as_bytes());
}
