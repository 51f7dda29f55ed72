//! One address policy for every outbound call tenure makes (SCIM targets, notifier webhooks,
//! SMTP relays, HR pulls later): which hosts a configured URL may name, checked on the URL as
//! written and again on every address its host resolves to when the connection is made (so a
//! name that resolves inside the network, or changes to, is refused too), and no redirects
//! (a 3xx is an error naming its Location: a redirect could lead anywhere the URL may not).

use crate::UrlPolicy;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

/// Cloud metadata services reachable by name.
pub fn is_metadata_host(host: &str) -> bool {
    matches!(host, "metadata.google.internal" | "metadata" | "instance-data" | "instance-data.ec2.internal")
}

/// The IPv4 address an IPv6 address carries in one of the standard translated or tunnelled
/// forms: IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d), NAT64 (64:ff9b::/96 and
/// the local-use 64:ff9b:1::/48), 6to4 (2002:AABB:CCDD::/48) and Teredo (2001:0::/32, client
/// address inverted in the last 32 bits).
pub fn embedded_ipv4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let tail = |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    if s[..6] == [0, 0, 0, 0, 0, 0] && !(s[6] == 0 && s[7] <= 1) {
        return Some(tail(s[6], s[7]));
    }
    if s[0] == 0x64 && s[1] == 0xff9b && (s[2..6] == [0, 0, 0, 0] || s[2] == 1) {
        return Some(tail(s[6], s[7]));
    }
    if s[0] == 0x2002 {
        return Some(tail(s[1], s[2]));
    }
    if s[0] == 0x2001 && s[1] == 0 {
        return Some(tail(!s[6], !s[7]));
    }
    None
}

/// Whether an address may be called under the policy. Loopback is allowed (the sandbox runs
/// there), but not in a translated form: that reaches the translator's own host.
pub fn check_address(a: IpAddr, policy: UrlPolicy) -> Result<(), String> {
    if a.is_loopback() {
        return Ok(());
    }
    let refuse = |why: &str| -> Result<(), String> {
        if policy.allow_private {
            Ok(())
        } else {
            Err(format!("{why}, {a}: allow private addresses in the configuration to use it"))
        }
    };
    match a {
        IpAddr::V4(v4) => match v4_class(v4) {
            Some(why) => refuse(why),
            None => Ok(()),
        },
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_ipv4(v6) {
                if v4.is_loopback() {
                    return refuse("a loopback address in translated form");
                }
                return match v4_class(v4) {
                    Some(why) => refuse(&format!("{why} in translated form ({v4})")),
                    None => Ok(()),
                };
            }
            let s = v6.segments();
            if v6.is_unspecified() {
                refuse("an unspecified address")
            } else if (s[0] & 0xffc0) == 0xfe80 {
                refuse("a link-local address")
            } else if (s[0] & 0xfe00) == 0xfc00 {
                refuse("a private (unique local) address")
            } else if (s[0] & 0xff00) == 0xff00 {
                refuse("a multicast address")
            } else if (s[0] & 0xffc0) == 0xfec0 {
                refuse("a site-local address")
            } else {
                Ok(())
            }
        }
    }
}

/// Why an IPv4 address is not on the public internet, if it is not.
fn v4_class(v4: Ipv4Addr) -> Option<&'static str> {
    let o = v4.octets();
    if v4.is_loopback() {
        Some("a loopback address")
    } else if v4.is_unspecified() || v4.is_broadcast() || o[0] == 0 {
        Some("an unspecified or broadcast address")
    } else if o[0] == 169 && o[1] == 254 {
        Some("a link-local address (cloud metadata lives at 169.254.169.254)")
    } else if v4.is_private() {
        Some("a private address")
    } else if o[0] == 100 && (64..128).contains(&o[1]) {
        Some("a shared (CGNAT) address")
    } else if o[0] == 198 && (o[1] == 18 || o[1] == 19) {
        Some("a benchmarking address")
    } else if o[0] == 192 && o[1] == 0 && o[2] == 0 {
        Some("an IETF protocol address")
    } else if o[0] >= 224 {
        Some("a multicast or reserved address")
    } else {
        None
    }
}

/// Parses a configured URL, saying which one could not be read.
pub fn parse_url(u: &str) -> Result<reqwest::Url, String> {
    reqwest::Url::parse(u.trim()).map_err(|e| format!("{u:?} is not a URL: {e}"))
}

/// Checks a URL any outbound call is to use: http or https only, no user name or password in
/// it (`http://localhost@attacker.example` names attacker.example), plain http only to this
/// machine unless allowed, and a literal address or known metadata host under the policy.
pub fn check_url(url: &reqwest::Url, policy: UrlPolicy) -> Result<(), String> {
    if !url.username().is_empty() || url.password().is_some() {
        return Err("a URL must not carry a user name or password (the part before @ is not the host)".into());
    }
    let host = url.host_str().ok_or("the URL has no host")?.to_ascii_lowercase();
    let ip: Option<IpAddr> = host.trim_start_matches('[').trim_end_matches(']').parse().ok();
    let loopback = ip.is_some_and(|a| a.is_loopback()) || host == "localhost";
    match url.scheme() {
        "https" => {}
        "http" if loopback || policy.allow_insecure_http => {}
        "http" => return Err("plain http is allowed only to this machine: use https".into()),
        other => return Err(format!("the scheme must be https, not {other}")),
    }
    if let Some(a) = ip {
        check_address(a, policy).map_err(|why| format!("it points at {why}"))?;
    } else if is_metadata_host(&host) && !policy.allow_private {
        return Err("it points at a cloud metadata service".into());
    }
    Ok(())
}

/// Resolves host names for the HTTP client and keeps only addresses the policy allows, at the
/// moment of connecting: a name checked when the URL was saved cannot be re-pointed inside
/// the network later (DNS rebinding).
#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver(pub UrlPolicy);

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed = allowed_addresses(&host, found, policy)?;
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The resolved addresses the policy allows, or why none is: a name with one private address
/// among public ones is called only on the public ones.
pub fn allowed_addresses(host: &str, found: Vec<SocketAddr>, policy: UrlPolicy) -> Result<Vec<SocketAddr>, String> {
    let mut refused = None;
    let allowed: Vec<SocketAddr> = found
        .into_iter()
        .filter(|a| match check_address(a.ip(), policy) {
            Ok(()) => true,
            Err(e) => {
                refused.get_or_insert(e);
                false
            }
        })
        .collect();
    if allowed.is_empty() {
        return Err(format!("{host} resolves to {}", refused.unwrap_or_else(|| "no address".into())));
    }
    Ok(allowed)
}

/// An HTTP client builder under the policy: every name resolved through `GuardedResolver`,
/// no redirect followed.
pub fn client_builder(policy: UrlPolicy) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(Arc::new(GuardedResolver(policy)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(a: &str) -> bool {
        check_address(a.parse().unwrap(), UrlPolicy::default()).is_err()
    }

    #[test]
    fn translated_forms_of_internal_addresses_are_refused() {
        for a in [
            "10.0.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.1.2.3",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::7f00:1",
            "64:ff9b:1::c0a8:101",
            "2002:a9fe:a9fe::1",
            "2002:7f00:1::",
            "2001:0:4136:e378:8000:63bf:f5ff:fffe", // Teredo, client 10.0.0.1
            "fd00::1",
            "fe80::1",
            "ff02::1",
        ] {
            assert!(refused(a), "{a} was allowed");
        }
        assert_eq!(
            embedded_ipv4("2001:0:4136:e378:8000:63bf:f5ff:fffe".parse().unwrap()),
            Some(Ipv4Addr::new(10, 0, 0, 1))
        );
        for a in ["127.0.0.1", "::1", "93.184.216.34", "64:ff9b::5db8:d822", "2606:4700::1111"] {
            assert!(!refused(a), "{a} was refused");
        }
        let open = UrlPolicy { allow_insecure_http: false, allow_private: true };
        assert!(check_address("10.0.0.1".parse().unwrap(), open).is_ok());
    }

    #[test]
    fn urls_with_user_info_or_internal_hosts_are_refused() {
        let p = UrlPolicy::default();
        let check = |u: &str| check_url(&reqwest::Url::parse(u).unwrap(), p);
        assert!(check("http://localhost@attacker.example/hook").unwrap_err().contains("user name or password"));
        assert!(check("https://[64:ff9b::a9fe:a9fe]/").is_err());
        assert!(check("https://2130706433.example/").is_ok(), "a name, resolved at connect time");
        assert!(check("http://0x7f.1/").is_ok(), "the URL parser reads it as 127.0.0.1: loopback");
        assert!(check("http://0xa.1/").is_err(), "10.0.0.1 written in hex");
        assert!(check("http://hooks.example/").is_err(), "plain http off this machine");
        assert!(check("https://metadata.google.internal/").is_err());
        assert!(check("https://hooks.example/x").is_ok());
    }

    #[test]
    fn resolved_addresses_outside_the_policy_are_dropped_at_connect_time() {
        let a = |s: &str| -> SocketAddr { s.parse().unwrap() };
        let e = allowed_addresses("rebind.example", vec![a("10.0.0.7:0")], UrlPolicy::default()).unwrap_err();
        assert!(e.contains("rebind.example resolves to a private address, 10.0.0.7"), "{e}");
        let e = allowed_addresses("x.example", vec![a("[64:ff9b::a9fe:a9fe]:0")], UrlPolicy::default()).unwrap_err();
        assert!(e.contains("link-local"), "{e}");
        let mixed = vec![a("10.0.0.7:0"), a("93.184.216.34:0")];
        assert_eq!(allowed_addresses("x.example", mixed, UrlPolicy::default()).unwrap(), vec![a("93.184.216.34:0")]);
        let open = UrlPolicy { allow_insecure_http: false, allow_private: true };
        assert_eq!(allowed_addresses("x.example", vec![a("10.0.0.7:0")], open).unwrap().len(), 1);
    }

    #[tokio::test]
    async fn the_resolver_drops_what_the_policy_refuses() {
        use reqwest::dns::Resolve;
        let strict = GuardedResolver(UrlPolicy::default());
        let addrs: Vec<SocketAddr> = strict.resolve("localhost".parse().unwrap()).await.unwrap().collect();
        assert!(!addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback()));
    }
}
