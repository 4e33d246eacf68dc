//! `testprov`: a test-only provider that exercises every framework feature
//! against a real Terraform. Its "cloud" is a JSON file (provider setting
//! `store`, or `TESTPROV_STORE`), so tests can change and delete objects out
//! of band and check exactly what reached the provider. Never shipped.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use tfplugin::schema::{Attribute, Block, BlockNesting, NestedBlock, Nesting, Schema};
use tfplugin::{
    ConfigureInfo, Ctx, DataSource, Diagnostic, Diagnostics, EphemeralResource, Failed, Opened, PlanChange, Provider,
    Resource, StateUpgrader, TfValue, Timeouts, Type, Value, modifiers, validators,
};
use tokio::sync::Mutex;

pub struct TestProvider;

tfplugin::tf_object! {
    pub struct Config {
        pub store: Value<String>,
    }
}

/// The configured client: the store file, one lock per process, and the last
/// parsed contents (reused while the file is unchanged, so reading 1,000
/// things does not parse the file 1,000 times).
pub struct Store {
    path: PathBuf,
    lock: Mutex<()>,
    cache: std::sync::Mutex<Option<(SystemTime, u64, Arc<Data>)>>,
}

#[derive(Serialize, Deserialize, Default, Clone, Debug)]
pub struct Data {
    #[serde(default)]
    pub things: BTreeMap<String, Record>,
    #[serde(default)]
    pub tokens_opened: u64,
    #[serde(default)]
    pub tokens_closed: u64,
}

#[derive(Serialize, Deserialize, Default, Clone, Debug)]
pub struct Record {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub size: Option<i64>,
    pub cidr: Option<String>,
    pub mac: Option<String>,
    pub owner: Option<String>,
    pub zone: Option<String>,
    pub tags: Option<BTreeMap<String, String>>,
    pub password: Option<String>,
    pub secret_sha: Option<String>,
    pub secret_version: Option<i64>,
    pub revision: i64,
    pub created_at: String,
    pub disks: Option<Vec<(i64, Option<String>, String)>>,
    pub legacy_label: Option<String>,
    pub networks: Option<Vec<(String, Option<i64>)>>,
}

impl Store {
    async fn update<T>(&self, f: impl FnOnce(&mut Data) -> T) -> Result<T, Diagnostic> {
        let _g = self.lock.lock().await;
        let mut data = (*self.load()?).clone();
        let out = f(&mut data);
        let tmp = self.path.with_extension("tmp");
        let text = serde_json::to_vec_pretty(&data).expect("store serializes");
        std::fs::write(&tmp, text)
            .and_then(|_| std::fs::rename(&tmp, &self.path))
            .map_err(|e| io_err(&self.path, e))?;
        // Our own write is the truth now, whatever the file's mtime granularity.
        let meta = std::fs::metadata(&self.path).map_err(|e| io_err(&self.path, e))?;
        let modified = meta.modified().map_err(|e| io_err(&self.path, e))?;
        *self.cache.lock().expect("cache lock") = Some((modified, meta.len(), Arc::new(data)));
        Ok(out)
    }
    fn load(&self) -> Result<Arc<Data>, Diagnostic> {
        let meta = match std::fs::metadata(&self.path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Arc::new(Data::default())),
            Err(e) => return Err(io_err(&self.path, e)),
        };
        let key = (meta.modified().map_err(|e| io_err(&self.path, e))?, meta.len());
        let mut cache = self.cache.lock().expect("cache lock");
        if let Some((m, l, d)) = cache.as_ref()
            && (*m, *l) == key
        {
            return Ok(d.clone());
        }
        let b = std::fs::read(&self.path).map_err(|e| io_err(&self.path, e))?;
        let data: Data = serde_json::from_slice(&b)
            .map_err(|e| Diagnostic::error("Corrupt store", format!("{}: {e}", self.path.display())))?;
        let data = Arc::new(data);
        *cache = Some((key.0, key.1, data.clone()));
        Ok(data)
    }
}

fn io_err(p: &std::path::Path, e: std::io::Error) -> Diagnostic {
    Diagnostic::error("Store not accessible", format!("{}: {e}", p.display()))
}

impl Provider for TestProvider {
    type Client = Store;
    type Config = Config;

    fn type_name(&self) -> &'static str {
        "testprov"
    }
    fn schema(&self) -> Schema {
        Schema::new(
            Block::new("A provider for testing the tfplugin framework.").attr(
                Attribute::string("store").optional().description("Path of the JSON store. Env: `TESTPROV_STORE`."),
            ),
        )
    }
    async fn configure(&self, config: Config, _info: ConfigureInfo) -> Result<(Store, Diagnostics), Diagnostics> {
        let path = config.store.or_env("TESTPROV_STORE").into_known().ok_or_else(|| {
            Diagnostics::from(
                Diagnostic::error(
                    "Missing store",
                    "Set `store` in the provider block or TESTPROV_STORE in the environment.",
                )
                .at(tfplugin::AttrPath::attr_root("store")),
            )
        })?;
        // A warning from configure (as the tundra provider's for an old
        // server), when the test asks for one.
        let mut warnings = Diagnostics::new();
        if let Ok(w) = std::env::var("TESTPROV_CONFIGURE_WARNING") {
            warnings.push(Diagnostic::warning("Configured with a warning", w));
        }
        Ok((Store { path: path.into(), lock: Mutex::new(()), cache: std::sync::Mutex::new(None) }, warnings))
    }
    fn resources(&self) -> Vec<Box<dyn tfplugin::resource::DynResource<Store>>> {
        vec![tfplugin::resource(ThingResource), tfplugin::resource(EchoResource)]
    }
    fn data_sources(&self) -> Vec<Box<dyn tfplugin::resource::DynDataSource<Store>>> {
        vec![tfplugin::data_source(ThingData)]
    }
    fn ephemeral_resources(&self) -> Vec<Box<dyn tfplugin::resource::DynEphemeral<Store>>> {
        vec![tfplugin::ephemeral(TokenEphemeral)]
    }
}

tfplugin::tf_object! {
    #[derive(Clone, Debug)]
    pub struct Disk {
        pub size_gb: Value<i64>,
        pub label: Value<String>,
        pub serial: Value<String>,
    }
}

tfplugin::tf_object! {
    #[derive(Clone, Debug)]
    pub struct Net {
        pub name: Value<String>,
        pub vlan: Value<i64>,
    }
}

tfplugin::tf_object! {
    #[derive(Clone, Debug)]
    pub struct Thing {
        pub id: Value<String>,
        pub name: Value<String>,
        pub kind: Value<String>,
        pub size: Value<i64>,
        pub cidr: Value<String>,
        pub mac: Value<String>,
        pub owner: Value<String>,
        pub zone: Value<String>,
        pub tags: Value<BTreeMap<String, String>>,
        pub password: Value<String>,
        pub secret: Value<String>,
        pub secret_version: Value<i64>,
        pub revision: Value<i64>,
        pub created_at: Value<String>,
        pub disks: Value<Vec<Disk>>,
        pub legacy_label: Value<String>,
        pub network: Value<Vec<Net>>,
        pub delay_ms: Value<i64>,
    }
}

fn sha(s: &str) -> String {
    // Not cryptographic; enough to prove the value arrived without storing it.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}")
}

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

fn new_id() -> String {
    let t = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_nanos();
    format!("thing-{:x}-{}-{}", t, std::process::id(), NEXT_ID.fetch_add(1, Ordering::Relaxed))
}

fn opt<T: Clone>(v: &Value<T>) -> Option<T> {
    v.known().cloned()
}

impl Thing {
    fn apply_to(&self, r: &mut Record) {
        r.name = opt(&self.name).unwrap_or_default();
        r.kind = opt(&self.kind).unwrap_or_else(|| "small".into());
        r.size = opt(&self.size);
        r.cidr = opt(&self.cidr);
        r.mac = opt(&self.mac);
        r.owner = opt(&self.owner);
        r.zone = opt(&self.zone);
        r.tags = opt(&self.tags);
        r.password = opt(&self.password);
        if let Some(s) = self.secret.known() {
            r.secret_sha = Some(sha(s));
        }
        r.secret_version = opt(&self.secret_version);
        r.legacy_label = opt(&self.legacy_label);
        r.disks = self.disks.known().map(|ds| {
            ds.iter()
                .enumerate()
                .map(|(i, d)| (opt(&d.size_gb).unwrap_or(0), opt(&d.label), format!("{}-disk{i}", r.id)))
                .collect()
        });
        r.networks = self
            .network
            .known()
            .map(|ns| ns.iter().map(|n| (opt(&n.name).unwrap_or_default(), opt(&n.vlan))).collect());
    }

    fn from_record(r: &Record) -> Thing {
        Thing {
            id: Value::Known(r.id.clone()),
            name: Value::Known(r.name.clone()),
            kind: Value::Known(r.kind.clone()),
            size: r.size.into(),
            cidr: r.cidr.clone().into(),
            mac: r.mac.clone().into(),
            owner: r.owner.clone().into(),
            zone: r.zone.clone().into(),
            tags: r.tags.clone().into(),
            password: r.password.clone().into(),
            secret: Value::Null,
            secret_version: r.secret_version.into(),
            revision: Value::Known(r.revision),
            created_at: Value::Known(r.created_at.clone()),
            disks: r
                .disks
                .as_ref()
                .map(|ds| {
                    ds.iter()
                        .map(|(s, l, serial)| Disk {
                            size_gb: Value::Known(*s),
                            label: l.clone().into(),
                            serial: Value::Known(serial.clone()),
                        })
                        .collect()
                })
                .into(),
            legacy_label: r.legacy_label.clone().into(),
            network: r
                .networks
                .as_ref()
                .map(|ns| ns.iter().map(|(n, v)| Net { name: Value::Known(n.clone()), vlan: (*v).into() }).collect())
                .into(),
            delay_ms: Value::Null,
        }
    }
}

pub struct ThingResource;

impl ThingResource {
    fn current_type() -> Schema {
        let disk = vec![
            Attribute::number("size_gb").required().validator(validators::range(1.0, 65536.0)),
            Attribute::string("label").optional(),
            Attribute::string("serial").computed().description("Assigned by the store."),
        ];
        Schema::new(
            Block::new("A thing in the test store.")
                .attr(
                    Attribute::string("id")
                        .computed()
                        .modifier(modifiers::use_state_for_unknown())
                        .description("Store id."),
                )
                .attr(Attribute::string("name").required().validator(validators::length(1, 32)).validator(
                    validators::regex(
                        "^[a-z][a-z0-9-]*$",
                        "lowercase letters, digits and dashes, starting with a letter",
                    ),
                ))
                .attr(
                    Attribute::string("kind")
                        .optional()
                        .computed()
                        .default(TfValue::string("small"))
                        .validator(validators::one_of(["small", "large"])),
                )
                .attr(Attribute::number("size").optional().validator(validators::range(1.0, 1000.0)))
                .attr(Attribute::string("cidr").optional().validator(validators::cidr()))
                .attr(Attribute::string("mac").optional().validator(validators::mac()))
                .attr(Attribute::string("owner").optional().validator(validators::uuid()))
                .attr(Attribute::string("zone").optional().modifier(modifiers::requires_replace()))
                .attr(Attribute::map("tags", Type::String).optional())
                .attr(Attribute::string("password").optional().sensitive())
                .attr(Attribute::string("secret").optional().write_only().description("Never stored in state."))
                .attr(Attribute::number("secret_version").optional().description("Bump to send a new `secret`."))
                .attr(Attribute::number("revision").computed())
                .attr(Attribute::string("created_at").computed().modifier(modifiers::use_state_for_unknown()))
                .attr(Attribute::nested("disks", Nesting::List, disk).optional())
                .attr(Attribute::string("legacy_label").optional().deprecated("use tags instead"))
                .attr(Attribute::number("delay_ms").optional().description("Create takes this long (tests timeouts)."))
                .block(NestedBlock::new(
                    "network",
                    BlockNesting::List,
                    Block::new("A network.")
                        .attr(Attribute::string("name").required())
                        .attr(Attribute::number("vlan").optional().validator(validators::range(1.0, 4094.0))),
                )),
        )
        .version(1)
    }
}

impl Resource<Store> for ThingResource {
    type State = Thing;

    fn type_name(&self) -> &'static str {
        "testprov_thing"
    }
    fn schema(&self) -> Schema {
        Self::current_type()
    }
    fn timeouts(&self) -> Option<Timeouts> {
        Some(Timeouts { create: Some(Duration::from_secs(600)), update: None, delete: Some(Duration::from_secs(600)) })
    }
    fn importable(&self) -> bool {
        true
    }

    async fn create(&self, ctx: &Ctx<Store>, plan: Thing) -> Result<Thing, Failed<Thing>> {
        let store = ctx.client()?;
        let id = new_id();
        let mut rec =
            Record { id: id.clone(), created_at: format!("{:?}", SystemTime::now()), revision: 1, ..Record::default() };
        plan.apply_to(&mut rec);
        let r = rec.clone();
        store.update(|d| d.things.insert(id.clone(), r)).await?;
        if let Some(ms) = plan.delay_ms.known().copied() {
            let until = Instant::now() + Duration::from_millis(ms as u64);
            loop {
                if Instant::now() >= until {
                    break;
                }
                if ctx.deadline().is_some_and(|d| Instant::now() >= d) {
                    let mut partial = Thing::from_record(&rec);
                    partial.delay_ms = plan.delay_ms.clone();
                    return Err(Failed::with_state(
                        Diagnostic::error(
                            "Timed out creating thing",
                            format!("{id} exists but is not ready; it is recorded in state. Raise timeouts.create."),
                        ),
                        partial,
                    ));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let mut out = Thing::from_record(&rec);
        out.delay_ms = plan.delay_ms;
        Ok(out)
    }

    async fn read(&self, ctx: &Ctx<Store>, state: Thing) -> Result<Option<Thing>, Diagnostics> {
        let store = ctx.client()?;
        let id = state.id.known().cloned().unwrap_or_default();
        let data = store.load()?;
        Ok(data.things.get(&id).map(|r| {
            let mut t = Thing::from_record(r);
            t.delay_ms = state.delay_ms;
            t
        }))
    }

    async fn update(&self, ctx: &Ctx<Store>, prior: Thing, plan: Thing) -> Result<Thing, Failed<Thing>> {
        let store = ctx.client()?;
        let id = prior.id.known().cloned().unwrap_or_default();
        let rec = store
            .update(|d| {
                d.things.get_mut(&id).map(|r| {
                    plan.apply_to(r);
                    r.revision += 1;
                    r.clone()
                })
            })
            .await?;
        let rec = rec.ok_or_else(|| {
            Diagnostic::error("Thing vanished", format!("{id} was deleted during update; apply again to recreate it."))
        })?;
        let mut out = Thing::from_record(&rec);
        out.delay_ms = plan.delay_ms;
        Ok(out)
    }

    async fn delete(&self, ctx: &Ctx<Store>, state: Thing) -> Result<(), Diagnostics> {
        let store = ctx.client()?;
        let id = state.id.known().cloned().unwrap_or_default();
        store.update(|d| d.things.remove(&id)).await?;
        Ok(())
    }

    async fn import(&self, ctx: &Ctx<Store>, id: &str) -> Result<Thing, Diagnostics> {
        let store = ctx.client()?;
        let data = store.load()?;
        let r = data.things.get(id).ok_or_else(|| {
            Diagnostic::error(
                "No such thing",
                format!("The store has no thing {id:?}; check the id with the store's listing."),
            )
        })?;
        Ok(Thing::from_record(r))
    }

    async fn modify_plan(&self, _ctx: &Ctx<Store>, change: &mut PlanChange<Thing>) {
        if change.planned.kind.known().is_some_and(|k| k == "large")
            && change.planned.size.known().is_some_and(|s| *s < 10)
        {
            change.diagnostics.push(
                Diagnostic::error(
                    "Too small for a large thing",
                    "A large thing needs size >= 10; raise size or use kind = \"small\".",
                )
                .at(tfplugin::AttrPath::attr_root("size")),
            );
        }
    }

    fn validate_config(&self, config: &Thing, diags: &mut Diagnostics) {
        if config.secret_version.is_known() && config.secret.is_null() {
            diags.push(
                Diagnostic::error("secret_version without secret", "Set secret too, or remove secret_version.")
                    .at(tfplugin::AttrPath::attr_root("secret_version")),
            );
        }
    }

    fn state_upgraders(&self) -> Vec<StateUpgrader> {
        // Version 0 called `tags` `labels` and had no revision.
        let mut v0 = match Self::current_type().object_type() {
            Type::Object(m) => m,
            _ => unreachable!(),
        };
        let tags = v0.remove("tags").expect("tags");
        v0.remove("revision");
        v0.insert("labels".into(), tags);
        v0.remove("timeouts");
        vec![StateUpgrader {
            from_version: 0,
            prior_type: Type::Object(v0),
            upgrade: Box::new(|old| {
                let TfValue::Object(mut m) = old else { return Err(Diagnostic::error("bad v0 state", "").into()) };
                let labels = m.remove("labels").unwrap_or(TfValue::Null);
                m.insert("tags".into(), labels);
                m.insert("revision".into(), TfValue::Number(tfplugin::Number::Int(1)));
                Ok(TfValue::Object(m))
            }),
        }]
    }
}

tfplugin::tf_object! {
    pub struct ThingLookup {
        pub id: Value<String>,
        pub name: Value<String>,
        pub kind: Value<String>,
        pub tags: Value<BTreeMap<String, String>>,
    }
}

pub struct ThingData;

impl DataSource<Store> for ThingData {
    type State = ThingLookup;
    fn type_name(&self) -> &'static str {
        "testprov_thing"
    }
    fn schema(&self) -> Schema {
        Schema::new(
            Block::new("Looks up a thing by id.")
                .attr(Attribute::string("id").required())
                .attr(Attribute::string("name").computed())
                .attr(Attribute::string("kind").computed())
                .attr(Attribute::map("tags", Type::String).computed()),
        )
    }
    async fn read(&self, ctx: &Ctx<Store>, config: ThingLookup) -> Result<ThingLookup, Diagnostics> {
        let id = config.id.known().cloned().unwrap_or_default();
        let data = ctx.client()?.load()?;
        let r = data.things.get(&id).ok_or_else(|| {
            Diagnostic::error("No such thing", format!("No thing has id {id:?}."))
                .at(tfplugin::AttrPath::attr_root("id"))
        })?;
        Ok(ThingLookup {
            id: Value::Known(r.id.clone()),
            name: Value::Known(r.name.clone()),
            kind: Value::Known(r.kind.clone()),
            tags: Value::Known(r.tags.clone().unwrap_or_default()),
        })
    }
}

tfplugin::tf_object! {
    pub struct Token {
        pub name: Value<String>,
        pub value: Value<String>,
    }
}

pub struct TokenEphemeral;

impl EphemeralResource<Store> for TokenEphemeral {
    type State = Token;
    fn type_name(&self) -> &'static str {
        "testprov_token"
    }
    fn schema(&self) -> Schema {
        Schema::new(
            Block::new("A short-lived token that never reaches state.")
                .attr(Attribute::string("name").required())
                .attr(Attribute::string("value").computed().sensitive()),
        )
    }
    async fn open(&self, ctx: &Ctx<Store>, config: Token) -> Result<Opened<Token>, Diagnostics> {
        let n = ctx.client()?.update(|d| {
            d.tokens_opened += 1;
            d.tokens_opened
        });
        let n = n.await?;
        let name = config.name.known().cloned().unwrap_or_default();
        Ok(Opened {
            result: Token { value: Value::Known(format!("tok-{name}-{n}-ephemeral")), name: config.name },
            renew_at: None,
            private: Some(name.into_bytes()),
        })
    }
    async fn close(&self, ctx: &Ctx<Store>, _private: Option<Vec<u8>>) -> Result<(), Diagnostics> {
        ctx.client()?.update(|d| d.tokens_closed += 1).await?;
        Ok(())
    }
}

tfplugin::tf_object! {
    #[derive(Clone, Debug)]
    pub struct Echo {
        pub id: Value<String>,
        pub input: TfValue,
        pub output: TfValue,
        pub triggers_replace: TfValue,
    }
}

/// The shape of Terraform's built-in `terraform_data` (dynamic `input` echoed
/// to `output`, state only, no backing store): the fair peer for measuring
/// what the framework itself costs per resource.
pub struct EchoResource;

impl Resource<Store> for EchoResource {
    type State = Echo;
    fn type_name(&self) -> &'static str {
        "testprov_echo"
    }
    fn schema(&self) -> Schema {
        Schema::new(
            Block::new("Echoes `input` to `output`; keeps nothing outside Terraform state.")
                .attr(Attribute::string("id").computed().modifier(modifiers::use_state_for_unknown()))
                .attr(Attribute::new("input", Type::Dynamic).optional())
                .attr(Attribute::new("output", Type::Dynamic).computed())
                .attr(
                    Attribute::new("triggers_replace", Type::Dynamic)
                        .optional()
                        .modifier(modifiers::requires_replace()),
                ),
        )
    }
    async fn create(&self, _ctx: &Ctx<Store>, mut plan: Echo) -> Result<Echo, Failed<Echo>> {
        plan.id = Value::Known(new_id());
        plan.output = plan.input.clone();
        Ok(plan)
    }
    async fn read(&self, _ctx: &Ctx<Store>, state: Echo) -> Result<Option<Echo>, Diagnostics> {
        Ok(Some(state))
    }
    async fn update(&self, _ctx: &Ctx<Store>, _prior: Echo, mut plan: Echo) -> Result<Echo, Failed<Echo>> {
        plan.output = plan.input.clone();
        Ok(plan)
    }
    async fn delete(&self, _ctx: &Ctx<Store>, _state: Echo) -> Result<(), Diagnostics> {
        Ok(())
    }
}
