//! Wire types shared by `tundrad` and the Terraform provider: request bodies,
//! views, typed IDs and enums. No IO lives here, so both sides (and the
//! generated OpenAPI document) agree on one definition of every message.
//!
//! Conventions every type follows: requests deny unknown fields (a typo is a
//! 400 that names the field, never silently ignored); views carry `revision`
//! where the object can be updated (its ETag); times are RFC 3339 UTC strings.

#[macro_use]
mod words;

pub mod agent;
pub mod appliances;
pub mod catalog;
pub mod clusters;
pub mod fabric;
pub mod identity;
pub mod ids;
pub mod machines;
pub mod nodes;
pub mod ops;
pub mod paths;
pub mod problem;
pub mod shares;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use ids::*;
pub use problem::{FieldError, PROBLEM_JSON, Problem};

/// The API version prefix every route lives under.
pub const API_VERSION: &str = "v1";

/// Header carrying the idempotency key of a create request.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Header carrying the request id (set by the caller or generated).
pub const REQUEST_ID: &str = "x-request-id";

/// Largest page a list route returns.
pub const MAX_PAGE: u32 = 500;

/// `GET /v1/info`: what is answering, for clients to check compatibility.
/// (Clients must accept fields they do not know: later releases add some.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ServiceInfo {
    pub service: String,
    /// The release (the workspace version, as `tundrad --version` prints it).
    pub version: String,
    pub api_version: String,
    /// The newest database migration applied: it grows when an upgrade
    /// migrates. Absent while the database does not answer (`/readyz` says so).
    #[serde(default)]
    pub schema_version: Option<i64>,
}

/// `GET /healthz` and `GET /readyz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Health {
    pub status: HealthStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    Ok,
    Unavailable,
}

/// One page of a list. Pass `next` back as `after` to get the following page;
/// it is absent on the last page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// Query parameters every list route accepts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Page size, 1..=500 (default 100).
    pub limit: Option<u32>,
    /// Cursor: the `next` of the previous page.
    pub after: Option<String>,
    /// Only objects with exactly this name.
    pub name: Option<String>,
    /// Only objects of this project (for project-owned nouns). Public objects
    /// are listed with `project=public`.
    pub project: Option<String>,
}

/// A value that is either a UUID or a name, as accepted in `{project}` paths.
pub fn parse_id_or_name<T: std::str::FromStr>(s: &str) -> Result<T, &str> {
    s.parse().map_err(|_| s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_from_an_older_or_newer_tundrad_still_reads() {
        // An older tundrad sends no schema_version; a newer one may send
        // fields this client does not know: a client checking versions must
        // read both (it is how it learns the server is too old).
        let old: ServiceInfo =
            serde_json::from_str(r#"{"service":"tundrad","version":"0.1.0","api_version":"v1"}"#).unwrap();
        assert_eq!((old.api_version.as_str(), old.schema_version), (API_VERSION, None));
        let newer: ServiceInfo = serde_json::from_str(
            r#"{"service":"tundrad","version":"0.9.0","api_version":"v1","schema_version":30,"replicas":3}"#,
        )
        .unwrap();
        assert_eq!((newer.version.as_str(), newer.schema_version), ("0.9.0", Some(30)));
    }

    #[test]
    fn typed_ids_round_trip_as_strings() {
        let id = ProjectId::generate();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{id}\""));
        assert_eq!(serde_json::from_str::<ProjectId>(&json).unwrap(), id);
        assert!("not-a-uuid".parse::<ProjectId>().is_err());
        // v7: later IDs sort after earlier ones (the pagination keyset relies on it).
        let later = ProjectId::generate();
        assert!(later.to_string() > id.to_string());
    }
}
