//! Names users give objects (projects, keypairs, machines, nodes, networks…):
//! 1–63 letters, digits, `.`, `_`, `-`, starting with a letter or digit —
//! safe in host names, paths and logs; and the other identifiers scheduling
//! matches on: resource classes and traits.

/// Whether `name` is a valid object name; the error says what is allowed.
pub fn check(name: &str) -> Result<(), String> {
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
    fn names_are_host_name_safe() {
        assert!(super::check("worker-0.a_b").is_ok());
        for bad in ["", "-x", "a b", "a/b", &"x".repeat(64)] {
            assert!(super::check(bad).is_err(), "{bad:?}");
        }
        assert_eq!(super::traits(&["ib".into(), "gpu".into(), "ib".into()]), Ok(vec!["gpu".into(), "ib".into()]));
        assert_eq!(super::traits(&["gpu".into(), "a b".into()]).unwrap_err().0, 1);
        assert!(super::resource_class("baremetal.gpu").is_ok() && super::resource_class("a/b").is_err());
    }
}
