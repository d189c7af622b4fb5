-- KSR.sqlops.* from Lua; the reply reason carries what the script saw.
local function s(v)
	if v == nil then return "nil" end
	return tostring(v)
end

function ksr_request_route()
	if KSR.is_OPTIONS() then
		KSR.sl.sl_send_reply(200, "ready")
		return 1
	end
	local q = KSR.sqlops.sql_query("c", "select name, n, note from items order by id", "ra")
	local out = "q=" .. s(q)
		.. " rows=" .. s(KSR.sqlops.sql_num_rows("ra"))
		.. " cols=" .. s(KSR.sqlops.sql_num_columns("ra"))
		.. " g00=" .. s(KSR.sqlops.sql_result_get("ra", 0, 0))
		.. " g01=" .. s(KSR.sqlops.sql_result_get("ra", 0, 1))
		.. " g02=" .. s(KSR.sqlops.sql_result_get("ra", 0, 2))
		.. " e02=[" .. s(KSR.sqlops.sql_result_gete("ra", 0, 2)) .. "]"
		.. " z02=" .. s(KSR.sqlops.sql_result_getz("ra", 0, 2))
		.. " g90=" .. s(KSR.sqlops.sql_result_get("ra", 9, 0))
		.. " null02=" .. s(KSR.sqlops.sql_is_null("ra", 0, 2))
		.. " null00=" .. s(KSR.sqlops.sql_is_null("ra", 0, 0))
		.. " null90=" .. s(KSR.sqlops.sql_is_null("ra", 9, 0))
	local e = KSR.sqlops.sql_query("c", "select * from no_such_table", "rb")
	local n = KSR.sqlops.sql_query("c", "select name from items where id > 1000", "rb")
	local x = KSR.sqlops.sql_xquery("c", "select name, n from items order by id", "xr")
	local xn = KSR.sqlops.sql_xquery("c", "select name from items where id > 1000", "xn")
	local p = KSR.sqlops.sql_pvquery("c", "select name, n from items order by id", "$var(a);$var(b)")
	local f = KSR.sqlops.sql_result_free("ra")
	out = out .. " err=" .. s(e) .. " none=" .. s(n) .. " x=" .. s(x) .. " xn=" .. s(xn)
		.. " x1=" .. s(KSR.pv.get("$xavp(xr[1]=>name)"))
		.. " p=" .. s(p) .. " a=" .. s(KSR.pv.get("$var(a)")) .. " b=" .. s(KSR.pv.get("$var(b)"))
		.. " free=" .. s(f) .. " after=" .. s(KSR.sqlops.sql_num_rows("ra"))
	KSR.sl.sl_send_reply(200, out)
	return 1
end
