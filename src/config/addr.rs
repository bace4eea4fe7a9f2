//! Address values of the configuration: listen addresses (`bind`, parsed like Gunicorn's
//! `util.parse_address`) and trusted-peer lists (`forwarded_allow_ips`, `proxy_allow_ips`,
//! `uwsgi_allow_ips`).
//!
//! This module only parses and matches; it never opens sockets (that is `net`'s job) and
//! never reads the environment.

use std::net::IpAddr;
use std::path::PathBuf;

use ipnet::IpNet;

use super::pytext::{parse_py_int, py_repr};

/// One parsed listen address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindAddr {
    /// `HOST`, `HOST:PORT`, `[V6]:PORT` or `tcp://...`; the host is lower-cased as Gunicorn does.
    Tcp { host: String, port: u16 },
    /// `unix:PATH` or `unix://PATH`.
    Unix(PathBuf),
    /// `fd://N`: an already-open listening socket.
    Fd(i32),
}

impl BindAddr {
    /// The value as Gunicorn's `cfg.address` exposes it to Python code: `(host, port)`,
    /// the unix path string, or the fd number.
    pub(crate) fn to_python<'py>(
        &self,
        py: pyo3::Python<'py>,
    ) -> pyo3::PyResult<pyo3::Bound<'py, pyo3::PyAny>> {
        use pyo3::IntoPyObjectExt;
        match self {
            BindAddr::Tcp { host, port } => (host.as_str(), *port).into_bound_py_any(py),
            BindAddr::Unix(path) => path.to_string_lossy().into_owned().into_bound_py_any(py),
            BindAddr::Fd(fd) => fd.into_bound_py_any(py),
        }
    }
}

/// Gunicorn's `util.parse_address(netloc, default_port)`, with the error text of its
/// `RuntimeError`s. Ports must also fit in 16 bits (Gunicorn fails later, at bind time).
pub(crate) fn parse_address(netloc: &str, default_port: &str) -> Result<BindAddr, String> {
    if netloc.starts_with("unix:") {
        // Gunicorn keeps what follows the *last* `unix:` (it uses `re.split(...)[-1]`).
        let at = netloc.rfind("unix:").unwrap_or(0) + "unix:".len();
        let rest = &netloc[at..];
        let path = rest.strip_prefix("//").unwrap_or(rest);
        return Ok(BindAddr::Unix(PathBuf::from(path)));
    }
    if let Some(fd) = netloc.strip_prefix("fd://") {
        return parse_py_int(fd, 10)
            .ok()
            .and_then(|n| i32::try_from(n).ok())
            .map(BindAddr::Fd)
            .ok_or_else(|| format!("{} is not a valid file descriptor.", py_repr(fd)));
    }
    let netloc = match netloc.strip_prefix("tcp://") {
        // `netloc.split("tcp://")[1]`: the text up to any further `tcp://`.
        Some(rest) => rest.split("tcp://").next().unwrap_or(""),
        None => netloc,
    };
    let (host, port): (&str, &str) = if netloc.contains('[') && netloc.contains(']') {
        let host = netloc.split(']').next().unwrap_or("");
        let host = host.get(1..).unwrap_or("");
        let port = netloc.split("]:").nth(1).unwrap_or(default_port);
        (host, port)
    } else if netloc.contains(':') {
        let mut it = netloc.split(':');
        let host = it.next().unwrap_or("");
        (host, it.next().unwrap_or(default_port))
    } else if netloc.is_empty() {
        ("0.0.0.0", default_port)
    } else {
        (netloc, default_port)
    };
    let port = parse_py_int(port, 10)
        .ok()
        .and_then(|p| u16::try_from(p).ok())
        .ok_or_else(|| format!("{} is not a valid port number.", py_repr(port)))?;
    Ok(BindAddr::Tcp {
        host: host.to_lowercase(),
        port,
    })
}

/// A validated list of trusted peers: IP addresses, CIDR networks, or `*`.
///
/// The original strings are kept because Gunicorn exposes (and prints) the list of strings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AddrList {
    entries: Vec<String>,
    nets: Vec<IpNet>,
    any: bool,
}

impl AddrList {
    /// Validate entries as Python's strict `ipaddress.ip_network` would (host bits set is an
    /// error); `*` means every peer.
    pub(crate) fn from_entries(entries: Vec<String>) -> Result<AddrList, String> {
        let mut nets = Vec::new();
        let mut any = false;
        for entry in &entries {
            if entry == "*" {
                any = true;
                continue;
            }
            nets.push(parse_network(entry)?);
        }
        Ok(AddrList { entries, nets, any })
    }

    /// Gunicorn's comma-separated form (`validate_string_to_list` then the network check).
    pub(crate) fn parse(text: &str) -> Result<AddrList, String> {
        AddrList::from_entries(split_comma_list(text))
    }

    /// Whether a peer address is trusted. IPv4-mapped IPv6 peers (`::ffff:a.b.c.d`, what a
    /// dual-stack listener reports) match the IPv4 entries for the same address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        if self.any {
            return true;
        }
        let mapped = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        self.nets
            .iter()
            .any(|net| net.contains(&ip) || mapped.is_some_and(|m| net.contains(&m)))
    }

    /// True when the list holds `*`.
    pub fn is_any(&self) -> bool {
        self.any
    }

    /// The entries as configured, in order.
    pub fn entries(&self) -> &[String] {
        &self.entries
    }
}

/// `[v.strip() for v in val.split(",") if v]`: empty pieces are dropped *before* stripping,
/// so `"a, ,b"` keeps a blank entry exactly as Gunicorn does.
pub(crate) fn split_comma_list(text: &str) -> Vec<String> {
    if text.is_empty() {
        return Vec::new();
    }
    text.split(',')
        .filter(|piece| !piece.is_empty())
        .map(|piece| piece.trim().to_string())
        .collect()
}

fn parse_network(entry: &str) -> Result<IpNet, String> {
    let bad = || {
        format!(
            "{} does not appear to be an IPv4 or IPv6 network",
            py_repr(entry)
        )
    };
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Ok(IpNet::from(ip));
    }
    let net: IpNet = entry.parse().map_err(|_| bad())?;
    if net.addr() != net.network() {
        return Err(format!("{entry} has host bits set"));
    }
    Ok(net)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(host: &str, port: u16) -> BindAddr {
        BindAddr::Tcp {
            host: host.to_string(),
            port,
        }
    }

    #[test]
    fn parse_address_table() {
        let cases: &[(&str, BindAddr)] = &[
            (
                "unix://var/run/test.sock",
                BindAddr::Unix("var/run/test.sock".into()),
            ),
            ("unix:/x", BindAddr::Unix("/x".into())),
            ("tcp://localhost", tcp("localhost", 8000)),
            ("", tcp("0.0.0.0", 8000)),
            ("[::1]", tcp("::1", 8000)),
            ("[::1]:9000", tcp("::1", 9000)),
            ("fd://33", BindAddr::Fd(33)),
            ("127.0.0.1:8080", tcp("127.0.0.1", 8080)),
            ("LocalHost", tcp("localhost", 8000)),
            ("example.com:80", tcp("example.com", 80)),
        ];
        for (input, want) in cases {
            assert_eq!(&parse_address(input, "8000").unwrap(), want, "{input:?}");
        }
    }

    #[test]
    fn parse_address_errors() {
        assert_eq!(
            parse_address("localhost:test", "8000").unwrap_err(),
            "'test' is not a valid port number."
        );
        assert_eq!(
            parse_address("fd://asd", "8000").unwrap_err(),
            "'asd' is not a valid file descriptor."
        );
        assert_eq!(
            parse_address("host:70000", "8000").unwrap_err(),
            "'70000' is not a valid port number."
        );
        assert_eq!(
            parse_address("localhost:", "8000").unwrap_err(),
            "'' is not a valid port number."
        );
    }

    #[test]
    fn addr_list_matching() {
        let list = AddrList::parse("127.0.0.1, 10.0.0.0/8,::1").unwrap();
        assert_eq!(list.entries(), ["127.0.0.1", "10.0.0.0/8", "::1"]);
        assert!(list.contains("127.0.0.1".parse().unwrap()));
        assert!(list.contains("10.2.3.4".parse().unwrap()));
        assert!(list.contains("::1".parse().unwrap()));
        assert!(list.contains("::ffff:10.9.9.9".parse().unwrap()));
        assert!(!list.contains("192.168.0.1".parse().unwrap()));
        assert!(!list.is_any());
        let any = AddrList::parse("*").unwrap();
        assert!(any.is_any());
        assert!(any.contains("8.8.8.8".parse().unwrap()));
    }

    #[test]
    fn addr_list_rejects_host_bits_and_garbage() {
        assert_eq!(
            AddrList::parse("192.168.1.1/24").unwrap_err(),
            "192.168.1.1/24 has host bits set"
        );
        assert_eq!(
            AddrList::parse("nope").unwrap_err(),
            "'nope' does not appear to be an IPv4 or IPv6 network"
        );
        assert!(AddrList::parse("a, ,b").is_err());
        assert_eq!(AddrList::parse("").unwrap().entries().len(), 0);
    }

    #[test]
    fn comma_list_keeps_gunicorn_quirks() {
        assert_eq!(split_comma_list("a,,b"), ["a", "b"]);
        assert_eq!(split_comma_list("a, ,b"), ["a", "", "b"]);
        assert_eq!(split_comma_list(" x , y "), ["x", "y"]);
    }
}
