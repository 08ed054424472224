//! The browser machinery of the web front's tests, proved without Cirrus: Debian's
//! chromium driven by Playwright for Python (scripts/setup-test-deps installs both)
//! against a tiny HTTPS server of tests/web/selftest.py with a self-signed certificate:
//! a form, a script, a download, a Range request with the session's cookie, a dialog
//! caught, and the same with JavaScript off. If this fails, tests/web.rs cannot pass.
// A panic is how a test fails: unwrap and expect are its assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::web::{assert_png, output_dir, run_script};
use std::fs;

#[test]
fn chromium_driven_by_playwright_clicks_downloads_and_screenshots() {
    let out = output_dir("harness");
    // A self-signed certificate, like the web front's own: the browser must accept it.
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let cert = out.join("cert.pem");
    let key = out.join("key.pem");
    fs::write(&cert, made.cert.pem()).unwrap();
    fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    let out_s = out.to_str().unwrap();
    let j = run_script(
        "selftest",
        &[
            out_s,
            "--cert",
            cert.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ],
        &[],
        &out,
    );
    assert!(
        j["url"].as_str().unwrap().starts_with("https://127.0.0.1:"),
        "{j}"
    );
    // The same 1 MiB came down with JavaScript on and off.
    let on = &j["javascript_on"]["download_sha256"];
    assert!(on.as_str().is_some_and(|h| h.len() == 64), "{j}");
    assert_eq!(on, &j["javascript_off"]["download_sha256"], "{j}");
    let shots = j["screenshots"].as_array().unwrap();
    assert_eq!(shots.len(), 3, "{j}");
    for s in shots {
        let p = std::path::Path::new(s.as_str().unwrap());
        assert!(p.starts_with(&out), "{}", p.display());
        assert_png(p);
    }
}
