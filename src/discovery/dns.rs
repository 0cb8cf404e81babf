//! `dns:`: A/AAAA records (every address, at `port`) or SRV records (each
//! target's addresses, at its port, with its weight; the lowest priority
//! only, as RFC 2782 says), by hickory-resolver — the system's servers
//! (`/etc/resolv.conf`) or `server`. The answer's TTL says when to look
//! again (within `min_interval` … `interval`).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::TokioResolver;
use shoal_config::DnsDiscovery;

use super::{Found, Look};

/// The largest weight a backend may have (as `upstreams[].weight`).
const MAX_WEIGHT: u32 = 1000;

pub struct Dns {
    config: DnsDiscovery,
    resolver: Option<TokioResolver>,
}

impl Dns {
    pub fn new(config: DnsDiscovery) -> Dns {
        Dns {
            config,
            resolver: None,
        }
    }

    fn resolver(&mut self) -> Result<&TokioResolver, String> {
        if self.resolver.is_none() {
            let provider = TokioConnectionProvider::default();
            let mut builder = match self.config.server {
                Some(server) => {
                    let servers =
                        NameServerConfigGroup::from_ips_clear(&[server.ip()], server.port(), true);
                    TokioResolver::builder_with_config(
                        ResolverConfig::from_parts(None, vec![], servers),
                        provider,
                    )
                }
                None => TokioResolver::builder(provider)
                    .map_err(|e| format!("cannot read the system's DNS settings: {e}"))?,
            };
            let opts = builder.options_mut();
            opts.timeout = self.config.timeout;
            opts.attempts = 1;
            // Every look asks the server: its TTL decides when we look.
            opts.cache_size = 0;
            self.resolver = Some(builder.build());
        }
        Ok(self.resolver.as_ref().expect("just built"))
    }

    pub async fn look(&mut self) -> Look {
        let name = self.config.name.clone();
        let (srv, port) = (self.config.srv, self.config.port);
        let deadline = self.config.timeout * 2;
        let resolver = self.resolver()?.clone();
        let look = async move {
            if srv {
                srv_records(&resolver, &name).await
            } else {
                address_records(&resolver, &name, port.unwrap_or(80)).await
            }
        };
        match tokio::time::timeout(deadline, look).await {
            Ok(Ok((found, _))) if found.is_empty() => {
                Err(format!("{}: no addresses", self.config.name))
            }
            Ok(r) => r,
            Err(_) => Err(format!(
                "{}: no answer within {deadline:?}",
                self.config.name
            )),
        }
    }
}

fn ttl(valid_until: Instant) -> Duration {
    valid_until.saturating_duration_since(Instant::now())
}

async fn address_records(resolver: &TokioResolver, name: &str, port: u16) -> Look {
    let ips = resolver
        .lookup_ip(name)
        .await
        .map_err(|e| format!("{name}: {e}"))?;
    let mut found: Found = ips
        .iter()
        .map(|ip| (SocketAddr::new(ip, port), 1))
        .collect();
    found.sort();
    found.dedup();
    Ok((found, Some(ttl(ips.valid_until()))))
}

async fn srv_records(resolver: &TokioResolver, name: &str) -> Look {
    let records = resolver
        .srv_lookup(name)
        .await
        .map_err(|e| format!("{name} (SRV): {e}"))?;
    let mut until = records.as_lookup().valid_until();
    let lowest = records.iter().map(|r| r.priority()).min();
    let mut found = Found::new();
    for r in records.iter().filter(|r| Some(r.priority()) == lowest) {
        let target = r.target().to_string();
        let ips = resolver
            .lookup_ip(target.as_str())
            .await
            .map_err(|e| format!("{target} (target of {name}): {e}"))?;
        until = until.min(ips.valid_until());
        // Weight 0 means "rarely" in RFC 2782; here the smallest weight.
        let weight = u32::from(r.weight()).clamp(1, MAX_WEIGHT);
        found.extend(ips.iter().map(|ip| (SocketAddr::new(ip, r.port()), weight)));
    }
    found.sort();
    found.dedup();
    Ok((found, Some(ttl(until))))
}
