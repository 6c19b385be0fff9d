//! `PEERS`: where the replicas are (this one among them).

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};

/// Most addresses taken from `PEERS`, so one lookup cannot make a replica
/// poll (and fan out to) without end. Beyond it the lowest addresses are
/// kept, the same ones on every replica.
pub const MAX_PEERS: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeersSetting {
    /// `dns:NAME:PORT`: every address NAME resolves to, looked up again
    /// every few seconds. A Compose service name (with `--scale`) and a
    /// Kubernetes headless Service both resolve to every replica.
    Dns { name: String, port: u16 },
    /// `static:ADDR:PORT,…`: a fixed list, no lookup.
    Static(Vec<SocketAddr>),
}

impl PeersSetting {
    /// `None` for an empty value: no peers, the sidecar runs alone.
    pub fn parse(raw: &str) -> Result<Option<PeersSetting>, String> {
        const FORMS: &str = "use dns:NAME:PORT (e.g. dns:traffic-generator:8089) or static:ADDR:PORT[,ADDR:PORT…]";
        let raw = raw.trim();
        if raw.is_empty() {
            return Ok(None);
        }
        if let Some(rest) = raw.strip_prefix("dns:") {
            let (name, port) = rest.rsplit_once(':').ok_or_else(|| format!("no port after the name; {FORMS}"))?;
            check_name(name)?;
            return Ok(Some(PeersSetting::Dns { name: name.to_ascii_lowercase(), port: port_number(port)? }));
        }
        if let Some(rest) = raw.strip_prefix("static:") {
            let mut list = Vec::new();
            for item in rest.split(',').map(str::trim) {
                let address: SocketAddr = item
                    .parse()
                    .map_err(|_| format!("{item:?} is not an address with a port (10.0.0.5:8089, [fd00::5]:8089)"))?;
                if address.port() == 0 {
                    return Err(format!("{item:?}: the port must be from 1 to 65535"));
                }
                list.push(address);
            }
            list.sort_unstable();
            list.dedup();
            if list.len() > MAX_PEERS {
                return Err(format!("{} addresses; at most {MAX_PEERS}", list.len()));
            }
            return Ok(Some(PeersSetting::Static(list)));
        }
        Err(format!("unknown form; {FORMS}"))
    }

    /// The addresses now: the static list, or a lookup of the name (which
    /// blocks: run it off the runtime's threads).
    pub fn resolve(&self) -> Result<Vec<SocketAddr>, String> {
        match self {
            PeersSetting::Static(list) => Ok(list.clone()),
            PeersSetting::Dns { name, port } => {
                let found =
                    (name.as_str(), *port).to_socket_addrs().map_err(|e| format!("cannot resolve {name}: {e}"))?;
                let mut list: Vec<SocketAddr> = found.collect();
                list.sort_unstable();
                list.dedup();
                if list.is_empty() {
                    return Err(format!("{name} resolves to no address"));
                }
                list.truncate(MAX_PEERS);
                Ok(list)
            }
        }
    }
}

impl fmt::Display for PeersSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeersSetting::Dns { name, port } => write!(f, "dns:{name}:{port}"),
            PeersSetting::Static(list) => {
                f.write_str("static:")?;
                for (i, address) in list.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{address}")?;
                }
                Ok(())
            }
        }
    }
}

fn port_number(raw: &str) -> Result<u16, String> {
    raw.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| format!("port {raw:?} is not from 1 to 65535"))
}

/// A DNS name: labels of letters, digits, `-` and `_`, at most 63 long,
/// 253 in all. (An IPv4 address passes too, and resolves to itself.)
fn check_name(name: &str) -> Result<(), String> {
    let name = name.strip_suffix('.').unwrap_or(name);
    let label_ok = |l: &str| {
        !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
        let shown: String = name.chars().take(64).collect();
        return Err(format!("{shown:?} is not a DNS name (letters, digits, '-', '_' and dots)"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_parse_and_read_back() {
        assert_eq!(PeersSetting::parse(""), Ok(None));
        assert_eq!(PeersSetting::parse("  "), Ok(None));
        let dns = PeersSetting::parse("dns:Traffic-Generator:8089").unwrap().unwrap();
        assert_eq!(dns, PeersSetting::Dns { name: "traffic-generator".into(), port: 8089 });
        assert_eq!(dns.to_string(), "dns:traffic-generator:8089");
        let fixed = PeersSetting::parse("static:127.0.0.3:9000, 127.0.0.2:9000,[::1]:9000,127.0.0.2:9000").unwrap();
        let fixed = fixed.unwrap();
        assert_eq!(fixed.to_string(), "static:127.0.0.2:9000,127.0.0.3:9000,[::1]:9000");
        assert_eq!(fixed.resolve().unwrap().len(), 3);
        assert!(PeersSetting::parse("dns:trafficgen-peers.default.svc.cluster.local.:8089").unwrap().is_some());
    }

    #[test]
    fn bad_values_say_what_is_wrong() {
        for (raw, needle) in [
            ("traffic-generator:8089", "unknown form"),
            ("dns:traffic-generator", "no port"),
            ("dns:traffic-generator:0", "port"),
            ("dns:traffic-generator:99999", "port"),
            ("dns::8089", "not a DNS name"),
            ("dns:a..b:8089", "not a DNS name"),
            ("dns:evil.example/x:8089", "not a DNS name"),
            ("dns:http://x:8089", "not a DNS name"),
            ("static:", "not an address"),
            ("static:10.0.0.1", "not an address"),
            ("static:10.0.0.1:0", "1 to 65535"),
            ("static:name:8089", "not an address"),
        ] {
            let err = PeersSetting::parse(raw).expect_err(raw);
            assert!(err.contains(needle), "{raw}: {err}");
            assert!(!err.contains('\n'));
        }
        let many: Vec<String> = (0..=MAX_PEERS).map(|i| format!("10.0.{}.{}:8089", i / 250, i % 250 + 1)).collect();
        assert!(PeersSetting::parse(&format!("static:{}", many.join(","))).unwrap_err().contains("at most"));
        let long = format!("dns:{}:8089", "a".repeat(64));
        assert!(PeersSetting::parse(&long).is_err());
    }

    #[test]
    fn a_name_resolves_to_its_sorted_addresses_from_etc_hosts() {
        let setting = PeersSetting::Dns { name: "localhost".into(), port: 8089 };
        let found = setting.resolve().unwrap();
        assert!(!found.is_empty() && found.iter().all(|a| a.ip().is_loopback() && a.port() == 8089), "{found:?}");
        assert!(found.windows(2).all(|w| w[0] < w[1]));
    }
}
