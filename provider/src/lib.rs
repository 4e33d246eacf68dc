//! `terraform-provider-tundra`: Tundra in Terraform.
//!
//! The provider block says where `tundrad` is and who is calling; resources
//! and data sources are added as the service grows (see docs/architecture.md).
//! All protocol work is in the `tfplugin` crate; this crate only knows the
//! Tundra API (the `tundra-api` crate, once resources call the service).

use tfplugin::schema::{Attribute, Block, Schema};
use tfplugin::{AttrPath, ConfigureInfo, Diagnostic, Diagnostics, Provider, Value, validators};

/// The provider.
pub struct TundraProvider;

tfplugin::tf_object! {
    pub struct Config {
        pub endpoint: Value<String>,
        pub token: Value<String>,
        pub project: Value<String>,
        pub ca_certificate: Value<String>,
    }
}

/// Connection settings every resource uses to reach `tundrad`.
#[derive(Debug)]
pub struct Client {
    pub endpoint: String,
    pub token: Option<String>,
    pub project: Option<String>,
    pub ca_certificate: Option<String>,
}

impl Provider for TundraProvider {
    type Client = Client;
    type Config = Config;

    fn type_name(&self) -> &'static str {
        "tundra"
    }

    fn schema(&self) -> Schema {
        Schema::new(
            Block::new(
                "The Tundra provider manages a bare-metal cloud for science: machines, nodes, networks, \
                 shares, clusters and appliances served by `tundrad`.",
            )
            .attr(
                Attribute::string("endpoint")
                    .optional()
                    .description(
                        "Base URL of `tundrad`, e.g. `https://tundra.example.org:8180`. Env: `TUNDRA_ENDPOINT`.",
                    )
                    .validator(validators::regex("^https?://[^/\\s]+(/.*)?$", "an http:// or https:// URL")),
            )
            .attr(
                Attribute::string("token")
                    .optional()
                    .sensitive()
                    .description("API token. Env: `TUNDRA_TOKEN`. Prefer the environment so it stays out of files."),
            )
            .attr(Attribute::string("project").optional().description("Project to work in. Env: `TUNDRA_PROJECT`."))
            .attr(Attribute::string("ca_certificate").optional().description(
                "PEM CA certificate that signed the endpoint's TLS certificate, when not publicly trusted.",
            )),
        )
    }

    fn validate_config(&self, config: &Config, diags: &mut Diagnostics) {
        if let Some(pem) = config.ca_certificate.known()
            && !pem.contains("-----BEGIN CERTIFICATE-----")
        {
            diags.push(
                Diagnostic::error("Not a PEM certificate", "ca_certificate must contain a PEM block starting with -----BEGIN CERTIFICATE-----; use file(\"ca.pem\").")
                    .at(AttrPath::attr_root("ca_certificate")),
            );
        }
    }

    async fn configure(&self, config: Config, _info: ConfigureInfo) -> Result<Client, Diagnostics> {
        let endpoint = config.endpoint.or_env("TUNDRA_ENDPOINT");
        let endpoint = match endpoint {
            Value::Known(e) => e.trim_end_matches('/').to_string(),
            Value::Unknown => {
                return Err(Diagnostic::error(
                    "Endpoint not known yet",
                    "The provider endpoint depends on a value only known after apply; apply that resource first (-target).",
                )
                .at(AttrPath::attr_root("endpoint"))
                .into());
            }
            Value::Null => {
                return Err(Diagnostic::error(
                    "No Tundra endpoint",
                    "Set endpoint in the provider \"tundra\" block or TUNDRA_ENDPOINT in the environment, e.g. http://127.0.0.1:8180.",
                )
                .at(AttrPath::attr_root("endpoint"))
                .into());
            }
        };
        Ok(Client {
            endpoint,
            token: config.token.or_env("TUNDRA_TOKEN").into_known(),
            project: config.project.or_env("TUNDRA_PROJECT").into_known(),
            ca_certificate: config.ca_certificate.into_known(),
        })
    }

    fn resources(&self) -> Vec<Box<dyn tfplugin::resource::DynResource<Client>>> {
        Vec::new()
    }
}
