//! The machine provision-state machine, as data.
//!
//! Every state is described once in [`STATES`] (stable or transient, with the
//! transient ones' timeout and the state a timeout or failure leads to); every
//! allowed move is one row of [`TRANSITIONS`]. Code asks [`next`] and never
//! matches on states itself, the tests below check the table's shape (every
//! transient state can time out and fail, every failed state has a way out,
//! everything is reachable from `enroll`), and `docs/machine-states.md` is
//! rendered from the table by [`mermaid`] and drift-tested.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Where a machine is in its life: the wire enum, described here.
pub use tundra_api::machines::ProvisionState as State;

/// What can happen to a machine: an operator's verb, or how work ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// Take under management (check BMC credentials), or return a failed machine to `manageable`.
    Manage,
    Inspect,
    /// Clean and make available for deployment.
    Provide,
    Deploy,
    /// Undeploy: power off, detach, then clean.
    Delete,
    /// Take over a machine already running a workload, without touching its disk.
    Adopt,
    Rescue,
    Unrescue,
    /// The step started; now waiting for the agent.
    Wait,
    /// The step (or the wait) finished.
    Done,
    Fail,
    /// The state's timeout passed.
    Timeout,
    /// An operator stopped a waiting step.
    Abort,
}

/// What kind of state this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Nothing is running; the machine stays until someone acts.
    Stable,
    /// Work is running or awaited; it must end within `timeout`, else the
    /// machine goes to `on_timeout`.
    Transient { timeout: Duration, on_timeout: State },
    /// A stable state that records a failure (with `last_error`).
    Failed,
}

/// One state's description.
#[derive(Debug, Clone, Copy)]
pub struct StateInfo {
    pub state: State,
    pub kind: Kind,
    /// A node may be scheduled onto the machine.
    pub schedulable: bool,
    /// For humans (docs, API descriptions).
    pub about: &'static str,
}

const fn minutes(m: u64) -> Duration {
    Duration::from_secs(m * 60)
}

const fn stable(state: State, about: &'static str) -> StateInfo {
    StateInfo { state, kind: Kind::Stable, schedulable: false, about }
}

const fn failed(state: State, about: &'static str) -> StateInfo {
    StateInfo { state, kind: Kind::Failed, schedulable: false, about }
}

const fn transient(state: State, m: u64, on_timeout: State, about: &'static str) -> StateInfo {
    StateInfo { state, kind: Kind::Transient { timeout: minutes(m), on_timeout }, schedulable: false, about }
}

use State::*;

/// Every state, once.
pub const STATES: &[StateInfo] = &[
    stable(Enroll, "Known by BMC address and credentials only; nothing checked yet."),
    transient(Verifying, 5, Enroll, "Checking that the BMC answers with the given credentials."),
    stable(Manageable, "BMC verified; tundrad may power and boot it. Not offered to users."),
    transient(Inspecting, 10, InspectFailed, "Powering on into the agent to collect hardware facts."),
    transient(InspectWait, 30, InspectFailed, "Waiting for the agent's inventory."),
    failed(InspectFailed, "Inspection failed; inspect again, or manage."),
    transient(Cleaning, 10, CleanFailed, "Booting the agent to erase disks and reset settings."),
    transient(CleanWait, 60, CleanFailed, "Waiting for the agent to finish cleaning."),
    failed(CleanFailed, "Cleaning failed; the machine is held until an operator manages it."),
    StateInfo { state: Available, kind: Kind::Stable, schedulable: true, about: "Clean and offered for deployment." },
    transient(Deploying, 10, DeployFailed, "Booting the agent to write the image and config drive."),
    transient(DeployWait, 60, DeployFailed, "Waiting for the agent to write the image."),
    failed(DeployFailed, "Deployment failed; deploy again or delete."),
    stable(Active, "Running a node's image."),
    transient(Deleting, 10, Error, "Powering off and detaching before cleaning."),
    failed(Error, "Tearing down failed; delete again."),
    transient(Adopting, 10, AdoptFailed, "Taking over a running machine without touching its disk."),
    failed(AdoptFailed, "Adoption failed; adopt again, or manage."),
    transient(Rescuing, 10, RescueFailed, "Booting the rescue environment."),
    transient(RescueWait, 30, RescueFailed, "Waiting for the rescue environment to come up."),
    stable(Rescue, "In the rescue environment; the node's disk is untouched."),
    failed(RescueFailed, "Rescue failed; rescue again, unrescue, or delete."),
    transient(Unrescuing, 10, UnrescueFailed, "Booting the node's own disk again."),
    failed(UnrescueFailed, "Leaving rescue failed; unrescue again, or delete."),
];

/// Every allowed move: (from, event, to).
pub const TRANSITIONS: &[(State, Event, State)] = &[
    (Enroll, Event::Manage, Verifying),
    (Verifying, Event::Done, Manageable),
    (Verifying, Event::Fail, Enroll),
    (Verifying, Event::Timeout, Enroll),
    (Manageable, Event::Manage, Verifying),
    // Inspection.
    (Manageable, Event::Inspect, Inspecting),
    (Inspecting, Event::Wait, InspectWait),
    (Inspecting, Event::Done, Manageable),
    (Inspecting, Event::Fail, InspectFailed),
    (Inspecting, Event::Timeout, InspectFailed),
    (InspectWait, Event::Done, Manageable),
    (InspectWait, Event::Fail, InspectFailed),
    (InspectWait, Event::Timeout, InspectFailed),
    (InspectWait, Event::Abort, InspectFailed),
    (InspectFailed, Event::Inspect, Inspecting),
    (InspectFailed, Event::Manage, Manageable),
    // Cleaning, on the way to available (provide) and back from a node (delete).
    (Manageable, Event::Provide, Cleaning),
    (Cleaning, Event::Wait, CleanWait),
    (Cleaning, Event::Done, Available),
    (Cleaning, Event::Fail, CleanFailed),
    (Cleaning, Event::Timeout, CleanFailed),
    (CleanWait, Event::Done, Available),
    (CleanWait, Event::Fail, CleanFailed),
    (CleanWait, Event::Timeout, CleanFailed),
    (CleanWait, Event::Abort, CleanFailed),
    (CleanFailed, Event::Manage, Manageable),
    (Available, Event::Manage, Manageable),
    // Deployment.
    (Available, Event::Deploy, Deploying),
    (Deploying, Event::Wait, DeployWait),
    (Deploying, Event::Done, Active),
    (Deploying, Event::Fail, DeployFailed),
    (Deploying, Event::Timeout, DeployFailed),
    (DeployWait, Event::Done, Active),
    (DeployWait, Event::Fail, DeployFailed),
    (DeployWait, Event::Timeout, DeployFailed),
    (DeployWait, Event::Abort, DeployFailed),
    (DeployFailed, Event::Deploy, Deploying),
    (DeployFailed, Event::Delete, Deleting),
    (Active, Event::Deploy, Deploying),
    // Undeployment: always through cleaning.
    (Active, Event::Delete, Deleting),
    (Deleting, Event::Done, Cleaning),
    (Deleting, Event::Fail, Error),
    (Deleting, Event::Timeout, Error),
    (Error, Event::Delete, Deleting),
    // Adoption.
    (Manageable, Event::Adopt, Adopting),
    (Adopting, Event::Done, Active),
    (Adopting, Event::Fail, AdoptFailed),
    (Adopting, Event::Timeout, AdoptFailed),
    (AdoptFailed, Event::Adopt, Adopting),
    (AdoptFailed, Event::Manage, Manageable),
    // Rescue.
    (Active, Event::Rescue, Rescuing),
    (Rescuing, Event::Wait, RescueWait),
    (Rescuing, Event::Done, Rescue),
    (Rescuing, Event::Fail, RescueFailed),
    (Rescuing, Event::Timeout, RescueFailed),
    (RescueWait, Event::Done, Rescue),
    (RescueWait, Event::Fail, RescueFailed),
    (RescueWait, Event::Timeout, RescueFailed),
    (RescueWait, Event::Abort, RescueFailed),
    (Rescue, Event::Unrescue, Unrescuing),
    (Rescue, Event::Delete, Deleting),
    (RescueFailed, Event::Rescue, Rescuing),
    (RescueFailed, Event::Unrescue, Unrescuing),
    (RescueFailed, Event::Delete, Deleting),
    (Unrescuing, Event::Done, Active),
    (Unrescuing, Event::Fail, UnrescueFailed),
    (Unrescuing, Event::Timeout, UnrescueFailed),
    (UnrescueFailed, Event::Unrescue, Unrescuing),
    (UnrescueFailed, Event::Delete, Deleting),
];

/// What the table says of a state.
pub trait Described {
    fn info(&self) -> &'static StateInfo;
    /// Whether work is running or awaited in this state.
    fn is_transient(&self) -> bool {
        matches!(self.info().kind, Kind::Transient { .. })
    }
}

impl Described for State {
    fn info(&self) -> &'static StateInfo {
        STATES.iter().find(|s| s.state == *self).expect("every state is in STATES (tested)")
    }
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Manage => "manage",
            Event::Inspect => "inspect",
            Event::Provide => "provide",
            Event::Deploy => "deploy",
            Event::Delete => "delete",
            Event::Adopt => "adopt",
            Event::Rescue => "rescue",
            Event::Unrescue => "unrescue",
            Event::Wait => "wait",
            Event::Done => "done",
            Event::Fail => "fail",
            Event::Timeout => "timeout",
            Event::Abort => "abort",
        }
    }
}

/// Refused: the event is not allowed in the state; says what is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotAllowed {
    pub state: State,
    pub event: Event,
}

impl fmt::Display for NotAllowed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let allowed: Vec<&str> = TRANSITIONS
            .iter()
            .filter(|(from, e, _)| *from == self.state && is_verb(*e))
            .map(|(_, e, _)| e.as_str())
            .collect();
        write!(f, "a machine in {} cannot {}", self.state, self.event.as_str())?;
        if allowed.is_empty() {
            write!(f, "; wait until the running step ends (or abort it)")
        } else {
            write!(f, "; from {} you can: {}", self.state, allowed.join(", "))
        }
    }
}

impl std::error::Error for NotAllowed {}

/// Whether the event is something an operator asks for (not an outcome).
pub fn is_verb(e: Event) -> bool {
    !matches!(e, Event::Wait | Event::Done | Event::Fail | Event::Timeout)
}

/// The state after `event` in `state`.
pub fn next(state: State, event: Event) -> Result<State, NotAllowed> {
    TRANSITIONS
        .iter()
        .find(|(from, e, _)| *from == state && *e == event)
        .map(|(_, _, to)| *to)
        .ok_or(NotAllowed { state, event })
}

/// The state diagram in Mermaid (rendered by GitHub and most doc tools).
pub fn mermaid() -> String {
    let mut out = String::from(
        "# Machine states\n\n<!-- generated from service/engine/src/machine_states.rs; regenerate with scripts/generate.sh -->\n\n\
         Stable states wait for an operator; transient states (timeouts in the table below) end by\n\
         `done`, `fail` or `timeout`; `*_failed` and `error` keep `last_error` until an operator acts.\n\n```mermaid\nstateDiagram-v2\n    [*] --> enroll\n",
    );
    for (from, e, to) in TRANSITIONS {
        out.push_str(&format!("    {} --> {} : {}\n", from.as_str(), to.as_str(), e.as_str()));
    }
    out.push_str("```\n\n| state | kind | timeout → | what it means |\n|---|---|---|---|\n");
    for s in STATES {
        let (kind, timeout) = match s.kind {
            Kind::Stable if s.schedulable => ("stable, schedulable".to_string(), String::new()),
            Kind::Stable => ("stable".to_string(), String::new()),
            Kind::Failed => ("failed".to_string(), String::new()),
            Kind::Transient { timeout, on_timeout } => {
                ("transient".to_string(), format!("{} min → `{}`", timeout.as_secs() / 60, on_timeout.as_str()))
            }
        };
        out.push_str(&format!("| `{}` | {kind} | {timeout} | {} |\n", s.state.as_str(), s.about));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, VecDeque};

    use super::*;

    fn all() -> Vec<State> {
        STATES.iter().map(|s| s.state).collect()
    }

    #[test]
    fn every_state_is_described_once_and_named_uniquely() {
        let states = all();
        let unique: BTreeSet<_> = states.iter().collect();
        assert_eq!(unique.len(), states.len(), "a state is described twice");
        let names: BTreeSet<_> = states.iter().map(|s| s.as_str()).collect();
        assert_eq!(names.len(), states.len());
        for s in &states {
            assert_eq!(State::parse(s.as_str()), Some(*s));
        }
        assert_eq!(unique.into_iter().copied().collect::<Vec<_>>(), State::ALL.to_vec(), "every state is described");
        // Every state used in a transition is described.
        for (from, _, to) in TRANSITIONS {
            assert!(states.contains(from) && states.contains(to));
        }
    }

    #[test]
    fn transitions_are_deterministic() {
        let mut seen = BTreeSet::new();
        for (from, e, _) in TRANSITIONS {
            assert!(seen.insert((*from, *e)), "{from} has two `{}` edges", e.as_str());
        }
    }

    #[test]
    fn every_transient_state_times_out_and_fails_somewhere_safe() {
        for s in STATES {
            match s.kind {
                Kind::Transient { timeout, on_timeout } => {
                    assert!(timeout > Duration::ZERO);
                    assert_eq!(next(s.state, Event::Timeout), Ok(on_timeout), "{} timeout edge", s.state);
                    let failed = next(s.state, Event::Fail).unwrap_or_else(|_| panic!("{} has no fail edge", s.state));
                    assert!(!failed.is_transient(), "{} fails into transient {failed}", s.state);
                    assert!(!on_timeout.is_transient(), "{} times out into transient {on_timeout}", s.state);
                    assert!(next(s.state, Event::Done).is_ok(), "{} never finishes", s.state);
                }
                _ => {
                    assert!(next(s.state, Event::Timeout).is_err(), "stable {} must not time out", s.state);
                    assert!(next(s.state, Event::Done).is_err(), "stable {} has nothing to finish", s.state);
                }
            }
        }
    }

    #[test]
    fn every_failed_state_has_an_operator_way_out() {
        for s in STATES.iter().filter(|s| s.kind == Kind::Failed) {
            let outs: Vec<_> = TRANSITIONS.iter().filter(|(f, e, _)| *f == s.state && is_verb(*e)).collect();
            assert!(!outs.is_empty(), "{} is a dead end", s.state);
        }
    }

    #[test]
    fn everything_is_reachable_from_enroll_and_only_cleaning_makes_available() {
        let mut seen = BTreeSet::from([Enroll]);
        let mut queue = VecDeque::from([Enroll]);
        while let Some(s) = queue.pop_front() {
            for (_, _, to) in TRANSITIONS.iter().filter(|(f, _, _)| *f == s) {
                if seen.insert(*to) {
                    queue.push_back(*to);
                }
            }
        }
        assert_eq!(
            seen.len(),
            STATES.len(),
            "unreachable: {:?}",
            all().into_iter().filter(|s| !seen.contains(s)).collect::<Vec<_>>()
        );
        // Only `available` is schedulable, and only cleaning leads there.
        for s in STATES.iter().filter(|s| s.schedulable) {
            assert_eq!(s.state, Available);
        }
        for (from, _, to) in TRANSITIONS.iter().filter(|(_, _, to)| *to == Available) {
            assert!(matches!(from, Cleaning | CleanWait), "{from} → {to} skips cleaning");
        }
    }

    #[test]
    fn refusals_say_what_is_allowed() {
        let e = next(Active, Event::Inspect).unwrap_err().to_string();
        assert_eq!(e, "a machine in active cannot inspect; from active you can: deploy, delete, rescue");
        let e = next(DeployWait, Event::Deploy).unwrap_err().to_string();
        assert!(e.contains("from deploy_wait you can: abort"), "{e}");
    }

    #[test]
    fn diagram_is_committed_and_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/machine-states.md");
        let fresh = mermaid();
        if std::env::var_os("UPDATE_GENERATED").is_some() {
            std::fs::write(&path, &fresh).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(committed == fresh, "docs/machine-states.md is stale; run scripts/generate.sh and commit it");
    }
}
