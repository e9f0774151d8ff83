//! Which webhook targets pixmill will POST to: an `http(s)` URL without credentials whose
//! host resolves only to public addresses (unless private ones are explicitly allowed).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use reqwest::Url;

/// Longest `callback_url` accepted.
pub const MAX_URL_LEN: usize = 2048;
/// How long a target's host may take to resolve.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a target was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("callback_url must be an absolute http or https URL of at most {MAX_URL_LEN} characters, without user or password")]
    Malformed,
    #[error("callback_url host {0:?} does not resolve")]
    Unresolvable(String),
    /// The message leaves the address out: an uploader must not learn what the
    /// deployment's internal names resolve to. The delivery log names it.
    #[error("callback_url host {host:?} resolves to a loopback, private, link-local or otherwise non-public address; webhooks go to public addresses only")]
    NotPublic { host: String, addr: IpAddr },
}

impl TargetError {
    /// The API's error code for this refusal.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed => "invalid_callback_url",
            Self::Unresolvable(_) => "callback_url_unresolvable",
            Self::NotPublic { .. } => "callback_url_not_allowed",
        }
    }
}

/// A syntactically valid webhook target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallbackUrl(Url);

impl CallbackUrl {
    pub fn parse(raw: &str) -> Result<Self, TargetError> {
        if raw.len() > MAX_URL_LEN {
            return Err(TargetError::Malformed);
        }
        let url = Url::parse(raw).map_err(|_| TargetError::Malformed)?;
        let scheme_ok = matches!(url.scheme(), "http" | "https");
        let credentials = !url.username().is_empty() || url.password().is_some();
        if !scheme_ok || credentials || url.host_str().is_none_or(str::is_empty) {
            return Err(TargetError::Malformed);
        }
        Ok(Self(url))
    }

    pub fn url(&self) -> &Url {
        &self.0
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The host as the URL names it (brackets stripped from IPv6 literals).
    pub fn host(&self) -> String {
        let host = self.0.host_str().unwrap_or_default();
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned()
    }

    /// Resolves the host and checks every address it resolves to. Returns the addresses to
    /// connect to: exactly the ones checked.
    pub async fn resolve(&self, allow_private: bool) -> Result<Vec<SocketAddr>, TargetError> {
        let host = self.host();
        let port = self.0.port_or_known_default().unwrap_or(80);
        let unresolvable = || TargetError::Unresolvable(host.clone());
        let addrs: Vec<SocketAddr> = match tokio::time::timeout(
            RESOLVE_TIMEOUT,
            tokio::net::lookup_host((host.as_str(), port)),
        )
        .await
        {
            Ok(Ok(addrs)) => addrs.collect(),
            Ok(Err(_)) | Err(_) => return Err(unresolvable()),
        };
        if addrs.is_empty() {
            return Err(unresolvable());
        }
        if !allow_private {
            if let Some(bad) = addrs.iter().find(|a| !is_public(a.ip())) {
                return Err(TargetError::NotPublic {
                    host,
                    addr: bad.ip(),
                });
            }
        }
        Ok(addrs)
    }
}

/// Whether `ip` is a globally routable unicast address. Everything a deployment may reach
/// internally is refused: loopback, RFC 1918 and shared (CGNAT) ranges, link-local,
/// unique-local, unspecified, broadcast, multicast, documentation and benchmarking ranges,
/// and IPv6 forms that embed an IPv4 address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let special = ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (b == 18 || b == 19))
        || a >= 240;
    !special
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let first = ip.segments()[0];
    let special = ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        || (first & 0xffc0) == 0xfec0
        || first == 0x2001 && ip.segments()[1] == 0x0db8
        || first == 0x0064 && ip.segments()[1] == 0xff9b
        || first == 0x2002
        // Teredo (2001::/32) and benchmarking (2001:2::/48).
        || first == 0x2001 && ip.segments()[1] == 0
        || first == 0x2001 && ip.segments()[1] == 0x0002 && ip.segments()[2] == 0
        // Discard-only (100::/64) and documentation (3fff::/20).
        || ip.segments()[..4] == [0x0100, 0, 0, 0]
        || first == 0x3fff && (ip.segments()[1] & 0xf000) == 0
        || ip.segments()[..6] == [0, 0, 0, 0, 0, 0]
        || ip.segments()[..6] == [0, 0, 0, 0, 0xffff, 0];
    !special
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_not_public() {
        let internal = [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd12:3456::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a00:1",
            "2002:7f00:1::",
            // IPv4-translated (::ffff:0:0/96) and Teredo (2001::/32) carry an IPv4 address
            // a relay may reach.
            "::ffff:0:a00:1",
            "::ffff:0:7f00:1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            // Benchmarking (2001:2::/48), discard-only (100::/64), documentation (3fff::/20).
            "2001:2::1",
            "100::1",
            "3fff:1::1",
        ];
        for raw in internal {
            assert!(!is_public(raw.parse().unwrap()), "{raw} counted as public");
        }
        for raw in [
            "93.184.215.14",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "2001:4860:4860::8888",
        ] {
            assert!(is_public(raw.parse().unwrap()), "{raw} refused");
        }
    }

    #[test]
    fn only_plain_http_urls_parse() {
        for bad in [
            "ftp://example.com/x",
            "http://user:pw@example.com/",
            "/relative",
            "http://",
            "javascript:alert(1)",
        ] {
            assert_eq!(
                CallbackUrl::parse(bad),
                Err(TargetError::Malformed),
                "{bad:?} accepted"
            );
        }
        assert_eq!(
            CallbackUrl::parse("http://[::1]:8080/hook").unwrap().host(),
            "::1"
        );
    }

    #[tokio::test]
    async fn loopback_is_refused_unless_allowed() {
        let url = CallbackUrl::parse("http://127.0.0.1:9/hook").unwrap();
        let refused = url.resolve(false).await.unwrap_err();
        assert_eq!(refused.code(), "callback_url_not_allowed");
        assert_eq!(
            url.resolve(true).await.unwrap(),
            vec!["127.0.0.1:9".parse().unwrap()]
        );
    }
}
