//! Flows end to end without HTTP: a conductor on a SQLite store in a temp
//! dir, BMCs that are `tundra_drivers::bmc::Fake`s, and the test playing
//! the agent through the conductor's own agent-session calls (the script's
//! per-boot token, heartbeat, report) — what `tundra-agent` does over HTTP.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tundra_api::agent::{Command, Report};
use tundra_api::catalog::DiskFormat;
use tundra_api::machines::{BmcDriver, BmcSettings, Interface, Location, Machine, PowerAction, ProvisionState};
use tundra_api::nodes::{NodeCreate, NodeStatus};
use tundra_api::{MachineId, OperationId};
use tundra_conductor::fabric::binding;
use tundra_conductor::machines::actions::{self, Action};
use tundra_conductor::nodes::{placement, reconcile};
use tundra_conductor::secrets::{Keyring, Plaintext, new_key_line};
use tundra_conductor::settings::NodeNetwork;
use tundra_conductor::{Conductor, Settings, agent};
use tundra_drivers::bmc::{BootDevice, Driver, Fake};
use tundra_engine::machine_states::Event;
use tundra_store::{Actor, NewFlavor, NewImage, NewMachine, Store};

/// A conductor whose BMCs are fakes, keyed by BMC address.
pub struct World {
    pub c: Conductor,
    bmcs: Arc<Mutex<HashMap<String, Fake>>>,
    _dir: tempfile::TempDir,
}

pub async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!("sqlite://{}", dir.path().join("t.db").display())).await.unwrap();
    store.migrate().await.unwrap();
    let mut settings = Settings::new(dir.path().join("data"));
    settings.node_network = Some(NodeNetwork {
        pool: Some(("10.9.0.200".parse().unwrap(), "10.9.0.209".parse().unwrap())),
        prefix: 24,
        mtu: 1500,
        router: None,
        dns: Vec::new(),
    });
    let bmcs: Arc<Mutex<HashMap<String, Fake>>> = Default::default();
    let fakes = bmcs.clone();
    let maker: tundra_conductor::BmcMaker = Arc::new(move |b: &BmcSettings, _pw, _backoff| {
        Ok(Driver::Fake(fakes.lock().unwrap().entry(b.address.clone()).or_insert_with(|| Fake::new(0)).clone()))
    });
    let keyring = Keyring::parse(&new_key_line()).unwrap();
    let c = Conductor::new(store, keyring, settings, reqwest::Client::new(), tundra_conductor::work::run, maker);
    World { c, bmcs, _dir: dir }
}

impl World {
    fn bmc(&self, m: &Machine) -> Fake {
        self.bmcs.lock().unwrap().get(&m.bmc.address).cloned().expect("the BMC was used")
    }

    pub async fn enroll(&self, name: &str, mac: &str) -> Machine {
        let bmc = BmcSettings {
            driver: BmcDriver::Ipmi,
            address: format!("{name}.bmc"),
            system: None,
            username: "admin".into(),
            insecure: false,
        };
        let secret = self.c.keyring().seal(tundra_api::SecretId::generate(), &Plaintext(b"pw".to_vec()));
        let boot =
            Interface { mac: mac.into(), physical_network: None, switch: None, port: None, pxe: true, address: None };
        let new = NewMachine {
            name: name.into(),
            resource_class: "baremetal".into(),
            traits: Vec::new(),
            properties: json!({}),
            location: Location { site: None, rack: Some("r1".into()), island: Some("a".into()) },
            bmc,
            interfaces: vec![boot],
            secret,
        };
        self.c.store().create_machine(&Actor::service(), new).await.unwrap()
    }

    async fn machine(&self, id: MachineId) -> Machine {
        self.c.store().machine(&id.to_string()).await.unwrap()
    }

    /// Start `action`; returns the operation doing it.
    pub async fn act(&self, m: MachineId, action: Action) -> OperationId {
        let m = self.machine(m).await;
        actions::start(&self.c, &Actor::service(), &m, action, None).await.unwrap()
    }

    pub async fn wait_op(&self, op: OperationId) -> tundra_api::ops::Operation {
        for _ in 0..600 {
            let o = self.c.store().operation(op).await.unwrap();
            if o.state.is_terminal() {
                return o;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("operation {op} did not end");
    }

    /// A public flavor `bm` (resource class `baremetal`) and a public raw
    /// image `img` of `bytes`, uploaded.
    pub async fn flavor_and_image(&self, bytes: Vec<u8>) -> (tundra_api::catalog::Flavor, tundra_api::catalog::Image) {
        let (store, svc) = (self.c.store(), Actor::service());
        let flavor = NewFlavor {
            project_id: None,
            name: "bm".into(),
            description: String::new(),
            resource_class: "baremetal".into(),
            required_traits: Vec::new(),
        };
        let flavor = store.create_flavor(&svc, flavor).await.unwrap();
        (flavor, self.image("img", bytes).await)
    }

    /// A public raw image named `name` holding `bytes`, uploaded (active).
    pub async fn image(&self, name: &str, bytes: Vec<u8>) -> tundra_api::catalog::Image {
        let svc = Actor::service();
        let new = NewImage {
            project_id: None,
            name: name.into(),
            description: String::new(),
            disk_format: DiskFormat::Raw,
            sha256: tundra_conductor::secrets::sha256_hex(&bytes),
            source_url: None,
        };
        let img = self.c.store().create_image(&svc, new).await.unwrap();
        let body = futures_util::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from(bytes))]);
        tundra_conductor::images::upload(&self.c, &svc, &img, body, None).await.unwrap()
    }

    /// Play the agent on the machine with `mac`: fetch the boot script
    /// (once tundrad offers one), ask for the command, report it done with
    /// `details`. Returns the command.
    pub async fn agent(&self, mac: &str, details: Value) -> Command {
        let mut script = None;
        for _ in 0..600 {
            // Someone else on the network asks first: nothing, and the boot's one script is kept.
            let stranger = agent::BootRequest { peer: STRANGER, ..boot(mac) };
            assert!(agent::script(&self.c, stranger).await.unwrap().is_none());
            script = agent::script(&self.c, boot(mac)).await.unwrap();
            if script.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let script = script.expect("tundrad booted the machine into the agent");
        assert!(script.contains(&format!("BOOTIF=01-{}", mac.replace(':', "-"))), "{script}");
        let token = script.split_whitespace().find_map(|w| w.strip_prefix("tundra.token=")).unwrap().to_string();
        // One script per boot.
        assert!(agent::script(&self.c, boot(mac)).await.unwrap().is_none(), "a second script in one boot");
        // The token works only from the address its script went to.
        assert!(agent::caller(&self.c, &token, STRANGER).await.unwrap().is_none());
        let caller = || async { agent::caller(&self.c, &token, HOLDER).await.unwrap().expect("the token is live") };
        let cmd = agent::heartbeat(&self.c, caller().await, Some("working".into())).await.unwrap();
        let id = cmd.id().expect("a command that is work").to_string();
        let report = Report { id, ok: true, error: None, details };
        assert!(agent::report(&self.c, caller().await, report.clone()).await.unwrap().recorded);
        // A retried report is acknowledged, not recorded twice.
        assert!(!agent::report(&self.c, caller().await, report).await.unwrap().recorded);
        cmd
    }
}

/// The address DHCP leased to the booting machine; anyone else.
const HOLDER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 100));
const STRANGER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 150));

/// The erase report for `inventory`'s disk.
pub fn erased() -> Value {
    json!({"vda": {"method": "Zeroed", "verified_zero": true, "size_bytes": 1_073_741_824u64}})
}

/// A boot script request from the lease holder of `mac`.
fn boot(mac: &str) -> agent::BootRequest<'_> {
    agent::BootRequest { mac, base: "http://tundrad.test", peer: HOLDER, lease_holder: Some(HOLDER) }
}

fn inventory(mac: &str) -> Value {
    json!({
        "cpus": 8, "memory_mib": 16384, "serial": "S1",
        "disks": [{"name": "vda", "size_bytes": 1_073_741_824u64, "rotational": false}],
        "nics": [{"mac": mac}, {"mac": "52:54:00:00:99:02"}],
        "gpus": [],
    })
}

/// A machine flow: manage (the BMC answers), a power action, then inspect
/// — the agent's inventory applied — and provide (cleaning) to available.
#[tokio::test]
async fn a_machine_is_managed_inspected_and_cleaned() {
    let w = world().await;
    let mac = "52:54:00:00:99:01";
    let m = w.enroll("m1", mac).await;
    let op = w.act(m.id, Action::Verb(Event::Manage)).await;
    assert_eq!(w.wait_op(op).await.error, None);
    let m = w.machine(m.id).await;
    assert_eq!((m.provision_state, m.power_state.as_str(), m.operation_id), (ProvisionState::Manageable, "off", None));

    let op = w.act(m.id, Action::Power(PowerAction::PowerOn)).await;
    assert_eq!(w.wait_op(op).await.error, None);
    let m = w.machine(m.id).await;
    assert_eq!((m.provision_state, m.power_state.as_str()), (ProvisionState::Manageable, "on"));

    // Inspect: PXE once, power (a reset: it was on), the agent reports.
    let op = w.act(m.id, Action::Verb(Event::Inspect)).await;
    let cmd = w.agent(mac, inventory(mac)).await;
    assert!(matches!(cmd, Command::Inspect { .. }), "{cmd:?}");
    let o = w.wait_op(op).await;
    assert_eq!(o.error, None, "{o:?}");
    let m = w.machine(m.id).await;
    assert_eq!(m.provision_state, ProvisionState::Manageable);
    assert_eq!(m.properties["cpus"], 8);
    assert_eq!(m.properties["disks"][0]["name"], "vda");
    assert_eq!(m.interfaces.len(), 2, "the second NIC was added: {:?}", m.interfaces);
    assert_eq!(w.bmc(&m).boot_device(), Some((BootDevice::Pxe, false)));
    assert_eq!(m.power_state, "off", "powered off after inspection");
    // The session is closed: the token opens nothing, no script is offered.
    assert!(agent::script(&w.c, boot(mac)).await.unwrap().is_none());

    // Provide: cleaning erases every disk inspection found. A report that
    // does not account for one is not an erase: clean_failed, held.
    let op = w.act(m.id, Action::Verb(Event::Provide)).await;
    let cmd = w.agent(mac, json!({})).await;
    assert_eq!(cmd, Command::Erase { id: format!("{op}-cleaning"), disks: vec!["vda".into()] });
    let o = w.wait_op(op).await;
    assert!(o.error.as_deref().unwrap_or("").contains("does not account for disk vda"), "{o:?}");
    assert_eq!(w.machine(m.id).await.provision_state, ProvisionState::CleanFailed);
    let op = w.act(m.id, Action::Verb(Event::Manage)).await;
    assert_eq!(w.wait_op(op).await.error, None);
    // A disk that read back at another size than inspection found is not erased either.
    let op = w.act(m.id, Action::Verb(Event::Provide)).await;
    w.agent(mac, json!({"vda": {"method": "Zeroed", "verified_zero": true, "size_bytes": 4096}})).await;
    let o = w.wait_op(op).await;
    assert!(o.error.as_deref().unwrap_or("").contains("inspection found 1073741824"), "{o:?}");
    let op = w.act(m.id, Action::Verb(Event::Manage)).await;
    assert_eq!(w.wait_op(op).await.error, None);
    // …nor one whose size the report leaves out.
    let op = w.act(m.id, Action::Verb(Event::Provide)).await;
    w.agent(mac, json!({"vda": {"method": "Zeroed", "verified_zero": true}})).await;
    let o = w.wait_op(op).await;
    assert!(o.error.as_deref().unwrap_or("").contains("gives no size for disk vda"), "{o:?}");
    let op = w.act(m.id, Action::Verb(Event::Manage)).await;
    assert_eq!(w.wait_op(op).await.error, None);
    let op = w.act(m.id, Action::Verb(Event::Provide)).await;
    w.agent(mac, erased()).await;
    assert_eq!(w.wait_op(op).await.error, None);
    assert_eq!(w.machine(m.id).await.provision_state, ProvisionState::Available);
}

/// The node flow: placed and claimed, deployed (the agent writes the image
/// and the config drive), marked active by the reconciler; deleted, its
/// machine cleaned, and only then gone.
#[tokio::test]
async fn a_node_is_deployed_reconciled_active_and_cleaned_away() {
    let w = world().await;
    let (store, svc) = (w.c.store().clone(), Actor::service());
    let mac = "52:54:00:00:98:01";
    let m = w.enroll("m2", mac).await;
    for (action, details) in
        [(Event::Manage, None), (Event::Inspect, Some(inventory(mac))), (Event::Provide, Some(erased()))]
    {
        let op = w.act(m.id, Action::Verb(action)).await;
        if let Some(d) = details {
            w.agent(mac, d).await;
        }
        assert_eq!(w.wait_op(op).await.error, None, "{action:?}");
    }
    let project = store.create_project(&svc, "p", "").await.unwrap();
    let bytes = b"a raw disk image".to_vec();
    let sha = tundra_conductor::secrets::sha256_hex(&bytes);
    let (flavor, img) = w.flavor_and_image(bytes).await;
    assert_eq!(img.raw_sha256.as_deref(), Some(sha.as_str()));

    let req = NodeCreate {
        project_id: project.id,
        name: "n1".into(),
        flavor_id: flavor.id,
        image_id: img.id,
        keypair_id: None,
        user_data: Some("#cloud-config\n".into()),
        metadata: Default::default(),
        placement: Default::default(),
        networks: Vec::new(),
        shares: Vec::new(),
    };
    let node = placement::create(&w.c, &svc, req, &flavor, &img).await.unwrap();
    assert_eq!(node.status, NodeStatus::Building);
    assert_eq!(node.machine_id, Some(m.id));
    assert_eq!(node.addresses[0].address.as_deref(), Some("10.9.0.200"));
    // The image cannot be deleted from under the deploy.
    let e = tundra_conductor::images::delete(&w.c, &svc, &img).await.unwrap_err();
    assert!(e.to_string().contains("being deployed"), "{e}");
    // Deploying: nothing for the reconciler to do yet.
    reconcile::once(&w.c).await.unwrap();
    assert_eq!(store.node(node.id).await.unwrap().status, NodeStatus::Building);
    let cmd = w.agent(mac, json!({"bytes": 16})).await;
    let Command::WriteImage { sha256, disk, config_drive: Some(files), .. } = cmd else { panic!("{cmd:?}") };
    assert_eq!((sha256.as_str(), disk.as_str()), (sha.as_str(), "vda"));
    let meta: Value = serde_json::from_str(&files["openstack/latest/meta_data.json"]).unwrap();
    assert_eq!(meta["uuid"], node.id.to_string());
    assert_eq!(files["openstack/latest/user_data"], "#cloud-config\n");
    // The metadata service answers the node's address only with the token
    // on its config drive; another machine taking the address gets nothing.
    use tundra_conductor::config_drive::{self, Metadata, TOKEN_FILE};
    let token = files[TOKEN_FILE].trim().to_string();
    assert!(token.starts_with("tnm_"), "{token}");
    let at: IpAddr = "10.9.0.200".parse().unwrap();
    let ask = async |token: Option<&str>| config_drive::metadata(&w.c, at, token, "user_data").await.unwrap();
    assert_eq!(ask(Some(&token)).await, Metadata::File("#cloud-config\n".into()));
    assert_eq!(ask(None).await, Metadata::Denied);
    assert_eq!(ask(Some("tnm_guess")).await, Metadata::Denied);
    let other: IpAddr = "10.9.0.201".parse().unwrap();
    assert_eq!(config_drive::metadata(&w.c, other, Some(&token), "user_data").await.unwrap(), Metadata::NotFound);
    assert_eq!(
        config_drive::metadata(&w.c, at, Some(&token), "tundra_metadata_token").await.unwrap(),
        Metadata::NotFound,
        "the token itself is never served"
    );
    let deploy = node.operation_id.expect("the node records its machine's deploy");
    assert_eq!(w.wait_op(deploy).await.error, None);
    let m = w.machine(m.id).await;
    assert_eq!(m.provision_state, ProvisionState::Active);
    assert_eq!(w.bmc(&m).boot_device(), Some((BootDevice::Disk, true)), "boots its disk from now on");
    reconcile::once(&w.c).await.unwrap();
    assert_eq!(store.node(node.id).await.unwrap().status, NodeStatus::Active);

    // An update is one change checked against If-Match: a stale revision
    // changes neither the networks nor the metadata.
    let n = store.node(node.id).await.unwrap();
    let meta = std::collections::BTreeMap::from([("role".to_string(), "worker".to_string())]);
    for (metadata, networks) in [(None, Some(Vec::new())), (Some(meta.clone()), Some(Vec::new()))] {
        let e = binding::update_node(&w.c, &svc, &n, metadata, networks, Some(n.revision - 1)).await.unwrap_err();
        assert!(
            matches!(e, tundra_conductor::Error::Store(tundra_store::StoreError::RevisionMismatch { .. })),
            "{e:?}"
        );
    }
    assert_eq!(store.node(node.id).await.unwrap().revision, n.revision, "nothing was written");
    let done = binding::update_node(&w.c, &svc, &n, Some(meta), Some(Vec::new()), Some(n.revision)).await.unwrap();
    assert_eq!((done.revision, done.metadata["role"].as_str()), (n.revision + 1, "worker"), "one change, one revision");

    // Delete: deleting, the machine through delete → cleaning, then gone.
    let n = store.node(node.id).await.unwrap();
    let n = placement::delete(&w.c, &svc, &n).await.unwrap().expect("it holds a machine");
    assert_eq!(n.status, NodeStatus::Deleting);
    reconcile::once(&w.c).await.unwrap();
    let clean = w.machine(m.id).await.operation_id.expect("cleaning started");
    let cmd = w.agent(mac, erased()).await;
    assert!(matches!(cmd, Command::Erase { .. }), "{cmd:?}");
    assert_eq!(w.wait_op(clean).await.error, None);
    assert_eq!(w.machine(m.id).await.provision_state, ProvisionState::Available);
    assert!(store.node(node.id).await.is_ok(), "the node waits for the reconciler");
    reconcile::once(&w.c).await.unwrap();
    assert!(store.node(node.id).await.is_err(), "the node is gone once its machine is clean");
    // Its address is free again: a new node gets the same one.
    assert!(store.all_nodes().await.unwrap().is_empty());
}

/// A machine is `available` only once its switch ports read back on the
/// provisioning segment: cleaning waits for them, and gives up (held in
/// `clean_failed`) when a port fails again and again — the next tenant never
/// inherits the last one's VLAN.
#[tokio::test]
async fn cleaning_waits_for_the_switch_ports_to_come_home() {
    use tundra_api::fabric::FabricKind;
    use tundra_store::{NewPhysicalNetwork, NewSwitch};
    let w = world().await;
    let (store, svc) = (w.c.store().clone(), Actor::service());
    let pn = NewPhysicalNetwork {
        name: "eth".into(),
        description: String::new(),
        kind: FabricKind::Ethernet,
        segment_range: [100, 200],
        provisioning_segment: Some(10),
        mtu: 1500,
    };
    let pn = store.create_physical_network(&svc, pn).await.unwrap();
    let sw = NewSwitch {
        name: "leaf".into(),
        description: String::new(),
        physical_network_id: pn.id,
        dialect: "cisco_ios".into(),
        address: "127.0.0.1:1".into(),
        username: "u".into(),
        password: None,
        private_key: None,
        host_key: format!("SHA256:{}", "A".repeat(43)),
        max_sessions: 1,
        min_interval_ms: 0,
    };
    let sw = store.create_switch(&svc, sw).await.unwrap();
    let mac = "52:54:00:00:97:01";
    let m = w.enroll("m3", mac).await;
    let cabled = Interface { switch: Some("leaf".into()), port: Some("Te1/0/1".into()), ..m.interfaces[0].clone() };
    let changes = tundra_store::MachineChanges { interfaces: Some(vec![cabled]), ..Default::default() };
    store.update_machine(&svc, m.id, changes, None).await.unwrap();
    for (action, details) in [(Event::Manage, None), (Event::Inspect, Some(inventory(mac)))] {
        let op = w.act(m.id, Action::Verb(action)).await;
        if let Some(d) = details {
            w.agent(mac, d).await;
        }
        assert_eq!(w.wait_op(op).await.error, None, "{action:?}");
    }
    let cabled_port = |m: &Machine| m.interfaces.iter().find(|i| i.mac == mac).and_then(|i| i.port.clone());
    assert_eq!(cabled_port(&w.machine(m.id).await).as_deref(), Some("Te1/0/1"), "inspection kept the cabling");

    // Provide: the disks are erased, but the port has not read back yet.
    let op = w.act(m.id, Action::Verb(Event::Provide)).await;
    w.agent(mac, erased()).await;
    let mut waiting = String::new();
    for _ in 0..100 {
        waiting = store.operation(op).await.unwrap().message;
        if waiting.contains("Te1/0/1") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(waiting.contains("waiting for switch port Te1/0/1 of leaf"), "{waiting}");
    assert_eq!(w.machine(m.id).await.provision_state, ProvisionState::CleanWait, "not available yet");
    // The fabric worker programs it and reads it back: available.
    assert!(store.want_switch_port(sw.id, "Te1/0/1", 10).await.unwrap());
    assert!(store.switch_port_programmed(sw.id, "Te1/0/1", 10, Ok(Some(10))).await.unwrap());
    assert_eq!(w.wait_op(op).await.error, None);
    assert_eq!(w.machine(m.id).await.provision_state, ProvisionState::Available);

    // Another round where the switch refuses the port three times: held.
    let manage = w.act(m.id, Action::Verb(Event::Manage)).await;
    assert_eq!(w.wait_op(manage).await.error, None);
    store.resync_switch_ports(&svc, &[(sw.id, "Te1/0/1".into())]).await.unwrap();
    let op = w.act(m.id, Action::Verb(Event::Provide)).await;
    w.agent(mac, erased()).await;
    for _ in 0..3 {
        store.switch_port_programmed(sw.id, "Te1/0/1", 10, Err("% Invalid input".into())).await.unwrap();
        store.retry_switch_port(sw.id, "Te1/0/1", 10).await.unwrap();
    }
    store.switch_port_programmed(sw.id, "Te1/0/1", 10, Err("% Invalid input".into())).await.unwrap();
    let o = w.wait_op(op).await;
    assert!(o.error.as_deref().unwrap_or("").contains("could not be put back on the provisioning segment 10"), "{o:?}");
    assert_eq!(w.machine(m.id).await.provision_state, ProvisionState::CleanFailed);
    // An operator's sync starts the count over.
    store.resync_switch_ports(&svc, &[(sw.id, "Te1/0/1".into())]).await.unwrap();
    let rec = store.switch_ports().await.unwrap().into_iter().find(|r| r.port == "Te1/0/1").unwrap();
    assert_eq!((rec.failures, rec.state), (0, tundra_api::fabric::SwitchPortState::Pending));
}

/// The share worker against the fake backend: each row's state is the
/// work it owes, done once per pass and recorded; a shrink below what the
/// share holds is refused; deleting takes the rule back before the share.
#[tokio::test]
async fn shares_and_rules_follow_their_rows_on_the_backend() {
    use tundra_api::shares::{
        AccessKind, AccessLevel, AccessState, ShareAccessCreate, ShareBackend, ShareCreate, ShareStatus,
        ShareTypeCreate, ShareTypeSettings, ShareUpdate,
    };
    use tundra_conductor::shares::{flows, share_ref, worker};
    use tundra_drivers::share::{Backend, Fake as FakeShares};

    let w = world().await;
    let fake = FakeShares::new();
    w.c.use_share_backend(Backend::Fake(fake.clone()));
    let svc = Actor::service();
    let project = w.c.store().create_project(&svc, "p", "").await.unwrap();
    let settings =
        ShareTypeSettings { monitors: vec!["10.0.0.1:6789".into()], fs_name: Some("fs".into()), ..Default::default() };
    let t = flows::create_type(
        &w.c,
        &svc,
        ShareTypeCreate {
            name: "ceph".into(),
            description: String::new(),
            backend: ShareBackend::Cephfs,
            settings,
            credential: Some(format!("{}==", "A".repeat(38))),
        },
    )
    .await
    .unwrap();
    let create = ShareCreate {
        project_id: project.id,
        name: "data".into(),
        description: String::new(),
        share_type_id: t.id,
        size_gib: 2,
        networks: Vec::new(),
        snapshot_id: None,
    };
    let s = flows::create_share(&w.c, &svc, project.id, create).await.unwrap();
    assert_eq!(s.status, ShareStatus::Creating);
    let rule = ShareAccessCreate {
        share_id: s.id,
        kind: AccessKind::Cephx,
        access_to: "writer".into(),
        access_level: AccessLevel::Rw,
    };
    let a = flows::create_access(&w.c, &svc, &s, rule).await.unwrap();
    // One pass: the share is made; the rule waits for it, then is granted on the next.
    worker::once(&w.c, false).await.unwrap();
    let r = share_ref(project.id, s.id);
    assert_eq!(fake.shares()[&r].0, 2 << 30);
    assert_eq!(w.c.store().share(s.id).await.unwrap().status, ShareStatus::Available);
    worker::once(&w.c, false).await.unwrap();
    let a = w.c.store().access(a.id).await.unwrap();
    assert_eq!(a.state, AccessState::Active);
    assert!(fake.grants().contains_key(&(a.ceph_id.clone().unwrap(), r.clone())));

    // A shrink below what it holds is refused before anything changes.
    fake.set_used(&r, 3 << 29);
    let s = w.c.store().share(s.id).await.unwrap();
    let e = flows::update_share(&w.c, &svc, &s, ShareUpdate { size_gib: Some(1), ..Default::default() }, None)
        .await
        .unwrap_err();
    assert!(matches!(e, tundra_conductor::Error::Conflict { pointer: Some(ref p), .. } if p == "/size_gib"), "{e}");
    assert_eq!(fake.shares()[&r].0, 2 << 30);

    // Forced delete: the grant goes in the pass's rule step, the share in its share step.
    flows::delete_share(&w.c, &svc, &s, true).await.unwrap();
    worker::once(&w.c, false).await.unwrap();
    assert!(fake.grants().is_empty());
    assert!(fake.shares().is_empty());
    assert!(w.c.store().share(s.id).await.is_err());
    let calls = fake.calls();
    let deauth = calls.iter().position(|c| c.starts_with("deauthorize")).unwrap();
    let delete = calls.iter().position(|c| c.starts_with("delete")).unwrap();
    assert!(deauth < delete, "{calls:?}");
}

/// Address rules (NFS, GlusterFS) reach the backend as the share's whole
/// set: two rules queued together are one call letting both in; a rule
/// taken back is a call with the rest; a read-only rule on GlusterFS and a
/// snapshot of a GlusterFS share are refused at their field.
#[tokio::test]
async fn address_rules_go_to_the_backend_as_one_set() {
    use tundra_api::shares::{
        AccessKind, AccessLevel, AccessState, ShareAccessCreate, ShareBackend, ShareCreate, ShareSnapshotCreate,
        ShareTypeCreate, ShareTypeSettings,
    };
    use tundra_conductor::shares::{flows, share_ref, worker};
    use tundra_drivers::share::{Backend, Fake as FakeShares};

    let w = world().await;
    let fake = FakeShares::new();
    w.c.use_share_backend(Backend::Fake(fake.clone()));
    let svc = Actor::service();
    let project = w.c.store().create_project(&svc, "p", "").await.unwrap();
    let settings = |nfs: bool| ShareTypeSettings {
        ssh_address: Some("10.0.0.9:22".into()),
        host_key: Some("SHA256:abc".into()),
        server: Some("10.0.0.9".into()),
        root: Some("/srv/tundra".into()),
        exports_file: nfs.then(|| "/etc/ganesha/tundra.conf".into()),
        ..Default::default()
    };
    let key = "-----BEGIN OPENSSH PRIVATE KEY-----\nx\n-----END OPENSSH PRIVATE KEY-----\n".to_string();
    let mut types = Vec::new();
    for (name, backend) in [("nfs", ShareBackend::Nfs), ("gluster", ShareBackend::Glusterfs)] {
        let req = ShareTypeCreate {
            name: name.into(),
            description: String::new(),
            backend,
            settings: settings(backend == ShareBackend::Nfs),
            credential: Some(key.clone()),
        };
        types.push(flows::create_type(&w.c, &svc, req).await.unwrap());
    }
    // An NFS setting on a GlusterFS type is refused at its field.
    let bad = ShareTypeCreate {
        name: "g2".into(),
        description: String::new(),
        backend: ShareBackend::Glusterfs,
        settings: settings(true),
        credential: Some(key.clone()),
    };
    let e = flows::create_type(&w.c, &svc, bad).await.unwrap_err();
    assert!(e.to_string().contains("exports_file"), "{e}");

    let make = |name: &str, t: &tundra_api::shares::ShareType| ShareCreate {
        project_id: project.id,
        name: name.into(),
        description: String::new(),
        share_type_id: t.id,
        size_gib: 1,
        networks: Vec::new(),
        snapshot_id: None,
    };
    let s = flows::create_share(&w.c, &svc, project.id, make("home", &types[0])).await.unwrap();
    let ip = |to: &str, level| ShareAccessCreate {
        share_id: s.id,
        kind: AccessKind::Ip,
        access_to: to.into(),
        access_level: level,
    };
    let a = flows::create_access(&w.c, &svc, &s, ip("10.1.0.0/24", AccessLevel::Rw)).await.unwrap();
    let b = flows::create_access(&w.c, &svc, &s, ip("10.2.0.7", AccessLevel::Ro)).await.unwrap();
    worker::once(&w.c, false).await.unwrap(); // the share is made; its rules wait for it
    worker::once(&w.c, false).await.unwrap();
    for id in [a.id, b.id] {
        assert_eq!(w.c.store().access(id).await.unwrap().state, AccessState::Active);
    }
    let r = share_ref(project.id, s.id);
    let grants = fake.grants();
    assert_eq!(grants.get(&("10.1.0.0/24".to_string(), r.clone())), Some(&false));
    assert_eq!(grants.get(&("10.2.0.7/32".to_string(), r.clone())), Some(&true));
    assert_eq!(fake.calls().iter().filter(|c| c.starts_with("allow")).count(), 1, "{:?}", fake.calls());

    let a = w.c.store().access(a.id).await.unwrap();
    flows::delete_access(&w.c, &svc, &a).await.unwrap();
    worker::once(&w.c, false).await.unwrap();
    assert!(w.c.store().access(a.id).await.is_err());
    assert_eq!(fake.grants().keys().map(|k| k.0.clone()).collect::<Vec<_>>(), ["10.2.0.7/32"]);
    assert_eq!(fake.calls().last().unwrap(), "allow 10.2.0.7/32");

    // GlusterFS: read-write rules only, no snapshots.
    let g = flows::create_share(&w.c, &svc, project.id, make("scratch", &types[1])).await.unwrap();
    let ro = ShareAccessCreate {
        share_id: g.id,
        kind: AccessKind::Ip,
        access_to: "10.3.0.1".into(),
        access_level: AccessLevel::Ro,
    };
    let e = flows::create_access(&w.c, &svc, &g, ro).await.unwrap_err();
    assert!(e.to_string().contains("read-write only"), "{e}");
    let snap = ShareSnapshotCreate { share_id: g.id, name: "s".into(), description: String::new() };
    let e = flows::create_snapshot(&w.c, &svc, &g, snap).await.unwrap_err();
    assert!(e.to_string().contains("no snapshots"), "{e}");
}
