// Included by `build.rs` (the compiled-in roots) and `clients.rs` (a bundle re-encoded without
// the certificates rustls refuses): one PEM encoder for both.

/// DER certificates as PEM: a `CERTIFICATE` block each, base64 in lines of 64 characters.
fn pem_of<'a>(certificates: impl IntoIterator<Item = &'a [u8]>) -> String {
    use base64::Engine;
    let mut pem = String::new();
    for der in certificates {
        let body = base64::engine::general_purpose::STANDARD.encode(der);
        pem.push_str("-----BEGIN CERTIFICATE-----\n");
        for line in body.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
    }
    pem
}
