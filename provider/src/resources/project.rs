//! `tundra_project`: a tenant — owns keypairs, private flavors and images.
//! Creating and deleting projects is for site admins.

use tfplugin::schema::{Attribute, Block, Schema};
use tfplugin::{Ctx, Diagnostics, Failed, Resource, Value};
use tundra_api::identity::{Project, ProjectCreate, ProjectUpdate};

use super::{Rest, created_at_attr, description_attr, id_attr, name_validator};
use crate::client::{Client, nouns};

tfplugin::tf_object! {
    #[derive(Clone, Debug)]
    pub struct ProjectState {
        pub id: Value<String>,
        pub name: Value<String>,
        pub description: Value<String>,
        pub created_at: Value<String>,
    }
}

impl ProjectState {
    pub fn from_view(p: &Project) -> Self {
        ProjectState {
            id: Value::Known(p.id.to_string()),
            name: Value::Known(p.name.clone()),
            description: Value::Known(p.description.clone()),
            created_at: Value::Known(p.created_at.clone()),
        }
    }
}

const FIELDS: &[(&str, &str)] = &[("/name", "name"), ("/description", "description")];

const REST: Rest<Project> = Rest { noun: &nouns::PROJECTS, fields: FIELDS };

pub struct ProjectResource;

impl Resource<Client> for ProjectResource {
    type State = ProjectState;

    fn type_name(&self) -> &'static str {
        "tundra_project"
    }

    fn schema(&self) -> Schema {
        Schema::new(
            Block::new(
                "A project: the unit of tenancy. Its members create keypairs, flavors, images and (later) nodes, \
                 networks and shares in it. Only site admins create and delete projects; a project must be empty \
                 to be deleted.",
            )
            .attr(id_attr("project"))
            .attr(Attribute::string("name").required().validator(name_validator()).description("Unique name."))
            .attr(description_attr())
            .attr(created_at_attr()),
        )
    }

    fn importable(&self) -> bool {
        true
    }

    async fn create(&self, ctx: &Ctx<Client>, plan: ProjectState) -> Result<ProjectState, Failed<ProjectState>> {
        let c = ctx.client()?;
        let req = ProjectCreate {
            name: plan.name.known().cloned().unwrap_or_default(),
            description: plan.description.known().cloned().unwrap_or_default(),
        };
        let p: Project = REST.create(c, &req).await?;
        Ok(ProjectState::from_view(&p))
    }

    async fn read(&self, ctx: &Ctx<Client>, state: ProjectState) -> Result<Option<ProjectState>, Diagnostics> {
        let x: Option<Project> = REST.find(ctx, &state.id).await?;
        Ok(x.as_ref().map(ProjectState::from_view))
    }

    async fn update(
        &self,
        ctx: &Ctx<Client>,
        prior: ProjectState,
        plan: ProjectState,
    ) -> Result<ProjectState, Failed<ProjectState>> {
        let req = ProjectUpdate {
            name: (plan.name.known() != prior.name.known()).then(|| plan.name.known().cloned()).flatten(),
            description: plan.description.known().cloned(),
        };
        let p: Project = REST.patch(ctx, &prior.id, &req).await?;
        Ok(ProjectState::from_view(&p))
    }

    async fn delete(&self, ctx: &Ctx<Client>, state: ProjectState) -> Result<(), Diagnostics> {
        REST.delete(ctx, &state.id).await
    }

    async fn import(&self, ctx: &Ctx<Client>, id: &str) -> Result<ProjectState, Diagnostics> {
        let x: Project = REST.import(ctx, id).await?;
        Ok(ProjectState::from_view(&x))
    }
}
