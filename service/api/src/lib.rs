//! Wire types shared by `tundrad` and the Terraform provider: request bodies,
//! views, typed IDs and enums. No IO lives here, so both sides (and the
//! generated OpenAPI document) agree on one definition of every message.

use serde::{Deserialize, Serialize};

/// The API version prefix every route lives under.
pub const API_VERSION: &str = "v1";

/// `GET /v1/info`: what is answering, for clients to check compatibility.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceInfo {
    pub service: String,
    pub version: String,
    pub api_version: String,
}

/// `GET /healthz` and `GET /readyz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Health {
    pub status: HealthStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    Ok,
    Unavailable,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_rejects_unknown_fields() {
        let ok: ServiceInfo =
            serde_json::from_str(r#"{"service":"tundrad","version":"0.1.0","api_version":"v1"}"#).unwrap();
        assert_eq!(ok.api_version, API_VERSION);
        assert!(
            serde_json::from_str::<ServiceInfo>(r#"{"service":"x","version":"y","api_version":"v1","z":1}"#).is_err()
        );
    }
}
