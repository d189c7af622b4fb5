//! `$sel(cfg_get.GROUP.VAR)` reads custom cfg variables (what Debian's default kamailio.cfg
//! does with `WITH_PSTN`), on ksr and on Kamailio 5.6 with the same cfg.

mod common;
use common::*;

fn reply(kamailio: bool) -> String {
    let cfg = root().join("tests/data/select.cfg");
    let s = if kamailio {
        start_kamailio(&cfg, &[])
    } else {
        start_ksr(&cfg, &[])
    };
    let c = client();
    let m = request(
        "MESSAGE",
        &format!("sip:x@127.0.0.1:{}", s.port),
        &c,
        "sel-1",
        "",
    );
    let r = exchange(&s, &c, &m).unwrap_or_default();
    status_line(&r).to_string()
}

#[test]
fn cfg_get_select_matches_kamailio() {
    let got = reply(false);
    // A select gives text, so `+ 1` concatenates (as Kamailio does).
    assert_eq!(got, "SIP/2.0 200 gw=192.0.2.7:5070 next=50701 e=empty");
    if kamailio_available() {
        assert_eq!(got, reply(true));
    }
}
