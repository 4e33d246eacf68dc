//! The API integration suite: every case runs against SQLite (the embedded
//! default) and against a throwaway PostgreSQL, each with its own `tundrad`
//! on port 0 and its own temp dirs.

#[path = "api/harness.rs"]
mod harness;

#[path = "api/agent.rs"]
mod agent;
#[path = "api/appliances.rs"]
mod appliances;
#[path = "api/backup.rs"]
mod backup;
#[path = "api/bad_input.rs"]
mod bad_input;
#[path = "api/catalog.rs"]
mod catalog;
#[path = "api/clusters.rs"]
mod clusters;
#[path = "api/dashboard.rs"]
mod dashboard;
#[path = "api/fabric.rs"]
mod fabric;
#[path = "api/identity.rs"]
mod identity;
#[path = "api/images.rs"]
mod images;
#[path = "api/machines.rs"]
mod machines;
#[path = "api/nodes.rs"]
mod nodes;
#[path = "../../drivers/tests/peers/mod.rs"]
#[allow(dead_code)]
mod peers;
#[path = "api/races.rs"]
mod races;
#[path = "api/replicas.rs"]
mod replicas;
#[path = "api/security.rs"]
mod security;
#[path = "api/shares.rs"]
mod shares;
#[path = "api/tenancy.rs"]
mod tenancy;
#[path = "api/upgrade.rs"]
mod upgrade;

use std::future::Future;
use std::pin::Pin;

use harness::Backend;
use libtest_mimic::{Arguments, Trial};

type Case = fn(Backend) -> Pin<Box<dyn Future<Output = ()>>>;

macro_rules! cases {
    ($($m:ident :: $f:ident),* $(,)?) => {
        vec![$((concat!(stringify!($m), "::", stringify!($f)), (|b| Box::pin($m::$f(b))) as Case)),*]
    };
}

fn main() {
    // TUNDRA_TEST_LOG=warn (an env filter) shows what the servers log.
    if let Ok(filter) = std::env::var("TUNDRA_TEST_LOG") {
        tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().init();
    }
    let args = Arguments::from_args();
    let cases: Vec<(&str, Case)> = cases![
        catalog::projects_etags_pagination_idempotency_events,
        catalog::keypairs_flavors,
        catalog::racing_if_match_updates_lose_nothing,
        tenancy::every_route_keeps_projects_apart,
        bad_input::bad_requests_get_problems_and_write_nothing,
        images::upload_convert_serve_with_range,
        images::fetch_survives_token_expiry_and_restart,
        identity::tokens_scopes_expiry_revocation,
        identity::oidc_groups_map_to_roles,
        identity::oidc_jwks_from_url,
        identity::secrets_sealed_and_rotated,
        machines::enroll_manage_power_and_maintenance,
        machines::wrong_credentials_and_restart_mid_operation,
        machines::stuck_steps_time_out,
        machines::racing_transitions_have_one_winner,
        machines::racing_claims_never_share_a_machine,
        machines::the_fake_driver_runs_the_cycle_without_hardware,
        dashboard::machine_filters_and_the_dashboard,
        fabric::switch_ports_are_programmed_read_back_and_repaired,
        nodes::placement_groups_and_no_capacity,
        nodes::racing_creates_never_share_a_machine,
        nodes::a_failed_deploy_rolls_back_to_cleaning,
        agent::tokens_commands_and_reports,
        agent::discovery_without_a_bmc_rule_enrolls_nothing,
        agent::a_timed_out_wait_retires_its_token,
        races::racing_creates_get_the_answers_of_one_after_the_other,
        upgrade::a_pending_operation_of_the_previous_release_runs_to_its_end,
        upgrade::an_operation_pending_before_replicas_is_claimed_and_run,
        security::a_token_cannot_grow_its_own_power,
        security::public_shows_no_site_records,
        security::switch_ports_are_names_and_one_machines,
        security::small_items_hold,
        security::freed_segments_rest_before_reuse,
        security::quotas_hold_and_are_readable,
        shares::cephfs_shares_rules_snapshots_and_restarts,
        shares::nfs_and_glusterfs_shares_on_a_file_server,
        appliances::templates_and_bad_requests_write_nothing,
        appliances::appliances_need_the_metadata_service,
        clusters::templates_and_bad_requests_write_nothing,
        clusters::clusters_need_the_metadata_service,
        clusters::scaling_survives_restarts,
    ];
    let mut trials = Vec::new();
    for (backend, label) in [(Backend::Sqlite, "sqlite"), (Backend::Postgres, "postgres")] {
        for (name, case) in &cases {
            let case = *case;
            trials.push(Trial::test(format!("{label}::{name}"), move || {
                on_two_threads(case(backend));
                Ok(())
            }));
        }
    }
    // Cases of one backend: replicas share PostgreSQL; SQLite refuses them.
    type OneBackend = fn() -> Pin<Box<dyn Future<Output = ()>>>;
    macro_rules! one_backend {
        ($($backend:ident :: $m:ident :: $f:ident),* $(,)?) => {
            vec![$((concat!(stringify!($backend), "::", stringify!($m), "::", stringify!($f)),
                    (|| Box::pin($m::$f())) as OneBackend)),*]
        };
    }
    let one: Vec<(&str, OneBackend)> = one_backend![
        postgres::replicas::loops_run_on_one_replica_at_a_time,
        postgres::replicas::a_replica_cut_off_from_the_database_stops_its_loops_before_another_takes_them,
        postgres::replicas::a_killed_replicas_operation_is_taken_over,
        postgres::replicas::a_retry_waits_for_the_replica_running_its_first_request,
        postgres::replicas::a_killed_replicas_deploy_is_taken_over,
        postgres::replicas::a_rolling_upgrade_drains_the_old_replica,
        postgres::replicas::wake_ups_reach_the_worker_on_another_replica,
        sqlite::backup::a_restored_site_resumes_its_operations,
        sqlite::replicas::a_second_tundrad_on_one_sqlite_file_is_refused,
    ];
    for (name, case) in one {
        trials.push(Trial::test(name, move || {
            on_two_threads(case());
            Ok(())
        }));
    }
    libtest_mimic::run(&args, trials).exit();
}

/// Run one case on its own runtime of two worker threads.
fn on_two_threads(case: Pin<Box<dyn Future<Output = ()>>>) {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap().block_on(case);
}
