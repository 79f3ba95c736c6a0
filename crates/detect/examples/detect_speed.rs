//! Times one window test of each detector at the size: a reference of 1,000 and a
//! window of 500 samples of 512 features, MMD with 100 permutations (drawn included), KS over
//! the 512 features with the reference's columns sorted beforehand. The best of three, in
//! seconds; `cargo xtask bench` runs the same measurement beside its Python peers.
//!
//!     cargo run --release -p drift-detect --example detect_speed

fn main() {
    for (name, seconds) in drift_detect::speed::window_tests(3) {
        println!("{name}: {seconds:.4} s per window");
    }
}
