//! Writes Mozilla's root certificates (`webpki-root-certs`, compiled in) as one PEM file into
//! `OUT_DIR`, which `src/clients.rs` includes: the SDK's trust store takes PEM, and encoding it
//! here leaves nothing to read, check or encode at a cold start.

include!("src/pem.rs");

fn main() {
    let pem = pem_of(webpki_root_certs::TLS_SERVER_ROOT_CERTS.iter().map(|der| der.as_ref()));
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(out.join("mozilla-roots.pem"), pem).expect("OUT_DIR is writable");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=src/pem.rs");
}
