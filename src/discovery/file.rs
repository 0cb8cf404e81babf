//! `file:`: one backend a line, `HOST:PORT` or `HOST:PORT WEIGHT` (`#`
//! starts a comment; blank lines are skipped), read again when its size or
//! modification time changes. A host name is resolved at each read (every
//! address). A line that cannot be used makes the whole read fail, naming
//! the file and the line: half a list is never published.

use std::time::SystemTime;

use shoal_config::FileDiscovery;

use super::{Found, Look};

pub struct File {
    config: FileDiscovery,
    /// The (size, mtime) of the last good read, and what it gave.
    seen: Option<((u64, SystemTime), Found)>,
}

impl File {
    pub fn new(config: FileDiscovery) -> File {
        File { config, seen: None }
    }

    pub async fn look(&mut self) -> Look {
        let path = &self.config.path;
        let shown = path.display();
        let meta = tokio::fs::metadata(path)
            .await
            .map_err(|e| format!("{shown}: {e}"))?;
        let stamp = (
            meta.len(),
            meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        );
        if let Some((seen, found)) = &self.seen {
            if *seen == stamp {
                return Ok((found.clone(), None));
            }
        }
        let text = tokio::fs::read_to_string(path)
            .await
            .map_err(|e| format!("{shown}: {e}"))?;
        let mut found = Found::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let at = |why: String| format!("{shown}:{}: {why}", i + 1);
            let (addr, weight) = parse(line).map_err(at)?;
            let addrs = tokio::net::lookup_host(addr)
                .await
                .map_err(|e| at(format!("cannot resolve `{addr}`: {e}")))?;
            found.extend(addrs.map(|a| (a, weight)));
        }
        found.sort();
        found.dedup();
        self.seen = Some((stamp, found.clone()));
        Ok((found, None))
    }
}

/// `HOST:PORT [WEIGHT]`.
fn parse(line: &str) -> Result<(&str, u32), String> {
    let mut words = line.split_whitespace();
    let addr = words.next().unwrap_or_default();
    let weight = match words.next() {
        None => 1,
        Some(w) => match w.parse::<u32>() {
            Ok(n @ 1..=1000) => n,
            _ => return Err(format!("weight `{w}` is not a number from 1 to 1000")),
        },
    };
    if let Some(extra) = words.next() {
        return Err(format!("unexpected `{extra}`: write `HOST:PORT [WEIGHT]`"));
    }
    if addr.contains("://") {
        return Err(format!("`{addr}`: write HOST:PORT, without a scheme"));
    }
    match addr.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok((addr, weight)),
        _ => Err(format!("`{addr}` is not HOST:PORT")),
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn lines() {
        assert_eq!(parse("10.0.0.1:8080"), Ok(("10.0.0.1:8080", 1)));
        assert_eq!(parse("api-1:80 5"), Ok(("api-1:80", 5)));
        assert_eq!(parse("[::1]:80"), Ok(("[::1]:80", 1)));
        assert!(parse("10.0.0.1").unwrap_err().contains("not HOST:PORT"));
        assert!(parse("http://a:80")
            .unwrap_err()
            .contains("without a scheme"));
        assert!(parse("a:80 0").unwrap_err().contains("1 to 1000"));
        assert!(parse("a:80 2 x").unwrap_err().contains("unexpected"));
    }
}
