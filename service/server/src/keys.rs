//! SSH public keys as users paste them (`authorized_keys` lines): the blob is
//! decoded and checked against its declared type, weak keys are refused, and
//! the fingerprint is computed as `ssh-keygen -l` prints it.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};

/// A parsed public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub key_type: String,
    /// `type base64 [comment]`, whitespace normalised.
    pub normalized: String,
    pub fingerprint: String,
}

const TYPES: [&str; 7] = [
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

fn read_string<'a>(b: &mut &'a [u8]) -> Option<&'a [u8]> {
    if b.len() < 4 {
        return None;
    }
    let n = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
    let rest = &b[4..];
    if rest.len() < n {
        return None;
    }
    let (s, r) = rest.split_at(n);
    *b = r;
    Some(s)
}

pub fn parse(line: &str) -> Result<PublicKey, String> {
    let line = line.trim();
    if line.contains('\n') {
        return Err("one key per keypair: the value has several lines".into());
    }
    if line.contains("PRIVATE KEY") {
        return Err("this is a PRIVATE key — never share it; send the .pub file's contents".into());
    }
    let mut parts = line.split_whitespace();
    let (Some(ty), Some(b64)) = (parts.next(), parts.next()) else {
        return Err(
            "expected \"TYPE BASE64 [COMMENT]\" as in a .pub file, e.g. \"ssh-ed25519 AAAAC3Nza… you@host\"".into()
        );
    };
    let comment: Vec<&str> = parts.collect();
    if !TYPES.contains(&ty) {
        return Err(format!("key type {ty:?} is not accepted; use one of {} (ssh-dss is insecure)", TYPES.join(", ")));
    }
    let blob =
        STANDARD.decode(b64).map_err(|_| "the key's base64 part does not decode; copy the whole line".to_string())?;
    let mut rest = blob.as_slice();
    let inner = read_string(&mut rest).ok_or("the key blob is truncated")?;
    if inner != ty.as_bytes() {
        return Err(format!("the key blob says {:?} but the line says {ty:?}", String::from_utf8_lossy(inner)));
    }
    match ty {
        "ssh-ed25519" => {
            let k = read_string(&mut rest).ok_or("the ed25519 key is truncated")?;
            if k.len() != 32 || !rest.is_empty() {
                return Err("an ed25519 key is 32 bytes; this one is malformed".into());
            }
        }
        "ssh-rsa" => {
            let _e = read_string(&mut rest).ok_or("the RSA key is truncated")?;
            let n = read_string(&mut rest).ok_or("the RSA key is truncated")?;
            let n = match n.iter().position(|b| *b != 0) {
                Some(i) => &n[i..],
                None => &[][..],
            };
            // (An empty or all-zero modulus has 0 bits.)
            let bits = (n.len() * 8).saturating_sub(n.first().map_or(0, |b| b.leading_zeros() as usize));
            if bits < 2048 {
                return Err(format!(
                    "RSA keys need at least 2048 bits; this one has {bits} — make an ed25519 key (ssh-keygen -t ed25519)"
                ));
            }
        }
        _ => {
            read_string(&mut rest).ok_or("the key is truncated")?;
        }
    }
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &blob);
    let mut normalized = format!("{ty} {b64}");
    if !comment.is_empty() {
        normalized.push(' ');
        normalized.push_str(&comment.join(" "));
    }
    Ok(PublicKey {
        key_type: ty.into(),
        normalized,
        fingerprint: format!("SHA256:{}", STANDARD_NO_PAD.encode(digest.as_ref())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // A real ed25519 public key and the fingerprint `ssh-keygen -lf` prints for it.
    const ED: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE28EIbrewdEDj9qeZjjK3liBBadA01HeYTCQGsZnbFB test@tundra";
    // A 1024-bit RSA key (too weak).
    const RSA1024: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDb91hqbf7CgrAlH4cFxUqv2UXjzIgq/5SkgEcJA+dMBJyI0onfRGP/Tg+dlhxG3148gQkJJW5QpT8ZzgkcilieCjsv25vfnSd1s8oemIrPAI+yUmtzfTOYHcmZPUqQFm33sECFyOme0PF/E8qfeOHpeoy3mKxEFiO90bhL2nGBCw==";

    #[test]
    fn parses_and_fingerprints() {
        let k = parse(ED).unwrap();
        assert_eq!(k.key_type, "ssh-ed25519");
        assert_eq!(k.fingerprint, "SHA256:e5BXvbVqMjqHM8psooRePWo8GWCNvuZdcP6WOmpXeRI");
        assert_eq!(parse(&format!("  {ED}\n")).unwrap(), k);
    }

    #[test]
    fn refuses_what_is_not_a_usable_public_key() {
        assert!(parse("ssh-dss AAAA").unwrap_err().contains("not accepted"));
        assert!(parse("ssh-ed25519 !!!").unwrap_err().contains("base64"));
        assert!(parse("-----BEGIN OPENSSH PRIVATE KEY-----").unwrap_err().contains("PRIVATE"));
        assert!(
            parse("ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIE28EIbrewdEDj9qeZjjK3liBBadA01HeYTCQGsZnbFB")
                .unwrap_err()
                .contains("blob says")
        );
        assert!(parse("hello").unwrap_err().contains("TYPE BASE64"));
        assert!(parse(RSA1024).unwrap_err().contains("has 1024"), "{:?}", parse(RSA1024));
        // An empty and an all-zero modulus: 0 bits, not a panic.
        let rsa = |n: &[u8]| {
            let mut blob = Vec::new();
            for part in [&b"ssh-rsa"[..], &[1, 0, 1], n] {
                blob.extend((part.len() as u32).to_be_bytes());
                blob.extend(part);
            }
            format!("ssh-rsa {}", STANDARD.encode(blob))
        };
        assert!(parse(&rsa(&[])).unwrap_err().contains("has 0"));
        assert!(parse(&rsa(&[0, 0, 0])).unwrap_err().contains("has 0"));
    }
}
