//! Where a chunked body ends. The native engine passes a chunked response
//! through byte for byte (chunk extensions and trailers included) and only
//! needs to know which byte is its last, so that the backend's connection
//! can carry the next request. A malformed chunk is an error: the response
//! is cut and neither connection is reused. For hyper's path
//! (`upstream.rs`), the same walk finds each run of chunk data, so that the
//! body is passed on decoded.

use std::ops::Range;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Hex digits of a chunk size (`digits` read so far).
    Size {
        digits: u8,
    },
    /// After the size: `;extensions` or spaces up to CR.
    Extension,
    /// CR of the size line seen, LF next.
    SizeLf,
    /// Chunk data still to come.
    Data,
    /// After the data: CR, then LF.
    DataCr,
    DataLf,
    /// After the last (zero) chunk: a trailer line or the final CRLF.
    TrailerStart,
    /// Inside a trailer line, up to its LF.
    TrailerLine,
    /// CR of the final line seen, LF next.
    FinalLf,
    Done,
}

#[derive(Debug, thiserror::Error)]
#[error("malformed chunked body from the backend")]
pub struct Malformed;

#[derive(Debug, Clone)]
pub struct Tracker {
    state: State,
    size: u64,
}

impl Default for Tracker {
    fn default() -> Self {
        Tracker {
            state: State::Size { digits: 0 },
            size: 0,
        }
    }
}

impl Tracker {
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The last (zero) chunk's size line is read: the trailer section
    /// comes next (where [`Tracker::next_data`] stops).
    pub fn at_trailers(&self) -> bool {
        self.state == State::TrailerStart
    }

    /// Walk `data`, the next bytes of the body. Returns how many of them
    /// belong to it: all of them, or fewer when the body ends inside.
    pub fn advance(&mut self, data: &[u8]) -> Result<usize, Malformed> {
        self.walk(data, false).map(|(walked, _)| walked)
    }

    /// Walk `data` up to the end of the next run of chunk data: how many
    /// bytes were walked, and where the run lies in them. `None`: the bytes
    /// ended first, or the last chunk's size line did (the trailer section
    /// is the caller's to read).
    pub fn next_data(&mut self, data: &[u8]) -> Result<(usize, Option<Range<usize>>), Malformed> {
        self.walk(data, true)
    }

    /// The walk; `stop`: at the end of a run of data, and before the
    /// trailer section.
    fn walk(
        &mut self,
        data: &[u8],
        stop: bool,
    ) -> Result<(usize, Option<Range<usize>>), Malformed> {
        let mut i = 0;
        while i < data.len() {
            let b = data[i];
            match self.state {
                State::Size { digits } => match (b as char).to_digit(16) {
                    Some(d) if digits < 15 => {
                        self.size = self.size * 16 + u64::from(d);
                        self.state = State::Size { digits: digits + 1 };
                    }
                    Some(_) => return Err(Malformed),
                    None if digits == 0 => return Err(Malformed),
                    None => match b {
                        b'\r' => self.state = State::SizeLf,
                        b';' | b' ' | b'\t' => self.state = State::Extension,
                        _ => return Err(Malformed),
                    },
                },
                State::Extension => match b {
                    b'\r' => self.state = State::SizeLf,
                    b'\n' => return Err(Malformed),
                    _ => {}
                },
                State::SizeLf => {
                    if b != b'\n' {
                        return Err(Malformed);
                    }
                    if self.size == 0 {
                        self.state = State::TrailerStart;
                        if stop {
                            return Ok((i + 1, None));
                        }
                    } else {
                        self.state = State::Data;
                    }
                }
                State::Data => {
                    let take =
                        (data.len() - i).min(usize::try_from(self.size).unwrap_or(usize::MAX));
                    self.size -= take as u64;
                    let run = i..i + take;
                    i += take;
                    if self.size == 0 {
                        self.state = State::DataCr;
                    }
                    if stop {
                        return Ok((i, Some(run)));
                    }
                    continue;
                }
                State::DataCr => {
                    if b != b'\r' {
                        return Err(Malformed);
                    }
                    self.state = State::DataLf;
                }
                State::DataLf => {
                    if b != b'\n' {
                        return Err(Malformed);
                    }
                    self.state = State::Size { digits: 0 };
                }
                State::TrailerStart => {
                    self.state = if b == b'\r' {
                        State::FinalLf
                    } else if b == b'\n' {
                        return Err(Malformed);
                    } else {
                        State::TrailerLine
                    };
                }
                State::TrailerLine => {
                    if b == b'\n' {
                        self.state = State::TrailerStart;
                    }
                }
                State::FinalLf => {
                    if b != b'\n' {
                        return Err(Malformed);
                    }
                    self.state = State::Done;
                    return Ok((i + 1, None));
                }
                State::Done => return Ok((i, None)),
            }
            i += 1;
        }
        Ok((i, None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end_of(body: &[u8]) -> Result<Option<usize>, Malformed> {
        let mut t = Tracker::default();
        let n = t.advance(body)?;
        Ok(t.is_done().then_some(n))
    }

    #[test]
    fn finds_the_end_whole_and_byte_by_byte() {
        let body =
            b"5;ext=1\r\nhello\r\na\r\n0123456789\r\n0\r\ngrpc-status: 0\r\nx: y\r\n\r\nNEXT";
        assert_eq!(end_of(body).unwrap(), Some(body.len() - 4));
        let mut t = Tracker::default();
        let mut total = 0;
        for b in body.chunks(1) {
            if t.is_done() {
                break;
            }
            total += t.advance(b).unwrap();
        }
        assert!(t.is_done());
        assert_eq!(total, body.len() - 4);
    }

    #[test]
    fn the_runs_of_data_are_found_byte_by_byte_too() {
        let body = b"5;ext=1\r\nhello\r\na\r\n0123456789\r\n0\r\nx: y\r\n\r\n";
        for step in [body.len(), 3, 1] {
            let mut t = Tracker::default();
            let (mut data, mut at) = (Vec::new(), 0);
            while !t.at_trailers() {
                let end = (at + step).min(body.len());
                let (walked, run) = t.next_data(&body[at..end]).unwrap();
                if let Some(run) = run {
                    data.extend_from_slice(&body[at + run.start..at + run.end]);
                }
                at += walked;
            }
            assert_eq!(data, b"hello0123456789", "step {step}");
            assert_eq!(&body[at..], b"x: y\r\n\r\n");
        }
    }

    #[test]
    fn an_unfinished_body_is_not_done() {
        assert_eq!(end_of(b"5\r\nhel").unwrap(), None);
        assert_eq!(end_of(b"0\r\n\r").unwrap(), None);
        assert_eq!(end_of(b"0\r\n").unwrap(), None);
    }

    #[test]
    fn malformed_chunks_are_errors() {
        for bad in [
            &b"x\r\n"[..],
            b"\r\n",
            b"5\r\nhelloX",
            b"5\nhello",
            b"ffffffffffffffff0\r\n",
            b"0\r\n\n",
        ] {
            assert!(end_of(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
