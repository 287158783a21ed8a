//! The signature of a webhook body: `X-Pooltriage-Signature: sha256=<hex>`, the HMAC-SHA256 of
//! the exact body bytes under the configured secret (the scheme GitHub uses), so a receiver
//! can check that the event comes from this service and was not altered.
//!
//! Receivers should compare in constant time and de-duplicate on `X-Pooltriage-Delivery`
//! (a delivery can arrive twice if the service died between the request and its record).

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Name of the signature header.
pub const HEADER: &str = "X-Pooltriage-Signature";

/// `sha256=<lower-case hex of HMAC-SHA256(secret, body)>`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length; new_from_slice cannot fail for HMAC.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256=");
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4231_test_case_2() {
        // RFC 4231 section 4.3: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
