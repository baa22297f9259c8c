//! Model versions as blobs: a version trained before model versions were blobs (its model file under the data
//! directory, its evaluation as JSON text in its row) moves into the blob store at start-up, and blob collection
//! keeps what a version refers to by its `model_blob` rows — and nothing once the version is gone.

use crate::common::{Backend, Harness};
use vigil::blobs::hash_of;

async fn earlier_versions_move_into_the_blob_store(backend: Backend) {
    let Some(h) = Harness::start(backend).await else { return };
    let state = h.running.as_ref().unwrap().state.clone();
    let now = vigil::db::now_ms();
    let (project, model) = ("aa".repeat(16), "bb".repeat(16));
    sqlx::query("insert into project (id, name, created_at, updated_at) values ($1, 'old', $2, $2)")
        .bind(&project)
        .bind(now)
        .execute(&state.db.pool)
        .await
        .unwrap();
    // What an earlier version wrote: the file under DATA_DIR/models, the evaluation's text naming a test image.
    let image = state.blobs.put(b"a test image's bytes").unwrap();
    let file_bytes = b"an earlier model file".to_vec();
    let rel = format!("models/{model}.vigil");
    std::fs::create_dir_all(state.config.data_dir.join("models")).unwrap();
    std::fs::write(state.config.data_dir.join(&rel), &file_bytes).unwrap();
    let evaluation = serde_json::json!({
        "evaluation": { "source": "test_set", "images": [] },
        "origins": { "test/e1": { "source_ref": "s3://b/anomaly/1.png", "image": image, "mask": null, "dataset_type": "test" } },
    })
    .to_string();
    sqlx::query(
        "insert into model_version (id, project_id, version, status, output_bucket, output_prefix, evaluation, artifact, \
         trained_threshold, threshold, created_at, updated_at) values ($1, $2, 1, 'TRAINED', '', '', $3, $4, 1.0, 1.0, $5, $5)",
    )
    .bind(&model)
    .bind(&project)
    .bind(&evaluation)
    .bind(&rel)
    .bind(now)
    .execute(&state.db.pool)
    .await
    .unwrap();
    // A path the server never wrote is not read, whatever the column says.
    sqlx::query(
        "insert into model_version (id, project_id, version, status, output_bucket, output_prefix, artifact, created_at, updated_at) \
         values ($1, $2, 2, 'TRAINED', '', '', '../../etc/passwd', $3, $3)",
    )
    .bind("cc".repeat(16))
    .bind(&project)
    .bind(now)
    .execute(&state.db.pool)
    .await
    .unwrap();

    let moved = vigil::models::artifacts::backfill_with(&state.db, &state.blobs, &state.config.data_dir).await.unwrap();
    assert_eq!(moved, 2);
    let (artifact, evaluation_hash, old_artifact, old_evaluation): (Option<String>, Option<String>, Option<String>, Option<String>) =
        sqlx::query_as("select artifact_hash, evaluation_hash, artifact, evaluation from model_version where id = $1")
            .bind(&model)
            .fetch_one(&state.db.pool)
            .await
            .unwrap();
    assert_eq!(artifact.as_deref(), Some(hash_of(&file_bytes).as_str()));
    assert_eq!(evaluation_hash.as_deref(), Some(hash_of(evaluation.as_bytes()).as_str()));
    assert_eq!((old_artifact, old_evaluation), (None, None), "the old columns are cleared");
    assert!(!state.config.data_dir.join(&rel).exists(), "the file is gone from the data directory");
    let (traversal,): (Option<String>,) =
        sqlx::query_as("select artifact_hash from model_version where version = 2").fetch_one(&state.db.pool).await.unwrap();
    assert_eq!(traversal, None);
    assert_eq!(vigil::models::artifacts::backfill_with(&state.db, &state.blobs, &state.config.data_dir).await.unwrap(), 0, "once");

    // The console reads the evaluation from the blob store.
    use app::api::models::ModelBackend;
    let console = vigil::console::models::ConsoleModels { state: state.clone() };
    assert_eq!(console.model("old", 1).await.unwrap().evaluation.unwrap().source, "test_set");

    // Collection keeps the model file, the evaluation and the image the evaluation shows; after the version is
    // deleted, all three go.
    vigil::collect_blob_garbage(&state.db, &state.blobs, std::time::Duration::ZERO).await.unwrap();
    for hash in [artifact.as_deref().unwrap(), evaluation_hash.as_deref().unwrap(), image.as_str()] {
        assert!(state.blobs.get(hash).is_ok(), "{hash} is kept");
    }
    console.delete("old", 1).await.unwrap();
    vigil::collect_blob_garbage(&state.db, &state.blobs, std::time::Duration::ZERO).await.unwrap();
    for hash in [artifact.as_deref().unwrap(), evaluation_hash.as_deref().unwrap(), image.as_str()] {
        assert!(state.blobs.get(hash).is_err(), "{hash} is collected");
    }
    h.stop().await;
}

#[tokio::test]
async fn earlier_versions_move_into_the_blob_store_on_sqlite() {
    earlier_versions_move_into_the_blob_store(Backend::Sqlite).await;
}

#[tokio::test]
async fn earlier_versions_move_into_the_blob_store_on_postgres() {
    earlier_versions_move_into_the_blob_store(Backend::Postgres).await;
}
