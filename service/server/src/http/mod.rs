//! The HTTP API: one file per noun, each a set of thin handlers — parse
//! the request, check the caller, call the conductor (flows and rules) or
//! the store (a plain read or write of one object), render the view. Each
//! route is registered with its OpenAPI description (utoipa-axum) at its
//! path from `tundra_api::paths`, so the document cannot miss a route and
//! the client cannot spell one differently; the tenancy test walks the
//! document to reach every route.

pub mod agent;
pub mod appliances;
pub mod cluster_templates;
pub mod clusters;
pub mod flavors;
pub mod identity;
pub mod images;
pub mod keypairs;
pub mod machines;
pub mod metadata;
pub mod networks;
pub mod nodes;
pub mod operations;
pub mod physical_networks;
pub mod ports;
pub mod share_types;
pub mod shares;
pub mod subnets;
pub mod switches;
pub mod system;

use axum::extract::DefaultBodyLimit;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tundra API",
        description = "The bare-metal cloud for science. Errors are RFC 9457 problem documents; lists are \
                       keyset-paginated (`limit`, `after` = the previous page's `next`); updates take \
                       `If-Match` with the ETag of a GET; creates take an `Idempotency-Key`.",
        license(name = "Apache-2.0")
    ),
    modifiers(&Bearer),
    tags(
        (name = "system", description = "Health, info, metrics"),
        (name = "identity", description = "Projects, users, roles, tokens"),
        (name = "catalog", description = "Keypairs, flavors, images"),
        (name = "machines", description = "Physical machines, their BMCs and provision states (site admins)"),
        (name = "fabric", description = "Physical networks and switches (site admins); networks, subnets and ports; switch-port drift and its repair"),
        (name = "shares", description = "Share types (site admins); a project's shares, their access rules and snapshots; the keys clients mount with"),
        (name = "nodes", description = "A project's bare-metal servers: placed, deployed with a config drive, cleaned on delete"),
        (name = "clusters", description = "Cluster templates; a project's clusters (Docker Swarm, Kubernetes) on nodes tundrad makes, joins and scales in place"),
        (name = "appliances", description = "Appliance templates (parameters, secrets, roles, outputs — data, versioned); a project's appliances: platforms whose nodes tundrad makes, configures and scales in place"),
        (name = "operations", description = "Long-running work and the audit log"),
        (name = "boot", description = "What booting machines use: iPXE scripts, boot assets, and the agent protocol (agent token from the boot script). Served only on the provisioning networks' boot listeners, never on the API listener"),
    )
)]
pub struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let c = openapi.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API token (tnd_…) or a JWT from a configured identity provider"))
                    .build(),
            ),
        );
        c.add_security_scheme(
            "agent",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The per-boot agent token (tna_…) from the machine's iPXE script"))
                    .build(),
            ),
        );
        openapi.security =
            Some(vec![utoipa::openapi::security::SecurityRequirement::new("bearer", Vec::<String>::new())]);
    }
}

/// The API listener's routes, with their OpenAPI descriptions.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(system::routes())
        .merge(identity::routes())
        .merge(keypairs::routes())
        .merge(flavors::routes())
        .merge(images::routes())
        .merge(machines::routes())
        .merge(physical_networks::routes())
        .merge(switches::routes())
        .merge(networks::routes())
        .merge(subnets::routes())
        .merge(ports::routes())
        .merge(share_types::routes())
        .merge(shares::routes())
        .merge(nodes::routes())
        .merge(cluster_templates::routes())
        .merge(clusters::routes())
        .merge(appliances::routes())
        .merge(operations::routes())
}

/// A boot listener's routes (`netboot`): what booting machines use, and the
/// metadata service (not in the document: it speaks OpenStack's format).
pub fn boot_router() -> axum::Router<AppState> {
    let (router, _) = agent::routes().split_for_parts();
    router.merge(metadata::routes())
}

/// The OpenAPI document, as committed in docs/openapi.json: the API
/// listener's routes and the boot listeners' (tag `boot`).
pub fn openapi_json() -> String {
    let (_, mut api) = router().split_for_parts();
    api.merge(agent::routes().split_for_parts().1);
    let mut s = api.to_pretty_json().expect("OpenAPI serializes");
    s.push('\n');
    s
}

/// A router with what every listener has: a problem for unknown paths,
/// request ids, metrics, the body limit.
pub fn app(router: axum::Router<AppState>, state: &AppState) -> axum::Router {
    router
        .fallback(|| async { crate::error::ApiError::NotFound { noun: "route", id: "this path".into() } })
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::observe::layer))
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .with_state(state.clone())
}

#[cfg(test)]
mod tests {
    /// docs/openapi.json is generated from the routes; regenerate with
    /// `scripts/generate.sh` (or UPDATE_GENERATED=1 cargo test).
    #[test]
    fn openapi_document_is_committed_and_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
        let fresh = super::openapi_json();
        if std::env::var_os("UPDATE_GENERATED").is_some() {
            std::fs::write(&path, &fresh).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(committed == fresh, "docs/openapi.json is stale; run scripts/generate.sh and commit it");
        let doc: serde_json::Value = serde_json::from_str(&fresh).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
    }

    /// Every route is at a path of `tundra_api::paths` (where the client
    /// finds it too).
    #[test]
    fn every_route_is_a_declared_path() {
        let doc: serde_json::Value = serde_json::from_str(&super::openapi_json()).unwrap();
        let declared = tundra_api::paths::ALL;
        for path in doc["paths"].as_object().unwrap().keys() {
            assert!(declared.contains(&path.as_str()), "{path} is not in tundra_api::paths::ALL");
        }
        assert_eq!(doc["paths"].as_object().unwrap().len(), declared.len(), "a declared path has no route");
    }
}
