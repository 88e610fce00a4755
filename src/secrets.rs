//! Secrets: random tokens, their SHA-256 fingerprints, and argon2id password hashes.
//!
//! Tokens (API keys, session tokens) carry 190 bits of entropy from the OS CSPRNG, so a fast,
//! unsalted SHA-256 is the right way to store them: it makes a stolen database useless without
//! making every request pay for a slow hash. Passwords are low-entropy and get argon2id.

use argon2::password_hash::{phc::PasswordHash, PasswordHasher, PasswordVerifier};
use argon2::Argon2;
use sha2::{Digest, Sha256};

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Characters of randomness in every token, after its prefix (docs/api.md §2).
pub const TOKEN_RANDOM_LEN: usize = 32;

/// The first bytes of a sealed value: the format and its version.
const SEALED: &[u8] = b"s1";
/// ChaCha20-Poly1305's nonce length.
const NONCE_LEN: usize = 12;

/// The key only the holder of `credential` can derive: the server keeps a bearer token only as
/// its SHA-256, so without the token itself the key cannot be had.
fn sealing_key(credential: &str) -> ring::aead::LessSafeKey {
    let derive = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, credential.as_bytes());
    let key = ring::hmac::sign(&derive, b"clozup: sealed to the caller v1");
    let key = ring::aead::UnboundKey::new(&ring::aead::CHACHA20_POLY1305, key.as_ref())
        .expect("HMAC-SHA256 gives the 32 bytes ChaCha20-Poly1305 takes");
    ring::aead::LessSafeKey::new(key)
}

/// Encrypts `plain` for the caller presenting `credential`, bound to `context`.
///
/// Stored answers replayed for an `Idempotency-Key` can hold secrets (a new API key, a webhook
/// secret, a reset token) and personal data; sealed, they are useless to whoever reads the
/// database file or a backup, yet the caller's retry, which presents the same credential, gets
/// them back byte for byte.
pub fn seal(credential: &str, context: &[u8], plain: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    fill_random(&mut nonce);
    let mut out = plain.to_vec();
    sealing_key(credential)
        .seal_in_place_append_tag(
            ring::aead::Nonce::assume_unique_for_key(nonce),
            ring::aead::Aad::from(context),
            &mut out,
        )
        .expect("a stored answer is far below ChaCha20-Poly1305's length limit");
    [SEALED, &nonce, &out].concat()
}

/// Whether `stored` was made by [`seal`] (older stored answers are plain).
pub fn is_sealed(stored: &[u8]) -> bool {
    stored.starts_with(SEALED)
}

/// Decrypts what [`seal`] made for `credential` and `context`; `None` for anything else.
pub fn open(credential: &str, context: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    let rest = sealed.strip_prefix(SEALED)?;
    if rest.len() < NONCE_LEN {
        return None;
    }
    let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
    let mut buf = ciphertext.to_vec();
    let plain = sealing_key(credential)
        .open_in_place(
            ring::aead::Nonce::assume_unique_for_key(nonce.try_into().ok()?),
            ring::aead::Aad::from(context),
            &mut buf,
        )
        .ok()?;
    Some(plain.to_vec())
}

/// Fills `buf` from the operating system's CSPRNG.
///
/// # Panics
/// If the OS has no randomness to give, which leaves nothing safe to do.
pub fn fill_random(buf: &mut [u8]) {
    getrandom::fill(buf).expect("the OS random number generator failed");
}

/// A new token: `prefix` followed by 32 uniformly random base62 characters.
pub fn new_token(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + TOKEN_RANDOM_LEN);
    out.push_str(prefix);
    let mut byte = [0u8; 1];
    while out.len() < prefix.len() + TOKEN_RANDOM_LEN {
        fill_random(&mut byte);
        // Rejection sampling: 248 = 4 * 62, so every accepted byte maps to a uniform digit.
        if byte[0] < 248 {
            out.push(BASE62[(byte[0] % 62) as usize] as char);
        }
    }
    out
}

/// Whether `token` is `prefix` followed by exactly 32 base62 characters.
pub fn is_token_shaped(token: &str, prefix: &str) -> bool {
    token.strip_prefix(prefix).is_some_and(|rest| {
        rest.len() == TOKEN_RANDOM_LEN && rest.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

/// The SHA-256 of a token, as stored and looked up.
pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Hex SHA-256 of arbitrary bytes (request fingerprints and the like).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// An argon2id PHC string for `password`, with a fresh random salt.
pub fn hash_password(password: &str) -> Result<String, String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|e| e.to_string())
}

/// Whether `password` matches the stored PHC string. A malformed hash never matches.
pub fn verify_password(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_same_credential_and_context_open_a_sealed_value() {
        let sealed = seal("clz_one", b"org/key/idem-1", b"{\"key\": \"clz_secret\"}");
        assert!(is_sealed(&sealed));
        assert!(!sealed.windows(10).any(|w| w == b"clz_secret"));
        assert_eq!(
            open("clz_one", b"org/key/idem-1", &sealed).as_deref(),
            Some(b"{\"key\": \"clz_secret\"}".as_slice())
        );
        assert_eq!(open("clz_two", b"org/key/idem-1", &sealed), None);
        assert_eq!(open("clz_one", b"org/key/idem-2", &sealed), None);
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(open("clz_one", b"org/key/idem-1", &tampered), None);
        assert_ne!(
            seal("clz_one", b"c", b"x"),
            seal("clz_one", b"c", b"x"),
            "fresh nonces"
        );
    }

    #[test]
    fn tokens_have_the_documented_shape() {
        let t = new_token("clz_");
        assert!(is_token_shaped(&t, "clz_"), "{t}");
        assert!(!is_token_shaped(&t, "clzs_"));
        assert_ne!(new_token("clz_"), t);
        assert_eq!(token_hash(&t).len(), 32);
    }

    #[test]
    fn passwords_verify_only_themselves() {
        let phc = hash_password("correct horse battery").unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &phc));
        assert!(!verify_password("wrong", &phc));
        assert!(!verify_password("x", "not a hash"));
    }
}
