pub mod runner;
pub mod testfile;
