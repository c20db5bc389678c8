//! `fermyon:spin/variables`: a guest reads the variables its manifest entry declares.

use wasmtime::component::{HasSelf, Linker};

use super::HostState;

mod bindings {
    wasmtime::component::bindgen!({ path: "../wit", world: "fermyon:spin/variables-host" });
}

use bindings::fermyon::spin::variables as wit;

pub(super) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    wit::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)
}

impl wit::Host for HostState {
    fn get(&mut self, name: String) -> Result<String, wit::Error> {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
            return Err(wit::Error::InvalidName(name));
        }
        self.guest.variables.get(&name).cloned().ok_or(wit::Error::Undefined(format!(
            "component `{}` has no variable `{name}`: declare it under [component.{}.variables] in spin.toml",
            self.guest.name, self.guest.name
        )))
    }
}
