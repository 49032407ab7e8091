//! `pybackup list`: the entries of an archive, or of a volume set with the volumes of each.

use std::io::Write;
use std::process::ExitCode;

use ::volumes::{Place, VolumeSet};
use anyhow::Context;
use serde_json::json;

use crate::cmd::*;
use crate::ui::Ui;

/// `pybackup list`.
pub fn run(a: &ListArgs, g: &Global) -> anyhow::Result<ExitCode> {
    let ui = Ui::new(true, true, "list");
    if let Some(set) = set_of(&a.archive, a.single_volume)? {
        return run_set(&set, a.json, &Ui::new(g.quiet, true, "list"));
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut write_err: Option<std::io::Error> = None;
    let keys = crate::cmd::key::open_keys(&a.open)?;
    let problems = xtar::list_keyed(&a.archive, &keys, &ui, |l| {
        if write_err.is_none() {
            let r = if a.json { json_listed(&mut out, &l) } else { text_listed(&mut out, &l) };
            write_err = r.err();
        }
    })
    .with_context(|| format!("cannot list `{}`", a.archive.display()))?;
    if let Some(e) = write_err {
        return Err(e.into());
    }
    out.flush()?;
    Ok(code(problems == 0))
}

pub fn place_text(p: &Place) -> String {
    match p {
        Place::None => "-".into(),
        Place::Whole(v) => v.to_string(),
        Place::Parts(vs) => vs.iter().map(u32::to_string).collect::<Vec<_>>().join("+"),
    }
}

/// Lists the set from its table: every entry with the volumes that hold
/// it; files on missing volumes are marked.
pub fn run_set(set: &VolumeSet, as_json: bool, ui: &Ui) -> anyhow::Result<ExitCode> {
    let missing = set.missing();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for (place, e) in &set.table.entries {
        let lost =
            e.kind == ::manifest::Kind::File && e.size > 0 && place.volumes().iter().any(|v| missing.contains(v));
        if as_json {
            let mut v = json!({
                "type": "entry",
                "path": json_path(&e.path),
                "kind": e.kind.name(),
                "size": e.size,
                "volumes": place.volumes(),
            });
            if lost {
                v["lost"] = json!(true);
            }
            serde_json::to_writer(&mut out, &v)?;
            out.write_all(b"\n")?;
        } else {
            let l = xtar::Listed { entry: e.clone(), stored: None };
            write!(out, "{:>7} ", place_text(place))?;
            crate::output::text_listed(&mut out, &l)?;
            if lost {
                out.write_all(b"        (lost: its volume is missing) ")?;
                write_display_path(&mut out, &e.path)?;
                out.write_all(b"\n")?;
            }
        }
    }
    out.flush()?;
    for k in &missing {
        ui.say_warning(&format!("volume {k} (`{}`) is missing", set.names[*k as usize - 1].display()));
    }
    Ok(code(missing.is_empty()))
}
