//! One machine, one boot: which inputs may be trended together.
//!
//! Dumps carry their kernel (build, architecture, the kernel image's PDB identity), their boot
//! time (SystemTime - SystemUpTime) and their module list; counter logs name their computer.
//! - A different kernel, or a different computer name, is another machine: refused.
//! - The same kernel booted at another time (beyond [`BOOT_TOLERANCE_MS`]; without boot times,
//!   at another kernel base) is another boot: pool counters restart at boot, so only the
//!   latest boot's dumps are used and the others are named in a warning.
//! - Within one boot, a module at another base is another machine (two clones booted
//!   together); a module loaded or unloaded between dumps is a warning.
//!
//! Poolmon and poolsnap logs carry no identity: the caller vouches for them (docs/trend.md).

use super::dumps::DumpIdentity;
use super::error::TrendError;
use std::collections::BTreeMap;

/// Boot times of one boot computed from two dumps can differ by clock corrections (NTP,
/// the RTC resync at resume): ten minutes covers those and no two boots are that close in a
/// series of dumps taken hours apart.
pub const BOOT_TOLERANCE_MS: i64 = 10 * 60 * 1000;

/// The dumps of the latest boot, and what was left out or differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootCheck {
    /// Indexes (into the slice given) of the dumps to use.
    pub kept: Vec<usize>,
    pub warnings: Vec<String>,
}

/// Checks `dumps` (name, identity, system time) are one machine; keeps the latest boot's.
pub fn check_dumps(dumps: &[(&str, &DumpIdentity, i64)]) -> Result<BootCheck, TrendError> {
    let Some(&(first_name, first, _)) = dumps.first() else {
        return Ok(BootCheck {
            kept: Vec::new(),
            warnings: Vec::new(),
        });
    };
    for &(name, id, _) in &dumps[1..] {
        if let Some(reason) = other_kernel(first, id) {
            return Err(TrendError::TwoMachines {
                first: first_name.to_string(),
                second: name.to_string(),
                reason,
            });
        }
    }
    let latest = (0..dumps.len()).max_by_key(|&i| dumps[i].2).unwrap_or(0);
    let mut check = BootCheck {
        kept: Vec::new(),
        warnings: Vec::new(),
    };
    for (i, &(name, id, _)) in dumps.iter().enumerate() {
        if same_boot(dumps[latest].1, id) {
            check.kept.push(i);
        } else {
            check.warnings.push(format!(
                "{name}: another boot of the machine (booted {}, the latest dump's boot {}): pool counters restart at boot, so it is not used",
                boot(id),
                boot(dumps[latest].1)
            ));
        }
    }
    let base = dumps[check.kept[0]];
    for &i in &check.kept[1..] {
        compare_modules(base, dumps[i], &mut check.warnings)?;
    }
    Ok(check)
}

/// Checks counter logs name one computer.
pub fn check_hosts(hosts: &[(&str, &str)]) -> Result<(), TrendError> {
    if let Some(&(first_name, first)) = hosts.first() {
        for &(name, host) in &hosts[1..] {
            if !host.eq_ignore_ascii_case(first) {
                return Err(TrendError::TwoMachines {
                    first: first_name.to_string(),
                    second: name.to_string(),
                    reason: format!("their counters name computers {first} and {host}"),
                });
            }
        }
    }
    Ok(())
}

fn other_kernel(a: &DumpIdentity, b: &DumpIdentity) -> Option<String> {
    if a.build != b.build || a.arch != b.arch {
        return Some(format!(
            "Windows build {} {} and {} {}",
            a.build, a.arch, b.build, b.arch
        ));
    }
    match (&a.kernel, &b.kernel) {
        (Some(x), Some(y)) if x != y => Some(format!("kernel images {x} and {y}")),
        _ => None,
    }
}

fn same_boot(a: &DumpIdentity, b: &DumpIdentity) -> bool {
    match (a.boot_time_ms, b.boot_time_ms) {
        (Some(x), Some(y)) => (x - y).abs() <= BOOT_TOLERANCE_MS,
        _ => a.kernel_base == b.kernel_base,
    }
}

fn boot(id: &DumpIdentity) -> String {
    match (id.boot_time_ms, id.kernel_base) {
        (Some(ms), _) => super::timestamp::format_millis(ms),
        (None, Some(b)) => format!("unknown, kernel at {b:#x}"),
        (None, None) => "unknown".into(),
    }
}

/// Same boot: every module both list must be at one base; modules only one lists are named.
fn compare_modules(
    (a_name, a, _): (&str, &DumpIdentity, i64),
    (b_name, b, _): (&str, &DumpIdentity, i64),
    warnings: &mut Vec<String>,
) -> Result<(), TrendError> {
    let am: BTreeMap<&str, u64> = a.modules.iter().map(|(n, b)| (n.as_str(), *b)).collect();
    let bm: BTreeMap<&str, u64> = b.modules.iter().map(|(n, b)| (n.as_str(), *b)).collect();
    for (name, base) in &bm {
        if let Some(other) = am.get(name).filter(|o| *o != base) {
            return Err(TrendError::TwoMachines {
                first: a_name.to_string(),
                second: b_name.to_string(),
                reason: format!(
                    "same kernel and boot time, but {name} is loaded at {other:#x} in one and {base:#x} in the other"
                ),
            });
        }
    }
    let added: Vec<&str> = bm
        .keys()
        .filter(|n| !am.contains_key(*n))
        .copied()
        .collect();
    let gone: Vec<&str> = am
        .keys()
        .filter(|n| !bm.contains_key(*n))
        .copied()
        .collect();
    if !added.is_empty() || !gone.is_empty() {
        warnings.push(format!(
            "{b_name}: modules loaded since {a_name}: [{}]; unloaded: [{}]",
            added.join(", "),
            gone.join(", ")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(kernel: &str, boot: i64, base: u64) -> DumpIdentity {
        DumpIdentity {
            build: 19041,
            arch: "x64".into(),
            kernel: Some(kernel.into()),
            kernel_base: Some(0xfffff806_1a000000),
            boot_time_ms: Some(boot),
            modules: vec![("acme.sys".into(), base), ("nt".into(), 1)],
        }
    }

    #[test]
    fn kernels_boots_and_modules() {
        let a = id("k1", 0, 0x1000);
        let b = id("k1", 60_000, 0x1000);
        let c = id("k1", 86_400_000, 0x2000);
        let d = id("k2", 0, 0x1000);
        let e = id("k1", 0, 0x3000);
        let ok = check_dumps(&[("a", &a, 10), ("b", &b, 20)]).unwrap();
        assert_eq!(ok.kept, [0, 1]);
        let reboot = check_dumps(&[("a", &a, 10), ("c", &c, 90_000_000)]).unwrap();
        assert_eq!(reboot.kept, [1]);
        assert!(reboot.warnings[0].starts_with("a: another boot"));
        let two = check_dumps(&[("a", &a, 10), ("d", &d, 20)]).unwrap_err();
        assert!(two.to_string().contains("kernel images k1 and k2"), "{two}");
        let clones = check_dumps(&[("a", &a, 10), ("e", &e, 20)]).unwrap_err();
        assert!(
            clones.to_string().contains("acme.sys is loaded at"),
            "{clones}"
        );
        assert!(check_hosts(&[("x", "SQL01"), ("y", "sql01")]).is_ok());
        assert!(check_hosts(&[("x", "SQL01"), ("y", "WEB02")]).is_err());
    }
}
