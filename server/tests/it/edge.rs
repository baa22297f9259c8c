//! The edge agent through a generated gRPC client on a Unix socket, on the model `models.rs` trained and
//! hosted: install (checked), the five calls, inline and shared-memory bitmaps, every error status, a burst
//! beyond the queue, start on boot, and the same answer as the server's `DetectAnomalies` for every image.

use crate::common::{Harness, S3Server, S3_KEY, S3_SECRET};
use aws_sdk_lookoutvision::primitives::ByteStream;
use std::path::Path;
use std::sync::Arc;
use tonic::transport::{Channel, Endpoint};
use vigil::edge::agent::{Agent, AgentOptions};
use vigil::edge::package::{self, Spec, Target};
use vigil::edge::proto::edge_agent_client::EdgeAgentClient;
use vigil::edge::proto::*;
use vigil::edge::store::{self, Source};

const COMPONENT: &str = "com.example.cookies";

type Client = EdgeAgentClient<Channel>;

/// A client on the agent's socket.
async fn connect(socket: &Path) -> Client {
    let path = socket.to_path_buf();
    let channel = Endpoint::try_from("http://agent.invalid")
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
            let path = path.clone();
            async move { Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tokio::net::UnixStream::connect(path).await?)) }
        }))
        .await
        .unwrap();
    EdgeAgentClient::new(channel).max_decoding_message_size(64 << 20).max_encoding_message_size(64 << 20)
}

/// Serves `agent` on a new socket in `dir`; the task ends when the returned sender is dropped.
async fn serve(agent: Arc<Agent>, dir: &Path, name: &str) -> (std::path::PathBuf, tokio::sync::oneshot::Sender<()>) {
    let socket = dir.join(name);
    let listener = tokio::net::UnixListener::bind(&socket).unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(vigil::edge::serve::serve_on(agent, listener, async {
        let _ = rx.await;
    }));
    (socket, tx)
}

async fn wait_status(c: &mut Client, want: ModelStatus) -> ModelDescription {
    for _ in 0..600 {
        let d = c.describe_model(DescribeModelRequest { model_component: COMPONENT.into() }).await.unwrap().into_inner().model_description.unwrap();
        if d.status == want as i32 || d.status == ModelStatus::Failed as i32 {
            return d;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the model never became {want:?}");
}

fn code<T>(r: Result<tonic::Response<T>, tonic::Status>) -> tonic::Code {
    match r {
        Ok(_) => tonic::Code::Ok,
        Err(s) => s.code(),
    }
}

fn inline(img: &image::RgbImage) -> Bitmap {
    Bitmap { width: img.width() as i32, height: img.height() as i32, data: Some(bitmap::Data::ByteData(img.as_raw().clone())) }
}

fn request(bitmap: Bitmap, mask_into: Option<SharedMemoryHandle>) -> DetectAnomaliesRequest {
    DetectAnomaliesRequest {
        model_component: COMPONENT.into(),
        bitmap: Some(bitmap),
        anomaly_mask_params: mask_into.map(|h| AnomalyMaskParams { shared_memory_handle: Some(h) }),
    }
}

/// A POSIX shared memory segment (its /dev/shm file), removed on drop.
struct Segment(String);
impl Segment {
    fn new(tag: &str, bytes: &[u8]) -> Segment {
        let name = format!("vigil-it-{}-{tag}", std::process::id());
        std::fs::write(Path::new("/dev/shm").join(&name), bytes).unwrap();
        Segment(name)
    }
    fn read(&self) -> Vec<u8> {
        std::fs::read(Path::new("/dev/shm").join(&self.0)).unwrap()
    }
}
impl Drop for Segment {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(Path::new("/dev/shm").join(&self.0));
    }
}

/// Writes the package of a trained version (as a packaging job builds it) into `out`.
pub async fn write_package(h: &Harness, project: &str, version: i64, out: &Path) -> package::Manifest {
    let state = &h.running.as_ref().unwrap().state;
    let (hash,): (String,) = sqlx::query_as(
        "select m.artifact_hash from model_version m join project p on p.id = m.project_id where p.name = $1 and m.version = $2",
    )
    .bind(project)
    .bind(version)
    .fetch_one(&state.db.pool)
    .await
    .unwrap();
    let model = state.blobs.get(&hash).unwrap();
    let spec = Spec {
        component_name: COMPONENT.into(),
        component_version: "1.0.0".into(),
        component_description: None,
        model_arn: format!("arn:aws:lookoutvision:us-east-1:000000000000:model/{project}/{version}"),
        project_name: project.into(),
        model_version: version,
        threshold: None,
        target: Target { os: "linux".into(), arch: "x86_64".into(), requested: "TargetPlatform LINUX X86_64".into(), note: None },
        s3_prefix_uri: "s3://bucket/prefix/".into(),
    };
    std::fs::create_dir_all(out).unwrap();
    for (name, bytes) in package::build(&spec, &model).unwrap() {
        std::fs::write(out.join(name), bytes).unwrap();
    }
    package::parse_manifest(&std::fs::read(out.join(package::MANIFEST_FILE)).unwrap()).unwrap()
}

/// StartModelPackagingJob through the official client into `bucket/edge/`, waited until SUCCEEDED, then
/// `vigil edge install s3://bucket/edge/`'s code path; returns the installed manifest.
async fn package_and_install_from_s3(h: &Harness, s3: &S3Server, project: &str, bucket: &str, root: &Path) -> package::Manifest {
    use aws_sdk_lookoutvision::types::{
        GreengrassConfiguration, ModelPackagingConfiguration, ModelPackagingJobStatus, S3Location, TargetPlatform, TargetPlatformArch,
        TargetPlatformOs,
    };
    let gg = GreengrassConfiguration::builder()
        .component_name(COMPONENT)
        .s3_output_location(S3Location::builder().bucket(bucket).prefix("edge").build())
        .target_platform(TargetPlatform::builder().os(TargetPlatformOs::Linux).arch(TargetPlatformArch::X8664).build())
        .build();
    let job = h
        .client
        .start_model_packaging_job()
        .project_name(project)
        .model_version("1")
        .configuration(ModelPackagingConfiguration::builder().greengrass(gg).build())
        .send()
        .await
        .unwrap()
        .job_name
        .unwrap();
    let mut status = None;
    for _ in 0..600 {
        let d = h.client.describe_model_packaging_job().project_name(project).job_name(&job).send().await.unwrap();
        let d = d.model_packaging_description.unwrap();
        status = d.status().cloned();
        match d.status() {
            Some(ModelPackagingJobStatus::Succeeded) => {
                let out = d.model_packaging_output_details().unwrap().greengrass().unwrap();
                assert_eq!(out.component_version(), Some("1.0.0"), "LFV's default: the model version, .0.0");
                break;
            }
            Some(ModelPackagingJobStatus::Failed) => panic!("packaging failed: {:?}", d.status_message()),
            _ => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    }
    assert_eq!(status, Some(ModelPackagingJobStatus::Succeeded));
    let settings = vigil::s3::S3Settings {
        endpoint: Some(s3.endpoint.clone()),
        region: Some("us-east-1".into()),
        access_key_id: Some(S3_KEY.into()),
        secret_access_key: Some(S3_SECRET.into()),
        force_path_style: true,
    };
    let source = Source::parse(&format!("s3://{bucket}/edge"), vigil::s3::S3::connect(&settings)).await.unwrap();
    let state = &h.running.as_ref().unwrap().state;
    store::install(root, &source, false, Some(state.backbone.checksum())).await.unwrap()
}

/// The whole agent flow on `project`'s hosted version 1; `images` are JPEG test images.
pub async fn agent_flow(h: &Harness, s3: &S3Server, bucket: &str, project: &str, images: &[(String, Vec<u8>)]) {
    let started = std::time::Instant::now();
    let state = &h.running.as_ref().unwrap().state;
    let dir = tempfile::tempdir().unwrap();
    let (pkg, root) = (dir.path().join("package"), dir.path().join("agent"));
    // The package a packaging job wrote to S3, installed from there, is the package built here.
    let from_s3 = package_and_install_from_s3(h, s3, project, bucket, &root).await;
    let manifest = write_package(h, project, 1, &pkg).await;
    assert_eq!(from_s3.files, manifest.files, "the same model file");
    assert_eq!((from_s3.threshold, &from_s3.anomaly_labels), (manifest.threshold, &manifest.anomaly_labels));
    assert_eq!(manifest.backbone_sha256.as_deref(), Some(state.backbone.checksum()));
    let recipe: serde_json::Value = serde_json::from_slice(&std::fs::read(pkg.join(package::RECIPE_JSON)).unwrap()).unwrap();
    assert_eq!(recipe["RecipeFormatVersion"], "2020-01-25");
    assert_eq!(recipe["ComponentName"], COMPONENT);
    let yaml: serde_json::Value = serde_yaml::from_slice(&std::fs::read(pkg.join(package::RECIPE_YAML)).unwrap()).unwrap();
    assert_eq!(yaml, recipe, "the YAML recipe says what the JSON one says");

    // Install refusals: another backbone file, a damaged model file, a folder that is no package.
    let src = Source::Folder(pkg.clone());
    let refused = dir.path().join("refused");
    let e = store::install(&refused, &src, false, Some(&"0".repeat(64))).await.unwrap_err();
    assert!(e.contains("backbone"), "{e}");
    let damaged = dir.path().join("damaged");
    std::fs::create_dir_all(&damaged).unwrap();
    for name in package::FILES {
        std::fs::copy(pkg.join(name), damaged.join(name)).unwrap();
    }
    let mut model = std::fs::read(damaged.join(package::MODEL_FILE)).unwrap();
    let mid = model.len() / 2;
    model[mid] ^= 1;
    std::fs::write(damaged.join(package::MODEL_FILE), model).unwrap();
    let e = store::install(&refused, &Source::Folder(damaged), false, None).await.unwrap_err();
    assert!(e.contains("SHA-256"), "{e}");
    let e = store::install(&refused, &Source::Folder(dir.path().to_path_buf()), false, None).await.unwrap_err();
    assert!(e.contains("not a Vigil model package"), "{e}");
    assert!(store::list(&refused).is_empty(), "nothing refused is installed");
    // Installing again from the folder replaces the component installed from S3.
    store::install(&root, &src, false, Some(state.backbone.checksum())).await.unwrap();

    let agent = Agent::new(AgentOptions { root: root.clone(), units: 1, queue_per_unit: 8 }, state.backbone.clone());
    let (socket, _stop) = serve(agent, dir.path(), "agent.sock").await;
    let mut c = connect(&socket).await;

    // ListModels / DescribeModel; unknown and malformed names.
    let models = c.list_models(ListModelsRequest {}).await.unwrap().into_inner().models;
    assert_eq!(models.len(), 1);
    assert_eq!((models[0].model_component.as_str(), models[0].status), (COMPONENT, ModelStatus::Stopped as i32));
    assert!(models[0].lookout_vision_model_arn.ends_with(&format!("model/{project}/1")));
    assert_eq!(code(c.describe_model(DescribeModelRequest { model_component: "no.such".into() }).await), tonic::Code::NotFound);
    assert_eq!(code(c.start_model(StartModelRequest { model_component: "no.such".into() }).await), tonic::Code::NotFound);
    assert_eq!(code(c.describe_model(DescribeModelRequest { model_component: "../etc".into() }).await), tonic::Code::InvalidArgument);
    let first = vigil::engine::image_io::decode_rgb(&images[0].1).unwrap();
    assert_eq!(code(c.detect_anomalies(request(inline(&first), None)).await), tonic::Code::FailedPrecondition, "not running yet");
    assert_eq!(code(c.stop_model(StopModelRequest { model_component: COMPONENT.into() }).await), tonic::Code::FailedPrecondition);

    // StartModel: STARTING, then RUNNING; a second start is refused.
    let s = c.start_model(StartModelRequest { model_component: COMPONENT.into() }).await.unwrap().into_inner();
    assert_eq!(s.status, ModelStatus::Starting as i32);
    assert_eq!(code(c.start_model(StartModelRequest { model_component: COMPONENT.into() }).await), tonic::Code::FailedPrecondition);
    let d = wait_status(&mut c, ModelStatus::Running).await;
    assert_eq!(d.status, ModelStatus::Running as i32, "{}", d.status_message);

    // Parity: every image's verdict, confidence, anomalies and mask equal the server's DetectAnomalies.
    for (key, jpeg) in images {
        let cloud = h
            .client
            .detect_anomalies()
            .project_name(project)
            .model_version("1")
            .content_type("image/jpeg")
            .body(ByteStream::from(jpeg.clone()))
            .send()
            .await
            .unwrap()
            .detect_anomaly_result
            .unwrap();
        let rgb = vigil::engine::image_io::decode_rgb(jpeg).unwrap();
        let edge = c.detect_anomalies(request(inline(&rgb), None)).await.unwrap().into_inner().detect_anomaly_result.unwrap();
        assert_eq!(Some(edge.is_anomalous), cloud.is_anomalous(), "{key}");
        assert_eq!(Some(edge.confidence), cloud.confidence(), "{key}: the same confidence, to the bit");
        let cloud_anomalies: Vec<(String, f32, String)> = cloud
            .anomalies()
            .iter()
            .map(|a| {
                let p = a.pixel_anomaly().unwrap();
                (a.name().unwrap().to_string(), p.total_percentage_area().unwrap(), p.color().unwrap().to_string())
            })
            .collect();
        let edge_anomalies: Vec<(String, f32, String)> = edge
            .anomalies
            .iter()
            .map(|a| {
                let p = a.pixel_anomaly.as_ref().unwrap();
                (a.name.clone(), p.total_percentage_area, p.hex_color.clone())
            })
            .collect();
        assert_eq!(edge_anomalies, cloud_anomalies, "{key}");
        let cloud_mask = image::load_from_memory(cloud.anomaly_mask().unwrap().as_ref()).unwrap().to_rgb8();
        let mask = edge.anomaly_mask.unwrap();
        assert_eq!((mask.width as u32, mask.height as u32), rgb.dimensions());
        match mask.data {
            Some(bitmap::Data::ByteData(b)) => assert!(b == *cloud_mask.as_raw(), "{key}: the same mask"),
            other => panic!("an inline mask was expected: {other:?}"),
        }

        // The same image through shared memory (at an offset), the mask written into the caller's segment.
        let n = rgb.as_raw().len();
        let mut seg = vec![0u8; 100 + n];
        seg[100..].copy_from_slice(rgb.as_raw());
        let input = Segment::new("in", &seg);
        let output = Segment::new("out", &vec![0u8; n]);
        let shm = Bitmap {
            width: rgb.width() as i32,
            height: rgb.height() as i32,
            data: Some(bitmap::Data::SharedMemoryHandle(SharedMemoryHandle { name: format!("/{}", input.0), size: n as u64, offset: 100 })),
        };
        let out_handle = SharedMemoryHandle { name: output.0.clone(), size: n as u64, offset: 0 };
        let r = c.detect_anomalies(request(shm, Some(out_handle))).await.unwrap().into_inner().detect_anomaly_result.unwrap();
        assert_eq!((r.is_anomalous, r.confidence), (edge.is_anomalous, edge.confidence), "{key}: shared memory");
        assert!(matches!(r.anomaly_mask.unwrap().data, Some(bitmap::Data::SharedMemoryHandle(_))));
        assert!(output.read() == *cloud_mask.as_raw(), "{key}: the mask in shared memory");
    }

    // Every malformed bitmap is INVALID_ARGUMENT, and the agent keeps serving.
    let (w, hgt) = (first.width() as i32, first.height() as i32);
    let bad = |width: i32, height: i32, data: bitmap::Data| request(Bitmap { width, height, data: Some(data) }, None);
    let short = bitmap::Data::ByteData(vec![0; (w * hgt * 3 - 1) as usize]);
    assert_eq!(code(c.detect_anomalies(bad(w, hgt, short)).await), tonic::Code::InvalidArgument, "one byte short");
    assert_eq!(code(c.detect_anomalies(bad(63, 64, bitmap::Data::ByteData(vec![0; 63 * 64 * 3]))).await), tonic::Code::InvalidArgument);
    assert_eq!(code(c.detect_anomalies(bad(4097, 64, bitmap::Data::ByteData(vec![0; 4097 * 64 * 3]))).await), tonic::Code::InvalidArgument);
    let missing = SharedMemoryHandle { name: "vigil-it-no-such-segment".into(), size: (w * hgt * 3) as u64, offset: 0 };
    assert_eq!(code(c.detect_anomalies(bad(w, hgt, bitmap::Data::SharedMemoryHandle(missing))).await), tonic::Code::InvalidArgument);
    let escape = SharedMemoryHandle { name: "../../etc/passwd".into(), size: (w * hgt * 3) as u64, offset: 0 };
    assert_eq!(code(c.detect_anomalies(bad(w, hgt, bitmap::Data::SharedMemoryHandle(escape))).await), tonic::Code::InvalidArgument);
    let small = Segment::new("small", &[0u8; 1000]);
    let beyond = SharedMemoryHandle { name: small.0.clone(), size: (w * hgt * 3) as u64, offset: 0 };
    assert_eq!(code(c.detect_anomalies(bad(w, hgt, bitmap::Data::SharedMemoryHandle(beyond))).await), tonic::Code::InvalidArgument);
    assert_eq!(code(c.detect_anomalies(DetectAnomaliesRequest { model_component: COMPONENT.into(), bitmap: None, anomaly_mask_params: None }).await), tonic::Code::InvalidArgument);
    let too_small_out = SharedMemoryHandle { name: small.0.clone(), size: 1000, offset: 0 };
    assert_eq!(code(c.detect_anomalies(request(inline(&first), Some(too_small_out))).await), tonic::Code::InvalidArgument, "no room for the mask");
    assert!(c.detect_anomalies(request(inline(&first), None)).await.is_ok());

    // StopModel: synchronous; then detection and a second stop are refused.
    let s = c.stop_model(StopModelRequest { model_component: COMPONENT.into() }).await.unwrap().into_inner();
    assert_eq!(s.status, ModelStatus::Stopped as i32);
    assert_eq!(code(c.detect_anomalies(request(inline(&first), None)).await), tonic::Code::FailedPrecondition);
    assert_eq!(code(c.stop_model(StopModelRequest { model_component: COMPONENT.into() }).await), tonic::Code::FailedPrecondition);

    // A burst beyond a one-slot queue: answers or RESOURCE_EXHAUSTED, never anything else.
    let busy = Agent::new(AgentOptions { root: root.clone(), units: 1, queue_per_unit: 1 }, state.backbone.clone());
    let (busy_socket, _busy_stop) = serve(busy, dir.path(), "busy.sock").await;
    let mut b = connect(&busy_socket).await;
    b.start_model(StartModelRequest { model_component: COMPONENT.into() }).await.unwrap();
    assert_eq!(wait_status(&mut b, ModelStatus::Running).await.status, ModelStatus::Running as i32);
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(connect(&busy_socket).await);
    }
    let calls = clients.iter().flat_map(|cl| (0..4).map(move |_| cl.clone())).map(|mut cl| {
        let req = request(inline(&first), None);
        async move { cl.detect_anomalies(req).await.map(|_| ()).map_err(|s| s.code()) }
    });
    let results = futures::future::join_all(calls).await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    let exhausted = results.iter().filter(|r| **r == Err(tonic::Code::ResourceExhausted)).count();
    assert_eq!(ok + exhausted, results.len(), "{results:?}");
    assert!(ok >= 1 && exhausted >= 1, "{results:?}");

    // Installed to start on boot: a new agent brings it up RUNNING by itself.
    store::install(&root, &src, true, None).await.unwrap();
    let boot = Agent::new(AgentOptions { root: root.clone(), units: 1, queue_per_unit: 8 }, state.backbone.clone());
    boot.start_on_boot();
    let (boot_socket, _boot_stop) = serve(boot, dir.path(), "boot.sock").await;
    let mut bc = connect(&boot_socket).await;
    assert_eq!(wait_status(&mut bc, ModelStatus::Running).await.status, ModelStatus::Running as i32);
    assert!(bc.detect_anomalies(request(inline(&first), None)).await.is_ok());
    eprintln!("edge agent: {} images agree with DetectAnomalies, inline and in shared memory ({:.1} s)", images.len(), started.elapsed().as_secs_f64());
}
