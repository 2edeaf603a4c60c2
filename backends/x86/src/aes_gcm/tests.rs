//! Host tests (the host CPU has AES-NI): NIST vectors and agreement with
//! RustCrypto's AES-GCM on every length around the block boundaries.

use aes_gcm::aead::{AeadInPlace, KeyInit};

use super::*;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// The engine; without AES-NI on the host these tests are skipped, except
/// under `CI=true`, where a missing prerequisite fails.
fn engine_or_skip() -> Option<&'static AesNi> {
    let e = engine();
    if e.is_none() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true: this CPU lacks AES-NI, PCLMULQDQ or SSSE3");
        eprintln!("this CPU lacks AES-NI, PCLMULQDQ or SSSE3: nothing to test");
    }
    e
}

/// Test cases 2, 4, 14 and 16 of McGrew and Viega's GCM specification.
#[test]
fn nist_vectors() {
    let Some(e) = engine_or_skip() else { return };
    let p = "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39";
    let k128 = "feffe9928665731c6d6a8f9467308308";
    let cases = [
        ("00000000000000000000000000000000", "000000000000000000000000", "", "00000000000000000000000000000000",
         "0388dace60b6a392f328c2b971b2fe78", "ab6e47d42cec13bdf53a67b21257bddf"),
        (k128, "cafebabefacedbaddecaf888", "feedfacedeadbeeffeedfacedeadbeefabaddad2", p,
         "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
         "5bc94fbc3221a5db94fae95ae7121a47"),
        ("0000000000000000000000000000000000000000000000000000000000000000", "000000000000000000000000", "",
         "00000000000000000000000000000000", "cea7403d4d606b6e074ec5d3baf39d18", "d0d1c8a799996bf0265b98b5d48ab919"),
        (&format!("{k128}{k128}"), "cafebabefacedbaddecaf888", "feedfacedeadbeeffeedfacedeadbeefabaddad2", p,
         "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
         "76fc6ece0f4e1768cddf8853bb2d551b"),
    ];
    for (k, n, a, p, c, t) in cases {
        let key = e.key(&hex(k)).unwrap();
        let nonce: [u8; 12] = hex(n).try_into().unwrap();
        let mut buf = hex(p);
        let tag = e.seal(&key, &nonce, &hex(a), &mut buf).unwrap();
        assert_eq!((buf.clone(), tag.to_vec()), (hex(c), hex(t)), "key {k}");
        e.open(&key, &nonce, &hex(a), &mut buf, &tag).unwrap();
        assert_eq!(buf, hex(p));
    }
}

#[test]
fn agrees_with_rustcrypto() {
    let Some(e) = engine_or_skip() else { return };
    let mut x = 0x1234_5678_9abc_def0u64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x as u8
    };
    for key_len in [16, 32] {
        let k: Vec<u8> = (0..key_len).map(|_| next()).collect();
        let key = e.key(&k).unwrap();
        for len in (0..70).chain([255, 256, 257, 16384 + 17]) {
            let aad: Vec<u8> = (0..len % 23).map(|_| next()).collect();
            let nonce: [u8; 12] = core::array::from_fn(|_| next());
            let plain: Vec<u8> = (0..len).map(|_| next()).collect();
            let mut ours = plain.clone();
            let tag = e.seal(&key, &nonce, &aad, &mut ours).unwrap();
            let mut theirs = plain.clone();
            let their_tag = if key_len == 16 {
                aes_gcm::Aes128Gcm::new_from_slice(&k).unwrap().encrypt_in_place_detached(
                    (&nonce).into(),
                    &aad,
                    &mut theirs,
                )
            } else {
                aes_gcm::Aes256Gcm::new_from_slice(&k).unwrap().encrypt_in_place_detached(
                    (&nonce).into(),
                    &aad,
                    &mut theirs,
                )
            }
            .unwrap();
            assert_eq!((&ours, &tag[..]), (&theirs, &their_tag[..]), "key {key_len} len {len}");
            let mut bad = tag;
            bad[len % 16] ^= 1;
            let mut copy = ours.clone();
            assert_eq!(e.open(&key, &nonce, &aad, &mut copy, &bad), Err(AesGcmError::BadTag));
            assert_eq!(copy, ours, "a bad tag leaves the ciphertext alone");
            e.open(&key, &nonce, &aad, &mut ours, &tag).unwrap();
            assert_eq!(ours, plain);
        }
    }
    assert!(e.key(&[0; 15]).is_none());
}

/// The AES S-box from its definition (FIPS 197, section 5.1.1): the
/// inverse in GF(2^8), then the affine map.
fn sbox(x: u8) -> u8 {
    let mul = |mut a: u8, mut b: u8| {
        let mut p = 0u8;
        while b != 0 {
            if b & 1 != 0 {
                p ^= a;
            }
            let carry = a & 0x80 != 0;
            a <<= 1;
            if carry {
                a ^= 0x1b;
            }
            b >>= 1;
        }
        p
    };
    let inv = (0..254).fold(1u8, |acc, _| mul(acc, x)); // x^254 = x^-1; 0 stays 0
    inv ^ inv.rotate_left(1) ^ inv.rotate_left(2) ^ inv.rotate_left(3) ^ inv.rotate_left(4) ^ 0x63
}

#[test]
fn sub_word_is_the_s_box() {
    let Some(_) = engine_or_skip() else { return };
    assert_eq!((sbox(0x00), sbox(0x01), sbox(0x53)), (0x63, 0x7c, 0xed));
    for b in 0..=255u8 {
        let w = [b, b.wrapping_add(1), b.wrapping_add(85), b ^ 0xa5];
        // SAFETY: the engine exists, so the CPU has AES-NI; SSE is on.
        let got = unsafe { asm::sub_word(w) };
        assert_eq!(got, w.map(sbox), "{w:02x?}");
    }
}
