//! The crash's stack as text, in WinDbg's `k` columns (Child-SP, RetAddr, Call Site), with why
//! the walk stopped, the followup module, the bucket id and the unloaded drivers (as `lm`'s
//! "Unloaded modules" list).

use analyzer::report::crash::CrashReport;
use std::fmt::Write;

/// The "Stack" section: one row per frame; a frame's RetAddr is the next frame's instruction.
pub fn stack_section(c: &CrashReport) -> String {
    let mut s = String::new();
    let source = serde_json::to_value(c.context_source)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let frames = &c.stack.frames;
    if frames.is_empty() {
        let _ = writeln!(s, "Stack: not walked: {}", c.stack.stopped.detail);
        return finish(s, c);
    }
    let _ = writeln!(
        s,
        "Stack (context from {source}, {} walk)",
        c.stack.method.replace('_', "-")
    );
    let _ = writeln!(s, "  #  {:<18} {:<18} Call Site", "Child-SP", "RetAddr");
    for (i, f) in frames.iter().enumerate() {
        let ret = frames
            .get(i + 1)
            .map_or("-".to_string(), |n| format!("{:#018x}", n.instruction.0));
        let _ = writeln!(
            s,
            "  {:<2} {:#018x} {:<18} {}",
            f.index, f.stack_pointer.0, ret, f.symbol
        );
    }
    let stopped = serde_json::to_value(c.stack.stopped.reason)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let _ = writeln!(s, "  stopped: {stopped}: {}", c.stack.stopped.detail);
    if !c.stack.images_from_symbol_path.is_empty() {
        let _ = writeln!(
            s,
            "  unwind information from the symbol path's images: {}",
            c.stack.images_from_symbol_path.join(", ")
        );
    }
    finish(s, c)
}

/// The lines after the frames: followup, bucket, the pool block and the unloaded drivers.
fn finish(mut s: String, c: &CrashReport) -> String {
    let _ = writeln!(
        s,
        "Followup: {}",
        c.followup_module
            .as_deref()
            .unwrap_or(if c.stack.frames.is_empty() {
                "none (no frame)"
            } else {
                "none (every frame is in the kernel's own modules)"
            })
    );
    let _ = writeln!(s, "Bucket:   {}", c.bucket);
    if let Some(b) = &c.pool_block {
        let _ = writeln!(
            s,
            "Pool block at the parameter: {} size {:#x} tag '{}' {} {}",
            b.address,
            b.size,
            b.tag,
            if b.allocated { "allocated" } else { "free" },
            serde_json::to_value(b.pool)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        );
    }
    if !c.unloaded_drivers.is_empty() {
        let _ = writeln!(s, "Unloaded drivers (oldest first):");
        for d in &c.unloaded_drivers {
            let _ = writeln!(
                s,
                "  {:<24} {}-{} unloaded {}",
                d.name,
                d.start,
                d.end,
                d.unloaded_at.as_deref().unwrap_or("at an unreadable time")
            );
        }
    }
    s
}
