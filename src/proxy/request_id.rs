//! `X-Request-Id`: kept when the client sent a sane one, generated otherwise.

use http::header::{HeaderMap, HeaderName, HeaderValue};

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

const MAX_LEN: usize = 128;

/// The request's id, inserting a fresh one into `headers` when absent or unusable.
pub fn ensure(headers: &mut HeaderMap) -> HeaderValue {
    if let Some(v) = headers.get(&X_REQUEST_ID) {
        if usable(v.as_bytes()) {
            return v.clone();
        }
    }
    let id = generate();
    headers.insert(X_REQUEST_ID.clone(), id.clone());
    id
}

/// Whether a client's id is kept: 1 to 128 visible ASCII characters.
pub fn usable(id: &[u8]) -> bool {
    !id.is_empty() && id.len() <= MAX_LEN && id.iter().all(|c| c.is_ascii_graphic())
}

/// 128 random bits as 32 lowercase hex digits.
pub fn generate() -> HeaderValue {
    let buf = generate_hex();
    // Only hex digits: always a valid header value.
    HeaderValue::from_bytes(&buf).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

/// [`generate`]'s digits, on the stack.
pub fn generate_hex() -> [u8; 32] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut n = fastrand::u128(..);
    let mut buf = [0u8; 32];
    for b in buf.iter_mut().rev() {
        *b = HEX[(n & 0xf) as usize];
        n >>= 4;
    }
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_a_valid_id_and_replaces_a_bad_one() {
        let mut h = HeaderMap::new();
        h.insert(&X_REQUEST_ID, HeaderValue::from_static("abc-123"));
        assert_eq!(ensure(&mut h), "abc-123");

        let mut h = HeaderMap::new();
        h.insert(&X_REQUEST_ID, HeaderValue::from_static("has space"));
        let id = ensure(&mut h);
        assert_eq!(id.len(), 32);
        assert_eq!(h.get(&X_REQUEST_ID).unwrap(), &id);
    }

    #[test]
    fn generated_ids_differ() {
        assert_ne!(generate(), generate());
    }
}
