//! NETCONF 1.0 over SSH (the `netconf` subsystem, `]]>]]>` framing), for
//! switches configured through a candidate datastore (Junos): an edit is
//! loaded into the candidate and committed, or discarded whole.

use std::time::Duration;

use russh::ChannelMsg;
use russh::client::Handle;

use super::cli::{Client, Secret, connect};
use super::error::{HostKey, SwitchError};

const END: &str = "]]>]]>";
const BASE: &str = "urn:ietf:params:xml:ns:netconf:base:1.0";

pub struct Session {
    handle: Handle<Client>,
    channel: russh::Channel<russh::client::Msg>,
    timeout: Duration,
    next_id: u64,
    pending: String,
    pub host_key: String,
}

/// Text between `<tag>` and `</tag>` (first occurrence), for error messages.
fn element<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = xml.find(&format!("<{tag}"))?;
    let start = open + xml[open..].find('>')? + 1;
    let end = start + xml[start..].find(&format!("</{tag}>"))?;
    Some(xml[start..end].trim())
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
        let channel =
            handle.channel_open_session().await.map_err(|e| SwitchError::Connect(format!("{address}: {e}")))?;
        channel
            .request_subsystem(true, "netconf")
            .await
            .map_err(|e| SwitchError::Connect(format!("{address}: no NETCONF subsystem: {e}")))?;
        let mut s = Session { handle, channel, timeout, next_id: 1, pending: String::new(), host_key };
        let hello = s.message("the server's hello").await?;
        // Junos names base 1.0 the old way (`urn:ietf:params:xml:ns:netconf:base:1.0`).
        if !hello.contains("netconf:base:1.0") {
            return Err(SwitchError::Connect(format!("{address}: the NETCONF hello offers no base:1.0: {hello}")));
        }
        if !hello.contains("capability:candidate:1.0") {
            return Err(SwitchError::Connect(format!(
                "{address}: the switch offers no candidate datastore; this dialect edits the candidate and commits"
            )));
        }
        s.send(&format!(
            "<hello xmlns=\"{BASE}\"><capabilities><capability>urn:ietf:params:netconf:base:1.0</capability></capabilities></hello>"
        ))
        .await?;
        Ok(s)
    }

    async fn send(&mut self, xml: &str) -> Result<(), SwitchError> {
        self.channel
            .data_bytes(format!("{xml}\n{END}\n").into_bytes())
            .await
            .map_err(|e| SwitchError::Connect(format!("sending NETCONF: {e}")))
    }

    /// The next framed message.
    async fn message(&mut self, what: &str) -> Result<String, SwitchError> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            if let Some(i) = self.pending.find(END) {
                let msg = self.pending[..i].trim().to_string();
                self.pending.drain(..i + END.len());
                return Ok(msg);
            }
            match tokio::time::timeout_at(deadline, self.channel.wait()).await {
                Err(_) => return Err(SwitchError::Timeout(format!("waiting {:?} for {what}", self.timeout))),
                Ok(Some(ChannelMsg::Data { data })) => self.pending.push_str(&String::from_utf8_lossy(&data)),
                Ok(Some(ChannelMsg::Eof | ChannelMsg::Close) | None) => {
                    return Err(SwitchError::Connect(format!("the switch closed the NETCONF session while {what}")));
                }
                Ok(Some(_)) => {}
            }
        }
    }

    /// One RPC; its reply, or the `<rpc-error>` as a command error.
    pub async fn rpc(&mut self, body: &str, port: Option<&str>) -> Result<String, SwitchError> {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&format!("<rpc message-id=\"{id}\" xmlns=\"{BASE}\">{body}</rpc>")).await?;
        let reply = self.message("an RPC reply").await?;
        if reply.contains("<rpc-error") {
            let line = element(&reply, "error-message")
                .or_else(|| element(&reply, "error-tag"))
                .unwrap_or("rpc-error without a message")
                .to_string();
            return Err(SwitchError::Command {
                port: port.map(String::from),
                command: body.chars().take(200).collect(),
                line,
                output: reply,
            });
        }
        Ok(reply)
    }

    pub async fn close(mut self) {
        let _ = self.rpc("<close-session/>", None).await;
        let _ = self.channel.eof().await;
        super::cli::hang_up(self.handle).await;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn elements_are_found_with_attributes_and_namespaces() {
        let r = "<rpc-reply><rpc-error><error-tag>invalid-value</error-tag><error-message xml:lang=\"en\">port value outside range</error-message></rpc-error></rpc-reply>";
        assert_eq!(super::element(r, "error-message"), Some("port value outside range"));
        assert_eq!(super::element(r, "error-tag"), Some("invalid-value"));
        assert_eq!(super::element(r, "nothing"), None);
    }
}
