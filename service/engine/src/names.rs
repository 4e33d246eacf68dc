//! Names users give objects (projects, keypairs, machines, nodes, networks…):
//! 1–63 letters, digits, `.`, `_`, `-`, starting with a letter or digit —
//! safe in host names, paths and logs; and the other identifiers scheduling
//! matches on: resource classes and traits.

/// Whether `s` has the shape of an ID (a UUID: 8-4-4-4-12 hex digits).
fn looks_like_an_id(s: &str) -> bool {
    // Every form a UUID parser takes: hyphenated, 32 digits, braced, URN.
    let s = s.strip_prefix("urn:uuid:").unwrap_or(s);
    let s = s.strip_prefix('{').and_then(|x| x.strip_suffix('}')).unwrap_or(s);
    let groups: Vec<&str> = s.split('-').collect();
    let hyphenated = groups.len() == 5 && groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12]);
    let simple = groups.len() == 1 && s.len() == 32;
    (hyphenated || simple) && groups.iter().all(|g| g.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Whether `name` is a valid object name; the error says what is allowed.
/// A name never has the shape of an ID: paths take either, and a name must
/// not stand in for another object's ID.
pub fn check(name: &str) -> Result<(), String> {
    if looks_like_an_id(name) {
        return Err(format!("{name:?} has the shape of an ID; a name must not (add a letter outside a-f)"));
    }
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a valid name: use 1–63 letters, digits, '.', '_' or '-', starting with a letter or digit"
        ))
    }
}

/// A switch port's name as tundrad will type it into a switch's CLI,
/// shell or NETCONF XML (e.g. `Te1/0/7`, `TenGigabitEthernet 1/0/7`,
/// `xe-0/0/1:2`, `swp12`): 1–64 letters, digits, `/`, `.`, `:`, `_`, `-`
/// and single inner spaces, starting with a letter or digit. Nothing a
/// command line, a shell or XML would read as more than a name. (Each
/// switch dialect narrows this further, e.g. Linux interface names.)
pub fn switch_port(port: &str) -> Result<(), String> {
    let ok = !port.is_empty()
        && port.len() <= 64
        && port.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && !port.ends_with(' ')
        && !port.contains("  ")
        && port.chars().all(|c| c.is_ascii_alphanumeric() || "/.:_- ".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{port:?} is not a switch port name: use 1–64 letters, digits, '/', '.', ':', '_', '-' and single \
             spaces, starting with a letter or digit (e.g. \"Te1/0/7\")"
        ))
    }
}

/// A resource class, e.g. `baremetal.gpu`.
pub fn resource_class(rc: &str) -> Result<(), String> {
    let ok = !rc.is_empty() && rc.len() <= 63 && rc.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!("{rc:?} is not a resource class: use letters, digits, '_', '.', '-' (e.g. \"baremetal.gpu\")"))
    }
}

/// Traits (e.g. `gpu`, `ib`), sorted and without repeats; the error names
/// the index of the first bad one.
pub fn traits(traits: &[String]) -> Result<Vec<String>, (usize, String)> {
    let mut out: Vec<String> = Vec::new();
    for (i, t) in traits.iter().enumerate() {
        let ok = !t.is_empty() && t.len() <= 255 && t.chars().all(|c| c.is_ascii_alphanumeric() || "_.-:".contains(c));
        if !ok {
            return Err((
                i,
                format!("{t:?} is not a trait: use letters, digits, '_', '.', '-', ':' (e.g. \"gpu\", \"ib\")"),
            ));
        }
        out.push(t.clone());
    }
    out.sort();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn switch_ports_are_names_not_commands() {
        for ok in ["Te1/0/7", "TenGigabitEthernet 1/0/7", "xe-0/0/1:2", "swp12", "ethernet1/1.100"] {
            assert!(super::switch_port(ok).is_ok(), "{ok:?}");
        }
        for bad in [
            "",
            " Te1",
            "Te1 ",
            "Te1  2",
            "Te1\nreload",
            "eth0; reboot",
            "x$(id)",
            "a`b`",
            "p</name><x>",
            "a&b",
            "a|b",
            "a'b",
            "a\"b",
            "-eth0",
            &"x".repeat(65),
        ] {
            assert!(super::switch_port(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn names_are_host_name_safe() {
        assert!(super::check("worker-0.a_b").is_ok());
        for bad in [
            "",
            "-x",
            "a b",
            "a/b",
            &"x".repeat(64),
            "0190a3b4-5c6d-7e8f-9a0b-1c2d3e4f5a6b",
            "0190a3b45c6d7e8f9a0b1c2d3e4f5a6b",
        ] {
            assert!(super::check(bad).is_err(), "{bad:?}");
        }
        assert_eq!(super::traits(&["ib".into(), "gpu".into(), "ib".into()]), Ok(vec!["gpu".into(), "ib".into()]));
        assert_eq!(super::traits(&["gpu".into(), "a b".into()]).unwrap_err().0, 1);
        assert!(super::resource_class("baremetal.gpu").is_ok() && super::resource_class("a/b").is_err());
    }
}
