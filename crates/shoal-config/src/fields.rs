//! Deserializers for the fields whose serde defaults would give poor errors
//! or refuse reasonable YAML (`8000` as an argument, `DEBUG: 1` in `env`).

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::model::{CommandSpec, HashKey, StatusRange, TlsVersion};

/// A string, or a number or boolean taken as the text YAML shows for it, so
/// that `[python, -m, http.server, 8000]` and `DEBUG: 1` work unquoted.
struct Text(String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Text;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// `app.command`: a list of arguments (run directly) or one string (run by `sh -c`).
pub(crate) fn command<'de, D: Deserializer<'de>>(d: D) -> Result<CommandSpec, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = CommandSpec;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a list of arguments or one shell command string")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<CommandSpec, E> {
            Ok(CommandSpec::Shell(v.to_string()))
        }
        // `command:` with no value; validation then says it must not be empty.
        fn visit_unit<E: de::Error>(self) -> Result<CommandSpec, E> {
            Ok(CommandSpec::Argv(Vec::new()))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<CommandSpec, A::Error> {
            let mut argv = Vec::new();
            while let Some(Text(arg)) = seq.next_element()? {
                argv.push(arg);
            }
            Ok(CommandSpec::Argv(argv))
        }
    }
    d.deserialize_any(V)
}

/// `app.env`: names to values; numbers and booleans are taken as text.
pub(crate) fn env<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = BTreeMap<String, String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a mapping of variable names to values")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(BTreeMap::new())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some(name) = map.next_key::<String>()? {
                let Text(value) = map.next_value()?;
                out.insert(name, value);
            }
            Ok(out)
        }
    }
    d.deserialize_any(V)
}

/// `listen`, `admin.listen`: `IP:PORT`, with advice for the usual near misses.
pub(crate) fn socket_addr<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = SocketAddr;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an address like `0.0.0.0:8080`")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<SocketAddr, E> {
            parse_socket_addr(v).map_err(E::custom)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<SocketAddr, E> {
            parse_socket_addr(&v.to_string()).map_err(E::custom)
        }
    }
    d.deserialize_any(V)
}

/// An optional [`socket_addr`] (`dns.server`).
pub(crate) fn opt_socket_addr<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<SocketAddr>, D::Error> {
    socket_addr(d).map(Some)
}

pub(crate) fn parse_socket_addr(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.trim().parse::<SocketAddr>() {
        return Ok(addr);
    }
    let hint = if text.bytes().all(|b| b.is_ascii_digit()) && !text.is_empty() {
        format!("a port alone is not enough; write `0.0.0.0:{text}` (all interfaces) or `127.0.0.1:{text}` (this machine only)")
    } else if text.contains("://") {
        "write only the address and port, without a scheme, like `0.0.0.0:8080`".to_string()
    } else if text.matches(':').count() > 1 && !text.starts_with('[') {
        "put an IPv6 address in brackets, like `[::1]:8080`".to_string()
    } else if let Some(port) = text.strip_prefix(':') {
        format!("write `0.0.0.0:{port}` to listen on all interfaces")
    } else if let Some(port) = text.strip_prefix("localhost:") {
        format!("host names are not resolved here; write `127.0.0.1:{port}`")
    } else {
        "expected IP:PORT, like `0.0.0.0:8080`, `127.0.0.1:9090` or `[::1]:8080`".to_string()
    };
    Err(format!("invalid address `{text}`: {hint}"))
}

/// `app.host`: an IP address.
pub(crate) fn ip_addr<'de, D: Deserializer<'de>>(d: D) -> Result<IpAddr, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = IpAddr;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an IP address like `127.0.0.1`")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<IpAddr, E> {
            if let Ok(ip) = v.trim().parse::<IpAddr>() {
                return Ok(ip);
            }
            let hint = if v == "localhost" {
                "host names are not resolved here; write `127.0.0.1` or `::1`"
            } else if v.contains(':') && v.contains('.') {
                "write the address without a port; instances get their port from shoal"
            } else {
                "expected an IP address like `127.0.0.1` or `::1`"
            };
            Err(E::custom(format!("invalid IP address `{v}`: {hint}")))
        }
    }
    d.deserialize_any(V)
}

/// `balance.hash_key`: `header:NAME`, `cookie:NAME`, `query:NAME` or `path`;
/// empty (`null`, as the effective config prints it) when not set.
pub(crate) fn hash_key<'de, D: Deserializer<'de>>(d: D) -> Result<Option<HashKey>, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = Option<HashKey>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str(
                "a hash key like `header:X-User-Id`, `cookie:session`, `query:user` or `path`",
            )
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            HashKey::parse(v).map(Some).map_err(E::custom)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    d.deserialize_any(V)
}

/// `health.expect_status`: `200`, `200-299` or `2xx` (a number is one status).
pub(crate) fn status_range<'de, D: Deserializer<'de>>(d: D) -> Result<StatusRange, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = StatusRange;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a status like `200`, a range like `200-399` or a class like `2xx`")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            StatusRange::parse(v).map_err(E::custom)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            StatusRange::parse(&v.to_string()).map_err(E::custom)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            StatusRange::parse(&v.to_string()).map_err(E::custom)
        }
    }
    d.deserialize_any(V)
}

/// `tls.min_version`: `1.2` or `1.3`, as a number (how YAML reads it
/// unquoted) or a string.
pub(crate) fn tls_version<'de, D: Deserializer<'de>>(d: D) -> Result<TlsVersion, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = TlsVersion;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a TLS version, `1.2` or `1.3`")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<TlsVersion, E> {
            TlsVersion::parse(v).map_err(E::custom)
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<TlsVersion, E> {
            TlsVersion::parse(&v.to_string()).map_err(E::custom)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<TlsVersion, E> {
            TlsVersion::parse(&v.to_string()).map_err(E::custom)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<TlsVersion, E> {
            TlsVersion::parse(&v.to_string()).map_err(E::custom)
        }
    }
    d.deserialize_any(V)
}

/// `app.tls`: `true` (TLS with every default), `false` or nothing
/// (cleartext), or the same block as `upstreams[].tls`.
pub(crate) fn app_tls<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<crate::model::UpstreamTlsConfig>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<crate::model::UpstreamTlsConfig>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str(
                "`true`, `false` or a mapping with `ca`, `server_name`, `cert`, `key`, `verify`",
            )
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
            Ok(v.then(crate::model::UpstreamTlsConfig::default))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            Deserialize::deserialize(de::value::MapAccessDeserializer::new(map)).map(Some)
        }
    }
    d.deserialize_any(V)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_addr_hints() {
        assert_eq!(
            parse_socket_addr("0.0.0.0:80"),
            Ok(SocketAddr::from(([0, 0, 0, 0], 80)))
        );
        assert_eq!(parse_socket_addr("[::1]:80").map(|a| a.port()), Ok(80));
        let err = |s| parse_socket_addr(s).unwrap_err();
        assert!(err("8080").contains("a port alone is not enough"));
        assert!(err(":8080").contains("write `0.0.0.0:8080`"));
        assert!(err("localhost:80").contains("`127.0.0.1:80`"));
        assert!(err("http://0.0.0.0:80").contains("without a scheme"));
        assert!(err("::1:80").contains("brackets"));
        assert_eq!(
            err("nope"),
            "invalid address `nope`: expected IP:PORT, like `0.0.0.0:8080`, `127.0.0.1:9090` or `[::1]:8080`"
        );
        assert!(err("1.2.3.4:99999").starts_with("invalid address"));
    }
}
