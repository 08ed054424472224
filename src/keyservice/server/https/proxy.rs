//! `--trusted-proxy`: behind a load balancer every TCP peer is the balancer, so the
//! per-source failure limits would lump all callers into one. A request from a trusted
//! proxy names its caller in `X-Forwarded-For`, read by the rightmost-untrusted rule.

use axum::http::HeaderMap;
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};

const FORWARDED_FOR: &str = "x-forwarded-for";

/// The networks whose connections are proxies that append their peer to
/// `X-Forwarded-For`.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub fn new(nets: Vec<IpNet>) -> Self {
        TrustedProxies(nets.into_iter().map(|n| n.trunc()).collect())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// The caller's address, for the per-source limits and the log. From an untrusted
    /// peer the header is ignored: anyone can send it. From a trusted one, the list is
    /// walked from the right (each proxy appends its own peer), skipping trusted proxies,
    /// and the first untrusted address is the caller; everything left of it was written
    /// by the caller and is never believed. A chain of trusted addresses only gives its
    /// leftmost one. A missing header, or a malformed entry reached before the answer,
    /// gives the peer.
    pub(crate) fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return peer;
        }
        // Several header lines are one list, in order (RFC 9110 section 5.3). Split as
        // bytes: a line the caller filled with non-ASCII bytes must not spoil the entries
        // the proxies appended to its right.
        let mut entries: Vec<&[u8]> = Vec::new();
        for value in headers.get_all(FORWARDED_FOR) {
            entries.extend(value.as_bytes().split(|b| *b == b','));
        }
        if entries.is_empty() {
            log::debug!("no X-Forwarded-For from proxy {peer}: using the peer");
            return peer;
        }
        let mut leftmost_trusted = peer;
        for entry in entries.iter().rev() {
            let Some(ip) = parse_entry(entry) else {
                log::debug!(
                    "malformed X-Forwarded-For entry {:?} from proxy {peer}: using the peer",
                    String::from_utf8_lossy(entry).trim()
                );
                return peer;
            };
            if !self.trusts(ip) {
                return ip;
            }
            leftmost_trusted = ip;
        }
        leftmost_trusted
    }
}

impl std::fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let nets: Vec<String> = self.0.iter().map(IpNet::to_string).collect();
        f.write_str(&nets.join(", "))
    }
}

/// One `X-Forwarded-For` entry: an address, or an address with a port (some proxies
/// write `1.2.3.4:5678` or `[2001:db8::1]:443`).
fn parse_entry(entry: &[u8]) -> Option<IpAddr> {
    let e = std::str::from_utf8(entry).ok()?.trim();
    e.parse::<IpAddr>()
        .or_else(|_| e.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

/// clap's parser of `--trusted-proxy`: a CIDR block, or one address (a /32 or /128).
pub fn parse_cidr(s: &str) -> Result<IpNet, String> {
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map(|n| n.trunc())
        .map_err(|_| {
            format!("{s:?} is not a CIDR block (like 10.0.0.0/8 or fd00::/8) or an address")
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn proxies(nets: &[&str]) -> TrustedProxies {
        TrustedProxies::new(nets.iter().map(|n| parse_cidr(n).unwrap()).collect())
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(FORWARDED_FOR, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv4_proxy_gives_the_rightmost_untrusted_address() {
        let p = proxies(&["10.0.0.0/8"]);
        let h = xff(&["203.0.113.5"]);
        assert_eq!(p.client_ip(ip("10.1.2.3"), &h), ip("203.0.113.5"));
        // a chain of proxies inside the trusted block is skipped
        let h = xff(&["203.0.113.5, 10.9.9.9, 10.8.8.8"]);
        assert_eq!(p.client_ip(ip("10.1.2.3"), &h), ip("203.0.113.5"));
        // with a port, and split over two header lines
        let h = xff(&["203.0.113.5:4711", "10.9.9.9"]);
        assert_eq!(p.client_ip(ip("10.1.2.3"), &h), ip("203.0.113.5"));
    }

    #[test]
    fn spoofed_leftmost_entries_are_never_believed() {
        let p = proxies(&["10.0.0.0/8"]);
        // the caller sent "1.1.1.1, garbage, 10.0.0.1"; the proxy appended its real peer
        let h = xff(&["1.1.1.1, not-an-ip, 10.0.0.1, 198.51.100.7"]);
        assert_eq!(p.client_ip(ip("10.1.2.3"), &h), ip("198.51.100.7"));
        let h = xff(&["1.1.1.1", "198.51.100.7, 10.2.2.2"]);
        assert_eq!(p.client_ip(ip("10.1.2.3"), &h), ip("198.51.100.7"));
    }

    #[test]
    fn ipv6_and_mapped_addresses() {
        let p = proxies(&["fd00::/8", "127.0.0.1"]);
        let h = xff(&["2001:db8::1, [fd00::2]:443"]);
        assert_eq!(p.client_ip(ip("fd00::1"), &h), ip("2001:db8::1"));
        // an IPv4-mapped peer is the IPv4 address, and so is a mapped entry
        let h = xff(&["::ffff:203.0.113.9"]);
        assert_eq!(p.client_ip(ip("::ffff:127.0.0.1"), &h), ip("203.0.113.9"));
    }

    #[test]
    fn untrusted_peer_ignores_the_header() {
        let p = proxies(&["10.0.0.0/8"]);
        let h = xff(&["203.0.113.5"]);
        assert_eq!(p.client_ip(ip("192.0.2.1"), &h), ip("192.0.2.1"));
        let none = TrustedProxies::default();
        assert!(none.is_empty());
        assert_eq!(none.client_ip(ip("10.0.0.1"), &h), ip("10.0.0.1"));
    }

    #[test]
    fn missing_malformed_or_all_trusted_headers() {
        let p = proxies(&["10.0.0.0/8"]);
        let peer = ip("10.0.0.1");
        assert_eq!(p.client_ip(peer, &HeaderMap::new()), peer);
        assert_eq!(p.client_ip(peer, &xff(&[""])), peer);
        assert_eq!(p.client_ip(peer, &xff(&["203.0.113.5, bogus"])), peer);
        assert_eq!(p.client_ip(peer, &xff(&["203.0.113.5,"])), peer);
        // bytes that are not text, left of the proxy's entry, change nothing
        let mut h = HeaderMap::new();
        h.append(
            FORWARDED_FOR,
            HeaderValue::from_bytes(b"\xff\xfe, 198.51.100.9").unwrap(),
        );
        h.append(FORWARDED_FOR, "203.0.113.5".parse().unwrap());
        assert_eq!(p.client_ip(peer, &h), ip("203.0.113.5"));
        // only proxies in the chain: the leftmost of them
        assert_eq!(
            p.client_ip(peer, &xff(&["10.3.3.3, 10.2.2.2"])),
            ip("10.3.3.3")
        );
    }

    #[test]
    fn cidr_parsing() {
        assert_eq!(parse_cidr("10.1.2.3/8").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(parse_cidr("127.0.0.1").unwrap().to_string(), "127.0.0.1/32");
        assert_eq!(parse_cidr("fd00::1/8").unwrap().to_string(), "fd00::/8");
        assert!(parse_cidr("10.0.0.0/33").is_err());
        assert!(parse_cidr("localhost").is_err());
    }
}
