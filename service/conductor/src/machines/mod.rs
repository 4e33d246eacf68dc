//! Machine work. Module order: `inventory`, `actions` (start and abort),
//! `power` (BMC-only operations), `fake` (the agent of machines without
//! hardware), `drive` (agent-driven operations),
//! `boot` (iPXE scripts with per-boot tokens), `discovery` (enrolling
//! unknown machines), `sync` (power sync, timeouts), `tenant` (what a
//! project may read about a machine).

pub mod actions;
pub mod boot;
pub mod discovery;
pub mod drive;
pub mod fake;
pub mod inventory;
pub mod power;
pub mod sync;
pub mod tenant;
