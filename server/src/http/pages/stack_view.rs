//! The dump page's "Stack" section: the crash's frames in WinDbg's `k` columns, why the walk
//! stopped, the followup module and the bucket id (the report's `crash` member).

use analyzer::report::crash::CrashReport;

/// One row of the stack table.
pub struct FrameRow {
    pub index: usize,
    pub child_sp: String,
    /// The next frame's instruction (the return address), "-" for the last frame.
    pub ret_addr: String,
    pub call_site: String,
    pub unwound_by: String,
}

/// The section's content.
pub struct StackView {
    pub frames: Vec<FrameRow>,
    pub context_line: String,
    pub stopped: String,
    pub followup: String,
    pub bucket: String,
}

fn json_str<T: serde::Serialize>(v: T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

impl StackView {
    pub fn build(c: &CrashReport) -> StackView {
        let f = &c.stack.frames;
        let frames = f
            .iter()
            .enumerate()
            .map(|(i, fr)| FrameRow {
                index: fr.index,
                child_sp: format!("{:#018x}", fr.stack_pointer.0),
                ret_addr: f
                    .get(i + 1)
                    .map_or("-".into(), |n| format!("{:#018x}", n.instruction.0)),
                call_site: fr.symbol.clone(),
                unwound_by: json_str(fr.unwound_by).replace('_', " "),
            })
            .collect();
        let context_line = if f.is_empty() {
            format!("The stack was not walked: {}.", c.stack.stopped.detail)
        } else {
            format!(
                "Registers from the {}, {} walk.",
                json_str(c.context_source).replace('_', " "),
                c.stack.method.replace('_', "-")
            )
        };
        let no_followup = if f.is_empty() {
            "none (no frame)"
        } else {
            "none (every frame is in the kernel's own modules)"
        };
        StackView {
            frames,
            context_line,
            stopped: format!(
                "{}: {}",
                json_str(c.stack.stopped.reason).replace('_', " "),
                c.stack.stopped.detail
            ),
            followup: c
                .followup_module
                .clone()
                .unwrap_or_else(|| no_followup.into()),
            bucket: c.bucket.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use analyzer::report::crash::{CrashFrame, CrashStack, StackStopped};
    use analyzer::report::Hex;
    use analyzer::stack::{ContextSource, StopReason, UnwoundBy};

    fn frame(index: usize, ip: u64, sp: u64, symbol: &str, by: UnwoundBy) -> CrashFrame {
        CrashFrame {
            index,
            instruction: Hex(ip),
            stack_pointer: Hex(sp),
            module: None,
            offset: None,
            function: None,
            displacement: None,
            unwound_by: by,
            symbol: symbol.into(),
        }
    }

    #[test]
    fn ret_addr_is_the_next_frames_instruction() {
        let c = CrashReport {
            context_source: ContextSource::ExceptionRecord,
            context_address: None,
            stack: CrashStack {
                method: "unwind".into(),
                frames: vec![
                    frame(0, 0x1000, 0x20, "drv!F+0x10", UnwoundBy::Context),
                    frame(1, 0x2000, 0x40, "drv!G+0x5", UnwoundBy::Pdata),
                ],
                stopped: StackStopped {
                    reason: StopReason::PageMissing,
                    detail: "the stack at 0x48 is not in the dump".into(),
                },
                images_from_symbol_path: Vec::new(),
            },
            followup_module: None,
            bucket: "0x7E_drv!F".into(),
            pool_block: None,
            unloaded_drivers: Vec::new(),
        };
        let v = StackView::build(&c);
        assert_eq!(v.frames[0].ret_addr, "0x0000000000002000");
        assert_eq!(v.frames[1].ret_addr, "-");
        assert_eq!(v.frames[1].unwound_by, "pdata");
        assert_eq!(
            v.stopped,
            "page missing: the stack at 0x48 is not in the dump"
        );
        assert!(v.context_line.contains("exception record"));
        assert!(v.followup.starts_with("none"));

        // No starting registers: the page says the stack was not walked, and why.
        let mut none = c.clone();
        none.context_source = ContextSource::None;
        none.stack.frames.clear();
        none.stack.stopped = StackStopped {
            reason: StopReason::NoContext,
            detail: "the dump header's context record is empty".into(),
        };
        let v = StackView::build(&none);
        assert!(v.frames.is_empty());
        assert_eq!(
            v.context_line,
            "The stack was not walked: the dump header's context record is empty."
        );
        assert_eq!(v.followup, "none (no frame)");
    }
}
