-- The routing of tests/data/registrar.cfg in KEMI Lua (KSR.auth, KSR.auth_db,
-- KSR.registrar): tests/registrar.rs expects the same replies from both.

local function hdr(name)
	return KSR.pv.gete("$hdr(" .. name .. ")")
end

function ksr_request_route()
	if KSR.is_OPTIONS() and KSR.pv.is_null("$rU") then
		KSR.sl.sl_send_reply(200, "Alive")
		return
	end
	if KSR.is_REGISTER() then
		if KSR.hdr.is_present("X-Auth") > 0 then
			local rc = KSR.auth_db.auth_check(KSR.kx.gete_fhost(), "subscriber", 1)
			if rc < 0 then
				KSR.hdr.append_to_reply("X-Auth-Rc: " .. rc .. "\r\n")
				if KSR.hdr.is_present("X-Qop") > 0 then
					KSR.auth.auth_challenge(KSR.kx.gete_fhost(), 1)
				else
					KSR.auth.auth_challenge(KSR.kx.gete_fhost(), 0)
				end
				return
			end
			KSR.auth.consume_credentials()
		end
		if KSR.hdr.is_present("X-Nat") > 0 then
			KSR.pv.sets("$avp(RECEIVED)", "sip:" .. KSR.kx.get_srcip() .. ":" .. KSR.kx.get_srcport())
			KSR.setbflag(6)
		end
		if KSR.hdr.is_present("X-Quiet") > 0 then
			local rc = KSR.registrar.save("location", 18)
			KSR.hdr.append_to_reply("X-Rc: " .. rc .. "\r\n")
			KSR.sl.sl_send_reply(200, "Saved quietly")
			return
		end
		KSR.registrar.save("location", 0)
		return
	end
	if KSR.is_method_in("OM") then
		local rc = 0
		local op = hdr("X-Op")
		if op == "lookup" then
			rc = KSR.registrar.lookup("location")
		elseif op == "registered" then
			rc = KSR.registrar.registered("location")
		elseif op == "unregister" then
			rc = KSR.registrar.unregister("location", KSR.pv.get("$ru"))
		elseif op == "is_subscriber" then
			rc = KSR.auth_db.is_subscriber(KSR.pv.get("$ru"), "subscriber", 3)
		elseif op == "proxy_auth" then
			rc = KSR.auth_db.auth_check(KSR.kx.gete_fhost(), "subscriber", 0)
			if rc < 0 then
				KSR.hdr.append_to_reply("X-Auth-Rc: " .. rc .. "\r\n")
				KSR.auth.proxy_challenge(KSR.kx.gete_fhost(), 16)
				return
			end
		end
		KSR.hdr.append_to_reply("X-Rc: " .. rc .. "\r\nX-Ruri: " .. KSR.pv.gete("$ru")
			.. "\r\nX-Du: " .. (KSR.pv.get("$du") or "<null>")
			.. "\r\nX-Br: " .. (KSR.pv.get("$(branch(uri)[0])") or "<null>") .. "\r\n")
		KSR.sl.sl_send_reply(200, "Done")
		return
	end
	KSR.sl.sl_send_reply(404, "Not here")
end
