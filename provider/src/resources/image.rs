//! `tundra_image`: a disk image nodes are deployed from. tundrad fetches it
//! from `source_url` (an allow-listed mirror) or the provider uploads
//! `source_path`; either way the bytes are verified against `sha256` and
//! stored raw. The bytes never change in place: new bytes are a new image.

use std::time::{Duration, Instant};

use tfplugin::schema::{Attribute, Block, Schema};
use tfplugin::{AttrPath, Ctx, Diagnostic, Diagnostics, Failed, Resource, Timeouts, Value, modifiers, validators};
use tundra_api::catalog::{DiskFormat, Image, ImageCreate, ImageStatus, ImageUpdate};
use tundra_api::ops::Operation;

use super::flavor::public_attr;
use super::keypair::project_id_attr;
use super::{Rest, created_at_attr, description_attr, id_attr, known, name_validator};
use crate::client::{Client, ClientExt, Diag, nouns};

tfplugin::tf_object! {
    #[derive(Clone, Debug)]
    pub struct ImageState {
        pub id: Value<String>,
        pub project_id: Value<String>,
        pub public: Value<bool>,
        pub name: Value<String>,
        pub description: Value<String>,
        pub disk_format: Value<String>,
        pub sha256: Value<String>,
        pub source_url: Value<String>,
        pub source_path: Value<String>,
        pub status: Value<String>,
        pub size_bytes: Value<i64>,
        pub raw_sha256: Value<String>,
        pub created_at: Value<String>,
    }
}

impl ImageState {
    /// State from the service's view; `source_path` exists only in
    /// configuration, so it is carried over from `prior`.
    pub fn from_view(i: &Image, prior: Option<&ImageState>) -> Self {
        ImageState {
            id: Value::Known(i.id.to_string()),
            project_id: i.project_id.map(|p| p.to_string()).into(),
            public: Value::Known(i.project_id.is_none()),
            name: Value::Known(i.name.clone()),
            description: Value::Known(i.description.clone()),
            disk_format: Value::Known(i.disk_format.as_str().into()),
            sha256: Value::Known(i.sha256.clone()),
            source_url: i.source_url.clone().into(),
            source_path: prior.map(|p| p.source_path.clone()).unwrap_or(Value::Null),
            status: Value::Known(i.status.as_str().into()),
            size_bytes: i.size_bytes.into(),
            raw_sha256: i.raw_sha256.clone().into(),
            created_at: Value::Known(i.created_at.clone()),
        }
    }
}

const FIELDS: &[(&str, &str)] = &[
    ("/name", "name"),
    ("/description", "description"),
    ("/sha256", "sha256"),
    ("/source_url", "source_url"),
    ("/disk_format", "disk_format"),
];

const REST: Rest<Image> = Rest { noun: &nouns::IMAGES, fields: FIELDS };

pub struct ImageResource;

impl Resource<Client> for ImageResource {
    type State = ImageState;

    fn type_name(&self) -> &'static str {
        "tundra_image"
    }

    fn schema(&self) -> Schema {
        Schema::new(
            Block::new(
                "A disk image. Give `source_url` (tundrad fetches it; the URL must be under the service's \
                 `image_source_allow`) or `source_path` (this provider uploads the local file). The bytes must \
                 hash to `sha256`; qcow2 is converted to raw. Create waits until the image is `active`.",
            )
            .attr(id_attr("image"))
            .attr(project_id_attr("image"))
            .attr(public_attr("image"))
            .attr(
                Attribute::string("name")
                    .required()
                    .validator(name_validator())
                    .description("Unique within its project (or among public images)."),
            )
            .attr(description_attr())
            .attr(
                Attribute::string("disk_format")
                    .required()
                    .validator(validators::one_of(["raw", "qcow2"]))
                    .modifier(modifiers::requires_replace())
                    .description("Format of the source bytes: `raw` or `qcow2`."),
            )
            .attr(
                Attribute::string("sha256")
                    .required()
                    .validator(validators::regex("^[0-9a-fA-F]{64}$", "64 hex digits, as sha256sum prints"))
                    .modifier(modifiers::requires_replace())
                    .description("sha256 of the source bytes (`sha256sum` or `filesha256()`)."),
            )
            .attr(
                Attribute::string("source_url")
                    .optional()
                    .modifier(modifiers::requires_replace())
                    .validator(validators::regex("^https?://", "an http:// or https:// URL"))
                    .description("URL tundrad fetches the image from."),
            )
            .attr(
                Attribute::string("source_path")
                    .optional()
                    .modifier(modifiers::requires_replace())
                    .description("Local file this provider uploads."),
            )
            .attr(Attribute::string("status").computed().description("`active` once verified and stored."))
            .attr(Attribute::number("size_bytes").computed().description("Size of the stored raw image."))
            .attr(
                Attribute::string("raw_sha256")
                    .computed()
                    .description("sha256 of the stored raw image (what deployment verifies)."),
            )
            .attr(created_at_attr()),
        )
    }

    fn timeouts(&self) -> Option<Timeouts> {
        Some(Timeouts { create: Some(Duration::from_secs(3600)), update: None, delete: None })
    }

    fn importable(&self) -> bool {
        true
    }

    async fn modify_plan(&self, _ctx: &Ctx<Client>, change: &mut tfplugin::PlanChange<ImageState>) {
        let config_null = change.config.project_id.is_null();
        super::keep_project(change, |s| &mut s.project_id, config_null);
    }

    fn validate_config(&self, config: &ImageState, diags: &mut Diagnostics) {
        let (url, path) = (&config.source_url, &config.source_path);
        if url.is_null() && path.is_null() {
            diags.push(
                Diagnostic::error(
                    "No image source",
                    "Set source_url (tundrad fetches it) or source_path (a local file to upload).",
                )
                .at(AttrPath::attr_root("source_url")),
            );
        }
        if url.is_known() && path.is_known() {
            diags.push(
                Diagnostic::error("Two image sources", "Set only one of source_url and source_path.")
                    .at(AttrPath::attr_root("source_path")),
            );
        }
        if config.public.known() == Some(&true) && config.project_id.is_known() {
            diags.push(
                Diagnostic::error("Public images have no project", "Remove project_id, or set public = false.")
                    .at(AttrPath::attr_root("project_id")),
            );
        }
    }

    async fn create(&self, ctx: &Ctx<Client>, plan: ImageState) -> Result<ImageState, Failed<ImageState>> {
        let c = ctx.client()?;
        let project_id = match plan.public.known() {
            Some(true) => None,
            _ => Some(c.project_id(known(&plan.project_id)).await?),
        };
        let disk_format = DiskFormat::parse(known(&plan.disk_format).unwrap_or_default()).unwrap_or(DiskFormat::Raw);
        let req = ImageCreate {
            project_id,
            name: known(&plan.name).unwrap_or_default().into(),
            description: known(&plan.description).unwrap_or_default().into(),
            disk_format,
            sha256: known(&plan.sha256).unwrap_or_default().to_ascii_lowercase(),
            source_url: plan.source_url.known().cloned(),
        };
        let mut img: Image = REST.create(c, &req).await?;
        let id = img.id;
        if let Some(path) = known(&plan.source_path) {
            img = match c.upload_image(&id.to_string(), std::path::Path::new(path)).await {
                Ok(i) => i,
                Err(e) => {
                    let now: Option<Image> = c.find(&nouns::IMAGES, &id.to_string()).await.ok().flatten();
                    let partial = ImageState::from_view(now.as_ref().unwrap_or(&img), Some(&plan));
                    return Err(Failed::with_state(
                        e.diag("Image upload failed").at(AttrPath::attr_root("source_path")),
                        partial,
                    ));
                }
            };
        }
        if let Some(op) = img.operation_id {
            loop {
                let o: Operation = c
                    .get(&nouns::OPERATIONS, &op.to_string())
                    .await
                    .map_err(|e| e.diag("Could not follow the image import"))?;
                if o.state.is_terminal() {
                    break;
                }
                if ctx.deadline().is_some_and(|d| Instant::now() + Duration::from_secs(1) >= d) || ctx.stopping() {
                    img = c.get(&nouns::IMAGES, &id.to_string()).await.map_err(|e| e.diag("Could not read image"))?;
                    let done = match o.progress_total {
                        Some(t) => format!("{} of {t} bytes", o.progress_done),
                        None => format!("{} bytes", o.progress_done),
                    };
                    return Err(Failed::with_state(
                        Diagnostic::error(
                            "Image still importing",
                            format!(
                                "Image {id} has received {done} and is still importing (operation {op}). It is kept in state; raise timeouts.create, or apply again to replace it."
                            ),
                        ),
                        ImageState::from_view(&img, Some(&plan)),
                    ));
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            img = c.get(&nouns::IMAGES, &id.to_string()).await.map_err(|e| e.diag("Could not read image"))?;
        }
        let state = ImageState::from_view(&img, Some(&plan));
        if img.status != ImageStatus::Active {
            return Err(Failed::with_state(
                Diagnostic::error(
                    "Image import failed",
                    format!(
                        "{}. The failed image is kept in state and is replaced on the next apply.",
                        img.error.unwrap_or_else(|| img.status.as_str().into())
                    ),
                ),
                state,
            ));
        }
        Ok(state)
    }

    async fn read(&self, ctx: &Ctx<Client>, state: ImageState) -> Result<Option<ImageState>, Diagnostics> {
        let i: Option<Image> = REST.find(ctx, &state.id).await?;
        Ok(i.map(|i| ImageState::from_view(&i, Some(&state))))
    }

    async fn update(
        &self,
        ctx: &Ctx<Client>,
        prior: ImageState,
        plan: ImageState,
    ) -> Result<ImageState, Failed<ImageState>> {
        let req = ImageUpdate {
            name: plan.name.known().filter(|n| Some(*n) != prior.name.known()).cloned(),
            description: plan.description.known().cloned(),
        };
        let i: Image = REST.patch(ctx, &prior.id, &req).await?;
        Ok(ImageState::from_view(&i, Some(&plan)))
    }

    async fn delete(&self, ctx: &Ctx<Client>, state: ImageState) -> Result<(), Diagnostics> {
        REST.delete(ctx, &state.id).await
    }

    async fn import(&self, ctx: &Ctx<Client>, id: &str) -> Result<ImageState, Diagnostics> {
        let x: Image = REST.import(ctx, id).await?;
        Ok(ImageState::from_view(&x, None))
    }
}
