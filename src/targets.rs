//! Where webhooks may connect: the address ranges refused by default (SSRF), the ranges the
//! operator allowed back with `--webhook-allow-cidr`, and the address a URL names literally.
//!
//! Used twice: when an endpoint is saved (a URL whose host is an address, however spelled, in a
//! refused range is a 422 naming the range and the flag) and at delivery, on every address the
//! host resolves to (a refused one fails that delivery for good). Pure rules, no I/O.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An IP range `addr/prefix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl std::str::FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = s.split_once('/').unwrap_or((s, ""));
        let addr: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("`{s}` is not an IP range such as 127.0.0.0/8"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = if prefix.is_empty() {
            max
        } else {
            prefix.parse().map_err(|_| format!("bad prefix in `{s}`"))?
        };
        if prefix > max {
            return Err(format!("prefix too long in `{s}`"));
        }
        Ok(Self { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Cidr {
    const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> Self {
        Self {
            addr: IpAddr::V4(Ipv4Addr::new(a, b, c, d)),
            prefix,
        }
    }

    const fn v6(first: u16, prefix: u8) -> Self {
        Self {
            addr: IpAddr::V6(Ipv6Addr::new(first, 0, 0, 0, 0, 0, 0, 0)),
            prefix,
        }
    }

    /// Whether `ip` is in the range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// A range webhooks may not reach by default, and what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blocked {
    /// The range, as the operator would pass it to `--webhook-allow-cidr`.
    pub range: Cidr,
    /// What the range is ("loopback", "private", ...).
    pub kind: &'static str,
}

/// Refused IPv4 ranges (IANA special-purpose registry, those a server's own network uses).
const V4: &[Blocked] = &[
    Blocked {
        range: Cidr::v4(0, 0, 0, 0, 8),
        kind: "\"this network\"",
    },
    Blocked {
        range: Cidr::v4(10, 0, 0, 0, 8),
        kind: "private",
    },
    Blocked {
        range: Cidr::v4(100, 64, 0, 0, 10),
        kind: "shared (carrier-grade NAT)",
    },
    Blocked {
        range: Cidr::v4(127, 0, 0, 0, 8),
        kind: "loopback",
    },
    Blocked {
        range: Cidr::v4(169, 254, 0, 0, 16),
        kind: "link-local",
    },
    Blocked {
        range: Cidr::v4(172, 16, 0, 0, 12),
        kind: "private",
    },
    Blocked {
        range: Cidr::v4(192, 0, 0, 0, 24),
        kind: "IETF protocol assignments",
    },
    Blocked {
        range: Cidr::v4(192, 168, 0, 0, 16),
        kind: "private",
    },
    Blocked {
        range: Cidr::v4(224, 0, 0, 0, 4),
        kind: "multicast",
    },
    Blocked {
        range: Cidr::v4(240, 0, 0, 0, 4),
        kind: "reserved",
    },
];

/// Refused IPv6 ranges; IPv4-mapped and NAT64 addresses are judged by the IPv4 they carry.
const V6: &[Blocked] = &[
    Blocked {
        range: Cidr {
            addr: IpAddr::V6(Ipv6Addr::LOCALHOST),
            prefix: 128,
        },
        kind: "loopback",
    },
    Blocked {
        range: Cidr::v6(0, 96),
        kind: "IPv4-compatible (deprecated)",
    },
    Blocked {
        range: Cidr::v6(0xfc00, 7),
        kind: "unique local",
    },
    Blocked {
        range: Cidr::v6(0xfe80, 10),
        kind: "link-local",
    },
    Blocked {
        range: Cidr::v6(0xff00, 8),
        kind: "multicast",
    },
];

/// The refused range `ip` is in, if any: loopback, private, link-local, unique-local,
/// multicast, unspecified, CGNAT, reserved, or an IPv4-mapped or NAT64 form of one.
pub fn blocked_range(ip: IpAddr) -> Option<Blocked> {
    let embedded = match ip {
        IpAddr::V4(v4) => Some(v4),
        IpAddr::V6(v6) => {
            let seg = v6.segments();
            // NAT64 (64:ff9b::/96) embeds an IPv4 address in the last 32 bits.
            if seg[0] == 0x64 && seg[1] == 0xff9b && seg[2..6] == [0, 0, 0, 0] {
                Some(Ipv4Addr::from(
                    (u32::from(seg[6]) << 16) | u32::from(seg[7]),
                ))
            } else {
                v6.to_ipv4_mapped()
            }
        }
    };
    match embedded {
        Some(v4) => V4
            .iter()
            .find(|b| b.range.contains(IpAddr::V4(v4)))
            .copied(),
        None => V6.iter().find(|b| b.range.contains(ip)).copied(),
    }
}

/// Which targets may be reached: public addresses, plus the ranges the operator allowed.
#[derive(Debug, Clone, Default)]
pub struct TargetPolicy {
    /// Ranges allowed despite being refused by default (`--webhook-allow-cidr`).
    pub allow: Vec<Cidr>,
}

impl TargetPolicy {
    /// Whether a connection to `ip` is allowed.
    pub fn permits(&self, ip: IpAddr) -> bool {
        self.refusal(ip).is_none()
    }

    /// Why `ip` may not be reached, as the end of a sentence about it, or `None` if it may.
    pub fn refusal(&self, ip: IpAddr) -> Option<String> {
        let blocked = blocked_range(ip)?;
        if self.allow.iter().any(|c| c.contains(ip)) {
            return None;
        }
        Some(format!(
            "is in the {} range {}, which webhooks may not reach unless the server is started with --webhook-allow-cidr {}",
            blocked.kind, blocked.range, blocked.range
        ))
    }
}

/// The address a URL's host names without a lookup: an IP address in any spelling a resolver
/// accepts (`127.1`, `2130706433`, `0x7f.0.0.1`, `[::1]`), or a `localhost` name, which
/// RFC 6761 reserves for loopback. `None` for a host name that only DNS can answer.
pub fn literal_address(url: &str) -> Option<IpAddr> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Some(v6) = host_port.strip_prefix('[') {
        return v6
            .split(']')
            .next()?
            .parse::<Ipv6Addr>()
            .ok()
            .map(IpAddr::V6);
    }
    let host = host_port.split(':').next()?.to_ascii_lowercase();
    let host = host.strip_suffix('.').unwrap_or(&host);
    if host == "localhost" || host.ends_with(".localhost") {
        return Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    legacy_v4(host).map(IpAddr::V4)
}

/// An IPv4 address in the forms `inet_aton` and the WHATWG URL parser accept: one to four parts,
/// each decimal, octal (leading 0) or hexadecimal (0x), the last filling the remaining bytes.
fn legacy_v4(host: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = host.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let mut values = Vec::with_capacity(parts.len());
    for part in &parts {
        let lower = part.to_ascii_lowercase();
        let value = if let Some(hex) = lower.strip_prefix("0x") {
            if hex.is_empty() {
                0
            } else {
                u64::from_str_radix(hex, 16).ok()?
            }
        } else if lower.len() > 1 && lower.starts_with('0') {
            u64::from_str_radix(&lower[1..], 8).ok()?
        } else {
            lower.parse::<u64>().ok()?
        };
        values.push(value);
    }
    let (last, first) = values.split_last()?;
    if first.iter().any(|v| *v > 255) || *last >= 1u64 << (8 * (5 - values.len())) {
        return None;
    }
    let mut addr = *last;
    for (i, v) in first.iter().enumerate() {
        addr |= v << (8 * (3 - i));
    }
    Some(Ipv4Addr::from(addr as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_ranges() {
        for (ip, range) in [
            ("127.0.0.1", "127.0.0.0/8"),
            ("10.1.2.3", "10.0.0.0/8"),
            ("172.16.0.1", "172.16.0.0/12"),
            ("192.168.1.1", "192.168.0.0/16"),
            ("169.254.169.254", "169.254.0.0/16"),
            ("100.64.0.1", "100.64.0.0/10"),
            ("0.0.0.0", "0.0.0.0/8"),
            ("224.0.0.1", "224.0.0.0/4"),
            ("255.255.255.255", "240.0.0.0/4"),
            ("::1", "::1/128"),
            ("fc00::1", "fc00::/7"),
            ("fe80::1", "fe80::/10"),
            ("::ffff:127.0.0.1", "127.0.0.0/8"),
            ("::ffff:10.0.0.1", "10.0.0.0/8"),
            ("64:ff9b::a00:1", "10.0.0.0/8"),
            ("::", "::/96"),
        ] {
            let b = blocked_range(ip.parse().unwrap());
            assert_eq!(
                b.map(|b| b.range.to_string()),
                Some(range.to_string()),
                "{ip}"
            );
        }
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "64:ff9b::808:808",
        ] {
            assert_eq!(
                blocked_range(ip.parse().unwrap()),
                None,
                "{ip} should be allowed"
            );
        }
    }

    #[test]
    fn operator_allowed_ranges() {
        let policy = TargetPolicy {
            allow: vec!["127.0.0.0/8".parse().unwrap()],
        };
        assert!(policy.permits("127.0.0.1".parse().unwrap()));
        assert!(!policy.permits("10.0.0.1".parse().unwrap()));
        assert_eq!(
            policy.refusal("10.0.0.1".parse().unwrap()).unwrap(),
            "is in the private range 10.0.0.0/8, which webhooks may not reach unless the server is started with --webhook-allow-cidr 10.0.0.0/8"
        );
        assert!("300.0.0.1/8".parse::<Cidr>().is_err());
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("0.0.0.0/0"
            .parse::<Cidr>()
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
    }

    #[test]
    fn literal_addresses_in_every_spelling() {
        let lo = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
        for url in [
            "http://127.0.0.1:9/x",
            "http://127.1/x",
            "http://2130706433/",
            "http://0x7f.0.0.1",
            "http://0177.0.0.1:80/",
            "https://user@127.0.0.1/",
            "http://localhost:8080/hook",
            "http://LOCALHOST./",
            "http://api.localhost/",
        ] {
            assert_eq!(literal_address(url), lo, "{url}");
        }
        assert_eq!(
            literal_address("http://[::1]:9/x"),
            Some(IpAddr::V6(Ipv6Addr::LOCALHOST))
        );
        assert_eq!(
            literal_address("http://169.254.169.254/latest"),
            Some(IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254)))
        );
        for url in [
            "https://hooks.example.com/x",
            "http://1.example/",
            "http://example.0x/",
            "http://256.1.1.1.1/",
        ] {
            assert_eq!(literal_address(url), None, "{url}");
        }
    }
}
