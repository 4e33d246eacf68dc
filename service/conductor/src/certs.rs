//! X.509 certificates tundrad makes (ECDSA P-256, from rcgen): validity
//! windows, serial numbers, and an appliance's own small PKI.

use crate::error::{Error, Result};

/// Seconds since the Unix epoch, now.
pub fn seconds_since_epoch() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs()
}

/// A certificate valid from `after` to `before` (seconds since the epoch).
pub fn valid_between(p: &mut rcgen::CertificateParams, after: u64, before: u64) {
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    p.not_before = epoch + std::time::Duration::from_secs(after);
    p.not_after = epoch + std::time::Duration::from_secs(before);
}

pub fn cert_error(e: rcgen::Error) -> Error {
    Error::Internal(format!("making a certificate: {e}"))
}

/// A random positive serial number (RFC 5280: at most 20 bytes).
pub fn random_serial() -> Result<rcgen::SerialNumber> {
    let mut serial = [0u8; 16];
    aws_lc_rs::rand::fill(&mut serial).map_err(|_| Error::Internal("no randomness for a certificate".into()))?;
    serial[0] &= 0x7f;
    Ok(rcgen::SerialNumber::from_slice(&serial))
}

/// Ten years: what an appliance's CA and certificate, and a cluster's
/// client CA, are valid for.
pub const TEN_YEARS: u64 = 10 * 365 * 86_400;

/// PEM texts of a CA and one certificate it signed, with its key.
#[derive(Clone, PartialEq, Eq)]
pub struct TlsBundle {
    pub ca: String,
    pub cert: String,
    pub key: String,
}

/// The key never reaches a log through `{:?}`.
impl std::fmt::Debug for TlsBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsBundle").field("ca", &self.ca).field("cert", &self.cert).field("key", &"(redacted)").finish()
    }
}

/// A distinguished-name value cut to RFC 5280's 64 characters.
fn dn_value(s: &str) -> String {
    s.chars().take(64).collect()
}

/// An appliance's `tls` secret: a CA named after the appliance (`name`;
/// `scope` — its project and the secret — as the organizational unit), and
/// one certificate it signed for the appliance's services (server and
/// client authentication, so both ends of mutual TLS use it) with the
/// appliance's name as its DNS name (the services' peers check the CA, not
/// host names). The CA's key is not kept: nothing signs for the appliance
/// later.
pub fn appliance_tls(name: &str, scope: &str) -> Result<TlsBundle> {
    let now = seconds_since_epoch();
    let (after, before) = (now.saturating_sub(60), now + TEN_YEARS);
    let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(cert_error)?;
    let mut ca = rcgen::CertificateParams::default();
    ca.distinguished_name = rcgen::DistinguishedName::new();
    ca.distinguished_name.push(rcgen::DnType::CommonName, dn_value(&format!("tundra appliance CA {name}")));
    ca.distinguished_name.push(rcgen::DnType::OrganizationalUnitName, dn_value(scope));
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    ca.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
    valid_between(&mut ca, after, before);
    ca.serial_number = Some(random_serial()?);
    let ca_cert = ca.self_signed(&ca_key).map_err(cert_error)?;
    let issuer = rcgen::Issuer::from_params(&ca, &ca_key);
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(cert_error)?;
    let mut p = rcgen::CertificateParams::new(vec![name.to_string()]).map_err(cert_error)?;
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(rcgen::DnType::CommonName, dn_value(&format!("tundra appliance {name}")));
    p.distinguished_name.push(rcgen::DnType::OrganizationalUnitName, dn_value(scope));
    // ECDSA signs; it enciphers no keys (RFC 5480).
    p.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages =
        vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth, rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    valid_between(&mut p, after, before);
    p.serial_number = Some(random_serial()?);
    let cert = p.signed_by(&key, &issuer).map_err(cert_error)?;
    Ok(TlsBundle { ca: ca_cert.pem(), cert: cert.pem(), key: key.serialize_pem() })
}

impl TlsBundle {
    /// As templates see it: `{"ca": …, "cert": …, "key": …}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({"ca": self.ca, "cert": self.cert, "key": self.key})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_appliance_bundle_keeps_its_key_out_of_debug_and_its_names_short() {
        let long = "a".repeat(63);
        let b = appliance_tls(&long, &format!("0190d6a0-0000-7000-8000-000000000001 {long}")).unwrap();
        assert!(b.ca.starts_with("-----BEGIN CERTIFICATE-----") && b.cert.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(b.key.starts_with("-----BEGIN PRIVATE KEY-----"));
        let shown = format!("{b:?}");
        let secret_line = b.key.lines().nth(1).unwrap();
        assert!(!shown.contains(secret_line) && shown.contains("(redacted)"), "{shown}");
        assert_eq!(dn_value(&format!("tundra appliance CA {long}")).chars().count(), 64);
        assert_eq!(dn_value("short"), "short");
    }
}
