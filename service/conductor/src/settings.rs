//! What the conductor is told: the part of tundrad's configuration its
//! flows and workers use, already parsed (durations, addresses, rules).
//! tundrad builds it from its config file; tests build it with [`Settings::new`].

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use tundra_engine::inspection::Rule;

#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    /// Where images live (default `DATA_DIR/images`); replicas share it.
    pub images_dir: PathBuf,
    /// Largest image, in bytes (uploads and fetches; for qcow2, also its virtual size).
    pub max_image_bytes: u64,
    /// Every project's limits unless it has its own.
    pub quota: tundra_store::QuotaLimits,
    /// How long fetching one image may take in all.
    pub image_fetch_timeout: Duration,
    pub image_convert: ImageConvert,
    /// URL prefixes images may be fetched from; empty: fetching is off.
    pub image_source_allow: Vec<String>,
    pub power_sync_interval: Duration,
    /// Consecutive failed power reads before tundrad puts a machine into maintenance.
    pub power_sync_failures: i64,
    /// How machine operations retry BMC calls that fail transiently (`bmc_retry_window`).
    pub bmc_retry: tundra_drivers::retry::Backoff,
    /// How often the node reconciler and the timeout reconciler pass.
    pub reconcile_interval: Duration,
    /// How often every switch's managed ports are read back.
    pub fabric_read_interval: Duration,
    /// How often a deployed node asks the metadata service for changes to its share mounts.
    pub node_mount_refresh: Duration,
    /// How long a freed segment rests before a new network may get it.
    pub segment_quarantine: Duration,
    /// Per switch command (and connecting).
    pub switch_timeout: Duration,
    /// How long a replica's hold on an operation or a loop lasts unrenewed.
    pub replica_lease: Duration,
    /// Multiplies every provision-state timeout.
    pub machine_timeout_scale: f64,
    pub agent: AgentBoot,
    /// The provisioning network nodes get their address on; none: no
    /// provisioning network is served.
    pub node_network: Option<NodeNetwork>,
    pub discovery: Discovery,
    /// The site's inspection rules, checked at load.
    pub inspection_rules: Vec<Rule>,
    /// Machines may be enrolled with the `fake` BMC driver (benchmarks, dry runs).
    pub fake_hardware: bool,
}

/// The limits `qemu-img` runs under.
#[derive(Debug, Clone, Copy)]
pub struct ImageConvert {
    /// Wall-clock (and CPU) time per run.
    pub timeout: Duration,
    /// Address space (`prlimit --as`).
    pub memory_bytes: u64,
}

/// How a machine boots into the agent.
#[derive(Debug, Clone)]
pub struct AgentBoot {
    /// Kernel and initramfs file names, served at `/boot/assets/FILE`.
    pub kernel: String,
    pub initrd: String,
    /// Extra kernel arguments, e.g. `console=ttyS0,115200`.
    pub kernel_args: String,
    /// How long inspection listens for LLDP on each NIC (zero: not at all).
    pub lldp_wait: Duration,
    /// How long a machine booting the agent may stay silent before it is rebooted into it again.
    pub boot_timeout: Duration,
}

/// The provisioning network as nodes see it.
#[derive(Debug, Clone)]
pub struct NodeNetwork {
    /// Fixed addresses for nodes `(first, last)`; none: nodes use DHCP.
    pub pool: Option<(Ipv4Addr, Ipv4Addr)>,
    pub prefix: u8,
    pub mtu: u32,
    pub router: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
}

/// Enrolling machines that network-boot with a MAC tundrad does not know.
#[derive(Debug, Clone, Default)]
pub struct Discovery {
    pub enabled: bool,
    /// The BMC password of discovered machines, one line.
    pub bmc_password_file: Option<PathBuf>,
}

impl Settings {
    /// tundrad's defaults, with data under `data_dir`.
    pub fn new(data_dir: PathBuf) -> Settings {
        Settings {
            images_dir: data_dir.join("images"),
            data_dir,
            max_image_bytes: 64 * 1024 * 1024 * 1024,
            quota: tundra_store::QuotaLimits::NONE,
            image_fetch_timeout: Duration::from_secs(6 * 3600),
            image_convert: ImageConvert { timeout: Duration::from_secs(3600), memory_bytes: 2 << 30 },
            image_source_allow: Vec::new(),
            power_sync_interval: Duration::from_secs(60),
            power_sync_failures: 3,
            bmc_retry: tundra_drivers::retry::Backoff::within(Duration::from_secs(60)),
            reconcile_interval: Duration::from_secs(10),
            fabric_read_interval: Duration::from_secs(300),
            node_mount_refresh: Duration::from_secs(60),
            segment_quarantine: Duration::from_secs(1800),
            switch_timeout: Duration::from_secs(30),
            replica_lease: Duration::from_secs(15),
            machine_timeout_scale: 1.0,
            agent: AgentBoot {
                kernel: "vmlinuz".into(),
                initrd: "initramfs".into(),
                kernel_args: String::new(),
                lldp_wait: Duration::ZERO,
                boot_timeout: Duration::from_secs(300),
            },
            node_network: None,
            discovery: Discovery::default(),
            inspection_rules: Vec::new(),
            fake_hardware: false,
        }
    }

    pub fn images_dir(&self) -> PathBuf {
        self.images_dir.clone()
    }
}
