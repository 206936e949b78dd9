//! The target guard (CONTRACT section 4): loopback, private, link-local (the metadata
//! address included), unique-local and unspecified addresses are refused, as are the
//! special-purpose ranges a target has no business in (carrier-grade NAT, 192.0.0.0/24,
//! benchmarking 198.18.0.0/15, reserved 240.0.0.0/4, multicast, local-use NAT64), and
//! IPv6 forms that carry an IPv4 address (mapped, compatible, NAT64, 6to4) are judged by
//! that address. Both for
//! IP-literal URLs (checked before sending: reqwest skips the resolver for them) and for
//! names after DNS resolution (a reqwest resolver that filters what the name resolved to).
//!
//! The `url` crate already turns decimal, octal and hex IPv4 forms (`http://2130706433/`,
//! `http://0177.0.0.1/`, `http://0x7f.1/`) into a plain IPv4 host, so they meet the same check.

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use url::{Host, Url};

/// A target refused by the guard. Names the host, never the URL (it may carry a key).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "target `{host}` is a loopback, private, link-local or unique-local address \
     (allow it with allow_private_targets)"
)]
pub struct BlockedTarget {
    pub host: String,
}

/// Whether an address is one a delivery must not reach.
pub fn is_blocked(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_blocked_v4(v4),
        IpAddr::V6(v6) => is_blocked_v6(v6),
    }
}

fn is_blocked_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()             // 127.0.0.0/8
        || ip.is_private()       // 10/8, 172.16/12, 192.168/16
        || ip.is_link_local()    // 169.254/16, the metadata address 169.254.169.254
        || a == 0                // 0.0.0.0/8, "this network" (0.0.0.0 reaches localhost)
        || (a == 100 && (64..128).contains(&b)) // 100.64/10, carrier-grade NAT (RFC 6598)
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // 192.0.0.0/24, IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // 198.18.0.0/15, benchmarking
        || a >= 240              // 240.0.0.0/4 reserved, 255.255.255.255 broadcast included
        || ip.is_multicast()
}

fn is_blocked_v6(ip: Ipv6Addr) -> bool {
    // IPv4-mapped (::ffff:a.b.c.d) and IPv4-compatible (::a.b.c.d; `::1` and `::` land
    // in 0.0.0.0/8) are judged as the IPv4 address they carry, as is NAT64 (64:ff9b::/96).
    // 6to4 (2002::/16) likewise, by the IPv4 address in its bits 16..48.
    if let Some(v4) = ip
        .to_ipv4()
        .or_else(|| nat64(ip))
        .or_else(|| six_to_four(ip))
    {
        return is_blocked_v4(v4);
    }
    let s = ip.segments();
    let first = s[0];
    (s[0], s[1], s[2]) == (0x64, 0xff9b, 1) // 64:ff9b:1::/48, local-use NAT64 (RFC 8215)
        || ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // fc00::/7 unique-local (fd00:ec2::254 is EC2's metadata)
        || (first & 0xffc0) == 0xfe80 // fe80::/10 link-local
        || (first & 0xffc0) == 0xfec0 // fec0::/10 site-local (deprecated)
}

fn six_to_four(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    (s[0] == 0x2002).then(|| {
        let [a, b] = s[1].to_be_bytes();
        let [c, d] = s[2].to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    })
}

fn nat64(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    (s[..6] == [0x64, 0xff9b, 0, 0, 0, 0]).then(|| {
        let [.., a, b, c, d] = ip.octets();
        Ipv4Addr::new(a, b, c, d)
    })
}

/// Checks an IP-literal URL (the resolver never sees those). Names pass: the resolver
/// checks what they resolve to.
pub fn check_url(url: &Url, allow_private: bool) -> Result<(), BlockedTarget> {
    if allow_private {
        return Ok(());
    }
    let ip = match url.host() {
        Some(Host::Ipv4(v4)) => IpAddr::V4(v4),
        Some(Host::Ipv6(v6)) => IpAddr::V6(v6),
        Some(Host::Domain(_)) | None => return Ok(()),
    };
    if is_blocked(ip) {
        return Err(BlockedTarget {
            host: ip.to_string(),
        });
    }
    Ok(())
}

/// Whether an error (or anything in its source chain) is the guard's refusal.
pub fn blocked_in<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a BlockedTarget> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(blocked) = e.downcast_ref::<BlockedTarget>() {
            return Some(blocked);
        }
        current = e.source();
    }
    None
}

/// A future resolving a host name to its addresses.
pub type LookupFuture = Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send>>;

/// How names are resolved: the system resolver in production, a table in tests.
pub trait Lookup: Send + Sync + 'static {
    fn lookup(&self, host: String) -> LookupFuture;
}

/// The system resolver (`getaddrinfo` on tokio's blocking pool, as reqwest's default).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemLookup;

impl Lookup for SystemLookup {
    fn lookup(&self, host: String) -> LookupFuture {
        Box::pin(async move { Ok(tokio::net::lookup_host((host.as_str(), 0)).await?.collect()) })
    }
}

/// reqwest's resolver with the guard in it: blocked addresses are dropped from the
/// answer; a name left with none is refused with [`BlockedTarget`].
#[derive(Clone)]
pub struct GuardedResolver {
    allow_private: bool,
    lookup: Arc<dyn Lookup>,
}

impl std::fmt::Debug for GuardedResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardedResolver")
            .field("allow_private", &self.allow_private)
            .finish_non_exhaustive()
    }
}

impl GuardedResolver {
    pub fn new(allow_private: bool, lookup: Arc<dyn Lookup>) -> Self {
        Self {
            allow_private,
            lookup,
        }
    }

    /// The addresses of `host` a delivery may connect to.
    pub async fn resolve_host(&self, host: String) -> Result<Vec<SocketAddr>, ResolveError> {
        let addrs = self.lookup.lookup(host.clone()).await?;
        if addrs.is_empty() {
            return Err(io::Error::new(io::ErrorKind::NotFound, "the name has no address").into());
        }
        if self.allow_private {
            return Ok(addrs);
        }
        let allowed: Vec<SocketAddr> = addrs.into_iter().filter(|a| !is_blocked(a.ip())).collect();
        if allowed.is_empty() {
            return Err(BlockedTarget { host }.into());
        }
        Ok(allowed)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error(transparent)]
    Blocked(#[from] BlockedTarget),
    #[error(transparent)]
    Lookup(#[from] io::Error),
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let this = self.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            match this.resolve_host(host).await {
                Ok(addrs) => Ok(Box::new(addrs.into_iter()) as Addrs),
                Err(ResolveError::Blocked(b)) => Err(Box::new(b) as _),
                Err(ResolveError::Lookup(e)) => Err(Box::new(e) as _),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn private_and_local_addresses_are_blocked() {
        for a in [
            "127.0.0.1",
            "127.255.255.254",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "169.254.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "100.64.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd00:ec2::254",
            "fec0::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.1.2.3",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::1",
            "64:ff9b:1:ffff::808:808",
            "2002:7f00:1::",     // 6to4 of 127.0.0.1
            "2002:a9fe:a9fe::1", // 6to4 of 169.254.169.254
            "2002:c0a8:101::",   // 6to4 of 192.168.1.1
            "192.0.0.1",
            "192.0.0.170",
            "198.18.0.1",
            "198.19.255.254",
            "240.0.0.1",
            "250.1.2.3",
        ] {
            assert!(is_blocked(ip(a)), "{a} must be blocked");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for a in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "172.15.255.255",
            "100.128.0.1",
            "169.255.0.1",
            "2606:4700:4700::1111",
            "2a00:1450::1",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1", // 6to4 of 8.8.8.8
            "192.0.1.1",
            "198.17.255.255",
            "198.20.0.1",
            "223.255.255.254",
        ] {
            assert!(!is_blocked(ip(a)), "{a} must pass");
        }
    }

    #[test]
    fn ip_literal_urls_are_checked_in_every_spelling() {
        for u in [
            "http://127.0.0.1/",
            "http://10.0.0.1:8080/x",
            "http://169.254.169.254/latest/meta-data/",
            "http://[::1]/",
            "http://[fd00:ec2::254]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:a9fe:a9fe]/",
            "http://2130706433/",   // decimal 127.0.0.1
            "http://0177.0.0.1/",   // octal
            "http://0x7f.0.0.1/",   // hex
            "http://0x7f000001/",   // hex, one number
            "http://017700000001/", // octal, one number
            "http://0/",
            "http://2852039166/", // decimal 169.254.169.254
        ] {
            let url = Url::parse(u).unwrap();
            assert!(check_url(&url, false).is_err(), "{u} must be refused");
            assert!(check_url(&url, true).is_ok(), "{u} passes when allowed");
        }
        for u in [
            "https://example.com/",
            "http://8.8.8.8/",
            "http://[2606:4700::1111]/",
        ] {
            assert!(check_url(&Url::parse(u).unwrap(), false).is_ok(), "{u}");
        }
    }

    struct Table(HashMap<&'static str, Vec<&'static str>>);

    impl Lookup for Table {
        fn lookup(&self, host: String) -> LookupFuture {
            let found = self.0.get(host.as_str()).map(|ips| {
                ips.iter()
                    .map(|i| SocketAddr::new(i.parse().unwrap(), 0))
                    .collect()
            });
            Box::pin(async move {
                found.ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such name"))
            })
        }
    }

    fn resolver(allow_private: bool) -> GuardedResolver {
        GuardedResolver::new(
            allow_private,
            Arc::new(Table(HashMap::from([
                ("metadata.example", vec!["169.254.169.254"]),
                ("internal.example", vec!["10.0.0.7", "fd12::7"]),
                ("mixed.example", vec!["10.0.0.7", "93.184.215.14"]),
                ("public.example", vec!["93.184.215.14"]),
            ]))),
        )
    }

    #[tokio::test]
    async fn a_name_resolving_to_private_addresses_is_refused() {
        for host in ["metadata.example", "internal.example"] {
            let err = resolver(false)
                .resolve_host(host.to_owned())
                .await
                .unwrap_err();
            assert!(
                matches!(&err, ResolveError::Blocked(b) if b.host == host),
                "{err}"
            );
        }
        let addrs = resolver(true)
            .resolve_host("metadata.example".into())
            .await
            .unwrap();
        assert_eq!(addrs[0].ip(), ip("169.254.169.254"));
    }

    #[tokio::test]
    async fn only_the_public_addresses_of_a_mixed_answer_are_kept() {
        let addrs = resolver(false)
            .resolve_host("mixed.example".into())
            .await
            .unwrap();
        assert_eq!(addrs, vec![SocketAddr::new(ip("93.184.215.14"), 0)]);
    }

    #[tokio::test]
    async fn an_unknown_name_is_a_lookup_error_not_a_block() {
        let err = resolver(false)
            .resolve_host("nope.example".into())
            .await
            .unwrap_err();
        assert!(matches!(err, ResolveError::Lookup(_)));
    }

    #[tokio::test]
    async fn localhost_is_refused_by_the_system_resolver_path() {
        let r = GuardedResolver::new(false, Arc::new(SystemLookup));
        let err = r.resolve_host("localhost".into()).await.unwrap_err();
        assert!(matches!(err, ResolveError::Blocked(_)), "{err}");
    }

    #[tokio::test]
    async fn the_refusal_is_found_through_reqwests_error_chain() {
        let blocked = BlockedTarget {
            host: "metadata.example".into(),
        };
        let r = resolver(false);
        let name: Name = "metadata.example".parse().unwrap();
        let err = match r.resolve(name).await {
            Err(e) => e,
            Ok(_) => panic!("must be refused"),
        };
        assert_eq!(blocked_in(err.as_ref()), Some(&blocked));
        let other = io::Error::other("boom");
        assert_eq!(blocked_in(&other), None);
    }
}
