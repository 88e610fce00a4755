//! Secrets: random tokens, their SHA-256 fingerprints, and argon2id password hashes.
//!
//! Tokens (API keys, session tokens) carry 190 bits of entropy from the OS CSPRNG, so a fast,
//! unsalted SHA-256 is the right way to store them: it makes a stolen database useless without
//! making every request pay for a slow hash. Passwords are low-entropy and get argon2id.

use argon2::password_hash::{phc::PasswordHash, PasswordHasher, PasswordVerifier};
use argon2::Argon2;
use sha2::{Digest, Sha256};

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Characters of randomness in every token, after its prefix (API.md §4).
pub const TOKEN_RANDOM_LEN: usize = 32;

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
