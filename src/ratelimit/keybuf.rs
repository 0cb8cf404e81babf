//! A request's rate-limit keys, one after the other, in a buffer that
//! lives inline up to 64 bytes (a rule's name and a client address fit)
//! and moves to the heap past that (long header values).

pub struct KeyBuf {
    inline: [u8; 64],
    len: usize,
    /// Used once the keys outgrow `inline` (then it holds all of them).
    heap: Vec<u8>,
}

impl Default for KeyBuf {
    fn default() -> Self {
        KeyBuf {
            inline: [0; 64],
            len: 0,
            heap: Vec::new(),
        }
    }
}

impl KeyBuf {
    pub fn len(&self) -> usize {
        if self.heap.is_empty() {
            self.len
        } else {
            self.heap.len()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn extend_from_slice(&mut self, bytes: &[u8]) {
        if self.heap.is_empty() && self.len + bytes.len() <= self.inline.len() {
            self.inline[self.len..self.len + bytes.len()].copy_from_slice(bytes);
            self.len += bytes.len();
            return;
        }
        if self.heap.is_empty() {
            self.heap.reserve(self.len + bytes.len() + 64);
            self.heap.extend_from_slice(&self.inline[..self.len]);
        }
        self.heap.extend_from_slice(bytes);
    }

    pub fn push(&mut self, b: u8) {
        self.extend_from_slice(&[b]);
    }

    pub fn truncate(&mut self, len: usize) {
        if self.heap.is_empty() {
            self.len = self.len.min(len);
        } else {
            self.heap.truncate(len);
        }
    }

    pub fn as_slice(&self) -> &[u8] {
        if self.heap.is_empty() {
            &self.inline[..self.len]
        } else {
            &self.heap
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spills_to_the_heap_and_keeps_every_byte() {
        let mut k = KeyBuf::default();
        k.extend_from_slice(b"per_ip:");
        k.extend_from_slice(&[10, 0, 0, 1]);
        assert_eq!(k.as_slice(), b"per_ip:\x0a\x00\x00\x01");
        let long = [b'x'; 100];
        k.extend_from_slice(&long);
        assert_eq!(k.len(), 111);
        assert_eq!(&k.as_slice()[..7], b"per_ip:");
        k.truncate(7);
        k.push(b'!');
        assert_eq!(k.as_slice(), b"per_ip:!");
    }
}
