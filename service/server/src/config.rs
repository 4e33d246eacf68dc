//! Configuration: a TOML file (`--config` / `TUNDRA_CONFIG`), then
//! environment variables, then command-line flags — later wins. Every key has
//! a default, so `tundrad` with no configuration runs on a SQLite file in its
//! data dir. `docs/guides/configuration.md` documents every key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use tundra_api::identity::Role;

/// Everything `tundrad` can be told.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the API listens. Port 0 picks a free port.
    pub listen: SocketAddr,
    /// The data dir: SQLite file, images, key file and admin token by default.
    pub data_dir: PathBuf,
    /// `sqlite://PATH` or `postgres://USER:PASSWORD@HOST/DB`; default a SQLite file in the data dir.
    pub database_url: Option<String>,
    /// Where images are kept (default `DATA_DIR/images`). Replicas share
    /// one: a shared filesystem (CephFS, NFS) mounted on each.
    pub images_dir: Option<PathBuf>,
    /// File with the secret-sealing keys (created with one fresh key when missing).
    pub secrets_key_file: Option<PathBuf>,
    /// Where the first start writes the bootstrap admin's token (mode 0600).
    pub admin_token_file: Option<PathBuf>,
    /// Serve HTTPS with this PEM certificate chain…
    pub tls_cert_file: Option<PathBuf>,
    /// …and this PEM private key (both or neither).
    pub tls_key_file: Option<PathBuf>,
    /// Largest JSON request body, in bytes.
    pub max_body_bytes: usize,
    /// Largest image, in bytes (uploads and fetches; for qcow2, also its virtual size).
    pub max_image_bytes: u64,
    /// How long fetching one image from its source URL may take in all
    /// (a source that stops sending for 60 s is dropped sooner).
    pub image_fetch_timeout: String,
    /// How long `qemu-img` may run on one image (info or convert) before it is killed.
    pub image_convert_timeout: String,
    /// The address space `qemu-img` may use, in MiB (`prlimit --as`).
    pub image_convert_memory_mib: u64,
    /// URL prefixes images may be fetched from, e.g. `https://images.example.org/`.
    /// Empty: fetching is off (uploads still work).
    pub image_source_allow: Vec<String>,
    /// Default and largest API token lifetime, e.g. `30d`, `12h`.
    pub token_ttl: String,
    pub token_max_ttl: String,
    /// OIDC identity providers whose bearer JWTs are accepted.
    pub identity_providers: Vec<IdentityProvider>,
    /// How often the power sync reads every machine's power state, e.g. `60s`.
    pub power_sync_interval: String,
    /// Consecutive failed reads before tundrad puts a machine into maintenance.
    pub power_sync_failures: i64,
    /// How long a machine operation keeps retrying a BMC that fails
    /// transiently (no answer, 5xx, dropped connections) before it fails, e.g. `60s`.
    pub bmc_retry_window: String,
    /// Networks tundrad network-boots machines on (DHCP + TFTP).
    pub provisioning_networks: Vec<ProvisioningNetwork>,
    /// How often machines in transient states are checked against their timeouts.
    pub reconcile_interval: String,
    /// How often every switch's managed ports are read back (drift detection).
    pub fabric_read_interval: String,
    /// How often a deployed node asks the metadata service whether its
    /// share mounts changed (its `tundra-mounts` timer).
    pub node_mount_refresh: String,
    /// How long a deleted network's segment rests before another network
    /// may get it (a switch port that failed to move back must not join a
    /// new tenant).
    pub segment_quarantine: String,
    /// Per switch command (and connecting).
    pub switch_timeout: String,
    /// How long a replica's hold on an operation or a background loop
    /// lasts without renewal (renewed every third of it): after a replica
    /// dies, the others take its work over within this.
    pub replica_lease: String,
    /// Multiplies every provision-state timeout (e.g. 3 for slow hardware, 0.01 in tests).
    pub machine_timeout_scale: f64,
    /// The agent's boot environment, served at `/boot/assets/FILE` (default `DATA_DIR/boot`).
    pub boot_assets_dir: Option<PathBuf>,
    /// The kernel and initramfs in `boot_assets_dir` that the iPXE script boots.
    pub agent_kernel: String,
    pub agent_initrd: String,
    /// Extra kernel arguments for the agent, e.g. `console=ttyS0,115200`.
    pub agent_kernel_args: String,
    /// How long inspection listens for LLDP on each NIC (`0s`: not at all;
    /// switches send every 30 s by default, so `35s` hears them all).
    pub agent_lldp_wait: String,
    /// How long a machine booting the agent may stay silent (no heartbeat)
    /// before tundrad reboots it into the agent again (3 times at most).
    pub agent_boot_timeout: String,
    /// Inspection rules (a JSON array, see docs/guides/inspection.md); none by default.
    pub inspection_rules_file: Option<PathBuf>,
    /// Enrolling machines that network-boot with a MAC tundrad does not know.
    pub discovery: Discovery,
    /// Every project's limits unless a site admin sets its own
    /// (`PUT /v1/projects/{project}/quota`).
    pub default_quota: DefaultQuota,
    /// Let machines be enrolled with the `fake` BMC driver: power and boot
    /// succeed at once and the agent's steps complete without a machine
    /// (as Ironic's `fake-hardware`). For benchmarks and dry runs of a
    /// site's workflow; machines with a real driver are unaffected.
    pub fake_hardware: bool,
}

/// The site's default per-project quotas.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DefaultQuota {
    pub nodes: u64,
    pub networks: u64,
    pub addresses: u64,
    pub image_bytes: u64,
}

impl Default for DefaultQuota {
    fn default() -> Self {
        DefaultQuota { nodes: 200, networks: 50, addresses: 2000, image_bytes: 10 << 40 }
    }
}

/// Discovery: an unknown MAC that boots on a provisioning network with
/// `discovery = true` runs the agent; its report, through the inspection
/// rules (which must name its BMC with `set_bmc`), enrolls the machine and
/// takes it to `manageable`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Discovery {
    pub enabled: bool,
    /// The BMC password of discovered machines (the site's initial BMC
    /// credential), one line; required when enabled.
    pub bmc_password_file: Option<PathBuf>,
}

/// A network tundrad serves DHCP and TFTP on.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvisioningNetwork {
    /// The interface, e.g. `eno1`.
    pub interface: String,
    /// tundrad's address and prefix on it, e.g. `10.0.0.1/24`.
    pub address: String,
    /// Addresses handed out, e.g. `10.0.0.100-10.0.0.199`.
    pub pool: String,
    #[serde(default)]
    pub router: Option<std::net::Ipv4Addr>,
    #[serde(default)]
    pub dns: Vec<std::net::Ipv4Addr>,
    /// Answer unknown MACs too (discovery); otherwise only enrolled machines' MACs.
    #[serde(default)]
    pub discovery: bool,
    /// Directory with the iPXE binaries served over TFTP (Debian's `ipxe` package: /usr/lib/ipxe).
    #[serde(default = "default_tftp_root")]
    pub tftp_root: PathBuf,
    /// The boot listener: the boot and agent routes and the metadata
    /// service (only those) on `ADDRESS:http_port`; 0 picks a free port.
    /// They are served nowhere else — not on the API listener.
    #[serde(default = "default_http_port")]
    pub http_port: u16,
    /// Where booting machines reach the boot listener over HTTP (default
    /// `http://ADDRESS:HTTP_PORT`), e.g. with a DNS name. It must reach the
    /// listener directly: a boot is bound to the address that asks.
    #[serde(default)]
    pub boot_url: Option<String>,
    /// Fixed addresses for nodes, e.g. `10.0.0.200-10.0.0.249`: each node
    /// gets one (static in its config drive, reserved in DHCP under the
    /// node's name). Must not overlap `pool`. Unset: nodes use DHCP.
    #[serde(default)]
    pub node_pool: Option<String>,
    /// MTU nodes configure on this network.
    #[serde(default = "default_mtu")]
    pub mtu: u32,
    #[serde(default = "default_lease_time")]
    pub lease_time: String,
    #[serde(default = "default_dhcp_port")]
    pub dhcp_port: u16,
    #[serde(default = "default_tftp_port")]
    pub tftp_port: u16,
}

fn default_tftp_root() -> PathBuf {
    "/usr/lib/ipxe".into()
}
fn default_mtu() -> u32 {
    1500
}
fn default_lease_time() -> String {
    "1h".into()
}
fn default_http_port() -> u16 {
    8180
}
fn default_dhcp_port() -> u16 {
    67
}
fn default_tftp_port() -> u16 {
    69
}

impl ProvisioningNetwork {
    /// (server address, netmask, pool start, pool end), or what is wrong.
    pub fn parsed(
        &self,
    ) -> Result<(std::net::Ipv4Addr, std::net::Ipv4Addr, std::net::Ipv4Addr, std::net::Ipv4Addr), String> {
        let (ip, prefix) = self
            .address
            .split_once('/')
            .ok_or(format!("address {:?} must be ADDRESS/PREFIX, e.g. 10.0.0.1/24", self.address))?;
        let ip: std::net::Ipv4Addr =
            ip.parse().map_err(|_| format!("address {:?} is not an IPv4 address", self.address))?;
        let prefix: u32 = prefix
            .parse()
            .ok()
            .filter(|p| (8..=30).contains(p))
            .ok_or(format!("prefix in {:?} must be 8..=30", self.address))?;
        let mask = std::net::Ipv4Addr::from(u32::MAX << (32 - prefix));
        let (a, b) = self.pool.split_once('-').ok_or(format!("pool {:?} must be START-END", self.pool))?;
        let (a, b): (std::net::Ipv4Addr, std::net::Ipv4Addr) = (
            a.trim().parse().map_err(|_| format!("pool start {a:?} is not an IPv4 address"))?,
            b.trim().parse().map_err(|_| format!("pool end {b:?} is not an IPv4 address"))?,
        );
        let net = |x: std::net::Ipv4Addr| u32::from(x) & u32::from(mask);
        if net(a) != net(ip) || net(b) != net(ip) || u32::from(a) > u32::from(b) {
            return Err(format!("pool {:?} must lie inside {} and run upwards", self.pool, self.address));
        }
        Ok((ip, mask, a, b))
    }

    /// The prefix length of the network.
    pub fn prefix(&self) -> u8 {
        self.address.split_once('/').and_then(|(_, p)| p.parse().ok()).unwrap_or(24)
    }

    /// The node pool `(first, last)`, checked against the network and the DHCP pool.
    pub fn node_pool(&self) -> Result<Option<(std::net::Ipv4Addr, std::net::Ipv4Addr)>, String> {
        let Some(np) = &self.node_pool else { return Ok(None) };
        let (ip, mask, start, end) = self.parsed()?;
        let (a, b) = np.split_once('-').ok_or(format!("node_pool {np:?} must be START-END"))?;
        let (a, b): (std::net::Ipv4Addr, std::net::Ipv4Addr) = (
            a.trim().parse().map_err(|_| format!("node_pool start {a:?} is not an IPv4 address"))?,
            b.trim().parse().map_err(|_| format!("node_pool end {b:?} is not an IPv4 address"))?,
        );
        let net = |x: std::net::Ipv4Addr| u32::from(x) & u32::from(mask);
        if net(a) != net(ip) || net(b) != net(ip) || u32::from(a) > u32::from(b) {
            return Err(format!("node_pool {np:?} must lie inside {} and run upwards", self.address));
        }
        if u32::from(a) <= u32::from(end) && u32::from(start) <= u32::from(b) {
            return Err(format!("node_pool {np:?} overlaps the DHCP pool {:?}; give nodes their own range", self.pool));
        }
        if (u32::from(a)..=u32::from(b)).contains(&u32::from(ip)) {
            return Err(format!("node_pool {np:?} contains tundrad's own address {ip}"));
        }
        Ok(Some((a, b)))
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8180".parse().expect("literal address"),
            data_dir: ".tundra/data".into(),
            database_url: None,
            images_dir: None,
            secrets_key_file: None,
            admin_token_file: None,
            tls_cert_file: None,
            tls_key_file: None,
            max_body_bytes: 1024 * 1024,
            max_image_bytes: 64 * 1024 * 1024 * 1024,
            image_fetch_timeout: "6h".into(),
            image_convert_timeout: "1h".into(),
            image_convert_memory_mib: 2048,
            image_source_allow: Vec::new(),
            token_ttl: "30d".into(),
            token_max_ttl: "365d".into(),
            identity_providers: Vec::new(),
            power_sync_interval: "60s".into(),
            power_sync_failures: 3,
            bmc_retry_window: "60s".into(),
            provisioning_networks: Vec::new(),
            reconcile_interval: "10s".into(),
            fabric_read_interval: "5m".into(),
            node_mount_refresh: "60s".into(),
            segment_quarantine: "30m".into(),
            replica_lease: "15s".into(),
            switch_timeout: "30s".into(),
            machine_timeout_scale: 1.0,
            boot_assets_dir: None,
            agent_kernel: "vmlinuz".into(),
            agent_initrd: "initramfs".into(),
            agent_kernel_args: String::new(),
            agent_boot_timeout: "5m".into(),
            agent_lldp_wait: "0s".into(),
            inspection_rules_file: None,
            discovery: Discovery::default(),
            default_quota: DefaultQuota::default(),
            fake_hardware: false,
        }
    }
}

/// One OIDC identity provider.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityProvider {
    /// Must equal the tokens' `iss` claim.
    pub issuer: String,
    /// Must appear in the tokens' `aud` claim.
    pub audience: String,
    /// A JWKS document on disk…
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// …or at a URL (refetched when a token names an unknown key, at most once a minute).
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// Claim holding the user name (default `preferred_username`, falling back to `sub`).
    #[serde(default = "default_username_claim")]
    pub username_claim: String,
    /// Claim holding the list of groups (default `groups`).
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// Prefix for user names from this provider, keeping them apart from local users (default none).
    #[serde(default)]
    pub user_prefix: String,
    /// Members of these groups are site admins.
    #[serde(default)]
    pub admin_groups: Vec<String>,
    /// Group → project role.
    #[serde(default)]
    pub mappings: Vec<GroupMapping>,
}

fn default_username_claim() -> String {
    "preferred_username".into()
}
fn default_groups_claim() -> String {
    "groups".into()
}

/// Members of `group` get `role` in `project` (a project name or ID).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupMapping {
    pub group: String,
    pub project: String,
    pub role: Role,
}

/// A configuration error, saying which key and what to write instead.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

impl Config {
    /// Read the file (if any), then apply `TUNDRA_*` environment variables.
    pub fn load(file: Option<&Path>, env: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mut c = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
                toml::from_str(&text)
                    .map_err(|e| ConfigError::Parse { path: path.to_path_buf(), message: e.to_string() })?
            }
            None => Config::default(),
        };
        if let Some(v) = env("TUNDRA_LISTEN") {
            c.listen = parse_listen("TUNDRA_LISTEN", &v)?;
        }
        if let Some(v) = env("TUNDRA_DATA_DIR") {
            c.data_dir = v.into();
        }
        if let Some(v) = env("TUNDRA_DATABASE_URL") {
            c.database_url = Some(v);
        }
        if let Some(v) = env("TUNDRA_IMAGES_DIR") {
            c.images_dir = Some(v.into());
        }
        if let Some(v) = env("TUNDRA_SECRETS_KEY_FILE") {
            c.secrets_key_file = Some(v.into());
        }
        if let Some(v) = env("TUNDRA_TLS_CERT_FILE") {
            c.tls_cert_file = Some(v.into());
        }
        if let Some(v) = env("TUNDRA_TLS_KEY_FILE") {
            c.tls_key_file = Some(v.into());
        }
        if let Some(v) = env("TUNDRA_IMAGE_SOURCE_ALLOW") {
            c.image_source_allow = v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect();
        }
        c.validate()?;
        Ok(c)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid { key: key.into(), message };
        for (key, v) in [
            ("token_ttl", &self.token_ttl),
            ("token_max_ttl", &self.token_max_ttl),
            ("power_sync_interval", &self.power_sync_interval),
            ("bmc_retry_window", &self.bmc_retry_window),
            ("reconcile_interval", &self.reconcile_interval),
            ("fabric_read_interval", &self.fabric_read_interval),
            ("node_mount_refresh", &self.node_mount_refresh),
            ("segment_quarantine", &self.segment_quarantine),
            ("switch_timeout", &self.switch_timeout),
            ("replica_lease", &self.replica_lease),
            ("agent_boot_timeout", &self.agent_boot_timeout),
            ("agent_lldp_wait", &self.agent_lldp_wait),
            ("image_convert_timeout", &self.image_convert_timeout),
            ("image_fetch_timeout", &self.image_fetch_timeout),
        ] {
            humantime::parse_duration(v)
                .map_err(|e| invalid(key, format!("{v:?} is not a duration like \"30d\" or \"12h\": {e}")))?;
        }
        if self.replica_lease() < std::time::Duration::from_secs(1) {
            return Err(invalid("replica_lease", format!("{:?} is too short; give at least 1s", self.replica_lease)));
        }
        for (i, n) in self.provisioning_networks.iter().enumerate() {
            n.parsed().map_err(|m| invalid(&format!("provisioning_networks[{i}]"), m))?;
            n.node_pool().map_err(|m| invalid(&format!("provisioning_networks[{i}].node_pool"), m))?;
            humantime::parse_duration(&n.lease_time)
                .map_err(|e| invalid(&format!("provisioning_networks[{i}].lease_time"), e.to_string()))?;
        }
        self.load_inspection_rules()?;
        if self.discovery.enabled {
            let f = self.discovery.bmc_password_file.as_ref().ok_or_else(|| {
                invalid("discovery.bmc_password_file", "discovery needs the BMC password of discovered machines".into())
            })?;
            let p = std::fs::read_to_string(f)
                .map_err(|e| invalid("discovery.bmc_password_file", format!("reading {}: {e}", f.display())))?;
            if p.trim().is_empty() {
                return Err(invalid("discovery.bmc_password_file", format!("{} is empty", f.display())));
            }
        }
        for (key, v) in [("agent_kernel", &self.agent_kernel), ("agent_initrd", &self.agent_initrd)] {
            if v.is_empty() || v.contains('/') || v.starts_with('.') {
                return Err(invalid(key, format!("{v:?} must be a file name inside boot_assets_dir")));
            }
        }
        if !(self.machine_timeout_scale > 0.0 && self.machine_timeout_scale.is_finite()) {
            return Err(invalid("machine_timeout_scale", "must be a positive number".into()));
        }
        if humantime::parse_duration(&self.bmc_retry_window).is_ok_and(|w| w > std::time::Duration::from_secs(3600)) {
            return Err(invalid(
                "bmc_retry_window",
                "must be at most 1h: past it an operation fails rather than wait on a BMC".into(),
            ));
        }
        if self.power_sync_failures < 1 {
            return Err(invalid("power_sync_failures", "must be at least 1".into()));
        }
        if self.tls_cert_file.is_some() != self.tls_key_file.is_some() {
            return Err(invalid("tls_cert_file", "set both tls_cert_file and tls_key_file, or neither".into()));
        }
        if self.token_ttl_secs() > self.token_max_ttl_secs() {
            return Err(invalid("token_ttl", "must not exceed token_max_ttl".into()));
        }
        for (i, p) in self.image_source_allow.iter().enumerate() {
            let u = reqwest::Url::parse(p).map_err(|e| {
                invalid(
                    &format!("image_source_allow[{i}]"),
                    format!("{p:?} is not a URL prefix like \"https://images.example.org/\": {e}"),
                )
            })?;
            if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
                return Err(invalid(
                    &format!("image_source_allow[{i}]"),
                    format!("{p:?} must be an http(s) URL with a host"),
                ));
            }
        }
        for (i, idp) in self.identity_providers.iter().enumerate() {
            if idp.jwks_file.is_some() == idp.jwks_url.is_some() {
                return Err(invalid(
                    &format!("identity_providers[{i}]"),
                    "set exactly one of jwks_file or jwks_url".into(),
                ));
            }
        }
        Ok(())
    }

    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("tundra.db").display()))
    }

    /// The SQLite database file, when the store is SQLite.
    pub fn sqlite_file(&self) -> Option<PathBuf> {
        let url = self.database_url();
        let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
        let path = rest.split('?').next().unwrap_or(rest);
        (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
    }

    pub fn secrets_key_file(&self) -> PathBuf {
        self.secrets_key_file.clone().unwrap_or_else(|| self.data_dir.join("secrets.key"))
    }

    pub fn agent_boot_timeout(&self) -> std::time::Duration {
        humantime::parse_duration(&self.agent_boot_timeout).unwrap_or(std::time::Duration::from_secs(300))
    }

    pub fn boot_assets_dir(&self) -> PathBuf {
        self.boot_assets_dir.clone().unwrap_or_else(|| self.data_dir.join("boot"))
    }

    /// Read and check the inspection rules (none without a file).
    pub fn load_inspection_rules(&self) -> Result<Vec<tundra_engine::inspection::Rule>, ConfigError> {
        let Some(f) = &self.inspection_rules_file else { return Ok(Vec::new()) };
        let invalid = |message: String| ConfigError::Invalid { key: "inspection_rules_file".into(), message };
        let text = std::fs::read_to_string(f).map_err(|e| invalid(format!("reading {}: {e}", f.display())))?;
        tundra_engine::inspection::load(&text).map_err(|e| invalid(e.to_string()))
    }

    pub fn admin_token_file(&self) -> PathBuf {
        self.admin_token_file.clone().unwrap_or_else(|| self.data_dir.join("admin-token"))
    }

    pub fn power_sync_interval(&self) -> std::time::Duration {
        humantime::parse_duration(&self.power_sync_interval).unwrap_or(std::time::Duration::from_secs(60))
    }

    pub fn fabric_read_interval(&self) -> std::time::Duration {
        humantime::parse_duration(&self.fabric_read_interval).unwrap_or(std::time::Duration::from_secs(300))
    }

    pub fn switch_timeout(&self) -> std::time::Duration {
        humantime::parse_duration(&self.switch_timeout).unwrap_or(std::time::Duration::from_secs(30))
    }

    pub fn replica_lease(&self) -> std::time::Duration {
        humantime::parse_duration(&self.replica_lease).unwrap_or(std::time::Duration::from_secs(15))
    }

    pub fn reconcile_interval(&self) -> std::time::Duration {
        humantime::parse_duration(&self.reconcile_interval).unwrap_or(std::time::Duration::from_secs(10))
    }

    /// What the conductor is told, parsed (the config was validated at load).
    pub fn conductor_settings(&self) -> Result<tundra_conductor::Settings, ConfigError> {
        use tundra_conductor::settings::{AgentBoot, Discovery, NodeNetwork};
        let node_network = match self.provisioning_networks.first() {
            Some(n) => Some(NodeNetwork {
                pool: n.node_pool().map_err(|message| ConfigError::Invalid {
                    key: "provisioning_networks[0].node_pool".into(),
                    message,
                })?,
                prefix: n.prefix(),
                mtu: n.mtu,
                router: n.router,
                dns: n.dns.clone(),
            }),
            None => None,
        };
        Ok(tundra_conductor::Settings {
            data_dir: self.data_dir.clone(),
            images_dir: self.images_dir.clone().unwrap_or_else(|| self.data_dir.join("images")),
            max_image_bytes: self.max_image_bytes,
            quota: tundra_store::QuotaLimits {
                nodes: self.default_quota.nodes,
                networks: self.default_quota.networks,
                addresses: self.default_quota.addresses,
                image_bytes: self.default_quota.image_bytes,
            },
            image_fetch_timeout: humantime::parse_duration(&self.image_fetch_timeout)
                .unwrap_or(std::time::Duration::from_secs(6 * 3600)),
            image_convert: tundra_conductor::settings::ImageConvert {
                timeout: humantime::parse_duration(&self.image_convert_timeout)
                    .unwrap_or(std::time::Duration::from_secs(3600)),
                memory_bytes: self.image_convert_memory_mib.saturating_mul(1 << 20),
            },
            image_source_allow: self.image_source_allow.clone(),
            power_sync_interval: self.power_sync_interval(),
            power_sync_failures: self.power_sync_failures,
            bmc_retry: tundra_drivers::retry::Backoff::within(
                humantime::parse_duration(&self.bmc_retry_window).unwrap_or(std::time::Duration::from_secs(60)),
            ),
            reconcile_interval: self.reconcile_interval(),
            fabric_read_interval: self.fabric_read_interval(),
            node_mount_refresh: humantime::parse_duration(&self.node_mount_refresh)
                .unwrap_or(std::time::Duration::from_secs(60))
                .max(std::time::Duration::from_secs(1)),
            segment_quarantine: humantime::parse_duration(&self.segment_quarantine)
                .unwrap_or(std::time::Duration::from_secs(1800)),
            switch_timeout: self.switch_timeout(),
            replica_lease: self.replica_lease(),
            machine_timeout_scale: self.machine_timeout_scale,
            agent: AgentBoot {
                kernel: self.agent_kernel.clone(),
                initrd: self.agent_initrd.clone(),
                kernel_args: self.agent_kernel_args.clone(),
                lldp_wait: humantime::parse_duration(&self.agent_lldp_wait).unwrap_or_default(),
                boot_timeout: self.agent_boot_timeout(),
            },
            node_network,
            discovery: Discovery {
                enabled: self.discovery.enabled,
                bmc_password_file: self.discovery.bmc_password_file.clone(),
            },
            inspection_rules: self.load_inspection_rules()?,
            fake_hardware: self.fake_hardware,
        })
    }

    pub fn token_ttl_secs(&self) -> u64 {
        humantime::parse_duration(&self.token_ttl).map(|d| d.as_secs()).unwrap_or(30 * 86400)
    }

    pub fn token_max_ttl_secs(&self) -> u64 {
        humantime::parse_duration(&self.token_max_ttl).map(|d| d.as_secs()).unwrap_or(365 * 86400)
    }
}

pub fn parse_listen(key: &str, v: &str) -> Result<SocketAddr, ConfigError> {
    v.parse().map_err(|_| ConfigError::Invalid {
        key: key.into(),
        message: format!("{v:?} is not an address like 127.0.0.1:8180"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_env() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("t.toml");
        std::fs::write(
            &f,
            r#"
listen = "127.0.0.1:9000"
image_source_allow = ["https://images.example.org/"]
[[identity_providers]]
issuer = "https://idp"
audience = "tundra"
jwks_file = "/etc/jwks.json"
mappings = [{ group = "astro", project = "astro", role = "member" }]
"#,
        )
        .unwrap();
        let c = Config::load(Some(&f), |k| (k == "TUNDRA_DATA_DIR").then(|| "/srv/tundra".into())).unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.data_dir, PathBuf::from("/srv/tundra"));
        assert_eq!(c.database_url(), "sqlite:///srv/tundra/tundra.db");
        assert_eq!(c.identity_providers[0].mappings[0].role, Role::Member);
    }

    #[test]
    fn mistakes_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("t.toml");
        std::fs::write(&f, "lisen = \"x\"\n").unwrap();
        let e = Config::load(Some(&f), |_| None).unwrap_err().to_string();
        assert!(e.contains("unknown field `lisen`"), "{e}");
        std::fs::write(&f, "token_ttl = \"forever\"\n").unwrap();
        let e = Config::load(Some(&f), |_| None).unwrap_err().to_string();
        assert!(e.starts_with("token_ttl:"), "{e}");
        std::fs::write(&f, "tls_cert_file = \"/etc/tundra/tls.crt\"\n").unwrap();
        let e = Config::load(Some(&f), |_| None).unwrap_err().to_string();
        assert!(e.contains("set both tls_cert_file and tls_key_file"), "{e}");
        std::fs::write(&f, "image_source_allow = [\"ftp://x/\"]\n").unwrap();
        let e = Config::load(Some(&f), |_| None).unwrap_err().to_string();
        assert!(e.contains("image_source_allow[0]"), "{e}");
    }
}
