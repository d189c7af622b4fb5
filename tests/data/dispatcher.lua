-- tests/dispatcher.rs: KSR.dispatcher.* selection, failover records, states and matching,
-- replies carrying $rc-like results, $du, $ru and the _dsdst_ records.
local function n(v) if v == nil then return "<null>" end return tostring(v) end

function ksr_request_route()
    if KSR.is_OPTIONS() and KSR.pv.get("$rU") == "ping" then
        KSR.sl.sl_send_reply(200, "pong")
        return
    end
    local set = tonumber(KSR.pv.get("$hdr(X-Set)")) or 0
    local alg = tonumber(KSR.pv.get("$hdr(X-Alg)")) or 0
    local lim = tonumber(KSR.pv.get("$hdr(X-Lim)") or "0") or 0
    local c = KSR.pv.get("$hdr(X-Case)")
    local rc, r2, r3, d2, d3 = 0, 0, 0, "", ""
    local ds = KSR.dispatcher
    if c == "dst" then
        rc = ds.ds_select_dst(set, alg)
    elseif c == "limit" then
        rc = ds.ds_select_dst_limit(set, alg, lim)
    elseif c == "domain" then
        rc = ds.ds_select_domain(set, alg)
    elseif c == "select" then
        rc = ds.ds_select(set, alg)
    elseif c == "next" then
        rc = ds.ds_select_dst(set, alg)
        r2 = ds.ds_next_dst()
        d2 = n(KSR.pv.get("$du"))
        r3 = ds.ds_next_dst()
        d3 = n(KSR.pv.get("$du"))
    elseif c == "nextdomain" then
        rc = ds.ds_select_domain(set, alg)
        r2 = ds.ds_next_domain()
        d2 = n(KSR.pv.get("$ru"))
        r3 = ds.ds_set_dst()
    elseif c == "mark" then
        rc = ds.ds_select_dst(3, 8)
        local st = KSR.pv.get("$hdr(X-State)")
        if st == "x" then
            r2 = ds.ds_mark_dst()
        else
            r2 = ds.ds_mark_dst_state(st)
        end
        r3 = ds.ds_is_active(3)
        KSR.pv.unset("$du")
        ds.ds_select_dst(3, 8)
        d2 = n(KSR.pv.get("$du"))
        d3 = n(KSR.pv.get("$xavp(_dsdst_=>uri)"))
    elseif c == "from" then
        rc = ds.ds_is_from_lists()
        r2 = ds.ds_is_from_list(set)
        r3 = ds.ds_is_from_list_mode(set, alg)
        d2 = tostring(ds.ds_is_from_list_uri(-1, alg, KSR.pv.get("$hdr(X-Uri)") or ""))
    elseif c == "exists" then
        rc = ds.ds_list_exists(set)
        r2 = ds.ds_is_active(set)
        r3 = ds.ds_is_active_uri(set, KSR.pv.get("$hdr(X-Uri)") or "")
    end
    KSR.sl.sl_send_reply(200, "rc=" .. rc .. " du=" .. n(KSR.pv.get("$du"))
        .. " ru=" .. n(KSR.pv.get("$ru"))
        .. " cnt=" .. n(KSR.pv.get("$xavp(_dsctx_=>cnt)"))
        .. " x0=" .. n(KSR.pv.get("$xavp(_dsdst_[0]=>uri)"))
        .. " x1=" .. n(KSR.pv.get("$xavp(_dsdst_[1]=>uri)"))
        .. " g=" .. n(KSR.pv.get("$xavp(_dsdst_=>grp)"))
        .. " a=" .. n(KSR.pv.get("$xavp(_dsdst_=>attrs)"))
        .. " r2=" .. r2 .. " d2=" .. d2 .. " r3=" .. r3 .. " d3=" .. d3)
end
