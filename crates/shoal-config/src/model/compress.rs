//! `compress:` (top level and `routes[].compress`) — response compression,
//! the *respond* phase — and `routes[].files`, static files.

use std::fmt;
use std::path::PathBuf;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

/// A content coding shoal can compress with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Codec {
    Zstd,
    Br,
    Gzip,
}

impl Codec {
    /// The `Content-Encoding` token.
    pub fn token(self) -> &'static str {
        match self {
            Codec::Zstd => "zstd",
            Codec::Br => "br",
            Codec::Gzip => "gzip",
        }
    }

    /// The levels each codec takes: (least, most).
    pub fn levels(self) -> (u32, u32) {
        match self {
            Codec::Gzip => (1, 9),
            Codec::Br => (0, 11),
            Codec::Zstd => (1, 22),
        }
    }
}

/// The top-level `compress` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompressConfig {
    /// Off by default, as nginx's `gzip off`.
    pub enabled: bool,
    /// The server's preference when the client's q-values tie.
    pub codecs: Vec<Codec>,
    /// Media types compressed (`text/*` takes any `text/` type).
    pub types: Vec<String>,
    /// Responses whose `Content-Length` is below this are sent as they are.
    #[serde(with = "crate::units::size")]
    pub min_size: u64,
    pub level: CompressLevels,
}

/// The media types compressed by default: text, and the structured text
/// types a site sends (nginx's `gzip_types` as most configs set it).
pub const DEFAULT_COMPRESS_TYPES: [&str; 12] = [
    "text/*",
    "application/json",
    "application/javascript",
    "application/xml",
    "application/xhtml+xml",
    "application/rss+xml",
    "application/atom+xml",
    "application/ld+json",
    "application/manifest+json",
    "application/wasm",
    "image/svg+xml",
    "image/x-icon",
];

impl Default for CompressConfig {
    fn default() -> Self {
        CompressConfig {
            enabled: false,
            codecs: vec![Codec::Zstd, Codec::Br, Codec::Gzip],
            types: DEFAULT_COMPRESS_TYPES.map(String::from).to_vec(),
            min_size: 1024,
            level: CompressLevels::default(),
        }
    }
}

/// `compress.level`: one level per codec.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompressLevels {
    pub gzip: u32,
    pub br: u32,
    pub zstd: u32,
}

impl Default for CompressLevels {
    fn default() -> Self {
        // gzip 1: nginx's `gzip_comp_level` default; br 4 and zstd 3: the
        // levels that compress about as fast as gzip 1 does, smaller.
        CompressLevels {
            gzip: 1,
            br: 4,
            zstd: 3,
        }
    }
}

impl CompressLevels {
    pub fn of(&self, codec: Codec) -> u32 {
        match codec {
            Codec::Gzip => self.gzip,
            Codec::Br => self.br,
            Codec::Zstd => self.zstd,
        }
    }
}

/// `routes[].compress`: `true`/`false`, or the top-level keys this route
/// changes.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum RouteCompress {
    Switch(bool),
    Settings(CompressOverrides),
}

/// `routes[].compress` as a mapping: each key given replaces the
/// top-level one; `enabled` is `true` unless given.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompressOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub codecs: Option<Vec<Codec>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub types: Option<Vec<String>>,
    #[serde(
        with = "crate::units::size_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub min_size: Option<u64>,
    #[serde(skip_serializing_if = "LevelOverrides::is_empty")]
    pub level: LevelOverrides,
}

#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LevelOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gzip: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub br: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zstd: Option<u32>,
}

impl LevelOverrides {
    pub fn is_empty(&self) -> bool {
        *self == LevelOverrides::default()
    }
}

impl<'de> Deserialize<'de> for RouteCompress {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RouteCompress;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("`true`, `false` or a mapping of `compress` keys")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<RouteCompress, E> {
                Ok(RouteCompress::Switch(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RouteCompress, A::Error> {
                CompressOverrides::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(RouteCompress::Settings)
            }
        }
        d.deserialize_any(V)
    }
}

impl CompressConfig {
    /// The settings of a route: the top level's, changed by the route's
    /// `compress`; `None` when compression is off for it.
    pub fn for_route(&self, route: Option<&RouteCompress>) -> Option<CompressConfig> {
        let mut c = self.clone();
        match route {
            None => {}
            Some(RouteCompress::Switch(on)) => c.enabled = *on,
            Some(RouteCompress::Settings(o)) => {
                c.enabled = o.enabled.unwrap_or(true);
                if let Some(v) = &o.codecs {
                    c.codecs = v.clone();
                }
                if let Some(v) = &o.types {
                    c.types = v.clone();
                }
                if let Some(v) = o.min_size {
                    c.min_size = v;
                }
                let l = &o.level;
                c.level.gzip = l.gzip.unwrap_or(c.level.gzip);
                c.level.br = l.br.unwrap_or(c.level.br);
                c.level.zstd = l.zstd.unwrap_or(c.level.zstd);
            }
        }
        c.enabled.then_some(c)
    }
}

/// `routes[].files`: serve the files under `root`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesConfig {
    /// The directory served; the request's path (after `strip_prefix`)
    /// is taken below it.
    pub root: PathBuf,
    /// Served for a directory's path.
    #[serde(default = "default_index")]
    pub index: String,
    /// Serve `FILE.br`, `FILE.zst` or `FILE.gz` in place of `FILE` to a
    /// client that accepts that coding.
    #[serde(default)]
    pub precompressed: bool,
}

fn default_index() -> String {
    "index.html".into()
}
