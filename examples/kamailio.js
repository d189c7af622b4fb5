// Stateless proxy/responder in JavaScript: the routing of examples/kamailio.cfg through KEMI
// (app_jsdt), the same as examples/kamailio.lua and examples/kamailio.py.

var FLT_SEEN = 1;

function ksr_request_route() {
    // Loop protection.
    if (KSR.maxfwd.process_maxfwd(10) < 0) {
        KSR.sl.sl_send_reply(483, "Too Many Hops");
        return 1;
    }
    KSR.setflag(FLT_SEEN);
    KSR.xlog.xinfo("$rm from $si:$sp to $ru (call-id $ci)\n");

    if (KSR.is_myself_ruri()) {
        ksr_route_local();
        KSR.x.exit();
    }
    // Not for us: relay statelessly.
    if (KSR.forward() < 0) {
        KSR.sl.sl_send_reply(500, "Forwarding failed");
    }
    return 1;
}

function ksr_route_local() {
    var m = KSR.kx.get_method();
    if (m == "OPTIONS") {
        KSR.hdr.append_to_reply("X-Served-By: " + KSR.kx.get_rcvip() + ":" + KSR.kx.get_rcvport() + "\r\n");
        KSR.sl.sl_send_reply(200, "Alive");
    } else if (m == "ACK") {
        return;
    } else if (m == "REGISTER" || m == "INVITE") {
        KSR.sl.sl_send_reply(404, "Not here");
    } else {
        KSR.sl.sl_send_reply(405, "Method Not Allowed");
    }
}

function ksr_reply_route() {
    KSR.dbg("reply " + KSR.pv.get("$rs") + " for " + KSR.pv.get("$ci") + "\n");
}
