//! Writes Mozilla's root certificates (`webpki-root-certs`, compiled in) as one PEM file into
//! `OUT_DIR`, which `src/clients.rs` includes: the SDK's trust store takes PEM, and encoding it
//! here leaves nothing to read, check or encode at a cold start.

use base64::Engine;

fn main() {
    let mut pem = String::new();
    for der in webpki_root_certs::TLS_SERVER_ROOT_CERTS {
        let body = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
        pem.push_str("-----BEGIN CERTIFICATE-----\n");
        for line in body.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
    }
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(out.join("mozilla-roots.pem"), pem).expect("OUT_DIR is writable");
    println!("cargo::rerun-if-changed=build.rs");
}
