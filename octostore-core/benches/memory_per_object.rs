//! Bytes of memory per stored object on the memory backend, counted by a global allocator
//! that tracks live heap bytes, with 1 000 000 objects of each kind: live locks, rate limits
//! (max_requests 10 000, checked once) and config versions (10 000 keys x 100 versions).
//! A hash map's spare capacity is counted too, as the process pays for it.
//!
//! `cargo bench -p octostore-core --bench memory_per_object`

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use octostore_core::{
    Api, ConfigKey, LimitName, LockName, Login, ManualClock, Quotas, RatePolicy, Session, Settings,
    Store, Ttl,
};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const OBJECTS: usize = 1_000_000;

fn store() -> (Store, Session) {
    let unlimited = OBJECTS * 2;
    let store = Store::builder()
        .clock(Arc::new(ManualClock::default()))
        .settings(Settings {
            quotas: Quotas {
                locks: unlimited,
                limits: unlimited,
                flags: unlimited,
                configs: unlimited,
            },
            config_history: 100,
            ..Settings::default()
        })
        .build();
    let me = store.session(store.local_user(&Login::parse("bench").unwrap()).unwrap());
    (store, me)
}

/// Live heap bytes that `fill` adds to a fresh store, per object.
fn per_object(what: &str, fill: impl FnOnce(&Session)) {
    let (store, me) = store();
    // Names are made inside `fill`: only what the store keeps stays allocated.
    let before = LIVE.load(Ordering::Relaxed);
    fill(&me);
    let after = LIVE.load(Ordering::Relaxed);
    let bytes = (after - before) as f64 / OBJECTS as f64;
    println!("{what:<40} {bytes:>8.1} bytes per object ({OBJECTS} objects)");
    drop((me, store));
}

fn main() {
    let ttl = Ttl::seconds(3600).unwrap();
    per_object("live lock (name lock-NNNNNNN)", |me| {
        for i in 0..OBJECTS {
            let name = LockName::parse(&format!("lock-{i:07}")).unwrap();
            me.acquire(&name, ttl, None).unwrap();
        }
    });
    let policy = RatePolicy::new(10_000, 60).unwrap();
    per_object("rate limit, max 10 000 (limit-NNNNNNN)", |me| {
        for i in 0..OBJECTS {
            let name = LimitName::parse(&format!("limit-{i:07}")).unwrap();
            me.check(&name, policy).unwrap();
        }
    });
    per_object("config version (value {\"n\": N})", |me| {
        let keys: Vec<ConfigKey> = (0..OBJECTS / 100)
            .map(|i| ConfigKey::parse(&format!("key-{i:05}")).unwrap())
            .collect();
        for version in 0..100 {
            for key in &keys {
                me.put_config(key, serde_json::json!({ "n": version }), None)
                    .unwrap();
            }
        }
        drop(keys);
    });
}
