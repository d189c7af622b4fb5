function ksr_request_route() {
    for (var i = 0; i < 10000; i++) {
        KSR.setflag(1);
    }
}

function ksr_baseline() {
    for (var i = 0; i < 10000; i++) {
    }
}
