//! The API's log lines, in the components' one `key=value` style.

use std::fmt::Display;

pub fn event(event: &str, fields: &[(&str, &dyn Display)]) {
    dilux_domain::log::event("api", event, fields);
}
