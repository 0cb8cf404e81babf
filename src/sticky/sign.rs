//! The cookie's value: which backend, signed. `ID.MAC`: the backend's
//! sticky id (`Endpoint::sticky_id`, 16 hex digits) and the first 128 bits
//! of HMAC-SHA256 over it (32 hex digits). A client cannot make up a value
//! that names another backend without the key; any shoal with the same key
//! reads the values the others wrote.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Bytes of the MAC kept: 128 bits (RFC 2104 §5: at least half the
/// hash's output).
const MAC_BYTES: usize = 16;
/// `ID.MAC` in hex.
pub const VALUE_LEN: usize = 16 + 1 + 2 * MAC_BYTES;
/// Put in front of what is signed, so a MAC made with the same key for
/// something else (another use of a shared secret) is never a valid
/// cookie.
const CONTEXT: &[u8] = b"shoal-sticky-v1\0";

/// Signs and checks cookie values with one key.
#[derive(Clone)]
pub struct Signer {
    /// Keyed once; each use clones the keyed state (the key is not hashed
    /// again).
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(..)")
    }
}

impl Signer {
    pub fn new(key: &[u8]) -> Signer {
        Signer {
            // HMAC takes a key of any length.
            mac: Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts any key length"),
        }
    }

    fn tag(&self, id: u64) -> Hmac<Sha256> {
        let mut mac = self.mac.clone();
        mac.update(CONTEXT);
        mac.update(&id.to_be_bytes());
        mac
    }

    /// The cookie value naming backend `id`.
    pub fn sign(&self, id: u64) -> [u8; VALUE_LEN] {
        let full = self.tag(id).finalize().into_bytes();
        let mut out = [0u8; VALUE_LEN];
        hex(&id.to_be_bytes(), &mut out[..16]);
        out[16] = b'.';
        hex(&full[..MAC_BYTES], &mut out[17..]);
        out
    }

    /// The backend `value` names, if this key signed it. Anything else (a
    /// value of another length, not hex, another key's, changed) is
    /// `None`. The MAC is compared in constant time.
    pub fn verify(&self, value: &[u8]) -> Option<u64> {
        if value.len() != VALUE_LEN || value[16] != b'.' {
            return None;
        }
        let mut id = [0u8; 8];
        unhex(&value[..16], &mut id)?;
        let mut tag = [0u8; MAC_BYTES];
        unhex(&value[17..], &mut tag)?;
        let id = u64::from_be_bytes(id);
        self.tag(id).verify_truncated_left(&tag).ok()?;
        Some(id)
    }
}

const DIGITS: &[u8; 16] = b"0123456789abcdef";

fn hex(bytes: &[u8], out: &mut [u8]) {
    for (b, pair) in bytes.iter().zip(out.chunks_exact_mut(2)) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 0xf)];
    }
}

/// Lowercase hex only: a value has one spelling, as `sign` writes it.
fn unhex(text: &[u8], out: &mut [u8]) -> Option<()> {
    fn digit(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    for (pair, o) in text.chunks_exact(2).zip(out.iter_mut()) {
        *o = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef-sticky";

    #[test]
    fn a_signed_value_verifies_to_its_id() {
        let s = Signer::new(KEY);
        for id in [0, 1, 0xdead_beef, u64::MAX] {
            let v = s.sign(id);
            assert_eq!(s.verify(&v), Some(id), "{}", String::from_utf8_lossy(&v));
        }
        // Stable: another shoal with the same key writes the same value.
        assert_eq!(s.sign(7), Signer::new(KEY).sign(7));
        let v = s.sign(7);
        assert!(
            v.starts_with(b"0000000000000007."),
            "{:?}",
            String::from_utf8_lossy(&v)
        );
    }

    #[test]
    fn anything_changed_or_made_up_does_not_verify() {
        let s = Signer::new(KEY);
        let good = s.sign(42);
        // Another key's value.
        assert_eq!(Signer::new(b"another key, 16+ bytes").verify(&good), None);
        // Every single byte changed.
        for i in 0..good.len() {
            for c in [b'0', b'f', b'.', b'A', b'x'] {
                let mut bad = good;
                if bad[i] == c {
                    continue;
                }
                bad[i] = c;
                assert_eq!(s.verify(&bad), None, "{}", String::from_utf8_lossy(&bad));
            }
        }
        // Another backend's id with this id's MAC.
        let mut swapped = s.sign(43);
        swapped[17..].copy_from_slice(&good[17..]);
        assert_eq!(s.verify(&swapped), None);
        // Wrong lengths, uppercase, empty.
        assert_eq!(s.verify(&good[..VALUE_LEN - 1]), None);
        assert_eq!(s.verify(b""), None);
        let mut longer = good.to_vec();
        longer.push(b'0');
        assert_eq!(s.verify(&longer), None);
        let upper = good.to_ascii_uppercase();
        assert_eq!(s.verify(&upper), None);
    }
}
