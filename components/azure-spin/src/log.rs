//! The components' one log style lives in `dilux-domain` (the API builds natively too); here for the
//! components that reach it through this crate.

pub use dilux_domain::log::{event, line};
