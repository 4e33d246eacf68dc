//! A file server tundrad manages over SSH (the NFS-Ganesha and GlusterFS
//! backends): key login, the host key pinned, one command per exec channel
//! with its exit status the verdict — the same session the Linux switches
//! use.

use std::sync::Arc;
use std::time::Duration;

use super::ShareError;
use crate::bmc::Password;
use crate::switch::HostKey;
use crate::switch::cli::Secret;
use crate::switch::exec::Session;

/// How long one command may take (a GlusterFS volume start is the slowest, ~2 s).
const TIMEOUT: Duration = Duration::from_secs(60);

/// Where and how to log in. Sessions opened through one `Remote` (and its
/// clones) take turns: the exports file is read, changed and written whole,
/// and glusterd refuses a second transaction while one runs.
#[derive(Clone)]
pub struct Remote {
    /// `HOST:PORT` of its sshd.
    pub address: String,
    pub username: String,
    /// Its host key, `SHA256:…` as `ssh-keygen -l` prints it.
    pub host_key: String,
    /// The private key (OpenSSH format) tundrad logs in with.
    pub key: Password,
    turn: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote").field("address", &self.address).field("username", &self.username).finish()
    }
}

/// A command that ran and failed: its exit status and output.
#[derive(Debug)]
pub struct Failed {
    pub status: u32,
    pub output: String,
}

impl Remote {
    pub fn new(address: String, username: String, host_key: String, key: Password) -> Remote {
        Remote { address, username, host_key, key, turn: Arc::default() }
    }

    /// Run `f` in a session of its own, closed after it.
    pub async fn session<T>(&self, f: impl AsyncFnOnce(&mut Server) -> Result<T, ShareError>) -> Result<T, ShareError> {
        let mut s = self.open().await?;
        let out = f(&mut s).await;
        s.close().await;
        out
    }

    /// A session, once the previous one through this `Remote` has closed.
    pub async fn open(&self) -> Result<Server, ShareError> {
        let turn = self.turn.clone().lock_owned().await;
        let pin = HostKey::Pinned(self.host_key.clone());
        let s = Session::open(&self.address, &self.username, Secret::Key(&self.key), &pin, TIMEOUT)
            .await
            .map_err(|e| ShareError::Unavailable(e.to_string().replace("the switch", "the file server")))?;
        Ok(Server { session: s, _turn: turn })
    }
}

/// A logged-in session with the file server (its turn held until closed).
pub struct Server {
    session: Session,
    _turn: tokio::sync::OwnedMutexGuard<()>,
}

impl Server {
    /// Run `command` (a shell command line); its output, or how it failed.
    pub async fn run(&mut self, command: &str, input: Option<&[u8]>) -> Result<Result<String, Failed>, ShareError> {
        let (status, output) = self
            .session
            .run_with(command, input)
            .await
            .map_err(|e| ShareError::Unavailable(e.to_string().replace("the switch", "the file server")))?;
        Ok(if status == 0 { Ok(output) } else { Err(Failed { status, output }) })
    }

    /// Run `command`; a failure is the backend refusing it.
    pub async fn must(&mut self, command: &str, input: Option<&[u8]>) -> Result<String, ShareError> {
        self.run(command, input).await?.map_err(|f| {
            ShareError::Refused(format!("the file server refused `{command}` (exit {}): {}", f.status, f.output.trim()))
        })
    }

    pub async fn close(self) {
        self.session.close().await
    }
}

/// A word for the shell, quoted.
pub fn q(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn words_are_quoted_for_the_shell() {
        assert_eq!(super::q("/srv/a b"), "'/srv/a b'");
        assert_eq!(super::q("it's"), r"'it'\''s'");
    }
}
