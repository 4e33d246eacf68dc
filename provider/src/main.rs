//! The `terraform-provider-tundra` binary: Terraform starts it as a plugin.

fn main() -> std::process::ExitCode {
    tfplugin::plugin::main(terraform_provider_tundra::TundraProvider)
}
