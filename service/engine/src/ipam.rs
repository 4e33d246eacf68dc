//! IPv4 address management as pure rules: CIDRs with exact network
//! addresses, a subnet's gateway and allocation pools checked against it,
//! overlap between subnets, and the next free address of a set of pools —
//! found by walking the taken addresses in order, never the whole range.
//!
//! Errors are `FieldError`s pointing at the request field that is wrong,
//! so the HTTP layer turns them into problem documents as they are.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use tundra_api::FieldError;
use tundra_api::fabric::AllocationPool;

/// An IPv4 network: its address (host bits zero) and prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub base: u32,
    pub prefix: u8,
}

fn field(pointer: &str, detail: impl Into<String>) -> FieldError {
    FieldError { pointer: pointer.into(), detail: detail.into() }
}

impl Cidr {
    /// Parse `a.b.c.d/p` (prefix 8–30); the address must be the network's own.
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let bad = || format!("{s:?} is not an IPv4 CIDR like \"10.1.0.0/24\" (prefix 8–30)");
        let (a, p) = s.split_once('/').ok_or_else(bad)?;
        let a: Ipv4Addr = a.parse().map_err(|_| bad())?;
        let prefix: u8 = p.parse().map_err(|_| bad())?;
        if !(8..=30).contains(&prefix) {
            return Err(bad());
        }
        let c = Cidr { base: u32::from(a) & mask(prefix), prefix };
        if u32::from(a) != c.base {
            return Err(format!("{s}: host bits are set; the network is {c}"));
        }
        Ok(c)
    }

    /// The first and last host address (network and broadcast excluded).
    pub fn hosts(self) -> (u32, u32) {
        (self.base + 1, (self.base | !mask(self.prefix)) - 1)
    }

    /// Whether `ip` is a host address of this network.
    pub fn is_host(self, ip: u32) -> bool {
        let (first, last) = self.hosts();
        (first..=last).contains(&ip)
    }

    /// Whether the two networks share any address.
    pub fn overlaps(self, other: Cidr) -> bool {
        let m = mask(self.prefix.min(other.prefix));
        self.base & m == other.base & m
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.base), self.prefix)
    }
}

fn mask(prefix: u8) -> u32 {
    u32::MAX << (32 - u32::from(prefix))
}

/// An IPv4 address, or what is wrong with it.
pub fn parse_ip(s: &str) -> Result<u32, String> {
    s.parse::<Ipv4Addr>().map(u32::from).map_err(|_| format!("{s:?} is not an IPv4 address"))
}

/// A subnet as asked for, checked: its network, gateway and pools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubnetPlan {
    pub cidr: Cidr,
    pub gateway: Option<u32>,
    /// The pools given, or the whole host range but the gateway.
    pub pools: Vec<AllocationPool>,
}

/// Check a new subnet: `cidr` exact, `gateway` a host address of it, `dns`
/// addresses, `pools` inside its host range, apart from each other and
/// from the gateway (none given: the whole range but the gateway).
pub fn subnet(
    cidr: &str,
    gateway: Option<&str>,
    dns: &[String],
    pools: &[AllocationPool],
) -> Result<SubnetPlan, FieldError> {
    let net = Cidr::parse(cidr).map_err(|e| field("/cidr", e))?;
    let gateway = match gateway {
        Some(g) => {
            let v = parse_ip(g).map_err(|e| field("/gateway", e))?;
            if !net.is_host(v) {
                return Err(field("/gateway", format!("{g} is not a host address of {cidr}")));
            }
            Some(v)
        }
        None => None,
    };
    check_dns(dns)?;
    let (first, last) = net.hosts();
    if pools.is_empty() {
        let ranges = match gateway {
            Some(g) if g == first => vec![(first + 1, last)],
            Some(g) if g == last => vec![(first, last - 1)],
            Some(g) => vec![(first, g - 1), (g + 1, last)],
            None => vec![(first, last)],
        };
        let pools = ranges.into_iter().map(|(a, b)| pool(a, b)).collect();
        return Ok(SubnetPlan { cidr: net, gateway, pools });
    }
    let mut seen: Vec<(u32, u32)> = Vec::new();
    for (i, p) in pools.iter().enumerate() {
        let a = parse_ip(&p.start).map_err(|e| field(&format!("/allocation_pools/{i}/start"), e))?;
        let b = parse_ip(&p.end).map_err(|e| field(&format!("/allocation_pools/{i}/end"), e))?;
        let at = format!("/allocation_pools/{i}");
        if !net.is_host(a) || !net.is_host(b) || a > b {
            return Err(field(&at, format!("{}–{}: a range of host addresses of {cidr}", p.start, p.end)));
        }
        if gateway.is_some_and(|g| (a..=b).contains(&g)) {
            return Err(field(&at, "contains the gateway"));
        }
        if seen.iter().any(|(x, y)| a <= *y && *x <= b) {
            return Err(field(&at, "overlaps another pool"));
        }
        seen.push((a, b));
    }
    Ok(SubnetPlan { cidr: net, gateway, pools: pools.to_vec() })
}

/// At most 8 DNS servers, each an IPv4 address.
pub fn check_dns(dns: &[String]) -> Result<(), FieldError> {
    if dns.len() > 8 {
        return Err(field("/dns", "at most 8 servers"));
    }
    for (i, d) in dns.iter().enumerate() {
        parse_ip(d).map_err(|e| field(&format!("/dns/{i}"), e))?;
    }
    Ok(())
}

fn pool(a: u32, b: u32) -> AllocationPool {
    AllocationPool { start: Ipv4Addr::from(a).to_string(), end: Ipv4Addr::from(b).to_string() }
}

/// Which existing subnet `new` overlaps, if any (by name, for the message).
pub fn overlapping<'a>(
    new: Cidr,
    existing: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Option<(&'a str, &'a str)> {
    existing.into_iter().find(|(_, c)| Cidr::parse(c).is_ok_and(|c| c.overlaps(new)))
}

/// A subnet as an address asked for on it is checked against.
#[derive(Debug, Clone, Copy)]
pub struct SubnetSpace<'a> {
    pub cidr: &'a str,
    pub gateway: Option<&'a str>,
    pub pools: &'a [AllocationPool],
    pub dns: &'a [String],
}

/// Whether `address` may be asked for on a subnet: a host address inside
/// one of its allocation pools — not its gateway, not one of its DNS
/// servers, nothing the subnet's owner kept out of the pools.
pub fn fixed_address(s: SubnetSpace<'_>, address: &str) -> Result<u32, String> {
    let v = parse_ip(address)?;
    let net = Cidr::parse(s.cidr)?;
    if !net.is_host(v) || s.gateway == Some(address) || s.dns.iter().any(|d| d == address) {
        return Err(format!("{address} is not a free host address of {} (not its gateway or DNS servers)", s.cidr));
    }
    let in_pool = s.pools.iter().any(|p| {
        let (Ok(a), Ok(b)) = (parse_ip(&p.start), parse_ip(&p.end)) else { return false };
        (a..=b).contains(&v)
    });
    if !in_pool {
        let pools: Vec<String> = s.pools.iter().map(|p| format!("{}–{}", p.start, p.end)).collect();
        return Err(format!(
            "{address} is outside the subnet's allocation pools ({}); ask for one inside",
            pools.join(", ")
        ));
    }
    Ok(v)
}

/// The lowest address of `pools` (in order) that is not `taken`. Walks the
/// taken addresses inside each pool in order, so the cost grows with what is
/// taken, not with the size of the pool.
pub fn next_free(pools: &[AllocationPool], taken: &BTreeSet<u32>) -> Option<Ipv4Addr> {
    for p in pools {
        let (Ok(a), Ok(b)) = (parse_ip(&p.start), parse_ip(&p.end)) else { continue };
        let mut candidate = a;
        for &t in taken.range(a..=b) {
            if t != candidate {
                break;
            }
            match candidate.checked_add(1) {
                Some(c) => candidate = c,
                None => break,
            }
        }
        if candidate <= b && !taken.contains(&candidate) {
            return Some(Ipv4Addr::from(candidate));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ap(a: &str, b: &str) -> AllocationPool {
        AllocationPool { start: a.into(), end: b.into() }
    }

    #[test]
    fn cidrs_are_exact_and_overlap_by_their_shorter_prefix() {
        let c = Cidr::parse("10.20.0.0/24").unwrap();
        assert_eq!(c.hosts(), (u32::from(Ipv4Addr::new(10, 20, 0, 1)), u32::from(Ipv4Addr::new(10, 20, 0, 254))));
        assert!(Cidr::parse("10.20.0.1/24").unwrap_err().contains("the network is 10.20.0.0/24"));
        assert!(Cidr::parse("10.20.0.0/31").is_err());
        assert!(Cidr::parse("10.20.0.0").is_err());
        assert!(c.overlaps(Cidr::parse("10.20.0.128/25").unwrap()));
        assert!(c.overlaps(Cidr::parse("10.0.0.0/8").unwrap()));
        assert!(!c.overlaps(Cidr::parse("10.21.0.0/24").unwrap()));
        let existing = [("a", "10.21.0.0/24"), ("b", "10.20.0.0/16")];
        assert_eq!(overlapping(c, existing), Some(("b", "10.20.0.0/16")));
    }

    #[test]
    fn subnets_get_checked_pools_or_the_range_but_the_gateway() {
        let p = subnet("10.20.0.0/24", Some("10.20.0.1"), &[], &[]).unwrap();
        assert_eq!(p.pools, vec![ap("10.20.0.2", "10.20.0.254")]);
        let p = subnet("10.20.0.0/24", Some("10.20.0.100"), &[], &[]).unwrap();
        assert_eq!(p.pools, vec![ap("10.20.0.1", "10.20.0.99"), ap("10.20.0.101", "10.20.0.254")]);
        let e = |r: Result<SubnetPlan, FieldError>| r.unwrap_err().pointer;
        assert_eq!(e(subnet("10.21.0.0/24", Some("10.22.0.1"), &[], &[])), "/gateway");
        assert_eq!(e(subnet("10.21.0.0/24", None, &["x".into()], &[])), "/dns/0");
        assert_eq!(e(subnet("10.21.0.0/24", None, &[], &[ap("10.21.0.9", "10.21.1.9")])), "/allocation_pools/0");
        let two = [ap("10.21.0.9", "10.21.0.20"), ap("10.21.0.15", "10.21.0.30")];
        assert_eq!(e(subnet("10.21.0.0/24", None, &[], &two)), "/allocation_pools/1");
        assert_eq!(e(subnet("10.21.0.0/24", Some("10.21.0.10"), &[], &two[..1])), "/allocation_pools/0");
    }

    #[test]
    fn next_free_skips_what_is_taken_across_pools() {
        let ip = |s: &str| u32::from(s.parse::<Ipv4Addr>().unwrap());
        let pools = [ap("10.0.0.2", "10.0.0.4"), ap("10.0.0.10", "10.0.0.11")];
        let mut taken = BTreeSet::new();
        assert_eq!(next_free(&pools, &taken), Some("10.0.0.2".parse().unwrap()));
        taken.extend([ip("10.0.0.2"), ip("10.0.0.4")]);
        assert_eq!(next_free(&pools, &taken), Some("10.0.0.3".parse().unwrap()));
        taken.insert(ip("10.0.0.3"));
        assert_eq!(next_free(&pools, &taken), Some("10.0.0.10".parse().unwrap()));
        taken.extend([ip("10.0.0.10"), ip("10.0.0.11")]);
        assert_eq!(next_free(&pools, &taken), None);
        // A big pool with its start taken: found without walking the pool.
        let big = [ap("10.0.0.0", "10.255.255.255")];
        let taken: BTreeSet<u32> = (ip("10.0.0.0")..ip("10.0.1.0")).collect();
        assert_eq!(next_free(&big, &taken), Some("10.0.1.0".parse().unwrap()));
    }

    #[test]
    fn fixed_addresses_are_hosts_and_not_the_gateway() {
        let pools = [AllocationPool { start: "10.0.0.5".into(), end: "10.0.0.200".into() }];
        let dns = ["10.0.0.53".to_string()];
        let s = |gateway| SubnetSpace { cidr: "10.0.0.0/24", gateway, pools: &pools, dns: &dns };
        assert!(fixed_address(s(Some("10.0.0.1")), "10.0.0.7").is_ok());
        assert!(fixed_address(s(Some("10.0.0.7")), "10.0.0.7").is_err(), "the gateway");
        assert!(fixed_address(s(None), "10.0.0.255").is_err());
        assert!(fixed_address(s(None), "10.0.1.7").is_err());
        assert!(fixed_address(s(None), "10.0.0.53").unwrap_err().contains("DNS"));
        assert!(fixed_address(s(None), "10.0.0.201").unwrap_err().contains("outside the subnet's allocation pools"));
    }
}
