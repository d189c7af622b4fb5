# Stateless proxy/responder in Python: the routing of examples/kamailio.cfg through KEMI
# (app_python3), the same as examples/kamailio.lua and examples/kamailio.js.
#
# Kamailio's conventions: mod_init() returns the handler object; its ksr_* methods route.
# A sub-route returning -255 tells its caller to stop (the cfg `exit`); sys.exit() or
# KSR.x.exit() stop the whole run directly.

import KSR

FLT_SEEN = 1


def mod_init():
    return kamailio()


class kamailio:
    def child_init(self, rank):
        return 0

    def ksr_request_route(self, msg):
        # Loop protection.
        if KSR.maxfwd.process_maxfwd(10) < 0:
            KSR.sl.sl_send_reply(483, "Too Many Hops")
            return 1
        KSR.setflag(FLT_SEEN)
        KSR.xlog.xinfo("$rm from $si:$sp to $ru (call-id $ci)\n")

        if KSR.is_myself_ruri():
            self.ksr_route_local(msg)
            KSR.x.exit()
        # Not for us: relay statelessly.
        if KSR.forward() < 0:
            KSR.sl.sl_send_reply(500, "Forwarding failed")
        return 1

    def ksr_route_local(self, msg):
        m = KSR.kx.get_method()
        if m == "OPTIONS":
            KSR.hdr.append_to_reply(
                "X-Served-By: %s:%s\r\n" % (KSR.kx.get_rcvip(), KSR.kx.get_rcvport())
            )
            KSR.sl.sl_send_reply(200, "Alive")
        elif m == "ACK":
            return -255
        elif m in ("REGISTER", "INVITE"):
            KSR.sl.sl_send_reply(404, "Not here")
        else:
            KSR.sl.sl_send_reply(405, "Method Not Allowed")
        return 1

    def ksr_reply_route(self, msg):
        KSR.dbg("reply %s for %s\n" % (KSR.pv.get("$rs"), KSR.pv.get("$ci")))
        return 1
