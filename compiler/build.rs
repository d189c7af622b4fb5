fn main() {
    // The grammar lives in the workspace's grammar/ folder.
    lalrpop::Configuration::new()
        .set_in_dir("../grammar")
        .emit_rerun_directives(true)
        .process()
        .expect("grammar/kamailio.lalrpop failed to process");
}
