//! Forwarding an instance's stdout and stderr, one line at a time, each line
//! prefixed with the instance id (as docker compose and PM2 do).

use std::io::Write;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

/// A line longer than this is cut into pieces, so a process that never
/// writes a newline cannot grow shoal's memory.
const MAX_LINE: usize = 16 * 1024;

#[derive(Clone, Copy)]
pub enum Stream {
    Stdout,
    Stderr,
}

pub fn forward<R>(reader: R, id: String, stream: Stream)
where
    R: AsyncRead + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut reader = BufReader::new(reader);
        let mut line = Vec::with_capacity(256);
        let prefix = format!("{id} | ");
        loop {
            line.clear();
            let n = match read_line_limited(&mut reader, &mut line).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if line.last() != Some(&b'\n') {
                line.push(b'\n');
            }
            let mut out = Vec::with_capacity(prefix.len() + n + 1);
            out.extend_from_slice(prefix.as_bytes());
            out.extend_from_slice(&line);
            // One write per line under the std lock: lines from different
            // instances never interleave mid-line.
            let _ = match stream {
                Stream::Stdout => std::io::stdout().lock().write_all(&out),
                Stream::Stderr => std::io::stderr().lock().write_all(&out),
            };
        }
    });
}

async fn read_line_limited<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    line: &mut Vec<u8>,
) -> std::io::Result<usize> {
    let mut total = 0;
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            return Ok(total);
        }
        let room = MAX_LINE - line.len();
        let take = buf.len().min(room);
        let (used, done) = match buf[..take].iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (take, take == room),
        };
        line.extend_from_slice(&buf[..used]);
        reader.consume(used);
        total += used;
        if done {
            return Ok(total);
        }
    }
}
