//! A notifier plug-in for the sandbox's tests: its `behave` setting says how it misbehaves.
//! `trap` panics, `spin` computes forever, `sleep` waits a minute, `hog` fills its `mib` setting's MiB of
//! memory, `fetch` sends a request to its `url` setting; anything else delivers.

spin_sdk::wit_bindgen::generate!({
    world: "plugin",
    path: "../../wit/notify",
    runtime_path: "::spin_sdk::wit_bindgen::rt",
});

use dilux::notify::types::{Delivered, Event};
use exports::dilux::notify::notifier::Guest;

struct Fixture;

export!(Fixture);

impl Guest for Fixture {
    fn notify(event: Event, _delivery_id: String, settings: Vec<(String, String)>) -> Result<Delivered, String> {
        let get = |name: &str| settings.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap_or_default();
        match get("behave").as_str() {
            "trap" => panic!("told to trap"),
            "spin" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "sleep" => std::thread::sleep(std::time::Duration::from_secs(60)),
            "hog" => {
                let mib: usize = get("mib").parse().unwrap_or(1024);
                let v = vec![1u8; mib << 20];
                std::hint::black_box(&v);
            }
            "fetch" => {
                let request = spin_sdk::http::Request::get(get("url")).build();
                return spin_sdk::http::run(async move {
                    match spin_sdk::http::send::<_, spin_sdk::http::Response>(request).await {
                        Ok(r) => Ok(Delivered { status: Some(*r.status()), message: "fetched".into() }),
                        Err(e) => Err(format!("the request failed: {e}")),
                    }
                });
            }
            _ => {}
        }
        Ok(Delivered { status: None, message: format!("took {}", event.kind) })
    }
}
