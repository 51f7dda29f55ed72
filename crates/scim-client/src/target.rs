//! Where a connection points: the Instance URL an admin pastes, normalised to a SCIM base URL,
//! and refused where it would let a pasted URL reach inside the network (SSRF).

use crate::outbound::{check_address, is_metadata_host};
use scim::Dialect;
use std::fmt;
use std::net::IpAddr;

/// What may be reached beyond the public internet.
#[derive(Debug, Clone, Copy, Default)]
pub struct UrlPolicy {
    /// Plain http to a non-loopback host.
    pub allow_insecure_http: bool,
    /// Private, link-local, shared (CGNAT) and cloud metadata addresses.
    pub allow_private: bool,
}

/// A SCIM base URL that passed the policy, ending in `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceUrl {
    url: reqwest::Url,
    dialect: Dialect,
}

impl fmt::Display for InstanceUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.url.as_str())
    }
}

const MONDAY_SUFFIX: &str = ".monday.com";

impl InstanceUrl {
    /// Accepts `company`, `company.monday.com`, `https://company.monday.com` or the full
    /// provisioning URL for monday.com, and any https SCIM base URL for other apps.
    pub fn parse(input: &str, policy: UrlPolicy) -> Result<InstanceUrl, String> {
        let text = input.trim();
        if text.is_empty() {
            return Err("the Instance URL is empty".into());
        }
        let is_label = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        let with_scheme = if text.contains("://") {
            text.to_string()
        } else if is_label(text) {
            format!("https://{}{MONDAY_SUFFIX}/scim/v2/", text.to_ascii_lowercase())
        } else {
            format!("https://{text}")
        };
        let mut url = reqwest::Url::parse(&with_scheme).map_err(|e| format!("{input:?} is not a URL: {e}"))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err("the Instance URL must not carry a user name or password".into());
        }
        url.set_query(None);
        url.set_fragment(None);
        let host = url.host_str().ok_or_else(|| format!("{input:?} has no host"))?.to_ascii_lowercase();
        let ip: Option<IpAddr> = host.trim_start_matches('[').trim_end_matches(']').parse().ok();
        let loopback = ip.is_some_and(|a| a.is_loopback()) || host == "localhost";
        match url.scheme() {
            "https" => {}
            "http" if loopback || policy.allow_insecure_http => {}
            "http" => {
                return Err(format!(
                    "{input:?} uses plain http: only https is allowed, except to this machine (the sandbox) or with the insecure option"
                ))
            }
            other => return Err(format!("{input:?}: the scheme must be https, not {other}")),
        }
        if let Some(a) = ip {
            check_address(a, policy).map_err(|why| format!("{input:?} points at {why}"))?;
        } else if is_metadata_host(&host) && !policy.allow_private {
            return Err(format!("{input:?} points at a cloud metadata service"));
        }
        let dialect = if host.ends_with(MONDAY_SUFFIX) {
            let path = url.path().trim_end_matches('/');
            if !(path.is_empty() || path == "/scim/v2") {
                return Err(format!(
                    "{input:?} is not monday.com's SCIM URL; it is https://{host}/scim/v2/ (Admin > Security > SCIM shows it)"
                ));
            }
            url.set_path("/scim/v2/");
            Dialect::Monday
        } else {
            if !url.path().ends_with('/') {
                let p = format!("{}/", url.path());
                url.set_path(&p);
            }
            Dialect::Generic
        };
        Ok(InstanceUrl { url, dialect })
    }

    pub fn as_str(&self) -> &str {
        self.url.as_str()
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Checks every address the host resolves to, just before connecting, so a name that
    /// resolves inside the network is refused too.
    pub async fn check_resolved(&self, policy: UrlPolicy) -> Result<(), String> {
        let host = self.url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_string();
        if host == "localhost" {
            return Ok(());
        }
        let port = self.url.port_or_known_default().unwrap_or(443);
        let addrs = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| format!("the host name {host} could not be resolved (DNS): {e}"))?;
        for a in addrs {
            check_address(a.ip(), policy).map_err(|why| format!("{host} resolves to {why}"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(input: &str) -> (String, Dialect) {
        let u = InstanceUrl::parse(input, UrlPolicy::default()).unwrap_or_else(|e| panic!("{input}: {e}"));
        (u.to_string(), u.dialect())
    }

    #[test]
    fn monday_forms_normalise_to_the_scim_base_url() {
        let want = ("https://acme.monday.com/scim/v2/".to_string(), Dialect::Monday);
        for input in [
            "acme",
            "Acme",
            "acme.monday.com",
            "https://acme.monday.com",
            "https://acme.monday.com/",
            "https://acme.monday.com/scim/v2",
            "https://acme.monday.com/scim/v2/",
            "  acme.monday.com/scim/v2/  ",
            "https://ACME.monday.com/scim/v2?x=1#f",
        ] {
            assert_eq!(ok(input), want, "{input}");
        }
        let e = InstanceUrl::parse("https://acme.monday.com/boards/1", UrlPolicy::default()).unwrap_err();
        assert!(e.contains("https://acme.monday.com/scim/v2/"), "{e}");
    }

    #[test]
    fn generic_https_scim_urls_keep_their_path() {
        assert_eq!(ok("https://scim.example.org/v2"), ("https://scim.example.org/v2/".into(), Dialect::Generic));
        assert_eq!(ok("http://127.0.0.1:8787/scim/v2"), ("http://127.0.0.1:8787/scim/v2/".into(), Dialect::Generic));
        assert_eq!(ok("http://localhost:9/scim/v2/").1, Dialect::Generic);
    }

    #[test]
    fn refuses_what_a_pasted_url_must_not_reach() {
        let strict = UrlPolicy::default();
        for input in [
            "http://scim.example.org/v2",
            "ftp://scim.example.org/",
            "https://169.254.169.254/latest/meta-data/",
            "https://10.0.0.5/scim/v2",
            "https://192.168.1.10/scim",
            "https://172.16.0.1/",
            "https://100.64.0.1/",
            "https://0.0.0.0/",
            "https://[fe80::1]/",
            "https://[fd00:ec2::254]/",
            "https://[::ffff:10.0.0.1]/",
            "https://metadata.google.internal/computeMetadata/v1/",
            "https://user:pass@scim.example.org/",
            "",
        ] {
            assert!(InstanceUrl::parse(input, strict).is_err(), "{input} was accepted");
        }
        let open = UrlPolicy { allow_insecure_http: true, allow_private: true };
        assert!(InstanceUrl::parse("https://10.0.0.5/scim/v2", open).is_ok());
        assert!(InstanceUrl::parse("http://scim.example.org/v2", open).is_ok());
    }

    #[tokio::test]
    async fn resolved_addresses_are_checked() {
        let u = InstanceUrl::parse("http://localhost:8787/scim/v2", UrlPolicy::default()).unwrap();
        assert!(u.check_resolved(UrlPolicy::default()).await.is_ok());
        let u = InstanceUrl::parse("https://127.0.0.1/scim/v2", UrlPolicy::default()).unwrap();
        assert!(u.check_resolved(UrlPolicy::default()).await.is_ok());
    }
}
