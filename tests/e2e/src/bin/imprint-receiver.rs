//! The test receiver as a process, so a test can start it inside its network namespace
//! (`ip netns exec NS imprint-receiver ADDR DIR`): uploads are saved as DIR/<file name>,
//! other POST bodies appended to DIR/reports.jsonl, one line each. Prints "listening PORT"
//! once ready and serves until killed.

use imprint_e2e::receiver::Receiver;
use std::io::Write;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, addr, dir] = args.as_slice() else {
        eprintln!("usage: imprint-receiver ADDR:PORT DIR");
        std::process::exit(64);
    };
    let receiver = Receiver::start_saving(addr, Some(dir.into()));
    println!("listening {}", receiver.port);
    std::io::stdout().flush().unwrap();
    loop {
        std::thread::park();
    }
}
