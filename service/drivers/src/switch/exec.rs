//! Hosts that are switches (SONiC, Cumulus, the lab's Linux bridge host):
//! one SSH connection, each command on its own exec channel, its exit
//! status the verdict.

use std::time::Duration;

use russh::ChannelMsg;
use russh::client::Handle;

use super::cli::{Client, Secret, connect};
use super::error::{HostKey, SwitchError};

pub struct Session {
    handle: Handle<Client>,
    timeout: Duration,
    pub host_key: String,
}

impl Session {
    pub(crate) async fn open(
        address: &str,
        username: &str,
        secret: Secret<'_>,
        pin: &HostKey,
        timeout: Duration,
    ) -> Result<Session, SwitchError> {
        let (handle, host_key) = connect(address, username, secret, pin, timeout).await?;
        Ok(Session { handle, timeout, host_key })
    }

    /// Run one command: (exit status, stdout + stderr).
    pub async fn run(&mut self, command: &str) -> Result<(u32, String), SwitchError> {
        self.run_with(command, None).await
    }

    /// Run one command with `input` on its standard input (then end of file).
    pub async fn run_with(&mut self, command: &str, input: Option<&[u8]>) -> Result<(u32, String), SwitchError> {
        let mut ch = self
            .handle
            .channel_open_session()
            .await
            .map_err(|e| SwitchError::Connect(format!("opening a channel: {e}")))?;
        ch.exec(true, command).await.map_err(|e| SwitchError::Connect(format!("running {command:?}: {e}")))?;
        if let Some(input) = input {
            ch.data(input).await.map_err(|e| SwitchError::Connect(format!("sending input to {command:?}: {e}")))?;
            ch.eof().await.map_err(|e| SwitchError::Connect(format!("ending input to {command:?}: {e}")))?;
        }
        let (mut out, mut status) = (Vec::new(), None);
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            match tokio::time::timeout_at(deadline, ch.wait()).await {
                Err(_) => return Err(SwitchError::Timeout(format!("waiting {:?} for {command:?}", self.timeout))),
                Ok(Some(ChannelMsg::Data { data }) | Some(ChannelMsg::ExtendedData { data, .. })) => {
                    out.extend_from_slice(&data)
                }
                Ok(Some(ChannelMsg::ExitStatus { exit_status })) => status = Some(exit_status),
                Ok(Some(ChannelMsg::Close) | None) => break,
                Ok(Some(_)) => {}
            }
        }
        let status = status.ok_or_else(|| SwitchError::Connect(format!("{command:?} ended without an exit status")))?;
        Ok((status, String::from_utf8_lossy(&out).into_owned()))
    }

    pub async fn close(self) {
        super::cli::hang_up(self.handle).await;
    }
}
