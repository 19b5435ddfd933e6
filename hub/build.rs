//! The migrations are compiled into the binary (`sqlx::migrate!`): a changed or new migration
//! file must rebuild the crate.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
