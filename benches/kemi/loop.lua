function ksr_request_route()
    for i = 1, 10000 do
        KSR.setflag(1)
    end
end

function ksr_baseline()
    for i = 1, 10000 do
    end
end
