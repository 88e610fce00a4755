//! Opaque, prefixed, time-ordered identifiers (docs/api.md §1).
//!
//! An id is `<prefix>_` followed by 26 Crockford base32 characters: 48 bits of Unix milliseconds
//! and 80 random bits, like a ULID. Ids made by one process are strictly increasing, so sorting by
//! id is sorting by creation, and the prefix lets a handler reject an id of the wrong type without
//! touching the database.

use std::sync::Mutex;

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const BODY_LEN: usize = 26;

/// The last id body handed out, so that ids made in the same millisecond still increase.
static LAST: Mutex<u128> = Mutex::new(0);

/// A new id with the given prefix (without the underscore), e.g. `new_id("deal")`.
pub fn new_id(prefix: &str) -> String {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let mut random = [0u8; 10];
    crate::secrets::fill_random(&mut random);
    let mut value: u128 = (u128::from(now_ms & 0xFFFF_FFFF_FFFF)) << 80;
    for (i, b) in random.iter().enumerate() {
        value |= u128::from(*b) << (8 * (9 - i));
    }
    {
        let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
        if value <= *last {
            value = *last + 1;
        }
        *last = value;
    }
    encode(prefix, value)
}

/// An id made from a given time and 80 given random bits: for data that must come out the
/// same on every run (`clozup seed --seed N`).
pub fn id_at(prefix: &str, ms: i64, random: u128) -> String {
    let time = (ms.max(0) as u128) & 0xFFFF_FFFF_FFFF;
    encode(prefix, (time << 80) | (random & ((1u128 << 80) - 1)))
}

fn encode(prefix: &str, value: u128) -> String {
    let mut out = String::with_capacity(prefix.len() + 1 + BODY_LEN);
    out.push_str(prefix);
    out.push('_');
    for i in (0..BODY_LEN).rev() {
        let digit = ((value >> (5 * i)) & 0x1F) as usize;
        out.push(CROCKFORD[digit] as char);
    }
    out
}

/// Whether `id` is a well-formed id of the given prefix. Anything else is `404 not_found` for
/// the caller, exactly like an id that does not exist.
pub fn is_valid(id: &str, prefix: &str) -> bool {
    let Some(body) = id
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('_'))
    else {
        return false;
    };
    body.len() == BODY_LEN
        && body.bytes().all(|b| CROCKFORD.contains(&b))
        // 26 base32 digits carry 130 bits; the top digit may only use the lowest 3.
        && body.as_bytes()[0] <= b'7'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_increase_and_validate() {
        let a = new_id("deal");
        let b = new_id("deal");
        assert!(a < b, "{a} should sort before {b}");
        assert!(is_valid(&a, "deal"));
        assert!(!is_valid(&a, "lead"));
        assert!(!is_valid("deal_123", "deal"));
        assert!(!is_valid("deal_", "deal"));
        assert!(!is_valid(&a.to_lowercase(), "deal"));
    }
}
