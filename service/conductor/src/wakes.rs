//! Wake-ups between workers: "something you care about changed, look
//! now" — each also relayed to the other replicas (`replicas::relay`),
//! since the worker may run on another one. A leaf: it knows no flows.

use std::sync::Arc;

use tokio::sync::Notify;

/// Signals between workers: "something you care about changed, look now".
/// With replicas, the worker may run on another replica: each wake-up is
/// also relayed to the others (`replicas::relay`).
#[derive(Debug)]
pub struct Wakes {
    /// The node reconciler (a machine operation ended, a node changed).
    pub nodes: Wake,
    /// The fabric worker (a node's networks changed, a repair was asked for).
    pub fabric: Wake,
    /// The DHCP reservation refresh (a node got or lost an address).
    pub netboot: Wake,
    /// The share worker (a share, rule, snapshot or node mount changed).
    pub shares: Wake,
    /// The cluster reconciler (a cluster changed, a node moved on, a node's agent reported).
    pub clusters: Wake,
    /// The appliance reconciler (an appliance changed, a node moved on, a node's agent reported).
    pub appliances: Wake,
}

/// Where wake-ups go to be relayed to the other replicas (once the relay runs).
type Relay = Arc<std::sync::Mutex<Option<tokio::sync::mpsc::UnboundedSender<&'static str>>>>;

/// One kind of wake-up.
#[derive(Debug)]
pub struct Wake {
    name: &'static str,
    here: Notify,
    relay: Relay,
}

impl Wake {
    /// Wake the worker, here and on the other replicas.
    pub fn notify_one(&self) {
        self.here.notify_one();
        if let Some(tx) = &*self.relay.lock().expect("relay lock") {
            let _ = tx.send(self.name);
        }
    }

    /// Wait for a wake-up.
    pub fn notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.here.notified()
    }
}

impl Default for Wakes {
    fn default() -> Self {
        let relay = Relay::default();
        let wake = |name| Wake { name, here: Notify::new(), relay: relay.clone() };
        Wakes {
            nodes: wake("nodes"),
            fabric: wake("fabric"),
            netboot: wake("netboot"),
            shares: wake("shares"),
            clusters: wake("clusters"),
            appliances: wake("appliances"),
        }
    }
}

impl Wakes {
    /// Relay every wake-up to `tx` from now on.
    pub(crate) fn relay_to(&self, tx: tokio::sync::mpsc::UnboundedSender<&'static str>) {
        *self.nodes.relay.lock().expect("relay lock") = Some(tx);
    }

    /// A wake-up another replica relayed: woken here only.
    pub(crate) fn relayed(&self, name: &str) {
        let all = [&self.nodes, &self.fabric, &self.netboot, &self.shares, &self.clusters, &self.appliances];
        if let Some(w) = all.into_iter().find(|w| w.name == name) {
            w.here.notify_one();
        }
    }
}
