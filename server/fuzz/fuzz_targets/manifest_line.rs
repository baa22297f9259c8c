//! A Ground Truth manifest line, as imports, `UpdateDatasetEntries` and archives read them: parsing must turn any
//! bytes into a line or a reason, never a panic.
#![no_main]

#[path = "../../src/datasets/manifest.rs"]
#[allow(dead_code)]
mod manifest;

/// The one setting `manifest.rs` reads from the server's `security` module.
mod security {
    pub const MAX_LABELS_PER_MASK: usize = 20;
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else { return };
    if let Ok(parsed) = manifest::parse_line(line) {
        let _ = manifest::line_classes(line);
        let _ = parsed.source_ref.len();
    }
});
