//! Clusters: Kubernetes (k3s) or Docker Swarm on a project's nodes — the
//! words their wire form uses. (The cluster objects and routes come with
//! the conductor's cluster flows; `tundra_engine::clusters` holds the rules.)

words! {
    /// What runs the cluster.
    pub enum ClusterKind {
        /// k3s, installed air-gapped from a bundle the site registers as an image.
        Kubernetes = "kubernetes",
        /// Docker Swarm, with Docker from the node image.
        Swarm = "swarm",
    }
}

words! {
    /// A node group's part in the cluster.
    pub enum GroupRole {
        /// Kubernetes servers / Swarm managers.
        ControlPlane = "control_plane",
        /// Kubernetes agents / Swarm workers.
        Worker = "worker",
    }
}

words! {
    /// Where a cluster stands, judged from its nodes' reports and the
    /// control plane's own view of its members.
    pub enum ClusterStatus {
        /// Nodes still deploying or joining; the reason names which.
        Creating = "creating",
        /// Every node joined and the control plane sees each one ready.
        Active = "active",
        /// Some node failed (deploy, join, or not ready); the reason names it.
        Degraded = "degraded",
        /// A group is being scaled or a node replaced.
        Updating = "updating",
        Deleting = "deleting",
    }
}

words! {
    /// One node's way into the cluster.
    pub enum MemberState {
        /// Its node is being deployed.
        Deploying = "deploying",
        /// Deployed; its cluster agent has not reported joining yet.
        Joining = "joining",
        Joined = "joined",
        /// Its deploy or its join failed (the member's reason says which).
        Failed = "failed",
        /// Being drained and removed (scale-down or replacement).
        Leaving = "leaving",
    }
}
