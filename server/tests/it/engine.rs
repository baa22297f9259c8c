//! The pretrained backbone on real images: feature shapes at both taps, and determinism.

use crate::common;

use vigil::engine::{backbone, image_io, Backbone};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(common::repo_root().join("server/tests/fixtures/cookies").join(name)).unwrap()
}

#[test]
fn backbone_features_on_a_real_image() {
    vigil::engine::set_threads(1);
    let b = Backbone::load(&common::backbone_path()).expect("backbone produced by setup.sh");
    let img = image_io::decode_rgb(&fixture("normal-1.jpg")).unwrap();
    assert_eq!((img.width(), img.height()), (576, 768));

    // Width 256, height 320: the stride-8 map is 40×32, the stride-16 map 20×16.
    let x = Backbone::preprocess(&img, 256, 320).unwrap();
    assert_eq!(x.size(), [1, 3, 320, 256]);
    let f = b.forward(&x).unwrap();
    assert_eq!(f.s8.size(), [1, backbone::S8_CHANNELS, 40, 32]);
    assert_eq!(f.s16.size(), [1, backbone::S16_CHANNELS, 20, 16]);
    assert!(f.s8.std(true).double_value(&[]) > 0.01, "features carry signal");

    // Deterministic: the same input gives the same features.
    let g = b.forward(&x).unwrap();
    let d8 = (&f.s8 - &g.s8).abs().max().double_value(&[]);
    let d16 = (&f.s16 - &g.s16).abs().max().double_value(&[]);
    assert!(d8 < 1e-6 && d16 < 1e-6, "max difference {d8} / {d16}");

    // A different image gives different features.
    let other = image_io::decode_rgb(&fixture("anomaly-1.jpg")).unwrap();
    let h = b.forward(&Backbone::preprocess(&other, 256, 320).unwrap()).unwrap();
    assert!((&f.s16 - &h.s16).abs().mean(tch::Kind::Float).double_value(&[]) > 1e-3);

    // A batch of two gives the same features as one at a time.
    let batch = tch::Tensor::cat(&[&x, &Backbone::preprocess(&other, 256, 320).unwrap()], 0);
    let fb = b.forward(&batch).unwrap();
    let d = (fb.s16.get(0) - f.s16.get(0)).abs().max().double_value(&[]);
    assert!(d < 1e-4, "batched vs single {d}");
}

#[test]
fn preprocessing_normalises_to_minus_one_one() {
    let img = image::RgbImage::from_fn(64, 64, |x, _| if x < 32 { image::Rgb([0, 0, 0]) } else { image::Rgb([255, 255, 255]) });
    let t = Backbone::preprocess(&img, 64, 64).unwrap();
    assert_eq!(t.min().double_value(&[]), -1.0);
    assert_eq!(t.max().double_value(&[]), 1.0);
    assert!(Backbone::preprocess(&img, 60, 64).is_err(), "sizes must be multiples of 32");
}

#[test]
fn backbone_rejects_bad_shapes_without_panicking() {
    let b = Backbone::load(&common::backbone_path()).unwrap();
    let bad = tch::Tensor::zeros([1, 3, 50, 64], (tch::Kind::Float, tch::Device::Cpu));
    assert!(b.forward(&bad).is_err());
    assert!(Backbone::load(std::path::Path::new("/nonexistent/backbone.pt")).is_err());
}
