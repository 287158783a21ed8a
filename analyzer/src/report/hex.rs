//! "0x..." lowercase hex strings for addresses and other 64-bit values in JSON.
//!
//! Why strings: JSON numbers are IEEE doubles in most consumers (JavaScript, many ticket
//! systems), which silently round anything above 2^53, i.e. every x64 kernel address.

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;

/// A value serialized as a "0x..." lowercase hex string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Hex(pub u64);

impl From<u64> for Hex {
    fn from(v: u64) -> Self {
        Hex(v)
    }
}
impl From<u32> for Hex {
    fn from(v: u32) -> Self {
        Hex(u64::from(v))
    }
}
impl From<u16> for Hex {
    fn from(v: u16) -> Self {
        Hex(u64::from(v))
    }
}

impl fmt::Display for Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// Parses "0x..." (either case of digits; the prefix is required).
pub fn parse_hex(s: &str) -> Option<u64> {
    let digits = s.strip_prefix("0x")?;
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    u64::from_str_radix(digits, 16).ok()
}

impl Serialize for Hex {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Hex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Hex;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a \"0x...\" hex string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Hex, E> {
                parse_hex(v)
                    .map(Hex)
                    .ok_or_else(|| E::custom(format!("not a 0x hex string: {v:?}")))
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        assert_eq!(
            serde_json::to_string(&Hex(0xfffff804_7ba00000)).unwrap(),
            "\"0xfffff8047ba00000\""
        );
        assert_eq!(serde_json::to_string(&Hex(0)).unwrap(), "\"0x0\"");
        let h: Hex = serde_json::from_str("\"0xFFfe\"").unwrap();
        assert_eq!(h, Hex(0xfffe));
        assert!(serde_json::from_str::<Hex>("\"12\"").is_err());
        assert!(serde_json::from_str::<Hex>("\"0x\"").is_err());
        assert!(serde_json::from_str::<Hex>("\"0x10000000000000000\"").is_err());
        assert!(serde_json::from_str::<Hex>("12").is_err());
    }
}
