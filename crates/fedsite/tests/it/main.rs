//! The integration tests of the `fedsite` binary, as one test binary (one link instead of
//! one per file): each module is one former `tests/<name>.rs`, `common` and `caso_diff` are
//! shared. Run one file's tests with `cargo nextest run -p fedsite --test it <name>::`.

mod caso_diff;
mod common;

mod action_cache_cli;
mod ams_e2e;
mod bench;
mod caso_against_sim;
mod caso_auth;
mod central_accounting;
mod central_cli;
mod central_serve;
mod cli;
mod cloudinfo_diff;
mod cloudinfo_publish;
mod config_cli;
mod contract_real;
mod contract_real_nova;
mod contract_real_nova_calls;
mod crash_extract;
mod delivery;
mod destinations;
mod differential;
mod docs_executable;
mod hybrid_keystone;
mod hybrid_site;
mod imagesync_real;
mod info_cli_compat;
mod keystone_federation;
mod metrics_report;
mod migration_cli;
mod oidc_login;
mod openstack_client;
mod openstackclient;
mod packaging;
mod probes;
mod receive_cli;
mod reliability;
mod secrets;
mod sitecheck_sim;
