-- KEMI side of tests/more_mods.rs: each case answers with what the functions returned.

local function rc(v) return tostring(v) end

function ksr_request_route()
    local case = KSR.pv.get("$rU") or ""
    local r = ""
    if case == "kh" then
        KSR.htable.sht_reset("h1")
        KSR.htable.sht_seti("h1", "a", 1)
        KSR.htable.sht_sets("h1", "b", "x")
        local n = 0
        r = "start=" .. rc(KSR.htable.sht_iterator_start("i1", "h1"))
        while KSR.htable.sht_iterator_next("i1") > 0 and n < 10 do
            n = n + 1
            if KSR.pv.get("$shtitkey(i1)") == "a" then
                r = r .. " seti=" .. rc(KSR.htable.sht_iterator_seti("i1", 5))
            end
        end
        r = r .. " n=" .. n .. " end=" .. rc(KSR.htable.sht_iterator_end("i1"))
        r = r .. " a=" .. tostring(KSR.htable.sht_get("h1", "a"))
        r = r .. " lock=" .. rc(KSR.htable.sht_lock("h1", "k")) .. "/" .. rc(KSR.htable.sht_unlock("h1", "k"))
        r = r .. " bad=" .. rc(KSR.htable.sht_iterator_start("i2", "nosuch"))
    elseif case == "ks" then
        r = "cmp=" .. rc(KSR.siputils.cmp_hdr_name("f", "From"))
        r = r .. " gr=" .. rc(KSR.siputils.is_gruu())
        r = r .. " date=" .. rc(KSR.siputils.hdr_date_check(60))
        r = r .. " pike=" .. rc(KSR.pike.pike_check_ip("192.0.2.9")) .. "/" .. rc(KSR.pike.pike_check_ip("::1"))
        r = r .. " route=" .. rc(KSR.cfgutils.check_route_exists("R1"))
        r = r .. "/" .. rc(KSR.cfgutils.route_if_exists("R1"))
    elseif case == "ky" then
        -- a failed check prepared the reply; sanity_reply sends it
        if KSR.sanity.sanity_check(256, 0) < 0 then
            KSR.sanity.sanity_reply()
            return
        end
        r = "passed"
    elseif case == "km" then
        KSR.sl.send_reply_mode(202, "Moded", 0)
        return
    end
    KSR.sl.sl_send_reply(200, r)
end
