-- KSR.alias_db.* and KSR.speeddial.* from Lua, run by tests/dbmods.rs on ksr and on
-- Kamailio 5.6; the reply reason carries the return code, the R-URI and the first branch.
function ksr_request_route()
	local op = KSR.pv.gete("$hdr(X-Op)")
	local r = "none"
	if op == "kl1" then
		r = KSR.alias_db.lookup("dbaliases")
	elseif op == "klr" then
		r = KSR.alias_db.lookup_ex("dbaliases", "r")
	elseif op == "kld" then
		r = KSR.alias_db.lookup_ex("dbaliases", "xd")
	elseif op == "klu" then
		r = KSR.alias_db.lookup_ex("dbaliases", "U")
	elseif op == "ks1" then
		r = KSR.speeddial.lookup("speed_dial")
	elseif op == "ks2" then
		r = KSR.speeddial.lookup_owner("speed_dial", "sip:carol@sip.example.com")
	elseif op == "ks3" then
		r = KSR.speeddial.lookup_owner("speed_dial", "")
	elseif op == "ks4" then
		r = KSR.speeddial.lookup_owner("speed_dial", "not a uri")
	end
	KSR.sl.sl_send_reply(200, "r=" .. tostring(r) .. " u=" .. KSR.pv.gete("$ru")
		.. " b=" .. KSR.pv.gete("$(branch(uri)[0])"))
	return 1
end
