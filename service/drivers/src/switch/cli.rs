//! One SSH shell session with a switch CLI (russh): log in with a password,
//! check the host key against its pin, then send a command at a time and
//! read until the prompt comes back.

use std::sync::Arc;
use std::time::Duration;

use regex::Regex;
use russh::ChannelMsg;
use russh::client::{self, Handle};
use russh::keys::{HashAlg, PublicKeyOrCertificate};

use super::error::{HostKey, SwitchError};
use crate::bmc::Password;

/// Prompts of the CLIs we speak: `name>`, `name#`, `name(config-if)#`,
/// `SSH@name>`; at the end of the output, maybe followed by a space.
const PROMPT: &str = r"(?:^|[\r\n])[A-Za-z0-9_.@:/\-]+(?:\([^)\r\n]*\))?[>#] ?$";

pub(crate) struct Client {
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

/// End an SSH connection: say goodbye, then wait (a few seconds at most)
/// until it is closed, so that the next session to the switch never
/// overlaps it — switches count sessions until their connection closes.
pub(crate) async fn hang_up(mut handle: Handle<Client>) {
    let _ = handle.disconnect(russh::Disconnect::ByApplication, "", "en").await;
    let _ = tokio::time::timeout(Duration::from_secs(5), &mut handle).await;
}

/// A logged-in CLI session, in privileged mode.
pub struct Session {
    handle: Handle<Client>,
    channel: russh::Channel<client::Msg>,
    /// The switch's prompt at the end of its output.
    prompt: Regex,
    /// The same, anywhere (to split pipelined answers).
    prompt_any: Regex,
    /// The prompt the switch showed last: its mode.
    last_prompt: String,
    timeout: Duration,
    /// The host key's fingerprint (`SHA256:…`).
    pub host_key: String,
}

/// Terminal control sequences (cursor moves, erase) a shell may send.
static ANSI: std::sync::LazyLock<Regex> =
    std::sync::LazyLock::new(|| Regex::new(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\x07").expect("literal regex"));

fn strip(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(raw);
    ANSI.replace_all(&s, "").replace('\r', "")
}

/// An authenticated SSH connection whose host key passed its pin, and that key.
pub(crate) async fn connect(
    address: &str,
    username: &str,
    secret: Secret<'_>,
    pin: &HostKey,
    timeout: Duration,
) -> Result<(Handle<Client>, String), SwitchError> {
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
    let (auth, what) = match secret {
        Secret::Password(p) => (handle.authenticate_password(username, p.0.clone()).await, "password"),
        Secret::Key(k) => {
            let key = russh::keys::PrivateKey::from_openssh(k.0.as_bytes())
                .map_err(|e| SwitchError::Auth(format!("the switch's private key does not parse: {e}")))?;
            let key = russh::keys::PrivateKeyWithHashAlg::new(Arc::new(key), Some(HashAlg::Sha256));
            (handle.authenticate_publickey(username, key).await, "key")
        }
    };
    let auth = auth.map_err(|e| SwitchError::Connect(format!("{address}: {e}")))?;
    if !auth.success() {
        return Err(SwitchError::Auth(format!("{address} refused user {username:?} with the configured {what}")));
    }
    Ok((handle, host_key))
}

/// How to log in: a password, or a private key (OpenSSH format).
#[derive(Clone, Copy)]
pub(crate) enum Secret<'a> {
    Password(&'a Password),
    Key(&'a Password),
}

impl Session {
    /// Connect, check the host key, log in, and reach privileged mode.
    pub(crate) async fn open(
        address: &str,
        username: &str,
        (secret, password): (Secret<'_>, &Password),
        pin: &HostKey,
        enable: Option<&str>,
        timeout: Duration,
    ) -> Result<Session, SwitchError> {
        let (handle, host_key) = connect(address, username, secret, pin, timeout).await?;
        let channel =
            handle.channel_open_session().await.map_err(|e| SwitchError::Connect(format!("{address}: {e}")))?;
        channel
            .request_pty(false, "vt100", 512, 50, 0, 0, &[])
            .await
            .map_err(|e| SwitchError::Connect(format!("{address}: {e}")))?;
        channel.request_shell(false).await.map_err(|e| SwitchError::Connect(format!("{address}: {e}")))?;
        let generic = Regex::new(PROMPT).expect("literal regex");
        let mut s = Session {
            handle,
            channel,
            prompt: generic.clone(),
            prompt_any: generic,
            last_prompt: String::new(),
            timeout,
            host_key,
        };
        let banner = s.read_until(&s.prompt.clone(), "the login prompt").await?;
        // From now on the prompt is this switch's own name in any mode
        // (`name>`, `name#`, `name(config-if)#`), wherever it starts: some
        // CLIs print it straight after their output, without a newline.
        let last = banner.trim_end().lines().last().unwrap_or_default().trim();
        let base = last.trim_end_matches(['>', '#']);
        let base = base.split_once('(').map(|(b, _)| b).unwrap_or(base);
        let any = format!(r"{}(?:\([^)\r\n]*\))?[>#] ?", regex::escape(base));
        s.prompt = Regex::new(&format!("{any}$")).expect("escaped name");
        s.prompt_any = Regex::new(&any).expect("escaped name");
        s.last_prompt = last.to_string();
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
        Ok(self.run_many(&[command.to_string()]).await?.remove(0))
    }

    /// Send several commands at once (the switch takes them as typed
    /// ahead) and split the answer at its prompts: each command's output,
    /// without the echo and the prompt. One round trip for the lot.
    pub async fn run_many(&mut self, commands: &[String]) -> Result<Vec<String>, SwitchError> {
        let n = commands.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        let typed: String = commands.iter().map(|c| format!("{c}\n")).collect();
        self.channel
            .data_bytes(typed.into_bytes())
            .await
            .map_err(|e| SwitchError::Connect(format!("sending {:?}: {e}", commands[0])))?;
        let wait = self.timeout.max(Duration::from_millis(200) * n as u32);
        let deadline = tokio::time::Instant::now() + wait;
        // The answer grows chunk by chunk (a CLI may echo one character per
        // packet): strip and scan only what is new, so a long batch stays linear.
        let mut text = String::new();
        let mut found: Vec<(usize, usize)> = Vec::new();
        loop {
            if found.len() >= n && self.prompt.is_match(&text) {
                let mut out = Vec::with_capacity(n);
                let mut start = 0;
                for (i, (a, b)) in found.iter().take(n).enumerate() {
                    let mut lines: Vec<&str> = text[start..*a].lines().collect();
                    if lines.first().is_some_and(|l| l.trim_end().ends_with(commands[i].trim())) {
                        lines.remove(0);
                    }
                    out.push(lines.join("\n"));
                    start = *b;
                    if i == n - 1 {
                        self.last_prompt = text[*a..*b].trim().to_string();
                    }
                }
                return Ok(out);
            }
            match tokio::time::timeout_at(deadline, self.channel.wait()).await {
                Err(_) => {
                    return Err(SwitchError::Timeout(format!(
                        "waiting {wait:?} for the prompt after {:?}; the switch said: {:?}",
                        commands[found.len().min(n - 1)],
                        text.chars().rev().take(200).collect::<String>().chars().rev().collect::<String>()
                    )));
                }
                Ok(Some(ChannelMsg::Data { data }) | Some(ChannelMsg::ExtendedData { data, .. })) => {
                    // Rescan a little of the old text: a prompt may have arrived in pieces.
                    let mut from = text.len().saturating_sub(128);
                    while !text.is_char_boundary(from) {
                        from -= 1;
                    }
                    text.push_str(&strip(&data));
                    let last = found.last().map(|f| f.0);
                    for m in self.prompt_any.find_iter(&text[from..]) {
                        let (a, b) = (from + m.start(), from + m.end());
                        match found.last_mut() {
                            // The same prompt, grown by a trailing space.
                            Some(f) if f.0 == a => f.1 = b,
                            _ if last.is_some_and(|l| a <= l) => {}
                            _ => found.push((a, b)),
                        }
                    }
                }
                Ok(Some(ChannelMsg::Eof | ChannelMsg::Close) | None) => {
                    return Err(SwitchError::Connect(format!(
                        "the switch closed the session after {:?}",
                        commands[found.len().min(n - 1)]
                    )));
                }
                Ok(Some(_)) => {}
            }
        }
    }

    /// In configuration mode (any level)?
    pub fn in_config(&self) -> bool {
        self.last_prompt.contains("(config")
    }

    /// In a configuration sub-mode (an interface, a VLAN)?
    pub fn in_submode(&self) -> bool {
        self.last_prompt.contains("(config-")
    }

    pub async fn close(self) {
        let _ = self.channel.eof().await;
        hang_up(self.handle).await;
    }
}
