//! One SSH shell session with a switch CLI (russh): log in with a password,
//! check the host key against its pin, then send a command at a time and
//! read until the prompt comes back.

use std::sync::Arc;
use std::time::Duration;

use regex::Regex;
use russh::ChannelMsg;
use russh::client::{self, Handle};
use russh::keys::{HashAlg, PublicKeyOrCertificate};

use super::{HostKey, SwitchError};
use crate::bmc::Password;

/// Prompts of the CLIs we speak: `name>`, `name#`, `name(config-if)#`,
/// `SSH@name>`; at the end of the output, maybe followed by a space.
const PROMPT: &str = r"(?:^|[\r\n])[A-Za-z0-9_.@:/\-]+(?:\([^)\r\n]*\))?[>#] ?$";

struct Client {
    pin: HostKey,
    seen: Arc<std::sync::Mutex<Option<String>>>,
}

impl client::Handler for Client {
    type Error = russh::Error;

    async fn check_server_key(&mut self, key: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        let fp = match key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key.fingerprint(HashAlg::Sha256).to_string(),
            PublicKeyOrCertificate::Certificate(c) => c.public_key().fingerprint(HashAlg::Sha256).to_string(),
        };
        if let Ok(mut s) = self.seen.lock() {
            *s = Some(fp.clone());
        }
        Ok(match &self.pin {
            HostKey::Pinned(want) => *want == fp,
            HostKey::Learn => true,
        })
    }
}

/// A logged-in CLI session, in privileged mode.
pub struct Session {
    handle: Handle<Client>,
    channel: russh::Channel<client::Msg>,
    prompt: Regex,
    timeout: Duration,
    /// The host key's fingerprint (`SHA256:…`).
    pub host_key: String,
}

fn strip(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(raw);
    // Terminal control sequences (cursor moves, erase) the shell may send.
    let ansi = Regex::new(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\x07").expect("literal regex");
    ansi.replace_all(&s, "").replace('\r', "")
}

impl Session {
    /// Connect, check the host key, log in, and reach privileged mode.
    pub async fn open(
        address: &str,
        username: &str,
        password: &Password,
        pin: &HostKey,
        enable: Option<&str>,
        timeout: Duration,
    ) -> Result<Session, SwitchError> {
        let config = Arc::new(client::Config { inactivity_timeout: Some(timeout * 4), ..Default::default() });
        let seen = Arc::new(std::sync::Mutex::new(None));
        let handler = Client { pin: pin.clone(), seen: seen.clone() };
        let connect = client::connect(config, address, handler);
        let mut handle = match tokio::time::timeout(timeout, connect).await {
            Err(_) => return Err(SwitchError::Connect(format!("{address}: no SSH answer within {timeout:?}"))),
            Ok(Err(e)) => {
                let got = seen.lock().ok().and_then(|s| s.clone());
                return Err(match (got, pin) {
                    (Some(got), HostKey::Pinned(want)) if got != *want => {
                        SwitchError::HostKey { address: address.into(), want: want.clone(), got }
                    }
                    _ => SwitchError::Connect(format!("{address}: {e}")),
                });
            }
            Ok(Ok(h)) => h,
        };
        let host_key = seen.lock().ok().and_then(|s| s.clone()).unwrap_or_default();
        let auth = handle
            .authenticate_password(username, password.0.clone())
            .await
            .map_err(|e| SwitchError::Connect(format!("{address}: {e}")))?;
        if !auth.success() {
            return Err(SwitchError::Auth(format!("{address} refused user {username:?} with the configured password")));
        }
        let channel =
            handle.channel_open_session().await.map_err(|e| SwitchError::Connect(format!("{address}: {e}")))?;
        channel
            .request_pty(false, "vt100", 512, 50, 0, 0, &[])
            .await
            .map_err(|e| SwitchError::Connect(format!("{address}: {e}")))?;
        channel.request_shell(false).await.map_err(|e| SwitchError::Connect(format!("{address}: {e}")))?;
        let mut s = Session { handle, channel, prompt: Regex::new(PROMPT).expect("literal regex"), timeout, host_key };
        let banner = s.read_until(&s.prompt.clone(), "the login prompt").await?;
        // From now on the prompt is this switch's own name in any mode
        // (`name>`, `name#`, `name(config-if)#`), wherever it starts: some
        // CLIs print it straight after their output, without a newline.
        let last = banner.trim_end().lines().last().unwrap_or_default().trim();
        let base = last.trim_end_matches(['>', '#']);
        let base = base.split_once('(').map(|(b, _)| b).unwrap_or(base);
        s.prompt = Regex::new(&format!(r"{}(?:\([^)\r\n]*\))?[>#] ?$", regex::escape(base))).expect("escaped name");
        if banner.trim_end().ends_with('>')
            && let Some(cmd) = enable
        {
            s.send(cmd).await?;
            let pw = Regex::new(r"[Pp]assword: ?$").expect("literal regex");
            let either = Regex::new(&format!("{}|{}", pw.as_str(), s.prompt.as_str())).expect("literal regex");
            let out = s.read_until(&either, "the enable password prompt").await?;
            if pw.is_match(&out) {
                s.send(&password.0).await?;
                let out = s.read_until(&s.prompt.clone(), "the privileged prompt").await?;
                if !out.trim_end().ends_with('#') {
                    return Err(SwitchError::Auth(format!("{address}: enable refused the password")));
                }
            }
        }
        Ok(s)
    }

    async fn send(&mut self, line: &str) -> Result<(), SwitchError> {
        self.channel
            .data_bytes(format!("{line}\n").into_bytes())
            .await
            .map_err(|e| SwitchError::Connect(format!("sending {line:?}: {e}")))
    }

    /// Read until `until` matches the end of what came (stripped of control sequences).
    async fn read_until(&mut self, until: &Regex, what: &str) -> Result<String, SwitchError> {
        let mut buf: Vec<u8> = Vec::new();
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            let text = strip(&buf);
            if until.is_match(&text) {
                return Ok(text);
            }
            match tokio::time::timeout_at(deadline, self.channel.wait()).await {
                Err(_) => {
                    return Err(SwitchError::Timeout(format!(
                        "waiting {:?} for {what}; the switch said: {:?}",
                        self.timeout,
                        text.chars().rev().take(200).collect::<String>().chars().rev().collect::<String>()
                    )));
                }
                Ok(Some(ChannelMsg::Data { data }) | Some(ChannelMsg::ExtendedData { data, .. })) => {
                    buf.extend_from_slice(&data)
                }
                Ok(Some(ChannelMsg::Eof | ChannelMsg::Close) | None) => {
                    return Err(SwitchError::Connect(format!("the switch closed the session while {what}")));
                }
                Ok(Some(_)) => {}
            }
        }
    }

    /// Run one command; its output without the echo and the prompt.
    pub async fn run(&mut self, command: &str) -> Result<String, SwitchError> {
        self.send(command).await?;
        let prompt = self.prompt.clone();
        let text = self.read_until(&prompt, &format!("the prompt after {command:?}")).await?;
        // Drop the prompt (which may follow the output on its last line) and the echo.
        let body = match prompt.find(&text) {
            Some(m) => &text[..m.start()],
            None => text.as_str(),
        };
        let mut lines: Vec<&str> = body.lines().collect();
        if lines.first().is_some_and(|l| l.trim_end().ends_with(command.trim())) {
            lines.remove(0);
        }
        Ok(lines.join("\n"))
    }

    pub async fn close(self) {
        let _ = self.channel.eof().await;
        let _ = self.handle.disconnect(russh::Disconnect::ByApplication, "", "en").await;
    }
}
