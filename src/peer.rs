//! Who is at the other end of a call, besides its bearer token: the names in a client
//! certificate that TLS verified on this connection, or, on a connection from a trusted
//! gateway that terminated TLS itself, in the certificate the gateway forwarded.
//!
//! A certificate's names are its subject Common Name and its DNS, URI and e-mail
//! Subject Alternative Names; an agency registered with `agency add --cert-subject X`
//! is the caller when any of them equals X.

use std::net::IpAddr;
use std::str::FromStr;

use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// The header gateways such as Envoy use for the client certificate they verified.
pub const DEFAULT_FORWARDED_CERT_HEADER: &str = "x-forwarded-client-cert";

/// Most names taken from one certificate; the rest are ignored.
const MAX_NAMES: usize = 16;

/// Why a presented certificate could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerError {
    #[error("the client certificate cannot be read as X.509")]
    Unreadable,
    #[error("the client certificate carries no Common Name or Subject Alternative Name")]
    Nameless,
    #[error("the forwarded client certificate header `{0}` cannot be read")]
    BadForwarded(String),
}

/// A gateway whose forwarded client certificates are believed: the name its own
/// client certificate carries, or the network its connections come from (for gateways
/// that reach the replicas over plain HTTP/2 inside the cluster).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gateway {
    /// A certificate name, as in `agency add --cert-subject`.
    Name(String),
    /// An address or CIDR block, e.g. `10.0.0.0/8`.
    Network { addr: IpAddr, prefix: u8 },
}

impl FromStr for Gateway {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() {
            return Err("a trusted gateway cannot be empty".into());
        }
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let Ok(addr) = addr.parse::<IpAddr>() else {
            if prefix.is_some() && s.chars().all(|c| c.is_ascii_digit() || ".:/".contains(c)) {
                return Err(format!("{s:?} is not a valid CIDR block"));
            }
            return Ok(Gateway::Name(s.to_owned()));
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?}: the prefix length must be 0 to {max}"))?,
        };
        Ok(Gateway::Network { addr, prefix })
    }
}

impl Gateway {
    /// Whether a connection from `remote` presenting a certificate with `names` (none:
    /// no certificate) is this gateway. A network vouches only for connections that
    /// present no certificate of their own: a client that shows its own is that client,
    /// whatever address it connects from (a load balancer may rewrite addresses into
    /// the gateway's range).
    fn admits(&self, names: &[String], remote: Option<IpAddr>) -> bool {
        match self {
            Gateway::Name(name) => names.iter().any(|n| n == name),
            Gateway::Network { addr, prefix } => {
                names.is_empty() && remote.is_some_and(|r| in_network(r, *addr, *prefix))
            }
        }
    }
}

fn in_network(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    let ip = match (ip, net) {
        (IpAddr::V6(v6), IpAddr::V4(_)) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        _ => ip,
    };
    let (ip, net, bits) = match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            (u128::from(u32::from(a)), u128::from(u32::from(b)), 32u32)
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128u32),
        _ => return false,
    };
    let host_bits = bits - u32::from(prefix);
    host_bits >= bits || (ip >> host_bits) == (net >> host_bits)
}

/// The header a gateway appends the address of the client it serves to.
pub const FORWARDED_FOR: &str = "x-forwarded-for";

/// Which gateways are trusted and where they put the forwarded certificate.
#[derive(Debug, Clone)]
pub struct PeerPolicy {
    gateways: Vec<Gateway>,
    header: http::HeaderName,
}

impl Default for PeerPolicy {
    fn default() -> Self {
        PeerPolicy {
            gateways: Vec::new(),
            header: http::HeaderName::from_static(DEFAULT_FORWARDED_CERT_HEADER),
        }
    }
}

impl PeerPolicy {
    /// Trusts `gateways` to forward client certificates in `header`.
    pub fn new(gateways: Vec<Gateway>, header: &str) -> Result<Self, String> {
        let header = http::HeaderName::from_str(&header.to_ascii_lowercase())
            .map_err(|_| format!("{header:?} is not a valid header name"))?;
        Ok(PeerPolicy { gateways, header })
    }

    /// Whether a connection from `remote` presenting a certificate with `names` is one
    /// of the trusted gateways.
    fn is_gateway(&self, names: &[String], remote: Option<IpAddr>) -> bool {
        self.gateways.iter().any(|g| g.admits(names, remote))
    }

    /// The address a call comes from: the connection's, or, on a connection from a
    /// trusted gateway, the last address in its `forwarded_for` header (the one the
    /// gateway appended: earlier ones are the client's own claims). Behind a gateway
    /// every connection is the gateway's, so without this all callers would share one
    /// address. A header from anyone else is ignored.
    pub fn client_address(
        &self,
        extensions: &http::Extensions,
        forwarded_for: Option<&str>,
    ) -> Option<IpAddr> {
        let (remote, direct) = connection(extensions);
        // Without trusted gateways (a direct deployment) no certificate is parsed.
        let Some(forwarded_for) = forwarded_for.filter(|_| !self.gateways.is_empty()) else {
            return remote;
        };
        // A certificate that cannot be read is still one the client presented: such a
        // connection is no gateway, whatever its address.
        let Ok(names) = direct.map(Option::unwrap_or_default) else {
            return remote;
        };
        if !self.is_gateway(&names, remote) {
            return remote;
        }
        forwarded_for
            .rsplit(',')
            .next()
            .and_then(|last| last.trim().parse::<IpAddr>().ok())
            .or(remote)
    }

    /// The certificate names the caller presented, if it presented a certificate.
    ///
    /// On a connection from a trusted gateway that is the forwarded certificate, or
    /// nothing when the gateway forwarded none (the gateway's own certificate is not an
    /// agency's). On any other connection it is the connection's own client
    /// certificate, and a forwarded header is ignored: only a gateway may vouch for
    /// someone else.
    pub fn presented(
        &self,
        extensions: &http::Extensions,
        headers: &http::HeaderMap,
    ) -> Result<Option<Vec<String>>, PeerError> {
        let (remote, direct) = connection(extensions);
        let direct = direct?;
        let names = direct.as_deref().unwrap_or_default();
        if self.is_gateway(names, remote) {
            let bad = || PeerError::BadForwarded(self.header.as_str().to_owned());
            let mut values = headers.get_all(&self.header).iter();
            return match (values.next(), values.next()) {
                // Two lines: one may be the client's own, passed on by a gateway that
                // appended its line rather than replacing it. Neither is trusted.
                (Some(_), Some(_)) => Err(bad()),
                (Some(value), None) => {
                    let text = value.to_str().map_err(|_| bad())?;
                    forwarded_names(text).map(Some).ok_or_else(bad)
                }
                (None, _) => Ok(None),
            };
        }
        Ok(direct)
    }
}

/// A connection's remote address, and the names in the client certificate TLS verified
/// on it (None without one).
type Connection = (Option<IpAddr>, Result<Option<Vec<String>>, PeerError>);

/// What the request's `extensions` say about its connection.
fn connection(extensions: &http::Extensions) -> Connection {
    let tls = extensions.get::<TlsConnectInfo<TcpConnectInfo>>();
    let remote = extensions
        .get::<TcpConnectInfo>()
        .or_else(|| tls.map(TlsConnectInfo::get_ref))
        .and_then(TcpConnectInfo::remote_addr)
        .map(|a| a.ip());
    let names = tls
        .and_then(TlsConnectInfo::peer_certs)
        .and_then(|chain| chain.first().map(|leaf| certificate_names(leaf.as_ref())))
        .transpose();
    (remote, names)
}

/// The names a DER certificate carries: subject Common Name(s), then its DNS, URI and
/// e-mail Subject Alternative Names.
pub fn certificate_names(der: &[u8]) -> Result<Vec<String>, PeerError> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|_| PeerError::Unreadable)?;
    let mut names: Vec<String> = cert
        .subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok())
        .map(str::to_owned)
        .collect();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(n) | GeneralName::URI(n) | GeneralName::RFC822Name(n) => {
                    names.push((*n).to_owned())
                }
                _ => {}
            }
        }
    }
    names.retain(|n| !n.is_empty());
    names.truncate(MAX_NAMES);
    if names.is_empty() {
        return Err(PeerError::Nameless);
    }
    Ok(names)
}

/// The names in an Envoy-style `x-forwarded-client-cert` value: of its last element
/// (the one the gateway added), the `Cert` (URL-encoded PEM), `URI`, `DNS` and the
/// `Subject`'s CN. None when the value cannot be read or names nobody.
pub fn forwarded_names(value: &str) -> Option<Vec<String>> {
    let element = split_unquoted(value, ',').pop()?;
    let mut names = Vec::new();
    for pair in split_unquoted(&element, ';') {
        let (key, raw) = pair.split_once('=')?;
        let raw = raw.trim();
        let value = match raw.strip_prefix('"') {
            Some(inner) => inner.strip_suffix('"')?.replace("\\\"", "\""),
            None => raw.to_owned(),
        };
        match key.trim().to_ascii_lowercase().as_str() {
            "cert" => {
                let pem = percent_decode(&value)?;
                let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).ok()?;
                names.extend(certificate_names(&pem.contents).ok()?);
            }
            "uri" | "dns" => names.push(value),
            "subject" => names.extend(
                split_unquoted(&value, ',')
                    .iter()
                    .filter_map(|rdn| rdn.trim().strip_prefix("CN="))
                    .map(str::to_owned),
            ),
            _ => {}
        }
    }
    names.retain(|n| !n.is_empty());
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.clone()));
    names.truncate(MAX_NAMES);
    (!names.is_empty()).then_some(names)
}

/// Splits on `sep` outside double quotes.
fn split_unquoted(s: &str, sep: char) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut quoted = false;
    let mut escaped = false;
    for c in s.chars() {
        let last = parts.last_mut().expect("never empty");
        if escaped {
            escaped = false;
            last.push(c);
            continue;
        }
        match c {
            '\\' => {
                escaped = true;
                last.push(c);
            }
            '"' => {
                quoted = !quoted;
                last.push(c);
            }
            c if c == sep && !quoted => parts.push(String::new()),
            c => last.push(c),
        }
    }
    parts.retain(|p| !p.trim().is_empty());
    parts
}

fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateways_parse_as_names_addresses_or_blocks() {
        assert_eq!(
            "gateway.credit-hub.svc".parse::<Gateway>(),
            Ok(Gateway::Name("gateway.credit-hub.svc".into()))
        );
        assert_eq!(
            "10.0.0.0/8".parse::<Gateway>(),
            Ok(Gateway::Network {
                addr: "10.0.0.0".parse().unwrap(),
                prefix: 8
            })
        );
        assert!("10.0.0.0/33".parse::<Gateway>().is_err());
        assert!("10.0.0/8".parse::<Gateway>().is_err());
        assert!("".parse::<Gateway>().is_err());
    }

    #[test]
    fn networks_match_by_prefix() {
        let net: IpAddr = "10.1.0.0".parse().unwrap();
        assert!(in_network("10.1.2.3".parse().unwrap(), net, 16));
        assert!(!in_network("10.2.0.1".parse().unwrap(), net, 16));
        assert!(in_network("::ffff:10.1.9.9".parse().unwrap(), net, 16));
        assert!(in_network("192.168.1.1".parse().unwrap(), net, 0));
        assert!(!in_network("::1".parse().unwrap(), net, 8));
    }

    #[test]
    fn forwarded_headers_yield_the_last_elements_names() {
        let v = r#"By=spiffe://gw;URI=spiffe://old,By=spiffe://gw;Hash=ab;Subject="CN=court.example,O=Court";URI=spiffe://agencies/court;DNS=court.example"#;
        assert_eq!(
            forwarded_names(v).unwrap(),
            vec!["court.example", "spiffe://agencies/court"]
        );
        assert_eq!(forwarded_names("Hash=ab"), None);
        assert_eq!(forwarded_names(r#"Subject="CN=x"#), None);
        assert_eq!(forwarded_names("Cert=%zz"), None);
    }
}
