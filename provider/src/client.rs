//! The provider's side of talking to tundrad: `tundra-client` (paths,
//! idempotent creates, problem documents), plus what only a provider needs —
//! failures as Terraform diagnostics that carry the service's advice and
//! point at the attribute the service blamed, and the project a resource
//! works in.

use tfplugin::{AttrPath, Diagnostic};
pub use tundra_client::{ApiError, ApiResult, Client, Noun, nouns};

/// Failures as diagnostics.
pub trait Diag {
    /// A diagnostic naming what failed, with the service's detail.
    fn diag(&self, summary: &str) -> Diagnostic;
    /// Like [`diag`](Diag::diag), pointing at the attribute the service
    /// blamed (its JSON pointer `/name` becomes the attribute `name`).
    fn diag_at(&self, summary: &str, fields: &[(&str, &str)]) -> Diagnostic;
}

impl Diag for ApiError {
    fn diag(&self, summary: &str) -> Diagnostic {
        Diagnostic::error(summary, self.detail())
    }

    fn diag_at(&self, summary: &str, fields: &[(&str, &str)]) -> Diagnostic {
        let d = self.diag(summary);
        match self.pointer().and_then(|p| fields.iter().find(|(ptr, _)| *ptr == p).map(|(_, attr)| *attr)) {
            Some(attr) => d.at(AttrPath::attr_root(attr)),
            None => d,
        }
    }
}

/// What resources ask of the client besides calls.
pub trait ClientExt {
    /// The project a resource works in: its own `project_id`, else the
    /// provider's `project` (a name or ID), resolved to an ID.
    fn project_id(
        &self,
        explicit: Option<&str>,
    ) -> impl Future<Output = Result<tundra_api::ProjectId, Diagnostic>> + Send;
}

impl ClientExt for Client {
    async fn project_id(&self, explicit: Option<&str>) -> Result<tundra_api::ProjectId, Diagnostic> {
        let Some(p) = explicit.map(str::to_string).or_else(|| self.project.clone()) else {
            return Err(Diagnostic::error(
                "No project",
                "Set project_id on the resource, or project in the provider block (or TUNDRA_PROJECT).",
            )
            .at(AttrPath::attr_root("project_id")));
        };
        let proj = self.get(&nouns::PROJECTS, &p).await.map_err(|e| e.diag(&format!("Project {p:?} not found")))?;
        Ok(proj.id)
    }
}
