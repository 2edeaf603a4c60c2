//! TLS 1.3 and 1.2 AES-GCM record protection (RFC 8446 section 5.2,
//! RFC 5288) over an [`AesGcm`] engine.

use alloc::boxed::Box;

use morgana_devices::{AesGcm, AesGcmKey};
use rustls::crypto::cipher::{
    make_tls12_aad, make_tls13_aad, AeadKey, InboundOpaqueMessage, InboundPlainMessage, Iv, KeyBlockShape,
    MessageDecrypter, MessageEncrypter, Nonce, OutboundOpaqueMessage, OutboundPlainMessage, PrefixedPayload,
    Tls12AeadAlgorithm, Tls13AeadAlgorithm, UnsupportedOperationError,
};
use rustls::{ConnectionTrafficSecrets, ContentType, Error, ProtocolVersion};

const TAG: usize = 16;
/// TLS 1.2's explicit nonce, sent before each record's ciphertext.
const EXPLICIT: usize = 8;
/// The largest plaintext a record may carry (RFC 5246 section 6.2.1,
/// RFC 8446 section 5.1): more is a record_overflow.
const MAX_FRAGMENT: usize = 1 << 14;

/// AES-GCM with a 16- or 32-byte key, done by `engine`.
pub(super) struct Gcm {
    pub(super) engine: &'static dyn AesGcm,
    pub(super) key_len: usize,
}

/// A direction's key. `None` only if the engine refused the key, which
/// rustls never gives it (the length comes from this suite): every record
/// then fails rather than the process.
struct Keyed {
    engine: &'static dyn AesGcm,
    key: Option<AesGcmKey>,
}

impl Keyed {
    fn new(engine: &'static dyn AesGcm, key: &AeadKey) -> Keyed {
        Keyed { engine, key: engine.key(key.as_ref()) }
    }
}

impl Gcm {
    fn secrets(&self, key: AeadKey, iv: Iv) -> ConnectionTrafficSecrets {
        match self.key_len {
            16 => ConnectionTrafficSecrets::Aes128Gcm { key, iv },
            _ => ConnectionTrafficSecrets::Aes256Gcm { key, iv },
        }
    }
}

impl Tls13AeadAlgorithm for Gcm {
    fn encrypter(&self, key: AeadKey, iv: Iv) -> Box<dyn MessageEncrypter> {
        Box::new(Tls13 { keyed: Keyed::new(self.engine, &key), iv })
    }

    fn decrypter(&self, key: AeadKey, iv: Iv) -> Box<dyn MessageDecrypter> {
        Box::new(Tls13 { keyed: Keyed::new(self.engine, &key), iv })
    }

    fn key_len(&self) -> usize {
        self.key_len
    }

    fn extract_keys(&self, key: AeadKey, iv: Iv) -> Result<ConnectionTrafficSecrets, UnsupportedOperationError> {
        Ok(self.secrets(key, iv))
    }
}

struct Tls13 {
    keyed: Keyed,
    iv: Iv,
}

impl MessageEncrypter for Tls13 {
    fn encrypt(&mut self, m: OutboundPlainMessage<'_>, seq: u64) -> Result<OutboundOpaqueMessage, Error> {
        let key = self.keyed.key.as_ref().ok_or(Error::EncryptError)?;
        let total = self.encrypted_payload_len(m.payload.len());
        let mut payload = PrefixedPayload::with_capacity(total);
        payload.extend_from_chunks(&m.payload);
        payload.extend_from_slice(&m.typ.to_array());
        let nonce = Nonce::new(&self.iv, seq).0;
        let tag = self
            .keyed
            .engine
            .seal(key, &nonce, &make_tls13_aad(total), payload.as_mut())
            .map_err(|_| Error::EncryptError)?;
        payload.extend_from_slice(&tag);
        Ok(OutboundOpaqueMessage::new(ContentType::ApplicationData, ProtocolVersion::TLSv1_2, payload))
    }

    fn encrypted_payload_len(&self, payload_len: usize) -> usize {
        payload_len + 1 + TAG
    }
}

impl MessageDecrypter for Tls13 {
    fn decrypt<'a>(&mut self, mut m: InboundOpaqueMessage<'a>, seq: u64) -> Result<InboundPlainMessage<'a>, Error> {
        let key = self.keyed.key.as_ref().ok_or(Error::DecryptError)?;
        let payload = &mut m.payload;
        let Some(body_len) = payload.len().checked_sub(TAG) else { return Err(Error::DecryptError) };
        let aad = make_tls13_aad(payload.len());
        let nonce = Nonce::new(&self.iv, seq).0;
        let (body, tag) = payload.split_at_mut(body_len);
        let tag: &[u8; TAG] = (&*tag).try_into().map_err(|_| Error::DecryptError)?;
        self.keyed.engine.open(key, &nonce, &aad, body, tag).map_err(|_| Error::DecryptError)?;
        payload.truncate(body_len);
        m.into_tls13_unpadded_message()
    }
}

impl Tls12AeadAlgorithm for Gcm {
    fn encrypter(&self, key: AeadKey, iv: &[u8], extra: &[u8]) -> Box<dyn MessageEncrypter> {
        let mut nonce = [0u8; 12];
        nonce[..4].copy_from_slice(&iv[..4]);
        nonce[4..].copy_from_slice(&extra[..EXPLICIT]);
        Box::new(Tls12Encrypter { keyed: Keyed::new(self.engine, &key), iv: Iv::new(nonce) })
    }

    fn decrypter(&self, key: AeadKey, iv: &[u8]) -> Box<dyn MessageDecrypter> {
        let mut salt = [0u8; 4];
        salt.copy_from_slice(&iv[..4]);
        Box::new(Tls12Decrypter { keyed: Keyed::new(self.engine, &key), salt })
    }

    fn key_block_shape(&self) -> KeyBlockShape {
        KeyBlockShape { enc_key_len: self.key_len, fixed_iv_len: 4, explicit_nonce_len: EXPLICIT }
    }

    fn extract_keys(
        &self,
        key: AeadKey,
        iv: &[u8],
        explicit: &[u8],
    ) -> Result<ConnectionTrafficSecrets, UnsupportedOperationError> {
        let mut nonce = [0u8; 12];
        nonce[..4].copy_from_slice(&iv[..4]);
        nonce[4..].copy_from_slice(&explicit[..EXPLICIT]);
        Ok(self.secrets(key, Iv::new(nonce)))
    }
}

/// TLS 1.2: the nonce is the fixed IV XOR the sequence number; its last 8
/// bytes go out in the clear before the ciphertext.
struct Tls12Encrypter {
    keyed: Keyed,
    iv: Iv,
}

impl MessageEncrypter for Tls12Encrypter {
    fn encrypt(&mut self, m: OutboundPlainMessage<'_>, seq: u64) -> Result<OutboundOpaqueMessage, Error> {
        let key = self.keyed.key.as_ref().ok_or(Error::EncryptError)?;
        let mut payload = PrefixedPayload::with_capacity(self.encrypted_payload_len(m.payload.len()));
        let nonce = Nonce::new(&self.iv, seq).0;
        let aad = make_tls12_aad(seq, m.typ, m.version, m.payload.len());
        payload.extend_from_slice(&nonce[4..]);
        payload.extend_from_chunks(&m.payload);
        let tag = self
            .keyed
            .engine
            .seal(key, &nonce, &aad, &mut payload.as_mut()[EXPLICIT..])
            .map_err(|_| Error::EncryptError)?;
        payload.extend_from_slice(&tag);
        Ok(OutboundOpaqueMessage::new(m.typ, m.version, payload))
    }

    fn encrypted_payload_len(&self, payload_len: usize) -> usize {
        payload_len + EXPLICIT + TAG
    }
}

struct Tls12Decrypter {
    keyed: Keyed,
    salt: [u8; 4],
}

impl MessageDecrypter for Tls12Decrypter {
    fn decrypt<'a>(&mut self, mut m: InboundOpaqueMessage<'a>, seq: u64) -> Result<InboundPlainMessage<'a>, Error> {
        let key = self.keyed.key.as_ref().ok_or(Error::DecryptError)?;
        let payload = &mut m.payload;
        let Some(body_len) = payload.len().checked_sub(EXPLICIT + TAG) else { return Err(Error::DecryptError) };
        let mut nonce = [0u8; 12];
        nonce[..4].copy_from_slice(&self.salt);
        nonce[4..].copy_from_slice(&payload[..EXPLICIT]);
        let aad = make_tls12_aad(seq, m.typ, m.version, body_len);
        let (body, tag) = payload[EXPLICIT..].split_at_mut(body_len);
        let tag: &[u8; TAG] = (&*tag).try_into().map_err(|_| Error::DecryptError)?;
        self.keyed.engine.open(key, &nonce, &aad, body, tag).map_err(|_| Error::DecryptError)?;
        if body_len > MAX_FRAGMENT {
            return Err(Error::PeerSentOversizedRecord);
        }
        payload.rotate_left(EXPLICIT);
        payload.truncate(body_len);
        Ok(m.into_plain_message())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aes_gcm::aead::{AeadInPlace, KeyInit};
    use morgana_devices::AesGcmError;
    use rustls::crypto::cipher::OutboundChunks;

    /// An engine on RustCrypto's AES-256-GCM (the key is kept in the
    /// round-key slots: nothing but this engine reads them).
    struct Soft;

    impl AesGcm for Soft {
        fn name(&self) -> &'static str {
            "test"
        }
        fn key(&self, key: &[u8]) -> Option<AesGcmKey> {
            let mut rk = [[0u8; 16]; 15];
            rk[0].copy_from_slice(&key[..16]);
            rk[1].copy_from_slice(&key[16..32]);
            AesGcmKey::new(rk, 14, [0; 16])
        }
        fn seal(&self, k: &AesGcmKey, n: &[u8; 12], aad: &[u8], buf: &mut [u8]) -> Result<[u8; 16], AesGcmError> {
            let tag = cipher(k).encrypt_in_place_detached(n.into(), aad, buf).map_err(|_| AesGcmError::TooLong)?;
            Ok(tag.into())
        }
        fn open(
            &self,
            k: &AesGcmKey,
            n: &[u8; 12],
            aad: &[u8],
            buf: &mut [u8],
            tag: &[u8; 16],
        ) -> Result<(), AesGcmError> {
            cipher(k).decrypt_in_place_detached(n.into(), aad, buf, tag.into()).map_err(|_| AesGcmError::BadTag)
        }
    }

    fn cipher(k: &AesGcmKey) -> aes_gcm::Aes256Gcm {
        let mut key = [0u8; 32];
        key[..16].copy_from_slice(&k.round_keys()[0]);
        key[16..].copy_from_slice(&k.round_keys()[1]);
        aes_gcm::Aes256Gcm::new(&key.into())
    }

    #[test]
    fn tls12_record_over_16_kib_is_a_record_overflow() {
        let gcm = Gcm { engine: &Soft, key_len: 32 };
        let key = || AeadKey::from([7u8; 32]);
        let (typ, version) = (ContentType::ApplicationData, ProtocolVersion::TLSv1_2);
        for (len, oversized) in [(MAX_FRAGMENT, false), (MAX_FRAGMENT + 1, true)] {
            let plain = alloc::vec![0x41u8; len];
            let m = OutboundPlainMessage { typ, version, payload: OutboundChunks::Single(&plain) };
            let mut sealed = Tls12AeadAlgorithm::encrypter(&gcm, key(), &[1, 2, 3, 4], &[5; 8]).encrypt(m, 9).unwrap();
            let payload = sealed.payload.as_mut();
            let opened = Tls12AeadAlgorithm::decrypter(&gcm, key(), &[1, 2, 3, 4])
                .decrypt(InboundOpaqueMessage::new(typ, version, payload), 9)
                .map(|p| p.payload.len());
            match oversized {
                false => assert_eq!(opened, Ok(len)),
                true => assert_eq!(opened, Err(Error::PeerSentOversizedRecord)),
            }
        }
    }
}
