-- tests/domain.rs: the checks of domain.cfg through KSR.domain.* (domain-lua.cfg).
local function s(v)
    if v == nil then
        return "<null>"
    end
    return tostring(v)
end

local function yn(b)
    if b then
        return "yes"
    end
    return "no"
end

function ksr_request_route()
    local rd = KSR.pv.gete("$rd")
    local xd = KSR.pv.gete("$hdr(X-D)")
    local f = KSR.domain.is_from_local()
    local u = KSR.domain.is_uri_host_local()
    local d = KSR.domain.is_domain_local(rd)
    local x = KSR.domain.is_domain_local(xd)
    KSR.hdr.append_to_reply("X-C: f=" .. f .. " u=" .. u .. " d=" .. d .. " x=" .. x
        .. " m=" .. yn(KSR.is_myself_ruri()) .. " mh=" .. yn(KSR.is_myself_furi()) .. "\r\n")
    local l = KSR.domain.lookup_domain(rd)
    KSR.hdr.append_to_reply("X-L: " .. l .. " did=" .. s(KSR.pv.get("$avp(did)"))
        .. " name=" .. s(KSR.pv.get("$avp(name)")) .. " num=" .. s(KSR.pv.get("$avp(num)"))
        .. " num1=" .. s(KSR.pv.get("$(avp(num)[1])")) .. " color=" .. s(KSR.pv.get("$avp(color)")) .. "\r\n")
    local p = KSR.domain.lookup_domain_prefix(KSR.pv.gete("$fd"), "f_")
    KSR.hdr.append_to_reply("X-P: " .. p .. " did=" .. s(KSR.pv.get("$avp(f_did)"))
        .. " name=" .. s(KSR.pv.get("$avp(f_name)")) .. " num=" .. s(KSR.pv.get("$avp(f_num)"))
        .. " num1=" .. s(KSR.pv.get("$(avp(f_num)[1])")) .. " color=" .. s(KSR.pv.get("$avp(f_color)"))
        .. " plain=" .. s(KSR.pv.get("$avp(did)")) .. "\r\n")
    local e = KSR.domain.lookup_domain_prefix(xd, "")
    KSR.hdr.append_to_reply("X-E: " .. e .. " did=" .. s(KSR.pv.get("$avp(did)"))
        .. " did1=" .. s(KSR.pv.get("$(avp(did)[1])")) .. "\r\n")
    KSR.sl.sl_send_reply(200, "OK")
end
