//! The console's anomaly labels of a project: list, add, rename (across every mask that uses it), recolour,
//! delete (only while no saved mask uses it). Colours are unique within a project.

use super::common::{ensure_settled, find_project, internal};
use crate::projects::{self, ProjectError};
use crate::datasets::{self, manifest};
use crate::state::AppState;
use app::api::{AnomalyLabelUse, BackendError};
use sqlx::AnyConnection;

pub(super) async fn rename(state: &AppState, project: &str, old: &str, new: &str) -> Result<usize, BackendError> {
    manifest::validate_label_name(new).map_err(|m| BackendError::invalid(m))?;
    let mut tx = state.db.begin_write().await.map_err(internal)?;
    let p = projects::find(&mut tx, project)
        .await
        .map_err(internal)?
        .ok_or_else(|| BackendError::from(ProjectError::NotFound(project.into())))?;
    // The table first, so the label keeps its project colour (rewriting the lines below would otherwise
    // register the new name in the masks' colour).
    datasets::labels::rename(&mut tx, &p.id, old, new).await.map_err(internal)?;
    let mut changed = 0;
    for d in datasets::list_for_project(&mut tx, &p.id).await.map_err(internal)? {
        ensure_settled(&d)?;
        for e in datasets::all_entries(&mut tx, &d.id).await.map_err(internal)? {
            let Some(raw) = e.line.as_ref().map(|l| &l.raw) else { continue };
            let uses_new = e.classes().iter().any(|c| c.name == new);
            if let Some(line) = manifest::with_renamed_label(raw, old, new) {
                if uses_new {
                    return Err(BackendError::conflict(format!("An image already uses both {old} and {new}; they cannot be merged by renaming.")));
                }
                datasets::set_entry_line(&mut tx, &d.id, &e.id, &serde_json::Value::Object(line).to_string())
                    .await
                    .map_err(internal)?;
                changed += 1;
            }
        }
    }
    tx.commit().await.map_err(internal)?;
    Ok(changed)
}

pub(super) async fn list(state: &AppState, project: &str) -> Result<Vec<AnomalyLabelUse>, BackendError> {
    let mut conn = state.db.pool.acquire().await.map_err(internal)?;
    let p = find_project(&mut conn, project).await?;
    let counts = datasets::labels::usage_counts(&mut conn, &p.id).await.map_err(internal)?;
    let labels = datasets::labels::list(&mut conn, &p.id).await.map_err(internal)?;
    Ok(labels
        .into_iter()
        .map(|l| AnomalyLabelUse { uses: counts.get(&l.name).copied().unwrap_or(0), name: l.name, color: l.color })
        .collect())
}

pub(super) async fn create(state: &AppState, project: &str, name: &str, color: &str) -> Result<(), BackendError> {
    manifest::validate_label_name(name).map_err(|m| BackendError::invalid(m))?;
    crate::security::check_label_count(&state.db, project).await?;
    let color = label_color(color)?;
    let mut tx = state.db.begin_write().await.map_err(internal)?;
    let p = find_project(&mut tx, project).await?;
    colour_free(&mut tx, &p.id, name, &color).await?;
    if !datasets::labels::create(&mut tx, &p.id, name, &color).await.map_err(internal)? {
        return Err(BackendError::conflict(format!("The project already has a label named {name}.")));
    }
    tx.commit().await.map_err(internal)?;
    Ok(())
}

pub(super) async fn recolor(state: &AppState, project: &str, name: &str, color: &str) -> Result<(), BackendError> {
    let color = label_color(color)?;
    let mut tx = state.db.begin_write().await.map_err(internal)?;
    let p = find_project(&mut tx, project).await?;
    // An unknown label is a 404 whatever the colour; the colour check then runs in the same transaction
    // (nothing is committed when it refuses).
    if !datasets::labels::set_color(&mut tx, &p.id, name, &color).await.map_err(internal)? {
        return Err(BackendError::not_found(format!("The project has no label named {name}.")));
    }
    colour_free(&mut tx, &p.id, name, &color).await?;
    tx.commit().await.map_err(internal)?;
    Ok(())
}

pub(super) async fn delete(state: &AppState, project: &str, name: &str) -> Result<(), BackendError> {
    let mut tx = state.db.begin_write().await.map_err(internal)?;
    let p = find_project(&mut tx, project).await?;
    let uses = datasets::labels::usage(&mut tx, &p.id, name).await.map_err(internal)?;
    if uses > 0 {
        return Err(BackendError::conflict(format!("{name} is used in {uses} mask{}; erase it there (or rename it) before deleting it.", if uses == 1 { "" } else { "s" }),
        ));
    }
    if !datasets::labels::delete(&mut tx, &p.id, name).await.map_err(internal)? {
        return Err(BackendError::not_found(format!("The project has no label named {name}.")));
    }
    tx.commit().await.map_err(internal)?;
    Ok(())
}

/// Refuses a colour another label of the project has: a mask could not tell the two apart.
async fn colour_free(conn: &mut AnyConnection, project_id: &str, name: &str, color: &str) -> Result<(), BackendError> {
    let labels = datasets::labels::list(conn, project_id).await.map_err(internal)?;
    match labels.iter().find(|l| l.name != name && l.color.eq_ignore_ascii_case(color)) {
        Some(other) => Err(BackendError::conflict(format!("The label {} already has the colour {color}; choose another.", other.name))),
        None => Ok(()),
    }
}

/// A label colour as `#RRGGBB`, refusing the background colours.
fn label_color(color: &str) -> Result<String, BackendError> {
    let c = manifest::parse_hex_color(color).ok_or_else(|| BackendError::invalid(format!("{color:?} is not a colour (#rrggbb).")))?;
    if c == [255, 255, 255] || c == [0, 0, 0] {
        return Err(BackendError::invalid("White and black are reserved for the background.".to_string()));
    }
    Ok(manifest::hex_color(c))
}
