//! Address blocks as MetalLB 0.12 reads them: `a.b.c.d/n` (host bits masked) or `start-end`
//! (split into the fewest CIDRs that cover it).

use ipnet::{IpNet, Ipv4Subnets, Ipv6Subnets};
use std::net::IpAddr;

/// Parse one `addresses` entry into CIDRs.
pub fn parse_addresses(entry: &str) -> Result<Vec<IpNet>, String> {
    if !entry.contains('-') {
        return entry
            .parse::<IpNet>()
            .map(|n| vec![n.trunc()])
            .map_err(|_| format!("{entry:?} is neither a CIDR (e.g. 10.0.50.0/24) nor a range (e.g. 10.0.50.25-10.0.50.50)"));
    }
    let (a, b) = entry.split_once('-').unwrap_or((entry, ""));
    let start: IpAddr = a
        .trim()
        .parse()
        .map_err(|_| format!("range {entry:?}: start {:?} is not an IP address", a.trim()))?;
    let end: IpAddr = b
        .trim()
        .parse()
        .map_err(|_| format!("range {entry:?}: end {:?} is not an IP address", b.trim()))?;
    match (start, end) {
        (IpAddr::V4(s), IpAddr::V4(e)) => {
            if s > e {
                return Err(format!("range {entry:?}: start {s} is after end {e}"));
            }
            Ok(Ipv4Subnets::new(s, e, 0).map(IpNet::V4).collect())
        }
        (IpAddr::V6(s), IpAddr::V6(e)) => {
            if s > e {
                return Err(format!("range {entry:?}: start {s} is after end {e}"));
            }
            Ok(Ipv6Subnets::new(s, e, 0).map(IpNet::V6).collect())
        }
        // MetalLB silently yields no addresses here; a pool that quietly shrinks is worse than an error.
        _ => Err(format!(
            "range {entry:?}: start and end must both be IPv4 or both be IPv6"
        )),
    }
}

/// Do two blocks share any address?
pub fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Is this IPv4 address one that buggy consumer devices drop (`.0` or `.255`)?
pub fn is_buggy_ip(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => matches!(v4.octets()[3], 0 | 255),
        IpAddr::V6(_) => false,
    }
}

/// How many addresses a block holds, optionally not counting `.0`/`.255` IPv4 addresses.
/// Saturates at `u128::MAX` for an IPv6 /0.
pub fn size(net: &IpNet, avoid_buggy_ips: bool) -> u128 {
    let host_bits = u32::from(net.max_prefix_len() - net.prefix_len());
    let total = 1u128.checked_shl(host_bits).unwrap_or(u128::MAX);
    match net {
        IpNet::V4(v4) if avoid_buggy_ips => {
            let buggy = if v4.prefix_len() <= 24 {
                // Every /24 inside holds exactly one .0 and one .255.
                2u128 << (24 - v4.prefix_len())
            } else {
                u128::from(v4.network().octets()[3] == 0)
                    + u128::from(v4.broadcast().octets()[3] == 255)
            };
            total - buggy
        }
        _ => total,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(v: &[&str]) -> Vec<IpNet> {
        v.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn cidr_host_bits_are_masked() {
        assert_eq!(
            parse_addresses("10.0.50.7/24").unwrap(),
            nets(&["10.0.50.0/24"])
        );
    }

    #[test]
    fn seed_range_splits_into_cidrs() {
        assert_eq!(
            parse_addresses("10.0.50.25-10.0.50.50").unwrap(),
            nets(&[
                "10.0.50.25/32",
                "10.0.50.26/31",
                "10.0.50.28/30",
                "10.0.50.32/28",
                "10.0.50.48/31",
                "10.0.50.50/32"
            ])
        );
        assert_eq!(
            parse_addresses(" 10.0.0.0 - 10.0.0.255 ").unwrap(),
            nets(&["10.0.0.0/24"])
        );
    }

    #[test]
    fn bad_entries_are_explained() {
        assert!(
            parse_addresses("10.0.0.1")
                .unwrap_err()
                .contains("neither a CIDR")
        );
        assert!(parse_addresses("10.0.0.0/33").is_err());
        assert!(
            parse_addresses("10.0.0.9-10.0.0.1")
                .unwrap_err()
                .contains("is after end")
        );
        assert!(
            parse_addresses("10.0.0.1-fd00::1")
                .unwrap_err()
                .contains("both be IPv4")
        );
        assert!(
            parse_addresses("10.0.0.1-x")
                .unwrap_err()
                .contains("end \"x\"")
        );
    }

    #[test]
    fn overlap_is_symmetric_and_family_aware() {
        let [a, b, c, d] = [
            nets(&["10.0.0.0/24"])[0],
            nets(&["10.0.0.128/25"])[0],
            nets(&["10.0.1.0/24"])[0],
            nets(&["::/0"])[0],
        ];
        assert!(overlaps(&a, &b) && overlaps(&b, &a));
        assert!(!overlaps(&a, &c));
        assert!(!overlaps(&a, &d));
    }

    #[test]
    fn sizes_count_buggy_ips_only_when_asked() {
        let n = nets(&["10.0.0.0/23"])[0];
        assert_eq!(size(&n, false), 512);
        assert_eq!(size(&n, true), 508);
        assert_eq!(size(&nets(&["10.0.0.252/30"])[0], true), 3);
        assert_eq!(size(&nets(&["10.0.0.4/30"])[0], true), 4);
        assert_eq!(size(&nets(&["10.0.0.0/32"])[0], true), 0);
        assert_eq!(size(&nets(&["fd00::/120"])[0], true), 256);
        assert_eq!(size(&nets(&["::/0"])[0], false), u128::MAX);
    }
}
