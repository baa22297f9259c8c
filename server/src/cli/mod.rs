//! The engine's command line: `vigil train`, `vigil eval`, `vigil detect` and `vigil bench`.
//! Everything runs synchronously on the calling thread; errors come back as readable messages.

mod bench;
mod common;
mod data;
mod manifest_file;
mod synth;

use anyhow::{bail, Context, Result};
use std::io::Write;
use std::time::Instant;
use common::{backbone, with_options};
use vigil::config::{Command, DetectArgs, EvalArgs, TrainArgs};
use vigil::engine::{self, image_io, Evaluation, Model, Progress, Stage, TrainOptions};

pub fn run(command: Command) -> Result<()> {
    match command {
        Command::Train(a) => train(a),
        Command::Eval(a) => eval(a),
        Command::Detect(a) => detect(a),
        Command::Bench(a) => bench::run(a),
        Command::Serve(_) | Command::Worker(_) | Command::Edge(_) | Command::Admin(_) => bail!("`serve`, `worker`, `edge` and `admin` are not engine commands"),
    }
}

/// A one-line progress bar on stderr (only when stderr is a terminal, otherwise one line per stage).
pub(crate) struct Bar {
    tty: bool,
    last_stage: Option<Stage>,
    started: Instant,
}

impl Bar {
    pub fn new() -> Self {
        use std::io::IsTerminal;
        Bar { tty: std::io::stderr().is_terminal(), last_stage: None, started: Instant::now() }
    }

    pub fn update(&mut self, p: Progress) {
        let name = match p.stage {
            Stage::Features => "features",
            Stage::CrossValidation => "cross-validation",
            Stage::Heads => "heads",
            Stage::MemoryBank => "memory bank",
            Stage::Evaluation => "evaluation",
        };
        let mut err = std::io::stderr();
        if self.tty {
            let width = 30usize;
            let filled = if p.total > 0 { (p.done * width / p.total).min(width) } else { 0 };
            let _ = write!(
                err,
                "\r{:>16} [{}{}] {}/{} {:>6.1}s",
                name,
                "#".repeat(filled),
                "-".repeat(width - filled),
                p.done,
                p.total,
                self.started.elapsed().as_secs_f64()
            );
            if p.done >= p.total {
                let _ = writeln!(err);
            }
        } else if self.last_stage != Some(p.stage) {
            let _ = writeln!(err, "{name}… ({:.1}s)", self.started.elapsed().as_secs_f64());
        }
        self.last_stage = Some(p.stage);
    }
}

fn train(a: TrainArgs) -> Result<()> {
    let set = data::load_train(&a.data, a.test.as_deref())?;
    let b = backbone(&a.engine)?;
    let mut opts = TrainOptions { input_long_side: a.input_size, ..Default::default() };
    if let Some(r) = a.coreset_ratio {
        opts.coreset_ratio = r;
    }
    if let Some(m) = a.max_bank {
        opts.max_bank = m;
    }
    if let Some(k) = a.knn_dim {
        opts.knn_dim = (k > 0).then_some(k);
    }
    if let Some(s) = a.seed {
        opts.seed = s;
    }
    opts.supervised = !a.no_supervised;
    opts.segmentation = !a.no_segmentation;
    let opts = with_options(opts, &a.set)?;
    let n_anom = set.train.iter().filter(|s| s.anomalous).count();
    eprintln!(
        "training on {} images ({} normal, {} anomalous{}){}",
        set.train.len(),
        set.train.len() - n_anom,
        n_anom,
        if set.labels.is_empty() { String::new() } else { format!(", labels: {}", set.labels.iter().map(|l| l.name.as_str()).collect::<Vec<_>>().join(", ")) },
        set.test.as_ref().map(|t| format!("; {} test images", t.len())).unwrap_or_default()
    );
    let mut bar = Bar::new();
    let (model, ev) = engine::train(&b, &set, &opts, &mut |p| bar.update(p))?;
    model.save(&a.out).with_context(|| format!("writing {}", a.out.display()))?;
    let h = &model.header;
    eprintln!(
        "model: {}×{} input, {} memory-bank patches, score {}, threshold {:.4} ({:?}){}; fit {:.1}s → {}",
        h.input.width,
        h.input.height,
        h.patchcore.bank_size,
        h.score.kind,
        h.threshold,
        h.threshold_rule,
        if h.segmentation { ", segmentation head" } else { "" },
        h.training.fit_seconds,
        a.out.display()
    );
    let t = &h.training;
    if t.mirror_test.is_some() || t.bank_flips || t.bank_turns {
        let views = match (t.bank_flips, t.bank_turns) {
            (true, true) => "mirrored and turned",
            (true, false) => "mirrored",
            (false, true) => "turned",
            (false, false) => "as they are only",
        };
        let why = match &t.mirror_test {
            Some(m) => format!("mirror test AUROC: mirrored {:.3}, turned {:.3}", m.flip_auroc.unwrap_or(f64::NAN), m.turn_auroc.unwrap_or(f64::NAN)),
            None => "as set".into(),
        };
        eprintln!("memory bank: normal images {views} ({why})");
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&eval_json(&ev))?);
    } else {
        print_eval(&ev);
    }
    Ok(())
}

fn eval(a: EvalArgs) -> Result<()> {
    let model = Model::load(&a.model).with_context(|| format!("loading {}", a.model.display()))?;
    let samples = data::load_eval(&a.data)?;
    let b = backbone(&a.engine)?;
    let mut bar = Bar::new();
    let ev = model.evaluate(&b, &samples, &mut |done, total| bar.update(Progress { stage: Stage::Evaluation, done, total }))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&eval_json(&ev))?);
    } else {
        print_eval(&ev);
    }
    Ok(())
}

fn detect(a: DetectArgs) -> Result<()> {
    let model = Model::load(&a.model).with_context(|| format!("loading {}", a.model.display()))?;
    let b = backbone(&a.engine)?;
    if let Some(d) = &a.mask_dir {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let mut failed = 0;
    for path in &a.images {
        let result = (|| -> Result<()> {
            let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let img = image_io::decode_rgb(&bytes).with_context(|| path.display().to_string())?;
            // LFV's result has no heat map: the fast path.
            let d = model.detect_with(&b, &img, engine::DetectOptions { heat_map: false })?;
            if let (Some(dir), Some(mask)) = (&a.mask_dir, &d.anomaly_mask) {
                let name = format!("{}.png", path.file_stem().and_then(|s| s.to_str()).unwrap_or("mask"));
                std::fs::write(dir.join(&name), mask).with_context(|| format!("writing {}", dir.join(&name).display()))?;
            }
            let mut j = vigil::lfv::detect_result(&d);
            if a.images.len() > 1 {
                j["Image"] = path.display().to_string().into();
            }
            println!("{}", serde_json::to_string(&j)?);
            Ok(())
        })();
        if let Err(e) = result {
            eprintln!("{}: {e:#}", path.display());
            failed += 1;
        }
    }
    if failed > 0 {
        bail!("{failed} of {} images failed", a.images.len());
    }
    Ok(())
}

/// The evaluation as one JSON object with the figures first.
pub(crate) fn eval_json(ev: &Evaluation) -> serde_json::Value {
    let mut v = serde_json::to_value(ev).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("per_label".into(), o.get("labels").cloned().unwrap_or_default());
    }
    v
}

fn fmt(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.4}")).unwrap_or_else(|| "n/a".into())
}

fn print_eval(ev: &Evaluation) {
    println!("evaluation ({}): {} normal, {} anomalous images", ev.source, ev.n_normal, ev.n_anomaly);
    println!("  image AUROC        {}", fmt(ev.image_auroc));
    println!("  average precision  {}", fmt(ev.average_precision));
    println!("  precision          {:.4}", ev.precision);
    println!("  recall             {:.4}", ev.recall);
    println!("  F1                 {:.4}", ev.f1);
    println!("  threshold          {:.4}", ev.threshold);
    if ev.pixel_auroc.is_some() {
        println!("  pixel AUROC        {} (heat map)", fmt(ev.pixel_auroc));
    }
    if ev.segmentation_pixel_auroc.is_some() {
        println!("  pixel AUROC        {} (segmentation head)", fmt(ev.segmentation_pixel_auroc));
    }
    for l in &ev.labels {
        println!("  label {:<12} IoU {:.4}  precision {:.4}  recall {:.4}  F1 {:.4}  ({} images)", l.name, l.iou, l.precision, l.recall, l.f1, l.images);
    }
    let wrong: Vec<_> = ev.images.iter().filter(|r| r.anomalous != r.predicted_anomalous).collect();
    if !wrong.is_empty() {
        println!("  misclassified:");
        for r in wrong {
            println!("    {} ({}), score {:.4}, confidence {:.3}", r.id, if r.anomalous { "anomaly" } else { "normal" }, r.score, r.confidence);
        }
    }
}
