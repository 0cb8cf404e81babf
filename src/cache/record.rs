//! A stored response as the shared tier (Redis) keeps it: one value of
//! bytes, read back by any replica.
//!
//! ```text
//! "SC1" 'E' status:u16 request_ms:u64 response_ms:u64 initial_age_ms:u64
//!           lifetime_ms:u64 headers:u32 (name_len:u16 name value_len:u32 value)*
//!           body…
//! "SC1" 'V' name "," name …      (a primary key's `Vary` names)
//! ```
//!
//! Integers are big-endian; times are the wall clock in milliseconds
//! since the Unix epoch (every replica reads the age the same way). The
//! freshness directives and how long to keep it are worked out again from
//! the headers when it is read (`Entry::new`), as when it was stored.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Buf, BufMut, Bytes};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::StatusCode;

use super::policy::Times;
use super::store::Entry;

const MAGIC: &[u8; 3] = b"SC1";

/// What one key holds.
#[derive(Debug)]
pub enum Record {
    Entry(Arc<Entry>),
    /// The names a primary key's responses vary on: the response itself
    /// is under the secondary key they make.
    Vary(Vec<HeaderName>),
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn time(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

pub fn encode_entry(e: &Entry) -> Vec<u8> {
    let head: usize = e
        .headers
        .iter()
        .map(|(n, v)| 6 + n.as_str().len() + v.len())
        .sum();
    let mut out = Vec::with_capacity(4 + 2 + 32 + 4 + head + e.body.len());
    out.put_slice(MAGIC);
    out.put_u8(b'E');
    out.put_u16(e.status.as_u16());
    out.put_u64(millis(e.times.request));
    out.put_u64(millis(e.times.response));
    out.put_u64(e.times.initial_age.as_millis() as u64);
    out.put_u64(e.lifetime.as_millis() as u64);
    out.put_u32(e.headers.len() as u32);
    for (name, value) in &e.headers {
        out.put_u16(name.as_str().len() as u16);
        out.put_slice(name.as_str().as_bytes());
        out.put_u32(value.len() as u32);
        out.put_slice(value.as_bytes());
    }
    out.put_slice(&e.body);
    out
}

pub fn encode_vary(names: &[HeaderName]) -> Vec<u8> {
    let mut out = Vec::from(&MAGIC[..]);
    out.push(b'V');
    for (i, n) in names.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(n.as_str().as_bytes());
    }
    out
}

/// The record in `value`; `None` for anything else (another version,
/// cut short, or not ours): read as a miss.
pub fn decode(value: Vec<u8>) -> Option<Record> {
    let mut b = Bytes::from(value);
    if b.len() < 4 || &b[..3] != MAGIC {
        return None;
    }
    b.advance(3);
    match b.get_u8() {
        b'V' => {
            let names = std::str::from_utf8(&b).ok()?;
            let names = names
                .split(',')
                .filter(|n| !n.is_empty())
                .map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
                .collect::<Option<Vec<_>>>()?;
            Some(Record::Vary(names))
        }
        b'E' => {
            if b.remaining() < 2 + 32 + 4 {
                return None;
            }
            let status = StatusCode::from_u16(b.get_u16()).ok()?;
            let request = time(b.get_u64());
            let response = time(b.get_u64());
            let initial_age = Duration::from_millis(b.get_u64());
            let lifetime = Duration::from_millis(b.get_u64());
            let count = b.get_u32() as usize;
            let mut headers = HeaderMap::with_capacity(count.min(256));
            for _ in 0..count {
                if b.remaining() < 2 {
                    return None;
                }
                let n = b.get_u16() as usize;
                if b.remaining() < n + 4 {
                    return None;
                }
                let name = HeaderName::from_bytes(&b.split_to(n)).ok()?;
                let v = b.get_u32() as usize;
                if b.remaining() < v {
                    return None;
                }
                let value = HeaderValue::from_maybe_shared(b.split_to(v)).ok()?;
                headers.append(name, value);
            }
            let times = Times {
                request,
                response,
                initial_age,
            };
            let entry = Entry::new(status, headers, b, times, lifetime);
            Some(Record::Entry(Arc::new(entry)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        let mut h = HeaderMap::new();
        h.insert("cache-control", HeaderValue::from_static("max-age=60"));
        h.append("set-cookie", HeaderValue::from_static("a=1"));
        h.append("set-cookie", HeaderValue::from_static("b=2"));
        h.insert("x-bytes", HeaderValue::from_bytes(b"caf\xe9").unwrap());
        let now = SystemTime::now();
        let times = Times::new(&h, now - Duration::from_secs(2), now);
        Entry::new(
            StatusCode::NOT_FOUND,
            h,
            Bytes::from_static(b"the body\0with a nul"),
            times,
            Duration::from_secs(60),
        )
    }

    #[test]
    fn an_entry_reads_back_as_it_was_stored() {
        let e = entry();
        let Some(Record::Entry(back)) = decode(encode_entry(&e)) else {
            panic!("not an entry")
        };
        assert_eq!(back.status, e.status);
        assert_eq!(back.headers, e.headers);
        assert_eq!(back.body, e.body);
        assert_eq!(back.lifetime, e.lifetime);
        assert_eq!(back.cc, e.cc);
        assert_eq!(millis(back.times.request), millis(e.times.request));
        assert_eq!(millis(back.times.response), millis(e.times.response));
        assert_eq!(back.times.initial_age, e.times.initial_age);
        assert_eq!(back.keep, e.keep);
    }

    #[test]
    fn vary_names_read_back() {
        let names = vec![
            HeaderName::from_static("accept-encoding"),
            HeaderName::from_static("accept-language"),
        ];
        let Some(Record::Vary(back)) = decode(encode_vary(&names)) else {
            panic!("not vary names")
        };
        assert_eq!(back, names);
    }

    #[test]
    fn anything_else_is_a_miss() {
        assert!(decode(b"hello".to_vec()).is_none());
        assert!(decode(Vec::new()).is_none());
        let whole = encode_entry(&entry());
        for cut in [4, 10, 40, 45, 50] {
            assert!(decode(whole[..cut].to_vec()).is_none(), "cut at {cut}");
        }
        assert!(decode(b"SC1X".to_vec()).is_none());
    }
}
