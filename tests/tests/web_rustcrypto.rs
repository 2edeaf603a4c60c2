//! The hosted web tests (`web/`) against the web app built with its
//! `rustcrypto` feature: the handshakes with OpenSSL and curl, the cipher
//! order and the refusals, with the VM image's TLS crypto instead of ring.

#[path = "web/main.rs"]
mod web;

fn main() {
    web::main()
}
