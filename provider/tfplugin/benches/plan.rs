//! Benchmark (not a test): `terraform plan` time for 1,000 instances of the
//! test provider's resources vs 1,000 built-in `terraform_data`, in one run:
//! `testprov_echo` has `terraform_data`'s shape (the like-for-like ratio),
//! `testprov_thing` is a realistic large schema with a store.
//!
//!     cargo bench -p tfplugin --bench plan [-- COUNT RUNS]
//!
//! Both states are applied first, so each plan refreshes and plans every
//! instance. Prints the median of RUNS plans each and the ratio (goal ≤ 1.5×).
//! Like the test binary, this one serves `testprov` when Terraform starts it.

#[path = "../tests/support/mod.rs"]
#[allow(dead_code)] // shared with the tests, which use more of it
mod support;
#[path = "../tests/testprov/mod.rs"]
mod testprov;

use std::time::{Duration, Instant};

use support::{Workspace, header};

fn median_plan(ws: &Workspace, runs: usize) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            let (code, out) = ws.plan();
            assert_eq!(code, 0, "benchmark plan should be empty:\n{out}");
            t.elapsed()
        })
        .collect();
    times.sort();
    times[runs / 2]
}

fn main() {
    if tfplugin::plugin::launched_by_terraform() {
        std::process::exit(match tfplugin::plugin::main(testprov::TestProvider) {
            c if c == std::process::ExitCode::SUCCESS => 0,
            _ => 1,
        });
    }
    // `cargo bench` passes `--bench`; positional numbers override the defaults.
    let nums: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let count = nums.first().copied().unwrap_or(1000);
    let runs = nums.get(1).copied().unwrap_or(3);

    let ours = Workspace::new(
        &(header()
            + &format!(
                "resource \"testprov_thing\" \"x\" {{\n  count = {count}\n  name = \"t${{count.index}}\"\n  tags = {{ i = tostring(count.index) }}\n}}\n"
            )),
    );
    let echo = Workspace::new(
        &(header()
            + &format!(
                "resource \"testprov_echo\" \"x\" {{\n  count = {count}\n  input = {{ name = \"t${{count.index}}\", i = tostring(count.index) }}\n}}\n"
            )),
    );
    let builtin = Workspace::new(&format!(
        "resource \"terraform_data\" \"x\" {{\n  count = {count}\n  input = {{ name = \"t${{count.index}}\", i = tostring(count.index) }}\n}}\n"
    ));
    eprintln!("applying {count} instances of each ...");
    ours.apply();
    echo.apply();
    builtin.apply();
    eprintln!("planning {runs}x each ...");
    let t_ours = median_plan(&ours, runs);
    let t_echo = median_plan(&echo, runs);
    let t_builtin = median_plan(&builtin, runs);
    let ratio = t_echo.as_secs_f64() / t_builtin.as_secs_f64();
    println!("plan of {count} instances, median of {runs} runs ({}):", terraform_version());
    println!("  testprov_thing (tfplugin, 19 attributes + blocks, JSON store): {:>6.2} s", t_ours.as_secs_f64());
    println!("  testprov_echo  (tfplugin, terraform_data's shape):          {:>6.2} s", t_echo.as_secs_f64());
    println!("  terraform_data (built into Terraform, no plugin RPC):        {:>6.2} s", t_builtin.as_secs_f64());
    println!(
        "  ratio echo / terraform_data: {ratio:.2}x (goal <= 1.5x); thing / terraform_data: {:.2}x",
        t_ours.as_secs_f64() / t_builtin.as_secs_f64()
    );
}

fn terraform_version() -> String {
    std::process::Command::new(support::terraform_bin())
        .arg("version")
        .env("CHECKPOINT_DISABLE", "1")
        .env("TF_CLI_CONFIG_FILE", "/dev/null")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().next().unwrap_or("").to_string())
        .unwrap_or_default()
}
