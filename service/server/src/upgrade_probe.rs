//! `tundrad-upgrade-probe`: tundrad with one extra migration, the "next
//! release" the packaging test upgrades to. Never packaged for a site.

fn main() -> std::process::ExitCode {
    tundra_store::enable_upgrade_probe();
    tundrad::cli::main()
}
