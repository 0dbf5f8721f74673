//! Which client a request comes from, for rate limiting.
//!
//! The socket's peer address, unless that peer is a configured trusted proxy:
//! only then are `X-Forwarded-For` (its rightmost address that is not itself a
//! trusted proxy) or `X-Real-IP` believed. A client talking to the server
//! directly can therefore write anything in those headers without changing
//! the IP it is limited under.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The resolved client address, put in request extensions for tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

#[derive(Debug, Clone, Default)]
pub struct ClientIpResolver {
    trusted: Vec<IpNet>,
}

impl ClientIpResolver {
    pub fn new(trusted: Vec<IpNet>) -> ClientIpResolver {
        ClientIpResolver { trusted }
    }

    /// Whether `ip` is one of the trusted proxies (the load balancers).
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.trusted.iter().any(|net| net.contains(&ip))
    }

    pub fn resolve(&self, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer.ip());
        if !self.is_trusted(peer) {
            return peer;
        }
        let forwarded: Vec<IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(parse_ip)
            .collect();
        if let Some(last) = forwarded.last() {
            return forwarded
                .iter()
                .rev()
                .copied()
                .find(|ip| !self.is_trusted(*ip))
                .unwrap_or(forwarded.first().copied().unwrap_or(*last));
        }
        headers
            .get("x-real-ip")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_ip)
            .unwrap_or(peer)
    }
}

fn parse_ip(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    s.parse::<IpAddr>()
        .ok()
        .or_else(|| s.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .map(canonical)
}

/// `::ffff:192.0.2.1` and `192.0.2.1` are the same client.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::headers;

    #[test]
    fn untrusted_peers_cannot_choose_their_ip() {
        let r = ClientIpResolver::new(vec!["10.0.0.0/8".parse().unwrap()]);
        let direct: SocketAddr = "198.51.100.7:5000".parse().unwrap();
        let h = headers(&[("x-forwarded-for", "1.2.3.4"), ("x-real-ip", "5.6.7.8")]);
        assert_eq!(
            r.resolve(direct, &h),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn trusted_proxy_chain_gives_the_rightmost_untrusted() {
        let r = ClientIpResolver::new(vec!["10.0.0.0/8".parse().unwrap()]);
        let proxy: SocketAddr = "10.1.2.3:443".parse().unwrap();
        // The client forged the first entry; the proxies appended the rest.
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6, 203.0.113.9"),
            ("x-forwarded-for", "10.9.9.9"),
        ]);
        assert_eq!(
            r.resolve(proxy, &h),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        let h = headers(&[("x-real-ip", "203.0.113.10")]);
        assert_eq!(
            r.resolve(proxy, &h),
            "203.0.113.10".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            r.resolve(proxy, &HeaderMap::new()),
            "10.1.2.3".parse::<IpAddr>().unwrap()
        );
        let h = headers(&[("x-forwarded-for", "garbage, 10.2.2.2")]);
        assert_eq!(r.resolve(proxy, &h), "10.2.2.2".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn mapped_ipv6_is_ipv4() {
        let r = ClientIpResolver::default();
        let peer: SocketAddr = "[::ffff:192.0.2.1]:80".parse().unwrap();
        assert_eq!(
            r.resolve(peer, &HeaderMap::new()),
            "192.0.2.1".parse::<IpAddr>().unwrap()
        );
    }
}
