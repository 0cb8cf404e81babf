//! The config a container runs with: the user's own, as written (its
//! `${VAR}` references kept, so secrets stay in the environment), with only
//! what a container needs changed:
//!
//! - the listeners and the admin listener accept on every interface
//!   (`0.0.0.0`, same ports): probes and Services reach the pod's address,
//!   not its loopback;
//! - the admin API then needs a token (`shoal check` refuses a non-loopback
//!   admin listener without one): `${SHOAL_ADMIN_TOKEN}`, which the files
//!   fill from a Secret or the environment, unless the config names one;
//! - in front of remote instances (the Kubernetes proxy pattern, Compose),
//!   `app`/`apps` become `upstreams` at the addresses given.
//!
//! Comments of the original are not kept (the YAML is re-written); the
//! result is loaded as shoal would load it before it is written, so a file
//! shoal would refuse is never produced.

use serde_yaml_ng::{Mapping, Value};
use shoal_config::Config;

/// What becomes of the config's apps.
pub enum Apps {
    /// They stay: shoal supervises them in the same container.
    Keep,
    /// They go: shoal proxies to these URLs instead.
    Upstreams(Vec<String>),
}

fn key(k: &str) -> Value {
    Value::String(k.to_string())
}

fn everywhere(port: u16) -> Value {
    Value::String(format!("0.0.0.0:{port}"))
}

pub fn for_container(text: &str, config: &Config, apps: Apps) -> Result<String, String> {
    let mut root: Value =
        serde_yaml_ng::from_str(text).map_err(|e| format!("cannot read the config: {e}"))?;
    let Some(map) = root.as_mapping_mut() else {
        return Err("the config is not a YAML mapping".into());
    };
    let listeners = config.public_listeners();
    match map
        .get_mut(key("listeners"))
        .and_then(Value::as_sequence_mut)
    {
        Some(list) => {
            for (item, l) in list.iter_mut().zip(&listeners) {
                if let Some(m) = item.as_mapping_mut() {
                    m.insert(key("listen"), everywhere(l.listen.port()));
                }
            }
        }
        None => {
            let port = listeners.first().map_or(8080, |l| l.listen.port());
            map.insert(key("listen"), everywhere(port));
        }
    }
    let admin = map
        .entry(key("admin"))
        .or_insert_with(|| Value::Mapping(Mapping::new()));
    if let Some(a) = admin.as_mapping_mut() {
        a.insert(key("listen"), everywhere(config.admin.listen.port()));
        if !a.contains_key(key("token")) && !a.contains_key(key("token_file")) {
            a.insert(key("token"), Value::String("${SHOAL_ADMIN_TOKEN}".into()));
        }
    }
    if let Apps::Upstreams(urls) = apps {
        map.shift_remove(key("app"));
        map.shift_remove(key("apps"));
        let list = urls
            .into_iter()
            .map(|u| {
                let mut m = Mapping::new();
                m.insert(key("url"), Value::String(u));
                Value::Mapping(m)
            })
            .collect();
        map.insert(key("upstreams"), Value::Sequence(list));
    }
    let out = serde_yaml_ng::to_string(&root).map_err(|e| format!("cannot write YAML: {e}"))?;
    // Loaded as shoal would load it, with a token in the environment.
    let env = |name: &str| match name {
        "SHOAL_ADMIN_TOKEN" => Some("a-token-from-the-environment".to_string()),
        // The shoal binary in the container, as `shoal up` sets it there.
        "SHOAL_EXE" => Some("/usr/local/bin/shoal".to_string()),
        _ => std::env::var(name).ok(),
    };
    shoal_config::load_str(&out, "<the container's config>", &env)
        .map_err(|e| format!("the container's config would not load:\n{e}"))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Config {
        shoal_config::load_str(text, "t", &|_| None).unwrap()
    }

    #[test]
    fn listeners_open_up_and_a_token_is_asked_for() {
        let text = "listen: 127.0.0.1:8081\nadmin: { listen: 127.0.0.1:9191 }\napp: { command: [\"x\", \"{port}\"], instances: 2 }\n";
        let out = for_container(text, &load(text), Apps::Keep).unwrap();
        let v: Value = serde_yaml_ng::from_str(&out).unwrap();
        assert_eq!(v["listen"], "0.0.0.0:8081");
        assert_eq!(v["admin"]["listen"], "0.0.0.0:9191");
        assert_eq!(v["admin"]["token"], "${SHOAL_ADMIN_TOKEN}");
        assert_eq!(v["app"]["instances"], 2);
    }

    #[test]
    fn a_token_of_the_config_is_kept_and_apps_become_upstreams() {
        let text = "admin: { token: \"${DEPLOY_TEST_TOKEN:-0123456789abcdef0123}\" }\napp: { command: [\"x\"] }\n";
        let out = for_container(
            text,
            &load(text),
            Apps::Upstreams(vec!["http://app:8080".into()]),
        )
        .unwrap();
        let v: Value = serde_yaml_ng::from_str(&out).unwrap();
        assert_eq!(
            v["admin"]["token"],
            "${DEPLOY_TEST_TOKEN:-0123456789abcdef0123}"
        );
        assert!(v.get("app").is_none());
        assert_eq!(v["upstreams"][0]["url"], "http://app:8080");
    }

    #[test]
    fn a_config_shoal_would_refuse_is_not_written() {
        let text = "app: { command: [\"x\"] }\nroutes: [{ match: { path_prefix: / }, to: app }]\n";
        let err = for_container(
            text,
            &load(text),
            Apps::Upstreams(vec!["http://app:8080".into()]),
        )
        .unwrap_err();
        assert!(err.contains("would not load"), "{err}");
    }
}
