// Starts the Leptos app. A file of its own, not an inline script: the Content-Security-Policy allows
// scripts from this origin only.
import init from '/pkg/dilux_ui.js';
init({ module_or_path: '/pkg/dilux_ui_bg.wasm' });
