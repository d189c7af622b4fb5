//! `ksr compile` → image → `ksr run -f image`: same SIP behaviour as running the cfg;
//! a damaged image is refused with a clear error.

mod common;
use common::*;
use std::process::{Command, Stdio};

#[test]
fn compiled_image_serves_like_the_cfg_and_damage_is_refused() {
    let dir = std::env::temp_dir().join(format!("ksr-image-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let img = dir.join("kamailio.ksrc");
    let port = free_port();
    let out = Command::new(env!("CARGO_BIN_EXE_ksr"))
        .args(["compile", "-f"])
        .arg(root().join("examples/kamailio.cfg"))
        .args(["-A", &format!("PORT={port}"), "-o"])
        .arg(&img)
        .output()
        .expect("ksr compile");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Start from the image (the port is baked in at compile time).
    let child = Command::new(env!("CARGO_BIN_EXE_ksr"))
        .args(["run", "-f"])
        .arg(&img)
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ksr run");
    let s = Server {
        child,
        port,
        name: "ksr",
        dir: dir.clone(),
    };
    let c = client();
    let mut reply = None;
    for i in 0..50 {
        let m = request(
            "OPTIONS",
            &format!("sip:bob@127.0.0.1:{port}"),
            &c,
            &format!("img-{i}"),
            "",
        );
        let _ = c.send_to(m.as_bytes(), ("127.0.0.1", port));
        if let Some(r) = recv(&c, 100) {
            reply = Some(r);
            break;
        }
    }
    let r = reply.expect("the image answers");
    assert_eq!(status_line(&r), "SIP/2.0 200 Alive");
    drop(s);

    // Truncated and corrupted images are refused.
    let bytes = std::fs::read(&img).expect("image");
    let cut = dir.join("cut.ksrc");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_ksr"))
        .args(["run", "-f"])
        .arg(&cut)
        .output()
        .expect("ksr run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("image is truncated"));
    let mut bad = bytes.clone();
    let n = bad.len() - 10;
    bad[n] ^= 1;
    let badf = dir.join("bad.ksrc");
    std::fs::write(&badf, &bad).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_ksr"))
        .args(["run", "-f"])
        .arg(&badf)
        .output()
        .expect("ksr run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("checksum mismatch"));
}
