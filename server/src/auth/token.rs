//! API token secrets: generation, hashing and verification.
//!
//! A token is `pt_` followed by 64 lowercase hex digits (32 random bytes from the operating
//! system). It is shown once, when it is created, and only its SHA-256 is stored: the secret has
//! 256 bits of entropy, so a plain (unsalted, fast) hash is enough — there is nothing to
//! brute-force, unlike a password — and it lets a request find its row with one indexed lookup.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Every token starts with this, so a token pasted into a log or a ticket is recognisable (and
/// secret scanners can be taught the pattern).
pub const TOKEN_PREFIX: &str = "pt_";

/// Random bytes in a token secret.
const SECRET_BYTES: usize = 32;

/// Length of a well-formed token string: prefix + two hex digits per byte.
pub const TOKEN_LEN: usize = TOKEN_PREFIX.len() + 2 * SECRET_BYTES;

/// The operating system's random generator failed; nothing safe can be made without it.
#[derive(Debug, thiserror::Error)]
#[error("the system random generator failed: {0}")]
pub struct RandomError(String);

/// `n` random bytes from the operating system, as lowercase hex.
pub fn random_hex(n: usize) -> Result<String, RandomError> {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).map_err(|e| RandomError(e.to_string()))?;
    Ok(to_hex(&buf))
}

/// A new token string. The caller shows it once and stores [`hash_token`] of it.
pub fn generate_token() -> Result<String, RandomError> {
    Ok(format!("{TOKEN_PREFIX}{}", random_hex(SECRET_BYTES)?))
}

/// A new token id: 16 hex digits, public (listed, used to revoke), unrelated to the secret.
pub fn generate_id() -> Result<String, RandomError> {
    random_hex(8)
}

/// Whether `s` has the shape of a token. Checked before hashing so garbage in an
/// `Authorization` header is refused without touching the database.
pub fn looks_like_token(s: &str) -> bool {
    s.len() == TOKEN_LEN
        && s.starts_with(TOKEN_PREFIX)
        && s[TOKEN_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// What the database stores for a token (or a session cookie): lowercase hex SHA-256 of the whole
/// string.
pub fn hash_token(secret: &str) -> String {
    to_hex(&Sha256::digest(secret.as_bytes()))
}

/// Whether `secret` hashes to `stored_hash`, compared in constant time.
///
/// The row is found by its hash, so an attacker cannot steer a byte-by-byte timing search anyway
/// (they would need SHA-256 preimages); comparing again in constant time keeps that argument from
/// depending on how the database compares strings.
pub fn verify_token(secret: &str, stored_hash: &str) -> bool {
    constant_time_eq(hash_token(secret).as_bytes(), stored_hash.as_bytes())
}

/// Byte-string equality whose time does not depend on where the first difference is.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // Lengths are not secret here (all our secrets have fixed public lengths).
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_matches_the_fips_180_test_vector() {
        // FIPS 180-2 appendix B.1: SHA-256("abc").
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn generated_tokens_have_the_documented_shape_and_differ() {
        let a = generate_token().unwrap();
        let b = generate_token().unwrap();
        assert_eq!(a.len(), 67);
        assert!(a.starts_with("pt_"));
        assert!(looks_like_token(&a) && looks_like_token(&b));
        assert_ne!(a, b);
        assert_eq!(generate_id().unwrap().len(), 16);
    }

    #[test]
    fn malformed_tokens_are_refused_before_hashing() {
        let good = generate_token().unwrap();
        assert!(!looks_like_token(""));
        assert!(!looks_like_token(&good[..good.len() - 1]));
        assert!(!looks_like_token(&format!("{good}0")));
        assert!(!looks_like_token(&good.replacen("pt_", "xx_", 1)));
        assert!(!looks_like_token(&good.to_uppercase()));
        // Multi-byte characters must not make the slice panic.
        assert!(!looks_like_token(&format!("pt_{}", "é".repeat(32))));
    }

    #[test]
    fn verification_accepts_only_the_hashed_secret() {
        let t = generate_token().unwrap();
        let h = hash_token(&t);
        assert_eq!(h.len(), 64);
        assert!(verify_token(&t, &h));
        let other = generate_token().unwrap();
        assert!(!verify_token(&other, &h));
        // One flipped hex digit of the stored hash.
        let mut bad = h.clone().into_bytes();
        bad[63] = if bad[63] == b'0' { b'1' } else { b'0' };
        assert!(!verify_token(&t, std::str::from_utf8(&bad).unwrap()));
        assert!(!verify_token(&t, &h[..63]));
    }

    #[test]
    fn constant_time_eq_is_plain_equality() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
