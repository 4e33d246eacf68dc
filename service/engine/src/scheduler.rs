//! Placement: which machines may take a node, best first. Pure — the store
//! claims the first of them that is still free (compare-and-set), so two
//! placements racing for the last machine cannot both win.
//!
//! **Filter**: resource class, required traits, schedulable (available, not
//! in maintenance, no operation), the requested site / rack / island, and the
//! node's group: affinity keeps a group in the island of its members,
//! anti-affinity keeps members on different racks. **Weigh**: `pack` fills
//! the racks that are already busiest (leaving whole racks free for big
//! jobs), `spread` prefers the emptiest; a group with no members yet starts
//! in the island with the most room. A request nothing satisfies is refused
//! with the step that emptied the list and how many machines it left.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// Where a machine is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Place {
    pub site: Option<String>,
    pub rack: Option<String>,
    pub island: Option<String>,
}

/// A machine as placement sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub id: String,
    pub resource_class: String,
    pub traits: Vec<String>,
    pub place: Place,
    /// Available, not in maintenance, no operation running.
    pub free: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    #[default]
    Pack,
    Spread,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// All members in one island.
    Affinity,
    /// No two members on one rack.
    AntiAffinity,
}

/// A node's placement group and where its other members already are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub policy: Policy,
    pub members: Vec<Place>,
}

/// What a node asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    pub resource_class: String,
    pub traits: Vec<String>,
    pub site: Option<String>,
    pub rack: Option<String>,
    pub island: Option<String>,
    pub group: Option<Group>,
    pub strategy: Strategy,
}

/// Why nothing fits: the filter step that left no machine, and the counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoCapacity(pub String);

impl std::fmt::Display for NoCapacity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NoCapacity {}

fn key(p: &Place, by_island: bool) -> Option<&String> {
    if by_island { p.island.as_ref() } else { p.rack.as_ref() }
}

/// The machines that may take the node, best first (IDs).
pub fn place(req: &Request, all: &[Candidate]) -> Result<Vec<String>, NoCapacity> {
    let no = |step: &str, before: usize| {
        Err(NoCapacity(format!("no capacity: {step} ({before} machine(s) passed the earlier checks)")))
    };
    let mut left: Vec<&Candidate> = all.iter().filter(|c| c.resource_class == req.resource_class).collect();
    if left.is_empty() {
        return Err(NoCapacity(format!("no capacity: no machine has resource class {:?}", req.resource_class)));
    }
    let n = left.len();
    left.retain(|c| req.traits.iter().all(|t| c.traits.contains(t)));
    if left.is_empty() {
        return no(&format!("no {:?} machine has all of the traits {:?}", req.resource_class, req.traits), n);
    }
    for (what, want, get) in [
        ("site", &req.site, (|p: &Place| p.site.clone()) as fn(&Place) -> Option<String>),
        ("rack", &req.rack, |p: &Place| p.rack.clone()),
        ("island", &req.island, |p: &Place| p.island.clone()),
    ] {
        if let Some(w) = want {
            let n = left.len();
            left.retain(|c| get(&c.place).as_ref() == Some(w));
            if left.is_empty() {
                return no(&format!("no matching machine is in {what} {w:?}"), n);
            }
        }
    }
    let matching = left.clone();
    let n = left.len();
    left.retain(|c| c.free);
    if left.is_empty() {
        return no("every matching machine is deployed, in maintenance or busy", n);
    }
    if let Some(g) = &req.group {
        let n = left.len();
        match g.policy {
            Policy::Affinity => {
                let islands: Vec<&String> = g.members.iter().filter_map(|m| m.island.as_ref()).collect();
                if let Some(home) = islands.first() {
                    left.retain(|c| c.place.island.as_ref() == Some(*home));
                    if left.is_empty() {
                        return no(&format!("affinity: no free matching machine in the group's island {home:?}"), n);
                    }
                }
            }
            Policy::AntiAffinity => {
                let racks: Vec<&String> = g.members.iter().filter_map(|m| m.rack.as_ref()).collect();
                left.retain(|c| c.place.rack.as_ref().is_none_or(|r| !racks.contains(&r)));
                if left.is_empty() {
                    return no(
                        &format!("anti-affinity: every free matching machine shares a rack with the group ({racks:?})"),
                        n,
                    );
                }
            }
        }
    }
    // Weigh: free machines per rack (and per island, for a new affinity group).
    let free_in = |by_island: bool| {
        let mut m: HashMap<Option<&String>, usize> = HashMap::new();
        for c in left.iter() {
            *m.entry(key(&c.place, by_island)).or_default() += 1;
        }
        m
    };
    let (racks, islands) = (free_in(false), free_in(true));
    // Machines already taken per rack, counted once: counting them again for
    // each candidate made one placement quadratic in the site's size.
    let mut used: HashMap<&String, usize> = HashMap::new();
    for o in matching.iter().filter(|o| !o.free) {
        if let Some(r) = o.place.rack.as_ref() {
            *used.entry(r).or_default() += 1;
        }
    }
    let used_in_rack = |c: &Candidate| c.place.rack.as_ref().and_then(|r| used.get(r)).copied().unwrap_or(0);
    let new_affinity_group =
        matches!(&req.group, Some(g) if g.policy == Policy::Affinity && g.members.iter().all(|m| m.island.is_none()));
    let mut scored: Vec<(i64, &String)> = left
        .iter()
        .map(|c| {
            let free_rack = racks.get(&key(&c.place, false)).copied().unwrap_or(0) as i64;
            let mut score = match req.strategy {
                // Busiest racks first; among equals, the rack with fewest free machines.
                Strategy::Pack => used_in_rack(c) as i64 * 1000 - free_rack,
                Strategy::Spread => free_rack * 1000 - used_in_rack(c) as i64,
            };
            if new_affinity_group {
                score += islands.get(&key(&c.place, true)).copied().unwrap_or(0) as i64 * 1_000_000;
            }
            (score, &c.id)
        })
        .collect();
    // Highest score first; ties by ID so placement is deterministic.
    scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    Ok(scored.into_iter().map(|(_, id)| id.clone()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(id: &str, rc: &str, traits: &[&str], rack: &str, island: &str, free: bool) -> Candidate {
        Candidate {
            id: id.into(),
            resource_class: rc.into(),
            traits: traits.iter().map(|t| t.to_string()).collect(),
            place: Place { site: Some("s1".into()), rack: Some(rack.into()), island: Some(island.into()) },
            free,
        }
    }

    fn site() -> Vec<Candidate> {
        vec![
            m("a1", "std", &[], "r1", "i1", false),
            m("a2", "std", &[], "r1", "i1", true),
            m("b1", "std", &["ib"], "r2", "i1", true),
            m("b2", "std", &["ib"], "r2", "i1", true),
            m("b3", "std", &["ib"], "r2", "i1", true),
            m("c1", "std", &["ib"], "r3", "i2", true),
            m("g1", "gpu", &["gpu"], "r4", "i2", true),
        ]
    }

    fn req(rc: &str) -> Request {
        Request { resource_class: rc.into(), ..Default::default() }
    }

    #[test]
    fn filters_say_which_step_left_nothing() {
        let s = site();
        assert_eq!(place(&req("gpu"), &s).unwrap(), ["g1"]);
        let e = place(&req("fpga"), &s).unwrap_err();
        assert!(e.0.contains("resource class \"fpga\""), "{e}");
        let e = place(&Request { traits: vec!["gpu".into()], ..req("std") }, &s).unwrap_err();
        assert!(e.0.contains("traits [\"gpu\"]") && e.0.contains("6 machine"), "{e}");
        let e = place(&Request { rack: Some("r9".into()), ..req("std") }, &s).unwrap_err();
        assert!(e.0.contains("rack \"r9\""), "{e}");
        let e = place(
            &Request { rack: Some("r1".into()), traits: vec![], ..req("std") },
            &[m("a1", "std", &[], "r1", "i1", false)],
        )
        .unwrap_err();
        assert!(e.0.contains("deployed, in maintenance or busy"), "{e}");
    }

    #[test]
    fn pack_fills_the_busy_rack_and_spread_the_empty_one() {
        let s = site();
        // r1 has a deployed machine: pack puts the next node beside it.
        assert_eq!(place(&req("std"), &s).unwrap()[0], "a2");
        // Spread goes to the rack with the most free machines.
        let first = &place(&Request { strategy: Strategy::Spread, ..req("std") }, &s).unwrap()[0];
        assert!(first.starts_with('b'), "{first}");
        assert_eq!(place(&Request { traits: vec!["ib".into()], ..req("std") }, &s).unwrap().len(), 4);
    }

    #[test]
    fn groups_keep_together_or_apart() {
        let s = site();
        let at = |rack: &str, island: &str| Place { site: None, rack: Some(rack.into()), island: Some(island.into()) };
        // Affinity: stay in the members' island.
        let g = Group { policy: Policy::Affinity, members: vec![at("r3", "i2")] };
        assert_eq!(place(&Request { group: Some(g), ..req("std") }, &s).unwrap(), ["c1"]);
        // A new affinity group starts in the island with the most room (i1: 4 free std).
        let g = Group { policy: Policy::Affinity, members: vec![] };
        let ids = place(&Request { group: Some(g), ..req("std") }, &s).unwrap();
        assert!(ids[..4].iter().all(|i| i.starts_with('a') || i.starts_with('b')), "{ids:?}");
        // Anti-affinity: not on a member's rack.
        let g = Group { policy: Policy::AntiAffinity, members: vec![at("r1", "i1"), at("r2", "i1")] };
        assert_eq!(place(&Request { group: Some(g), ..req("std") }, &s).unwrap(), ["c1"]);
        let g = Group { policy: Policy::AntiAffinity, members: vec![at("r1", "i1"), at("r2", "i1"), at("r3", "i2")] };
        let e = place(&Request { group: Some(g), ..req("std") }, &s).unwrap_err();
        assert!(e.0.contains("anti-affinity"), "{e}");
        // Affinity to an island without free machines is refused, with the island named.
        let g = Group { policy: Policy::Affinity, members: vec![at("r4", "i2")] };
        let e =
            place(&Request { group: Some(g), traits: vec!["ib".into()], island: Some("i1".into()), ..req("std") }, &s)
                .unwrap_err();
        assert!(e.0.contains("\"i2\""), "{e}");
    }
}
