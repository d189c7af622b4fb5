-- Stateless proxy/responder in Lua: the routing of examples/kamailio.cfg through KEMI.

local FLT_SEEN = 1

function ksr_request_route()
    -- Loop protection.
    if KSR.maxfwd.process_maxfwd(10) < 0 then
        KSR.sl.sl_send_reply(483, "Too Many Hops")
        return 1
    end
    KSR.setflag(FLT_SEEN)
    KSR.xlog.xinfo("$rm from $si:$sp to $ru (call-id $ci)\n")

    if KSR.is_myself_ruri() then
        ksr_route_local()
        KSR.x.exit()
    end
    -- Not for us: relay statelessly.
    if KSR.forward() < 0 then
        KSR.sl.sl_send_reply(500, "Forwarding failed")
    end
    return 1
end

function ksr_route_local()
    local m = KSR.kx.get_method()
    if m == "OPTIONS" then
        KSR.hdr.append_to_reply("X-Served-By: " .. KSR.kx.get_rcvip() .. ":" .. KSR.kx.get_rcvport() .. "\r\n")
        KSR.sl.sl_send_reply(200, "Alive")
    elseif m == "ACK" then
        return
    elseif m == "REGISTER" or m == "INVITE" then
        KSR.sl.sl_send_reply(404, "Not here")
    else
        KSR.sl.sl_send_reply(405, "Method Not Allowed")
    end
end

function ksr_reply_route()
    KSR.dbg("reply " .. KSR.pv.get("$rs") .. " for " .. KSR.pv.get("$ci") .. "\n")
end
