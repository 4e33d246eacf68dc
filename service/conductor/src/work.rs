//! Running an operation: its `Work`, matched exhaustively — a kind of work
//! tundrad does not know cannot be stored, so cannot be run.

use std::pin::Pin;

use tundra_api::ops::Work;
use tundra_store::OperationInput;

use crate::handle::{Conductor, WorkResult};
use crate::machines::drive::{self, Job};
use crate::machines::power;

/// The conductor's dispatch (see `handle::Dispatch`).
pub fn run(c: Conductor, op: OperationInput) -> Pin<Box<dyn Future<Output = WorkResult> + Send>> {
    Box::pin(async move {
        let id = op.operation.id;
        match &op.work {
            Work::ImageImport { image_id } => crate::images::run_import(&c, id, *image_id).await,
            Work::MachineManage { machine_id } => power::run(&c, id, *machine_id, None).await,
            Work::MachinePower { machine_id, action } => power::run(&c, id, *machine_id, Some(*action)).await,
            Work::MachineInspect { machine_id }
            | Work::MachineClean { machine_id }
            | Work::MachineDelete { machine_id, .. } => {
                drive::run(&c, Job { op: id, machine: *machine_id, deploy: None }).await
            }
            Work::MachineDeploy { machine_id, image, node_id } => {
                drive::run(&c, Job { op: id, machine: *machine_id, deploy: Some((image, *node_id)) }).await
            }
        }
    })
}
