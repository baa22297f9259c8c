//! Drift monitoring through a real server: a hosted model's scores on its own kind of images stay near its
//! validation scores (no drift on `/metrics`, the model page or the dashboard); the same images brightened, as a
//! change of lighting would, move the median of the scores and the model is flagged everywhere.

use crate::common::{Backend, Harness, S3Server, METRICS_TOKEN};
use crate::models::{manifest, output, settle_dataset, small, stage, wait_model};
use aws_sdk_lookoutvision::primitives::ByteStream;
use aws_sdk_lookoutvision::types::ModelStatus;

fn brightened(jpeg: &[u8], by: i32) -> Vec<u8> {
    let img = image::load_from_memory(jpeg).unwrap().to_rgb8();
    let bright = image::imageops::colorops::brighten(&img, by);
    let mut out = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(bright).write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
    out.into_inner()
}

async fn gauge(base: &str, name: &str) -> Option<f64> {
    let text = reqwest::Client::new().get(format!("{base}/metrics")).bearer_auth(METRICS_TOKEN).send().await.unwrap().text().await.unwrap();
    text.lines().find(|l| l.starts_with(&format!("{name}{{ProjectName=\"cookies\""))).and_then(|l| l.rsplit_once(' ')).and_then(|(_, v)| v.parse().ok())
}

#[tokio::test]
async fn a_brightened_line_is_flagged_as_drift() {
    let Some(s3) = S3Server::start().await else { return };
    stage(&s3).await;
    let Some(h) = Harness::start_with(Backend::Sqlite, Some(&s3)).await else { return };
    let c = &h.client;
    c.create_project().project_name("cookies").send().await.unwrap();
    c.create_dataset().project_name("cookies").dataset_type("train").dataset_source(manifest("train.manifest")).send().await.unwrap();
    c.create_dataset().project_name("cookies").dataset_type("test").dataset_source(manifest("test.manifest")).send().await.unwrap();
    settle_dataset(c, "cookies", "train").await;
    settle_dataset(c, "cookies", "test").await;
    c.create_model().project_name("cookies").output_config(output(crate::models::OUT)).send().await.unwrap();
    assert_eq!(wait_model(c, "cookies", "1", &[ModelStatus::Training]).await.status(), Some(&ModelStatus::Trained));
    c.start_model().project_name("cookies").model_version("1").min_inference_units(1).send().await.unwrap();
    assert_eq!(wait_model(c, "cookies", "1", &[ModelStatus::StartingHosting]).await.status(), Some(&ModelStatus::Hosted));
    let detect = |img: Vec<u8>| async move {
        c.detect_anomalies().project_name("cookies").model_version("1").content_type("image/jpeg").body(ByteStream::from(img)).send().await.unwrap();
    };

    // Normal parts, as on the line: the test set's normal images (the evaluation's, so the reference's kind).
    let normal: Vec<Vec<u8>> = (10..=13).map(|i| small(&format!("normal/normal-{i}.jpg"))).collect();
    for i in 0..32 {
        detect(normal[i % normal.len()].clone()).await;
    }
    assert_eq!(gauge(&h.base, "vigil_drift_images").await, Some(32.0));
    let shift = gauge(&h.base, "vigil_drift_median_shift").await.unwrap();
    assert_eq!(gauge(&h.base, "vigil_drift_shifted").await, Some(0.0), "normal traffic is no drift (median shift {shift})");

    // The lights turned up: every part brighter.
    for i in 0..48 {
        detect(brightened(&normal[i % normal.len()], 90)).await;
    }
    let shift = gauge(&h.base, "vigil_drift_median_shift").await.unwrap();
    assert_eq!(gauge(&h.base, "vigil_drift_shifted").await, Some(1.0), "brighter parts are drift (median shift {shift})");
    use app::api::models::ModelBackend;
    let console = vigil::console::models::ConsoleModels { state: h.running.as_ref().unwrap().state.clone() };
    let d = console.model("cookies", 1).await.unwrap().drift.expect("a hosted model is monitored");
    assert!(d.shifted && d.images == 80 && d.median_shift > 0.5, "{d:?}");
    let dash = console.dashboard(24).await.unwrap();
    assert_eq!(dash.drifting, vec![("cookies".to_string(), 1)]);
    h.stop().await;
}
