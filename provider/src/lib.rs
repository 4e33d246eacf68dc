//! `terraform-provider-tundra`: Tundra in Terraform.
//!
//! The provider block says where `tundrad` is and who is calling; each
//! resource and data source maps Terraform state to the Tundra API's wire
//! types (`tundra-api`). All protocol work is in the `tfplugin` crate, all
//! HTTP in [`client`].

pub mod client;
pub mod data_sources;
pub mod resources;

use tfplugin::schema::{Attribute, Block, Schema};
use tfplugin::{AttrPath, ConfigureInfo, Diagnostic, Diagnostics, Provider, Value, validators};

/// The oldest tundrad release this provider works with: every resource it
/// declares exists there. Raise it when the provider starts using something
/// newer (and say so in CHANGELOG.md).
pub const MIN_TUNDRAD: &str = "0.1.0";

/// The warning for a tundrad older than `min`, if it is (versions compare
/// by their numeric `major.minor.patch`; anything after `-` or `+` is ignored).
pub fn too_old(running: &str, min: &str) -> Option<String> {
    let parse =
        |v: &str| -> Option<Vec<u64>> { v.split(['-', '+']).next()?.split('.').map(|p| p.parse().ok()).collect() };
    let (have, need) = (parse(running)?, parse(min)?);
    (have < need).then(|| {
        format!(
            "tundrad at this endpoint is {running}; terraform-provider-tundra {} needs {min} or newer. \
             Upgrade tundrad (docs/guides/install.md) or pin an older provider version.",
            env!("CARGO_PKG_VERSION")
        )
    })
}

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

pub use client::Client;

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

    async fn configure(&self, config: Config, _info: ConfigureInfo) -> Result<(Client, Diagnostics), Diagnostics> {
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
        let ca = config.ca_certificate.into_known();
        let client = Client::new(
            endpoint,
            config.token.or_env("TUNDRA_TOKEN").into_known(),
            config.project.or_env("TUNDRA_PROJECT").into_known(),
            ca.as_deref(),
            concat!("terraform-provider-tundra/", env!("CARGO_PKG_VERSION")),
        )
        .map_err(|e| -> Diagnostics {
            Diagnostic::error("Bad provider configuration", e).at(AttrPath::attr_root("ca_certificate")).into()
        })?;
        let mut warnings = Diagnostics::new();
        // An unreachable endpoint is not an error here: the first real call says so.
        if let Ok(v) = client.service_version().await
            && let Some(w) = too_old(&v, MIN_TUNDRAD)
        {
            warnings.push(Diagnostic::warning("tundrad is older than this provider needs", w));
        }
        Ok((client, warnings))
    }

    fn resources(&self) -> Vec<Box<dyn tfplugin::resource::DynResource<Client>>> {
        use resources::*;
        vec![
            tfplugin::resource(project::ProjectResource),
            tfplugin::resource(keypair::KeypairResource),
            tfplugin::resource(flavor::FlavorResource),
            tfplugin::resource(image::ImageResource),
            tfplugin::resource(machine::MachineResource),
            tfplugin::resource(node::NodeResource),
            tfplugin::resource(physical_network::PhysicalNetworkResource),
            tfplugin::resource(switch::SwitchResource),
            tfplugin::resource(network::NetworkResource),
            tfplugin::resource(subnet::SubnetResource),
            tfplugin::resource(port::PortResource),
            tfplugin::resource(share::ShareTypeResource),
            tfplugin::resource(share::ShareResource),
            tfplugin::resource(share::ShareAccessResource),
            tfplugin::resource(share::ShareSnapshotResource),
            tfplugin::resource(cluster::ClusterTemplateResource),
            tfplugin::resource(cluster::ClusterResource),
            tfplugin::resource(appliance::ApplianceTemplateResource),
            tfplugin::resource(appliance::ApplianceResource),
        ]
    }

    fn ephemeral_resources(&self) -> Vec<Box<dyn tfplugin::resource::DynEphemeral<Client>>> {
        vec![
            tfplugin::ephemeral(resources::share::ShareAccessSecret),
            tfplugin::ephemeral(resources::cluster::ClusterCredentialsResource),
        ]
    }

    fn data_sources(&self) -> Vec<Box<dyn tfplugin::resource::DynDataSource<Client>>> {
        use data_sources::*;
        vec![
            tfplugin::data_source(ProjectData),
            tfplugin::data_source(KeypairData),
            tfplugin::data_source(FlavorData),
            tfplugin::data_source(ImageData),
            tfplugin::data_source(NodeData),
            tfplugin::data_source(ClusterTemplateData),
            tfplugin::data_source(ClusterData),
            tfplugin::data_source(ApplianceTemplateData),
            tfplugin::data_source(ApplianceData),
            tfplugin::data_source(PhysicalNetworkData),
            tfplugin::data_source(NetworkData),
            tfplugin::data_source(SubnetData),
            tfplugin::data_source(PortData),
            tfplugin::data_source(ShareTypeData),
            tfplugin::data_source(ShareData),
        ]
    }
}

#[cfg(test)]
mod version_tests {
    use super::too_old;

    #[test]
    fn older_tundrad_gets_a_warning_and_newer_or_equal_none() {
        assert!(too_old("0.0.9", "0.1.0").unwrap().contains("needs 0.1.0 or newer"));
        assert!(too_old("0.1.0", "0.2.0").is_some());
        assert!(too_old("0.9.12", "0.10.0").is_some(), "numeric, not lexical");
        assert_eq!(too_old("0.1.0", "0.1.0"), None);
        assert_eq!(too_old("0.1.1-rc.1", "0.1.0"), None);
        assert_eq!(too_old("1.0.0", "0.9.9"), None);
        assert_eq!(too_old("not a version", "0.1.0"), None, "an unreadable version is no reason to warn");
    }
}
