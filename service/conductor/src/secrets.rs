//! Secrets at rest: AES-256-GCM with keys from a key file.
//!
//! The key file has one key per line, `ID:BASE64(32 bytes)`; the first line
//! is the primary key that seals, every line can open. To rotate: put a new
//! key on the first line and restart (or run `tundrad rotate-secrets`) — every
//! secret sealed with an older key is re-sealed with the primary; then the old
//! line can be removed. The plaintext never reaches logs: [`Plaintext`]'s
//! Debug prints a placeholder.

use std::path::Path;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use tundra_api::SecretId;
use tundra_store::{SecretRecord, Store};

/// A secret's plaintext; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Plaintext(pub Vec<u8>);

impl std::fmt::Debug for Plaintext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Plaintext(<redacted>)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("key file {path}: {message}")]
    KeyFile { path: String, message: String },
    #[error("secret {0} was sealed with key {1:?}, which is not in the key file; restore that key")]
    UnknownKey(SecretId, String),
    #[error(
        "secret {0} failed to decrypt: the key file's key {1:?} is not the one that sealed it, or the row was altered"
    )]
    Corrupt(SecretId, String),
    #[error(transparent)]
    Store(#[from] tundra_store::StoreError),
}

/// The keys from the key file; the first seals.
pub struct Keyring {
    keys: Vec<(String, LessSafeKey)>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring").field("keys", &self.keys.iter().map(|k| &k.0).collect::<Vec<_>>()).finish()
    }
}

/// Hex SHA-256: how tokens are stored (never the token itself).
pub fn sha256_hex(bytes: &[u8]) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// A new bearer secret: `prefix` + 32 random bytes, base64url.
pub fn new_secret(prefix: &str) -> String {
    let mut b = [0u8; 32];
    aws_lc_rs::rand::fill(&mut b).expect("system randomness");
    format!("{prefix}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
}

/// A new key line, `ID:BASE64`.
pub fn new_key_line() -> String {
    let mut k = [0u8; 32];
    aws_lc_rs::rand::fill(&mut k).expect("system randomness");
    let mut id = [0u8; 4];
    aws_lc_rs::rand::fill(&mut id).expect("system randomness");
    format!("{}:{}", id.iter().map(|b| format!("{b:02x}")).collect::<String>(), B64.encode(k))
}

impl Keyring {
    /// Load the key file, creating it (mode 0600, one fresh key) if missing.
    pub fn load_or_create(path: &Path) -> Result<Keyring, SecretError> {
        let err = |message: String| SecretError::KeyFile { path: path.display().to_string(), message };
        if !path.exists() {
            write_private(path, &format!("{}\n", new_key_line())).map_err(|e| err(format!("creating: {e}")))?;
            tracing::info!(file = %path.display(), "created the secrets key file; back it up with the database");
        }
        check_private(path).map_err(err)?;
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        Keyring::parse(&text).map_err(err)
    }

    pub fn parse(text: &str) -> Result<Keyring, String> {
        let mut keys = Vec::new();
        for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#')) {
            let (id, b64) = line.trim().split_once(':').ok_or(format!("line {}: expected ID:BASE64", n + 1))?;
            let bytes = B64.decode(b64).map_err(|e| format!("line {}: {e}", n + 1))?;
            let key = UnboundKey::new(&AES_256_GCM, &bytes)
                .map_err(|_| format!("line {}: a key must be 32 bytes (base64 of 32 random bytes)", n + 1))?;
            keys.push((id.to_string(), LessSafeKey::new(key)));
        }
        if keys.is_empty() {
            return Err("no keys; add a line ID:BASE64(32 random bytes)".into());
        }
        Ok(Keyring { keys })
    }

    pub fn primary_id(&self) -> &str {
        &self.keys[0].0
    }

    /// Seal `plain` for `id` (the ID is bound as associated data, so a
    /// ciphertext moved to another row fails to open).
    pub fn seal(&self, id: SecretId, plain: &Plaintext) -> SecretRecord {
        let (key_id, key) = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).expect("system randomness");
        let mut buf = plain.0.clone();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(id.to_string().as_bytes()),
            &mut buf,
        )
        .expect("sealing cannot fail for in-memory buffers");
        SecretRecord { id, key_id: key_id.clone(), nonce: B64.encode(nonce), ciphertext: B64.encode(buf) }
    }

    pub fn open(&self, r: &SecretRecord) -> Result<Plaintext, SecretError> {
        let key = self
            .keys
            .iter()
            .find(|(k, _)| *k == r.key_id)
            .map(|(_, k)| k)
            .ok_or_else(|| SecretError::UnknownKey(r.id, r.key_id.clone()))?;
        let corrupt = || SecretError::Corrupt(r.id, r.key_id.clone());
        let nonce: [u8; NONCE_LEN] = B64.decode(&r.nonce).ok().and_then(|n| n.try_into().ok()).ok_or_else(corrupt)?;
        let mut buf = B64.decode(&r.ciphertext).map_err(|_| corrupt())?;
        let plain = key
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(r.id.to_string().as_bytes()), &mut buf)
            .map_err(|_| corrupt())?;
        Ok(Plaintext(plain.to_vec()))
    }

    /// Store a secret, sealed.
    pub async fn put(&self, store: &Store, id: SecretId, plain: &Plaintext) -> Result<(), SecretError> {
        Ok(store.put_secret(&self.seal(id, plain)).await?)
    }

    /// Read a secret back — only for the code path that uses it (a driver
    /// logging in to a BMC or switch), never for an API response.
    pub async fn get(&self, store: &Store, id: SecretId) -> Result<Plaintext, SecretError> {
        self.open(&store.secret(id).await?)
    }

    /// Re-seal every secret not sealed with the primary key; returns how many.
    pub async fn rotate(&self, store: &Store) -> Result<usize, SecretError> {
        let old = store.secrets_not_sealed_with(self.primary_id()).await?;
        for r in &old {
            let plain = self.open(r)?;
            store.put_secret(&self.seal(r.id, &plain)).await?;
        }
        Ok(old.len())
    }
}

/// Write a file only its owner can read.
pub fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()
}

fn check_private(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).map_err(|e| e.to_string())?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(format!("mode is {:o}; others can read the keys — chmod 600 it", mode & 0o777));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_and_tamper() {
        let ring = Keyring::parse(&new_key_line()).unwrap();
        let id = SecretId::generate();
        let rec = ring.seal(id, &Plaintext(b"hunter2".to_vec()));
        assert!(!rec.ciphertext.contains("hunter2"));
        assert_eq!(ring.open(&rec).unwrap().0, b"hunter2");
        // Bound to its row: the same ciphertext under another ID fails.
        let moved = SecretRecord { id: SecretId::generate(), ..rec.clone() };
        assert!(matches!(ring.open(&moved), Err(SecretError::Corrupt(..))));
        // A keyring without the sealing key says which key is missing.
        let other = Keyring::parse(&new_key_line()).unwrap();
        assert!(matches!(other.open(&rec), Err(SecretError::UnknownKey(..))));
        assert_eq!(format!("{:?}", Plaintext(b"hunter2".to_vec())), "Plaintext(<redacted>)");
    }

    #[test]
    fn bad_key_files_say_what_to_write() {
        assert!(Keyring::parse("").unwrap_err().contains("no keys"));
        assert!(Keyring::parse("k1:AAAA").unwrap_err().contains("32 bytes"));
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("k");
        std::fs::write(&f, new_key_line()).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(Keyring::load_or_create(&f).unwrap_err().to_string().contains("chmod 600"));
        let fresh = dir.path().join("new.key");
        Keyring::load_or_create(&fresh).unwrap();
        assert_eq!(std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
