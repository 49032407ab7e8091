//! `pybackup copy`: a repository to another place.

use std::process::ExitCode;

use anyhow::Context;
use serde_json::json;

use crate::cmd::*;
use crate::ui::{human, Ui};

pub fn run(a: &CopyArgs, ui: &Ui) -> anyhow::Result<ExitCode> {
    let src = store::open(&a.src)?;
    let dst = store::open(&a.dst)?;
    let r = repo::copy(src.as_ref(), dst.as_ref(), ui)
        .with_context(|| format!("cannot copy `{}` to `{}`", src.describe(), dst.describe()))?;
    ui.finish();
    if a.json {
        let v = json!({
            "copied": r.copied, "bytes": r.bytes, "skipped": r.skipped, "removed": r.removed,
            "from": src.describe(), "to": dst.describe(),
        });
        println!("{v}");
    } else if !ui.quiet() {
        ui.say(&format!(
            "pybackup: {} → {}: {} objects sent ({}) and checked, {} already there, {} removed",
            src.describe(),
            dst.describe(),
            r.copied,
            human(r.bytes),
            r.skipped,
            r.removed
        ));
    }
    Ok(code(true))
}
