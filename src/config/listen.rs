//! Listen addresses as people write them: an IP address and port (`0.0.0.0:8080`), or a
//! host name and port (`localhost:8080`), resolved once, at start, to its first address.

use std::net::{SocketAddr, ToSocketAddrs};

use serde::{Deserialize, Deserializer, Serializer};

/// The address `value` names.
pub fn parse(value: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = value.parse() {
        return Ok(addr);
    }
    let refused = || {
        format!(
            "{value:?} is not an address and port to listen on, e.g. 127.0.0.1:8080, \
             0.0.0.0:8080 (every interface) or localhost:8080"
        )
    };
    value
        .to_socket_addrs()
        .map_err(|_| refused())?
        .next()
        .ok_or_else(refused)
}

/// For `#[serde(with = "listen")]`.
pub fn serialize<S: Serializer>(addr: &SocketAddr, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(addr)
}

/// For `#[serde(with = "listen")]`.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse(&text).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn addresses_and_host_names_with_a_port_are_taken() {
        assert_eq!(parse("0.0.0.0:8080").map(|a| a.port()), Ok(8080));
        assert_eq!(parse("[::1]:9090").map(|a| a.port()), Ok(9090));
        let local = parse("localhost:18432").expect("localhost resolves");
        assert!(local.ip().is_loopback() && local.port() == 18432, "{local}");
        for refused in ["localhost", "8080", "127.0.0.1:port"] {
            let message = parse(refused).expect_err(refused);
            assert!(message.contains("e.g. 127.0.0.1:8080"), "{message}");
        }
    }
}
