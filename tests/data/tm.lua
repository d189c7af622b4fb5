-- Lua (KEMI) version of tests/data/tm.cfg: the same stateful proxy.

function ksr_request_route()
	if KSR.is_OPTIONS() and KSR.pv.get("$rU") == "ping" then
		KSR.sl.sl_send_reply(200, "Pong")
		return 1
	end
	if KSR.maxfwd.process_maxfwd(10) < 0 then
		KSR.sl.sl_send_reply(483, "Too Many Hops")
		return 1
	end
	if KSR.is_CANCEL() then
		if KSR.tm.t_check_trans() > 0 then
			KSR.tm.t_relay()
		end
		return 1
	end
	if not KSR.is_ACK() then
		if KSR.tmx.t_precheck_trans() > 0 then
			KSR.tm.t_check_trans()
			return 1
		end
		if KSR.tm.t_check_trans() == 0 then return 1 end
	end
	if KSR.siputils.has_totag() > 0 then
		if KSR.rr.loose_route() > 0 then
			if KSR.is_BYE() then
				KSR.hdr.append("X-Routed: " .. KSR.pv.get("$route_uri") .. "\r\n")
			end
			KSR.tm.t_relay()
			return 1
		end
		if KSR.is_ACK() then
			if KSR.tm.t_check_trans() > 0 then
				KSR.tm.t_relay()
			end
			return 1
		end
		KSR.sl.sl_send_reply(404, "Not here")
		return 1
	end
	KSR.hdr.remove("Route")
	if KSR.is_INVITE() then
		KSR.rr.record_route()
		if KSR.pv.get("$hdr(X-NatTest)") ~= nil then
			KSR.rr.add_rr_param(";nat=yes")
		end
	end
	if KSR.tm.t_is_set("failure_route") < 0 then
		KSR.tm.t_on_failure("ksr_failure_manage")
	end
	KSR.tm.t_on_branch("ksr_branch_manage")
	KSR.tm.t_on_reply("ksr_onreply_manage")
	if KSR.tm.t_relay() < 0 then
		KSR.sl.sl_reply_error()
	end
	return 1
end

function ksr_branch_manage()
	KSR.hdr.append("X-Branch: " .. KSR.pv.get("$T_branch_idx") .. "\r\n")
	if KSR.tmx.t_is_branch_route() < 0 then
		KSR.hdr.append("X-Wrong: not a branch route\r\n")
	end
end

function ksr_onreply_manage()
	KSR.pv.sets("$shv(lastbr)", KSR.pv.get("$T_branch(uri)") or "none")
	if KSR.pv.get("$rs") == 183 then
		KSR.x.drop()
	end
end

function ksr_failure_manage()
	if KSR.tm.t_is_canceled() > 0 then
		return 1
	end
	local code = KSR.pv.get("$T_reply_code")
	if code == 408 then
		if KSR.tm.t_branch_timeout() > 0 and KSR.tm.t_branch_replied() < 0
				and KSR.tm.t_any_timeout() > 0 and KSR.tm.t_any_replied() < 0 then
			KSR.tm.t_reply(408, "Timeout Checked")
		else
			KSR.tm.t_reply(408, "Timeout Unexpected")
		end
		return 1
	end
	local alt = KSR.pv.get("$hdr(X-Alt)")
	if code == 486 and alt ~= nil then
		KSR.pv.sets("$ru", alt)
		KSR.tm.t_on_failure("ksr_failure_manage")
		KSR.tm.t_relay()
		return 1
	end
	if code == 480 then
		KSR.hdr.append_to_reply("X-Failed-Uri: " .. (KSR.pv.get("$shv(lastbr)") or "none") .. "\r\n")
		KSR.tm.t_reply(404, "Gone " .. KSR.pv.get("$T_rpl($rr)"))
		return 1
	end
end
