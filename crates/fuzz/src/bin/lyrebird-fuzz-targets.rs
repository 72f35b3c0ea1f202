//! Prints each fuzz target's name and `-max_len`, one per line, for `./task fuzz`: the list
//! lives in one place, `lyrebird_fuzz::TARGETS`.

fn main() {
    for target in lyrebird_fuzz::TARGETS {
        println!("{} {}", target.name, target.max_len);
    }
}
