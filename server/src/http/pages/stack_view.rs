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
        StackView {
            frames,
            context_line: format!(
                "Registers from the {}, {} walk.",
                json_str(c.context_source).replace('_', " "),
                c.stack.method.replace('_', "-")
            ),
            stopped: format!(
                "{}: {}",
                json_str(c.stack.stopped.reason).replace('_', " "),
                c.stack.stopped.detail
            ),
            followup: c
                .followup_module
                .clone()
                .unwrap_or_else(|| "none (every frame is in the kernel's own modules)".into()),
            bucket: c.bucket.clone(),
        }
    }
}
