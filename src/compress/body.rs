//! The compressed body: the response's frames in, compressed frames out,
//! never the whole body in memory. Each codec's own streaming encoder
//! writes into a `Vec` that is handed on as a frame.
//!
//! While the inner body has data ready, input is gathered until
//! `EMIT_AT` bytes of output (or `INPUT_PER_POLL` of input, to yield to
//! other tasks); when the inner body has nothing ready, the encoder is
//! flushed and what it had goes out, so a stream (server-sent events, a
//! long poll's chunks) reaches the client as it is written.

use std::io::Write;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use shoal_config::Codec;

use crate::proxy::body::{BodyError, ProxyBody};

/// Output handed on once this much is ready.
const EMIT_AT: usize = 32 * 1024;
/// Input taken in one poll before the task yields.
const INPUT_PER_POLL: usize = 256 * 1024;
/// brotli's window (2^22 = 4 MiB, its default).
const BROTLI_LGWIN: u32 = 22;

/// One codec's streaming encoder, writing into a `Vec`.
pub enum Encoder {
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Br(Box<brotli::CompressorWriter<Vec<u8>>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
}

impl Encoder {
    pub fn new(codec: Codec, level: u32) -> std::io::Result<Encoder> {
        Ok(match codec {
            Codec::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::new(level),
            )),
            Codec::Br => Encoder::Br(Box::new(brotli::CompressorWriter::new(
                Vec::new(),
                16 * 1024,
                level,
                BROTLI_LGWIN,
            ))),
            Codec::Zstd => {
                Encoder::Zstd(zstd::stream::write::Encoder::new(Vec::new(), level as i32)?)
            }
        })
    }

    fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        match self {
            Encoder::Gzip(e) => e.write_all(data),
            Encoder::Br(e) => e.write_all(data),
            Encoder::Zstd(e) => e.write_all(data),
        }
    }

    /// Everything written so far, out (a sync flush: the stream goes on).
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Encoder::Gzip(e) => e.flush(),
            Encoder::Br(e) => e.flush(),
            Encoder::Zstd(e) => e.flush(),
        }
    }

    fn output(&mut self) -> &mut Vec<u8> {
        match self {
            Encoder::Gzip(e) => e.get_mut(),
            Encoder::Br(e) => e.get_mut(),
            Encoder::Zstd(e) => e.get_mut(),
        }
    }

    /// The output so far, taken.
    fn take(&mut self) -> Bytes {
        Bytes::from(std::mem::take(self.output()))
    }

    /// The end of the stream: the rest of the output.
    fn finish(self) -> std::io::Result<Bytes> {
        let out = match self {
            Encoder::Gzip(e) => e.finish()?,
            Encoder::Br(e) => e.into_inner(),
            Encoder::Zstd(e) => e.finish()?,
        };
        Ok(Bytes::from(out))
    }
}

/// A response body, compressed as it streams.
pub struct CompressBody {
    inner: ProxyBody,
    /// `None` once finished.
    encoder: Option<Encoder>,
    /// Input went in since the last flush.
    unflushed: bool,
    /// The inner body's trailers, sent after the last data.
    trailers: Option<Frame<Bytes>>,
}

impl CompressBody {
    pub fn new(inner: ProxyBody, encoder: Encoder) -> CompressBody {
        CompressBody {
            inner,
            encoder: Some(encoder),
            unflushed: false,
            trailers: None,
        }
    }

    /// The encoder's last bytes, then the trailers (if any) on the next poll.
    fn finish(&mut self) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let Some(encoder) = self.encoder.take() else {
            return Poll::Ready(self.trailers.take().map(Ok));
        };
        match encoder.finish() {
            Ok(last) if !last.is_empty() => Poll::Ready(Some(Ok(Frame::data(last)))),
            Ok(_) => Poll::Ready(self.trailers.take().map(Ok)),
            Err(e) => Poll::Ready(Some(Err(e.into()))),
        }
    }
}

impl Body for CompressBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        // Every field is Unpin (ProxyBody boxes what is not).
        let this = self.get_mut();
        let Some(encoder) = this.encoder.as_mut() else {
            return Poll::Ready(this.trailers.take().map(Ok));
        };
        let mut taken = 0;
        loop {
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        taken += data.len();
                        if let Err(e) = encoder.write(&data) {
                            return Poll::Ready(Some(Err(e.into())));
                        }
                        this.unflushed = true;
                        if encoder.output().len() >= EMIT_AT {
                            return Poll::Ready(Some(Ok(Frame::data(encoder.take()))));
                        }
                        if taken >= INPUT_PER_POLL {
                            if !encoder.output().is_empty() {
                                return Poll::Ready(Some(Ok(Frame::data(encoder.take()))));
                            }
                            cx.waker().wake_by_ref();
                            return Poll::Pending;
                        }
                    }
                    Err(frame) => {
                        // Trailers end the body.
                        this.trailers = frame.into_trailers().ok().map(Frame::trailers);
                        return this.finish();
                    }
                },
                Poll::Ready(Some(Err(e))) => {
                    this.encoder = None;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None) => return this.finish(),
                Poll::Pending => {
                    if this.unflushed {
                        this.unflushed = false;
                        if let Err(e) = encoder.flush() {
                            return Poll::Ready(Some(Err(e.into())));
                        }
                    }
                    if encoder.output().is_empty() {
                        return Poll::Pending;
                    }
                    return Poll::Ready(Some(Ok(Frame::data(encoder.take()))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.encoder.is_none() && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::io::Read;

    async fn compressed(codec: Codec, input: &[u8]) -> Vec<u8> {
        let body = CompressBody::new(
            ProxyBody::full(Bytes::copy_from_slice(input)),
            Encoder::new(codec, 3).unwrap(),
        );
        body.collect().await.unwrap().to_bytes().to_vec()
    }

    #[tokio::test]
    async fn each_codec_round_trips() {
        let input: Vec<u8> = (0..200_000u32)
            .flat_map(|i| format!("line {i}\n").into_bytes())
            .collect();
        let gz = compressed(Codec::Gzip, &input).await;
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, input);
        let br = compressed(Codec::Br, &input).await;
        let mut out = Vec::new();
        brotli::Decompressor::new(&br[..], 4096)
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, input);
        let zs = compressed(Codec::Zstd, &input).await;
        assert_eq!(zstd::decode_all(&zs[..]).unwrap(), input);
        assert!(zs.len() < input.len() / 4);
    }
}
