//! Seconds from a monotonic clock, natively and in the browser (where
//! `std::time::Instant` panics): for timings the engine reports.

/// Seconds since an arbitrary fixed point.
#[cfg(not(target_arch = "wasm32"))]
pub fn now() -> f64 {
    use std::sync::OnceLock;
    use std::time::Instant;
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_secs_f64()
}

/// Seconds since an arbitrary fixed point (`performance.now()`).
#[cfg(target_arch = "wasm32")]
pub fn now() -> f64 {
    crate::wasm::platform::now_ms() / 1e3
}
