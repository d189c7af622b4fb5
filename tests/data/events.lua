-- The main routing of tests/data/events.cfg in Lua; its event routes stay native.
function ksr_request_route()
	KSR.sl.sl_send_reply(200, "lua x=" .. KSR.pv.get("$sht(a=>x)") .. " n="
		.. KSR.pv.get("$sht(a=>n)") .. " w=" .. KSR.pv.get("$sht(a=>w)"))
end
