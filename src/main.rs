fn main() {
    println!("ksr");
}
