-- KEMI use of nathelper, rtpproxy, permissions and textopsx (tests/nat.rs).
function ksr_request_route()
    local u = KSR.pv.get("$rU")
    if u == "ping" then
        KSR.sl.sl_send_reply(200, "pong")
        return
    end
    if u == "natinfo" then
        local r = ""
        for _, f in ipairs({1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 19}) do
            if KSR.nathelper.nat_uac_test(f) > 0 then r = r .. "1" else r = r .. "0" end
        end
        r = r .. " " .. KSR.nathelper.is_rfc1918("10.1.1.1")
            .. " " .. KSR.nathelper.is_rfc1918("11.1.1.1")
            .. " " .. KSR.textopsx.fnmatch("abc", "a*")
            .. " " .. KSR.textopsx.fnmatch("abc", "b*")
            .. " " .. KSR.permissions.allow_source_address(1)
            .. " " .. KSR.permissions.allow_source_address_group()
            .. " " .. KSR.permissions.allow_address_group("192.168.3.3", 0)
            .. " " .. KSR.permissions.allow_address(3, "10.20.30.40", 5060)
        KSR.hdr.append_to_reply("X-Nat: " .. r .. "\r\n")
        KSR.sl.sl_send_reply(200, "OK")
        return
    end
    if u == "alias" then KSR.nathelper.set_contact_alias() end
    if u == "addalias" then KSR.nathelper.add_contact_alias_addr("10.1.1.1", "5099", "tls") end
    if u == "reg" then
        KSR.nathelper.fix_nated_register()
        KSR.hdr.append("X-Rcv: " .. KSR.pv.get("$avp(RECEIVED)") .. "\r\n")
    end
    if u == "rtp" then
        KSR.hdr.append("X-Rc: " .. KSR.rtpproxy.rtpproxy_manage("co") .. "\r\n")
    end
    if u == "sdp" then
        KSR.hdr.append("X-Rc: " .. KSR.nathelper.fix_nated_sdp_ip(10, "203.0.113.7") .. "\r\n")
    end
    if u == "ruri" then
        KSR.hdr.append("X-Rc: " .. KSR.nathelper.handle_ruri_alias() .. "\r\n")
    end
    if u == "tx" then
        KSR.textopsx.keep_hf_re("^X-Keep")
        KSR.textopsx.remove_body()
    end
    KSR.forward()
end
