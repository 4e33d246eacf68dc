//! `tundrad-upgrade-probe`: tundrad built with one extra migration
//! (`--features upgrade-probe`), the "next release" the packaging test
//! upgrades to. Never packaged for a site.

fn main() -> std::process::ExitCode {
    tundrad::cli::main()
}
