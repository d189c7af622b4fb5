-- KEMI side of tests/textops_more.rs: the same textops functions through their KSR.textops
-- names, on ksr and on Kamailio 5.6 (app_lua).

local function rc(r, v)
    return r .. " " .. tostring(v)
end

local T = {}

function T.k_rc()
    local t = KSR.textops
    local r = ""
    r = rc(r, t.search_hf("X-Foo", "two", "f"))
    r = rc(r, t.search_hf("X-Foo", "two", "l"))
    r = rc(r, t.search_hf("X-Foo", "ONE", ""))
    r = rc(r, t.is_privacy("id"))
    r = rc(r, t.is_privacy("user"))
    r = rc(r, t.is_audio_on_hold())
    r = rc(r, t.regex_substring("abc123def", "([a-z]+)([0-9]+)", 2, 3, "$var(s)"))
    r = r .. "=" .. tostring(KSR.pv.get("$var(s)"))
    r = rc(r, t.regex_substring("abc", "[0-9]", 0, 1, "$var(s)"))
    r = rc(r, t.get_body_part("application/sdp", "$var(p)"))
    r = r .. "=" .. string.len(KSR.pv.get("$var(p)") or "")
    r = rc(r, t.set_reply_body("body text", "text/plain"))
    KSR.hdr.append_to_reply("X-R:" .. r .. "\r\n")
    KSR.sl.sl_send_reply(200, "OK")
end

function T.k_edit()
    local t = KSR.textops
    local r = ""
    r = rc(r, t.subst_hf("X-Foo", "/o/0/g", "l"))
    r = rc(r, t.replace_str("alpha", "ALPHA", "a"))
    r = rc(r, t.replace_hdrs_str("Subject", "Topic", "f"))
    r = rc(r, t.replace_hdrs("be(ta)", "gamma"))
    r = rc(r, t.replace_body_atonce("^a=[^\r]*\r\n", ""))
    r = rc(r, t.remove_hf_exp("^x-f", "^x-bar"))
    r = rc(r, t.remove_hf_match("Privacy", "in", "header"))
    r = rc(r, t.search_append("^Max-Forwards: 70", "0"))
    r = rc(r, t.search_append_body("^o=alice", "+"))
    r = rc(r, t.replace_body_str("IN IP4", "IN IP6", "f"))
    KSR.hdr.append("X-Rc:" .. r .. "\r\n")
    KSR.forward()
end

function T.k_mp()
    local t = KSR.textops
    local r = ""
    r = rc(r, t.set_body_multipart_content("hello", "text/plain"))
    KSR.hdr.append("X-Rc:" .. r .. "\r\n")
    KSR.forward()
end

function T.k_mp2()
    local t = KSR.textops
    local r = ""
    r = rc(r, t.append_body_part_cd("<x/>", "application/xml", "render"))
    r = rc(r, t.append_body_part_hex_cd("41 42", "text/plain", "inline"))
    r = rc(r, t.remove_body_part("application/sdp"))
    KSR.hdr.append("X-Rc:" .. r .. "\r\n")
    KSR.forward()
end

function T.k_mp3()
    local t = KSR.textops
    local r = ""
    r = rc(r, t.filter_body("text/plain"))
    KSR.hdr.append("X-Rc:" .. r .. "\r\n")
    KSR.forward()
end

function ksr_request_route()
    local user = KSR.pv.get("$rU")
    if user == "ping" then
        KSR.sl.sl_send_reply(200, "pong")
        return
    end
    local f = T[user]
    if f then
        f()
    else
        KSR.sl.sl_send_reply(404, "No case")
    end
end
