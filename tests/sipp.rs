//! End to end with a real SIP client: sipp scenarios (tests/sipp/*.xml) against `ksr run`
//! on the example config, over UDP and TCP. sipp is installed by `.ci/run`; set
//! KSR_SKIP_SIPP=1 to skip where it is not available.

mod common;
use common::*;
use std::process::Command;

fn sipp(s: &Server, scenario: &str, transport: &str, calls: u32) -> (bool, String) {
    let dir = std::env::temp_dir().join(format!("ksr-sipp-{}-{}", std::process::id(), free_port()));
    let _ = std::fs::create_dir_all(&dir);
    let out = Command::new("sipp")
        .current_dir(&dir)
        .arg(format!("127.0.0.1:{}", s.port))
        .arg("-sf")
        .arg(root().join("tests/sipp").join(scenario))
        .args(["-i", "127.0.0.1", "-p", &free_port().to_string()])
        .args(["-t", transport])
        .args(["-m", &calls.to_string(), "-r", "200", "-timeout", "20s"])
        .arg("-nostdin")
        .output();
    match out {
        Ok(o) => (
            o.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        ),
        Err(e) => (false, e.to_string()),
    }
}

fn available() -> bool {
    if Command::new("sipp").arg("-v").output().is_ok() {
        return true;
    }
    assert!(
        std::env::var("KSR_SKIP_SIPP").is_ok(),
        "sipp is not installed (run .ci/run, or set KSR_SKIP_SIPP=1)"
    );
    false
}

#[test]
fn sipp_options_and_invite_over_udp_and_tcp() {
    if !available() {
        return;
    }
    let s = start_ksr(&root().join("examples/kamailio.cfg"), &[]);
    for transport in ["u1", "t1"] {
        let (ok, log) = sipp(&s, "options.xml", transport, 200);
        assert!(ok, "options over {transport} failed:\n{log}");
        let (ok, log) = sipp(&s, "message_404.xml", transport, 50);
        assert!(ok, "invite-404 over {transport} failed:\n{log}");
    }
}
