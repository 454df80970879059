//! Signs the same DKIM header hash input with one RSA-2048 key through each backend, on one
//! thread, and prints signatures per second (median of 5 rounds). Every backend's signature
//! must equal the others' (PKCS #1 v1.5 is deterministic), so none is measured doing less.

use std::time::Instant;

use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use rsa::signature::{SignatureEncoding, Signer};

const ROUNDS: usize = 5;
const SIGNS: usize = 400;

fn main() {
    let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).expect("key");
    let der = key.to_pkcs8_der().expect("pkcs8").as_bytes().to_vec();
    // About what a DKIM signature covers: ten canonical header fields.
    let input = "from:Demo <demo@sandbox.kuvert.test>\r\nto:rcpt@example.com\r\n".repeat(8);
    let input = input.as_bytes();

    let rustcrypto = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(
        rsa::RsaPrivateKey::from_pkcs8_der(&der).expect("rsa key"),
    );
    let ring_key = ring::signature::RsaKeyPair::from_pkcs8(&der).expect("ring key");
    let aws_key = aws_lc_rs::signature::RsaKeyPair::from_pkcs8(&der).expect("aws-lc key");
    let ossl_key = openssl::pkey::PKey::private_key_from_pkcs8(&der).expect("openssl key");

    let rng = ring::rand::SystemRandom::new();
    let aws_rng = aws_lc_rs::rand::SystemRandom::new();
    let sign_ring = || {
        let mut sig = vec![0; ring_key.public().modulus_len()];
        ring_key
            .sign(&ring::signature::RSA_PKCS1_SHA256, &rng, input, &mut sig)
            .expect("ring sign");
        sig
    };
    let sign_aws = || {
        let mut sig = vec![0; aws_key.public_modulus_len()];
        aws_key
            .sign(&aws_lc_rs::signature::RSA_PKCS1_SHA256, &aws_rng, input, &mut sig)
            .expect("aws-lc sign");
        sig
    };
    let sign_ossl = || {
        let mut s = openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &ossl_key)
            .expect("signer");
        s.update(input).expect("update");
        s.sign_to_vec().expect("openssl sign")
    };
    let sign_rustcrypto = || rustcrypto.sign(input).to_vec();

    let reference = sign_rustcrypto();
    let backends: [(&str, &dyn Fn() -> Vec<u8>); 4] = [
        ("openssl (system libssl)", &sign_ossl),
        ("aws-lc-rs", &sign_aws),
        ("ring", &sign_ring),
        ("rsa (RustCrypto)", &sign_rustcrypto),
    ];
    println!("| backend | signatures/s, one thread (median of {ROUNDS}) |\n|---|---|");
    for (name, sign) in backends {
        assert_eq!(sign(), reference, "{name} signs differently");
        let mut rates: Vec<f64> = (0..ROUNDS)
            .map(|_| {
                let start = Instant::now();
                for _ in 0..SIGNS {
                    std::hint::black_box(sign());
                }
                SIGNS as f64 / start.elapsed().as_secs_f64()
            })
            .collect();
        rates.sort_by(f64::total_cmp);
        println!("| {name} | {:.0} |", rates[ROUNDS / 2]);
    }
}
