//! `Accept-Encoding` (RFC 9110 §12.5.3): which of the server's codings a
//! client takes, by its q-values — `q=0` refuses, `*` stands for every
//! coding not named, `identity` is never a reason to compress — and the
//! server's order where q-values tie.

use shoal_config::Codec;

/// The client's weight for each coding, in thousandths: what it named,
/// and what `*` gives the rest.
#[derive(Debug, Default)]
struct Weights {
    named: Vec<(Vec<u8>, u16)>,
    star: Option<u16>,
}

/// `1`, `0.5`, `0.001`… in thousandths; `None` for anything else (the
/// element is then ignored, as a malformed one should be).
fn qvalue(v: &[u8]) -> Option<u16> {
    let v = std::str::from_utf8(v).ok()?.trim();
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = format!("{frac:0<3}").parse::<u16>().ok()?;
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

fn weights<'a>(values: impl Iterator<Item = &'a [u8]>) -> Weights {
    let mut w = Weights::default();
    for value in values {
        for element in value.split(|&b| b == b',') {
            let mut parts = element.split(|&b| b == b';');
            let name = parts.next().unwrap_or_default().trim_ascii();
            if name.is_empty() {
                continue;
            }
            let mut q = Some(1000);
            for param in parts {
                let param = param.trim_ascii();
                if let Some(v) = param
                    .strip_prefix(b"q=")
                    .or_else(|| param.strip_prefix(b"Q="))
                {
                    q = qvalue(v);
                }
            }
            let Some(q) = q else { continue };
            if name == b"*" {
                w.star = Some(q);
            } else {
                w.named.push((name.to_ascii_lowercase(), q));
            }
        }
    }
    w
}

impl Weights {
    /// The weight of `codec`: its own (`x-gzip` is gzip, RFC 9110
    /// §8.4.1.3), else that of `*`, else 0.
    fn of(&self, codec: Codec) -> u16 {
        let token = codec.token().as_bytes();
        self.named
            .iter()
            .filter(|(n, _)| n == token || (codec == Codec::Gzip && n == b"x-gzip"))
            .map(|(_, q)| *q)
            .max()
            .or(self.star)
            .unwrap_or(0)
    }
}

/// The coding to answer with: of `offered` (the server's order), the one
/// the client weighs highest, the first on a tie; `None` when the client
/// takes none of them (no `Accept-Encoding`, `identity` only, `q=0`).
pub fn negotiate<'a>(
    accept_encoding: impl Iterator<Item = &'a [u8]>,
    offered: &[Codec],
) -> Option<Codec> {
    let w = weights(accept_encoding);
    let mut best: Option<(Codec, u16)> = None;
    for &codec in offered {
        let q = w.of(codec);
        if q > 0 && best.is_none_or(|(_, b)| q > b) {
            best = Some((codec, q));
        }
    }
    best.map(|(c, _)| c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Codec::*;

    fn pick(header: &str, offered: &[Codec]) -> Option<Codec> {
        negotiate(std::iter::once(header.as_bytes()), offered)
    }

    #[test]
    fn q_values_decide_and_the_server_order_breaks_ties() {
        let all = [Zstd, Br, Gzip];
        assert_eq!(pick("gzip, deflate, br, zstd", &all), Some(Zstd));
        assert_eq!(pick("gzip, deflate, br", &all), Some(Br));
        assert_eq!(pick("gzip", &all), Some(Gzip));
        assert_eq!(pick("x-gzip", &all), Some(Gzip));
        assert_eq!(pick("gzip;q=1, br;q=0.5", &all), Some(Gzip));
        assert_eq!(pick("br;q=0.9, gzip;q=0.8, zstd;q=0.1", &all), Some(Br));
        assert_eq!(pick("GZIP ; Q=0.5", &all), Some(Gzip));
        assert_eq!(pick("gzip, br", &[Gzip, Br]), Some(Gzip), "server order");
    }

    #[test]
    fn refusals_identity_and_star() {
        let all = [Zstd, Br, Gzip];
        assert_eq!(pick("", &all), None);
        assert_eq!(pick("identity", &all), None);
        assert_eq!(pick("gzip;q=0", &all), None);
        assert_eq!(pick("gzip;q=0.000", &all), None);
        assert_eq!(pick("*", &all), Some(Zstd));
        assert_eq!(pick("*;q=0", &all), None);
        assert_eq!(pick("*;q=0.5, zstd;q=0", &all), Some(Br));
        assert_eq!(pick("*;q=0, gzip", &all), Some(Gzip));
        assert_eq!(pick("br", &[Gzip]), None, "not offered");
        assert_eq!(pick("gzip;q=2", &all), None, "a malformed q is ignored");
        assert_eq!(pick("gzip;q=0.0001", &all), None);
    }
}
