//! `lvsadm`: ipvsadm's command line for the lvs-xdp director; see
//! [`lvs::adm`].

fn main() {
    let args = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    std::process::exit(lvs::adm::run(args));
}
