//! The name a dump is shown under: what the client called it (the `?name=` parameter, a
//! multipart file name, a zip entry's name), reduced to its last path component without
//! control characters (terminal escapes, newlines that forge log lines), at most [`MAX_NAME`]
//! characters. The stored name is display text only: files are kept under their sha256.

/// Longest display name kept, in characters.
pub const MAX_NAME: usize = 255;

/// The display name of `name`, or `None` when nothing printable is left.
pub fn display_name(name: Option<String>) -> Option<String> {
    let name = name?;
    let last = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = last
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_NAME)
        .collect();
    let cleaned = cleaned.trim().to_string();
    (!cleaned.is_empty()).then_some(cleaned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_lose_paths_and_control_characters() {
        assert_eq!(
            display_name(Some("C:\\dumps\\MEMORY.DMP".into())).as_deref(),
            Some("MEMORY.DMP")
        );
        assert_eq!(
            display_name(Some("../../x\n.dmp".into())).as_deref(),
            Some("x.dmp")
        );
        assert_eq!(
            display_name(Some("\u{1b}[31mred\u{1b}[0m.dmp\r".into())).as_deref(),
            Some("[31mred[0m.dmp")
        );
        assert_eq!(display_name(Some("dir/".into())), None);
        assert_eq!(
            display_name(Some("a".repeat(1000))).unwrap().len(),
            MAX_NAME
        );
    }
}
