//! `compress` (top level and per route) and `routes[].files`: codecs
//! named once, levels within each codec's range, media types that are
//! media types, an index file name.

use super::Checker;
use crate::model::{Codec, CompressConfig, FilesConfig, RouteCompress};

pub(super) fn compress(c: &mut Checker<'_>, at: &str, config: &CompressConfig) {
    codecs(c, at, &config.codecs);
    types(c, at, &config.types);
    for codec in [Codec::Gzip, Codec::Br, Codec::Zstd] {
        level(c, at, codec, config.level.of(codec));
    }
}

pub(super) fn route_compress(c: &mut Checker<'_>, at: &str, config: &RouteCompress) {
    let RouteCompress::Settings(o) = config else {
        return;
    };
    if let Some(v) = &o.codecs {
        codecs(c, at, v);
    }
    if let Some(v) = &o.types {
        types(c, at, v);
    }
    for (codec, value) in [
        (Codec::Gzip, o.level.gzip),
        (Codec::Br, o.level.br),
        (Codec::Zstd, o.level.zstd),
    ] {
        if let Some(v) = value {
            level(c, at, codec, v);
        }
    }
}

fn codecs(c: &mut Checker<'_>, at: &str, codecs: &[Codec]) {
    if codecs.is_empty() {
        c.invalid(
            &format!("{at}.codecs"),
            "must name at least one of `zstd`, `br` and `gzip` (to turn compression off, \
             set `enabled: false`)"
                .into(),
        );
    }
    for (i, codec) in codecs.iter().enumerate() {
        if codecs[..i].contains(codec) {
            c.invalid(
                &format!("{at}.codecs[{i}]"),
                format!("`{}` is named twice", codec.token()),
            );
        }
    }
}

fn types(c: &mut Checker<'_>, at: &str, types: &[String]) {
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+*".contains(&b))
    };
    for (i, t) in types.iter().enumerate() {
        let ok = t
            .split_once('/')
            .is_some_and(|(a, b)| token(a) && token(b) && a != "*");
        if !ok {
            c.invalid(
                &format!("{at}.types[{i}]"),
                format!(
                    "`{t}` is not a media type: write `type/subtype` (`application/json`) or \
                     `type/*` (`text/*`), without parameters"
                ),
            );
        }
    }
}

fn level(c: &mut Checker<'_>, at: &str, codec: Codec, value: u32) {
    let (min, max) = codec.levels();
    c.range(&format!("{at}.level.{}", codec.token()), value, min, max);
}

pub(super) fn files(c: &mut Checker<'_>, at: &str, files: &FilesConfig) {
    if files.root.as_os_str().is_empty() {
        c.invalid(
            &format!("{at}.root"),
            "must not be empty: the directory to serve".into(),
        );
    }
    let index = &files.index;
    if index.is_empty() || index.contains('/') || index == "." || index == ".." {
        c.invalid(
            &format!("{at}.index"),
            format!("must be a file name, without `/` (got `{index}`)"),
        );
    }
}
